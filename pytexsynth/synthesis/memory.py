"""How much memory a synthesis needs, how much the device has, and refusing what cannot fit."""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from ..models.vgg import LAYER_NAMES, check_layers, layer_channels, winograd_weight_bytes
from .split import split_applies
from .tiled import DEFAULT_HISTORY, MemoryPlan, exact_halo, grid_stride, map_size, world

__all__ = ["estimate_memory", "memory_parts", "available_memory", "require_memory", "layer_feature_bytes", "one_pass_parts",
           "refuse_unless_fits", "check_tile", "plan_memory", "tiled_parts", "memory_for_run"]

# One forward and backward pass's peak, as a multiple of layer_feature_bytes (every conv and relu
# output): measured 2.18 GB above the process's RSS for one evaluation at 1024 px (VGG-19 to
# relu5_1, Gram + content terms, 1 thread, AMD EPYC), 0.91x; in-place ReLUs, pooling before ReLU
# and the backward freeing as it goes keep it below the sum. Rounded up.
ACTIVATION_FACTOR = 1.0
# A forward without autograd (the style's and the content's features) holds a few maps at a time
STYLE_FACTOR = 0.5
# A checkpointed evaluation's peak as a fraction of a plain one's. SplitLoss (VGG's first blocks
# recomputed on tiles): measured 0.87 vs 2.35 GB above the process's RSS at 1024 px (VGG-19 to
# relu5_1, Gram + content terms, 1 thread, AMD EPYC), 0.37x, rounded up. VGG19's per-convolution
# checkpointing, where SplitLoss cannot split (tileable, a side off its 4 px grid): 1.78 vs 2.18 GB.
SPLIT_FRACTION = 0.45
CHECKPOINT_FRACTION = 0.85
TILE_WORKSPACE = 64 * 2**20
# Interior sides "auto" tries, largest first (multiples of 16, VGG-19's grid to relu5_1)
TILE_SIDES = (2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 64)
MIN_HISTORY = 5


def layer_feature_bytes(h: int, w: int, deepest: str) -> int:
    """Bytes of fp32 activations of one forward pass up to ``deepest`` (conv + relu outputs)."""
    total, c = 0, 3
    for name in LAYER_NAMES[: LAYER_NAMES.index(deepest) + 1]:
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        elif name.startswith("conv"):
            c = layer_channels(name)
        total += c * h * w * 4
    return total


def memory_parts(size: Tuple[int, int], layers: Sequence[str], style_size: Optional[Tuple[int, int]] = None,
                 optimizer: str = "lbfgs", device: Union[str, torch.device] = "cpu") -> Dict[str, int]:
    """The parts of :func:`estimate_memory`, in bytes: "weights" (VGG's, and on the CPU their
    Winograd transforms), "output" (the activations kept for the backward pass and their
    gradients, and the optimiser's state, at ``size``) and "style" (the style image's features
    at ``style_size``)."""
    deepest = max(check_layers(layers), key=LAYER_NAMES.index)
    h, w = size
    sh, sw = style_size or size
    weights = 80 * 2**20
    if torch.device(device).type == "cpu":
        weights += winograd_weight_bytes(deepest)
    acts = ACTIVATION_FACTOR * layer_feature_bytes(h, w, deepest)  # saved activations + their gradients
    return {"weights": int(weights), "output": int(acts + _state_bytes(size, optimizer, DEFAULT_HISTORY)),
            "style": int(STYLE_FACTOR * layer_feature_bytes(sh, sw, deepest))}


def _state_bytes(size: Tuple[int, int], optimizer: str, history: int) -> int:
    """The image-sized vectors: the image, its gradient and copies, and the optimiser's state
    (L-BFGS: two per history entry)."""
    vectors = (2 * history + 4) if optimizer == "lbfgs" else 4
    return vectors * 3 * size[0] * size[1] * 4


def tiled_parts(size: Tuple[int, int], layers: Sequence[str], tile: int, halo: int, map_layers: Sequence[str],
                style_size: Optional[Tuple[int, int]], optimizer: str, history: int, device) -> Dict[str, int]:
    """:func:`memory_parts` of a tiled run: one tile's activations (its interior and halo) instead
    of the image's, plus whole-image maps (and their gradients) of ``map_layers``, the layers of
    the terms that are not Gram terms (content: relu4_2)."""
    parts = memory_parts(size, layers, style_size, optimizer, device)
    deepest = max(check_layers(layers), key=LAYER_NAMES.index)
    side = tile + 2 * halo
    maps = sum(2 * layer_channels(n) * map_size(size, n)[0] * map_size(size, n)[1] * 4 for n in map_layers)
    tile_acts = ACTIVATION_FACTOR * layer_feature_bytes(min(side, size[0]), min(side, size[1]), deepest)
    # + a fixed workspace (Winograd's 16 MiB chunks, the backward's transients): at 384 px in
    # tiles of 128 px the peak was 2% over the estimate without it (tests/test_tiled.py)
    parts["output"] = int(tile_acts + TILE_WORKSPACE + maps
                          + _state_bytes(size, optimizer, history))
    return parts


def check_tile(tile, halo) -> None:
    """ValueError naming ``tile`` or ``halo`` unless tile is None, "auto", "checkpoint" or an int
    >= 16, and halo "exact" or an int >= 0."""
    if not (tile is None or tile in ("auto", "checkpoint") or (isinstance(tile, int) and not isinstance(tile, bool)
                                                               and tile >= 16)):
        raise ValueError(f"tile must be None, 'auto', 'checkpoint' or an int >= 16 (pixels), got {tile!r}")
    if not (halo == "exact" or (isinstance(halo, int) and not isinstance(halo, bool) and halo >= 0)):
        raise ValueError(f"halo must be 'exact' or an int >= 0 (pixels), got {halo!r}")


def plan_memory(size: Tuple[int, int], layers: Sequence[str], tile, halo, device, optimizer: str,
                style_size: Optional[Tuple[int, int]] = None, map_layers: Sequence[str] = (),
                check_memory: bool = True, circular: bool = False) -> MemoryPlan:
    """How a level of ``size`` is evaluated (see :func:`pytexsynth.synthesis.transfer_style`'s
    ``tile``): "auto" keeps the whole image when it fits the free memory, else checkpointing when
    that fits, else the largest tile of TILE_SIDES that fits (with L-BFGS's history shortened
    to what is left, at least MIN_HISTORY); MemoryError when not even that fits. Under a process
    group of several ranks "auto" tiles so that every rank has a tile. ``circular``: the
    image is tileable (how much checkpointing saves depends on it, see SPLIT_FRACTION)."""
    halo_px = exact_halo(layers) if halo == "exact" else -(-halo // grid_stride(layers)) * grid_stride(layers)
    if isinstance(tile, int):
        return _with_history(MemoryPlan(tile=tile, halo=halo_px) if tile < max(size) else MemoryPlan(), size, layers,
                             style_size, optimizer, map_layers, device, check_memory, circular)
    if tile == "checkpoint":
        return _with_history(MemoryPlan(checkpoint=True), size, layers, style_size, optimizer, map_layers, device,
                             check_memory, circular)
    if tile is None or (not check_memory and world()[1] == 1):
        return MemoryPlan()
    have = available_memory(torch.device(device)) if check_memory else None
    whole = sum(memory_parts(size, layers, style_size, optimizer, device).values())
    fits_whole = have is None or whole <= have
    args = (size, layers, style_size, optimizer, map_layers, device, check_memory, circular)
    if world()[1] > 1:  # every rank a share of the tiles, where the level is large enough to share
        for side in TILE_SIDES:
            count = -(-size[0] // side) * -(-size[1] // side)
            if 128 <= side < max(size) and count >= world()[1]:
                plan = _with_history(MemoryPlan(tile=side, halo=halo_px), *args, refuse=False)
                if plan is not None:
                    return plan
    if fits_whole:
        return MemoryPlan()
    if whole - (1 - _checkpoint_fraction(size, circular)) * _acts(size, layers) <= have:
        return MemoryPlan(checkpoint=True)
    for least in (DEFAULT_HISTORY, MIN_HISTORY):  # the largest tile with the whole history, else a shorter one
        for side in TILE_SIDES:
            if side < max(size):
                plan = _with_history(MemoryPlan(tile=side, halo=halo_px), *args, refuse=False, least=least)
                if plan is not None:
                    return plan
    return _with_history(MemoryPlan(tile=TILE_SIDES[-1], halo=halo_px), *args)


def memory_for_run(out_hw: Tuple[int, int], layers: Sequence[str], tile, halo, device, optimizer: str,
                   style_size: Optional[Tuple[int, int]], map_layers: Sequence[str], check_memory: bool,
                   circular: bool = False):
    """run_pyramid's ``memory`` callable (None for ``tile=None``: the whole image, refused by
    :func:`require_memory` when it does not fit), after checking the arguments and that the
    finest level can run: MemoryError before any work."""
    check_tile(tile, halo)
    if tile is None:
        if check_memory:
            require_memory(device, out_hw, layers, style_size, optimizer)
        return None
    plan_memory(out_hw, layers, tile, halo, device, optimizer, style_size, map_layers, check_memory, circular)
    return lambda hw: plan_memory(hw, layers, tile, halo, device, optimizer, style_size, map_layers, check_memory,
                                  circular)


def _acts(size: Tuple[int, int], layers: Sequence[str]) -> float:
    return ACTIVATION_FACTOR * layer_feature_bytes(size[0], size[1], max(check_layers(layers), key=LAYER_NAMES.index))


def _checkpoint_fraction(size: Tuple[int, int], circular: bool) -> float:
    return SPLIT_FRACTION if split_applies(size, circular) else CHECKPOINT_FRACTION


def _with_history(plan: MemoryPlan, size, layers, style_size, optimizer, map_layers, device, check_memory,
                  circular: bool, refuse: bool = True, least: int = MIN_HISTORY) -> Optional[MemoryPlan]:
    """``plan`` with L-BFGS's history as long as the free memory allows (DEFAULT_HISTORY at most);
    None (or, with ``refuse``, MemoryError) when not even ``least`` entries fit."""
    have = available_memory(torch.device(device)) if check_memory else None
    if have is None:
        return plan

    def parts(history: int) -> Dict[str, int]:
        if plan.tile is not None:
            return tiled_parts(size, layers, plan.tile, plan.halo, map_layers, style_size, optimizer, history, device)
        p = memory_parts(size, layers, style_size, optimizer, device)
        p["output"] += _state_bytes(size, optimizer, history) - _state_bytes(size, optimizer, DEFAULT_HISTORY)
        if plan.checkpoint:
            p["output"] -= int((1 - _checkpoint_fraction(size, circular)) * _acts(size, layers))
        return p

    if optimizer != "lbfgs":
        fits = sum(parts(DEFAULT_HISTORY).values()) <= have
        history = DEFAULT_HISTORY if fits else 0
    else:
        spare = have - sum(parts(0).values())
        history = min(DEFAULT_HISTORY, max(0, spare // (2 * 3 * size[0] * size[1] * 4)))
    if (optimizer == "lbfgs" and history >= least) or (optimizer != "lbfgs" and history):
        return MemoryPlan(plan.tile, plan.halo, plan.checkpoint, int(history) if optimizer == "lbfgs" else DEFAULT_HISTORY)
    if not refuse:
        return None
    need = sum(parts(MIN_HISTORY).values())
    how = f"in tiles of {plan.tile} px" if plan.tile is not None else "checkpointed" if plan.checkpoint else "whole"
    raise MemoryError(f"synthesis at {size[1]}x{size[0]} px needs about {need / 2**30:.1f} GiB on {device} even "
                      f"{how}, but only {have / 2**30:.1f} GiB is free; choose a smaller size or tile "
                      "(or check_memory=False to try anyway)")


def estimate_memory(size: Tuple[int, int], layers: Sequence[str], style_size: Optional[Tuple[int, int]] = None,
                    optimizer: str = "lbfgs", device: Union[str, torch.device] = "cpu") -> int:
    """A rough upper estimate, in bytes, of the memory one synthesis at ``size`` needs on
    ``device``: the VGG weights (and on the CPU their Winograd transforms), the activations kept
    for the backward pass and their gradients, the style image's features, and the optimiser's
    state (:func:`memory_parts`)."""
    return sum(memory_parts(size, layers, style_size, optimizer, device).values())


def available_memory(device: torch.device) -> Optional[int]:
    """Free memory of ``device`` in bytes (None when unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:  # MemAvailable counts reclaimable page cache, which free pages do not
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(device, size, layers, style_size, optimizer) -> None:
    """MemoryError, with the estimate and what takes most of it (the output or the style image),
    when :func:`estimate_memory` exceeds the free memory."""
    parts = memory_parts(size, layers, style_size, optimizer, device)
    need, have = sum(parts.values()), available_memory(device)
    if have is None or need <= have:
        return
    sh, sw = style_size or size
    if parts["style"] > parts["output"]:
        culprit = f"most of it for the style image at {sw}x{sh} px; use a smaller style image (or style_scale)"
    else:
        culprit = f"most of it for the output at {size[1]}x{size[0]} px; choose a smaller size"
    raise MemoryError(f"synthesis needs about {need / 2**30:.1f} GiB on {device}, but only {have / 2**30:.1f} GiB "
                      f"is free: {culprit} (or check_memory=False to try anyway)")


# Peak RSS of `pytexsynth stylize --method style-swap` (one pass, relu3_1, 1 thread, 2-core AMD
# EPYC) grew by 626 bytes per output pixel between 1024 and 2048 px (1.55 and 3.52 GB): VGG's and
# the decoder's largest activations with their inputs and the Winograd planes.
ONE_PASS_BYTES_PER_PIXEL = 768


def one_pass_parts(size: Tuple[int, int], layer: str, style_size: Tuple[int, int],
                   device: Union[str, torch.device] = "cpu") -> Dict[str, int]:
    """The memory of a one-pass style-swap (VGG to ``layer``, the swap, the decoder), in bytes:
    "weights", "output" (at ``size``) and "style" (the style image's features)."""
    weights = 80 * 2**20 + 20 * 2**20  # VGG's and the decoder's
    if torch.device(device).type == "cpu":
        weights += winograd_weight_bytes(layer)
    return {"weights": weights, "output": ONE_PASS_BYTES_PER_PIXEL * size[0] * size[1],
            "style": int(layer_feature_bytes(style_size[0], style_size[1], layer))}


def refuse_unless_fits(what: str, parts: Dict[str, int], device, advice: str) -> None:
    """MemoryError naming ``what``, the estimate, its largest part and ``advice`` when the parts'
    sum exceeds the free memory of ``device`` (nothing when the free memory is unknown)."""
    need, have = sum(parts.values()), available_memory(torch.device(device))
    if have is None or need <= have:
        return
    largest = max(parts, key=lambda k: parts[k])
    raise MemoryError(f"{what} needs about {need / 2**30:.1f} GiB on {device}, but only {have / 2**30:.1f} GiB is "
                      f"free (most of it for {largest}): {advice}")
