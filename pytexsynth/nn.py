"""Module twins of the functional ops, for building networks: CircularPad2d, CircularConv2d, StyleSwap, AdaIN."""

from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import nn
import torch.nn.functional as F

from . import ops
from .losses import GramLoss, HistogramLoss
from .ops.adain import check_adain_args
from .ops.checks import normalize_pad
from .ops.style_swap import check_style_swap_args

# GramLoss and HistogramLoss live in pytexsynth.losses (one family with the other losses) and
# are re-exported here, where they were first published.
__all__ = ["AdaIN", "CircularPad2d", "CircularConv2d", "GramLoss", "HistogramLoss", "StyleSwap"]

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
        self.padding = normalize_pad(padding, "CircularPad2d")

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
        self.circular_padding = normalize_pad(pads, "CircularConv2d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(ops.circular_pad2d(x, self.circular_padding), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", circular_padding={self.circular_padding}"


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
        check_style_swap_args(style, style, patch_size, stride, precision, "StyleSwap")
        if style.shape[0] != 1:
            raise ValueError(f"StyleSwap: style must have batch size 1, got {style.shape[0]}")
        self.register_buffer("style", style.detach().clone())
        self.patch_size, self.stride, self.precision = int(patch_size), int(stride), precision

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        return ops.style_swap(content, self.style, self.patch_size, self.stride, self.precision)

    def extra_repr(self) -> str:
        return (f"style_shape={tuple(self.style.shape)}, patch_size={self.patch_size}, stride={self.stride}, "
                f"precision={self.precision!r}")


class AdaIN(nn.Module):
    """Adaptive instance normalisation (see :func:`pytexsynth.ops.adain`).

    Args:
        alpha: default style strength in [0, 1]; ``forward`` may override it per call.
        eps: > 0, added to the variances.

    Example:
        >>> AdaIN(alpha=0.8)(torch.rand(2, 8, 10, 10), torch.rand(2, 8, 6, 6)).shape
        torch.Size([2, 8, 10, 10])
    """

    def __init__(self, alpha: float = 1.0, eps: float = 1e-5):
        super().__init__()
        probe = torch.zeros(1, 1, 1, 1)
        check_adain_args(probe, probe, alpha, eps, "AdaIN")
        self.alpha, self.eps = float(alpha), float(eps)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
        return ops.adain(content, style, self.alpha if alpha is None else alpha, self.eps)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, eps={self.eps}"
