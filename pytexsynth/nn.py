"""Module twins of the functional ops, for building networks."""

from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import nn
import torch.nn.functional as F

from . import ops

__all__ = ["CircularPad2d", "CircularConv2d"]

IntPair = Union[int, Tuple[int, int]]


def _pair(v: IntPair, name: str) -> Tuple[int, int]:
    if isinstance(v, bool) or not isinstance(v, (int, tuple, list)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    if isinstance(v, int):
        return (v, v)
    if len(v) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")
    return (int(v[0]), int(v[1]))


class CircularPad2d(nn.Module):
    """Periodic padding of the last two dims (see :func:`pytexsynth.ops.circular_pad2d`).

    Args:
        padding: one int for all sides, or (left, right, top, bottom).

    Example:
        >>> pad = CircularPad2d(1)
        >>> pad(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 10, 10])
    """

    def __init__(self, padding):
        super().__init__()
        self.padding = ops._normalize_pad(padding, "CircularPad2d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.circular_pad2d(x, self.padding)

    def extra_repr(self) -> str:
        return f"padding={self.padding}"


class CircularConv2d(nn.Conv2d):
    """A Conv2d on a torus: circular padding then a convolution without padding.

    Convolutions of this kind make a generator's output periodic, so its samples tile
    seamlessly (Texture Networks). ``padding="same"`` (the default) keeps the spatial size at
    stride 1, splitting an even total pad as PyTorch's ``"same"`` does (extra on the right/bottom).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation, groups, bias: as nn.Conv2d.
        padding: ``"same"``, one int, or (pad_h, pad_w), applied on both sides.

    Example:
        >>> conv = CircularConv2d(3, 8, 3)
        >>> conv(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Union[str, IntPair] = "same", dilation: IntPair = 1, groups: int = 1,
                 bias: bool = True, device=None, dtype=None):
        kh, kw = _pair(kernel_size, "CircularConv2d: kernel_size")
        dh, dw = _pair(dilation, "CircularConv2d: dilation")
        if padding == "same":
            th, tw = dh * (kh - 1), dw * (kw - 1)
            pads = (tw // 2, tw - tw // 2, th // 2, th - th // 2)
        elif isinstance(padding, str):
            raise ValueError(f"CircularConv2d: padding must be 'same', an int or a pair of ints, got {padding!r}")
        else:
            ph, pw = _pair(padding, "CircularConv2d: padding")
            pads = (pw, pw, ph, ph)
        super().__init__(in_channels, out_channels, (kh, kw), stride=stride, padding=0, dilation=(dh, dw),
                         groups=groups, bias=bias, device=device, dtype=dtype)
        self.circular_padding = ops._normalize_pad(pads, "CircularConv2d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(ops.circular_pad2d(x, self.circular_padding), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", circular_padding={self.circular_padding}"


# ---- gram ----------------------------------------------------------------------------------------

from typing import Dict, List, Mapping, Sequence  # noqa: E402

__all__ += ["GramLoss"]


class GramLoss(nn.Module):
    """Gram (style) loss over several feature layers, targets precomputed once from a style image.

    ``forward(features) = sum_l weight[l] * ops.gram_loss(features[l], target[l])``, computed by one
    :func:`pytexsynth.ops.gram_loss_multi` op for all layers (on the CPU 1.02x with one thread and
    1.2x with two faster than calling ops.gram_loss per layer, forward+backward over VGG-19's
    relu1_1..relu5_1 at 256 and 512 px: benchmarks/results/gram-cpu-xeon-*.md). The targets are
    computed by :func:`pytexsynth.ops.gram` with the same normalize and precision as the loss, so
    the loss is exactly 0 at the style's own features. A style batch of one is broadcast over the
    batch of the features; a larger style batch gives one target per sample. Targets are buffers:
    ``.to(device)`` moves them.

    Args:
        style_features: dict layer name -> (B, C, H, W) tensor, or a list of them (detached).
        weights: one float for all layers, or a dict (name -> weight) / list matching the layers.
            Default 1.0 each.
        normalize, precision: as in :func:`pytexsynth.ops.gram`.

    Example:
        >>> style = {"relu1_1": torch.rand(1, 4, 8, 8), "relu2_1": torch.rand(1, 8, 4, 4)}
        >>> loss = GramLoss(style, weights={"relu1_1": 1.0, "relu2_1": 0.5})
        >>> loss(style).item()
        0.0
    """

    def __init__(self, style_features, weights=1.0, normalize: str = "hw", precision: str = "ieee"):
        super().__init__()
        name = "GramLoss"
        ops._check_choice(normalize, ops._GRAM_NORMALIZE, name, "normalize")
        ops._check_choice(precision, ops._GRAM_PRECISION, name, "precision")
        self.normalize, self.precision = normalize, precision
        if isinstance(style_features, Mapping):
            self.keyed = True
            self.layers: List = list(style_features.keys())
            feats = [style_features[k] for k in self.layers]
        elif isinstance(style_features, Sequence) and not isinstance(style_features, (str, torch.Tensor)):
            self.keyed = False
            self.layers = list(range(len(style_features)))
            feats = list(style_features)
        else:
            raise TypeError(f"{name}: style_features must be a dict of layer -> tensor or a list of tensors, "
                            f"got {type(style_features).__name__}")
        if not feats:
            raise ValueError(f"{name}: style_features is empty")
        self.weights = self._layer_weights(weights, name)
        with torch.no_grad():
            for i, f in enumerate(feats):
                g = ops.gram(f.detach(), normalize, precision)
                self.register_buffer(f"target_{i}", g[0] if g.shape[0] == 1 else g)

    def _layer_weights(self, weights, name: str) -> List[float]:
        if isinstance(weights, Mapping):
            missing = [k for k in self.layers if k not in weights]
            if missing:
                raise ValueError(f"{name}: weights has no entry for layers {missing}")
            values = [weights[k] for k in self.layers]
        elif isinstance(weights, Sequence) and not isinstance(weights, str):
            if len(weights) != len(self.layers):
                raise ValueError(f"{name}: {len(weights)} weights for {len(self.layers)} layers")
            values = list(weights)
        else:
            values = [weights] * len(self.layers)
        return [ops._check_weight(w, name) for w in values]

    def targets(self) -> List[torch.Tensor]:
        return [getattr(self, f"target_{i}") for i in range(len(self.layers))]

    def forward(self, features) -> torch.Tensor:
        if self.keyed:
            if not isinstance(features, Mapping):
                raise TypeError(f"GramLoss: was built from a dict of layers; forward takes a dict, got "
                                f"{type(features).__name__}")
            missing = [k for k in self.layers if k not in features]
            if missing:
                raise KeyError(f"GramLoss: features has no layers {missing}")
            feats = [features[k] for k in self.layers]
        else:
            feats = list(features)
            if len(feats) != len(self.layers):
                raise ValueError(f"GramLoss: expected {len(self.layers)} feature tensors, got {len(feats)}")
        return ops.gram_loss_multi(feats, self.targets(), self.weights, self.normalize, self.precision)

    def extra_repr(self) -> str:
        return f"layers={self.layers}, weights={self.weights}, normalize={self.normalize!r}, precision={self.precision!r}"

# ---- histogram loss --------------------------------------------------------------------------

from typing import Mapping  # noqa: E402

__all__ += ["HistogramLoss"]


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
    """Sum over layers of ``weight[l] * mean((F_l - R(F_l))^2)`` (Risser et al. 2017).

    The style statistics (:func:`pytexsynth.ops.histogram_stats`) are computed once here, kept as
    buffers; each forward runs :func:`pytexsynth.ops.histogram_loss` per layer.

    Args:
        style_features: layer name -> style activations (C, H, W) or (B, C, H, W).
        weights: one weight for every layer, or layer name -> weight (layers left out weigh 1).
        bins: histogram bins per channel, 1 to 4096.

    Example:
        >>> loss_fn = HistogramLoss({"relu1_1": torch.rand(1, 64, 32, 32)}, weights={"relu1_1": 0.5})
        >>> loss_fn({"relu1_1": torch.rand(1, 64, 32, 32)}).shape
        torch.Size([])
    """

    def __init__(self, style_features: Mapping[str, torch.Tensor], weights=1.0, bins: int = 256):
        super().__init__()
        if not isinstance(style_features, Mapping) or len(style_features) == 0:
            raise ValueError("HistogramLoss: style_features must be a non-empty mapping layer name -> tensor")
        if isinstance(weights, Mapping):
            unknown = set(weights) - set(style_features)
            if unknown:
                raise ValueError(f"HistogramLoss: weights name layers without style features: {sorted(unknown)}")
            self.weights = {name: float(weights.get(name, 1.0)) for name in style_features}
        elif isinstance(weights, (int, float)) and not isinstance(weights, bool):
            self.weights = {name: float(weights) for name in style_features}
        else:
            raise TypeError(f"HistogramLoss: weights must be a float or a mapping layer -> float, got {weights!r}")
        self.bins = bins
        self.layers = list(style_features)
        # Module names cannot hold '.', so layers are stored by position.
        self.targets = nn.ModuleList(
            _LayerHistogram(ops.histogram_stats(style_features[name].detach(), bins)) for name in self.layers
        )

    def stats(self, layer: str) -> ops.HistogramStats:
        return self.targets[self.layers.index(layer)].stats()

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [name for name in self.layers if name not in features]
        if missing:
            raise KeyError(f"HistogramLoss: features lack the layers {missing}")
        total = None
        for name, target in zip(self.layers, self.targets):
            loss = ops.histogram_loss(features[name], target.stats(), self.weights[name])
            total = loss if total is None else total + loss
        return total

    def extra_repr(self) -> str:
        return f"layers={self.layers}, weights={self.weights}, bins={self.bins}"
# ---- style_swap ----
__all__ += ["StyleSwap"]


class StyleSwap(nn.Module):
    """Style-swap against fixed style features (see :func:`pytexsynth.ops.style_swap`).

    The style features are a buffer (they follow ``.to()`` and the state dict), so one module
    swaps any number of content feature maps against the same style.

    Args:
        style: (1, C, Hs, Ws) or (C, Hs, Ws) style features (e.g. VGG relu3_1).
        patch_size, stride, precision: as in :func:`pytexsynth.ops.style_swap`.

    Example:
        >>> swap = StyleSwap(torch.rand(1, 8, 12, 12))
        >>> swap(torch.rand(2, 8, 10, 10)).shape
        torch.Size([2, 8, 10, 10])
    """

    def __init__(self, style: torch.Tensor, patch_size: int = 3, stride: int = 1, precision: str = "ieee"):
        super().__init__()
        if isinstance(style, torch.Tensor) and style.dim() == 3:
            style = style.unsqueeze(0)
        ops._check_style_swap_args(style, style, patch_size, stride, precision, "StyleSwap")
        if style.shape[0] != 1:
            raise ValueError(f"StyleSwap: style must have batch size 1, got {style.shape[0]}")
        self.register_buffer("style", style.detach().clone())
        self.patch_size, self.stride, self.precision = int(patch_size), int(stride), precision

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return ops.style_swap(content, self.style, self.patch_size, self.stride, self.precision)

    def extra_repr(self) -> str:
        return (f"style_shape={tuple(self.style.shape)}, patch_size={self.patch_size}, stride={self.stride}, "
                f"precision={self.precision!r}")
