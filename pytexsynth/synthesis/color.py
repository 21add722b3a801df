"""Colour for colour-preserving transfer: YIQ luminance, and matching colour statistics."""

from __future__ import annotations

import torch

__all__ = ["is_grey", "grey_images", "yiq", "rgb", "match_color", "luminance_image", "match_luminance", "with_chrominance"]

_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


# Largest channel difference of a grey image: half a level of an 8-bit file.
GREY_TOLERANCE = 0.5 / 255


def is_grey(x: torch.Tensor) -> bool:
    """Whether an (N, 3, H, W) RGB image has R = G = B everywhere (to half an 8-bit level): a
    grayscale file, or one saved as RGB. One wait for the device."""
    return bool((x.amax(1) - x.amin(1)).max() <= GREY_TOLERANCE) if x.numel() else True


def grey_images(*images: torch.Tensor):
    """The (N, 1, H, W) grey channel of each image when every one is grey (R = G = B), else None.

    Synthesis from grey inputs optimises this one channel (VGG19 takes it as R = G = B), so the
    result is exactly grey: optimising RGB lets the pixels wander off grey in colour directions
    that the VGG statistics barely constrain (coloured speckle, chroma std 20 on 0..255 at 128 px)."""
    if not all(is_grey(x) for x in images):
        return None
    return [x.mean(1, keepdim=True) for x in images]


def yiq(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> YIQ (NTSC): Y is the luminance, I and Q the chrominance."""
    return torch.einsum("ij,njhw->nihw", _RGB2YIQ.to(x), x)


def rgb(y: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`yiq`."""
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB2YIQ.double()).float().to(y), y)


def match_color(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``source`` recoloured so that its colour mean and covariance equal ``target``'s
    (the linear colour transfer of Gatys et al.'s colour preservation)."""
    def stats(x):
        f = x.reshape(3, -1).double()
        mu = f.mean(1, keepdim=True)
        c = (f - mu) @ (f - mu).T / f.shape[1] + 1e-5 * torch.eye(3, dtype=f.dtype, device=f.device)
        return f, mu, c

    def sqrtm(c, inv=False):
        e, v = torch.linalg.eigh(c)
        e = e.clamp_min(1e-10)
        return v @ torch.diag(e.rsqrt() if inv else e.sqrt()) @ v.T

    fs, ms, cs = stats(source)
    _, mt, ct = stats(target)
    out = sqrtm(ct) @ sqrtm(cs, inv=True) @ (fs - ms) + mt
    return out.reshape(source.shape).float().clamp(0, 1)


def luminance_image(x: torch.Tensor) -> torch.Tensor:
    """The luminance of RGB images, repeated to three channels."""
    y = yiq(x)[:, :1]
    return y.expand(-1, 3, -1, -1)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The luminance of ``style`` shifted and scaled to the mean and standard deviation of
    ``content``'s, repeated to three channels (Gatys et al.'s luminance-only transfer)."""
    cy = yiq(content)[:, :1]
    sy = yiq(style)[:, :1]
    sy = (sy - sy.mean()) / sy.std().clamp_min(1e-6) * cy.std() + cy.mean()
    return sy.expand(-1, 3, -1, -1).clamp(0, 1)


def with_chrominance(img: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """``img``'s luminance with the chrominance (YIQ's I and Q) of ``colours``, in [0, 1]."""
    return rgb(torch.cat([yiq(img)[:, :1], yiq(colours)[:, 1:]], dim=1)).clamp(0, 1)
