"""Tiles of an image for VGG-19: the halo that keeps a tile's interior features exact, the pooling
grid tile origins stay on, and reading / adding a tile with wrap-around (tileable images)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

from ..models.vgg import LAYER_NAMES, check_layers

__all__ = ["Tile", "plan_tiles", "exact_halo", "grid_stride", "layer_stride", "map_size", "read_tile", "add_tile"]


def grid_stride(layers: Sequence[str]) -> int:
    """2 ** (poolings before the deepest of ``layers``): tile origins on multiples of this keep
    every pooling cell of a tile one of the whole image's."""
    last = max(LAYER_NAMES.index(n) for n in check_layers(layers))
    return 2 ** sum(1 for n in LAYER_NAMES[:last] if n.startswith("pool"))


def exact_halo(layers: Sequence[str]) -> int:
    """The halo, in pixels (a multiple of :func:`grid_stride`), beyond which a cut in the image
    changes none of the features at ``layers``: each 3x3 convolution spreads a cut's padding by
    one row of its map, each 2x2 pooling halves that (rounding up) while doubling the stride.
    VGG-19 to relu5_1: 80 px; to relu4_2: 40 px."""
    wanted = set(check_layers(layers))
    spread, stride, need = 0, 1, 0
    for name in LAYER_NAMES[: max(LAYER_NAMES.index(n) for n in wanted) + 1]:
        if name.startswith("conv"):
            spread += 1
        elif name.startswith("pool"):
            spread, stride = -(-spread // 2), stride * 2
        if name in wanted:
            need = max(need, spread * stride)
    s = grid_stride(layers)
    return -(-need // s) * s


@dataclass(frozen=True)
class Tile:
    """One tile: its interior ``rows`` x ``cols`` (half-open, image pixels) and the input it reads,
    ``in_rows`` x ``in_cols`` (the interior and its halo; past the image's edge only when
    ``circular``, then read with wrap-around)."""

    rows: Tuple[int, int]
    cols: Tuple[int, int]
    in_rows: Tuple[int, int]
    in_cols: Tuple[int, int]

    def interior(self, stride: int) -> Tuple[slice, slice]:
        """The interior in a map of this ``stride`` computed from the tile's input."""
        (r0, r1), (c0, c1), a, b = self.rows, self.cols, self.in_rows[0], self.in_cols[0]
        return (slice((r0 - a) // stride, r1 // stride - a // stride),
                slice((c0 - b) // stride, c1 // stride - b // stride))

    def in_image(self, stride: int) -> Tuple[slice, slice]:
        """The interior in the whole image's map of this ``stride``."""
        (r0, r1), (c0, c1) = self.rows, self.cols
        return slice(r0 // stride, r1 // stride), slice(c0 // stride, c1 // stride)


def _spans(n: int, tile: int, halo: int, circular: bool) -> List[Tuple[Tuple[int, int], Tuple[int, int]]]:
    """(interior, input) spans along one side of ``n`` px: interiors of ``tile`` px, the last one
    ending at the edge."""
    out = []
    for a in range(0, n, tile):
        b = min(n, a + tile)
        out.append(((a, b), (a - halo, b + halo) if circular else (max(0, a - halo), min(n, b + halo))))
    return out


def plan_tiles(hw: Tuple[int, int], tile: int, halo: int, layers: Sequence[str], circular: bool = False) -> List[Tile]:
    """The tiles of an ``hw`` image, row-major: interiors of ``tile`` px (rounded down to the
    pooling grid, at least one cell of it), each read with ``halo`` px around (rounded up to the
    grid). Circular images (tileable synthesis) need sides on the grid; ValueError otherwise."""
    s = grid_stride(layers)
    tile = max(s, tile // s * s)
    halo = -(-halo // s) * s
    if circular and (hw[0] % s or hw[1] % s):
        raise ValueError(f"tile: a tileable image is tiled only with sides that are multiples of {s} px (VGG pools "
                         f"{s.bit_length() - 1} times before the deepest layer), got {hw[1]}x{hw[0]}; choose such a "
                         "size, or tile=None")
    return [Tile(r, c, ir, ic) for r, ir in _spans(hw[0], tile, halo, circular)
            for c, ic in _spans(hw[1], tile, halo, circular)]


def layer_stride(name: str) -> int:
    """Pixels per cell of a layer's map (2 ** poolings before it)."""
    return 2 ** sum(1 for n in LAYER_NAMES[: LAYER_NAMES.index(name)] if n.startswith("pool"))


def map_size(hw: Tuple[int, int], name: str) -> Tuple[int, int]:
    """(rows, cols) of a layer's map of an ``hw`` image (each pooling floors)."""
    h, w = hw
    for _ in range(layer_stride(name).bit_length() - 1):
        h, w = h // 2, w // 2
    return h, w


def read_tile(x: torch.Tensor, t: Tile) -> torch.Tensor:
    """The tile's input pixels (with wrap-around where its span leaves the image)."""
    (a, b), (c, d) = t.in_rows, t.in_cols
    h, w = x.shape[-2:]
    if 0 <= a and b <= h and 0 <= c and d <= w:
        return x[..., a:b, c:d]
    rows = torch.arange(a, b, device=x.device) % h
    cols = torch.arange(c, d, device=x.device) % w
    return x.index_select(-2, rows).index_select(-1, cols)


def add_tile(grad: torch.Tensor, g: torch.Tensor, t: Tile) -> None:
    """grad[tile's input] += g (with wrap-around where its span leaves the image)."""
    (a, b), (c, d) = t.in_rows, t.in_cols
    h, w = grad.shape[-2:]
    if 0 <= a and b <= h and 0 <= c and d <= w:
        grad[..., a:b, c:d] += g
        return
    rows = torch.arange(a, b, device=g.device) % h
    cols = torch.arange(c, d, device=g.device) % w
    wide = torch.zeros((*g.shape[:-1], w), dtype=g.dtype, device=g.device)
    wide.index_add_(-1, cols, g)  # a repeated index (a span longer than the side) adds up
    grad.index_add_(-2, rows, wide)
