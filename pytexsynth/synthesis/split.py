"""Checkpointed evaluation: VGG's first blocks recomputed on tiles, the rest whole (issue 15).

VGG's first two blocks run at full and half resolution with 64 and 128 channels: about two
thirds of a forward pass's activations, and with plain per-convolution checkpointing their maps,
gradients and a recomputed output still coexist in the backward pass and set the peak (0.69x a
plain evaluation's at 1024 px, for 1.3-1.5x the time). :class:`SplitLoss` instead runs those
blocks (up to ``pool2``) on tiles of the image, with the few pixels of halo that keep their
outputs exact (8 px), keeping none of their activations, and the rest of VGG once on the whole,
downsampled map with autograd as usual:

- pass 1, without autograd: per tile, the first blocks' output (pool2's map, gathered into the
  whole image's, a quarter of the side) and what the terms need from the layers in those
  blocks: a Gram term's partial Gram matrices (relu1_1, relu2_1), any other term's maps;
- the rest of VGG on pool2's map with autograd; every term's value; one
  backward pass to the gradients with respect to pool2's map, the first blocks' Gram matrices
  and maps, and the image;
- pass 2, with autograd: per tile again, the surrogate ``<dL/dP, P_tile> + <dL/dG, G_tile>
  + <dL/dF, F_tile>``, whose gradient is the whole loss's restricted to the tile, added into
  the image's gradient in tile order.

The same loss and gradient as the whole image's (to rounding: sums in another order); the cost
is the first blocks' forward pass once more and their 1.13x pixels with 256 px tiles.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..models.vgg import LAYER_NAMES, VGG19, layer_channels
from ..ops.fixed_order import fixed_order_sum
from .parts import GramPart, crops_of, make_part
from .tiles import add_tile, exact_halo, grid_stride, layer_stride, map_size, plan_tiles, read_tile

__all__ = ["SplitLoss", "split_applies", "SPLIT_AT", "SPLIT_TILE"]

# where the tiled first part of VGG ends: past pool2 the maps are 1/16 of the image's pixels, and
# its exact halo is 8 px (past pool3 it would be 24 px: 1.4x the work of those blocks at 256 px)
SPLIT_AT = "pool2"
# interior side of the first part's tiles: (256 + 16)^2 / 256^2 = 1.13x its pixels
SPLIT_TILE = 256


def _grid_layer(upto: str) -> str:
    """The layer whose pooling grid the tiles keep: the one after a pooling (its output's)."""
    return LAYER_NAMES[LAYER_NAMES.index(upto) + 1] if upto.startswith("pool") else upto


def split_applies(hw: Tuple[int, int], circular: bool, split: str = SPLIT_AT) -> bool:
    """Whether SplitLoss can evaluate an image of ``hw``: always, unless it is tileable (VGG
    circular) and a side is off the first part's pooling grid (4 px)."""
    s = grid_stride([_grid_layer(split)])
    return not circular or not (hw[0] % s or hw[1] % s)


class SplitLoss:
    """A level's loss and its exact gradient with VGG up to ``split`` on tiles of ``tile`` px and
    the rest whole (see the module's docstring). Called as
    :class:`~pytexsynth.synthesis.tiled.TiledLoss` is: ``(x, terms, scales) -> (loss, values, grad)``.
    Every rank of a process group computes all of it (no collectives)."""

    def __init__(self, vgg: VGG19, layers: Sequence[str], hw: Tuple[int, int], split: str = SPLIT_AT,
                 tile: int = SPLIT_TILE):
        self.vgg, self.layers, self.hw = vgg, tuple(layers), tuple(hw)
        index = LAYER_NAMES.index
        deepest = max(self.layers, key=index)
        self.split = split if index(deepest) > index(split) else None  # None: every layer on the tiles
        self.upto = split if self.split else deepest
        self.head_layers = [n for n in self.layers if index(n) <= index(self.upto)]
        self.tail_layers = [n for n in self.layers if index(n) > index(self.upto)]
        grid = _grid_layer(self.upto)
        self.stride = layer_stride(grid)  # of the first part's output
        self.tiles = plan_tiles(self.hw, tile, exact_halo([self.upto]), (grid,), vgg.circular)

    def __call__(self, x: torch.Tensor, terms, scales) -> Tuple[torch.Tensor, List[torch.Tensor], torch.Tensor]:
        """(loss, each term's weighted value, d loss / d x) at the image ``x`` (1, C, H, W)."""
        parts = [make_part(t, s, self.layers, self.hw) for t, s in zip(terms, scales)]
        grams, maps, head = self._pass1(x, parts)
        image = x.detach().requires_grad_(True)
        with torch.enable_grad():
            head_leaf = head.requires_grad_(True) if head is not None else None
            tail = self.vgg.tail(head_leaf, self.split, self.tail_layers) if self.tail_layers else {}
            gram_leaves = {k: g.requires_grad_(True) for k, g in grams.items()}
            map_leaves = {n: m.requires_grad_(True) for n, m in maps.items()}
            values = [self._value(k, p, gram_leaves, map_leaves, tail, image) for k, p in enumerate(parts)]
            loss = torch.stack(values).sum()
            leaves = [image, *([head_leaf] if head_leaf is not None else []), *gram_leaves.values(), *map_leaves.values()]
            grads = (torch.autograd.grad(loss, leaves, allow_unused=True) if loss.requires_grad
                     else [None] * len(leaves))
        dx, rest = grads[0], list(grads[1:])
        d_head = rest.pop(0) if head_leaf is not None else None
        d_grams = {k: g for k, g in zip(gram_leaves, rest[: len(gram_leaves)]) if g is not None}
        d_maps = {n: g for n, g in zip(map_leaves, rest[len(gram_leaves):]) if g is not None}
        grad = self._pass2(x, parts, d_head, d_grams, d_maps)
        if dx is not None:
            grad += dx
        return loss.detach(), [v.detach() for v in values], grad

    def _pass1(self, x: torch.Tensor, parts):
        """Without autograd, tile by tile: ({(part, layer index): Gram matrix} of the first part's
        layers for Gram terms, {layer: whole-image map} of them for the other terms, the first
        part's whole output map (None when no layer is deeper))."""
        grams: Dict[Tuple[int, int], torch.Tensor] = {}
        maps: Dict[str, torch.Tensor] = {}
        head: Optional[torch.Tensor] = None
        mapped = {n for p in parts if not isinstance(p, GramPart) for n in p.layers if n in self.head_layers}
        with torch.no_grad():
            for t in self.tiles:
                out, feats = self.vgg.head(read_tile(x, t), self.upto, self.head_layers)
                crops = crops_of(feats, t)
                for k, p in enumerate(parts):
                    if isinstance(p, GramPart):
                        for i, n in enumerate(p.layers):
                            if n in crops:
                                g = p.partial(crops[n], i)
                                grams[(k, i)] = g if (k, i) not in grams else grams[(k, i)] + g
                for n in mapped:
                    if n not in maps:
                        maps[n] = x.new_zeros((x.shape[0], layer_channels(n), *map_size(self.hw, n)),
                                              dtype=crops[n].dtype)
                    maps[n][(..., *t.in_image(layer_stride(n)))] = crops[n]
                if self.split is not None:
                    if head is None:
                        head = x.new_zeros((x.shape[0], out.shape[1], *map_size(self.hw, _grid_layer(self.upto))),
                                           dtype=out.dtype)
                        if self.vgg.channels_last:
                            head = head.contiguous(memory_format=torch.channels_last)
                    head[(..., *t.in_image(self.stride))] = out[(..., *t.interior(self.stride))]
                del out, feats, crops  # this tile's maps, before the next tile's forward
        return grams, maps, head

    def _value(self, k: int, part, grams, maps, tail, image: torch.Tensor) -> torch.Tensor:
        """Part ``k``'s weighted value from the first part's Gram matrices / maps and the rest's features."""
        if isinstance(part, GramPart):
            gs = [grams[(k, i)] if (k, i) in grams else part.partial(tail[n], i) for i, n in enumerate(part.layers)]
            return part.scale * part.loss_of(gs)
        feats = {n: maps[n] if n in maps else tail[n] for n in part.layers}
        return part.scale * part.term.fn(feats, image)

    def _pass2(self, x: torch.Tensor, parts, d_head, d_grams, d_maps) -> torch.Tensor:
        """The image's gradient through the first part, tile by tile, in tile order."""
        grad = torch.zeros_like(x)
        if d_head is None and not d_grams and not d_maps:
            return grad
        for t in self.tiles:
            xt = read_tile(x, t).detach().clone().requires_grad_(True)
            with torch.enable_grad():
                out, feats = self.vgg.head(xt, self.upto, self.head_layers)
                crops = crops_of(feats, t)
                pieces = []
                if d_head is not None:
                    pieces.append(fixed_order_sum(d_head[(..., *t.in_image(self.stride))]
                                                  * out[(..., *t.interior(self.stride))]))
                for (k, i), dg in d_grams.items():
                    pieces.append(fixed_order_sum(dg * parts[k].partial(crops[parts[k].layers[i]], i)))
                for n, dm in d_maps.items():
                    pieces.append(fixed_order_sum(dm[(..., *t.in_image(layer_stride(n)))] * crops[n].to(dm.dtype)))
                (g,) = torch.autograd.grad(torch.stack(pieces).sum(), xt, allow_unused=True)
            if g is not None:
                add_tile(grad, g, t)
        return grad
