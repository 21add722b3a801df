"""The AdaIN decoder (Huang & Belongie 2017): VGG-19 relu4_1 features back to an image.

Arbitrary style transfer in one pass: encode content and style with VGG-19 up to relu4_1,
give the content features the style's per-channel mean and standard deviation
(:func:`pytexsynth.ops.adain`), decode. :class:`AdaINDecoder` mirrors VGG-19 from relu4_1 to
the pixels as the paper's decoder does: a 3x3 convolution cout -> cin and a ReLU for each VGG
convolution, nearest-neighbour x2 upsampling for each pool, no normalisation, the last
convolution to RGB without activation. Padding is reflection (the paper's) or circular: with
circular padding (and circular features) the output tiles seamlessly.

``width`` scales the hidden channel counts (1.0 is the paper's 3.5 M parameters), so a smaller
decoder can be trained on a CPU. Trained by :func:`pytexsynth.training.train_adain_decoder`.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn
import torch.nn.functional as F

from ..models.vgg import layer_channels
from ..nn import CircularPad2d
from .base import SavableNetwork, register_network
from .inverse import vgg_path

__all__ = ["AdaINDecoder", "ADAIN_LAYER", "ADAIN_STYLE_LAYERS", "DECODER_PADDINGS"]

ADAIN_LAYER = "relu4_1"
# The layers of the paper's style loss (mean and standard deviation of each).
ADAIN_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
DECODER_PADDINGS = ("reflect", "circular")


class _Upsample(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")


def _pad(padding: str) -> nn.Module:
    return nn.ReflectionPad2d(1) if padding == "reflect" else CircularPad2d(1)


@register_network
class AdaINDecoder(SavableNetwork):
    """Decoder from VGG-19 relu4_1 features (N, 512, h, w) to RGB images (N, 3, 8h, 8w).

    Args:
        padding: ``"reflect"`` (the paper's) or ``"circular"`` (tileable output).
        width: multiplier of the hidden channel counts (0 < width <= 1; 1 is the paper's).
        input_scale: the features are multiplied by this first (VGG's Caffe-scale activations
            have an RMS of a few hundred; near 1 suits the default initialisation and Adam).

    The output is not clamped. The padding can be switched after training
    (:meth:`set_padding`): the weights do not depend on it.

    Example:
        >>> net = AdaINDecoder(width=0.25)
        >>> net(torch.rand(1, 512, 4, 4)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(self, padding: str = "reflect", width: float = 1.0, input_scale: float = 1 / 400):
        if padding not in DECODER_PADDINGS:
            raise ValueError(f"AdaINDecoder: padding must be one of {DECODER_PADDINGS}, got {padding!r}")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
            raise ValueError(f"AdaINDecoder: width must be a number in (0, 1], got {width!r}")
        if isinstance(input_scale, bool) or not isinstance(input_scale, (int, float)) or not input_scale > 0:
            raise ValueError(f"AdaINDecoder: input_scale must be a positive number, got {input_scale!r}")
        super().__init__(padding=padding, width=float(width), input_scale=float(input_scale))
        self.padding, self.width, self.input_scale = padding, float(width), float(input_scale)
        self.in_channels = layer_channels(ADAIN_LAYER)

        def hidden(c: int) -> int:
            return c if c in (3, self.in_channels) else max(8, int(round(c * self.width)))

        path = vgg_path(ADAIN_LAYER)
        mods: List[nn.Module] = []
        for i, entry in enumerate(reversed(path)):
            if entry[0] == "pool":
                mods.append(_Upsample())
                continue
            _, cin, cout = entry
            mods += [_pad(padding), nn.Conv2d(hidden(cout), hidden(cin), 3)]
            if i < len(path) - 1:
                mods.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*mods)

    def set_padding(self, padding: str) -> "AdaINDecoder":
        """Switches every padding layer to ``padding`` in place (the weights stay); returns self."""
        if padding not in DECODER_PADDINGS:
            raise ValueError(f"AdaINDecoder: padding must be one of {DECODER_PADDINGS}, got {padding!r}")
        for i, m in enumerate(self.body):
            if isinstance(m, (nn.ReflectionPad2d, CircularPad2d)):
                self.body[i] = _pad(padding)
        self.padding = padding
        self.config["padding"] = padding
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not isinstance(features, torch.Tensor) or features.dim() != 4 or features.shape[1] != self.in_channels:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"AdaINDecoder: features must be (N, {self.in_channels}, h, w), got {shape}")
        if self.padding == "reflect" and min(features.shape[-2:]) < 2:
            raise ValueError(f"AdaINDecoder: feature maps must be at least 2x2 (reflection padding), "
                             f"got {tuple(features.shape[-2:])}")
        return self.body(features * self.input_scale)

    def extra_repr(self) -> str:
        return f"padding={self.padding!r}, width={self.width}"
