"""Loss terms of synthesis and of the trainers: one family of modules over the fused ops.

- :class:`ContentLoss`: feature MSE against a content image's features.
- :class:`GramLoss`: Gatys' Gram loss over several layers, one style image or several blended,
  optionally masked ("painting by numbers"); every forward is ONE
  :func:`pytexsynth.ops.gram_loss_multi` call for all layers.
- :class:`HistogramLoss`: Risser et al.'s histogram loss (:func:`pytexsynth.ops.histogram_loss`).
- :func:`total_variation` / :class:`TotalVariationLoss`: smoothness prior (periodic when tileable).
- :class:`GramStyleLoss`, :class:`HistogramStyleLoss`: the same two losses with the defaults the
  synthesis engine and the trainers use (per-layer ``"auto"`` weights, float32), by those names.

Every module maps features (a dict layer -> (B, C, H, W), from :class:`pytexsynth.models.VGG19`,
or a list by position) to a scalar tensor; none synchronises with the device. Style targets are
buffers: ``.to(device)`` moves them and ``state_dict()`` saves them.
"""

from __future__ import annotations

import math

from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from . import ops
from .loss_args import LayerWeights, blend_weights, per_layer_weights, select_features, style_layers
from .masks import check_masks, label_masks, masked_features, masks_at, region_cells
from .ops.fixed_order import fixed_order_mean, fixed_order_mse
from .ops.gram import check_gram_options

__all__ = ["ContentLoss", "GramLoss", "HistogramLoss", "TotalVariationLoss", "GramStyleLoss", "HistogramStyleLoss",
           "content_loss", "total_variation", "label_masks", "DEFAULT_STYLE_LAYERS", "DEFAULT_CONTENT_LAYERS",
           "DEFAULT_HISTOGRAM_LAYERS", "HISTOGRAM_MODES"]

# The layers of Gatys et al. (style, content) and of Risser et al. (histograms).
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_HISTOGRAM_LAYERS = ("relu1_1", "relu4_1")
HISTOGRAM_MODES = ("interpolated", "exact")

Features = Union[Mapping[str, torch.Tensor], Sequence[torch.Tensor]]


def content_loss(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((x - target)**2)`` in fp32 (the same value for every thread count)."""
    return fixed_order_mse(x.float(), target.float())


def total_variation(img: torch.Tensor, circular: bool = False) -> torch.Tensor:
    """Mean squared difference of horizontally and vertically adjacent pixels (summed over both).

    With ``circular=True`` the last column neighbours the first (and the last row the first),
    so a tileable image pays no penalty at its wrap-around seam that a non-tileable one would.
    """
    if img.dim() != 4:
        raise ValueError(f"total_variation: img must be (N, C, H, W), got shape {tuple(img.shape)}")
    if circular:
        dx = img - img.roll(1, dims=3)
        dy = img - img.roll(1, dims=2)
    else:
        dx = img[..., :, 1:] - img[..., :, :-1]
        dy = img[..., 1:, :] - img[..., :-1, :]
    return fixed_order_mean(dx.square()) + fixed_order_mean(dy.square())


class TotalVariationLoss(nn.Module):
    """Module form of :func:`total_variation` (acts on the image, not on features)."""

    def __init__(self, circular: bool = False):
        super().__init__()
        self.circular = circular

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return total_variation(img, self.circular)


class ContentLoss(nn.Module):
    """Feature MSE against the content image's features, summed over layers with weights.

    Args:
        targets: layer -> content features (precomputed once, detached).
        layer_weights: None (equal, summing to 1), a float, a list, a dict, or ``"auto"``
            (1 / (L * mean(T_l**2)): each layer's term the squared relative error
            ``||F - T||^2 / ||T||^2``, averaged over the layers).
    """

    def __init__(self, targets: Mapping[str, torch.Tensor], layer_weights: LayerWeights = None):
        super().__init__()
        self.layers = list(targets)
        if isinstance(layer_weights, str) and layer_weights == "auto":
            energy = {n: float(fixed_order_mean(t.float().square())) for n, t in targets.items()}
            bad = [n for n, e in energy.items() if not math.isfinite(e)]
            if bad:
                raise FloatingPointError(f"ContentLoss: the content features at {', '.join(bad)} are not finite; "
                                         "check that the images are finite")
            layer_weights = {n: 1.0 / (len(self.layers) * max(e, 1e-12)) for n, e in energy.items()}
        self.weights = per_layer_weights(self.layers, layer_weights, "ContentLoss", "layer_weights", kind="content")
        for i, n in enumerate(self.layers):
            self.register_buffer(f"target_{i}", targets[n].detach().float())

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for i, n in enumerate(self.layers):
            term = self.weights[n] * content_loss(feats[n], getattr(self, f"target_{i}"))
            total = term if total is None else total + term
        return total


class GramLoss(nn.Module):
    """Gram (style) loss ``sum_l w_l * mean((gram(F_l) - T_l)**2)``, one fused op for all layers.

    The targets T_l are computed once here by :func:`pytexsynth.ops.gram` with the loss's own
    normalize and precision, so the loss is exactly 0 at the style's features; each forward is
    one :func:`pytexsynth.ops.gram_loss_multi` call (on the CPU 1.02x with one thread and 1.2x
    with two faster than one ``gram_loss`` per layer: benchmarks/results/gram-cpu-xeon-*.md).
    A style batch of one is broadcast over the batch of the features; a larger one gives one
    target per sample.

    Several style images are blended by averaging their Gram matrices with the blend weights:
    for weights summing to 1 this has the gradient of the weighted sum of one loss per style,
    at the cost of one. With masks, the output's label region k is matched to the style's region
    k: features are multiplied by the (resized) mask and rescaled by sqrt(H*W / area), so each
    region's Gram matrix is its own mean, and the per-region losses add up.

    Args:
        style_features: a dict layer -> (B, C, H, W) style features, a list of such dicts (one
            per style image, blended), or a list of tensors (layers by position).
        weights: per layer: one float for all (default 1.0), a list, a dict (every layer),
            None (equal, summing to 1) or ``"auto"`` (1 / (L * mean(T_l**2)): each layer's
            term a relative error, so no layer dominates by scale).
        normalize, precision: as in :func:`pytexsynth.ops.gram`.
        blend: weights of several style images (default equal).
        output_masks: (1, K, H, W) one-hot/soft masks of the output image, or None.
        style_masks: one (1, K, Hs, Ws) mask per style image (required with output_masks).
        dtype: None keeps the features' dtype; ``torch.float32`` casts style and output
            features to it first (what synthesis does under bf16 autocast).
        targets: instead of ``style_features``: a dict layer -> (C, C) target Gram matrix, made
            with this loss's normalize and precision (what tiled synthesis computes tile by tile).

    Example:
        >>> style = {"relu1_1": torch.rand(1, 4, 8, 8), "relu2_1": torch.rand(1, 8, 4, 4)}
        >>> loss = GramLoss(style, weights={"relu1_1": 1.0, "relu2_1": 0.5})
        >>> loss(style).item()
        0.0
    """

    weights_arg = "weights"  # the argument's name in error messages

    def __init__(self, style_features, weights: LayerWeights = 1.0, normalize: str = "hw", precision: str = "ieee",
                 *, blend: Optional[Sequence[float]] = None, output_masks: Optional[torch.Tensor] = None,
                 style_masks: Optional[Sequence[torch.Tensor]] = None, dtype: Optional[torch.dtype] = None,
                 targets: Optional[Mapping[str, torch.Tensor]] = None):
        super().__init__()
        what = type(self).__name__
        check_gram_options(normalize, precision, what)
        self.normalize, self.precision, self.dtype = normalize, precision, dtype
        if targets is not None:
            self._set_targets(targets, style_features, output_masks, what)
        else:
            self.keyed, self.layers, styles = style_layers(style_features, what)
            blend = blend_weights(blend, len(styles), what)
            self.masked = output_masks is not None
            if self.masked:
                check_masks(output_masks, style_masks, len(styles), what)
                self.register_buffer("output_masks", output_masks.float())
            with torch.no_grad():
                for i in range(len(self.layers)):
                    self.register_buffer(f"target_{i}", self._target([s[i] for s in styles], blend, style_masks))
        if isinstance(weights, str) and weights == "auto":
            self.weights = {n: 1.0 / (len(self.layers) * max(float(fixed_order_mean(t.square())), 1e-12))
                            for n, t in zip(self.layers, self.targets())}
        else:
            self.weights = per_layer_weights(self.layers, weights, what, self.weights_arg)

    def _set_targets(self, targets: Mapping[str, torch.Tensor], style_features, output_masks, what: str) -> None:
        """The Gram matrices given themselves (computed elsewhere, e.g. tile by tile)."""
        if style_features is not None or output_masks is not None:
            raise ValueError(f"{what}: give style_features or targets, not both (targets take no masks)")
        if not isinstance(targets, Mapping) or not targets:
            raise TypeError(f"{what}: targets must be a non-empty dict layer -> (C, C) Gram matrix")
        self.keyed, self.layers, self.masked = True, list(targets), False
        for i, n in enumerate(self.layers):
            t = targets[n].detach()
            if t.dim() != 2 or t.shape[0] != t.shape[1]:
                raise ValueError(f"{what}: targets[{n!r}] must be a (C, C) Gram matrix, got shape {tuple(t.shape)}")
            self.register_buffer(f"target_{i}", t if self.dtype is None else t.to(self.dtype))

    def _target(self, feats: List[torch.Tensor], blend: List[float], style_masks) -> torch.Tensor:
        target = None
        for w, f, smask in zip(blend, feats, style_masks or [None] * len(feats)):
            f = f.detach() if self.dtype is None else f.detach().to(self.dtype)
            if self.masked:
                f = masked_features(f, masks_at(smask.to(f.device).float(), f.shape[-2:]))  # (K, C, H, W)
            g = w * ops.gram(f, self.normalize, self.precision)  # w is 1.0 for one style: exact
            target = g if target is None else target + g
        return target[0] if target.shape[0] == 1 else target

    def targets(self) -> List[torch.Tensor]:
        return [getattr(self, f"target_{i}") for i in range(len(self.layers))]

    def forward(self, features: Features) -> torch.Tensor:
        feats = select_features(features, self.layers, self.keyed, type(self).__name__)
        if self.dtype is not None:
            feats = [f.to(self.dtype) for f in feats]
        weights = [self.weights[n] for n in self.layers]
        if self.masked:
            feats = [masked_features(f, masks_at(self.output_masks, f.shape[-2:])) for f in feats]
            # gram_loss averages over K*C*C: scale by K so regions add up rather than average.
            weights = [w * f.shape[0] for w, f in zip(weights, feats)]
        return ops.gram_loss_multi(feats, self.targets(), weights, self.normalize, self.precision)

    def extra_repr(self) -> str:
        return (f"layers={self.layers}, weights={self.weights}, normalize={self.normalize!r}, "
                f"precision={self.precision!r}" + (", masked" if self.masked else ""))


class _LayerHistogram(nn.Module):
    """The style statistics of one layer, as buffers (so they follow .to() and state_dict)."""

    def __init__(self, stats: ops.HistogramStats):
        super().__init__()
        self.register_buffer("lo", stats.lo)
        self.register_buffer("hi", stats.hi)
        self.register_buffer("cdf", stats.cdf)

    def stats(self) -> ops.HistogramStats:
        return ops.HistogramStats(self.lo, self.hi, self.cdf)


class HistogramLoss(nn.Module):
    """Histogram loss (Risser et al. 2017) over layers: ``sum_l w_l * mean((F_l - R(F_l))^2)``.

    The style statistics (:func:`pytexsynth.ops.histogram_stats`) are computed once here and
    kept as buffers; each forward runs :func:`pytexsynth.ops.histogram_loss` per layer (and per
    style image: several styles contribute one term each, weighted by the blend weights).

    With masks ("painting by numbers"), each cell of a layer belongs to the label that covers
    most of it; the output's cells of label k are matched to the histogram of the style's cells
    of label k, and the per-region terms are weighted by their share of the cells, so the loss
    stays a mean over all cells (with one label it equals the unmasked loss). An output region
    whose label has no style cells at a layer adds nothing there.

    Args:
        style_features: a dict layer -> style activations (C, H, W) or (B, C, H, W), a list of
            such dicts (one per style image), or a list of tensors (layers by position).
        weights: per layer: one float for all (default 1.0), a list, a dict (layers it leaves
            out weigh 1), None (equal, summing to 1) or ``"auto"`` (1 / (L * mean(F_style**2)),
            the energy averaged over the styles).
        bins: histogram bins per channel, 1 to 4096.
        mode: how R(F) is found: ``"interpolated"`` (the fused kernel, default) or ``"exact"``
            (sort-based ranks, :func:`pytexsynth.ops.histogram_match`'s exact mode; slower).
        blend, output_masks, style_masks, dtype: as in :class:`GramLoss`.

    Example:
        >>> loss_fn = HistogramLoss({"relu1_1": torch.rand(1, 64, 32, 32)}, weights={"relu1_1": 0.5})
        >>> loss_fn({"relu1_1": torch.rand(1, 64, 32, 32)}).shape
        torch.Size([])
    """

    weights_arg = "weights"
    missing_layer_weight: Optional[float] = 1.0  # of a layer a weights mapping leaves out

    def __init__(self, style_features, weights: LayerWeights = 1.0, bins: int = 256, *,
                 blend: Optional[Sequence[float]] = None, output_masks: Optional[torch.Tensor] = None,
                 style_masks: Optional[Sequence[torch.Tensor]] = None, dtype: Optional[torch.dtype] = None,
                 mode: str = "interpolated"):
        super().__init__()
        what = type(self).__name__
        if mode not in HISTOGRAM_MODES:
            raise ValueError(f"{what}: mode must be 'interpolated' or 'exact', got {mode!r}")
        self.mode = mode
        self.keyed, self.layers, styles = style_layers(style_features, what)
        self.bins, self.dtype = bins, dtype
        styles = [[f.detach() if dtype is None else f.detach().to(dtype) for f in s] for s in styles]
        if isinstance(weights, str) and weights == "auto":
            energy = [sum(float(fixed_order_mean(s[i].float().square())) for s in styles) / len(styles)
                      for i in range(len(self.layers))]
            self.weights = {n: 1.0 / (len(self.layers) * max(e, 1e-12)) for n, e in zip(self.layers, energy)}
        else:
            self.weights = per_layer_weights(self.layers, weights, what, self.weights_arg,
                                             missing=self.missing_layer_weight)
        self.blend = blend_weights(blend, len(styles), what)
        self.masked = output_masks is not None
        if not self.masked:
            # Module names cannot hold '.', so the statistics are stored by position (style, layer).
            self.targets = nn.ModuleList(_LayerHistogram(ops.histogram_stats(f, bins)) for s in styles for f in s)
            return
        check_masks(output_masks, style_masks, len(styles), what)
        self.register_buffer("output_masks", output_masks.float())
        self._regions: Dict[tuple, list] = {}  # output cell indices per label, per layer size
        # (style, layer, label) -> statistics; absent where the style lacks the label at that layer
        self.region_targets = nn.ModuleDict()
        for s, (feats, smask) in enumerate(zip(styles, style_masks)):
            for i, f in enumerate(feats):
                flat = f.flatten(2)
                for k, idx in enumerate(region_cells(smask.to(f.device), f.shape[-2:])):
                    if idx.numel():
                        stats = ops.histogram_stats(flat[:, :, idx].unsqueeze(2), bins=bins)
                        self.region_targets[f"{s}_{i}_{k}"] = _LayerHistogram(stats)

    def stats(self, layer, style: int = 0) -> ops.HistogramStats:
        """The statistics of one layer of one style image (unmasked losses)."""
        return self.targets[style * len(self.layers) + self.layers.index(layer)].stats()

    def forward(self, features: Features) -> torch.Tensor:
        feats = select_features(features, self.layers, self.keyed, type(self).__name__)
        if self.dtype is not None:
            feats = [f.to(self.dtype) for f in feats]
        total = None
        for s, b in enumerate(self.blend):
            for i, (n, f) in enumerate(zip(self.layers, feats)):
                for term in self._layer_terms(s, i, f, b * self.weights[n]):
                    total = term if total is None else total + term
        if total is None:  # no output region has style cells of its label at any layer: zero, still in the graph
            total = feats[0].float().sum() * 0.0
        return total

    def _layer_terms(self, s: int, i: int, f: torch.Tensor, weight: float):
        if not self.masked:
            yield self._loss(f, self.targets[s * len(self.layers) + i].stats(), weight)
            return
        size = tuple(f.shape[-2:])
        if size not in self._regions:
            self._regions[size] = region_cells(self.output_masks.to(f.device), size)
        flat = f.flatten(2)
        cells = flat.shape[-1]
        for k, idx in enumerate(self._regions[size]):
            key = f"{s}_{i}_{k}"
            if key in self.region_targets and idx.numel():
                yield self._loss(flat[:, :, idx].unsqueeze(2), self.region_targets[key].stats(),
                                 weight * idx.numel() / cells)

    def _loss(self, f: torch.Tensor, stats: ops.HistogramStats, weight: float) -> torch.Tensor:
        if self.mode == "interpolated":
            return ops.histogram_loss(f, stats, weight=weight)
        return weight * fixed_order_mse(f, ops.histogram_match(f, stats, "exact"))  # R held constant: detached

    def extra_repr(self) -> str:
        return (f"layers={self.layers}, weights={self.weights}, bins={self.bins}, mode={self.mode!r}"
                + (", masked" if self.masked else ""))


class GramStyleLoss(GramLoss):
    """:class:`GramLoss` with the synthesis engine's defaults: several style images (a list of
    feature dicts, blended), per-layer ``"auto"`` weights, features in float32.

    Args:
        style_feats: list of layer -> style features, one dict per style image.
        blend: weights of the styles (default equal).
        layer_weights: ``"auto"`` (default), None (equal, summing to 1), a float, a list or a dict.
        output_masks, style_masks, targets: as in :class:`GramLoss`.
    """

    weights_arg = "layer_weights"

    def __init__(self, style_feats: Optional[Sequence[Mapping[str, torch.Tensor]]], blend: Optional[Sequence[float]] = None,
                 layer_weights: LayerWeights = "auto", output_masks: Optional[torch.Tensor] = None,
                 style_masks: Optional[Sequence[torch.Tensor]] = None,
                 targets: Optional[Mapping[str, torch.Tensor]] = None):
        super().__init__(None if style_feats is None else list(style_feats), layer_weights, blend=blend,
                         output_masks=output_masks, style_masks=style_masks, dtype=torch.float32, targets=targets)


class HistogramStyleLoss(HistogramLoss):
    """:class:`HistogramLoss` with the synthesis engine's defaults (as :class:`GramStyleLoss`;
    a ``layer_weights`` mapping must name every layer).

    Args:
        style_feats, blend, layer_weights: as in :class:`GramStyleLoss`.
        bins, output_masks, style_masks, mode: as in :class:`HistogramLoss`.
    """

    weights_arg = "layer_weights"
    missing_layer_weight = None

    def __init__(self, style_feats: Sequence[Mapping[str, torch.Tensor]], blend: Optional[Sequence[float]] = None,
                 layer_weights: LayerWeights = "auto", bins: int = 256, output_masks: Optional[torch.Tensor] = None,
                 style_masks: Optional[Sequence[torch.Tensor]] = None, mode: str = "interpolated"):
        super().__init__(list(style_feats), layer_weights, bins, blend=blend, output_masks=output_masks,
                         style_masks=style_masks, dtype=torch.float32, mode=mode)
