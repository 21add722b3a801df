"""CLI commands of the feed-forward networks: train-texture, train-stylizer, generate, and
``stylize --model`` (one pass through a trained stylisation network).

``add_network_commands(subparsers)`` adds them to the ``pytexsynth`` parser. When a ``stylize``
command already exists (optimisation-based style transfer), it gains a ``--model`` option and
its STYLE arguments become optional when ``--model`` is given; otherwise a ``stylize`` command
that takes ``--model`` is created.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Tuple, Union

from .cli import _positive_int

__all__ = ["add_network_commands"]


def _size(s: str) -> Union[int, Tuple[int, int]]:
    """'256' or '256x384' (height x width)."""
    parts = s.lower().split("x")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or HxW, got {s!r}") from None
    if len(vals) not in (1, 2) or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"size must be N or HxW with positive ints, got {s!r}")
    return vals[0] if len(vals) == 1 else (vals[0], vals[1])


def _check_output(path: str, force: bool) -> None:
    if Path(path).exists() and not force:
        raise SystemExit(f"pytexsynth: {path} exists; pass --force to overwrite it")


def _training_args(p: argparse.ArgumentParser, size: int, steps: int, scales: int, norm: str) -> None:
    p.add_argument("-o", "--output", required=True, help="the trained model file (.pt)")
    p.add_argument("--size", type=_positive_int, default=size, help=f"training image size (default {size})")
    p.add_argument("--steps", type=_positive_int, default=steps, help=f"optimisation steps (default {steps})")
    p.add_argument("--batch-size", type=_positive_int, default=4)
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    p.add_argument("--lr-schedule", choices=("step", "cosine", "constant"), default="step")
    p.add_argument("--style-weight", type=float, default=1.0)
    p.add_argument("--histogram-weight", type=float, default=0.0, help="histogram loss weight (0: off)")
    p.add_argument("--scales", type=_positive_int, default=scales, help=f"generator scales K (default {scales})")
    p.add_argument("--channels", type=_positive_int, default=8, help="channels each scale adds (default 8)")
    p.add_argument("--norm", choices=("batch", "instance"), default=norm, help=f"generator normalisation (default {norm})")
    add_training_run_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_training_run_options(p: argparse.ArgumentParser) -> None:
    """Checkpointing, resume, seed, device and --force: the options every training command shares."""
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default OUTPUT.ckpt)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=100, metavar="N")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint when it exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available; torchrun: per rank)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output model")


def training_run_kwargs(a: argparse.Namespace) -> dict:
    """The keyword arguments of add_training_run_options (and output, progress) for a trainer, after
    refusing to overwrite an existing model without --force or --resume."""
    _check_output(a.output, a.force or a.resume)
    return dict(output=a.output, checkpoint=a.checkpoint or str(a.output) + ".ckpt",
                checkpoint_every=a.checkpoint_every, resume=True if a.resume else None, seed=a.seed,
                device=a.device, progress=not a.quiet)


def _common_training_kwargs(a: argparse.Namespace) -> dict:
    return dict(size=a.size, steps=a.steps, batch_size=a.batch_size, lr=a.lr, lr_schedule=a.lr_schedule,
                style_weight=a.style_weight, histogram_weight=a.histogram_weight, scales=a.scales,
                channels=a.channels, norm=a.norm, **training_run_kwargs(a))


def _cmd_train_texture(a: argparse.Namespace) -> int:
    from .networks.trainers import train_texture_network

    net = train_texture_network(a.exemplar, exemplar_size=a.exemplar_size, **_common_training_kwargs(a))
    print(f"saved {a.output} (final loss {net.losses[-1]:.4g}); try: pytexsynth generate {a.output} -o sample.png")
    return 0


def _cmd_train_stylizer(a: argparse.Namespace) -> int:
    from .networks.trainers import train_stylization_network

    try:
        net = train_stylization_network(a.style, a.content_dir, style_size=a.style_size,
                                        content_weight=a.content_weight, **_common_training_kwargs(a))
    except (NotADirectoryError, ValueError) as exc:
        raise SystemExit(f"pytexsynth: {exc}") from None
    skipped = len(net.skipped_images)
    print(f"saved {a.output} (final loss {net.losses[-1]:.4g}; {skipped} unreadable image(s) skipped); "
          f"try: pytexsynth stylize --model {a.output} photo.jpg -o out.png")
    return 0


def _load(path: str, device):
    import torch

    from .networks import load_model

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return load_model(path, map_location=dev)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"pytexsynth: {exc}") from None


def _cmd_generate(a: argparse.Namespace) -> int:
    from .io import save_image
    from .networks import TextureGenerator

    net = _load(a.model, a.device)
    if not isinstance(net, TextureGenerator):
        raise SystemExit(f"pytexsynth: {a.model} holds a {type(net).__name__}, not a texture generator "
                         "(use `pytexsynth stylize --model` for stylisation networks)")
    out = Path(a.output)
    paths: List[Path] = [out] if a.n == 1 else [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(a.n)]
    for p in paths:
        _check_output(str(p), a.force)
    try:
        samples = net.generate(a.n, a.size, seed=a.seed)
    except ValueError as exc:
        raise SystemExit(f"pytexsynth: {exc}") from None
    for p, x in zip(paths, samples):
        save_image(x.cpu(), p, force=a.force)
        print(f"wrote {p}")
    return 0


def _cmd_stylize_model(a: argparse.Namespace) -> int:
    from .io import ImageLoadError, load_image, save_image
    from .networks import StylizationGenerator

    net = _load(a.model, a.device)
    if not isinstance(net, StylizationGenerator):
        raise SystemExit(f"pytexsynth: {a.model} holds a {type(net).__name__}, not a stylisation network")
    _check_output(a.output, a.force)
    try:
        x = load_image(a.content, size=getattr(a, "size", None), device=net.to_rgb.weight.device)
    except ImageLoadError as exc:
        raise SystemExit(f"pytexsynth: {exc}") from None
    y = net.stylize(x, seed=getattr(a, "seed", 0))
    save_image(y.cpu(), a.output, force=a.force)
    print(f"wrote {a.output}")
    return 0


def _extend_stylize(p: argparse.ArgumentParser) -> None:
    """Adds --model to an existing optimisation-based ``stylize`` command."""
    p.add_argument("--model", default=None, help="a trained stylisation network (train-stylizer): one pass, no STYLE")
    for action in p._actions:  # STYLE becomes optional: --model replaces it
        if action.dest in ("styles", "style"):
            action.nargs = "*"
    original = p.get_default("func")

    def dispatch(a: argparse.Namespace) -> int:
        styles = getattr(a, "styles", getattr(a, "style", None))
        if a.model is not None:
            if styles:
                p.error("give either STYLE image(s) or --model, not both")
            return _cmd_stylize_model(a)
        if not styles:
            p.error("the following arguments are required: STYLE (or --model)")
        return original(a)

    p.set_defaults(func=dispatch)


def add_network_commands(subparsers) -> None:
    """Adds train-texture, train-stylizer, generate and ``stylize --model`` to ``subparsers``
    (the object returned by ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser("train-texture", help="train a texture network on an exemplar (Texture Networks)",
                              description="Train a feed-forward texture generator; then `pytexsynth generate`.")
    p.add_argument("exemplar", help="exemplar texture image")
    p.add_argument("--exemplar-size", type=_positive_int, default=None, help="resize the exemplar's longer side first")
    _training_args(p, size=128, steps=1000, scales=5, norm="instance")
    p.set_defaults(func=_cmd_train_texture)

    p = subparsers.add_parser("train-stylizer", help="train a stylisation network for one style over a folder of images",
                              description="Train a feed-forward stylisation network; then `pytexsynth stylize --model`.")
    p.add_argument("style", help="style image")
    p.add_argument("content_dir", help="folder of content images (any images of yours; unreadable files are skipped)")
    p.add_argument("--style-size", type=_positive_int, default=None, help="resize the style's longer side first")
    p.add_argument("--content-weight", type=float, default=1.0)
    _training_args(p, size=256, steps=2000, scales=6, norm="batch")
    p.set_defaults(func=_cmd_train_stylizer)

    p = subparsers.add_parser("generate", help="make texture samples with a trained texture network",
                              description="Samples tile seamlessly; sizes must be multiples of 2**K (32 by default).")
    p.add_argument("model", help="a model from train-texture")
    p.add_argument("-o", "--output", required=True, help="output image; with -n > 1, NAME_0.png, NAME_1.png, ...")
    p.add_argument("-n", type=_positive_int, default=1, help="number of samples (default 1)")
    p.add_argument("--size", type=_size, default=256, help="N or HxW, multiples of 2**K (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=_cmd_generate)

    existing = getattr(subparsers, "_name_parser_map", {}).get("stylize")
    if existing is not None:
        _extend_stylize(existing)
        return
    p = subparsers.add_parser("stylize", help="stylise an image with a trained stylisation network (--model)")
    p.add_argument("content", help="content image")
    p.add_argument("--model", required=True, help="a model from train-stylizer")
    p.add_argument("-o", "--output", required=True, help="output image")
    p.add_argument("--size", type=_positive_int, default=None, help="resize the content's longer side first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=_cmd_stylize_model)
