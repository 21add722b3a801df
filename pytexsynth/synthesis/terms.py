"""A loss term of the optimisation engine: what it computes, and what tiling needs to know of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import torch

__all__ = ["Term"]


@dataclass
class Term:
    """One loss term: ``fn(features, image)`` -> a scalar, pulled with ``weight``.

    For tiled evaluation (:mod:`~pytexsynth.synthesis.tiled`): ``layers``, the VGG layers ``fn``
    reads (None: all the level's; () for a term of the image alone), and ``gram``, the
    :class:`~pytexsynth.losses.GramLoss` that ``fn`` evaluates, if it is one (tiled by its
    partial Gram matrices instead of whole-image feature maps).
    """

    name: str
    weight: float
    fn: Callable[[Dict[str, torch.Tensor], torch.Tensor], torch.Tensor]
    layers: Optional[Sequence[str]] = None
    gram: Optional[object] = None
