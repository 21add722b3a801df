"""Exact tiled evaluation of a level's loss and gradient: peak memory set by a tile, not the image.

The Gram loss is a function of sums over positions, ``G_l = sum_p f_l(p) f_l(p)^T / n_l``, so the
whole image's loss and its exact gradient can be computed tile by tile (issue 15):

- pass 1, without autograd: VGG on each tile with a halo wide enough that the features of its
  interior equal the whole image's (:func:`exact_halo`; tile origins on the pooling grid, so max
  pooling picks the same cells), each term adding what it needs from the interior features:
  a Gram term its partial Gram matrices (C x C), any other term (content, histogram, masks,
  style-swap) the interior features themselves, into maps of the whole image at its layers only;
  then every term's value is known, and for a non-Gram term the gradient with respect to
  those maps (one autograd call on them);
- pass 2, with autograd: VGG on each tile again, minimising the surrogate whose gradient is the
  whole loss's gradient restricted to the tile's interior features (for a Gram term
  ``loss(G + P_tile - P_tile.detach())``, for a map term ``<dL/dF, F_tile>``); the tile's pixel
  gradient (interior and halo) is added into the image's gradient, tile after tile in a fixed
  order.

Under an initialised ``torch.distributed`` process group the tiles are dealt out to the ranks
(tile i to rank i mod world size): pass 1's partial Grams and maps and pass 2's tile gradients
are summed over the ranks with one all-reduce each, each rank contributing zeros where it has no
tile (x + 0 is exact), and every rank then adds them up in tile order. So every rank holds
the same loss and gradient, bitwise those of one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .. import ops
from ..models.vgg import VGG19
from .parts import RanksLostError, all_reduce, crops_of, make_part, world
from .tiles import Tile, add_tile, exact_halo, grid_stride, layer_stride, map_size, plan_tiles, read_tile

__all__ = ["Tile", "plan_tiles", "exact_halo", "grid_stride", "TiledLoss", "MemoryPlan", "world", "layer_stride",
           "map_size", "RanksLostError", "features_in_tiles"]

# L-BFGS's history length when memory allows (torch's default is 100; 50 loses nothing measurable
# on synthesis and halves the optimiser's state)
DEFAULT_HISTORY = 50


@dataclass(frozen=True)
class MemoryPlan:
    """How one level is evaluated: whole (``tile`` None) or in tiles of ``tile`` px read with
    ``halo`` px around; ``checkpoint``: VGG's activations recomputed in the backward pass; and
    L-BFGS's ``history`` length."""

    tile: Optional[int] = None
    halo: int = 0
    checkpoint: bool = False
    history: int = DEFAULT_HISTORY

    def describe(self) -> str:
        """What the progress line says ("" for the plain whole-image evaluation)."""
        what = []
        if self.tile is not None:
            what.append(f"tiles {self.tile} px + {self.halo} px halo")
        if self.checkpoint:
            what.append("checkpointed")
        if self.history != DEFAULT_HISTORY:
            what.append(f"L-BFGS history {self.history}")
        return ", ".join(what)


class TiledLoss:
    """A level's loss and its exact gradient, tile by tile (see the module's docstring).

    Args:
        vgg: the level's VGG19 (its padding, circular or zeros, is the whole image's).
        layers: the VGG layers the terms read.
        hw: the image's (rows, cols).
        tile: interior side in px (rounded down to the pooling grid).
        halo: px read around each interior (rounded up to the grid); :func:`exact_halo` for
            the exact gradient, less for an approximation.
        checkpoint: recompute each tile's activations in its backward pass (less memory).
    """

    def __init__(self, vgg: VGG19, layers: Sequence[str], hw: Tuple[int, int], tile: int, halo: int,
                 checkpoint: bool = False):
        self.vgg, self.layers, self.hw, self.checkpoint = vgg, tuple(layers), tuple(hw), checkpoint
        self.tiles = plan_tiles(self.hw, tile, halo, self.layers, vgg.circular)
        if vgg.circular and halo >= min(self.hw):
            raise ValueError(f"tile: the halo ({halo} px) must be shorter than the image's sides ({self.hw[1]}x{self.hw[0]})")
        rank, size = world()
        self.mine = [i for i in range(len(self.tiles)) if i % size == rank]

    def __call__(self, x: torch.Tensor, terms, scales) -> Tuple[torch.Tensor, List[torch.Tensor], torch.Tensor]:
        """(loss, each term's weighted value, d loss / d x) at the image ``x`` (1, C, H, W)."""
        parts = [make_part(t, s, self.layers, self.hw) for t, s in zip(terms, scales)]
        for p in parts:
            p.begin(len(self.tiles))
        reading = [p for p in parts if p.needs_features]
        if reading:
            with torch.no_grad():
                for i in self.mine:
                    t = self.tiles[i]
                    crops = crops_of(self.vgg(read_tile(x, t), self.layers), t)
                    for p in reading:
                        p.gather(i, t, crops)
                    del crops  # this tile's maps, before the next tile's forward
        values = [p.finish(x) for p in parts]
        grad = self._pass2(x, reading)
        for p in parts:
            if p.dx is not None:
                grad += p.dx
        return torch.stack(values).sum(), values, grad

    def _pass2(self, x: torch.Tensor, reading) -> torch.Tensor:
        grad = torch.zeros_like(x)
        if not reading:
            return grad
        size = world()[1]
        stack = None
        if size > 1:
            longest = max(t.in_rows[1] - t.in_rows[0] for t in self.tiles), max(t.in_cols[1] - t.in_cols[0] for t in self.tiles)
            stack = torch.zeros((len(self.tiles), x.shape[1], *longest), dtype=x.dtype, device=x.device)
        for i in self.mine:
            t = self.tiles[i]
            xt = read_tile(x, t).detach().clone().requires_grad_(True)
            with torch.enable_grad():
                crops = crops_of(self.vgg(xt, self.layers, checkpoint=self.checkpoint), t)
                surrogate = None
                for p in reading:
                    v = p.surrogate(t, crops)
                    surrogate = v if surrogate is None else surrogate + v
                (g,) = torch.autograd.grad(surrogate, xt)
            if stack is None:
                add_tile(grad, g, t)
            else:
                stack[i, :, : g.shape[-2], : g.shape[-1]] = g[0]
        if stack is not None:
            all_reduce(stack)
            for i, t in enumerate(self.tiles):
                h, w = t.in_rows[1] - t.in_rows[0], t.in_cols[1] - t.in_cols[0]
                add_tile(grad, stack[i, :, :h, :w][None], t)
        return grad


def features_in_tiles(vgg: VGG19, image: torch.Tensor, layers: Sequence[str], tile: int, halo: int,
                      gram_layers: Sequence[str] = ()) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor]]:
    """Without autograd, tile by tile: (whole-image feature maps at ``layers``, float32 Gram
    matrices (C, C), normalised by the map's H*W, at ``gram_layers``): a content's or a style's
    features at sizes whose whole forward pass would not fit (each tile read with ``halo`` px
    around; :func:`exact_halo` for the exact features). Every process computes all tiles."""
    wanted = tuple(dict.fromkeys((*layers, *gram_layers)))
    hw = tuple(image.shape[-2:])
    maps: Dict[str, torch.Tensor] = {}
    grams: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for t in plan_tiles(hw, tile, halo, wanted, vgg.circular):
            crops = crops_of(vgg(read_tile(image, t), wanted), t)
            for n in layers:
                if n not in maps:
                    maps[n] = torch.zeros((*crops[n].shape[:2], *map_size(hw, n)), dtype=crops[n].dtype,
                                          device=image.device)
                maps[n][(..., *t.in_image(layer_stride(n)))] = crops[n]
            for n in gram_layers:
                g = ops.gram(crops[n].float(), "none")[0]
                grams[n] = g if n not in grams else grams[n] + g
    for n in gram_layers:
        rows, cols = map_size(hw, n)
        grams[n] = grams[n] / (rows * cols)
    return maps, grams
