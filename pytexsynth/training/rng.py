"""Every random number generator a training run draws from, captured and restored for resume.

The batch generator is the loop's own (``torch.Generator``); the global ones (torch CPU and
CUDA, numpy, Python) are saved too, so a loss that uses them resumes identically as well. The
states are plain tensors, ints and tuples, so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np
import torch

__all__ = ["rng_state", "set_rng_state"]


def rng_state(batch_gen: torch.Generator) -> Dict[str, Any]:
    """The state of ``batch_gen`` and of the global generators."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
        "batches": batch_gen.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any], batch_gen: torch.Generator) -> None:
    """Restores what :func:`rng_state` captured (CUDA states only with as many devices)."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    batch_gen.set_state(state["batches"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
