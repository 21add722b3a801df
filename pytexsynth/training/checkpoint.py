"""Training checkpoints: written atomically with a content checksum and the run's settings, read
back only when intact, and never written over a file that is not one.

A checkpoint is a plain dict (``torch.load(weights_only=True)`` reads it): the step, every
step's loss, the model, optimiser and scheduler states, every rank's RNG states, the settings
of the run (``config``: the optimiser's and the trainer's), the architecture record of a
:class:`~pytexsynth.networks.SavableNetwork`, and ``checksum``, a SHA-256 over all of that.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Union

import torch

from ..networks.base import CHECKPOINT_FORMAT, atomic_torch_save

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "write_checkpoint", "refuse_foreign_file", "content_digest",
           "settings_changes"]

VERSION = 2  # 2: checksum and config; version 1 (neither) is still read
_KEYS = ("step", "losses", "model", "optimizer", "scheduler", "rng")


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"D")
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(b"L" if isinstance(obj, list) else b"U")
        for v in obj:
            _feed(h, v)
    else:  # ints, floats (repr is exact), strings, None, bools
        h.update(repr(obj).encode())


def content_digest(data: Dict[str, Any]) -> str:
    """SHA-256 (hex) of everything in a checkpoint but its checksum."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in data.items() if k != "checksum"})
    return h.hexdigest()


def write_checkpoint(data: Dict[str, Any], path: Union[str, os.PathLike]) -> None:
    """Writes ``data`` (the fields above but the format, version and checksum) atomically."""
    data = {"format": CHECKPOINT_FORMAT, "version": VERSION, **data}
    data["checksum"] = content_digest(data)
    atomic_torch_save(data, path)


def load_checkpoint(path: Union[str, os.PathLike], map_location: Union[str, torch.device] = "cpu") -> Dict[str, Any]:
    """Reads a checkpoint written by :func:`pytexsynth.training.train` (weights_only, so safe).

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: the file is not a checkpoint, lacks a part, or its content does not match its
            checksum (flipped bytes, a partial copy).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train: checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, empty, text, foreign pickles: all unreadable
        raise ValueError(f"train: {path} is not a readable pytexsynth training checkpoint ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"train: {path} is not a pytexsynth training checkpoint")
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise ValueError(f"train: checkpoint {path} is damaged: it lacks {missing}")
    if data.get("version", 1) >= 2 and data.get("checksum") != content_digest(data):
        raise ValueError(f"train: checkpoint {path} is corrupted: its content does not match its checksum")
    return data


def refuse_foreign_file(path: Union[str, os.PathLike]) -> None:
    """A run starting afresh overwrites its checkpoint file: only ever a pytexsynth checkpoint
    (an earlier run's), never some other file (a model, an image) that happens to be there."""
    p = Path(path)
    if not p.exists():
        return
    if p.is_dir():
        raise ValueError(f"train: checkpoint {p} is a folder; give a file name")
    try:  # only the format: a damaged checkpoint of ours (a bad checksum) may be written over
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable: a foreign file or a truncated checkpoint
        raise ValueError(f"train: checkpoint {p} exists and cannot be read as a pytexsynth training checkpoint; "
                         "refusing to overwrite it (remove it, or give another checkpoint path)") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"train: checkpoint {p} exists and is not a pytexsynth training checkpoint; refusing to "
                         "overwrite it (give another checkpoint path)")


def settings_changes(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, list]:
    """{setting: [the checkpoint's value, this run's]} for every setting that differs."""
    return {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new), key=str)
            if old.get(k) != new.get(k) and k != "resumed_with_changes"}
