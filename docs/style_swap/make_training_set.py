"""Copies the scikit-image data images the shipped decoder was trained on into a folder.

Only files that ship inside the scikit-image wheel are used (nothing is downloaded), all
public domain, CC0 or "no known copyright restrictions" per skimage.data's docstrings.
chelsea.png is left out on purpose: it is the sample photo the gallery picture stylises.

    python docs/style_swap/make_training_set.py /tmp/style-swap-train
"""

import shutil
import sys
from pathlib import Path

import skimage

FILES = ("astronaut.png", "coffee.png", "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg", "ihc.png",
         "camera.png", "brick.png", "grass.png", "gravel.png", "clock_motion.png", "coins.png")


def main(dest: str) -> None:
    src = Path(skimage.__file__).parent / "data"
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(src / name, out / name)
    print(f"copied {len(FILES)} images from {src} to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "style-swap-train")
