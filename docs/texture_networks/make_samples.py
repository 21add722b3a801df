"""Trains a texture network on a CC0 texture from scikit-image, on CPU, and writes a picture of
samples beside the exemplar (the acceptance picture of Texture Networks).

    python docs/texture_networks/make_samples.py --texture gravel --steps 150 \
        --work /tmp/tn-accept --out docs/texture_networks/gravel_samples.png

The exemplar (skimage.data.gravel / brick / grass) is CC0 (CC0Textures), grayscale, used as RGB.
Training resumes from --work/checkpoint.pt when it exists (so it can be run in pieces).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import pytexsynth
from pytexsynth.io import resize_image, save_image


def exemplar(name: str, side: int) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(getattr(data, name)()).float().div(255)
    img = img[None, None].repeat(1, 3, 1, 1) if img.dim() == 2 else img.permute(2, 0, 1)[None, :3]
    return resize_image(img, side)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--texture", default="gravel", choices=["gravel", "brick", "grass", "rough_wall"])
    p.add_argument("--exemplar-size", type=int, default=256)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--work", default="/tmp/tn-accept")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.manual_seed(0)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ex = exemplar(a.texture, a.exemplar_size)
    t0 = time.time()
    log = open(work / "log.txt", "a")

    def cb(step, loss):
        print(f"{step} {loss:.5f} {time.time() - t0:.1f}s", file=log, flush=True)

    net = pytexsynth.train_texture_network(
        ex, size=a.size, steps=a.steps, batch_size=a.batch_size, lr=a.lr, lr_decay_every=max(1, a.steps // 3),
        checkpoint=work / "checkpoint.pt", checkpoint_every=10, resume=True, output=work / "model.pt",
        device="cpu", progress=False, callback=cb)
    print(f"trained {a.steps} steps in {time.time() - t0:.0f} s (this run); final loss {net.losses[-1]:.4f}",
          file=log, flush=True)
    # Exemplar (at 256) | a 256 px sample | four 128 px samples (2x2): samples made after training.
    samples = net.generate(4, a.size, seed=1)
    big = net.generate(1, 2 * a.size, seed=2)
    grid = torch.cat([torch.cat([samples[0], samples[1]], 2), torch.cat([samples[2], samples[3]], 2)], 1)
    ex_panel = F.interpolate(ex, size=(2 * a.size, 2 * a.size), mode="bilinear", antialias=True, align_corners=False)[0]
    gap = torch.ones(3, 2 * a.size, 8)
    picture = torch.cat([ex_panel, gap, big[0], gap, grid], 2)
    save_image(picture, a.out, force=True)
    print(f"wrote {a.out}", file=log, flush=True)


if __name__ == "__main__":
    main()
