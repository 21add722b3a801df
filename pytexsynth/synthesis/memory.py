"""How much memory a synthesis needs, how much the device has, and refusing what cannot fit."""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from ..models.vgg import LAYER_NAMES, check_layers, layer_channels, winograd_weight_bytes

__all__ = ["estimate_memory", "memory_parts", "available_memory", "require_memory", "layer_feature_bytes", "one_pass_parts",
           "refuse_unless_fits"]


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
    acts = 2.5 * layer_feature_bytes(h, w, deepest)  # saved activations + their gradients
    opt = (2 * 100 + 4) * 3 * h * w * 4 if optimizer == "lbfgs" else 4 * 3 * h * w * 4
    return {"weights": int(weights), "output": int(acts + opt), "style": int(layer_feature_bytes(sh, sw, deepest))}


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
