"""Functional ops: thin, typed wrappers over ``torch.ops.pytexsynth.*``.

Each wrapper validates its arguments (so the error names the argument whichever backend runs),
then calls the compiled kernel, or the reference in :mod:`pytexsynth.reference` where no kernel
can take the input (see :func:`pytexsynth._ext.use_kernel`).
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch

from . import _ext, reference
from . import _registrations  # noqa: F401  (autograd and fake kernels)

__all__ = ["circular_pad2d"]

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_PAD_NAMES = ("left", "right", "top", "bottom")

PadArg = Union[int, Sequence[int]]


def _check_tensor(x: object, op: str, arg: str, dims: Tuple[int, ...], layout: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: {arg} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in dims:
        raise ValueError(f"{op}: {arg} must be a {layout} tensor, got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: {arg} must be a float32, float64, float16 or bfloat16 tensor, got {x.dtype}")


def _normalize_pad(pad: PadArg, op: str) -> Tuple[int, int, int, int]:
    """An int pads all four sides; otherwise (left, right, top, bottom)."""
    if isinstance(pad, bool) or not isinstance(pad, (int, Sequence, torch.Size)):
        raise TypeError(f"{op}: pad must be an int or a sequence of 4 ints (left, right, top, bottom), got {pad!r}")
    if isinstance(pad, int):
        pad = (pad,) * 4
    pad = tuple(pad)
    if len(pad) != 4:
        raise ValueError(f"{op}: pad must have 4 entries (left, right, top, bottom), got {len(pad)}: {pad}")
    for i, p in enumerate(pad):
        if isinstance(p, bool) or not isinstance(p, int):
            raise TypeError(f"{op}: pad[{i}] ({_PAD_NAMES[i]}) must be an int, got {p!r}")
        if p < 0:
            raise ValueError(f"{op}: pad[{i}] ({_PAD_NAMES[i]}) = {p} is negative; circular padding takes pads >= 0")
    return pad  # type: ignore[return-value]


def circular_pad2d(x: torch.Tensor, pad: PadArg) -> torch.Tensor:
    """Pads the last two dims of ``x`` periodically (wrap-around), as tileable textures need.

    Same result as ``F.pad(x, pad, mode="circular")``, in one gather kernel; its backward sums
    the wrapped gradients in one gather too (no atomics, deterministic), where ``F.pad``'s
    goes through several full copies. Differentiable twice; works under ``torch.compile``.

    Args:
        x: (C, H, W) or (N, C, H, W), float32/float64/float16/bfloat16, any strides
            (channels_last input gives channels_last output).
        pad: (left, right, top, bottom), or one int for all four. Each from 0 up to the
            size of its dimension (padding wraps at most once).

    Returns:
        (C, H + top + bottom, W + left + right), or the same with the batch dimension.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> circular_pad2d(x, (1, 1, 0, 0))
        tensor([[[[1., 0., 1., 0.],
                  [3., 2., 3., 2.]]]])
    """
    op = "circular_pad2d"
    _check_tensor(x, op, "x", (3, 4), "3-D (C, H, W) or 4-D (N, C, H, W)")
    pads = _normalize_pad(pad, op)
    for i, p in enumerate(pads):
        size, what = (x.shape[-1], "width") if i < 2 else (x.shape[-2], "height")
        if p > size:
            raise ValueError(
                f"{op}: pad[{i}] ({_PAD_NAMES[i]}) = {p} exceeds the input {what} {size}; circular padding wraps at most once"
            )
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.circular_pad2d(x, list(pads))
    return reference.circular_pad2d(x, pads)
