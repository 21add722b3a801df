"""The device a run asks for, checked before any work: one clear error for a device that does not
exist here (a typo, CUDA without a GPU, an index past the last GPU, a backend pytexsynth does not
run on)."""

from __future__ import annotations

from typing import Union

import torch

__all__ = ["resolve_device", "SUPPORTED"]

SUPPORTED = ("cpu", "cuda")


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
    if dev.type not in SUPPORTED:
        raise ValueError(f"{what} {str(dev)!r}: pytexsynth runs on {' and '.join(SUPPORTED)} only")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{what} {str(dev)!r}: no CUDA device is visible on this machine; use cpu")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{what} {str(dev)!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return dev
