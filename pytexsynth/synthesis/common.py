"""What the public synthesis functions share: argument checks, the device, the random generator,
the output size and the (cached) VGG-19."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch

from ..io import ImageArg
from ..losses import total_variation
from ..models.vgg import VGG19
from ..models.weights import default_weights_path
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


# The most recent run's VGG19, kept for the next run with the same settings: building one copies
# the weights into channels_last (80 MB) and, on the CPU, transforms them for Winograd on first
# use (about 200 MB, 1-2 s); a script or notebook that synthesises image after image pays it once.
_LAST_VGG: Dict[tuple, VGG19] = {}
_LAST_VGG_LOCK = threading.Lock()


def _vgg_key(layers, pooling: str, tileable: bool, weights, device) -> Optional[tuple]:
    """What a VGG19 is determined by: its settings and its weights file (path and mtime); None
    when the file is missing (VGG19 then raises the error that says so)."""
    path = Path(weights) if weights is not None else default_weights_path()
    if path is None or not path.is_file():
        return None
    path = path.resolve()
    return tuple(layers), pooling, bool(tileable), str(path), path.stat().st_mtime, str(torch.device(device))


def vgg_factory(layers, pooling: str, tileable: bool, weights, device):
    """A function returning one VGG19 for the whole run, built on its first call (or the previous
    run's, if it had the same settings and weights file)."""
    cache: Dict[str, VGG19] = {}

    def make() -> VGG19:
        if "vgg" not in cache:
            key = _vgg_key(layers, pooling, tileable, weights, device)
            with _LAST_VGG_LOCK:
                vgg = _LAST_VGG.get(key) if key is not None else None
                if vgg is None:
                    _LAST_VGG.clear()  # one kept at a time: its memory, not one per setting
                    vgg = VGG19(layers, pooling=pooling, circular=tileable, weights=weights).to(device)
                    if key is not None:
                        _LAST_VGG[key] = vgg
            cache["vgg"] = vgg
        return cache["vgg"]

    return make


def tv_terms(tv_weight: float, circular: bool) -> List[Term]:
    """The total-variation term, if its weight is not 0."""
    if not tv_weight:
        return []
    return [Term("tv", float(tv_weight), lambda fe, x: total_variation(x, circular=circular), ())]
