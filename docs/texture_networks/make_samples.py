"""Trains a texture network on a CC0 texture from scikit-image, on CPU, and writes a picture of
samples beside the exemplar (the acceptance picture of Texture Networks).

    python docs/texture_networks/make_samples.py --texture gravel --steps 150 \
        --work /tmp/tn-accept --out docs/texture_networks/gravel_samples.png

The exemplar (skimage.data.gravel / brick / grass) is CC0 (CC0Textures), grayscale, used as RGB.
Training resumes from --work/checkpoint.pt when it exists (so it can be run in pieces; a finished
run only redraws the picture). With --reference the picture also shows ``synthesize_texture``'s
output (default settings, seed 0) and the script prints the Gram loss of every panel, scored as
benchmarks/bench_networks.py scores them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Dict, List

import torch

import pytexsynth
from pytexsynth.io import resize_image, save_image


def exemplar(name: str, side: int) -> torch.Tensor:
    from skimage import data

    img = torch.from_numpy(getattr(data, name)()).float().div(255)
    img = img[None, None].repeat(1, 3, 1, 1) if img.dim() == 2 else img.permute(2, 0, 1)[None, :3]
    return resize_image(img, side)


class GramScorer:
    """The Gram loss an image reaches against the exemplar, as the benchmark scores it: VGG-19
    relu1_1..relu5_1 (zero padding, max pooling: synthesize_texture's defaults), each layer a
    relative error (GramStyleLoss's "auto" weights)."""

    def __init__(self, ex: torch.Tensor):
        from pytexsynth.losses import GramStyleLoss

        self.vgg = pytexsynth.VGG19()
        with torch.no_grad():
            feats = self.vgg(ex)
        self.loss = GramStyleLoss([feats])
        # one layer's loss alone, divided by the layer count, is that layer's term of the sum
        self.layer_losses = {n: GramStyleLoss([{n: f}]) for n, f in feats.items()}

    @torch.no_grad()
    def __call__(self, img: torch.Tensor) -> List[float]:
        """One score per image of the batch."""
        return [float(self.loss(self.vgg(img[i:i + 1].cpu()))) for i in range(img.shape[0])]

    @torch.no_grad()
    def per_layer(self, img: torch.Tensor) -> Dict[str, float]:
        """The terms of the first image's score, by layer (they sum to the score)."""
        feats = self.vgg(img[:1].cpu())
        return {n: float(m(feats)) / len(self.layer_losses) for n, m in self.layer_losses.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--texture", default="gravel", choices=["gravel", "brick", "grass", "rough_wall"])
    p.add_argument("--exemplar-size", type=int, default=256)
    p.add_argument("--size", type=int, default=128, help="training size")
    p.add_argument("--sample-size", type=int, default=256, help="size of the pictured samples")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--lr-schedule", default="step", choices=["step", "cosine", "constant"])
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--norm", default="batch", choices=["batch", "instance"])
    p.add_argument("--reference", action="store_true", help="add synthesize_texture's output and score all")
    p.add_argument("--work", default="/tmp/tn-accept")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.manual_seed(0)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ex = exemplar(a.texture, a.exemplar_size)
    t0 = time.time()
    log = open(work / "log.txt", "a")

    def say(msg: str) -> None:
        print(msg, flush=True)
        print(msg, file=log, flush=True)

    def cb(step, loss):
        print(f"{step} {loss:.5f} {time.time() - t0:.1f}s", file=log, flush=True)

    net = pytexsynth.train_texture_network(
        ex, size=a.size, steps=a.steps, batch_size=a.batch_size, lr=a.lr, lr_schedule=a.lr_schedule,
        lr_decay_every=max(1, a.steps // 3), channels=a.channels, norm=a.norm,
        checkpoint=work / "checkpoint.pt", checkpoint_every=10, resume=True, output=work / "model.pt",
        device="cpu", progress=False, callback=cb)
    say(f"trained {a.steps} steps ({time.time() - t0:.0f} s in this run); final training loss {net.losses[-1]:.4f}")
    # Exemplar | three samples (seeds 1, 2, 3) [| synthesize_texture's output], all at --sample-size.
    s = a.sample_size
    # a crop keeps the exemplar's scale (the samples have it); smaller exemplars are resized
    fits = min(ex.shape[-2:]) >= s
    panels: Dict[str, torch.Tensor] = {"exemplar": ex[..., :s, :s] if fits else resize_image(ex, (s, s))}
    samples = net.generate(3, s, seed=1)
    panels.update({f"sample {i + 1}": samples[i:i + 1] for i in range(3)})
    if a.reference:
        t = time.time()
        panels["synthesize_texture"] = pytexsynth.synthesize_texture(ex, s, seed=0, device="cpu")
        say(f"synthesize_texture (default settings) took {time.time() - t:.0f} s")
        score = GramScorer(ex)
        for name, img in panels.items():
            layers = ", ".join(f"{n} {v:.5f}" for n, v in score.per_layer(img).items())
            say(f"Gram loss of {name}: {score(img)[0]:.5f} ({layers})")
        # Context: the exemplar itself, mirrored or rotated, is the same texture arranged otherwise.
        ex_s = panels["exemplar"]
        for name, img in (("flipped left-right", ex_s.flip(-1)), ("flipped up-down", ex_s.flip(-2)),
                          ("rotated 90 degrees", ex_s.rot90(1, (2, 3)))):
            say(f"Gram loss of the exemplar {name}: {score(img)[0]:.5f}")
        scores = score(net.generate(8, s, seed=0))
        say(f"network samples (seed 0, 8 of them): mean {sum(scores) / len(scores):.5f}, "
            f"min {min(scores):.5f}, max {max(scores):.5f}")
    gap = torch.ones(1, 3, s, 8)
    row = [x for img in panels.values() for x in (img.cpu(), gap)][:-1]
    save_image(torch.cat(row, 3)[0], a.out, force=True)
    say(f"wrote {a.out}")


if __name__ == "__main__":
    main()
