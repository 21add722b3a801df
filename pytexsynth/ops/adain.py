"""adain: adaptive instance normalisation (Huang & Belongie 2017); wrapper, fake, autograd."""

from __future__ import annotations

import math

import torch

from .. import reference
from . import _ext
from .checks import check_tensor, empty_like_layout

__all__ = ["adain", "check_adain_args"]


def _check_scalar(v: object, op: str, arg: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{op}: {arg} must be a float, got {v!r}")
    return float(v)


def check_adain_args(content, style, alpha, eps, op: str = "adain") -> None:
    """The preconditions of :func:`adain` (also TORCH_CHECKed in csrc/common/adain.h)."""
    layout = "3-D (C, H, W) or 4-D (N, C, H, W)"
    check_tensor(content, op, "content", (3, 4), layout)
    check_tensor(style, op, "style", (3, 4), layout)
    if style.dim() != content.dim():
        raise ValueError(f"{op}: style must have as many dimensions as content ({content.dim()}), "
                         f"got a {style.dim()}-D tensor of shape {tuple(style.shape)}")
    if style.dtype != content.dtype:
        raise TypeError(f"{op}: style must have content's dtype {content.dtype}, got {style.dtype}")
    if style.device != content.device:
        raise ValueError(f"{op}: content and style must be on the same device, got {content.device} and {style.device}")
    if content.dim() == 4 and style.shape[0] != content.shape[0]:
        raise ValueError(f"{op}: style must have content's batch size {content.shape[0]}, "
                         f"got style of shape {tuple(style.shape)}")
    if style.shape[-3] != content.shape[-3]:
        raise ValueError(f"{op}: style must have content's {content.shape[-3]} channels, "
                         f"got style of shape {tuple(style.shape)}")
    if content.numel() > 0 and style.shape[-2] * style.shape[-1] == 0:
        raise ValueError(f"{op}: style must have at least one value per channel, got style of shape {tuple(style.shape)}")
    a, e = _check_scalar(alpha, op, "alpha"), _check_scalar(eps, op, "eps")
    if not (math.isfinite(a) and 0.0 <= a <= 1.0):
        raise ValueError(f"{op}: alpha must be a finite number in [0, 1], got {alpha!r}")
    if not (math.isfinite(e) and e > 0.0):
        raise ValueError(f"{op}: eps must be a finite number > 0, got {eps!r}")


def adain(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0, eps: float = 1e-5) -> torch.Tensor:
    """Gives each (n, c) plane of ``content`` the mean and standard deviation of ``style``'s.

    ``y = sigma_s (x - mu_x) / sigma_x + mu_s`` with ``sigma = sqrt(var + eps)`` (biased
    variance, per plane), returned as ``alpha * y + (1 - alpha) * x``. One fused kernel: each
    plane's statistics in one pass (merged partial moments, fixed order: deterministic), then
    its affine map. Differentiable in both inputs (twice: the second time through the PyTorch composite);
    works under ``torch.compile``.
    A NaN or infinity in a plane of either input makes that output plane NaN.

    Args:
        content: (N, C, H, W) or (C, H, W) features, float32/float64/float16/bfloat16, any
            strides (channels_last in, channels_last out).
        style: the same N and C and dtype, any spatial size (at least one value per plane).
        alpha: style strength in [0, 1] (0 returns content, 1 full AdaIN).
        eps: > 0, added to the variances.

    Returns:
        A tensor of content's shape and dtype.

    Example:
        >>> x, s = torch.randn(1, 4, 8, 8), 3 * torch.randn(1, 4, 5, 7) + 1
        >>> y = adain(x, s)
        >>> torch.allclose(y.mean((2, 3)), s.mean((2, 3)), atol=1e-5)
        True
    """
    check_adain_args(content, style, alpha, eps)
    if _ext.use_kernel(content, "adain"):
        return torch.ops.pytexsynth.adain(content, style, float(alpha), float(eps))
    return reference.adain(content, style, float(alpha), float(eps))


# ---- fake kernels and autograd -----------------------------------------------------------------

def _adain_fake(content, style, alpha=1.0, eps=1e-5):
    return empty_like_layout(content)


def _adain_backward_fake(grad_output, content, style, alpha, eps):
    return empty_like_layout(content), empty_like_layout(style)


def _save(ctx, inputs, output):
    content, style, alpha, eps = inputs
    ctx.save_for_backward(content, style)
    ctx.alpha, ctx.eps = alpha, eps


def _adain_grad(ctx, grad):
    content, style = ctx.saved_tensors
    gc, gs = torch.ops.pytexsynth._adain_backward(grad, content, style, ctx.alpha, ctx.eps)
    return gc, gs, None, None


def _save_backward(ctx, inputs, output):
    grad, content, style, alpha, eps = inputs
    ctx.save_for_backward(grad, content, style)
    ctx.alpha, ctx.eps = alpha, eps


def _composite_vjp(grad, content, style, alpha, eps):
    """The backward as differentiable PyTorch ops: the reference's vector-Jacobian product."""
    _, vjp = torch.func.vjp(lambda c, s: reference.adain(c, s, alpha, eps), content, style)
    return vjp(grad)


def _adain_backward_grad(ctx, grad_gc, grad_gs):
    # Double backward (rarely needed, e.g. gradient penalties): differentiate the composite
    # backward; first derivatives always run the kernels.
    grad, content, style = ctx.saved_tensors
    grad_gc = torch.zeros_like(content) if grad_gc is None else grad_gc
    grad_gs = torch.zeros_like(style) if grad_gs is None else grad_gs
    _, vjp = torch.func.vjp(lambda g, c, s: _composite_vjp(g, c, s, ctx.alpha, ctx.eps), grad, content, style)
    return (*vjp((grad_gc, grad_gs)), None, None)


_ext.register("adain", _adain_fake, _adain_grad, _save)
_ext.register("_adain_backward", _adain_backward_fake, _adain_backward_grad, _save_backward)
