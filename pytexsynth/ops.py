"""Functional ops: thin, typed wrappers over ``torch.ops.pytexsynth.*``.

Each wrapper validates its arguments (so the error names the argument whichever backend runs),
then calls the compiled kernel, or the reference in :mod:`pytexsynth.reference` where no kernel
can take the input (see :func:`pytexsynth._ext.use_kernel`).
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch

from . import _ext, reference
from . import _registrations  # noqa: F401  (autograd and fake kernels)

__all__ = ["circular_pad2d"]

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_PAD_NAMES = ("left", "right", "top", "bottom")

PadArg = Union[int, Sequence[int]]


def _check_tensor(x: object, op: str, arg: str, dims: Tuple[int, ...], layout: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: {arg} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in dims:
        raise ValueError(f"{op}: {arg} must be a {layout} tensor, got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: {arg} must be a float32, float64, float16 or bfloat16 tensor, got {x.dtype}")


def _normalize_pad(pad: PadArg, op: str) -> Tuple[int, int, int, int]:
    """An int pads all four sides; otherwise (left, right, top, bottom)."""
    if isinstance(pad, bool) or not isinstance(pad, (int, Sequence, torch.Size)):
        raise TypeError(f"{op}: pad must be an int or a sequence of 4 ints (left, right, top, bottom), got {pad!r}")
    if isinstance(pad, int):
        pad = (pad,) * 4
    pad = tuple(pad)
    if len(pad) != 4:
        raise ValueError(f"{op}: pad must have 4 entries (left, right, top, bottom), got {len(pad)}: {pad}")
    for i, p in enumerate(pad):
        if isinstance(p, bool) or not isinstance(p, int):
            raise TypeError(f"{op}: pad[{i}] ({_PAD_NAMES[i]}) must be an int, got {p!r}")
        if p < 0:
            raise ValueError(f"{op}: pad[{i}] ({_PAD_NAMES[i]}) = {p} is negative; circular padding takes pads >= 0")
    return pad  # type: ignore[return-value]


def circular_pad2d(x: torch.Tensor, pad: PadArg) -> torch.Tensor:
    """Pads the last two dims of ``x`` periodically (wrap-around), as tileable textures need.

    Same result as ``F.pad(x, pad, mode="circular")``, in one gather kernel; its backward sums
    the wrapped gradients in one gather too (no atomics, deterministic), where ``F.pad``'s
    goes through several full copies. Differentiable twice; works under ``torch.compile``.

    Args:
        x: (C, H, W) or (N, C, H, W), float32/float64/float16/bfloat16, any strides
            (channels_last input gives channels_last output).
        pad: (left, right, top, bottom), or one int for all four. Each from 0 up to the
            size of its dimension (padding wraps at most once).

    Returns:
        (C, H + top + bottom, W + left + right), or the same with the batch dimension.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> circular_pad2d(x, (1, 1, 0, 0))
        tensor([[[[1., 0., 1., 0.],
                  [3., 2., 3., 2.]]]])
    """
    op = "circular_pad2d"
    _check_tensor(x, op, "x", (3, 4), "3-D (C, H, W) or 4-D (N, C, H, W)")
    pads = _normalize_pad(pad, op)
    for i, p in enumerate(pads):
        size, what = (x.shape[-1], "width") if i < 2 else (x.shape[-2], "height")
        if p > size:
            raise ValueError(
                f"{op}: pad[{i}] ({_PAD_NAMES[i]}) = {p} exceeds the input {what} {size}; circular padding wraps at most once"
            )
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.circular_pad2d(x, list(pads))
    return reference.circular_pad2d(x, pads)


# ---- gram ----------------------------------------------------------------------------------------

__all__ += ["gram", "gram_loss", "gram_loss_multi"]

_GRAM_NORMALIZE = ("hw", "chw", "none")
_GRAM_PRECISION = ("ieee", "tf32", "bf16")


def _check_choice(value: object, choices: Tuple[str, ...], op: str, arg: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{op}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    if value not in choices:
        raise ValueError(f"{op}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _check_gram_target(x: torch.Tensor, target: object, op: str, xn: str = "x", tn: str = "target") -> None:
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{op}: {tn} must be a torch.Tensor, got {type(target).__name__}")
    b, c = x.shape[:2]
    if target.device != x.device:
        raise ValueError(f"{op}: {xn} and {tn} must be on the same device, got {x.device} and {target.device}")
    if target.dtype != x.dtype:
        raise TypeError(f"{op}: {tn} must have the dtype of {xn} ({x.dtype}), got {target.dtype}")
    if target.dim() not in (2, 3):
        raise ValueError(f"{op}: {tn} must be (C, C) or (B, C, C), got a {target.dim()}-D tensor of shape "
                         f"{tuple(target.shape)}")
    if tuple(target.shape[-2:]) != (c, c):
        raise ValueError(f"{op}: {tn} of shape {tuple(target.shape)} does not match {xn}'s {c} channels; "
                         f"expected ({c}, {c}) or ({b}, {c}, {c})")
    if target.dim() == 3 and target.shape[0] not in (1, b):
        raise ValueError(f"{op}: {tn} of shape {tuple(target.shape)} has batch {target.shape[0]} but {xn} has "
                         f"batch {b}; expected 1 or {b}")


def _check_weight(weight: object, op: str) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"{op}: weight must be a float, got {weight!r}")
    return float(weight)


def gram(x: torch.Tensor, normalize: str = "hw", precision: str = "ieee") -> torch.Tensor:
    """Gram matrices of feature maps: ``G[b] = F[b] F[b]^T / divisor`` with F = x[b] as (C, H*W).

    G is exactly symmetric: only the upper-triangle 128 x 128 tiles are multiplied (10 of 16 at
    C = 512), each over chunks of H*W summed in a fixed order, and mirrored. Its backward is one
    GEMM, ``(dG + dG^T) F / divisor``.

    Args:
        x: (B, C, H, W) features, float32/float64/float16/bfloat16, any strides.
        normalize: divisor ``"hw"`` = H*W (Gatys et al.), ``"chw"`` = C*H*W (Ulyanov et al.) or
            ``"none"``.
        precision: ``"ieee"`` (full fp32, the default), ``"tf32"`` (TF32 tensor cores on CUDA; the
            same as ieee on the CPU) or ``"bf16"`` (F rounded to bfloat16, fp32 accumulation).
            float64 input always computes in float64.

    Returns:
        (B, C, C) in x's dtype.

    Example:
        >>> x = torch.ones(1, 2, 3, 3)
        >>> gram(x)
        tensor([[[1., 1.],
                 [1., 1.]]])
    """
    op = "gram"
    _check_tensor(x, op, "x", (4,), "4-D (B, C, H, W)")
    _check_choice(normalize, _GRAM_NORMALIZE, op, "normalize")
    _check_choice(precision, _GRAM_PRECISION, op, "precision")
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.gram(x, normalize, precision)
    return reference.gram(x, normalize, precision)


def gram_loss(x: torch.Tensor, target: torch.Tensor, weight: float = 1.0, normalize: str = "hw",
              precision: str = "ieee") -> torch.Tensor:
    """Gram (style) loss ``weight * mean((gram(x) - target)**2)`` as one fused op.

    The forward computes G from its upper-triangle tiles (see :func:`gram`), D = G - T and the
    loss in one epilogue that reduces in a fixed order (deterministic); it saves only D and x.
    The backward is one GEMM, ``2 w / (B C^2 divisor) (D + D^T) F``, scaled by the incoming gradient on the device.
    A target made by :func:`gram` from the same x (same normalize, precision) gives exactly 0.

    Args:
        x: (B, C, H, W) features (see :func:`gram`).
        target: (C, C), broadcast over the batch, or (B, C, C) (or (1, C, C)); x's dtype and device.
        weight: the loss weight.
        normalize, precision: as in :func:`gram`.

    Returns:
        A 0-dim tensor in x's dtype.

    Example:
        >>> style = torch.rand(1, 8, 16, 16)
        >>> target = gram(style)[0]
        >>> gram_loss(style, target).item()
        0.0
    """
    op = "gram_loss"
    _check_tensor(x, op, "x", (4,), "4-D (B, C, H, W)")
    _check_gram_target(x, target, op)
    weight = _check_weight(weight, op)
    _check_choice(normalize, _GRAM_NORMALIZE, op, "normalize")
    _check_choice(precision, _GRAM_PRECISION, op, "precision")
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.gram_loss(x, target, weight, normalize, precision)[0]
    return reference.gram_loss(x, target, weight, normalize, precision)


def gram_loss_multi(xs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], weights: Sequence[float],
                    normalize: str = "hw", precision: str = "ieee") -> torch.Tensor:
    """Sum of :func:`gram_loss` over several layers: ``sum_l weights[l] * gram_loss(xs[l], targets[l])``.

    One op for all style layers (what :class:`pytexsynth.nn.GramLoss` uses): on the CPU the tile
    GEMMs of every layer run in one parallel loop; on CUDA they go out in one batched cuBLAS call
    per operand shape, followed by one epilogue and one reduction kernel for all layers. The
    backward is one op too. Deterministic like :func:`gram_loss`; the loss is summed over layers
    in list order in float32 (float64 for float64 input).

    Args:
        xs: the layers' (B, C, H, W) features, one dtype and one device; sizes may differ.
        targets: one target per layer, as in :func:`gram_loss`.
        weights: one float per layer.
        normalize, precision: as in :func:`gram`, for every layer.

    Returns:
        A 0-dim tensor in the features' dtype.

    Example:
        >>> feats = [torch.rand(1, 4, 8, 8), torch.rand(1, 8, 4, 4)]
        >>> gram_loss_multi(feats, [gram(f)[0] for f in feats], [1.0, 0.5]).item()
        0.0
    """
    op = "gram_loss_multi"
    for arg, value in (("xs", xs), ("targets", targets), ("weights", weights)):
        if isinstance(value, (str, torch.Tensor)) or not isinstance(value, Sequence):
            raise TypeError(f"{op}: {arg} must be a list, got {type(value).__name__}")
    xs, targets, weights = list(xs), list(targets), list(weights)
    if not xs:
        raise ValueError(f"{op}: xs must hold at least one tensor")
    if len(targets) != len(xs) or len(weights) != len(xs):
        raise ValueError(f"{op}: xs, targets and weights must have the same length, got {len(xs)}, "
                         f"{len(targets)} and {len(weights)}")
    for i, (x, t) in enumerate(zip(xs, targets)):
        _check_tensor(x, op, f"xs[{i}]", (4,), "4-D (B, C, H, W)")
        if x.device != xs[0].device:
            raise ValueError(f"{op}: every layer must be on one device; xs[{i}] is on {x.device} but xs[0] is on "
                             f"{xs[0].device}")
        if x.dtype != xs[0].dtype:
            raise TypeError(f"{op}: every layer must have one dtype; xs[{i}] is {x.dtype} but xs[0] is {xs[0].dtype}")
        _check_gram_target(x, t, op, f"xs[{i}]", f"targets[{i}]")
    weights = [_check_weight(w, f"{op}: weights[{i}]") for i, w in enumerate(weights)]
    _check_choice(normalize, _GRAM_NORMALIZE, op, "normalize")
    _check_choice(precision, _GRAM_PRECISION, op, "precision")
    if _ext.use_kernel(xs[0], op):
        return torch.ops.pytexsynth.gram_loss_multi(xs, targets, weights, normalize, precision)[0]
    return reference.gram_loss_multi(xs, targets, weights, normalize, precision)

# ---- histogram matching ----------------------------------------------------------------------

from . import histogram as _histogram  # noqa: E402
from .histogram import HistogramStats  # noqa: E402

__all__ += ["HistogramStats", "histogram_stats", "histogram_match", "histogram_loss"]

_HISTOGRAM_MODES = ("interpolated", "exact")


def _check_bins(bins: object, op: str) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int):
        raise TypeError(f"{op}: bins must be an int, got {bins!r}")
    if not 1 <= bins <= _histogram.MAX_BINS:
        raise ValueError(f"{op}: bins = {bins}; expected bins from 1 to {_histogram.MAX_BINS}")
    return bins


def _check_stats(x: torch.Tensor, stats: object, op: str) -> HistogramStats:
    if not isinstance(stats, HistogramStats):
        raise TypeError(f"{op}: stats must be a HistogramStats (from histogram_stats), got {type(stats).__name__}")
    if stats.lo.device != x.device:
        raise ValueError(f"{op}: stats live on {stats.lo.device} but x on {x.device}; move them with stats.to(x.device)")
    if stats.channels != x.shape[-3]:
        raise ValueError(
            f"{op}: stats have {stats.channels} channels but x of shape {tuple(x.shape)} has {x.shape[-3]}"
        )
    return stats


def histogram_stats(style: torch.Tensor, bins: int = 256) -> HistogramStats:
    """Per-channel min, max and normalised CDF of style activations, computed once.

    Args:
        style: (C, H, W) or (B, C, H, W) activations, float32/float64/float16/bfloat16, finite.
            Statistics pool over the batch and space of each channel.
        bins: number of equal-width bins between each channel's min and max, 1 to 4096.

    Returns:
        :class:`HistogramStats` (lo, hi: (C,), cdf: (C, bins + 1)) on style's device, float64 for
        a float64 style, float32 otherwise. Move it with ``.to(device)``; save it with
        ``torch.save`` or its ``state_dict()``.

    Example:
        >>> stats = histogram_stats(torch.rand(1, 64, 32, 32), bins=128)
        >>> stats.cdf.shape
        torch.Size([64, 129])
    """
    op = "histogram_stats"
    _check_tensor(style, op, "style", (3, 4), "3-D (C, H, W) or 4-D (B, C, H, W)")
    bins = _check_bins(bins, op)
    if style.numel() == 0:
        raise ValueError(f"{op}: style of shape {tuple(style.shape)} is empty")
    if not torch.isfinite(style).all():
        raise ValueError(f"{op}: style must be finite (it holds NaN or inf)")
    return _histogram.stats(style, bins)


def histogram_match(x: torch.Tensor, stats: HistogramStats, mode: str = "interpolated") -> torch.Tensor:
    """Remaps each channel of x so that its histogram is the style's: R(x) (Risser et al. 2017).

    ``"interpolated"`` (kernel): each value's quantile u in its own (n, c) plane's piecewise-linear
    CDF (its bin's lower CDF plus the fraction through the bin) is sent to the style value at u
    (the style CDF inverted with linear interpolation inside the bin). Style and x may have
    different element counts. A constant plane maps to the style median; NaN stays NaN.
    ``"exact"``: sort-based, rank r of M goes to the style quantile (r + 0.5) / M (reference
    implementation, for comparison and small layers).

    R is treated as a constant: no gradient flows through it.

    Args:
        x: (B, C, H, W) or (C, H, W), float32/float64/float16/bfloat16, any strides; each
            batch element is matched on its own.
        stats: from :func:`histogram_stats`, on x's device, C channels.
        mode: "interpolated" or "exact".

    Returns:
        R(x), x's shape and dtype (channels_last in, channels_last out).

    Example:
        >>> stats = histogram_stats(torch.rand(8, 16, 16))
        >>> histogram_match(torch.randn(2, 8, 16, 16), stats).shape
        torch.Size([2, 8, 16, 16])
    """
    op = "histogram_match"
    _check_tensor(x, op, "x", (3, 4), "3-D (C, H, W) or 4-D (B, C, H, W)")
    stats = _check_stats(x, stats, op)
    if mode not in _HISTOGRAM_MODES:
        raise ValueError(f"{op}: mode must be 'interpolated' or 'exact', got {mode!r}")
    x = x.detach()
    if mode == "exact":
        return reference.histogram_match_exact(x, stats)
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.histogram_match(x, stats.lo, stats.hi, stats.cdf)
    return reference.histogram_match(x, stats)


def histogram_loss(x: torch.Tensor, stats: HistogramStats, weight: float = 1.0) -> torch.Tensor:
    """Histogram loss ``weight * mean((x - R(x))^2)`` with R(x) (:func:`histogram_match`) held constant.

    One pass computes R and the loss and keeps D = x - R(x); the backward is
    ``2 * weight / x.numel() * D * grad_output``. Deterministic. NaN in x gives a NaN loss.

    Args:
        x: (B, C, H, W) or (C, H, W) activations, float32/float64/float16/bfloat16.
        stats: from :func:`histogram_stats` of the style activations of the same layer.
        weight: the loss weight.

    Returns:
        A 0-dim tensor of x's dtype.

    Example:
        >>> stats = histogram_stats(torch.rand(1, 8, 16, 16))
        >>> x = torch.randn(1, 8, 16, 16, requires_grad=True)
        >>> histogram_loss(x, stats, weight=2.0).backward()
    """
    op = "histogram_loss"
    _check_tensor(x, op, "x", (3, 4), "3-D (C, H, W) or 4-D (B, C, H, W)")
    stats = _check_stats(x, stats, op)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise TypeError(f"{op}: weight must be a float, got {weight!r}")
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.histogram_loss(x, stats.lo, stats.hi, stats.cdf, float(weight))[0]
    return reference.histogram_loss(x, stats, float(weight))
# ---- style_swap ----
__all__ += ["style_swap"]

_PRECISIONS = ("ieee", "tf32", "bf16")


def _check_positive_int(v: object, op: str, arg: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{op}: {arg} must be an int, got {v!r}")
    if v < 1:
        raise ValueError(f"{op}: {arg} must be >= 1, got {v}")
    return int(v)


def _check_style_swap_args(content, style, patch_size, stride, precision, op: str = "style_swap"):
    _check_tensor(content, op, "content", (4,), "4-D (B, C, H, W)")
    _check_tensor(style, op, "style", (4,), "4-D (B, C, H, W)")
    if content.dtype != style.dtype:
        raise TypeError(f"{op}: content and style must have the same dtype, got {content.dtype} and {style.dtype}")
    if content.device != style.device:
        raise ValueError(f"{op}: content and style must be on the same device, got {content.device} and {style.device}")
    if style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"{op}: style must have batch size 1 or the content's batch size {content.shape[0]}, "
                         f"got {style.shape[0]}")
    if content.shape[1] != style.shape[1]:
        raise ValueError(f"{op}: content has {content.shape[1]} channels but style has {style.shape[1]}; they must match")
    if content.shape[1] < 1:
        raise ValueError(f"{op}: content and style need at least one channel")
    k = _check_positive_int(patch_size, op, "patch_size")
    s = _check_positive_int(stride, op, "stride")
    for what, t in (("content", content), ("style", style)):
        h, w = t.shape[-2:]
        if k > h or k > w:
            raise ValueError(f"{op}: patch_size={k} is larger than the {what} map ({h}x{w})")
    if precision not in _PRECISIONS:
        raise ValueError(f"{op}: precision must be 'ieee', 'tf32' or 'bf16', got {precision!r}")
    return k, s


def style_swap(content: torch.Tensor, style: torch.Tensor, patch_size: int = 3, stride: int = 1,
               precision: str = "ieee", return_indices: bool = False):
    """Style-swap (Chen & Schmidt 2016): each content patch replaced by its best style patch.

    Every ``patch_size`` x ``patch_size`` content patch (at ``stride``) is matched to the style
    patch with the highest normalised cross-correlation
    ``<content patch, style patch> / (||style patch|| + 1e-8)`` (the content is not normalised,
    as in the paper; equal scores go to the smallest style index, as ``torch.argmax``), and the
    output is the average of the chosen style patches where they overlap (exact counts at the
    borders; pixels no patch covers, left over by a stride, are 0).

    Unlike the usual conv2d / argmax / one-hot / conv_transpose2d formulation
    (:func:`pytexsynth.reference.style_swap`), the kernels never store the n_content x n_style
    score matrix: they run GEMMs over bands of patches sized to a fixed memory budget and keep
    a running (max, argmax) per content patch; at stride 1 the GEMM is over pixels and patch
    scores are sums of k*k aligned pixel products (k*k fewer FLOPs). Extra memory is
    O(n_content + n_style + one band).

    Gradients: none flows to ``content`` (the argmax is piecewise constant, its derivative is
    zero almost everywhere: autograd sees a zero gradient); ``style`` gets the overlap-averaged
    output gradient gathered back to the matched patches (deterministic, no atomics).

    Args:
        content: (B, C, H, W) features, float32/float64/float16/bfloat16.
        style: (1, C, Hs, Ws) (shared by the batch) or (B, C, Hs, Ws), same dtype and device.
        patch_size: patch side k (3 in the paper), at most each map's height and width.
        stride: patch stride (1 in the paper).
        precision: matching GEMM precision for float32/16 inputs: "ieee" (full float32, the
            default), "tf32" (tensor cores on CUDA; float32 on the CPU), or "bf16" (operands
            rounded to bfloat16, float32 accumulation). float64 inputs always match in float64.
            Reduced precision can flip near-ties to another patch whose score is within the
            rounding error of the best.
        return_indices: also return the (B, nH, nW) int64 indices (row-major over the style
            patch grid) of the chosen patches.

    Returns:
        (B, C, H, W) swapped features (and the indices if ``return_indices``).

    Example:
        >>> style = torch.rand(1, 8, 16, 16) + 0.1
        >>> out = style_swap(style, style)  # each patch is its own best match
        >>> torch.allclose(out, style)
        True
    """
    op = "style_swap"
    k, s = _check_style_swap_args(content, style, patch_size, stride, precision, op)
    if _ext.use_kernel(content, op):
        out, idx = torch.ops.pytexsynth.style_swap(content, style, k, s, precision)
    else:
        out, idx = reference.style_swap(content, style, k, s, precision, return_indices=True)
    return (out, idx) if return_indices else out


# ---- winograd_conv3x3 ------------------------------------------------------------------------

__all__ += ["winograd_weight", "winograd_conv3x3"]


def _check_winograd_dtype(t: torch.Tensor, op: str, arg: str) -> None:
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{op}: {arg} must be float32 or float64 (Winograd F(4x4, 3x3) is too inexact in half "
                        f"precision; use torch.nn.functional.conv2d there), got {t.dtype}")


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """Transforms 3x3 convolution weights once for :func:`winograd_conv3x3`.

    Args:
        weight: (C_out, C_in, 3, 3), float32 or float64.

    Returns:
        U: (36, C_in, C_out) contiguous, ``U[6a + b] = (G w G^T)[a, b]`` (4x the memory of
        ``weight``). Differentiable (plain tensor ops).
    """
    op = "winograd_weight"
    _check_tensor(weight, op, "weight", (4,), "(C_out, C_in, 3, 3)")
    if tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"{op}: weight must be (C_out, C_in, 3, 3), got shape {tuple(weight.shape)}")
    _check_winograd_dtype(weight, op, "weight")
    return reference.winograd_weight(weight)


def winograd_conv3x3(x: torch.Tensor, U: torch.Tensor, bias: torch.Tensor | None = None,
                     padding: int = 1) -> torch.Tensor:
    """A 3x3, stride-1 convolution by Winograd's F(4x4, 3x3) algorithm.

    Each 4x4 block of outputs costs 36 multiplications per channel pair instead of 144, so on
    a CPU, where oneDNN's direct convolution already runs near the FMA peak, VGG's 3x3 layers
    run about 2x faster (forward) and 1.7x (input gradient) than ``F.conv2d``
    (benchmarks/bench_winograd.py). float32 results differ from a direct convolution by about
    1e-6 relative (tested). On CUDA, cuDNN picks its own Winograd kernels: prefer ``F.conv2d``
    there (these kernels exist so the op runs anywhere, and for comparison).

    The gradients are the exact adjoints of the computed forward (with respect to ``x`` and
    ``U``; ``bias`` by autograd's sum), deterministic, and differentiable again (double
    backward). On CUDA the 36 plane GEMMs are cuBLAS calls that follow
    ``torch.backends.cuda.matmul.allow_tf32``: with TF32 on, the error grows far beyond 1e-6
    (the transforms amplify rounding), so keep it off for this op.

    Args:
        x: (N, C_in, H, W), float32 or float64 (any strides; computed in channels_last).
        U: (36, C_in, C_out) from :func:`winograd_weight`, same dtype and device.
        bias: (C_out,) or None.
        padding: 1 (zeros, output H x W) or 0 (output (H - 2) x (W - 2)).

    Returns:
        (N, C_out, H + 2 padding - 2, W + 2 padding - 2), channels_last.

    Example:
        >>> w = torch.randn(8, 4, 3, 3)
        >>> x = torch.randn(1, 4, 10, 10)
        >>> y = winograd_conv3x3(x, winograd_weight(w))
        >>> torch.allclose(y, torch.nn.functional.conv2d(x, w, padding=1), atol=1e-4)
        True
    """
    op = "winograd_conv3x3"
    _check_tensor(x, op, "x", (4,), "4-D (N, C, H, W)")
    _check_tensor(U, op, "U", (3,), "(36, C_in, C_out)")
    _check_winograd_dtype(x, op, "x")
    if U.shape[0] != 36 or U.shape[1] != x.shape[1]:
        raise ValueError(f"{op}: U must be (36, C_in={x.shape[1]}, C_out) as winograd_weight returns it, "
                         f"got shape {tuple(U.shape)}")
    if U.dtype != x.dtype or U.device != x.device:
        raise TypeError(f"{op}: U must have x's dtype and device ({x.dtype}, {x.device}), got ({U.dtype}, {U.device})")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or bias.shape != (U.shape[2],):
            raise ValueError(f"{op}: bias must be a ({U.shape[2]},) tensor, one value per output channel, got "
                             f"{tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__}")
        if bias.dtype != x.dtype or bias.device != x.device:
            raise TypeError(f"{op}: bias must have x's dtype and device ({x.dtype}, {x.device}), "
                            f"got ({bias.dtype}, {bias.device})")
    if isinstance(padding, bool) or padding not in (0, 1):
        raise ValueError(f"{op}: padding must be 0 or 1, got {padding!r}")
    if x.shape[2] + 2 * padding < 3 or x.shape[3] + 2 * padding < 3:
        raise ValueError(f"{op}: x of size {x.shape[2]}x{x.shape[3]} is smaller than the 3x3 kernel with "
                         f"padding {padding}")
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.winograd_conv3x3(x, U, bias, padding)
    return reference.winograd_conv3x3(x, U, bias, padding)
