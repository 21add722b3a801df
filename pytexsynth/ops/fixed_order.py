"""Sums and means whose value does not depend on the CPU thread count.

PyTorch reduces a whole tensor to one value by giving each thread a slice and adding the slices'
partial sums, so ``t.sum()`` changes in its last bits between ``--threads 1`` and ``--threads 2``;
in an optimisation those bits grow into another image. Here the tensor is summed as ``ROWS``
fixed rows: PyTorch then parallelises over the rows (each row summed by one thread, in one order)
and adds the ``ROWS`` results serially, so the value is the same for every thread count. Same
gradient as ``sum``/``mean``; on CUDA, where PyTorch's reductions are already fixed-order, the
plain reductions are used.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ["fixed_order_sum", "fixed_order_mean", "fixed_order_mse"]

# Each reduced row is cut into ROWS pieces: PyTorch splits a reduction with several outputs over
# its outputs (never inside one), and ROWS values are added serially (under its grain size).
ROWS = 64


def fixed_order_sum(t: torch.Tensor, dim: Optional[Sequence[int]] = None, keepdim: bool = False) -> torch.Tensor:
    """``t.sum(dim, keepdim)`` (all dimensions when ``dim`` is None), the same value for every
    thread count."""
    dims = tuple(range(t.dim())) if dim is None else tuple(sorted(d % t.dim() for d in dim))
    if t.device.type != "cpu" or not dims:
        return t.sum() if dim is None else t.sum(dims, keepdim=keepdim)
    kept = [d for d in range(t.dim()) if d not in dims]
    moved = t.permute(*kept, *dims)
    outer = [t.shape[d] for d in kept]
    rows = moved.reshape(math.prod(outer), -1)  # (outputs, reduced elements), row-major
    pad = (-rows.shape[1]) % ROWS
    if pad:
        rows = F.pad(rows, (0, pad))
    total = rows.view(rows.shape[0], ROWS, -1).sum(-1).sum(-1).view(outer)
    if keepdim:
        total = total.view([1 if d in dims else t.shape[d] for d in range(t.dim())])
    return total


def fixed_order_mean(t: torch.Tensor, dim: Optional[Sequence[int]] = None, keepdim: bool = False) -> torch.Tensor:
    """``t.mean(dim, keepdim)``, the same value for every thread count (NaN over no elements, as mean)."""
    dims = tuple(range(t.dim())) if dim is None else tuple(dim)
    count = math.prod(t.shape[d] for d in dims)
    if not count:
        return t.mean() if dim is None else t.mean(dims, keepdim=keepdim)
    return fixed_order_sum(t, dim, keepdim) / count


def fixed_order_mse(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``F.mse_loss(x, target)`` (mean reduction, broadcasting as mse_loss does not warn about:
    shapes must match), the same value for every thread count."""
    if x.shape != target.shape:
        raise ValueError(f"fixed_order_mse: shapes differ, {tuple(x.shape)} and {tuple(target.shape)}")
    return fixed_order_mean((x - target).square())
