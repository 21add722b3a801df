"""What every trainable network shares: it records its architecture, so a saved file rebuilds it.

A network class registers itself with :func:`register_network`; its constructor stores its own
keyword arguments (plain ints, floats, strings, bools and lists of them) in ``self.config``.
:func:`save_model` writes {class name, config, weights}; :func:`load_model` rebuilds the class
from that record, so loading needs no arguments. Checkpoints written by
:mod:`pytexsynth.training` carry the same record and load the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Type, Union

import torch
from torch import nn

from ..io import atomic_write

__all__ = ["SavableNetwork", "register_network", "network_classes", "build_network", "save_model", "load_model",
           "check_plain", "unwrap", "atomic_torch_save", "MODEL_FORMAT", "CHECKPOINT_FORMAT"]

MODEL_FORMAT = "pytexsynth-model"
# Training checkpoints (pytexsynth.training) carry the same architecture record, so load_model reads them too.
CHECKPOINT_FORMAT = "pytexsynth-checkpoint"
_REGISTRY: Dict[str, Type["SavableNetwork"]] = {}


def register_network(cls: Type["SavableNetwork"]) -> Type["SavableNetwork"]:
    """Class decorator: lets :func:`load_model` rebuild ``cls`` by name."""
    if cls.__name__ in _REGISTRY and _REGISTRY[cls.__name__] is not cls:
        raise ValueError(f"register_network: a different class named {cls.__name__!r} is already registered")
    _REGISTRY[cls.__name__] = cls
    return cls


def network_classes() -> Dict[str, Type["SavableNetwork"]]:
    """The registered network classes by name."""
    return dict(_REGISTRY)


class SavableNetwork(nn.Module):
    """Base class: subclasses call ``super().__init__(**their_kwargs)`` to record them."""

    def __init__(self, **config: Any):
        super().__init__()
        check_plain(config, type(self).__name__)
        self.config: Dict[str, Any] = dict(config)

    def architecture(self) -> Dict[str, Any]:
        """{"class": name, "kwargs": constructor arguments}: enough to rebuild the network."""
        return {"class": type(self).__name__, "kwargs": dict(self.config)}


def check_plain(value: Any, where: str) -> None:
    """Constructor arguments and metadata must survive torch.load(weights_only=True): plain values only."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: config keys must be strings, got {k!r}")
            check_plain(v, where)
    elif isinstance(value, (list, tuple)):
        for v in value:
            check_plain(v, where)
    elif not (value is None or isinstance(value, (bool, int, float, str))):
        raise TypeError(f"{where}: constructor argument {value!r} ({type(value).__name__}) cannot be recorded; "
                        "use ints, floats, strings, bools or lists of them")


def build_network(architecture: Dict[str, Any]) -> SavableNetwork:
    """Rebuilds an (untrained) network from an :meth:`SavableNetwork.architecture` record."""
    _import_builtin_networks()
    name = architecture.get("class")
    if name not in _REGISTRY:
        raise ValueError(f"load_model: unknown network class {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name](**architecture.get("kwargs", {}))


def _import_builtin_networks() -> None:
    # The package's __init__ imports every network module, which registers its classes
    # (a new network only needs @register_network and an import there).
    import pytexsynth.networks  # noqa: F401


def atomic_torch_save(obj: Any, path: Union[str, os.PathLike]) -> None:
    """torch.save through :func:`pytexsynth.io.atomic_write`: a reader (or a crash) never sees
    a half-written file."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper; else the module itself."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def save_model(model: SavableNetwork, path: Union[str, os.PathLike], **metadata: Any) -> None:
    """Writes the network's architecture and weights (atomically) for :func:`load_model`.

    Args:
        model: a registered network (a DDP wrapper is unwrapped).
        path: the file to write.
        metadata: plain extra information stored beside it (e.g. the training settings).
    """
    model = unwrap(model)
    if not isinstance(model, SavableNetwork):
        raise TypeError(f"save_model: model must be a pytexsynth network (SavableNetwork), got {type(model).__name__}")
    check_plain(metadata, "save_model")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"format": MODEL_FORMAT, "version": 1, "architecture": model.architecture(),
                       "state_dict": state, "metadata": metadata}, path)


def load_model(path: Union[str, os.PathLike], map_location: Union[str, torch.device] = "cpu") -> SavableNetwork:
    """Loads a network saved by :func:`save_model` or a training checkpoint; no other arguments.

    Returns the network in eval mode.

    Example:
        >>> model = pytexsynth.load_model("bricks.pt")          # doctest: +SKIP
        >>> samples = model.generate(4, 256, seed=0)             # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_model: no such file: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"load_model: {path} is not a pytexsynth model or checkpoint ({exc})") from exc
    if not isinstance(data, dict) or "architecture" not in data or data.get("format") not in (MODEL_FORMAT, CHECKPOINT_FORMAT):
        raise ValueError(f"load_model: {path} is not a pytexsynth model or checkpoint (no architecture record)")
    state = data.get("state_dict", data.get("model"))
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"load_model: {path} holds no weights (state dict)")
    _check_state_matches(path, data["architecture"], state)
    model = build_network(data["architecture"])
    model.load_state_dict(state)
    return model.to(map_location).eval()


def _check_state_matches(path: Path, architecture: Any, state: Dict[str, torch.Tensor]) -> None:
    """The recorded architecture, built on the meta device (no memory), has exactly the file's
    weights: a crafted or damaged record fails here, before anything is allocated for it."""
    if not isinstance(architecture, dict) or not isinstance(architecture.get("kwargs", {}), dict):
        raise ValueError(f"load_model: {path} has a malformed architecture record")
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_network(architecture).state_dict().items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"load_model: {path} records an architecture that cannot be built: {exc}") from exc
    saved = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != saved:
        missing, unexpected = sorted(set(shapes) - set(saved)), sorted(set(saved) - set(shapes))
        wrong = sorted(k for k in set(shapes) & set(saved) if shapes[k] != saved[k])
        raise ValueError(f"load_model: the weights in {path} do not match its architecture record "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]}, other shapes {wrong[:5]})")
