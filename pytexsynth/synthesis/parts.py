"""The pieces of an evaluation split over parts of the image (tiles, or VGG's first blocks on
tiles): a Gram term's partial Gram matrices, any other term's whole-image maps, and the
collectives that sum them over the ranks of a process group."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .. import ops
from ..models.vgg import layer_channels
from ..ops.fixed_order import fixed_order_sum
from .tiles import Tile, layer_stride, map_size

__all__ = ["world", "RanksLostError", "all_reduce", "crops_of", "GramPart", "MapPart", "make_part"]


def world() -> Tuple[int, int]:
    """(rank, world size) of the initialised default process group, else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class RanksLostError(ConnectionError):
    """A collective of the tiled evaluation failed: another rank died or timed out."""


def all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Sum over the ranks, in place (nothing with one process); RanksLostError, in one line,
    when a rank has gone (its process died, or the group's timeout passed)."""
    rank, size = world()
    if size > 1:
        try:
            torch.distributed.all_reduce(t)
        except (RuntimeError, ConnectionError) as exc:  # gloo and NCCL raise DistBackendError (a RuntimeError)
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise RanksLostError(f"tiled synthesis: rank {rank} of {size} lost the other ranks in an all-reduce "
                                 f"({first}); every rank stops") from None
    return t


def crops_of(feats: Dict[str, torch.Tensor], t: Tile) -> Dict[str, torch.Tensor]:
    return {n: f[(..., *t.interior(layer_stride(n)))] for n, f in feats.items()}


class GramPart:
    """A Gram term: partial Gram matrices of the interiors in pass 1; in pass 2 the loss of
    ``G + P_tile - P_tile.detach()``, whose value is the whole loss and whose gradient with
    respect to the tile's features is the whole loss's."""

    needs_features = True
    dx = None

    def __init__(self, scale: torch.Tensor, gram, hw: Tuple[int, int]):
        self.scale, self.gram = scale, gram
        self.layers = list(gram.layers)
        self.weights = [gram.weights[n] for n in self.layers]
        self.targets = gram.targets()
        self.divisors = []
        for n, target in zip(self.layers, self.targets):
            rows, cols = map_size(hw, n)
            self.divisors.append({"hw": rows * cols, "chw": target.shape[-1] * rows * cols, "none": 1}[gram.normalize])

    def partial(self, f: torch.Tensor, i: int) -> torch.Tensor:
        if self.gram.dtype is not None:
            f = f.to(self.gram.dtype)
        return ops.gram(f, "none", self.gram.precision)[0] / self.divisors[i]

    def begin(self, tiles: int) -> None:
        self.sums = [None] * len(self.layers)
        self.stacks = [None] * len(self.layers) if world()[1] > 1 else None
        self.tiles = tiles

    def gather(self, index: int, t: Tile, crops: Dict[str, torch.Tensor]) -> None:
        for i, n in enumerate(self.layers):
            p = self.partial(crops[n], i)
            if self.stacks is not None:  # summed in tile order after the all-reduce
                if self.stacks[i] is None:
                    self.stacks[i] = torch.zeros((self.tiles, *p.shape), dtype=p.dtype, device=p.device)
                self.stacks[i][index] = p
            else:
                self.sums[i] = p if self.sums[i] is None else self.sums[i] + p

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.stacks is not None:
            for i, stack in enumerate(self.stacks):
                c = self.targets[i].shape[-1]
                if stack is None:  # this rank had no tile
                    stack = torch.zeros((self.tiles, c, c), dtype=self.targets[i].dtype, device=x.device)
                all_reduce(stack)
                total = stack[0].clone()
                for k in range(1, self.tiles):
                    total += stack[k]
                self.sums[i] = total
            self.stacks = None
        return (self.scale * self.loss_of(self.sums)).detach()

    def loss_of(self, grams: List[torch.Tensor]) -> torch.Tensor:
        total = None
        for g, target, w in zip(grams, self.targets, self.weights):
            term = w * (g - target).square().mean()
            total = term if total is None else total + term
        return total

    def surrogate(self, t: Tile, crops: Dict[str, torch.Tensor]) -> torch.Tensor:
        grams = []
        for i, n in enumerate(self.layers):
            p = self.partial(crops[n], i)
            grams.append(self.sums[i] + (p - p.detach()))
        return self.scale * self.loss_of(grams)


class MapPart:
    """Any other term (content, histogram, masked Gram, style-swap, an image term): its layers'
    interior features gathered into maps of the whole image in pass 1, its value and gradients
    (with respect to those maps and to the image) computed on them once; ``<dL/dF, F_tile>`` in
    pass 2."""

    def __init__(self, scale: torch.Tensor, term, layers: Sequence[str], hw: Tuple[int, int]):
        self.scale, self.term, self.hw = scale, term, hw
        self.layers = list(layers)
        self.needs_features = bool(self.layers)
        self.dx: Optional[torch.Tensor] = None

    def begin(self, tiles: int) -> None:
        self.maps: Dict[str, torch.Tensor] = {}

    def gather(self, index: int, t: Tile, crops: Dict[str, torch.Tensor]) -> None:
        for n in self.layers:
            f = crops[n]
            if n not in self.maps:
                # contiguous (NCHW) whatever the features' layout: what an all-reduce takes
                self.maps[n] = torch.zeros((*f.shape[:2], *map_size(self.hw, n)), dtype=f.dtype, device=f.device)
            self.maps[n][(..., *t.in_image(layer_stride(n)))] = f

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        leaves = {}
        for n in self.layers:
            m = self.maps.get(n)
            if m is None:  # this rank had no tile: zeros, the other ranks' interiors arrive by the all-reduce
                m = torch.zeros((1, layer_channels(n), *map_size(self.hw, n)), dtype=x.dtype, device=x.device)
            leaves[n] = all_reduce(m).requires_grad_(True)
        image = x.detach().requires_grad_(True)
        with torch.enable_grad():
            value = self.scale * self.term.fn(leaves, image)
            inputs = [*leaves.values(), image]
            grads = torch.autograd.grad(value, inputs, allow_unused=True)
        self.dF = {n: (torch.zeros_like(leaves[n]) if g is None else g) for n, g in zip(self.layers, grads)}
        self.dx = grads[-1]
        self.maps = {}
        return value.detach()

    def surrogate(self, t: Tile, crops: Dict[str, torch.Tensor]) -> torch.Tensor:
        total = None
        for n in self.layers:
            d = self.dF[n][(..., *t.in_image(layer_stride(n)))]
            term = fixed_order_sum(d * crops[n].to(d.dtype))
            total = term if total is None else total + term
        return total


def make_part(term, scale: torch.Tensor, layers: Sequence[str], hw: Tuple[int, int]):
    gram = getattr(term, "gram", None)
    if gram is not None and not gram.masked and gram.keyed:
        return GramPart(scale, gram, hw)
    used = layers if getattr(term, "layers", None) is None else term.layers
    return MapPart(scale, term, used, hw)
