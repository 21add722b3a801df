"""Loss terms of optimisation-based synthesis, as modules over the fused ops.

- :class:`ContentLoss`: feature MSE against a content image's features.
- :class:`GramStyleLoss`: Gatys' Gram loss (``ops.gram_loss``), several layers, optionally
  masked ("painting by numbers": each label region of the output matched to the same label's
  region of the style).
- :class:`HistogramStyleLoss`: Risser et al.'s histogram loss (``ops.histogram_loss``).
- :func:`total_variation` / :class:`TotalVariationLoss`: smoothness prior (periodic when tileable).

Every module maps a feature dict (layer -> (1, C, H, W), from :class:`pytexsynth.models.VGG19`)
to a scalar tensor; none synchronises with the device.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Union

import torch
from torch import nn
import torch.nn.functional as F

from . import ops

__all__ = ["ContentLoss", "GramStyleLoss", "HistogramStyleLoss", "TotalVariationLoss", "content_loss",
           "total_variation", "label_masks"]

Features = Mapping[str, torch.Tensor]
LayerWeights = Union[None, float, Sequence[float], Mapping[str, float]]


def _layer_weights(layers: Sequence[str], weights: LayerWeights, what: str) -> Dict[str, float]:
    if weights is None:
        return {n: 1.0 / len(layers) for n in layers}
    if isinstance(weights, (int, float)):
        return {n: float(weights) for n in layers}
    if isinstance(weights, Mapping):
        missing = [n for n in layers if n not in weights]
        if missing:
            raise ValueError(f"{what}: layer_weights lacks layers {missing}")
        return {n: float(weights[n]) for n in layers}
    weights = list(weights)
    if len(weights) != len(layers):
        raise ValueError(f"{what}: {len(weights)} layer_weights for {len(layers)} layers {list(layers)}")
    return {n: float(w) for n, w in zip(layers, weights)}


def content_loss(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((x - target)**2)`` in fp32."""
    return F.mse_loss(x.float(), target.float())


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
    return dx.square().mean() + dy.square().mean()


def label_masks(labels: torch.Tensor, num_labels: Optional[int] = None) -> torch.Tensor:
    """A label map (H, W) or (1, H, W) or (1, 1, H, W) of ints -> one-hot masks (1, K, H, W) float."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"label_masks: labels must be an integer tensor, got {labels.dtype}")
    lab = labels.reshape(labels.shape[-2:]).long()
    if lab.numel() and int(lab.min()) < 0:
        raise ValueError("label_masks: labels must be >= 0")
    k = int(lab.max()) + 1 if num_labels is None else num_labels
    return F.one_hot(lab, k).permute(2, 0, 1).unsqueeze(0).float()


def _masks_at(masks: torch.Tensor, size) -> torch.Tensor:
    """Soft masks at a layer's resolution: the fraction of each cell covered by each label."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.adaptive_avg_pool2d(masks, size)


class ContentLoss(nn.Module):
    """Feature MSE against the content image's features, summed over layers with weights.

    Args:
        targets: layer -> content features (precomputed once, detached).
        layer_weights: None (equal, summing to 1), a float, a list or a dict.
    """

    def __init__(self, targets: Features, layer_weights: LayerWeights = None):
        super().__init__()
        self.layers = list(targets)
        self.weights = _layer_weights(self.layers, layer_weights, "ContentLoss")
        for i, n in enumerate(self.layers):
            self.register_buffer(f"target_{i}", targets[n].detach().float())

    def forward(self, feats: Features) -> torch.Tensor:
        total = None
        for i, n in enumerate(self.layers):
            term = self.weights[n] * content_loss(feats[n], getattr(self, f"target_{i}"))
            total = term if total is None else total + term
        return total


class GramStyleLoss(nn.Module):
    """Gatys' style loss: ``sum_l w_l * mean((gram(F_l) - G_l)**2)`` with the fused ``ops.gram_loss``.

    Several styles are blended by averaging their Gram matrices with the blend weights: for
    weights summing to 1 this has the same gradient as the weighted sum of one loss per style,
    at the cost of one.

    With masks, the output's label region k is matched to the style's region k: features are
    multiplied by the (resized) mask and rescaled by sqrt(H*W / area), so each region's Gram
    matrix is its own mean, and the per-region losses are summed.

    Args:
        style_feats: list of layer -> style features, one dict per style image.
        blend: weights of the styles (default equal).
        layer_weights: ``"auto"`` (default: 1 / (L * mean(G_l**2)), so each layer's term is a
            relative error and no layer dominates by scale), None (equal, summing to 1), a float,
            a list or a dict.
        output_masks: (1, K, H, W) one-hot/soft masks of the output image, or None.
        style_masks: one (1, K, Hs, Ws) mask per style image (required with output_masks).
    """

    def __init__(self, style_feats: Sequence[Features], blend: Optional[Sequence[float]] = None,
                 layer_weights: LayerWeights = "auto", output_masks: Optional[torch.Tensor] = None,
                 style_masks: Optional[Sequence[torch.Tensor]] = None):
        super().__init__()
        if not style_feats:
            raise ValueError("GramStyleLoss: needs at least one style")
        self.layers = list(style_feats[0])
        auto = isinstance(layer_weights, str) and layer_weights == "auto"
        self.weights = _layer_weights(self.layers, None if auto else layer_weights, "GramStyleLoss")
        blend = _blend_weights(blend, len(style_feats), "GramStyleLoss")
        self.masked = output_masks is not None
        if self.masked:
            _check_masks(output_masks, style_masks, len(style_feats), "GramStyleLoss")
            self.register_buffer("output_masks", output_masks.float())
        for i, n in enumerate(self.layers):
            target = None
            for w, feats, smask in zip(blend, style_feats, style_masks or [None] * len(style_feats)):
                f = feats[n].detach().float()
                if self.masked:
                    f = _masked_features(f, _masks_at(smask.to(f.device).float(), f.shape[-2:]))  # (K, C, H, W)
                g = w * ops.gram(f, normalize="hw")
                target = g if target is None else target + g
            self.register_buffer(f"target_{i}", target)
            if auto:  # relative error per layer: each layer counts alike whatever its scale
                self.weights[n] = 1.0 / (len(self.layers) * max(float(target.square().mean()), 1e-12))

    def forward(self, feats: Features) -> torch.Tensor:
        total = None
        for i, n in enumerate(self.layers):
            f = feats[n].float()
            if self.masked:
                f = _masked_features(f, _masks_at(self.output_masks, f.shape[-2:]))
                # gram_loss averages over K*C*C: scale by K so regions add up rather than average.
                term = ops.gram_loss(f, getattr(self, f"target_{i}"), weight=self.weights[n] * f.shape[0])
            else:
                term = ops.gram_loss(f, getattr(self, f"target_{i}"), weight=self.weights[n])
            total = term if total is None else total + term
        return total


def _masked_features(f: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) features and (1, K, H, W) masks -> (K, C, H, W), region k scaled so that its
    ``gram(normalize="hw")`` is the mean over the region only."""
    hw = f.shape[-2] * f.shape[-1]
    area = masks.sum(dim=(-2, -1)).clamp_min(1e-6)  # (1, K)
    scale = (hw / area).sqrt().view(-1, 1, 1, 1)
    return f * masks.transpose(0, 1) * scale


def _blend_weights(blend: Optional[Sequence[float]], n: int, what: str):
    if blend is None:
        return [1.0 / n] * n
    blend = [float(b) for b in blend]
    if len(blend) != n:
        raise ValueError(f"{what}: {len(blend)} blend weights for {n} styles")
    if any(b < 0 for b in blend) or sum(blend) <= 0:
        raise ValueError(f"{what}: blend weights must be >= 0 with a positive sum, got {blend}")
    s = sum(blend)
    return [b / s for b in blend]


class HistogramStyleLoss(nn.Module):
    """Risser et al.'s histogram loss over several layers: ``sum_l w_l * mean((F_l - R(F_l))**2)``.

    Several styles contribute one term each, weighted by the blend weights.

    With masks ("painting by numbers"), each cell of a layer belongs to the label that covers
    most of it; the output's cells of label k are matched to the histogram of the style's cells
    of label k, and the per-region terms are weighted by their share of the cells, so the loss
    stays a mean over all cells (with one label it equals the unmasked loss). An output region
    whose label has no style cells at a layer adds nothing there.

    Args:
        style_feats: list of layer -> style features, one dict per style image.
        blend: weights of the styles (default equal).
        layer_weights: ``"auto"`` (default: 1 / (L * mean(F_style**2))), None (equal, summing
            to 1), a float, a list or a dict.
        bins: histogram bins.
        output_masks: (1, K, H, W) one-hot/soft masks of the output image, or None.
        style_masks: one (1, K, Hs, Ws) mask per style image (required with output_masks).
    """

    def __init__(self, style_feats: Sequence[Features], blend: Optional[Sequence[float]] = None,
                 layer_weights: LayerWeights = "auto", bins: int = 256, output_masks: Optional[torch.Tensor] = None,
                 style_masks: Optional[Sequence[torch.Tensor]] = None):
        super().__init__()
        if not style_feats:
            raise ValueError("HistogramStyleLoss: needs at least one style")
        self.layers = list(style_feats[0])
        auto = isinstance(layer_weights, str) and layer_weights == "auto"
        self.weights = _layer_weights(self.layers, None if auto else layer_weights, "HistogramStyleLoss")
        if auto:  # relative to the style activations' energy, averaged over the styles
            for n in self.layers:
                energy = sum(float(f[n].float().square().mean()) for f in style_feats) / len(style_feats)
                self.weights[n] = 1.0 / (len(self.layers) * max(energy, 1e-12))
        self.blend = _blend_weights(blend, len(style_feats), "HistogramStyleLoss")
        self.masked = output_masks is not None
        if not self.masked:
            self.stats = [{n: ops.histogram_stats(feats[n].detach().float(), bins=bins) for n in self.layers}
                          for feats in style_feats]
            return
        _check_masks(output_masks, style_masks, len(style_feats), "HistogramStyleLoss")
        self.register_buffer("output_masks", output_masks.float())
        self._regions: Dict[tuple, list] = {}  # output cell indices per label, per layer size
        # per style, per layer: one HistogramStats per label (None: the style lacks that label there)
        self.stats = []
        for feats, smask in zip(style_feats, style_masks):
            per_layer = {}
            for n in self.layers:
                f = feats[n].detach().float()
                flat = f.flatten(2)
                per_layer[n] = [ops.histogram_stats(flat[:, :, idx].unsqueeze(2), bins=bins) if idx.numel() else None
                                for idx in _region_cells(smask.to(f.device), f.shape[-2:])]
            self.stats.append(per_layer)

    def forward(self, feats: Features) -> torch.Tensor:
        total = None
        for b, stats in zip(self.blend, self.stats):
            for n in self.layers:
                f = feats[n].float()
                if not self.masked:
                    term = ops.histogram_loss(f, stats[n], weight=b * self.weights[n])
                    total = term if total is None else total + term
                    continue
                size = tuple(f.shape[-2:])
                if size not in self._regions:
                    self._regions[size] = _region_cells(self.output_masks.to(f.device), size)
                flat = f.flatten(2)
                cells = flat.shape[-1]
                for idx, st in zip(self._regions[size], stats[n]):
                    if st is None or idx.numel() == 0:
                        continue
                    term = ops.histogram_loss(flat[:, :, idx].unsqueeze(2), st,
                                              weight=b * self.weights[n] * idx.numel() / cells)
                    total = term if total is None else total + term
        if total is None:  # no output region has style cells of its label at any layer: zero, still in the graph
            total = feats[self.layers[0]].float().sum() * 0.0
        return total


def _check_masks(output_masks, style_masks, n_styles: int, what: str) -> None:
    if style_masks is None or len(style_masks) != n_styles:
        raise ValueError(f"{what}: output_masks needs one style mask per style image")
    if any(m.shape[1] != output_masks.shape[1] for m in style_masks):
        raise ValueError(
            f"{what}: output and style masks must have the same number of labels, got "
            f"{output_masks.shape[1]} and {[m.shape[1] for m in style_masks]}")


def _region_cells(masks: torch.Tensor, size) -> list:
    """(1, K, H, W) masks -> per label, the flat indices of a (h, w) layer's cells that the label
    covers most of (each cell in exactly one region)."""
    label = _masks_at(masks.float(), size)[0].argmax(0).flatten()
    return [torch.nonzero(label == k).flatten() for k in range(masks.shape[1])]


class TotalVariationLoss(nn.Module):
    """Module form of :func:`total_variation` (acts on the image, not on features)."""

    def __init__(self, circular: bool = False):
        super().__init__()
        self.circular = circular

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return total_variation(img, self.circular)
