"""How much memory a synthesis needs, how much the device has, and refusing what cannot fit."""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple, Union

import torch

from ..models.vgg import LAYER_NAMES, check_layers, layer_channels, winograd_weight_bytes

__all__ = ["estimate_memory", "memory_parts", "available_memory", "require_memory", "layer_feature_bytes"]


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
