"""Scores of synthesised images that the eye judges: colour off grey, checkerboard energy and
the wrap-around seam. Images are (1, 3, H, W) tensors in [0, 1]; scores on the 0..255 scale."""

from __future__ import annotations

import torch


def chroma_std(x: torch.Tensor) -> float:
    """Standard deviation of the chrominance (B - Y and R - Y, RMS of the two) on 0..255: 0 for a grey image."""
    r, g, b = (x[0, i].double() * 255 for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return float((((b - y).std() ** 2 + (r - y).std() ** 2) / 2).sqrt())


def nyquist_fraction(x: torch.Tensor) -> float:
    """Fraction of the luminance's spectral energy above 0.375 cycles per pixel on either axis
    (checkerboard-like patterns live there)."""
    y = x[0].double().mean(0)
    p = torch.fft.fft2(y - y.mean()).abs() ** 2
    fy = torch.fft.fftfreq(y.shape[0]).abs().view(-1, 1)
    fx = torch.fft.fftfreq(y.shape[1]).abs().view(1, -1)
    band = (fy > 0.375) | (fx > 0.375)
    return float(p[band].sum() / p.sum().clamp_min(1e-30))


def seam_score(x: torch.Tensor) -> tuple:
    """(wrap-edge difference, interior difference): mean |first - last| row and column against
    the mean difference of neighbouring rows and columns, luminance on 0..255."""
    y = x[0].double().mean(0) * 255
    edge = ((y[0] - y[-1]).abs().mean() + (y[:, 0] - y[:, -1]).abs().mean()) / 2
    inner = ((y[1:] - y[:-1]).abs().mean() + (y[:, 1:] - y[:, :-1]).abs().mean()) / 2
    return float(edge), float(inner)
