"""The arguments the loss modules of :mod:`pytexsynth.losses` share: style features (one image
or several, by name or by position), per-layer weights and blend weights, checked with
messages that name the argument."""

from __future__ import annotations

import math
import numbers
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from .ops.checks import check_weight

__all__ = ["LayerWeights", "per_layer_weights", "blend_weights", "style_layers", "select_features"]

LayerWeights = Union[None, str, float, Sequence[float], Mapping[str, float]]


def per_layer_weights(layers: Sequence, weights: LayerWeights, what: str, arg: str = "weights",
                      missing: Optional[float] = None, kind: str = "style") -> Dict:
    """Per-layer weights: None (equal, summing to 1), a number (each layer), a list (in layer
    order) or a mapping layer -> weight (layers it leaves out weigh ``missing``, or are an error
    when ``missing`` is None; a layer it names that the loss does not have is an error: a
    misspelt name would otherwise be ignored silently). Numbers: Python or NumPy reals, or
    one-element tensors; finite."""
    if weights is None:
        return {n: 1.0 / len(layers) for n in layers}
    if isinstance(weights, Mapping):
        unknown = [k for k in weights if k not in layers]
        if unknown:
            raise ValueError(f"{what}: {arg} name layers without {kind} features: {sorted(map(str, unknown))}")
        absent = [n for n in layers if n not in weights]
        if absent and missing is None:
            raise ValueError(f"{what}: {arg} has no entry for layers {absent}")
        values = [weights.get(n, missing) for n in layers]
    elif isinstance(weights, Sequence) and not isinstance(weights, str):
        if len(weights) != len(layers):
            raise ValueError(f"{what}: {len(weights)} {arg} for {len(layers)} layers {list(layers)}")
        values = list(weights)
    else:
        values = [weights] * len(layers)
    out = {n: check_weight(_number(v), what) for n, v in zip(layers, values)}
    bad = {n: w for n, w in out.items() if not math.isfinite(w)}
    if bad:
        raise ValueError(f"{what}: {arg} must be finite, got {bad}")
    return out


def _number(v):
    """A NumPy real or a one-element tensor as a Python float (other values as they are)."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dtype != torch.bool:
        return float(v)
    if isinstance(v, numbers.Real) and not isinstance(v, (bool, int, float)):
        return float(v)
    return v


def blend_weights(blend: Optional[Sequence[float]], n: int, what: str) -> List[float]:
    """The weights of ``n`` style images, normalised to sum 1 (default equal)."""
    if blend is None:
        return [1.0 / n] * n
    blend = [float(b) for b in blend]
    if len(blend) != n:
        raise ValueError(f"{what}: {len(blend)} blend weights for {n} styles")
    if not all(math.isfinite(b) and b >= 0 for b in blend) or sum(blend) <= 0:
        raise ValueError(f"{what}: blend weights must be finite and >= 0 with a positive sum, got {blend}")
    s = sum(blend)
    return [b / s for b in blend]


def style_layers(style_features, what: str) -> Tuple[bool, list, List[List[torch.Tensor]]]:
    """(keyed, layers, per style the per-layer tensors) of a dict layer -> tensor, a list of such
    dicts (several style images) or a list of tensors (layers by position)."""
    if isinstance(style_features, Mapping):
        style_features = [style_features]
    elif isinstance(style_features, torch.Tensor) or not isinstance(style_features, Sequence) \
            or isinstance(style_features, str):
        raise TypeError(f"{what}: style_features must be a dict of layer -> tensor, a list of such dicts (one per "
                        f"style image) or a list of tensors, got {type(style_features).__name__}")
    if not style_features:
        raise ValueError(f"{what}: needs at least one style (style_features is empty)")
    if all(isinstance(s, torch.Tensor) for s in style_features):
        return False, list(range(len(style_features))), [list(style_features)]
    if not all(isinstance(s, Mapping) for s in style_features):
        raise TypeError(f"{what}: style_features must hold only dicts (one per style image) or only tensors")
    layers = list(style_features[0])
    if not layers:
        raise ValueError(f"{what}: style_features is empty (no layers)")
    return True, layers, [[s[n] for n in layers] for s in style_features]


def select_features(features, layers: list, keyed: bool, what: str) -> List[torch.Tensor]:
    """The loss's layers of ``features`` in order (a dict for a keyed loss, else a list)."""
    if keyed:
        if not isinstance(features, Mapping):
            raise TypeError(f"{what}: was built from a dict of layers; forward takes a dict, got "
                            f"{type(features).__name__}")
        absent = [n for n in layers if n not in features]
        if absent:
            raise KeyError(f"{what}: features lack the layers {absent}")
        return [features[n] for n in layers]
    feats = list(features)
    if len(feats) != len(layers):
        raise ValueError(f"{what}: expected {len(layers)} feature tensors, got {len(feats)}")
    return feats
