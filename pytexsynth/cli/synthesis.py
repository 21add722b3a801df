"""The optimisation commands: ``texture``, ``demo``, and the Gatys method of ``stylize``."""

from __future__ import annotations

import argparse
import glob
import math
import time
from pathlib import Path
from typing import Optional

from .common import (PREVIEW_SIZE, CLIError, UsageError, add_bits_option, add_run_options, check_output, halo_value,
                     positive_int, progress, report_every, tile_value)
from .distributed import writes_files
from .options import add_style_options, content_option_kwargs, style_option_kwargs

__all__ = ["add_optimisation_options", "add_synthesis_commands", "stylize_gatys", "demo_inputs", "check_snapshots"]


def add_optimisation_options(p: argparse.ArgumentParser, default_size: Optional[int]) -> None:
    """The options of every optimisation-based command (texture, stylize)."""
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, ...)")
    add_bits_option(p)
    p.add_argument("--size", type=positive_int, default=default_size,
                   help="output size in pixels (longer side)" + (f" (default {default_size})" if default_size else
                                                                 " (default: the content's, at most 512)"))
    p.add_argument("--iterations", type=positive_int, default=None,
                   help="iterations at the finest level; each coarser level gets twice as many (L-BFGS "
                        "counts function evaluations; default with L-BFGS: texture 60 at the finest level and 40 at "
                        "each coarser one, stylize 30 and 20 (its coarsest level at least 128 px), "
                        "each level stopping early once 10 evaluations gained under 1%%; Adam: 200)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--lr", type=float, default=None, help="step size (default 1.0 L-BFGS, 0.02 Adam)")
    p.add_argument("--no-pyramid", action="store_true", help="optimise at the final size only")
    p.add_argument("--style-weight", type=float, default=None,
                   help="Gram (style) loss weight (stylize: of the Gram matrices' squared relative error against the "
                        "content's, default 6; texture: default 1)")
    p.add_argument("--histogram-weight", type=float, default=None, help="histogram loss weight (0: off)")
    p.add_argument("--tv-weight", type=float, default=None,
                   help="total-variation weight (default 0; 0.05 with --method style-swap --optimize)")
    p.add_argument("--style-scale", type=float, default=1.0, help="style image scale (2: bigger features)")
    p.add_argument("--style-layers", nargs="+", default=None, metavar="LAYER",
                   help="VGG layers of the Gram loss (default relu1_1 relu2_1 relu3_1 relu4_1 relu5_1)")
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument("--tileable", action="store_true",
                   help="seamlessly tileable output (every method; a content is made periodic first)")
    p.add_argument("--raw-weights", action="store_true",
                   help="use the weights as given (no per-term gradient normalisation; always so in stylize's "
                        "default method, whose terms are relative errors)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--save-every", type=positive_int, default=None, metavar="N",
                   help="also save the current image every N iterations (OUT stem + .stepNNNNN)")
    p.add_argument("--report-every", type=positive_int, default=10, metavar="N",
                   help="update the progress bar's loss every N iterations (each update waits for the device)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--tile", type=tile_value, default="auto", metavar="{auto,none,checkpoint,PX}",
                   help="how large images are evaluated: auto (default: whole when it fits the free memory, else "
                        "checkpointed, else in the largest tiles that fit; the same loss and gradient), a tile side "
                        "in pixels, checkpoint, or none (refuse what does not fit)")
    p.add_argument("--halo", type=halo_value, default="exact", metavar="{exact,PX}",
                   help="pixels read around each tile (default exact: VGG's reach, 80 px to relu5_1; fewer: an "
                        "approximate gradient)")
    add_style_options(p)
    add_run_options(p)


def _synthesis_kwargs(args: argparse.Namespace) -> dict:
    kw = dict(iterations=args.iterations, optimizer=args.optimizer, lr=args.lr, pyramid=not args.no_pyramid,
              tv_weight=0.0 if args.tv_weight is None else args.tv_weight, style_scale=args.style_scale,
              tileable=args.tileable, pooling=args.pooling, seed=args.seed, balance=not args.raw_weights,
              device=args.device, report_every=report_every(args), tile=args.tile, halo=args.halo)
    for name in ("style_weight", "histogram_weight", "style_layers", "content_weight"):
        if getattr(args, name, None) is not None:
            kw[name] = getattr(args, name)
    kw.update(style_option_kwargs(args))
    return kw


def _with_progress(args: argparse.Namespace, out: Path, desc: str, synthesise):
    """(image, seconds, planned iterations) of ``synthesise(callback)`` run with a progress bar
    (--save-every snapshots beside ``out``)."""
    callback, close = progress(args, out, desc)
    t0 = time.perf_counter()
    try:
        img = synthesise(callback)
    finally:
        close()
    return img, time.perf_counter() - t0, callback.state["total"]


def check_snapshots(args: argparse.Namespace, out: Path) -> None:
    """--save-every's snapshots (OUT stem + .stepNNNNN) must not overwrite files of an earlier run
    midway: refused before the run unless --force."""
    if not getattr(args, "save_every", None) or args.force:
        return
    old = sorted(out.parent.glob(f"{glob.escape(out.stem)}.step[0-9]*{glob.escape(out.suffix)}"))
    if old:
        raise CLIError(f"--save-every would overwrite {len(old)} snapshot(s) of an earlier run, e.g. {str(old[0])!r}; "
                       "pass --force, or another -o")


def _run_and_save(args: argparse.Namespace, out: Path, desc: str, synthesise) -> int:
    """Runs ``synthesise(callback)`` with a progress bar and saves the image to ``out``."""
    from ..io import save_image

    check_snapshots(args, out)
    img, seconds, planned = _with_progress(args, out, desc, synthesise)
    if not writes_files():  # torchrun: every rank holds the same image; rank 0 writes it
        return 0
    save_image(img, out, force=args.force, bits=args.bits)
    what = f"preview, at most {planned} iterations; drop --preview for the full run, " if getattr(
        args, "preview", False) else ""
    print(f"wrote {out} ({img.shape[-1]}x{img.shape[-2]}, {what}{seconds:.1f} s)")
    return 0


def _cmd_texture(args: argparse.Namespace) -> int:
    from ..io import load_image
    from ..synthesis import synthesize_texture

    out = check_output(args.output, args.force, bits=args.bits)
    exemplar = load_image(args.exemplar)
    kw = _synthesis_kwargs(args)
    return _run_and_save(args, out, "texture", lambda cb: synthesize_texture(exemplar, args.size, callback=cb, **kw))


def stylize_gatys(args: argparse.Namespace) -> int:
    """``stylize`` by Gatys' optimisation (the default method): one or more STYLE images."""
    from ..io import load_image
    from ..synthesis import transfer_style
    from ..synthesis.gatys import TRANSFER_STYLE_WEIGHT

    out = check_output(args.output, args.force, bits=args.bits)
    content = load_image(args.content)
    styles = [load_image(s) for s in args.styles]
    if args.blend is not None and len(args.blend) != len(styles):
        raise CLIError(f"--blend has {len(args.blend)} weights for {len(styles)} style images")
    size = args.size if args.size else min(512, max(content.shape[-2:]))
    kw = dict(_synthesis_kwargs(args), **content_option_kwargs(args, content, styles))
    kw["balance"] = False  # the terms are relative errors: no gradient balancing
    strength = getattr(args, "style_strength", None)
    if strength is not None:
        if args.style_weight is not None:
            raise UsageError("give --style-weight or --style-strength, not both")
        if not math.isfinite(strength) or strength < 0:
            raise UsageError(f"--style-strength must be a finite number >= 0, got {strength!r}")
        kw["style_weight"] = TRANSFER_STYLE_WEIGHT * strength
    if getattr(args, "preview", False):  # one level, as the full run's coarsest
        size, kw["pyramid"] = min(size, PREVIEW_SIZE), False
    return _run_and_save(args, out, "stylize", lambda cb: transfer_style(
        content, styles, size, blend=args.blend, preserve_color=args.preserve_color, callback=cb, **kw))


def demo_inputs() -> dict:
    """Paths of the sample images shipped in ``pytexsynth/data`` (CC0, from scikit-image)."""
    from importlib.resources import files

    root = files("pytexsynth") / "data"
    return {name: Path(str(root / f"{name}.png")) for name in ("chelsea", "coffee", "brick")}


def _cmd_demo(args: argparse.Namespace) -> int:
    """Tileable texture from a brick wall, and a cat photo in a coffee photo's style."""
    from ..io import load_image, save_image
    from ..synthesis import synthesize_texture, transfer_style

    outdir = Path(args.output_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    inputs = demo_inputs()
    jobs = {
        "texture": ("tileable 256x256 texture from brick.png", lambda cb: synthesize_texture(
            load_image(inputs["brick"]), 256, iterations=[40, 20, 12], tileable=True, tv_weight=0.2, callback=cb,
            report_every=10, device=args.device)),
        "stylize": ("chelsea.png in the style of coffee.png, 256 px, at stylize's defaults", lambda cb: transfer_style(
            load_image(inputs["chelsea"]), load_image(inputs["coffee"]), 256, callback=cb, report_every=10,
            device=args.device)),
    }
    t_all = time.perf_counter()
    for name, (what, synthesise) in jobs.items():
        out = outdir / f"{name}.png"
        img, seconds, _ = _with_progress(args, out, name, synthesise)
        # The demo folder is the demo's own: its files are replaced on every run.
        save_image(img, out, force=True)
        if name == "texture":
            save_image(img.repeat(1, 1, 2, 2), outdir / "texture-tiled-2x2.png", force=True)
        print(f"wrote {out}: {what} ({seconds:.1f} s)")
    for name, path in inputs.items():
        save_image(load_image(path), outdir / f"input-{name}.png", force=True)
    print(f"demo done in {time.perf_counter() - t_all:.1f} s; see {outdir}/")
    return 0


def add_synthesis_commands(sub) -> None:
    """``texture`` and ``demo`` (``stylize`` is :mod:`pytexsynth.cli.stylize`'s)."""
    p = sub.add_parser("texture", help="synthesise more of an exemplar texture",
                       description="Texture synthesis (Gatys et al.; Risser et al.) with a coarse-to-fine pyramid.")
    p.add_argument("exemplar", help="exemplar texture image")
    add_optimisation_options(p, default_size=256)
    p.set_defaults(func=_cmd_texture)

    p = sub.add_parser("demo", help="run on the bundled sample images, writing to ./pytexsynth-demo/")
    p.add_argument("--output-dir", default="pytexsynth-demo", help=argparse.SUPPRESS)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    add_run_options(p)
    p.set_defaults(func=_cmd_demo)
