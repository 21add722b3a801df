"""histogram_stats, histogram_match and histogram_loss (Risser et al. 2017); wrappers, fakes, autograd."""

from __future__ import annotations

import torch

from .. import reference
from . import _ext
from .checks import check_tensor, check_weight, empty_like_layout
from .histogram_stats import MAX_BINS, HistogramStats, compute_stats

__all__ = ["HistogramStats", "histogram_stats", "histogram_match", "histogram_loss"]

_HISTOGRAM_MODES = ("interpolated", "exact")


def _check_bins(bins: object, op: str) -> int:
    if isinstance(bins, bool) or not isinstance(bins, int):
        raise TypeError(f"{op}: bins must be an int, got {bins!r}")
    if not 1 <= bins <= MAX_BINS:
        raise ValueError(f"{op}: bins = {bins}; expected bins from 1 to {MAX_BINS}")
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
    check_tensor(style, op, "style", (3, 4), "3-D (C, H, W) or 4-D (B, C, H, W)")
    bins = _check_bins(bins, op)
    if style.numel() == 0:
        raise ValueError(f"{op}: style of shape {tuple(style.shape)} is empty")
    if not torch.isfinite(style).all():
        raise ValueError(f"{op}: style must be finite (it holds NaN or inf)")
    return compute_stats(style, bins)


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
    check_tensor(x, op, "x", (3, 4), "3-D (C, H, W) or 4-D (B, C, H, W)")
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
    check_tensor(x, op, "x", (3, 4), "3-D (C, H, W) or 4-D (B, C, H, W)")
    stats = _check_stats(x, stats, op)
    weight = check_weight(weight, op)
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.histogram_loss(x, stats.lo, stats.hi, stats.cdf, weight)[0]
    return reference.histogram_loss(x, stats, weight)


# ---- fake kernels and autograd -----------------------------------------------------------------

def _histogram_match_fake(x, lo, hi, cdf):
    return empty_like_layout(x)


def _histogram_loss_fake(x, lo, hi, cdf, weight):
    return x.new_empty(()), empty_like_layout(x)


def _histogram_loss_backward_fake(grad_output, diff, weight):
    return torch.empty_like(diff)


def _histogram_match_setup(ctx, inputs, output):
    pass


def _histogram_match_grad(ctx, grad):
    # R(x) is a constant of the loss (Risser et al.): no gradient flows through the remap.
    return None, None, None, None


def _histogram_loss_setup(ctx, inputs, output):
    ctx.weight = inputs[4]
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1])


def _histogram_loss_grad(ctx, grad_loss, grad_diff):
    (diff,) = ctx.saved_tensors
    return torch.ops.pytexsynth._histogram_loss_backward(grad_loss, diff, ctx.weight), None, None, None, None


def _histogram_loss_backward_setup(ctx, inputs, output):
    ctx.weight = inputs[2]
    ctx.save_for_backward(inputs[0], inputs[1])


def _histogram_loss_backward_grad(ctx, grad):
    # Linear in grad_output and in diff (diff is treated as data: no second derivative through R).
    grad_output, diff = ctx.saved_tensors
    n = max(diff.numel(), 1)
    g_out = (grad * diff).sum() * (2.0 * ctx.weight / n) if ctx.needs_input_grad[0] else None
    g_diff = torch.ops.pytexsynth._histogram_loss_backward(grad_output, grad, ctx.weight) if ctx.needs_input_grad[1] else None
    return g_out.reshape(grad_output.shape).to(grad_output.dtype) if g_out is not None else None, g_diff, None


_ext.register("histogram_match", _histogram_match_fake, _histogram_match_grad, _histogram_match_setup)
_ext.register("histogram_loss", _histogram_loss_fake, _histogram_loss_grad, _histogram_loss_setup)
_ext.register("_histogram_loss_backward", _histogram_loss_backward_fake, _histogram_loss_backward_grad,
              _histogram_loss_backward_setup)
