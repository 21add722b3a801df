"""gram and gram_loss: Gram matrices and the fused Gram (style) loss; wrappers, fakes, autograd.

The multi-layer loss is :mod:`pytexsynth.ops.gram_multi`; the target and double-backward
formulas here serve both.
"""

from __future__ import annotations

import torch

from .. import reference
from . import _ext
from .checks import GRAM_NORMALIZE, PRECISIONS, check_choice, check_tensor, check_weight, compute_dtype, empty_like_layout

__all__ = ["gram", "gram_loss"]


def check_gram_target(x: torch.Tensor, target: object, op: str, xn: str = "x", tn: str = "target") -> None:
    """``target`` is (C, C) or (B or 1, C, C) for features ``x`` (B, C, H, W), same dtype and device."""
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


def check_gram_options(normalize: object, precision: object, op: str) -> None:
    check_choice(normalize, GRAM_NORMALIZE, op, "normalize")
    check_choice(precision, PRECISIONS, op, "precision")


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
            float64 input always computes in float64. The argument alone decides: PyTorch's
            global TF32 flags are neither read nor changed.

    Returns:
        (B, C, C) in x's dtype.

    Example:
        >>> x = torch.ones(1, 2, 3, 3)
        >>> gram(x)
        tensor([[[1., 1.],
                 [1., 1.]]])
    """
    op = "gram"
    check_tensor(x, op, "x", (4,), "4-D (B, C, H, W)")
    check_gram_options(normalize, precision, op)
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
    check_tensor(x, op, "x", (4,), "4-D (B, C, H, W)")
    check_gram_target(x, target, op)
    weight = check_weight(weight, op)
    check_gram_options(normalize, precision, op)
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.gram_loss(x, target, weight, normalize, precision)[0]
    return reference.gram_loss(x, target, weight, normalize, precision)


# ---- fake kernels ------------------------------------------------------------------------------

def _gram_fake(x, normalize="hw", precision="ieee"):
    b, c = x.shape[:2]
    return x.new_empty((b, c, c))


def _features_grad_fake(grad_output, x, *args):
    return empty_like_layout(x)


def _gram_loss_fake(x, target, weight=1.0, normalize="hw", precision="ieee"):
    b, c = x.shape[:2]
    return x.new_empty(()), x.new_empty((b, c, c), dtype=compute_dtype(x.dtype))


def _gram_loss_backward_fake(grad_loss, diff, x, weight, normalize, precision):
    return empty_like_layout(x)


# ---- first derivatives -------------------------------------------------------------------------

def _gram_setup(ctx, inputs, output):
    x, normalize, precision = inputs
    ctx.save_for_backward(x)
    ctx.normalize, ctx.precision = normalize, precision


def _gram_grad(ctx, grad):
    (x,) = ctx.saved_tensors
    return torch.ops.pytexsynth._gram_backward(grad, x, ctx.normalize, ctx.precision), None, None


def target_grad(diff, grad_loss, grad_diff, weight, target_shape, dtype):
    """dL/dT = -2 w / (B C^2) * D (and -grad_diff), summed over the batch where T was broadcast."""
    g = torch.zeros_like(diff)
    if grad_loss is not None:
        g = g + diff * (grad_loss.to(diff.dtype) * (-2.0 * weight / diff.numel()))
    if grad_diff is not None:
        g = g - grad_diff
    if len(target_shape) == 2 or target_shape[0] != diff.shape[0]:
        g = g.sum(0)
    return g.reshape(target_shape).to(dtype)


def _gram_loss_setup(ctx, inputs, output):
    x, target, weight, normalize, precision = inputs
    ctx.save_for_backward(x, output[1])  # x and D = G - T only
    ctx.set_materialize_grads(False)  # an unused diff output costs no GEMM in the backward
    ctx.weight, ctx.normalize, ctx.precision = weight, normalize, precision
    ctx.target_shape = target.shape


def _gram_loss_grad(ctx, grad_loss, grad_diff):
    # Both outputs are differentiable: loss = w * mean(D^2) and D = G - T itself (the double
    # backward reaches x through the saved D). The wrapper returns only the loss, so grad_diff
    # is None there.
    x, diff = ctx.saved_tensors
    grad_x = grad_target = None
    if ctx.needs_input_grad[0]:
        if grad_loss is not None:
            grad_x = torch.ops.pytexsynth._gram_loss_backward(grad_loss, diff, x, ctx.weight, ctx.normalize,
                                                              ctx.precision)
        if grad_diff is not None:
            g = torch.ops.pytexsynth._gram_backward(grad_diff.to(x.dtype), x, ctx.normalize, ctx.precision)
            grad_x = g if grad_x is None else grad_x + g
    if ctx.needs_input_grad[1]:
        grad_target = target_grad(diff, grad_loss, grad_diff, ctx.weight, ctx.target_shape, x.dtype)
    return grad_x, grad_target, None, None, None


# ---- double backward, with plain torch ops (differentiable again); R is the gradient of grad_x --

def _cross(r: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """R F^T + F R^T, (B, C, C)."""
    rf, f = r.flatten(2).to(dtype), x.flatten(2).to(dtype)
    m = rf @ f.mT
    return m + m.mT


def _gram_backward_setup(ctx, inputs, output):
    grad_output, x, normalize, precision = inputs
    ctx.save_for_backward(grad_output, x)
    ctx.normalize = normalize


def _gram_backward_grad(ctx, r):
    # grad_x = (gO + gO^T) F / norm: linear in gO and in F.
    grad_output, x = ctx.saved_tensors
    norm = float(reference.gram_divisor(x, ctx.normalize))
    g_go = g_x = None
    if ctx.needs_input_grad[0]:
        g_go = (_cross(r, x, grad_output.dtype) / norm).to(grad_output.dtype)
    if ctx.needs_input_grad[1]:
        s = (grad_output + grad_output.mT).to(r.dtype) / norm
        g_x = (s @ r.flatten(2)).reshape(x.shape)
    return g_go, g_x, None, None


def loss_backward_coef(weight: float, diff: torch.Tensor, x: torch.Tensor, normalize: str) -> float:
    """``2 w / (B C^2 divisor)``: grad_x of one layer's loss is ``coef * gl * (D + D^T) F``; 0 when
    there are no features (no positions: the gradient is empty, found by tests/test_fuzz_ops.py)."""
    divisor = float(reference.gram_divisor(x, normalize))
    return 2.0 * weight / (diff.numel() * divisor) if diff.numel() and divisor else 0.0


def _gram_loss_backward_setup(ctx, inputs, output):
    grad_loss, diff, x, weight, normalize, precision = inputs
    ctx.save_for_backward(grad_loss, diff, x)
    ctx.coef = loss_backward_coef(weight, diff, x, normalize)


def gram_loss_backward_terms(r, grad_loss, diff, x, coef, need_gl, need_diff, need_x):
    """grad_x = coef * gl * (D + D^T) F: its gradients w.r.t. gl, D and F given R."""
    acc = diff.dtype
    gl = grad_loss.to(acc).reshape(())
    g_gl = g_diff = g_x = None
    if need_gl or need_diff:
        cross = _cross(r, x, acc)
        if need_gl:
            g_gl = (coef * (cross * diff).sum()).reshape(grad_loss.shape).to(grad_loss.dtype)
        if need_diff:
            g_diff = coef * gl * cross
    if need_x:
        s = (coef * gl) * (diff + diff.mT)
        g_x = (s @ r.flatten(2).to(acc)).reshape(x.shape).to(x.dtype)
    return g_gl, g_diff, g_x


def _gram_loss_backward_grad(ctx, r):
    grad_loss, diff, x = ctx.saved_tensors
    need = ctx.needs_input_grad
    return (*gram_loss_backward_terms(r, grad_loss, diff, x, ctx.coef, need[0], need[1], need[2]), None, None, None)


_ext.register("gram", _gram_fake, _gram_grad, _gram_setup)
_ext.register("_gram_backward", _features_grad_fake, _gram_backward_grad, _gram_backward_setup)
_ext.register("gram_loss", _gram_loss_fake, _gram_loss_grad, _gram_loss_setup)
_ext.register("_gram_loss_backward", _gram_loss_backward_fake, _gram_loss_backward_grad, _gram_loss_backward_setup)
