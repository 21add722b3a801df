"""gram_loss_multi: the Gram loss of every style layer in one op; wrapper, fakes, autograd."""

from __future__ import annotations

from typing import Sequence

import torch

from .. import reference
from . import _ext
from .checks import check_tensor, check_weight, compute_dtype, empty_like_layout
from .gram import check_gram_options, check_gram_target, gram_loss_backward_terms, loss_backward_coef, target_grad

__all__ = ["gram_loss_multi"]


def _check_layers(xs, targets, weights, op: str):
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
        check_tensor(x, op, f"xs[{i}]", (4,), "4-D (B, C, H, W)")
        if x.device != xs[0].device:
            raise ValueError(f"{op}: every layer must be on one device; xs[{i}] is on {x.device} but xs[0] is on "
                             f"{xs[0].device}")
        if x.dtype != xs[0].dtype:
            raise TypeError(f"{op}: every layer must have one dtype; xs[{i}] is {x.dtype} but xs[0] is {xs[0].dtype}")
        check_gram_target(x, t, op, f"xs[{i}]", f"targets[{i}]")
    return xs, targets, [check_weight(w, f"{op}: weights[{i}]") for i, w in enumerate(weights)]


def gram_loss_multi(xs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], weights: Sequence[float],
                    normalize: str = "hw", precision: str = "ieee") -> torch.Tensor:
    """Sum of :func:`gram_loss` over several layers: ``sum_l weights[l] * gram_loss(xs[l], targets[l])``.

    One op for all style layers (what :class:`pytexsynth.losses.GramLoss`, and so synthesis and
    the trainers, call): on the CPU the tile GEMMs of every layer run in one parallel loop; on
    CUDA they go out in one batched cuBLAS call per operand shape, followed by one epilogue and
    one reduction kernel for all layers. The backward is one op too. Deterministic like
    :func:`gram_loss`; the loss is summed over layers in list order in float32 (float64 for
    float64 input).

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
    xs, targets, weights = _check_layers(xs, targets, weights, op)
    check_gram_options(normalize, precision, op)
    if _ext.use_kernel(xs[0], op):
        return torch.ops.pytexsynth.gram_loss_multi(xs, targets, weights, normalize, precision)[0]
    return reference.gram_loss_multi(xs, targets, weights, normalize, precision)


# ---- fake kernels ------------------------------------------------------------------------------

def _multi_fake(xs, targets, weights, normalize="hw", precision="ieee"):
    diffs = [x.new_empty((x.shape[0], x.shape[1], x.shape[1]), dtype=compute_dtype(x.dtype)) for x in xs]
    return xs[0].new_empty(()), diffs


def _multi_backward_fake(grad_loss, diffs, xs, weights, normalize, precision):
    return [empty_like_layout(x) for x in xs]


# ---- autograd ----------------------------------------------------------------------------------

def _multi_setup(ctx, inputs, output):
    xs, targets, weights, normalize, precision = inputs
    ctx.layers = len(xs)
    ctx.save_for_backward(*xs, *output[1])  # x and D = G - T of each layer
    ctx.set_materialize_grads(False)
    ctx.weights, ctx.normalize, ctx.precision = list(weights), normalize, precision
    ctx.target_shapes = [t.shape for t in targets]


def _multi_grad(ctx, grad_loss, grad_diffs):
    n = ctx.layers
    saved = ctx.saved_tensors
    xs, diffs = saved[:n], saved[n:]
    need_x, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_diffs = list(grad_diffs) if grad_diffs is not None else [None] * n
    grad_xs = [None] * n
    if any(need_x) and grad_loss is not None:
        # One op for every layer: S_l = coef_l * grad_loss * (D_l + D_l^T), then S_l F_l.
        grad_xs = list(torch.ops.pytexsynth._gram_loss_multi_backward(grad_loss, list(diffs), list(xs), ctx.weights,
                                                                      ctx.normalize, ctx.precision))
    for i in range(n):
        if need_x[i] and grad_diffs[i] is not None:
            g = torch.ops.pytexsynth._gram_backward(grad_diffs[i].to(xs[i].dtype), xs[i], ctx.normalize, ctx.precision)
            grad_xs[i] = g if grad_xs[i] is None else grad_xs[i] + g
        if not need_x[i]:
            grad_xs[i] = None
    grad_ts = [target_grad(diffs[i], grad_loss, grad_diffs[i], ctx.weights[i], ctx.target_shapes[i], xs[i].dtype)
               if need_t[i] else None for i in range(n)]
    return grad_xs, grad_ts, None, None, None


def _multi_backward_setup(ctx, inputs, output):
    grad_loss, diffs, xs, weights, normalize, precision = inputs
    ctx.layers = len(xs)
    ctx.save_for_backward(grad_loss, *diffs, *xs)
    ctx.coefs = [loss_backward_coef(w, d, x, normalize) for w, d, x in zip(weights, diffs, xs)]


def _multi_backward_grad(ctx, rs):
    # Each layer's grad_x = coef_l * gl * (D_l + D_l^T) F_l, as in gram_loss's double backward.
    n = ctx.layers
    grad_loss, diffs, xs = ctx.saved_tensors[0], ctx.saved_tensors[1:n + 1], ctx.saved_tensors[n + 1:]
    need_gl, need_d, need_x = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
    g_gl, g_d, g_x = None, [None] * n, [None] * n
    for i, (r, diff, x, coef) in enumerate(zip(rs, diffs, xs, ctx.coefs)):
        if r is None:
            continue
        a, b, c = gram_loss_backward_terms(r, grad_loss, diff, x, coef, need_gl, need_d[i], need_x[i])
        if a is not None:
            g_gl = a if g_gl is None else g_gl + a
        g_d[i], g_x[i] = b, c
    return g_gl, g_d, g_x, None, None, None


_ext.register("gram_loss_multi", _multi_fake, _multi_grad, _multi_setup)
_ext.register("_gram_loss_multi_backward", _multi_backward_fake, _multi_backward_grad, _multi_backward_setup)
