"""16-bit PNG read and write (colour and grey, with or without alpha), which Pillow cuts to 8 bits.

Pillow decodes a 16-bit RGB(A) PNG as 8-bit RGB(A) (and can write 16 bits for one channel only),
so :func:`pytexsynth.io.load_image` and :func:`~pytexsynth.io.save_image` use this codec for
16-bit files: the chunks are parsed here, the image data inflated with zlib and the scanline
filters undone. For RGB and RGBA the filters are undone by Pillow's own decoder, twice: PNG
filters act on each byte of a pixel separately (byte i predicted from byte i of the pixel to the
left, above, above-left), so decoding the file once as big-endian and once as little-endian
16-bit samples (Pillow keeps the high byte of each) yields the high and the low bytes exactly
(20 ms for 512 x 512). Otherwise (grey+alpha, or a Pillow whose decoder setup differs) numpy
undoes them: None, Sub and Up vectorised over the row, Average and Paeth (whose bytes depend on
their left neighbour) one pixel at a time, about 100x slower.
Interlaced (Adam7) files, the tRNS colour key and every colour type with 16 bits per sample are
read; ancillary chunks (gamma, ICC profiles, text) are ignored, as Pillow's 8-bit path does.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import BinaryIO, List, Optional, Tuple

import numpy as np
from PIL import Image

__all__ = ["png16_colour_type", "read_png16", "write_png16", "PNGError"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (16-bit colour types)
# Adam7 passes: (row start, column start, row step, column step)
ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))


class PNGError(ValueError):
    """A 16-bit PNG file whose structure is damaged (the message says what)."""


def _chunks(data: bytes):
    if not data.startswith(SIGNATURE):
        raise PNGError("not a PNG file")
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise PNGError(f"the {kind.decode('latin-1')!r} chunk is truncated")
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise PNGError(f"the {kind.decode('latin-1')!r} chunk's checksum does not match (damaged file)")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise PNGError("the file ends before its IEND chunk (truncated)")


def png16_colour_type(head: bytes) -> Optional[int]:
    """The colour type (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA) of a file starting with ``head``
    (its first 26 bytes at least) when it is a 16-bit PNG, else None."""
    if len(head) >= 26 and head.startswith(SIGNATURE) and head[12:16] == b"IHDR" and head[24] == 16:
        return head[25]
    return None


def _unfilter(data: memoryview, height: int, row_bytes: int, bpp: int) -> np.ndarray:
    """The (height, row_bytes) uint8 scanlines of filtered, inflated PNG data."""
    if len(data) < height * (row_bytes + 1):
        raise PNGError("the image data is shorter than the image (truncated)")
    rows = np.frombuffer(data, dtype=np.uint8, count=height * (row_bytes + 1)).reshape(height, row_bytes + 1)
    out = np.zeros((height, row_bytes), dtype=np.uint8)
    above = np.zeros(row_bytes, dtype=np.uint8)
    for r in range(height):
        kind, line = int(rows[r, 0]), rows[r, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: a running sum per byte lane of a pixel
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:
            cur = line + above
        elif kind in (3, 4):
            cur = _unfilter_sequential(line, above, bpp, kind)
        else:
            raise PNGError(f"row {r} has an unknown filter type {kind}")
        out[r] = cur
        above = cur
    return out


def _unfilter_sequential(line: np.ndarray, above: np.ndarray, bpp: int, kind: int) -> np.ndarray:
    """Average (3) or Paeth (4): pixel by pixel, the bytes of one pixel together (int16 math)."""
    raw = line.reshape(-1, bpp).astype(np.int16)
    up = above.reshape(-1, bpp).astype(np.int16)
    cur = np.zeros_like(raw)
    left = np.zeros(bpp, dtype=np.int16)
    upleft = np.zeros(bpp, dtype=np.int16)
    for i in range(raw.shape[0]):
        b = up[i]
        if kind == 3:
            pred = (left + b) >> 1
        else:
            p = left + b - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - b), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, b, upleft))
        left = (raw[i] + pred) & 0xFF
        cur[i] = left
        upleft = b
    return cur.astype(np.uint8).reshape(-1)


def _samples(data: memoryview, height: int, width: int, channels: int) -> Tuple[np.ndarray, int]:
    """(height, width, channels) uint16 samples of one (sub-)image and the bytes it used."""
    if height == 0 or width == 0:
        return np.zeros((height, width, channels), dtype=np.uint16), 0
    row_bytes = width * channels * 2
    lines = _unfilter(data, height, row_bytes, channels * 2)
    return lines.view(">u2").reshape(height, width, channels).astype(np.uint16), height * (row_bytes + 1)


def _pillow_lanes(data: bytes, width: int, height: int, colour: int) -> Optional[np.ndarray]:
    """(H, W, C) uint16 samples of a 16-bit RGB (colour 2) or RGBA (6) PNG decoded by Pillow
    (see the module's docstring), or None where Pillow's decoder is not set up as expected."""
    mode, big, little = {2: ("RGB", "RGB;16B", "RGB;16L"), 6: ("RGBA", "RGBA;16B", "RGBA;16L")}[colour]
    halves = []
    for rawmode in (big, little):
        with Image.open(io.BytesIO(data)) as img:
            tile = img.tile
            if (img.mode != mode or img.size != (width, height) or len(tile) != 1 or tile[0][0] != "zip"
                    or tile[0][3] != big or not hasattr(tile[0], "_replace")):
                return None
            img.tile = [tile[0]._replace(args=rawmode)]
            img.load()
            halves.append(np.asarray(img, dtype=np.uint16))
    high, low = halves
    if high.shape != (height, width, len(mode)):
        return None
    return (high << 8) | low


def _header(data: bytes) -> Tuple[Tuple[int, ...], List[bytes], Optional[bytes]]:
    """(IHDR fields, IDAT bodies, tRNS body or None) of a PNG file's bytes."""
    header, idat, key = None, [], None
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body[:13]) if len(body) >= 13 else None
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"tRNS":
            key = body
    if header is None:
        raise PNGError("no IHDR chunk")
    return header, idat, key


def _decode_numpy(idat: List[bytes], width: int, height: int, channels: int, interlace: int) -> np.ndarray:
    try:
        raw = memoryview(zlib.decompress(b"".join(idat)))
    except zlib.error as exc:
        raise PNGError(f"the image data cannot be inflated: {exc}") from exc
    if not interlace:
        return _samples(raw, height, width, channels)[0]
    image = np.zeros((height, width, channels), dtype=np.uint16)
    offset = 0
    for r0, c0, dr, dc in ADAM7:
        h, w = max(0, (height - r0 + dr - 1) // dr), max(0, (width - c0 + dc - 1) // dc)
        sub, used = _samples(raw[offset:], h, w, channels)
        image[r0::dr, c0::dc] = sub
        offset += used
    return image


def read_png16(fh: BinaryIO) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """A 16-bit PNG as float32 (H, W, C) samples in [0, 1] (C = 1 grey, 2 grey+alpha, 3 RGB,
    4 RGBA) and the tRNS colour key (C samples in [0, 1]) or None.

    Raises:
        PNGError: a damaged file, or not 16 bits per sample.
        PIL.Image.DecompressionBombError: more pixels than Pillow's safety limit allows.
    """
    data = fh.read()
    (width, height, depth, colour, _, _, interlace), idat, key = _header(data)
    if depth != 16 or colour not in CHANNELS:
        raise PNGError(f"expected 16 bits per sample, got bit depth {depth} and colour type {colour}")
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > 2 * limit:
        raise Image.DecompressionBombError(f"{width} x {height} pixels exceeds the limit of {2 * limit}")
    channels = CHANNELS[colour]
    image = _pillow_lanes(data, width, height, colour) if colour in (2, 6) else None
    if image is None:
        image = _decode_numpy(idat, width, height, channels, interlace)
    colour_key = None
    if key is not None and colour in (0, 2) and len(key) >= 2 * channels:
        colour_key = np.frombuffer(key[:2 * channels], dtype=">u2").astype(np.float32) / 65535.0
    return image.astype(np.float32) / 65535.0, colour_key


def _filtered(lines: np.ndarray, bpp: int) -> bytes:
    """Each row filtered by Sub or Up, whichever has the smaller sum of signed residuals (libpng's
    heuristic), with its filter byte."""
    out: List[bytes] = []
    above = np.zeros(lines.shape[1], dtype=np.uint8)
    for row in lines:
        sub = row.copy()
        sub[bpp:] = row[bpp:] - row[:-bpp]
        up = row - above
        cost = [np.abs(c.view(np.int8).astype(np.int32)).sum() for c in (sub, up)]
        kind, best = (1, sub) if cost[0] <= cost[1] else (2, up)
        out.append(bytes([kind]) + best.tobytes())
        above = row
    return b"".join(out)


def write_png16(fh: BinaryIO, samples: np.ndarray) -> None:
    """Writes (H, W) grey or (H, W, 3) RGB samples in [0, 1] as a 16-bit PNG."""
    a = samples if samples.ndim == 3 else samples[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"write_png16: expects (H, W) or (H, W, 3) samples, got shape {samples.shape}")
    height, width, channels = a.shape
    words = np.round(np.clip(a, 0.0, 1.0) * 65535.0).astype(">u2")
    lines = words.reshape(height, width * channels).view(np.uint8).reshape(height, width * channels * 2)
    colour = 2 if channels == 3 else 0

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    fh.write(SIGNATURE)
    fh.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)))
    fh.write(chunk(b"IDAT", zlib.compress(_filtered(lines, channels * 2), 6)))
    fh.write(chunk(b"IEND", b""))
