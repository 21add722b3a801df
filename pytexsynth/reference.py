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
