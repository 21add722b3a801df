"""Style-swap style transfer (Chen & Schmidt 2016): any style image, by optimisation or in one pass.

Both methods build the same target: the content image's VGG-19 features at one layer
(relu3_1 by default), every 3x3 patch replaced by its best-matching style patch
(:func:`pytexsynth.ops.style_swap`), written Phi_ss(C, S). ``strength`` blends it with the
content's own features, ``H = strength * Phi_ss + (1 - strength) * Phi(C)``.

* ``method="optimize"`` starts from the content image and minimises
  ``||Phi(I) - H||^2 + tv_weight * TV(I)`` over the pixels, with the optimisation engine of
  :mod:`pytexsynth.synthesis.engine` (coarse-to-fine pyramid, L-BFGS or Adam, per-term gradient
  balancing, progress callback, memory check).
* ``method="inverse"`` decodes H with an :class:`~pytexsynth.networks.InverseNet` in one forward
  pass (the paper's second part): the decoder shipped in ``pytexsynth/data`` by default.

Cost: matching compares every content position with every style patch, so it grows with their
product. The style image's longer side is therefore reduced to ``style_size`` (256 px by
default), which keeps a 512 px photo under 5 s in one pass on a 2-core CPU (measured 4.35 s,
benchmarks/results/style_transfer-cpu-xeon-1thread.md). The style's structures appear at the
scale they have in the reduced image: lower it for bigger strokes, raise it (or None) for finer
ones and more patches to choose from, at a price that grows with the style's pixel count.
"""

from __future__ import annotations

import functools
import os
from importlib.resources import files
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from .. import ops
from ..devices import resolve_device
from ..io import as_image, resize_image
from ..models.vgg import VGG19
from ..networks.base import load_model
from ..networks.inverse import INVERSE_LAYERS, InverseNet
from ..ops.checks import check_count, check_weights
from ..ops.fixed_order import fixed_order_mean, fixed_order_mse
from .common import ImageArg, Size, check_common, generator, output_size, tv_terms, vgg_factory
from .engine import Callback, Term, run_pyramid
from .memory import memory_for_run, one_pass_parts, refuse_unless_fits
from ..periodic import circular_pad, crop, periodic_component, periodic_resize, round_to_multiple

__all__ = ["style_swap_transfer", "default_decoder_path", "load_default_decoder", "swap_target", "METHODS",
           "DEFAULT_STYLE_SIZE"]

METHODS = ("optimize", "inverse")
DEFAULT_STYLE_SIZE = 256
DECODER_WRAP = 8  # feature cells of wrap-around a tileable one-pass decode adds on each side
_DECODER_FILE = "inverse_relu3_1.pt"
_TRAIN_HINT = ("train one with `pytexsynth train-inverse IMAGE_DIR -o decoder.pt` (any folder of images) and pass "
               "decoder='decoder.pt' (CLI: --decoder decoder.pt), or use method='optimize' (CLI: --optimize)")


def default_decoder_path() -> Path:
    """Where the package's trained relu3_1 decoder lives (``pytexsynth/data/inverse_relu3_1.pt``)."""
    return Path(str(files("pytexsynth") / "data" / _DECODER_FILE))


def load_default_decoder(device=None) -> InverseNet:
    """The shipped relu3_1 :class:`InverseNet` (eval mode).

    Raises:
        FileNotFoundError: the file is missing (e.g. a trimmed install); the message says how
            to train one.
    """
    path = default_decoder_path()
    if not path.is_file():
        raise FileNotFoundError(f"style_swap_transfer: the shipped decoder {path} is missing; {_TRAIN_HINT}")
    return load_model(path, map_location=device or "cpu")


def swap_target(content_features: torch.Tensor, style_features: torch.Tensor, patch_size: int = 3,
                stride: int = 1, strength: float = 1.0, precision: str = "ieee") -> torch.Tensor:
    """``strength * Phi_ss(C, S) + (1 - strength) * Phi(C)`` from the two feature maps."""
    swapped = ops.style_swap(content_features, style_features, patch_size, stride, precision)
    if strength == 1.0:
        return swapped
    return torch.lerp(content_features, swapped, float(strength))


def _swap(cf: torch.Tensor, sf: torch.Tensor, patch_size: int, stride: int, strength: float, precision: str,
          circular: bool) -> torch.Tensor:
    """:func:`swap_target`; ``circular``: the content's patches wrap around its edges (the
    features padded circularly, swapped, cropped), so a periodic content gives a periodic target."""
    if not circular:
        return swap_target(cf, sf, patch_size, stride, strength, precision)
    q = patch_size - 1
    return crop(swap_target(circular_pad(cf, q), sf, patch_size, stride, strength, precision), q)


def _check_args(layer, patch_size, stride, method, strength, style_size):
    if method not in METHODS:
        raise ValueError(f"style_swap_transfer: method must be 'optimize' or 'inverse', got {method!r}")
    if layer not in INVERSE_LAYERS:
        raise ValueError(f"style_swap_transfer: layer must be a VGG-19 ReLU layer ({', '.join(INVERSE_LAYERS)}), "
                         f"got {layer!r}")
    for name, v in (("patch_size", patch_size), ("stride", stride)):
        check_count(v, f"style_swap_transfer: {name}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"style_swap_transfer: strength must be a number in [0, 1], got {strength!r}")
    if style_size is not None and (isinstance(style_size, bool) or not isinstance(style_size, int) or style_size < 16):
        raise ValueError(f"style_swap_transfer: style_size must be None or an int >= 16, got {style_size!r}")


def _bounded_style(style: torch.Tensor, style_size: Optional[int]) -> torch.Tensor:
    if style_size is not None and max(style.shape[-2:]) > style_size:
        return resize_image(style, style_size)
    return style


def _min_side(layer: str, patch_size: int) -> int:
    """The smallest image side whose features at ``layer`` hold one patch."""
    pools = int(layer[4]) - 1
    return max(16, patch_size * 2 ** pools)


def _check_fits(img: torch.Tensor, name: str, layer: str, patch_size: int) -> None:
    need = _min_side(layer, patch_size)
    if min(img.shape[-2:]) < need:
        raise ValueError(f"style_swap_transfer: {name} is {img.shape[-1]}x{img.shape[-2]} px; with layer={layer} and "
                         f"patch_size={patch_size} each side must be at least {need} px")


def _decoder(decoder, layer: str, device) -> InverseNet:
    if decoder is None:
        if layer != "relu3_1":
            raise ValueError(f"style_swap_transfer: the shipped decoder inverts relu3_1, not {layer}; pass a decoder "
                             f"trained for {layer} (train_inverse_network(..., layer={layer!r}))")
        net = load_default_decoder(device)
    elif isinstance(decoder, (str, os.PathLike)):
        net = load_model(decoder, map_location=device)
    else:
        net = decoder
    if not isinstance(net, InverseNet):
        raise TypeError(f"style_swap_transfer: decoder must be an InverseNet or a path to one, got {type(net).__name__}")
    if net.layer != layer:
        raise ValueError(f"style_swap_transfer: the decoder inverts {net.layer}, but layer={layer!r}")
    return net.to(device).eval()


def style_swap_transfer(content: ImageArg, style: ImageArg, layer: str = "relu3_1", patch_size: int = 3,
                        stride: int = 1, method: str = "optimize", strength: float = 1.0,
                        decoder: Union[InverseNet, str, os.PathLike, None] = None, *, size: Optional[Size] = None,
                        style_size: Optional[int] = DEFAULT_STYLE_SIZE, iterations=None, optimizer: str = "lbfgs",
                        lr: Optional[float] = None, pyramid: bool = True, min_side: int = 64,
                        tv_weight: float = 0.05, pooling: str = "max", precision: str = "ieee",
                        seed: Optional[int] = 0, balance: bool = True, device=None, weights=None,
                        callback: Optional[Callback] = None, report_every: int = 10,
                        check_memory: bool = True, tileable: bool = False, tile="auto",
                        halo="exact") -> torch.Tensor:
    """Renders ``content`` in the style of ``style`` by style-swap (Chen & Schmidt 2016).

    Args:
        content: (1, 3, H, W) RGB in [0, 1], or an image path.
        style: (1, 3, H, W) RGB in [0, 1], or an image path (any style; nothing is trained for it).
        layer: the VGG-19 ReLU layer whose patches are swapped (the paper's relu3_1).
        patch_size, stride: the style-swap patches (3 and 1 in the paper).
        method: ``"optimize"`` (pixels optimised towards the swapped features) or ``"inverse"``
            (one pass through the decoder).
        strength: in [0, 1]: the target is ``strength * Phi_ss + (1 - strength) * Phi(C)``
            (0 reproduces the content through the same pipeline).
        decoder: ``"inverse"`` only: an :class:`InverseNet` for ``layer``, or a path to one
            saved by :func:`pytexsynth.save_model`; default the shipped relu3_1 decoder.
        size: output size: None keeps the content's; an int is the longer side; or (H, W).
        style_size: the style image's longer side is reduced to this (None keeps it). Matching
            costs (content positions) x (style patches).
        iterations, optimizer, lr, pyramid, min_side, balance, seed, callback, report_every:
            ``"optimize"`` only, as in :func:`pytexsynth.transfer_style`.
        check_memory: refuse (MemoryError, with the estimate) sizes that do not fit the device.
        tv_weight: ``"optimize"`` only: total-variation weight (relative to the feature term
            when ``balance``).
        pooling: VGG's "max" (the decoder was trained with it) or "avg".
        precision: the matching GEMM's precision (see :func:`pytexsynth.ops.style_swap`).
        device: default CUDA when available, else CPU.  weights: VGG-19 weights file.
        tileable: a periodic output that tiles seamlessly: the content made periodic (its
            periodic component), circular padding in VGG, in the patch swap and (one pass) in
            the decoder; one pass rounds the sides to multiples of the decoder's factor (4 at relu3_1).
        tile, halo: ``"optimize"`` only: as in :func:`pytexsynth.synthesize_texture` (the swap
            term reads whole-image maps at ``layer``, its gradient exact in tiles).

    Returns:
        (1, 3, height, width) float32 RGB in [0, 1] on ``device``.

    Raises:
        ValueError / TypeError: bad arguments (the message names the argument).
        FileNotFoundError: ``"inverse"`` without a decoder when the shipped one is missing.

    Example:
        >>> out = style_swap_transfer("photo.jpg", "painting.jpg", method="inverse")   # doctest: +SKIP
    """
    _check_args(layer, patch_size, stride, method, strength, style_size)
    check_common(optimizer, report_every, 1.0, lr)
    check_weights("style_swap_transfer: ", tv_weight=tv_weight)
    dev = resolve_device(device)
    c = as_image(content, "content", dev)
    s = _bounded_style(as_image(style, "style", dev), style_size)
    out_hw = tuple(c.shape[-2:]) if size is None else output_size(size, tuple(c.shape[-2:]))
    net = _decoder(decoder, layer, dev) if method == "inverse" else None
    if tileable and net is not None:
        out_hw = round_to_multiple(out_hw, net.factor)
    c = resize_image(c, out_hw)
    if tileable:
        c = periodic_component(c)
    _check_fits(c, "content", layer, patch_size)
    _check_fits(s, "style", layer, patch_size)
    if method == "inverse":
        if check_memory:
            parts = one_pass_parts(out_hw, layer, tuple(s.shape[-2:]), dev)
            named = {"the weights": parts["weights"], f"the output at {out_hw[1]}x{out_hw[0]} px": parts["output"],
                     f"the style image at {s.shape[-1]}x{s.shape[-2]} px": parts["style"]}
            refuse_unless_fits("style-swap", named, dev, "choose a smaller size (or check_memory=False to try anyway)")
        vgg = _shared_vgg(layer, pooling, None if weights is None else str(weights), str(dev), bool(tileable))
        return _one_pass(c, s, vgg, net, layer, patch_size, stride, float(strength), precision, bool(tileable))
    if decoder is not None:
        raise ValueError("style_swap_transfer: decoder is used by method='inverse' only")
    memory = memory_for_run(out_hw, (layer,), tile, halo, dev, optimizer, tuple(s.shape[-2:]), (layer,), check_memory,
                            bool(tileable))
    return _optimize(c, s, layer, patch_size, stride, float(strength), precision, float(tv_weight),
                     vgg_factory((layer,), pooling, tileable, weights, dev), generator(seed), out_hw,
                     pyramid=pyramid, min_side=max(min_side, _min_side(layer, patch_size)), iterations=iterations,
                     optimizer=optimizer, lr=lr, balance=balance, report_every=report_every, callback=callback,
                     clamp=optimizer == "adam", circular=bool(tileable), memory=memory)


def _optimize(c: torch.Tensor, s: torch.Tensor, layer: str, patch_size: int, stride: int, strength: float,
              precision: str, tv_weight: float, make_vgg, gen: torch.Generator, out_hw, **run) -> torch.Tensor:
    """Pixels optimised towards the swap target of each level (run_pyramid's options in ``run``;
    ``run["circular"]``: tileable)."""
    circular = run["circular"]
    fit = periodic_resize if circular else resize_image

    def make_terms(hw: Tuple[int, int], factor: float):
        vgg = make_vgg()
        with torch.no_grad():
            cf = vgg(fit(c, hw), (layer,))[layer]
            long = max(_min_side(layer, patch_size), round(max(s.shape[-2:]) * factor))
            sf = vgg(resize_image(s, long), (layer,))[layer]
            target = _swap(cf, sf, patch_size, stride, strength, precision, circular).float()
        energy = fixed_order_mean(target.square()).clamp_min(1e-12)  # a relative error: readable whatever the layer
        terms = [Term("swap", 1.0, lambda fe, x, t=target, e=energy: fixed_order_mse(fe[layer].float(), t) / e, (layer,))]
        return terms + tv_terms(tv_weight, circular), [layer]

    return run_pyramid(make_terms, lambda hw: fit(c, hw).clone(), out_hw, vgg_factory=make_vgg, gen=gen, **run)


@functools.lru_cache(maxsize=2)
def _shared_vgg(layer: str, pooling: str, weights: Optional[str], device: str, circular: bool = False) -> VGG19:
    # Building VGG-19 copies all its weights (0.3 s); a frozen one is safe to share between calls.
    return VGG19((layer,), pooling=pooling, circular=circular, weights=weights).to(device)


@torch.no_grad()
def _one_pass(c: torch.Tensor, s: torch.Tensor, vgg: VGG19, net: InverseNet, layer: str, patch_size: int,
              stride: int, strength: float, precision: str, circular: bool = False) -> torch.Tensor:
    # channels_last: oneDNN's convolutions run 20-35% faster in it on a CPU (measured at 512 px)
    cl = torch.channels_last
    net = net.to(memory_format=cl)
    cf = vgg(c.contiguous(memory_format=cl), (layer,))[layer].float()
    sf = vgg(s.contiguous(memory_format=cl), (layer,))[layer].float()
    target = _swap(cf, sf, patch_size, stride, strength, precision, circular)
    del cf, sf
    # tileable: the decoder sees DECODER_WRAP cells of wrap-around on each side (more than its
    # receptive field reaches), so its reflection padding never reaches the cropped output
    wrap = DECODER_WRAP if circular else 0
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=target.is_cuda):
        out = net(circular_pad(target, wrap).contiguous(memory_format=cl))
    out = crop(out.float(), wrap * net.factor)
    if tuple(out.shape[-2:]) != tuple(c.shape[-2:]):  # sides not multiples of 2**pools lose a few pixels
        out = F.interpolate(out, size=c.shape[-2:], mode="bilinear", align_corners=False)
    return out.contiguous().clamp_(0.0, 1.0)
