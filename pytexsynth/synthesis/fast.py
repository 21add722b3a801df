"""One-pass arbitrary style transfer: AdaIN (Huang & Belongie 2017) or style-swap, then
optionally a few evaluations of Gatys' objective started from that result.

``method="adain"``: encode the content and the style(s) with VGG-19 up to relu4_1, give the
content features each style's per-channel mean and standard deviation
(:func:`pytexsynth.ops.adain`; with label maps, each region its style region's), blend (several
styles by ``blend`` weights, then the content by ``alpha``), decode with an
:class:`~pytexsynth.networks.AdaINDecoder`. ``tileable=True`` runs the encoder and the decoder
with circular padding, so the output tiles seamlessly.
``method="style-swap"``: :func:`pytexsynth.style_swap_transfer` with ``method="inverse"``.
``refine=K`` then runs :func:`pytexsynth.transfer_style` at the output size only (the pyramid's
coarse levels skipped) for K iterations, initialised with the one-pass image.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
from importlib.resources import files
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .. import ops
from ..devices import resolve_device
from ..io import as_image, resize_image
from ..masks import label_masks, region_cells
from ..models.vgg import VGG19
from ..networks.adain import ADAIN_LAYER, AdaINDecoder
from ..networks.base import load_model
from .color import luminance_image, match_color, match_luminance, with_chrominance
from .common import ImageArg, Size, output_size
from .gatys import transfer_style
from .style_swap import style_swap_transfer

__all__ = ["transfer_style_fast", "adain_target", "adain_decoder_path", "FAST_METHODS", "PRECISIONS"]

FAST_METHODS = ("adain", "style-swap")
PRECISIONS = ("auto", "float32", "bfloat16")
_DECODER_FILE = "adain_decoder.pt"
_HINT = ("train one with `pytexsynth train-adain CONTENT_DIR STYLE_DIR -o adain.pt` and pass decoder='adain.pt' "
         "(CLI: --decoder adain.pt)")


def adain_decoder_path() -> Path:
    """Where the package's trained AdaIN decoder lives (``pytexsynth/data/adain_decoder.pt``)."""
    return Path(str(files("pytexsynth") / "data" / _DECODER_FILE))


@functools.lru_cache(maxsize=4)
def _loaded_decoder(path: str, mtime_ns: int, padding: str, device: str) -> AdaINDecoder:
    """A decoder file, loaded once per (file version, padding, device), in eval mode and channels_last."""
    net = load_model(path, map_location=device)
    if not isinstance(net, AdaINDecoder):
        raise TypeError(f"transfer_style_fast: decoder must be an AdaINDecoder or a path to one, got a "
                        f"{type(net).__name__} from {path}")
    if net.padding != padding:
        net.set_padding(padding)
    return net.to(device, memory_format=torch.channels_last).eval()


def _decoder(decoder, tileable: bool, device: torch.device) -> AdaINDecoder:
    padding = "circular" if tileable else "reflect"
    if decoder is None:
        decoder = adain_decoder_path()
        if not decoder.is_file():
            raise FileNotFoundError(f"transfer_style_fast: no AdaIN decoder is shipped at {decoder}; {_HINT}")
    if isinstance(decoder, (str, os.PathLike)):
        path = Path(decoder).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"transfer_style_fast: decoder file {str(decoder)!r} does not exist")
        return _loaded_decoder(str(path), path.stat().st_mtime_ns, padding, str(device))
    if not isinstance(decoder, AdaINDecoder):
        raise TypeError(f"transfer_style_fast: decoder must be an AdaINDecoder or a path to one, "
                        f"got {type(decoder).__name__}")
    on_device = all(p.device == device for p in decoder.parameters())
    if decoder.padding == padding and on_device:
        return decoder  # the caller's module, used as it is (its train/eval mode too)
    return copy.deepcopy(decoder).set_padding(padding).to(device)  # the caller's decoder stays as it was


@functools.lru_cache(maxsize=2)
def _shared_vgg(circular: bool, weights: Optional[str], device: str) -> VGG19:
    return VGG19((ADAIN_LAYER,), circular=circular, weights=weights).to(device)


def _autocast(precision: str, dev: torch.device):
    """The autocast context of the one pass: bfloat16 where the hardware has it (``"auto"``: CPUs
    with AVX-512 BF16 or AMX, and CUDA), else none (float32)."""
    if precision == "auto":
        native = torch.cuda.is_bf16_supported() if dev.type == "cuda" else (
            dev.type == "cpu" and torch.backends.mkldnn.is_available() and torch.cpu._is_avx512_bf16_supported())
        precision = "bfloat16" if native else "float32"
    if precision == "float32" or dev.type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.bfloat16)


def _check(method, alpha, refine, styles, blend, preserve_color, precision) -> List[float]:
    if method not in FAST_METHODS:
        raise ValueError(f"transfer_style_fast: method must be one of {', '.join(map(repr, FAST_METHODS))}, got {method!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"transfer_style_fast: alpha must be a number in [0, 1], got {alpha!r}")
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"transfer_style_fast: refine must be an int >= 0, got {refine!r}")
    if preserve_color not in (None, "luminance", "histogram"):
        raise ValueError(f"transfer_style_fast: preserve_color must be None, 'luminance' or 'histogram', "
                         f"got {preserve_color!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"transfer_style_fast: precision must be one of {PRECISIONS}, got {precision!r}")
    if blend is None:
        return [1.0 / len(styles)] * len(styles)
    try:
        w = [float(b) for b in blend]
    except (TypeError, ValueError):
        w = []
    if len(w) != len(styles) or any(not (b >= 0 and b < float("inf")) for b in w) or sum(w) <= 0:
        raise ValueError(f"transfer_style_fast: blend must be {len(styles)} finite weights >= 0 (one per style) "
                         f"with a positive sum, got {blend!r}")
    return [b / sum(w) for b in w]


def _label_cells(labels, n_styles: int, style_labels, fc: torch.Tensor, fss: Sequence[torch.Tensor]):
    """Per style, [(content cells, style cells)] per label at relu4_1, or None without labels."""
    if labels is None and style_labels is None:
        return None
    if labels is None or style_labels is None or len(style_labels) != n_styles:
        raise ValueError("transfer_style_fast: content_labels and style_labels (one per style) must be given together")
    maps = [labels, *style_labels]
    if any(not isinstance(m, torch.Tensor) or m.dtype.is_floating_point or m.dtype == torch.bool for m in maps):
        raise TypeError("transfer_style_fast: content_labels and style_labels must be integer tensors (H, W)")
    k = 1 + max(int(m.max()) for m in maps)
    cells_c = region_cells(label_masks(labels, k).to(fc.device), fc.shape[-2:])
    return [list(zip(cells_c, region_cells(label_masks(m, k).to(fc.device), fs.shape[-2:])))
            for m, fs in zip(style_labels, fss)]


def _adain_target(fc: torch.Tensor, fs: torch.Tensor, cells) -> torch.Tensor:
    """AdaIN of the content features to one style's, whole maps or region by region (a region
    the style's labels lack gets the whole style's statistics)."""
    if cells is None:
        return ops.adain(fc, fs)
    c, h, w = fc.shape[1:]
    flat_c, flat_s = fc.reshape(1, c, 1, h * w), fs.reshape(1, c, 1, -1)
    out = ops.adain(fc, fs).reshape(1, c, 1, h * w)
    for ci, si in cells:
        if ci.numel() and si.numel():
            out[..., ci] = ops.adain(flat_c[..., ci].contiguous(), flat_s[..., si].contiguous())
    return out.reshape(fc.shape)


def adain_target(content_feats: torch.Tensor, style_feats: Sequence[torch.Tensor], weights: Sequence[float],
                 alpha: float = 1.0, content_labels: Optional[torch.Tensor] = None,
                 style_labels: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """The decoder's input: the content features (1, C, h, w) given each style's statistics
    (:func:`pytexsynth.ops.adain`; with label maps, region by region), mixed by ``weights``
    (summing to 1), then blended with the content features by ``alpha``."""
    cells = _label_cells(content_labels, len(style_feats), style_labels, content_feats, style_feats)
    target = None
    for i, (fs, w) in enumerate(zip(style_feats, weights)):
        t = _adain_target(content_feats, fs, None if cells is None else cells[i]) * w
        target = t if target is None else target + t
    return target if alpha >= 1.0 else torch.lerp(content_feats, target, float(alpha))


@torch.no_grad()
def _adain_pass(c: torch.Tensor, styles: Sequence[torch.Tensor], weights: Sequence[float], alpha: float,
                vgg: VGG19, net: AdaINDecoder, autocast, labels=None, style_labels=None) -> torch.Tensor:
    h, w = c.shape[-2:]
    ph, pw = -h % 8, -w % 8  # relu4_1 is 1/8 of the image: reflect-pad to a multiple of 8, crop after
    if (ph or pw) and net.padding == "reflect":
        c = F.pad(c, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect")
    with autocast:
        fc = vgg(c, (ADAIN_LAYER,))[ADAIN_LAYER].float().contiguous()
        fss = [vgg(s, (ADAIN_LAYER,))[ADAIN_LAYER].float().contiguous() for s in styles]
    target = adain_target(fc, fss, weights, alpha, labels, style_labels)
    with autocast:
        out = net(target.contiguous(memory_format=torch.channels_last)).float()
    if tuple(out.shape[-2:]) == tuple(c.shape[-2:]):
        out = out[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w].contiguous()
    else:  # circular padding: a side that is not a multiple of 8 is resized (it cannot tile exactly)
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
    return out.clamp_(0.0, 1.0)


def _one_pass(method: str, c, styles, mix, alpha, tileable, decoder, style_size, dev, weights, precision,
              labels, style_labels) -> torch.Tensor:
    if method == "style-swap":
        if len(styles) != 1 or tileable or labels is not None or style_labels is not None:
            raise ValueError("transfer_style_fast: method='style-swap' takes one style, and no tileable or labels")
        return style_swap_transfer(c, styles[0], method="inverse", strength=float(alpha), device=dev,
                                   style_size=style_size or 256, weights=weights)
    net = _decoder(decoder, tileable, dev)
    vgg = _shared_vgg(bool(tileable), None if weights is None else str(weights), str(dev))
    return _adain_pass(c, styles, mix, float(alpha), vgg, net, _autocast(precision, dev), labels, style_labels)


def transfer_style_fast(content: ImageArg, style: Union[ImageArg, Sequence[ImageArg]], method: str = "adain", *,
                        alpha: float = 1.0, refine: int = 0, blend: Optional[Sequence[float]] = None,
                        preserve_color: Optional[str] = None, tileable: bool = False,
                        content_labels: Optional[torch.Tensor] = None,
                        style_labels: Optional[Sequence[torch.Tensor]] = None,
                        decoder: Union[AdaINDecoder, str, os.PathLike, None] = None, size: Optional[Size] = None,
                        style_size: Optional[int] = None, precision: str = "auto", device=None, weights=None,
                        seed: Optional[int] = 0, **refine_options) -> torch.Tensor:
    """Renders ``content`` in the style of ``style`` in one forward pass, optionally refined.

    Args:
        content: (1, 3, H, W) RGB in [0, 1], or an image path (any size; sides >= 16 px).
        style: one image (tensor or path) or, for ``"adain"``, a list of them (blended).
        method: ``"adain"`` or ``"style-swap"`` (one style; its shipped relu3_1 decoder).
        alpha: style strength in [0, 1] (AdaIN's alpha; style-swap's ``strength``).
        refine: K > 0 runs K iterations of :func:`pytexsynth.transfer_style` (L-BFGS, no
            pyramid) from the one-pass image; 0 returns the one pass.
        blend: ``"adain"``: weights of several styles (default equal): their AdaIN targets are
            mixed in feature space (the paper's style interpolation).
        preserve_color: None, ``"histogram"`` (the style recoloured to the content's colour
            statistics first) or ``"luminance"`` (stylise the luminance, keep the content's chrominance).
        tileable: ``"adain"``: circular padding in the encoder and the decoder: the output tiles.
        content_labels, style_labels: ``"adain"``: an integer label map (H, W) for the content
            and one per style (any resolution, same aspect): each region gets its style region's
            statistics (per-region AdaIN), and the refinement's Gram terms are per region too.
        decoder: ``"adain"``: an :class:`~pytexsynth.networks.AdaINDecoder` or a path to one
            (default the shipped ``pytexsynth/data/adain_decoder.pt``).
        size: output size: None keeps the content's; an int is the longer side; or (H, W).
        style_size: the styles' longer side (default the output's longer side).
        precision: ``"auto"`` (bfloat16 autocast of the encoder and decoder where the hardware
            has it natively, else float32), ``"float32"`` or ``"bfloat16"``; the statistics are float32.
        device, weights, seed: as in :func:`pytexsynth.transfer_style`.
        refine_options: more keyword arguments of :func:`pytexsynth.transfer_style` for the
            refinement (e.g. ``style_weight``, ``callback``).

    Returns:
        (1, 3, height, width) float32 RGB in [0, 1] on ``device``.

    Example:
        >>> out = transfer_style_fast("photo.jpg", "painting.jpg", alpha=0.8, refine=20)  # doctest: +SKIP
    """
    styles_arg = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles_arg:
        raise ValueError("transfer_style_fast: style must be an image or a non-empty list of images")
    mix = _check(method, alpha, refine, styles_arg, blend, preserve_color, precision)
    if style_size is not None and (isinstance(style_size, bool) or not isinstance(style_size, int) or style_size < 16):
        raise ValueError(f"transfer_style_fast: style_size must be None or an int >= 16, got {style_size!r}")
    dev = resolve_device(device)
    c = as_image(content, "content", dev)
    out_hw = tuple(c.shape[-2:]) if size is None else output_size(size, tuple(c.shape[-2:]))
    if min(out_hw) < 16:
        raise ValueError(f"transfer_style_fast: the output is {out_hw[1]}x{out_hw[0]} px; each side must be >= 16 px")
    c = resize_image(c, out_hw)
    style_long = style_size or max(out_hw)
    raw = [resize_image(as_image(s, f"style[{i}]", dev), style_long) for i, s in enumerate(styles_arg)]
    styles = raw
    if preserve_color == "histogram":
        styles = [match_color(s, c) for s in raw]
    elif preserve_color == "luminance":
        styles = [match_luminance(s, c) for s in raw]
    c_in = luminance_image(c) if preserve_color == "luminance" else c  # as the refinement's content loss sees it
    out = _one_pass(method, c_in, styles, mix, alpha, tileable, decoder, style_size, dev, weights, precision,
                    content_labels, style_labels)
    if refine:
        init = luminance_image(out) if preserve_color == "luminance" else out
        out = transfer_style(c, raw, size=out_hw, blend=mix, init=init, iterations=refine, pyramid=False,
                             preserve_color=preserve_color, tileable=tileable, content_labels=content_labels,
                             style_labels=style_labels, style_scale=style_long / max(out_hw), device=dev,
                             weights=weights, seed=seed, **refine_options)
    elif preserve_color == "luminance":
        out = with_chrominance(out, c)
    return out
