"""Tileable (periodic) images: what every method's ``tileable`` path shares.

A photo does not wrap: its left and right columns (top and bottom rows) differ, so a content
term on it pulls the output towards that seam, however circular the network. Moisan's
periodic-plus-smooth decomposition (L. Moisan, "Periodic plus smooth image decomposition",
J. Math. Imaging Vis. 2011) splits an image u into p + s, s smooth (a Poisson solution that only
carries the wrap-around jumps) and p periodic with u's details; tileable runs use p as the
content (and the initial image). Resampling between pyramid levels wraps around too
(:func:`periodic_upsample`), and one-pass decoders see circularly padded features
(:func:`circular_pad`, :func:`crop`).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F

from .io import resize_image

__all__ = ["periodic_component", "periodic_resize", "periodic_upsample", "circular_pad", "crop", "round_to_multiple"]


def periodic_component(x: torch.Tensor) -> torch.Tensor:
    """Moisan's periodic component of (N, C, H, W) images: the image minus the smooth field whose
    discrete Laplacian is the wrap-around jumps; same mean, clamped to [0, 1], x's dtype."""
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        return x
    u = x.double()
    v = torch.zeros_like(u)
    v[..., 0, :] += u[..., -1, :] - u[..., 0, :]
    v[..., -1, :] += u[..., 0, :] - u[..., -1, :]
    v[..., :, 0] += u[..., :, -1] - u[..., :, 0]
    v[..., :, -1] += u[..., :, 0] - u[..., :, -1]
    h, w = u.shape[-2:]
    cy = torch.cos(2 * math.pi * torch.arange(h, dtype=torch.float64, device=x.device) / h).view(-1, 1)
    cx = torch.cos(2 * math.pi * torch.arange(w, dtype=torch.float64, device=x.device) / w).view(1, -1)
    denom = 2 * cy + 2 * cx - 4
    denom[0, 0] = 1.0  # the mean: s has none
    s_hat = torch.fft.fft2(v) / denom
    s_hat[..., 0, 0] = 0
    s = torch.fft.ifft2(s_hat).real
    return (u - s).clamp_(0.0, 1.0).to(x.dtype)


def periodic_resize(x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """An image resized to ``hw`` and made periodic again (a level's content or init image)."""
    return periodic_component(resize_image(x, hw))


def periodic_upsample(x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """Bicubic resampling of a periodic image to ``hw`` (larger) that wraps around at the edges
    (F.interpolate would replicate them): the image padded circularly, sampled at the pixel
    centres of ``hw``."""
    h, w = x.shape[-2:]
    pad = 2 + math.ceil(max(h / hw[0], w / hw[1]))
    xp = F.pad(x, (pad, pad, pad, pad), mode="circular")
    hp, wp = xp.shape[-2:]

    def axis(n_out: int, n_in: int, n_pad: int) -> torch.Tensor:
        src = (torch.arange(n_out, dtype=torch.float64, device=x.device) + 0.5) * n_in / n_out - 0.5 + pad
        return ((2 * src + 1) / n_pad - 1).to(x.dtype)

    gy, gx = torch.meshgrid(axis(hw[0], h, hp), axis(hw[1], w, wp), indexing="ij")
    grid = torch.stack((gx, gy), -1).unsqueeze(0).expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(xp, grid, mode="bicubic", padding_mode="border", align_corners=False)


def circular_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``pad`` cells of wrap-around on each side of (N, C, H, W) features (at most the size: repeated)."""
    h, w = x.shape[-2:]
    if pad <= min(h, w):
        return F.pad(x, (pad, pad, pad, pad), mode="circular")
    reps_h, reps_w = 2 * math.ceil(pad / h) + 1, 2 * math.ceil(pad / w) + 1
    big = x.repeat(1, 1, reps_h, reps_w)
    oy, ox = (reps_h // 2) * h - pad, (reps_w // 2) * w - pad
    return big[..., oy:oy + h + 2 * pad, ox:ox + w + 2 * pad]


def crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """The inverse of :func:`circular_pad`'s geometry: ``pad`` pixels off each side."""
    return x[..., pad:x.shape[-2] - pad, pad:x.shape[-1] - pad] if pad else x


def round_to_multiple(hw: Tuple[int, int], m: int) -> Tuple[int, int]:
    """(H, W) rounded to the nearest multiples of ``m`` (at least ``m``): sizes a network with
    ``m``-fold downsampling computes periodically."""
    return tuple(max(m, int(round(v / m)) * m) for v in hw)
