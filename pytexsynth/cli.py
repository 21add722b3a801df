"""The ``pytexsynth`` command.

Commands come in groups, each added to the sub-parsers by one function: ``info``,
:func:`add_synthesis_commands` (stylize, texture, demo); further groups (e.g. a feed-forward
network group's ``add_network_commands(sub)``) are added the same way in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import List, Optional


def _cmd_info(args: argparse.Namespace) -> int:
    from ._info import format_info, info

    print(format_info(info()))
    return 0


def add_info_command(sub) -> None:
    p = sub.add_parser("info", help="versions, compiled kernels, devices and VGG weights")
    p.set_defaults(func=_cmd_info)


# ---------------------------------------------------------------- synthesis commands

class CLIError(Exception):
    """A user-facing error: printed as ``pytexsynth: error: ...``, exit status 1."""


def _positive_int(v: str) -> int:
    try:
        i = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v!r}") from None
    if i < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v!r}")
    return i


def _add_common_options(p: argparse.ArgumentParser, default_size: Optional[int]) -> None:
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, ...)")
    p.add_argument("--size", type=_positive_int, default=default_size,
                   help="output size in pixels (longer side)" + (f" (default {default_size})" if default_size else
                                                                 " (default: the content's, at most 512)"))
    p.add_argument("--iterations", type=_positive_int, default=None,
                   help="iterations at the finest level; each coarser level gets twice as many "
                        "(default 100 with L-BFGS, 200 with Adam; L-BFGS counts function evaluations)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--lr", type=float, default=None, help="step size (default 1.0 L-BFGS, 0.02 Adam)")
    p.add_argument("--no-pyramid", action="store_true", help="optimise at the final size only")
    p.add_argument("--style-weight", type=float, default=None, help="Gram (style) loss weight")
    p.add_argument("--histogram-weight", type=float, default=None, help="histogram loss weight (0: off)")
    p.add_argument("--tv-weight", type=float, default=None,
                   help="total-variation weight (default 0; 0.05 with --method style-swap --optimize)")
    p.add_argument("--style-scale", type=float, default=1.0, help="style image scale (2: bigger features)")
    p.add_argument("--style-layers", nargs="+", default=None, metavar="LAYER",
                   help="VGG layers of the Gram loss (default relu1_1 relu2_1 relu3_1 relu4_1 relu5_1)")
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument("--tileable", action="store_true", help="seamlessly tileable output")
    p.add_argument("--raw-weights", action="store_true",
                   help="use the weights as given (no per-term gradient normalisation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--save-every", type=_positive_int, default=None, metavar="N",
                   help="also save the current image every N iterations (OUT stem + .stepNNNNN)")
    p.add_argument("--report-every", type=_positive_int, default=10, metavar="N",
                   help="update the progress bar's loss every N iterations (each update waits for the device)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    _add_run_options(p)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads (default: the idle cores, i.e. the usable cores minus the 1-minute load "
                        "average, at least 1; OMP_NUM_THREADS, when set, is respected)")


def default_threads() -> int:
    """CPU threads for a run: the cores this process may use minus the 1-minute load average,
    at least 1 and at most torch's default. OpenMP threads that outnumber the idle cores wait
    for each other at every parallel region while the OS runs other jobs on their cores: on
    the shared 2-core CI machine the demo took 123 s with 2 threads and 37 s with 1."""
    import torch

    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(torch.get_num_threads(), cpus - int(load + 0.5)))


def _apply_threads(args: argparse.Namespace) -> None:
    if not hasattr(args, "threads"):
        return
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    elif not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(default_threads())


def _check_output(path: str, force: bool) -> Path:
    from PIL import Image

    out = Path(path)
    if out.exists() and not force:
        raise CLIError(f"{str(out)!r} exists; use --force to overwrite it")
    if out.is_dir():
        raise CLIError(f"{str(out)!r} is a directory; give an image file name")
    if Image.registered_extensions().get(out.suffix.lower()) is None:
        raise CLIError(f"unknown image extension {out.suffix!r} in {str(out)!r}; use .png, .jpg, ...")
    return out


def _progress(args: argparse.Namespace, out: Path, desc: str):
    """A callback that drives a tqdm bar and the --save-every snapshots; and its closer."""
    from tqdm import tqdm

    from .io import save_image

    bar = None if args.quiet else tqdm(total=1, desc=desc, unit="it", dynamic_ncols=True, leave=True)
    state = {"done": 0}

    def callback(p) -> None:
        if bar is not None:
            if bar.total != p.total_steps:
                bar.total = p.total_steps
            bar.update(p.step - state["done"])
            bar.set_postfix(level=f"{p.level + 1}/{p.levels} {p.size[1]}x{p.size[0]}", loss=f"{p.loss:.4g}",
                            refresh=False)
        state["done"] = p.step
        if args.save_every and p.step % args.save_every == 0:
            snap = out.with_name(f"{out.stem}.step{p.step:05d}{out.suffix}")
            save_image(p.image, snap, force=args.force)

    def close() -> None:
        if bar is not None:
            bar.close()

    return callback, close


def _report_every(args: argparse.Namespace) -> int:
    # snapshots are taken at report steps, so report at least as often
    return math.gcd(args.report_every, args.save_every) if args.save_every else args.report_every


def _common_kwargs(args: argparse.Namespace) -> dict:
    kw = dict(iterations=args.iterations, optimizer=args.optimizer, lr=args.lr, pyramid=not args.no_pyramid,
              tv_weight=0.0 if args.tv_weight is None else args.tv_weight, style_scale=args.style_scale, tileable=args.tileable, pooling=args.pooling,
              seed=args.seed, balance=not args.raw_weights, device=args.device, report_every=_report_every(args))
    if args.style_weight is not None:
        kw["style_weight"] = args.style_weight
    if args.histogram_weight is not None:
        kw["histogram_weight"] = args.histogram_weight
    if args.style_layers:
        kw["style_layers"] = args.style_layers
    return kw


def _cmd_texture(args: argparse.Namespace) -> int:
    from .io import load_image, save_image
    from .synthesis import synthesize_texture

    out = _check_output(args.output, args.force)
    exemplar = load_image(args.exemplar)
    callback, close = _progress(args, out, "texture")
    t0 = time.perf_counter()
    try:
        img = synthesize_texture(exemplar, args.size, callback=callback, **_common_kwargs(args))
    finally:
        close()
    save_image(img, out, force=args.force)
    print(f"wrote {out} ({img.shape[-1]}x{img.shape[-2]}, {time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_stylize(args: argparse.Namespace) -> int:
    from .io import load_image, save_image
    from .synthesis import transfer_style

    out = _check_output(args.output, args.force)
    content = load_image(args.content)
    styles = [load_image(s) for s in args.styles]
    if args.blend is not None and len(args.blend) != len(styles):
        raise CLIError(f"--blend has {len(args.blend)} weights for {len(styles)} style images")
    size = args.size if args.size else min(512, max(content.shape[-2:]))
    callback, close = _progress(args, out, "stylize")
    kw = _common_kwargs(args)
    if args.content_weight is not None:
        kw["content_weight"] = args.content_weight
    t0 = time.perf_counter()
    try:
        img = transfer_style(content, styles, size, blend=args.blend, preserve_color=args.preserve_color,
                             init=args.init, callback=callback, **kw)
    finally:
        close()
    save_image(img, out, force=args.force)
    print(f"wrote {out} ({img.shape[-1]}x{img.shape[-2]}, {time.perf_counter() - t0:.1f} s)")
    return 0


def demo_inputs() -> dict:
    """Paths of the sample images shipped in ``pytexsynth/data`` (CC0, from scikit-image)."""
    from importlib.resources import files

    root = files("pytexsynth") / "data"
    return {name: Path(str(root / f"{name}.png")) for name in ("chelsea", "coffee", "brick")}


def _cmd_demo(args: argparse.Namespace) -> int:
    """Tileable texture from a brick wall, and a cat photo in a coffee photo's style."""
    import torch

    from .io import load_image, save_image
    from .synthesis import synthesize_texture, transfer_style

    outdir = Path(args.output_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    inputs = demo_inputs()
    t_all = time.perf_counter()
    jobs = [
        ("texture", "tileable 128x128 texture from brick.png"),
        ("stylize", "chelsea.png in the style of coffee.png, 128 px"),
    ]
    for name, what in jobs:
        args.output = str(outdir / f"{name}.png")
        args.save_every = None
        callback, close = _progress(args, Path(args.output), name)
        t0 = time.perf_counter()
        try:
            if name == "texture":
                img = synthesize_texture(load_image(inputs["brick"]), 128, iterations=[50, 15], tileable=True, tv_weight=0.2,
                                         callback=callback, report_every=10, device=args.device)
            else:
                img = transfer_style(load_image(inputs["chelsea"]), load_image(inputs["coffee"]), 128,
                                     iterations=[30, 15], min_side=32, callback=callback, report_every=10, device=args.device)
        finally:
            close()
        # The demo folder is the demo's own: its files are replaced on every run.
        save_image(img, args.output, force=True)
        if name == "texture":
            save_image(img.repeat(1, 1, 2, 2), outdir / "texture-tiled-2x2.png", force=True)
        print(f"wrote {args.output}: {what} ({time.perf_counter() - t0:.1f} s)")
    for name, path in inputs.items():
        save_image(load_image(path), outdir / f"input-{name}.png", force=True)
    print(f"demo done in {time.perf_counter() - t_all:.1f} s; see {outdir}/")
    return 0


def add_synthesis_commands(sub) -> None:
    """``stylize``, ``texture`` and ``demo``."""
    p = sub.add_parser("stylize", help="render a content image in the style of one or more images",
                       description="Style transfer (Gatys et al.) with a coarse-to-fine pyramid.")
    p.add_argument("content", help="content image")
    p.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s)")
    _add_common_options(p, default_size=None)
    p.add_argument("--blend", type=float, nargs="+", default=None, metavar="W",
                   help="weights of the style images (default equal)")
    p.add_argument("--content-weight", type=float, default=None, help="content loss weight (default 1)")
    p.add_argument("--preserve-color", choices=("luminance", "histogram"), default=None,
                   help="keep the content's colours: transfer luminance only, or recolour the style")
    p.add_argument("--init", choices=("content", "noise"), default="content")
    p.set_defaults(func=_cmd_stylize)

    p = sub.add_parser("texture", help="synthesise more of an exemplar texture",
                       description="Texture synthesis (Gatys et al.; Risser et al.) with a coarse-to-fine pyramid.")
    p.add_argument("exemplar", help="exemplar texture image")
    _add_common_options(p, default_size=256)
    p.set_defaults(func=_cmd_texture)

    p = sub.add_parser("demo", help="run on the bundled sample images, writing to ./pytexsynth-demo/")
    p.add_argument("--output-dir", default="pytexsynth-demo", help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    _add_run_options(p)
    p.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytexsynth", description="Neural texture synthesis and style transfer.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_info_command(sub)
    add_synthesis_commands(sub)
    # Further command groups: one call each.
    from .cli_networks import add_network_commands

    add_network_commands(sub)
    from .cli_style_swap import add_style_swap_commands

    add_style_swap_commands(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .io import ImageLoadError
    from .models.vgg import WeightsNotFoundError

    try:
        _apply_threads(args)
        return args.func(args)
    except (CLIError, ImageLoadError, WeightsNotFoundError, FileExistsError, MemoryError, ValueError) as exc:
        print(f"pytexsynth: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pytexsynth: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
