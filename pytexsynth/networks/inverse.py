"""The inverse network of style-swap (Chen & Schmidt 2016): VGG-19 features back to an image.

:class:`InverseNet` mirrors VGG-19 from the chosen layer back to the pixels: every VGG
convolution (cin -> cout) becomes a 3x3 convolution cout -> cin followed by a ReLU, every max
pool a x2 nearest-neighbour upsampling, in reverse order; the last convolution (the mirror of
conv1_1) makes RGB with no activation (the caller clamps). Reflection padding keeps image borders
free of the dark frame zero padding leaves; instance norm after each hidden convolution is an
option (the paper's choice; off by default: normalising every channel of every image throws away
the global colour and contrast the features carry, which the decoder then has to guess).

It is trained by :func:`pytexsynth.training.train_inverse_network` to satisfy
``VGG(f(H)) ~ H`` for features H of content images, style images and their style-swaps.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn
import torch.nn.functional as F

from ..models.vgg import LAYER_NAMES, layer_channels
from .base import SavableNetwork, register_network

__all__ = ["InverseNet", "INVERSE_LAYERS", "vgg_path"]

# layers an inverse network can start from: the ReLUs (what style-swap matches)
INVERSE_LAYERS = tuple(n for n in LAYER_NAMES if n.startswith("relu"))
_NORMS = ("none", "instance")


def vgg_path(layer: str) -> List[tuple]:
    """VGG-19's layers up to ``layer``: ("conv", cin, cout) and ("pool",) entries, in order."""
    out: List[tuple] = []
    cin = 3
    for name in LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]:
        if name.startswith("conv"):
            cout = layer_channels(name)
            out.append(("conv", cin, cout))
            cin = cout
        elif name.startswith("pool"):
            out.append(("pool",))
    return out


class _Upsample(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


@register_network
class InverseNet(SavableNetwork):
    """Decoder from VGG-19 features at ``layer`` to an RGB image (the mirror of VGG-19).

    Args:
        layer: the VGG-19 ReLU layer it inverts (``"relu3_1"``, the paper's; any of
            :data:`INVERSE_LAYERS`).
        norm: ``"none"`` or ``"instance"`` (instance norm after every hidden convolution).
        input_scale: the features are multiplied by this first. VGG's activations (Caffe's 0..255
            scale) have an RMS of a few hundred; bringing them near 1 lets the default
            initialisation and Adam work from the first step (measured: relative feature error
            0.39 vs 0.89 after 80 steps at 64 px).

    The input is (N, C, h, w) features of that layer (C = its channel count); the output is
    (N, 3, h * 2**p, w * 2**p) (p = the number of pools before the layer), not clamped.

    Example:
        >>> net = InverseNet("relu2_1")
        >>> net(torch.rand(1, 128, 8, 8)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(self, layer: str = "relu3_1", norm: str = "none", input_scale: float = 1 / 400):
        if layer not in INVERSE_LAYERS:
            raise ValueError(f"InverseNet: layer must be one of {', '.join(INVERSE_LAYERS)}, got {layer!r}")
        if norm not in _NORMS:
            raise ValueError(f"InverseNet: norm must be one of {_NORMS}, got {norm!r}")
        if isinstance(input_scale, bool) or not isinstance(input_scale, (int, float)) or not input_scale > 0:
            raise ValueError(f"InverseNet: input_scale must be a positive number, got {input_scale!r}")
        super().__init__(layer=layer, norm=norm, input_scale=float(input_scale))
        self.layer, self.norm, self.input_scale = layer, norm, float(input_scale)
        path = vgg_path(layer)
        self.in_channels = path[-1][2]
        self.factor = 2 ** sum(1 for p in path if p[0] == "pool")
        mods: List[nn.Module] = []
        for i, entry in enumerate(reversed(path)):
            if entry[0] == "pool":
                mods.append(_Upsample())
                continue
            _, cin, cout = entry
            mods += [nn.ReflectionPad2d(1), nn.Conv2d(cout, cin, 3)]
            if i < len(path) - 1:  # every conv but the last (to RGB)
                if norm == "instance":
                    mods.append(nn.InstanceNorm2d(cin, affine=True))
                mods.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*mods)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not isinstance(features, torch.Tensor) or features.dim() != 4 or features.shape[1] != self.in_channels:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"InverseNet({self.layer}): features must be (N, {self.in_channels}, h, w), got {shape}")
        if min(features.shape[-2:]) < 2:
            raise ValueError(f"InverseNet({self.layer}): feature maps must be at least 2x2 (reflection padding), "
                             f"got {tuple(features.shape[-2:])}")
        return self.body(features * self.input_scale)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, norm={self.norm!r}"
