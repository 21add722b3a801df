"""Trains the shipped AdaIN decoder (pytexsynth/data/adain_decoder.pt) on the CPU.

The decoder is AdaINDecoder(width=1): the paper's relu4_1 mirror, 9 convolutions. Its
relu3_1 -> pixels half (5 convolutions) is copied from the shipped style-swap decoder
pytexsynth/data/inverse_relu3_1.pt (InverseNet("relu3_1"): the same layers, trained to invert
VGG-19's relu3_1, see docs/style_swap/README.md) and stays frozen. Its relu4_1 -> relu3_1 half
(4 convolutions, 1/8 and 1/4 resolution) is trained on pytexsynth's training loop
(pytexsynth.training.train: Adam, cosine schedule, checkpoints, resume, seeded batches) to
invert VGG-19's fourth block: for random crops x of the content and style folders,

    loss = mse(head(relu4_1(x) / 400), relu3_1(x) / 400) / mean((relu3_1(x) / 400)^2)

(a relative feature error; 1/400 is both halves' input scale; VGG-19 runs in bfloat16 autocast
here, the head in float32). One step needs one VGG forward
pass to relu4_1 and the small head, about 5x cheaper than a step of train_adain_decoder (which
back-propagates through the decoder and VGG-19 again). Stylisation then decodes
AdaIN(relu4_1(content), relu4_1(style)), as the paper does.

    python docs/adain/make_training_set.py /tmp/adain-train
    OMP_NUM_THREADS=1 python docs/adain/train_decoder.py /tmp/adain-train /tmp/adain-run
    python docs/adain/train_decoder.py --ship /tmp/adain-run/adain_decoder.pt pytexsynth/data/adain_decoder.pt

(--ship stores the weights in float16, 7 MB instead of 14; load_model reads them into the float32 network.)

Re-running the same command resumes from /tmp/adain-run/decoder.ckpt.
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pytexsynth.models import VGG19
from pytexsynth.networks import AdaINDecoder, load_model, save_model
from pytexsynth.synthesis.style_swap import default_decoder_path
from pytexsynth.training import ContentFolder, augment, train

STEPS, SIZE, BATCH, LR, JITTER, SEED = 2000, 128, 4, 1e-3, 0.1, 0


def initial_decoder() -> AdaINDecoder:
    torch.manual_seed(SEED)
    net = AdaINDecoder(width=1.0)
    inverse = load_model(default_decoder_path())
    convs = [m for m in net.body if isinstance(m, nn.Conv2d)]
    tail = [m for m in inverse.body if isinstance(m, nn.Conv2d)]
    for mine, theirs in zip(convs[-len(tail):], tail):
        mine.load_state_dict(theirs.state_dict())
        mine.requires_grad_(False)  # frozen: only the relu4_1 -> relu3_1 half trains
    return net


def head_of(net: AdaINDecoder) -> nn.Sequential:
    """The modules before the frozen relu3_1 -> pixels half (its first padding layer)."""
    convs = [i for i, m in enumerate(net.body) if isinstance(m, nn.Conv2d)]
    return net.body[:convs[4] - 1]


def main(data: str, run: str) -> None:
    torch.set_num_threads(1)
    out = Path(run)
    out.mkdir(parents=True, exist_ok=True)
    folders = [ContentFolder(Path(data) / "content", 2 * SIZE), ContentFolder(Path(data) / "style", 2 * SIZE)]
    vgg = VGG19(("relu3_1", "relu4_1"))
    net = initial_decoder()

    def batches(gen: torch.Generator, step: int) -> torch.Tensor:
        return torch.cat([augment(f.batch(BATCH // 2, gen), SIZE, gen, JITTER) for f in folders])

    def loss_fn(runner, x):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the targets: bf16 VGG
            f = {k: v.float() for k, v in vgg(x, ("relu3_1", "relu4_1")).items()}
        target = f["relu3_1"] * net.input_scale
        pred = head_of(getattr(runner, "module", runner))(f["relu4_1"] * net.input_scale)
        return F.mse_loss(pred, target) / target.square().mean()

    settings = {"kind": "adain-head", "data": str(Path(data).resolve()), "size": SIZE, "batch": BATCH,
                "jitter": JITTER}
    result = train(net, loss_fn, batches, steps=STEPS, lr=LR, lr_schedule="cosine", checkpoint=out / "decoder.ckpt",
                   checkpoint_every=100, resume=True, seed=SEED, device="cpu", desc="adain-head",
                   metadata=settings, settings=settings)
    save_model(result.model, out / "adain_decoder.pt", **{**result.metadata, "kind": "adain"}, steps=result.step,
               final_loss=result.losses[-1], recipe="docs/adain/train_decoder.py")


def ship(src: str, dst: str) -> None:
    """The trained decoder file with its weights rounded to float16 (half the size)."""
    data = torch.load(src, weights_only=True)
    data["state_dict"] = {k: v.half() for k, v in data["state_dict"].items()}
    torch.save(data, dst)


if __name__ == "__main__":
    if sys.argv[1] == "--ship":
        ship(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2])
