"""What the public synthesis functions share: argument checks, the device, the random generator,
the output size and the (cached) VGG-19."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple, Union

import torch

from ..io import ImageArg
from ..losses import total_variation
from ..models.vgg import VGG19
from ..ops.checks import check_count
from .engine import OPTIMIZERS, Term

__all__ = ["Size", "ImageArg", "check_common", "output_size", "generator", "vgg_factory", "tv_terms"]

Size = Union[int, Tuple[int, int]]


def check_common(optimizer: object, report_every: object, style_scale: object, lr: object = None) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr)
                           or lr <= 0):
        raise ValueError(f"lr must be a finite number > 0 (or None for the optimizer's default), got {lr!r}")
    check_count(report_every, "report_every")
    if not isinstance(style_scale, (int, float)) or not (0 < style_scale <= 16):
        raise ValueError(f"style_scale must be in (0, 16], got {style_scale!r}")


def output_size(size: Size, ref: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    """(height, width) of an output: an int is a square (or, given the reference size ``ref``,
    the longer side with ``ref``'s aspect), or (height, width); at least 16 px each."""
    if isinstance(size, bool) or not isinstance(size, (int, tuple, list)):
        raise TypeError(f"size must be an int or (height, width), got {size!r}")
    if isinstance(size, int):
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if ref is None:
            return size, size
        h, w = ref
        s = size / max(h, w)
        return max(16, round(h * s)), max(16, round(w * s))
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 16 for v in size):
        raise ValueError(f"size must be (height, width) of ints >= 16, got {size!r}")
    return int(size[0]), int(size[1])


def generator(seed: Optional[int]) -> torch.Generator:
    """The CPU generator of a run's random draws: seeded for repeatable runs, fresh entropy for None."""
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    if seed is None:
        gen.seed()
    return gen


def vgg_factory(layers, pooling: str, tileable: bool, weights, device):
    """A function returning one VGG19 for the whole run, built on its first call."""
    cache: Dict[str, VGG19] = {}

    def make() -> VGG19:
        if "vgg" not in cache:
            cache["vgg"] = VGG19(layers, pooling=pooling, circular=tileable, weights=weights).to(device)
        return cache["vgg"]

    return make


def tv_terms(tv_weight: float, circular: bool) -> List[Term]:
    """The total-variation term, if its weight is not 0."""
    if not tv_weight:
        return []
    return [Term("tv", float(tv_weight), lambda fe, x: total_variation(x, circular=circular), ())]
