"""Makes docs/style_swap/chelsea_style_swap.png: the shipped decoder stylising the sample photo.

Rows: the sample textures shipped in pytexsynth/data (brick.png, coffee.png) as styles.
Columns: content | style | one pass at strength 1 | strength 0.5 | strength 0 (the decoded
content itself). The content is scikit-image's chelsea photo (the original of the sample
pytexsynth/data/chelsea.png, which is 128x85) at 256 px wide; the decoder never saw it in training.

    python docs/style_swap/make_picture.py
"""

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import skimage  # noqa: E402

from pytexsynth import style_swap_transfer  # noqa: E402
from pytexsynth.cli import demo_inputs  # noqa: E402
from pytexsynth.io import load_image, save_image  # noqa: E402


def main() -> None:
    content = load_image(Path(skimage.__file__).parent / "data" / "chelsea.png", size=256)
    h, w = content.shape[-2:]
    rows = []
    for name in ("brick", "coffee"):
        style = load_image(demo_inputs()[name])
        shown = F.interpolate(style, size=(h, h), mode="bilinear", align_corners=False)
        cells = [content, shown]
        for strength in (1.0, 0.5, 0.0):
            t0 = time.perf_counter()
            cells.append(style_swap_transfer(content, style, method="inverse", strength=strength, device="cpu"))
            print(f"{name} strength {strength}: {time.perf_counter() - t0:.2f} s")
        gap = torch.ones(1, 3, h, 4)
        rows.append(torch.cat([x for c in cells for x in (c, gap)][:-1], dim=3))
    sheet = torch.cat([rows[0], torch.ones(1, 3, 4, rows[0].shape[-1]), rows[1]], dim=2)
    out = ROOT / "docs" / "style_swap" / "chelsea_style_swap.png"
    save_image(sheet, out, force=True)
    print(f"wrote {out} ({sheet.shape[-1]}x{sheet.shape[-2]})")


if __name__ == "__main__":
    main()
