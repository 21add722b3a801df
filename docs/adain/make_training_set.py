"""Writes the AdaIN decoder's training set: content and style folders, nothing downloaded.

- content/: scikit-image's data images that ship inside its wheel (public domain, CC0 or "no
  known copyright restrictions" per skimage.data's docstrings), leaving out every image the
  quality harness judges (benchmarks/quality_inputs.py: astronaut, chelsea, coffee, rocket,
  motorcycle, camera, brick, grass, gravel, immunohistochemistry), so the benchmark pairs are
  out of sample; plus 24 of the procedural pictures below (other seeds than the styles).
- style/: 72 procedurally generated pictures (seeded): fractal-noise colour fields, flat-colour
  polygons with outlines, cross-hatching, dots, random-walk brush curves and plaids, each on a
  random palette; plus the colour images of content/.

The harness's own drawn paintings (strokes, mosaic, waves) are not used.

    python docs/adain/make_training_set.py /tmp/adain-train      # writes content/ and style/
"""

from __future__ import annotations

import colorsys
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SKIMAGE = ("hubble_deep_field.jpg", "retina.jpg", "coins.png", "clock_motion.png", "moon.png", "page.png",
           "text.png", "cell.png", "microaneurysms.png", "horse.png", "color.png", "logo.png")
COLOUR = ("hubble_deep_field.jpg", "retina.jpg", "color.png", "logo.png")
SIDE = 384


def palette(rng: np.random.Generator, n: int) -> np.ndarray:
    base = rng.random()
    hues = (base + rng.uniform(0, 0.6) * np.arange(n) / n + rng.normal(0, 0.05, n)) % 1.0
    return np.array([colorsys.hsv_to_rgb(h, rng.uniform(0.2, 1.0), rng.uniform(0.15, 1.0)) for h in hues]) * 255


def fractal(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """Sum of octaves of smoothly upsampled noise, through a random colour ramp."""
    field = np.zeros((side, side))
    for octave in range(1, 7):
        n = 2 ** octave
        small = Image.fromarray((rng.random((n, n)) * 255).astype(np.uint8))
        field += np.asarray(small.resize((side, side), Image.BICUBIC), float) / 255 / 1.6 ** octave
    field = (field - field.min()) / (np.ptp(field) + 1e-9)
    if rng.random() < 0.5:  # marble veins
        field = (np.sin(field * rng.uniform(6, 20) + np.linspace(0, rng.uniform(0, 8), side)[None]) + 1) / 2
    pal = palette(rng, 4)
    idx = field * (len(pal) - 1)
    lo = np.floor(idx).astype(int).clip(0, len(pal) - 2)
    t = (idx - lo)[..., None]
    return pal[lo] * (1 - t) + pal[lo + 1] * t


def polygons(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    pal = palette(rng, 6)
    img = Image.new("RGB", (side, side), tuple(int(v) for v in pal[0]))
    d = ImageDraw.Draw(img)
    outline = (20, 20, 25) if rng.random() < 0.5 else None
    for _ in range(int(rng.integers(30, 200))):
        cx, cy, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(8, 90)
        k = int(rng.integers(3, 7))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        pts = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in ang]
        d.polygon(pts, fill=tuple(int(v) for v in pal[rng.integers(len(pal))]), outline=outline)
    return np.asarray(img, float)


def hatching(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    pal = palette(rng, 4)
    img = Image.new("RGB", (side, side), tuple(int(v) for v in pal[0]))
    d = ImageDraw.Draw(img)
    angles = rng.uniform(0, np.pi, int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(400, 2500))):
        a = angles[rng.integers(len(angles))] + rng.normal(0, 0.08)
        x, y, ln = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(6, 40)
        c = tuple(int(v) for v in pal[1 + rng.integers(len(pal) - 1)])
        d.line([(x, y), (x + ln * np.cos(a), y + ln * np.sin(a))], fill=c, width=int(rng.integers(1, 4)))
    return np.asarray(img, float)


def dots(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    pal = palette(rng, 5)
    img = Image.new("RGB", (side, side), tuple(int(v) for v in pal[0]))
    d = ImageDraw.Draw(img)
    rmax = rng.uniform(2, 14)
    for _ in range(int(rng.integers(500, 4000))):
        x, y, r = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(1, rmax)
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in pal[rng.integers(len(pal))]))
    return np.asarray(img, float)


def curves(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """Random-walk brush curves of varying width, softened."""
    pal = palette(rng, 5)
    img = Image.new("RGB", (side, side), tuple(int(v) for v in pal[0]))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(60, 400))):
        x, y, a = rng.uniform(0, side), rng.uniform(0, side), rng.uniform(0, 2 * np.pi)
        w, c = int(rng.integers(2, 16)), pal[rng.integers(len(pal))] + rng.normal(0, 12, 3)
        pts = [(x, y)]
        for _ in range(int(rng.integers(4, 20))):
            a += rng.normal(0, 0.35)
            x, y = x + 6 * np.cos(a), y + 6 * np.sin(a)
            pts.append((x, y))
        d.line(pts, fill=tuple(int(v) for v in np.clip(c, 0, 255)), width=w, joint="curve")
    return np.asarray(img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5))), float)


def plaid(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    pal = palette(rng, 4)
    yy, xx = np.mgrid[0:side, 0:side].astype(float)
    a = rng.uniform(0, np.pi)
    u, v = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
    p1, p2 = rng.uniform(6, 60, 2)
    m = ((u % p1) < p1 * rng.uniform(0.2, 0.6)).astype(int) + 2 * ((v % p2) < p2 * rng.uniform(0.2, 0.6))
    out = pal[m]
    return out + rng.normal(0, rng.uniform(0, 20), out.shape)


KINDS = (fractal, polygons, hatching, dots, curves, plaid)


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = KINDS[seed % len(KINDS)](rng)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def main(dest: str) -> None:
    import skimage

    src = Path(skimage.__file__).parent / "data"
    content, style = Path(dest) / "content", Path(dest) / "style"
    content.mkdir(parents=True, exist_ok=True)
    style.mkdir(parents=True, exist_ok=True)
    for name in SKIMAGE:  # motorcycle_right.png is left out too: nearly the harness's left view
        shutil.copyfile(src / name, content / name)
    for name in COLOUR:
        shutil.copyfile(src / name, style / name)
    for seed in range(72):
        picture(seed).save(style / f"procedural-{seed:03d}.png")
    for seed in range(1000, 1024):
        picture(seed).save(content / f"procedural-{seed:04d}.png")
    print(f"wrote {len(list(content.iterdir()))} content and {len(list(style.iterdir()))} style images under {dest}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "adain-train")
