"""Argument checks and dtype/layout rules shared by every op (and the modules built on them).

Each op's wrapper validates its arguments with these before any backend runs, so the error
names the argument whichever backend (kernel or reference) would have run. The same rules are
TORCH_CHECKed again in C++ (csrc/common/checks.h), where the raw ``torch.ops`` entry points are
called directly.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple, Union

import torch

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# The matrix-product precisions of gram, gram_loss(_multi) and style_swap (csrc/common/precision.h).
PRECISIONS = ("ieee", "tf32", "bf16")
GRAM_NORMALIZE = ("hw", "chw", "none")
PAD_NAMES = ("left", "right", "top", "bottom")

PadArg = Union[int, Sequence[int]]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the arithmetic runs in: float64 for float64, float32 for the others."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def output_memory_format(t: torch.Tensor) -> torch.memory_format:
    """The layout of an op's output for input ``t`` (csrc/common/checks.h:output_memory_format):
    channels_last in, channels_last out; anything else gives a contiguous output."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def empty_like_layout(t: torch.Tensor, shape=None) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` (default t's) with t's dtype, device and op layout."""
    return torch.empty(t.shape if shape is None else shape, dtype=t.dtype, device=t.device,
                       memory_format=output_memory_format(t))


def check_tensor(x: object, op: str, arg: str, dims: Tuple[int, ...], layout: str) -> None:
    """``x`` is a floating-point tensor with one of ``dims`` dimensions (``layout`` describes them)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: {arg} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in dims:
        raise ValueError(f"{op}: {arg} must be a {layout} tensor, got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {arg} must be a float32, float64, float16 or bfloat16 tensor, got {x.dtype}")


def check_choice(value: object, choices: Tuple[str, ...], op: str, arg: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{op}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{op}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_weight(weight: object, op: str) -> float:
    """A loss weight: an int or float (not a bool), returned as a float."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"{op}: weight must be a float, got {weight!r}")
    return float(weight)


def check_positive_int(v: object, op: str, arg: str) -> int:
    """An int >= 1 (TypeError for a non-int, ValueError below 1)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{op}: {arg} must be an int, got {v!r}")
    if v < 1:
        raise ValueError(f"{op}: {arg} must be >= 1, got {v}")
    return int(v)


def normalize_pad(pad: PadArg, op: str) -> Tuple[int, int, int, int]:
    """An int pads all four sides; otherwise (left, right, top, bottom), each an int >= 0."""
    if isinstance(pad, bool) or not isinstance(pad, (int, Sequence, torch.Size)):
        raise TypeError(f"{op}: pad must be an int or a sequence of 4 ints (left, right, top, bottom), got {pad!r}")
    if isinstance(pad, int):
        pad = (pad,) * 4
    pad = tuple(pad)
    if len(pad) != 4:
        raise ValueError(f"{op}: pad must have 4 entries (left, right, top, bottom), got {len(pad)}: {pad}")
    for i, p in enumerate(pad):
        if isinstance(p, bool) or not isinstance(p, int):
            raise TypeError(f"{op}: pad[{i}] ({PAD_NAMES[i]}) must be an int, got {p!r}")
        if p < 0:
            raise ValueError(f"{op}: pad[{i}] ({PAD_NAMES[i]}) = {p} is negative; circular padding takes pads >= 0")
    return pad  # type: ignore[return-value]


def check_count(v: object, what: str) -> int:
    """A count or size argument of the Python API: an int >= 1, else ValueError "``what`` must be a
    positive int". (The ops' own ``check_positive_int`` tells a non-int (TypeError) from a bad value.)"""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{what} must be a positive int, got {v!r}")
    return int(v)


def check_weights(what: str = "", **weights: object) -> None:
    """Each loss weight is a finite number >= 0 (a NaN or infinite weight would make every pixel
    NaN: an all-black image)."""
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"{what}{name} must be a number >= 0 and finite, got {w!r}")
