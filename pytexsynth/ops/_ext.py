"""Loads the compiled extension and decides, per call, whether its kernel can run.

Importing ``pytexsynth._C`` registers the ops under ``torch.ops.pytexsynth``. When it cannot be
loaded (a source checkout that was never built, a torch version it was not built against), or
the input lives on a device the build has no kernels for, the ops fall back to the pure-PyTorch
reference in :mod:`pytexsynth.reference` with a one-time warning.
"""

from __future__ import annotations

import warnings

import torch

try:
    from .. import _C  # noqa: F401  (registers torch.ops.pytexsynth.*)

    LOAD_ERROR: Exception | None = None
except ImportError as exc:  # pragma: no cover - exercised only without a build
    _C = None
    LOAD_ERROR = exc

HAS_EXTENSION: bool = _C is not None
# Read once at import: a module constant, so torch.compile treats it as a constant too.
CUDA_VERSION: int = int(torch.ops.pytexsynth._cuda_version()) if HAS_EXTENSION else -1
CUDA_ARCHS: str = str(torch.ops.pytexsynth._cuda_archs()) if HAS_EXTENSION else ""

_warned: set = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def use_kernel(t: torch.Tensor, op: str) -> bool:
    """True when the compiled kernel of ``op`` can take ``t``; else warns once (per reason)."""
    if not HAS_EXTENSION:
        _warn_once(
            "no-extension",
            f"pytexsynth: the compiled extension could not be loaded ({LOAD_ERROR}); "
            f"{op} and the other ops run the slower pure-PyTorch reference. "
            "Reinstall with `pip install .` to build it.",
        )
        return False
    kind = t.device.type
    if kind in ("cpu", "meta"):
        return True
    if kind == "cuda" and CUDA_VERSION >= 0:
        return True
    reason = "was built without CUDA kernels" if kind == "cuda" else f"has no kernels for {kind} tensors"
    _warn_once(
        f"device-{kind}",
        f"pytexsynth: this build {reason}; {op} runs the pure-PyTorch reference on {kind}.",
    )
    return False


def register(op: str, fake, grad=None, setup_context=None) -> None:
    """Registers the fake (meta) kernel and, with ``grad``, the autograd formula of
    ``pytexsynth::op``. Without the extension the op does not exist and nothing is registered."""
    if not HAS_EXTENSION:
        return
    torch.library.register_fake(f"pytexsynth::{op}")(fake)
    if grad is not None:
        torch.library.register_autograd(f"pytexsynth::{op}", grad, setup_context=setup_context)
