"""CLI of style-swap style transfer: ``stylize --method style-swap [--optimize]`` and ``train-inverse``.

``add_style_swap_commands(subparsers)`` extends the existing ``stylize`` command (its default
method stays Gatys' optimisation) and adds ``train-inverse``. The options, overwrite refusal,
progress bar and atomic writes are the other commands' (:mod:`pytexsynth.cli`).
"""

from __future__ import annotations

import argparse
import time

from .cli import CLIError, _add_run_options, _check_output, _positive_int, _progress, _report_every

__all__ = ["add_style_swap_commands"]

_SWAP_ONLY = ("optimize", "decoder", "strength", "patch_size", "stride", "layer", "style_size")
_GATYS_ONLY = (("blend", None, "--blend"), ("preserve_color", None, "--preserve-color"),
               ("content_weight", None, "--content-weight"), ("tileable", False, "--tileable"),
               ("init", "content", "--init"), ("model", None, "--model"), ("style_layers", None, "--style-layers"),
               ("histogram_weight", None, "--histogram-weight"), ("style_weight", None, "--style-weight"))


def _cmd_stylize_swap(a: argparse.Namespace) -> int:
    from .io import load_image, save_image
    from .style_transfer import style_swap_transfer

    for dest, default, flag in _GATYS_ONLY:
        if getattr(a, dest, default) != default:
            raise CLIError(f"{flag} does not apply to --method style-swap")
    styles = getattr(a, "styles", None) or []
    if len(styles) != 1:
        raise CLIError(f"--method style-swap takes exactly one STYLE image, got {len(styles)}")
    out = _check_output(a.output, a.force)
    content = load_image(a.content)
    style = load_image(styles[0])
    size = a.size if a.size else min(512, max(content.shape[-2:]))
    kw = dict(layer=a.layer, patch_size=a.patch_size, stride=a.stride, strength=a.strength, size=size,
              style_size=a.style_size or None, pooling=a.pooling, device=a.device)
    t0 = time.perf_counter()
    try:
        if a.optimize:
            if a.decoder is not None:
                raise CLIError("--decoder is for the one-pass method; leave it out with --optimize")
            callback, close = _progress(a, out, "style-swap")
            try:
                img = style_swap_transfer(content, style, method="optimize", iterations=a.iterations,
                                          optimizer=a.optimizer, lr=a.lr, pyramid=not a.no_pyramid,
                                          tv_weight=0.05 if a.tv_weight is None else a.tv_weight, seed=a.seed,
                                          balance=not a.raw_weights, callback=callback,
                                          report_every=_report_every(a), **kw)
            finally:
                close()
        else:
            img = style_swap_transfer(content, style, method="inverse", decoder=a.decoder, **kw)
    except (FileNotFoundError, TypeError) as exc:
        raise CLIError(str(exc)) from None
    save_image(img, out, force=a.force)
    how = "optimisation" if a.optimize else "one pass"
    print(f"wrote {out} ({img.shape[-1]}x{img.shape[-2]}, style-swap by {how}, {time.perf_counter() - t0:.1f} s)")
    return 0


def _unit_interval(v: str) -> float:
    try:
        f = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v!r}") from None
    if not 0.0 <= f <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v!r}")
    return f


def _extend_stylize(p: argparse.ArgumentParser) -> None:
    from .style_transfer import DEFAULT_STYLE_SIZE

    g = p.add_argument_group("style-swap (Chen & Schmidt 2016): any style, one pass through a decoder")
    g.add_argument("--method", choices=("gatys", "style-swap"), default="gatys",
                   help="gatys: optimise Gram statistics (default); style-swap: swap VGG patches with the style's")
    g.add_argument("--optimize", action="store_true",
                   help="style-swap by optimising the pixels (uses --iterations, --optimizer, --tv-weight (default "
                        "0.05 here), ...) instead of one pass through the decoder")
    g.add_argument("--decoder", default=None, metavar="MODEL",
                   help="an inverse network from `pytexsynth train-inverse` (default: the one shipped)")
    g.add_argument("--strength", type=_unit_interval, default=1.0,
                   help="0..1: blend of the content's features (0) and the swapped ones (1, default)")
    g.add_argument("--patch-size", type=_positive_int, default=3, help="style-swap patch size (default 3)")
    g.add_argument("--stride", type=_positive_int, default=1, help="style-swap patch stride (default 1)")
    g.add_argument("--layer", default="relu3_1", help="VGG-19 layer of the swap (default relu3_1)")
    g.add_argument("--style-size", type=int, default=DEFAULT_STYLE_SIZE,
                   help=f"reduce the style's longer side to this first (default {DEFAULT_STYLE_SIZE}; 0 keeps it; "
                        "time grows with content pixels x style pixels)")
    original = p.get_default("func")

    def dispatch(a: argparse.Namespace) -> int:
        if a.method == "style-swap":
            if getattr(a, "model", None) is not None:
                p.error("--model and --method style-swap are exclusive")
            return _cmd_stylize_swap(a)
        changed = [f"--{d.replace('_', '-')}" for d in _SWAP_ONLY if getattr(a, d) != p.get_default(d)]
        if changed:
            p.error(f"{', '.join(changed)} need --method style-swap")
        return original(a)

    p.set_defaults(func=dispatch)


def _cmd_train_inverse(a: argparse.Namespace) -> int:
    from .cli_networks import training_run_kwargs
    from .networks.train_inverse import train_inverse_network

    run = training_run_kwargs(a)
    try:
        net = train_inverse_network(a.image_dir, style_dir=a.style_dir, layer=a.layer, size=a.size, steps=a.steps,
                                    batch_size=a.batch_size, lr=a.lr, lr_schedule=a.lr_schedule,
                                    tv_weight=a.tv_weight, patch_size=a.patch_size, jitter=a.jitter, norm=a.norm,
                                    **run)
    except NotADirectoryError as exc:
        raise CLIError(str(exc)) from None
    print(f"saved {a.output} (final loss {net.losses[-1]:.4g}; {len(net.skipped_images)} unreadable image(s) "
          f"skipped); try: pytexsynth stylize photo.jpg painting.jpg --method style-swap --decoder {a.output} "
          "-o out.png")
    return 0


def add_style_swap_commands(subparsers) -> None:
    """Adds ``--method style-swap`` to ``stylize`` and the ``train-inverse`` command."""
    existing = getattr(subparsers, "_name_parser_map", {}).get("stylize")
    if existing is not None:
        _extend_stylize(existing)
    p = subparsers.add_parser("train-inverse", help="train a style-swap inverse network (decoder) on a folder of images",
                              description="Train the decoder that `stylize --method style-swap` runs features through "
                                          "(Chen & Schmidt 2016). Any folder of images works; nothing is downloaded.")
    p.add_argument("image_dir", help="folder of training images (content and, without --style-dir, style crops)")
    p.add_argument("-o", "--output", required=True, help="the trained decoder (.pt)")
    p.add_argument("--style-dir", default=None, help="a separate folder of style images")
    p.add_argument("--layer", default="relu3_1", help="VGG-19 layer to invert (default relu3_1)")
    p.add_argument("--size", type=_positive_int, default=128, help="training crop size (default 128)")
    p.add_argument("--steps", type=_positive_int, default=2000, help="optimisation steps (default 2000)")
    p.add_argument("--batch-size", type=_positive_int, default=2, help="content (and style) images per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 0.001)")
    p.add_argument("--lr-schedule", choices=("cosine", "step", "constant"), default="cosine")
    p.add_argument("--tv-weight", type=float, default=0.1, help="total-variation weight (default 0.1)")
    p.add_argument("--patch-size", type=_positive_int, default=3, help="style-swap patch size (default 3)")
    p.add_argument("--jitter", type=float, default=0.2, help="colour jitter amplitude (default 0.2; 0: off)")
    p.add_argument("--norm", choices=("none", "instance"), default="none", help="decoder normalisation")
    from .cli_networks import add_training_run_options

    add_training_run_options(p)
    _add_run_options(p)
    p.set_defaults(func=_cmd_train_inverse)
