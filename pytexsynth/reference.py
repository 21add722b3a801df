"""Pure-PyTorch reference of every pytexsynth op.

These define what the kernels compute: the tests compare against them, the benchmarks time
them, and the ops fall back to them when the compiled extension is absent.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def circular_pad2d(x: torch.Tensor, pad: Sequence[int]) -> torch.Tensor:
    """Circular (periodic) padding of the last two dims: ``F.pad(x, pad, mode="circular")``.

    Args:
        x: (C, H, W) or (N, C, H, W).
        pad: (left, right, top, bottom), each between 0 and the size of its dimension.
    """
    return F.pad(x, tuple(int(p) for p in pad), mode="circular")


# ---- gram ----

_GRAM_NORMALIZE = ("hw", "chw", "none")
_GRAM_PRECISION = ("ieee", "tf32", "bf16")


def _gram_divisor(x: torch.Tensor, normalize: str) -> int:
    c, n = x.shape[1], x.shape[2] * x.shape[3]
    return {"hw": n, "chw": c * n, "none": 1}[normalize]


def gram(x: torch.Tensor, normalize: str = "hw", precision: str = "ieee") -> torch.Tensor:
    """Gram matrices ``F F^T / divisor`` of (B, C, H, W) features, (B, C, C) in x's dtype.

    ``precision="bf16"`` rounds F to bfloat16 and multiplies in float32 (the products of two
    bfloat16 values are exact in float32, so this is "bf16 inputs, fp32 accumulation").
    ``"ieee"`` and ``"tf32"`` are plain matmuls: which one CUDA runs is PyTorch's global
    ``torch.backends.cuda.matmul`` setting (the benchmarks set it explicitly).
    """
    f = x.flatten(2)
    if precision == "bf16" and f.dtype != torch.float64:
        f = f.to(torch.bfloat16).float()
    elif f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    g = f @ f.mT / _gram_divisor(x, normalize)
    return g.to(x.dtype)


def gram_loss(x: torch.Tensor, target: torch.Tensor, weight: float = 1.0, normalize: str = "hw",
              precision: str = "ieee") -> torch.Tensor:
    """Gram (style) loss ``weight * mean((gram(x) - target)**2)``, target (C, C) or (B, C, C)."""
    g = gram(x, normalize, precision)
    return weight * F.mse_loss(g, target.expand_as(g))


def gram_loss_unfused(x: torch.Tensor, target: torch.Tensor, weight: float = 1.0, normalize: str = "hw") -> torch.Tensor:
    """What every public implementation runs: ``bmm`` + ``mse_loss`` (the benchmarks' baseline)."""
    b, c = x.shape[:2]
    f = x.reshape(b, c, -1)
    g = torch.bmm(f, f.transpose(1, 2)) / _gram_divisor(x, normalize)
    return weight * F.mse_loss(g, target.expand_as(g))
