"""``stylize``: one command, three methods, one handler that dispatches explicitly.

- default (``--method gatys``): Gatys' optimisation, one or more STYLE images
  (:func:`pytexsynth.cli.synthesis.stylize_gatys`);
- ``--method style-swap``: style-swap (Chen & Schmidt 2016), one pass through a decoder, or
  ``--optimize``;
- ``--method adain``: AdaIN (Huang & Belongie 2017), one pass through a decoder, ``--alpha``,
  ``--refine K`` Gatys iterations after it (:func:`pytexsynth.transfer_style_fast`);
- ``--model MODEL``: one pass through a trained stylisation network, no STYLE
  (:func:`pytexsynth.cli.networks.stylize_model`).
"""

from __future__ import annotations

import argparse
import time

from .common import (PREVIEW_ITERATIONS, PREVIEW_SIZE, CLIError, UsageError, check_output, nonnegative_int,
                     positive_int, preview_path, progress, report_every, unit_interval)
from .distributed import writes_files
from .networks import stylize_model
from .options import add_content_options, style_option_kwargs
from .synthesis import add_optimisation_options, check_snapshots, stylize_gatys

__all__ = ["add_stylize_command"]

# Options of the style-swap method only, and (dest, default, flag) of those of the others only.
_SWAP_ONLY = ("optimize", "decoder", "strength", "patch_size", "stride", "layer", "style_size")
_NOT_SWAP = (("blend", None, "--blend"), ("preserve_color", None, "--preserve-color"),
             ("content_weight", None, "--content-weight"),
             ("init", "content", "--init"), ("style_layers", None, "--style-layers"),
             ("histogram_weight", None, "--histogram-weight"), ("style_weight", None, "--style-weight"),
             ("style_strength", None, "--style-strength"),
             ("content_layers", None, "--content-layers"), ("content_labels", None, "--content-labels"),
             ("style_labels", None, "--style-labels"), ("style_layer_weights", None, "--style-layer-weights"),
             ("histogram_bins", 256, "--histogram-bins"), ("histogram_mode", "interpolated", "--histogram-mode"))
# What a trained network (--model) does not use, beyond _NOT_SWAP's: refused rather than ignored.
_NOT_MODEL = (("weights", None, "--weights"), ("iterations", None, "--iterations"), ("optimizer", "lbfgs", "--optimizer"),
              ("lr", None, "--lr"), ("no_pyramid", False, "--no-pyramid"), ("tv_weight", None, "--tv-weight"),
              ("style_scale", 1.0, "--style-scale"), ("pooling", "max", "--pooling"),
              ("raw_weights", False, "--raw-weights"), ("save_every", None, "--save-every"), ("tile", "auto", "--tile"),
              ("halo", "exact", "--halo"))


# Options of the adain method only, with their defaults; the style-swap ones it refuses; those of
# the Gatys refinement, which need --refine K (dest, default).
_ADAIN_ONLY = (("alpha", 1.0, "--alpha"), ("refine", 0, "--refine"), ("precision", "auto", "--precision"))
_NOT_ADAIN = ("optimize", "strength", "patch_size", "stride", "layer", "style_size", "tile", "halo")
_REFINE_ONLY = (("optimizer", "lbfgs"), ("lr", None), ("style_weight", None), ("histogram_weight", None),
                ("tv_weight", None), ("style_layers", None), ("content_weight", None), ("pooling", "max"),
                ("raw_weights", False), ("save_every", None))


def _adain_usage(a: argparse.Namespace, defaults: dict) -> None:
    """One-line usage errors of --method adain: options of other methods, refinement options without --refine."""
    changed = [f"--{d.replace('_', '-')}" for d in _NOT_ADAIN if getattr(a, d) != defaults[d]]
    changed += [flag for flag, on in (("--model", a.model is not None), ("--iterations", a.iterations is not None),
                                      ("--no-pyramid", a.no_pyramid), ("--init", a.init != "content")) if on]
    if changed:
        hint = " (the refinement's iterations are --refine K)" if "--iterations" in changed else ""
        raise UsageError(f"{', '.join(changed)} do(es) not apply to --method adain{hint}")
    if not a.refine:
        refine_only = [f"--{d.replace('_', '-')}" for d, default in _REFINE_ONLY if getattr(a, d) != default]
        if refine_only:
            raise UsageError(f"{', '.join(refine_only)} apply to the refinement only: add --refine K")
    if not a.styles:
        raise UsageError("the following arguments are required: STYLE")
    if a.blend is not None and len(a.blend) != len(a.styles):
        raise CLIError(f"--blend has {len(a.blend)} weights for {len(a.styles)} style images")


def _refine_kwargs(a: argparse.Namespace) -> dict:
    kw = dict(optimizer=a.optimizer, lr=a.lr, pooling=a.pooling, balance=not a.raw_weights,
              report_every=report_every(a))
    for name in ("style_weight", "histogram_weight", "style_layers", "content_weight", "tv_weight"):
        if getattr(a, name, None) is not None:
            kw[name] = getattr(a, name)
    return kw


def _stylize_adain(a: argparse.Namespace, defaults: dict) -> int:
    from ..io import load_image, save_image
    from ..synthesis import transfer_style_fast

    _adain_usage(a, defaults)
    out = check_output(a.output, a.force, bits=a.bits)
    check_snapshots(a, out)
    content = load_image(a.content)
    styles = [load_image(s) for s in a.styles]
    size = a.size if a.size else min(512, max(content.shape[-2:]))
    if not 0 < a.style_scale <= 16:
        raise CLIError(f"--style-scale must be in (0, 16], got {a.style_scale}")
    style_size = None if a.style_scale == 1.0 else max(16, round(a.style_scale * size))
    extra = _refine_kwargs(a) if a.refine else {}
    t0 = time.perf_counter()
    callback, close = progress(a, out, "adain refine") if a.refine else (None, lambda: None)
    try:
        img = transfer_style_fast(content, styles, "adain", alpha=a.alpha, refine=a.refine, blend=a.blend,
                                  preserve_color=a.preserve_color, tileable=a.tileable, decoder=a.decoder,
                                  size=size, style_size=style_size, precision=a.precision, device=a.device,
                                  seed=a.seed, callback=callback, **extra)
    except (TypeError, FileNotFoundError) as exc:  # a decoder file of another kind, or none shipped
        raise CLIError(str(exc)) from exc
    finally:
        close()
    save_image(img, out, force=a.force, bits=a.bits)
    how = f"one pass + {a.refine} refinement evaluations" if a.refine else "one pass"
    print(f"wrote {out} ({img.shape[-1]}x{img.shape[-2]}, adain by {how}, {time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_stylize(a: argparse.Namespace, defaults: dict) -> int:
    if a.preview:  # small and quick, beside the output: OUT stem + .preview
        a.output = str(preview_path(a.output))
    if a.method == "adain":
        return _stylize_adain(a, defaults)
    adain_only = [flag for dest, default, flag in _ADAIN_ONLY if getattr(a, dest) != default]
    if adain_only:
        raise UsageError(f"{', '.join(adain_only)} need --method adain")
    if a.method == "style-swap":
        if a.model is not None:
            raise UsageError("--model and --method style-swap are exclusive")
        if a.preview and a.optimize:
            a.iterations = a.iterations or PREVIEW_ITERATIONS
        return _stylize_swap(a)
    changed = [f"--{d.replace('_', '-')}" for d in _SWAP_ONLY if getattr(a, d) != defaults[d]]
    if changed:
        raise UsageError(f"{', '.join(changed)} need --method style-swap")
    if a.model is not None:
        if a.styles:
            raise UsageError("give either STYLE image(s) or --model, not both")
        ignored = [flag for dest, default, flag in (*_NOT_SWAP, *_NOT_MODEL) if getattr(a, dest) != default]
        if ignored:
            raise UsageError(f"{', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to --model "
                             "(a trained network: one pass)")
        return stylize_model(a)
    if not a.styles:
        raise UsageError("the following arguments are required: STYLE (or --model)")
    if a.preview:
        a.iterations = a.iterations or PREVIEW_ITERATIONS
    return stylize_gatys(a)


def _stylize_swap(a: argparse.Namespace) -> int:
    from ..io import load_image, save_image
    from ..synthesis import style_swap

    for dest, default, flag in _NOT_SWAP:
        if getattr(a, dest) != default:
            raise CLIError(f"{flag} does not apply to --method style-swap")
    if len(a.styles) != 1:
        raise CLIError(f"--method style-swap takes exactly one STYLE image, got {len(a.styles)}")
    if a.optimize and a.decoder is not None:
        raise CLIError("--decoder is for the one-pass method; leave it out with --optimize")
    if not a.optimize and (a.tile, a.halo) != ("auto", "exact"):
        raise CLIError("--tile and --halo apply to --method style-swap --optimize only")
    out = check_output(a.output, a.force, bits=a.bits)
    content, style = load_image(a.content), load_image(a.styles[0])
    size = a.size if a.size else min(512, max(content.shape[-2:]))
    kw = dict(layer=a.layer, patch_size=a.patch_size, stride=a.stride, strength=a.strength,
              size=min(size, PREVIEW_SIZE) if a.preview else size, style_size=a.style_size or None,
              pooling=a.pooling, device=a.device, tileable=a.tileable, weights=style_option_kwargs(a)["weights"])
    t0 = time.perf_counter()
    try:
        if a.optimize:
            check_snapshots(a, out)
            callback, close = progress(a, out, "style-swap")
            try:
                img = style_swap.style_swap_transfer(
                    content, style, method="optimize", iterations=a.iterations, optimizer=a.optimizer, lr=a.lr,
                    pyramid=not a.no_pyramid, tv_weight=0.05 if a.tv_weight is None else a.tv_weight, seed=a.seed,
                    balance=not a.raw_weights, callback=callback, report_every=report_every(a), tile=a.tile,
                    halo=a.halo, **kw)
            finally:
                close()
        else:
            img = style_swap.style_swap_transfer(content, style, method="inverse", decoder=a.decoder, **kw)
    except TypeError as exc:  # a decoder file that holds another kind of network
        raise CLIError(str(exc)) from exc
    if not writes_files():  # torchrun: rank 0 writes
        return 0
    save_image(img, out, force=a.force, bits=a.bits)
    how = ("optimisation" if a.optimize else "one pass") + (", preview" if a.preview else "")
    print(f"wrote {out} ({img.shape[-1]}x{img.shape[-2]}, style-swap by {how}, {time.perf_counter() - t0:.1f} s)")
    return 0


def add_stylize_command(sub) -> None:
    from ..synthesis.style_swap import DEFAULT_STYLE_SIZE

    p = sub.add_parser("stylize", help="render a content image in the style of one or more images",
                       description="Style transfer: Gatys et al.'s optimisation with a coarse-to-fine pyramid "
                                   "(default), style-swap (--method style-swap), or a trained network (--model).")
    p.add_argument("content", help="content image")
    p.add_argument("styles", nargs="*", metavar="STYLE", help="style image(s) (none with --model)")
    add_optimisation_options(p, default_size=None)
    p.add_argument("--blend", type=float, nargs="+", default=None, metavar="W",
                   help="weights of the style images (default equal)")
    p.add_argument("--content-weight", type=float, default=None, help="content loss weight (default 1)")
    p.add_argument("--style-strength", type=float, default=None, metavar="S",
                   help="how strongly the style pulls against the content: 1 (default) is the tuned balance, 2 twice "
                        "as strong, 0.5 half (the style weight is S x 6; see docs/quality/README.md)")
    p.add_argument("--preserve-color", choices=("luminance", "histogram"), default=None,
                   help="keep the content's colours: transfer luminance only, or recolour the style")
    add_content_options(p)
    p.add_argument("--preview", action="store_true",
                   help=f"a quick look first: one level of at most {PREVIEW_SIZE} px and {PREVIEW_ITERATIONS} iterations "
                        "(unless --iterations), written to OUT's name + .preview (out.png -> out.preview.png); "
                        "then run without --preview")
    p.add_argument("--model", default=None, help="a trained stylisation network (train-stylizer): one pass, no STYLE")
    g = p.add_argument_group("style-swap (Chen & Schmidt 2016): any style, one pass through a decoder")
    g.add_argument("--method", choices=("gatys", "style-swap", "adain"), default="gatys",
                   help="gatys: optimise Gram statistics (default); style-swap: swap VGG patches with the style's; "
                        "adain: match each VGG channel's mean and std to the style's (one pass)")
    g.add_argument("--alpha", type=unit_interval, default=1.0, help="adain: style strength 0..1 (default 1)")
    g.add_argument("--refine", type=nonnegative_int, default=0, metavar="K",
                   help="adain: K Gatys iterations at the output size after the one pass (default 0); "
                        "--optimizer, --style-weight, ... then apply to them")
    g.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="adain: the one pass in bfloat16 where the hardware has it (auto, default) or float32")
    g.add_argument("--optimize", action="store_true",
                   help="style-swap by optimising the pixels (uses --iterations, --optimizer, --tv-weight (default "
                        "0.05 here), ...) instead of one pass through the decoder")
    g.add_argument("--decoder", default=None, metavar="MODEL",
                   help="style-swap: an inverse network from `pytexsynth train-inverse`; adain: a decoder from "
                        "`pytexsynth train-adain` (default: the one shipped)")
    g.add_argument("--strength", type=unit_interval, default=1.0,
                   help="0..1: blend of the content's features (0) and the swapped ones (1, default)")
    g.add_argument("--patch-size", type=positive_int, default=3, help="style-swap patch size (default 3)")
    g.add_argument("--stride", type=positive_int, default=1, help="style-swap patch stride (default 1)")
    g.add_argument("--layer", default="relu3_1", help="VGG-19 layer of the swap (default relu3_1)")
    g.add_argument("--style-size", type=int, default=DEFAULT_STYLE_SIZE,
                   help=f"reduce the style's longer side to this first (default {DEFAULT_STYLE_SIZE}; 0 keeps it; "
                        "time grows with content pixels x style pixels)")
    defaults = {d: p.get_default(d) for d in (*_SWAP_ONLY, *_NOT_ADAIN)}
    p.set_defaults(func=lambda a: _cmd_stylize(a, defaults))
