"""The device a run asks for, checked before any work: one clear error for a device that does not
exist here (a typo, CUDA without a GPU, an index past the last GPU, a backend this PyTorch or
machine lacks). CPU and CUDA run the compiled kernels; another backend that works here (mps,
xpu, ...) runs the ops' pure-PyTorch reference, with a warning (pytexsynth.ops._ext.use_kernel)."""

from __future__ import annotations

from typing import Union

import torch

__all__ = ["resolve_device"]


def resolve_device(device: Union[str, torch.device, None], what: str = "device") -> torch.device:
    """``device`` as a torch.device that exists here; None: CUDA when available, else the CPU.

    Raises:
        ValueError: naming the device and what is available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{what} {device!r} is not a device name; use cpu, cuda or cuda:N") from exc
    if dev.type == "meta":
        raise ValueError(f"{what} 'meta' holds no data: images cannot be computed there; use cpu or cuda")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{what} {str(dev)!r}: no CUDA device is visible on this machine; use cpu")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{what} {str(dev)!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif dev.type != "cpu":
        try:
            torch.empty(1, device=dev)
        except Exception as exc:  # noqa: BLE001 - any failure: the backend is not usable here
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise ValueError(f"{what} {str(dev)!r} is not available here ({reason}); use cpu or cuda") from exc
    return dev
