"""The feed-forward network commands: ``train-texture``, ``train-stylizer``, ``generate``,
``train-inverse``, and ``stylize --model`` (one pass through a trained stylisation network)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from .common import (PREVIEW_SIZE, CLIError, add_bits_option, add_run_options, check_output, load_network, positive_int,
                     size_arg)

__all__ = ["add_network_commands", "stylize_model"]


def _add_training_run_options(p: argparse.ArgumentParser) -> None:
    """Checkpointing, resume, seed, device and --force: the options every training command shares."""
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default OUTPUT.ckpt)")
    p.add_argument("--checkpoint-every", type=positive_int, default=100, metavar="N")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint when it exists")
    p.add_argument("--resume-anyway", action="store_true",
                   help="--resume even when the checkpoint was trained with other settings (the change is recorded "
                        "in the model's metadata)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available; torchrun: per rank)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output model")


def _training_run_kwargs(a: argparse.Namespace) -> dict:
    """The trainer's keyword arguments of _add_training_run_options (and output, progress), after
    refusing what would overwrite a file without --force: the model of another run (--resume
    overwrites it only when there is a checkpoint to continue from), or an existing checkpoint
    without --resume."""
    checkpoint = Path(a.checkpoint or str(a.output) + ".ckpt")
    a.resume = a.resume or a.resume_anyway
    resuming = a.resume and checkpoint.is_file()
    if a.resume and not checkpoint.is_file() and Path(a.output).exists() and not a.force:
        raise CLIError(f"{str(a.output)!r} exists and there is no checkpoint {str(checkpoint)!r} to resume from; "
                       "pass --force to train a new model over it")
    check_output(a.output, a.force or resuming, image=False)
    check_output(checkpoint, True, image=False)  # a folder we can write (its overwriting: below)
    if checkpoint.resolve() == Path(a.output).resolve():
        raise CLIError(f"--checkpoint {str(checkpoint)!r} is the output model itself; give another file")
    if checkpoint.exists() and not a.resume and not a.force:
        raise CLIError(f"checkpoint {str(checkpoint)!r} exists; pass --resume to continue from it or --force to "
                       "start again over it")
    return dict(output=a.output, checkpoint=str(checkpoint), checkpoint_every=a.checkpoint_every,
                resume=True if a.resume else None, resume_anyway=a.resume_anyway, seed=a.seed, device=a.device,
                progress=not a.quiet)


def _add_generator_training_options(p: argparse.ArgumentParser, size: int, steps: int, scales: int, norm: str) -> None:
    p.add_argument("-o", "--output", required=True, help="the trained model file (.pt)")
    p.add_argument("--size", type=positive_int, default=size, help=f"training image size (default {size})")
    p.add_argument("--steps", type=positive_int, default=steps, help=f"optimisation steps (default {steps})")
    p.add_argument("--batch-size", type=positive_int, default=4)
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    p.add_argument("--lr-schedule", choices=("step", "cosine", "constant"), default="step")
    p.add_argument("--style-weight", type=float, default=1.0)
    p.add_argument("--histogram-weight", type=float, default=0.0, help="histogram loss weight (0: off)")
    p.add_argument("--scales", type=positive_int, default=scales, help=f"generator scales K (default {scales})")
    p.add_argument("--channels", type=positive_int, default=8, help="channels each scale adds (default 8)")
    p.add_argument("--norm", choices=("batch", "instance"), default=norm, help=f"generator normalisation (default {norm})")
    _add_training_run_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _generator_training_kwargs(a: argparse.Namespace) -> dict:
    return dict(size=a.size, steps=a.steps, batch_size=a.batch_size, lr=a.lr, lr_schedule=a.lr_schedule,
                style_weight=a.style_weight, histogram_weight=a.histogram_weight, scales=a.scales,
                channels=a.channels, norm=a.norm, **_training_run_kwargs(a))


def _cmd_train_texture(a: argparse.Namespace) -> int:
    from ..training import train_texture_network

    net = train_texture_network(a.exemplar, exemplar_size=a.exemplar_size, **_generator_training_kwargs(a))
    print(f"saved {a.output} (final loss {net.losses[-1]:.4g}); try: pytexsynth generate {a.output} -o sample.png")
    return 0


def _cmd_train_stylizer(a: argparse.Namespace) -> int:
    from ..training import train_stylization_network

    net = train_stylization_network(a.style, a.content_dir, style_size=a.style_size, content_weight=a.content_weight,
                                    **_generator_training_kwargs(a))
    print(f"saved {a.output} (final loss {net.losses[-1]:.4g}; {len(net.skipped_images)} unreadable image(s) "
          f"skipped); try: pytexsynth stylize --model {a.output} photo.jpg -o out.png")
    return 0


def _cmd_train_inverse(a: argparse.Namespace) -> int:
    from ..training import train_inverse_network

    net = train_inverse_network(a.image_dir, style_dir=a.style_dir, layer=a.layer, size=a.size, steps=a.steps,
                                batch_size=a.batch_size, lr=a.lr, lr_schedule=a.lr_schedule, tv_weight=a.tv_weight,
                                patch_size=a.patch_size, jitter=a.jitter, norm=a.norm, **_training_run_kwargs(a))
    print(f"saved {a.output} (final loss {net.losses[-1]:.4g}; {len(net.skipped_images)} unreadable image(s) "
          f"skipped); try: pytexsynth stylize photo.jpg painting.jpg --method style-swap --decoder {a.output} "
          "-o out.png")
    return 0


def _refuse_unless_samples_fit(net, a: argparse.Namespace) -> None:
    """MemoryError (one line) before generating when the samples would not fit the device."""
    from ..networks.memory import generator_memory
    from ..synthesis.memory import refuse_unless_fits

    size = net.check_size(a.size)
    weights = sum(p.numel() * p.element_size() for p in net.parameters())
    parts = {"the network's weights": weights,
             f"{a.n} sample(s) at {size[1]}x{size[0]} px": generator_memory(net, a.n, size, training=False)}
    refuse_unless_fits("generate", parts, net.to_rgb.weight.device,
                       "make fewer samples at once (-n) or choose a smaller --size")


def _cmd_train_adain(a: argparse.Namespace) -> int:
    from ..training import train_adain_decoder

    net = train_adain_decoder(a.content_dir, a.style_dir, size=a.size, steps=a.steps, batch_size=a.batch_size,
                              lr=a.lr, lr_schedule=a.lr_schedule, style_weight=a.style_weight, style_loss=a.style_loss,
                              jitter=a.jitter,
                              padding=a.padding, width=a.width, **_training_run_kwargs(a))
    print(f"saved {a.output} (final loss {net.losses[-1]:.4g}; {len(net.skipped_images)} unreadable image(s) "
          f"skipped); try: pytexsynth stylize photo.jpg painting.jpg --method adain --decoder {a.output} -o out.png")
    return 0


def _add_train_adain(sub) -> None:
    p = sub.add_parser("train-adain", help="train an AdaIN decoder on folders of content and style images",
                       description="Train the decoder that `stylize --method adain` runs features through "
                                   "(Huang & Belongie 2017). Any folders of images work; nothing is downloaded.")
    p.add_argument("content_dir", help="folder of content images")
    p.add_argument("style_dir", help="folder of style images")
    p.add_argument("-o", "--output", required=True, help="the trained decoder (.pt)")
    p.add_argument("--size", type=positive_int, default=256, help="training crop size, a multiple of 8 (default 256)")
    p.add_argument("--steps", type=positive_int, default=2000, help="optimisation steps (default 2000)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="content (and style) images per step")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 0.0001, the paper's)")
    p.add_argument("--lr-schedule", choices=("cosine", "step", "constant"), default="cosine")
    p.add_argument("--style-loss", choices=("mean_std", "gram"), default="mean_std",
                   help="mean_std: the paper's per-channel mean and std losses (default); gram: relative Gram errors")
    p.add_argument("--style-weight", type=float, default=None,
                   help="style loss weight (default 10 with mean_std, the paper's; 1 with gram)")
    p.add_argument("--jitter", type=float, default=0.1, help="colour jitter amplitude (default 0.1; 0: off)")
    p.add_argument("--padding", choices=("reflect", "circular"), default="reflect", help="decoder padding")
    p.add_argument("--width", type=float, default=1.0, help="decoder channel multiplier in (0, 1] (default 1)")
    _add_training_run_options(p)
    add_run_options(p)
    p.set_defaults(func=_cmd_train_adain)


def _cmd_generate(a: argparse.Namespace) -> int:
    from ..io import save_image
    from ..networks import TextureGenerator

    out = Path(a.output)
    paths: List[Path] = [out] if a.n == 1 else [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(a.n)]
    for p in paths:
        check_output(p, a.force, bits=a.bits)
    net = load_network(a.model, a.device)
    if not isinstance(net, TextureGenerator):
        raise CLIError(f"{a.model} holds a {type(net).__name__}, not a texture generator "
                       "(use `pytexsynth stylize --model` for stylisation networks)")
    _refuse_unless_samples_fit(net, a)
    for p, x in zip(paths, net.generate(a.n, a.size, seed=a.seed)):
        save_image(x.cpu(), p, force=a.force, bits=a.bits)
        print(f"wrote {p}")
    return 0


def stylize_model(a: argparse.Namespace) -> int:
    """``stylize --model``: one pass through a trained stylisation network."""
    from ..io import load_image, save_image
    from ..networks import StylizationGenerator

    out = check_output(a.output, a.force, bits=a.bits)
    net = load_network(a.model, a.device)
    if not isinstance(net, StylizationGenerator):
        raise CLIError(f"{a.model} holds a {type(net).__name__}, not a stylisation network")
    size = a.size
    if getattr(a, "preview", False):
        size = min(size or PREVIEW_SIZE, PREVIEW_SIZE)
    x = load_image(a.content, size=size, device=net.to_rgb.weight.device)
    y = net.stylize(x, seed=a.seed, tileable=getattr(a, "tileable", False)).cpu()
    save_image(y, out, force=a.force, bits=a.bits)
    notes = [n for n, on in (("tileable", getattr(a, "tileable", False)), ("preview", getattr(a, "preview", False)))
             if on]
    print(f"wrote {out} ({y.shape[-1]}x{y.shape[-2]}" + "".join(f", {n}" for n in notes) + ")")
    return 0


def add_network_commands(sub) -> None:
    """train-texture, train-stylizer, generate and train-inverse (``stylize --model`` is part of
    :mod:`pytexsynth.cli.stylize`)."""
    p = sub.add_parser("train-texture", help="train a texture network on an exemplar (Texture Networks)",
                       description="Train a feed-forward texture generator; then `pytexsynth generate`.")
    p.add_argument("exemplar", help="exemplar texture image")
    p.add_argument("--exemplar-size", type=positive_int, default=None, help="resize the exemplar's longer side first")
    _add_generator_training_options(p, size=128, steps=1000, scales=5, norm="instance")
    p.set_defaults(func=_cmd_train_texture)

    p = sub.add_parser("train-stylizer", help="train a stylisation network for one style over a folder of images",
                       description="Train a feed-forward stylisation network; then `pytexsynth stylize --model`.")
    p.add_argument("style", help="style image")
    p.add_argument("content_dir", help="folder of content images (any images of yours; unreadable files are skipped)")
    p.add_argument("--style-size", type=positive_int, default=None, help="resize the style's longer side first")
    p.add_argument("--content-weight", type=float, default=1.0)
    _add_generator_training_options(p, size=256, steps=2000, scales=6, norm="batch")
    p.set_defaults(func=_cmd_train_stylizer)

    p = sub.add_parser("generate", help="make texture samples with a trained texture network",
                       description="Samples tile seamlessly; sizes must be multiples of 2**K (32 by default).")
    p.add_argument("model", help="a model from train-texture")
    p.add_argument("-o", "--output", required=True, help="output image; with -n > 1, NAME_0.png, NAME_1.png, ...")
    add_bits_option(p)
    p.add_argument("-n", type=positive_int, default=1, help="number of samples (default 1)")
    p.add_argument("--size", type=size_arg, default=256, help="N or HxW, multiples of 2**K (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("train-inverse", help="train a style-swap inverse network (decoder) on a folder of images",
                       description="Train the decoder that `stylize --method style-swap` runs features through "
                                   "(Chen & Schmidt 2016). Any folder of images works; nothing is downloaded.")
    p.add_argument("image_dir", help="folder of training images (content and, without --style-dir, style crops)")
    p.add_argument("-o", "--output", required=True, help="the trained decoder (.pt)")
    p.add_argument("--style-dir", default=None, help="a separate folder of style images")
    p.add_argument("--layer", default="relu3_1", help="VGG-19 layer to invert (default relu3_1)")
    p.add_argument("--size", type=positive_int, default=128, help="training crop size (default 128)")
    p.add_argument("--steps", type=positive_int, default=2000, help="optimisation steps (default 2000)")
    p.add_argument("--batch-size", type=positive_int, default=2, help="content (and style) images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 0.001)")
    p.add_argument("--lr-schedule", choices=("cosine", "step", "constant"), default="cosine")
    p.add_argument("--tv-weight", type=float, default=0.1, help="total-variation weight (default 0.1)")
    p.add_argument("--patch-size", type=positive_int, default=3, help="style-swap patch size (default 3)")
    p.add_argument("--jitter", type=float, default=0.2, help="colour jitter amplitude (default 0.2; 0: off)")
    p.add_argument("--norm", choices=("none", "instance"), default="none", help="decoder normalisation")
    _add_training_run_options(p)
    add_run_options(p)
    p.set_defaults(func=_cmd_train_inverse)
    _add_train_adain(sub)
