"""Writes PNG files the way other programs do (every scanline filter, Adam7 interlacing, 16 bits
per sample, tRNS), so the 16-bit reader is tested on files it did not write itself."""

from __future__ import annotations

import struct
import zlib
from typing import Optional, Sequence

import numpy as np

ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


def _paeth(a, b, c):
    a, b, c = (x.astype(np.int32) for x in (a, b, c))
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)


def _filtered(samples: np.ndarray, filters: Sequence[int]) -> bytes:
    h, w, c = samples.shape
    if h == 0 or w == 0:
        return b""
    bpp = 2 * c
    lines = samples.astype(">u2").reshape(h, w * c).view(np.uint8).reshape(h, w * c * 2)
    out, above = [], np.zeros(lines.shape[1], np.uint8)
    for r, row in enumerate(lines):
        kind = filters[r % len(filters)]
        left = np.concatenate([np.zeros(bpp, np.uint8), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.uint8), above[:-bpp]])
        pred = {0: np.zeros_like(row), 1: left, 2: above, 3: ((left.astype(np.int32) + above) >> 1).astype(np.uint8),
                4: _paeth(left, above, upleft)}[kind]
        out.append(bytes([kind]) + (row - pred).tobytes())
        above = row
    return b"".join(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png16(samples: np.ndarray, filters: Sequence[int] = (0, 1, 2, 3, 4), interlace: bool = False,
          colour_key: Optional[Sequence[int]] = None) -> bytes:
    """A 16-bit PNG of (H, W, C) uint16 samples (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), rows
    filtered by ``filters`` in turn, optionally Adam7-interlaced and with a tRNS colour key."""
    h, w, c = samples.shape
    if interlace:
        raw = b"".join(_filtered(samples[r0::dr, c0::dc], filters) for r0, c0, dr, dc in ADAM7)
    else:
        raw = _filtered(samples, filters)
    head = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, COLOUR_TYPES[c], 0, 0, int(interlace)))
    trns = _chunk(b"tRNS", struct.pack(f">{c}H", *colour_key)) if colour_key is not None else b""
    return b"\x89PNG\r\n\x1a\n" + head + trns + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
