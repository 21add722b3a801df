"""Texture Networks (Ulyanov et al. 2016): multi-scale feed-forward generators.

The generator reads K+1 noise tensors z_0 .. z_K, z_i at 1/2^i of the output size (uniform
i.i.d. in [0, 1)). The coarsest goes through a conv block (3x3, 3x3, 1x1 convs, each followed by
a norm and LeakyReLU); then, from coarse to fine, the running tensor is upsampled x2 (nearest)
and normalised, the next finer noise goes through its own block and is normalised too, the two
are concatenated (the "join") and pass through another block. A final 1x1 conv makes RGB.
Every conv is circular (:class:`pytexsynth.nn.CircularConv2d`), so the network computes on a
torus: its samples tile seamlessly, and rolling every z_i by s / 2^i rolls the output by s.
The coarsest noise is 1/2^K of the output, so the output size must be a multiple of 2^K.

:class:`StylizationGenerator` also concatenates the content image, average-pooled to each scale,
with the noise of that scale (the paper's stylisation network, K = 6).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
import torch.nn.functional as F

from ..nn import CircularConv2d
from ..periodic import periodic_resize, round_to_multiple
from .base import SavableNetwork, register_network

__all__ = ["TextureGenerator", "StylizationGenerator"]

SizeArg = Union[int, Sequence[int]]
_NORMS = ("batch", "instance")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    # The "improved" variant (Ulyanov et al. 2017): per-sample statistics at train and test time.
    return nn.InstanceNorm2d(channels, affine=True)


class _ConvBlock(nn.Sequential):
    """3x3, 3x3, 1x1 circular convs, each followed by a norm and LeakyReLU."""

    def __init__(self, cin: int, cout: int, norm: str, slope: float):
        layers: List[nn.Module] = []
        for k, c in ((3, cin), (3, cout), (1, cout)):
            layers += [CircularConv2d(c, cout, k), _norm(norm, cout), nn.LeakyReLU(slope)]
        super().__init__(*layers)


class _MultiScaleGenerator(SavableNetwork):
    """Shared body of the texture and stylisation generators (see the module docstring)."""

    condition_channels = 0

    def __init__(self, scales: int, noise_channels: int, channels: int, norm: str, leaky_slope: float,
                 output: str):
        name = type(self).__name__
        for arg, v, lo in (("scales", scales, 0), ("noise_channels", noise_channels, 0 if self.condition_channels else 1),
                           ("channels", channels, 1)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name}: {arg} must be an int, got {v!r}")
            if v < lo:
                raise ValueError(f"{name}: {arg} must be >= {lo}, got {v}")
        if norm not in _NORMS:
            raise ValueError(f"{name}: norm must be one of {_NORMS}, got {norm!r}")
        if output not in ("sigmoid", "linear"):
            raise ValueError(f"{name}: output must be 'sigmoid' or 'linear', got {output!r}")
        super().__init__(scales=scales, noise_channels=noise_channels, channels=channels, norm=norm,
                         leaky_slope=float(leaky_slope), output=output)
        self.scales, self.noise_channels, self.output = scales, noise_channels, output
        cin = noise_channels + self.condition_channels
        # blocks[i] reads scale i's input (i = 0 finest .. K coarsest); joins[i] follows the join at scale i.
        self.blocks = nn.ModuleList(_ConvBlock(cin, channels, norm, leaky_slope) for _ in range(scales + 1))
        self.up_norms = nn.ModuleList()
        self.in_norms = nn.ModuleList()
        self.joins = nn.ModuleList()
        width = channels
        for _ in range(scales):  # from the second coarsest scale down to the finest
            self.up_norms.append(_norm(norm, width))
            self.in_norms.append(_norm(norm, channels))
            width += channels
            self.joins.append(_ConvBlock(width, width, norm, leaky_slope))
        self.to_rgb = nn.Conv2d(width, 3, 1)  # a 1x1 conv needs no padding: circular trivially

    # -- sizes and noise ---------------------------------------------------------------------
    @property
    def multiple(self) -> int:
        """Output heights and widths must be multiples of this (2^K)."""
        return 2 ** self.scales

    def check_size(self, size: SizeArg) -> Tuple[int, int]:
        """(H, W) from an int or a pair; a clear error unless both are positive multiples of 2^K."""
        name = type(self).__name__
        if isinstance(size, bool) or not isinstance(size, (int, Sequence, torch.Size)):
            raise TypeError(f"{name}: size must be an int or a pair (height, width), got {size!r}")
        hw = (size, size) if isinstance(size, int) else tuple(size)
        if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in hw):
            raise TypeError(f"{name}: size must be an int or a pair of ints (height, width), got {size!r}")
        m = self.multiple
        for what, v in zip(("height", "width"), hw):
            if v <= 0 or v % m:
                lower, upper = max(m, v // m * m), (v // m + 1) * m
                raise ValueError(
                    f"{name}: output {what} {v} is not a positive multiple of 2**{self.scales} = {m} (the generator "
                    f"has {self.scales} downsampling levels); use e.g. {lower} or {upper}"
                )
        return hw  # type: ignore[return-value]

    def check_training_size(self, size: SizeArg, batch_size: int = 2) -> Tuple[int, int]:
        """:meth:`check_size`, and a coarsest scale with more than one value per channel to
        normalise in training: with instance norm at least 2 x 2 pixels, with batch norm at
        least two values over the batch and the map."""
        h, w = self.check_size(size)
        coarsest = (h >> self.scales) * (w >> self.scales)
        if self.config["norm"] == "instance" and min(h, w) >> self.scales < 2:
            raise ValueError(
                f"{type(self).__name__}: training size {size!r} makes the coarsest scale 1 pixel wide, too small for "
                f"instance norm; train at sizes of at least {2 * self.multiple} or use norm='batch'")
        if self.config["norm"] == "batch" and coarsest * batch_size < 2:
            raise ValueError(
                f"{type(self).__name__}: training size {size!r} makes the coarsest scale 1x1, so batch norm sees one "
                f"value per channel with batch_size {batch_size}; use batch_size >= 2, a size of at least "
                f"{2 * self.multiple}, or norm='instance'")
        return h, w

    def sample_noise(self, n: int, size: SizeArg, generator: Optional[torch.Generator] = None,
                     device: Union[str, torch.device, None] = None) -> List[torch.Tensor]:
        """The K+1 noise tensors (finest first) for n samples of the given size, uniform in [0, 1).

        Drawn finest first from ``generator`` (on its device), so a seed fixes all of them.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{type(self).__name__}: n must be a positive int, got {n!r}")
        h, w = self.check_size(size)
        if device is None:
            device = generator.device if generator is not None else self.to_rgb.weight.device
        dtype = self.to_rgb.weight.dtype
        return [torch.rand(n, self.noise_channels, h >> i, w >> i, generator=generator, device=device, dtype=dtype)
                for i in range(self.scales + 1)]

    def _check_noise(self, noise: Sequence[torch.Tensor]) -> Tuple[int, int, int]:
        name = type(self).__name__
        if not isinstance(noise, (list, tuple)) or len(noise) != self.scales + 1:
            got = len(noise) if isinstance(noise, (list, tuple)) else type(noise).__name__
            raise ValueError(f"{name}: noise must be a list of {self.scales + 1} tensors (finest first), got {got}")
        if not all(isinstance(z, torch.Tensor) and z.dim() == 4 for z in noise):
            raise ValueError(f"{name}: every noise tensor must be 4-D (N, C, H, W)")
        n, _, h, w = noise[0].shape
        self.check_size((h, w))
        for i, z in enumerate(noise):
            want = (n, self.noise_channels, h >> i, w >> i)
            if tuple(z.shape) != want:
                raise ValueError(f"{name}: noise[{i}] must have shape {want}, got {tuple(z.shape)}")
        return n, h, w

    # -- the network -------------------------------------------------------------------------
    def _run(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """inputs[i]: the network's input at scale i (noise, plus the content for stylisation)."""
        x = self.blocks[-1](inputs[-1])
        for j, i in enumerate(range(self.scales - 1, -1, -1)):
            up = self.up_norms[j](F.interpolate(x, scale_factor=2, mode="nearest"))
            here = self.in_norms[j](self.blocks[i](inputs[i]))
            x = self.joins[j](torch.cat([up, here], dim=1))
        y = self.to_rgb(x)
        return torch.sigmoid(y) if self.output == "sigmoid" else y


@register_network
class TextureGenerator(_MultiScaleGenerator):
    """The Texture Networks generator: noise in, texture out (B, 3, H, W) in [0, 1].

    Args:
        scales: K, the number of x2 upsamplings; K+1 noise tensors, z_i at 1/2^i of the output;
            output sizes must be multiples of 2^K. The paper's K = 5.
        noise_channels: channels of each noise tensor.
        channels: channels each scale adds (the join at the finest scale has (K+1) * channels).
        norm: "batch" (the paper) or "instance" (the improved variant).
        leaky_slope: LeakyReLU's negative slope.
        output: "sigmoid" (images in [0, 1]) or "linear".

    Example:
        >>> g = TextureGenerator()
        >>> g.generate(2, 64, seed=0).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, scales: int = 5, noise_channels: int = 3, channels: int = 8, norm: str = "batch",
                 leaky_slope: float = 0.01, output: str = "sigmoid"):
        super().__init__(scales, noise_channels, channels, norm, leaky_slope, output)

    def forward(self, noise: Sequence[torch.Tensor]) -> torch.Tensor:
        """Maps the K+1 noise tensors (finest first, see :meth:`sample_noise`) to images."""
        self._check_noise(noise)
        return self._run(list(noise))

    @torch.no_grad()
    def generate(self, n: int = 1, size: SizeArg = 256, seed: Optional[int] = None) -> torch.Tensor:
        """n new samples of size ``size`` (an int or (H, W), multiples of 2^K), in eval mode.

        The same seed gives the same samples; the samples tile seamlessly.
        """
        gen = torch.Generator(device=self.to_rgb.weight.device)
        gen.manual_seed(seed) if seed is not None else gen.seed()
        was_training = self.training
        self.eval()
        try:
            return self(self.sample_noise(n, size, gen)).clamp_(0, 1)
        finally:
            self.train(was_training)


@register_network
class StylizationGenerator(_MultiScaleGenerator):
    """The Texture Networks stylisation generator: content image (+ noise) in, stylised image out.

    At each scale i the content image, average-pooled by 2^i, is concatenated with z_i.

    Args: as :class:`TextureGenerator`, with K = 6 by default. ``noise_channels`` may be 0.

    Example:
        >>> g = StylizationGenerator(scales=3)
        >>> g.stylize(torch.rand(1, 3, 40, 50)).shape
        torch.Size([1, 3, 40, 50])
    """

    condition_channels = 3

    def __init__(self, scales: int = 6, noise_channels: int = 3, channels: int = 8, norm: str = "batch",
                 leaky_slope: float = 0.01, output: str = "sigmoid"):
        super().__init__(scales, noise_channels, channels, norm, leaky_slope, output)

    def forward(self, content: torch.Tensor, noise: Optional[Sequence[torch.Tensor]] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Stylises ``content`` (N, 3, H, W), H and W multiples of 2^K; noise drawn if not given."""
        name = type(self).__name__
        if not isinstance(content, torch.Tensor) or content.dim() != 4 or content.shape[1] != 3:
            shape = tuple(content.shape) if isinstance(content, torch.Tensor) else type(content).__name__
            raise ValueError(f"{name}: content must be an (N, 3, H, W) tensor, got {shape}")
        n, _, h, w = content.shape
        self.check_size((h, w))
        if noise is None:
            noise = self.sample_noise(n, (h, w), generator, device=content.device)
        elif self._check_noise(noise) != (n, h, w):
            raise ValueError(f"{name}: noise is for shape {tuple(noise[0].shape)}, content is {tuple(content.shape)}")
        contents = [content] + [F.avg_pool2d(content, 2 ** i) for i in range(1, self.scales + 1)]
        return self._run([torch.cat([z, c], dim=1) for z, c in zip(noise, contents)])

    @torch.no_grad()
    def stylize(self, image: torch.Tensor, seed: Optional[int] = 0, tileable: bool = False) -> torch.Tensor:
        """Stylises an image (3, H, W) or (N, 3, H, W) in [0, 1], any size, in eval mode.

        Sizes that are not multiples of 2^K are reflection-padded up to one and cropped back.
        ``tileable``: a seamlessly tiling output instead: the image resized to sides that are
        multiples of 2^K (the output has that size) and made periodic
        (:func:`pytexsynth.periodic.periodic_component`); the circular network does the rest.
        """
        name = type(self).__name__
        if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"{name}.stylize: image must be a (3, H, W) or (N, 3, H, W) tensor, got {shape}")
        single = image.dim() == 3
        x = (image[None] if single else image).to(self.to_rgb.weight)
        if tileable:
            x = periodic_resize(x, round_to_multiple(tuple(x.shape[-2:]), self.multiple))
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
        gen = torch.Generator(device=x.device)
        gen.manual_seed(seed) if seed is not None else gen.seed()
        was_training = self.training
        self.eval()
        try:
            y = self(x, generator=gen)[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w].clamp_(0, 1)
        finally:
            self.train(was_training)
        return y[0] if single else y
