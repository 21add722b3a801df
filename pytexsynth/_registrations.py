"""Fake (meta) kernels and autograd formulas of the C++ ops.

Fake kernels compute output shapes and strides only, so the ops trace under torch.compile and
pass torch.library.opcheck. Output layouts follow csrc/common/checks.h:output_memory_format.
"""

from __future__ import annotations

import torch

from . import _ext


def _output_memory_format(t: torch.Tensor) -> torch.memory_format:
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _resized_like(t: torch.Tensor, h, w) -> torch.Tensor:
    shape = (*t.shape[:-2], h, w)
    return torch.empty(shape, dtype=t.dtype, device=t.device, memory_format=_output_memory_format(t))


# ---- circular_pad2d --------------------------------------------------------------------------

def _circular_pad2d_fake(x, pad):
    left, right, top, bottom = pad
    return _resized_like(x, x.shape[-2] + top + bottom, x.shape[-1] + left + right)


def _circular_pad2d_backward_fake(grad_output, pad):
    left, right, top, bottom = pad
    return _resized_like(grad_output, grad_output.shape[-2] - top - bottom, grad_output.shape[-1] - left - right)


def _save_pad(ctx, inputs, output):
    ctx.pad = inputs[1]


def _circular_pad2d_grad(ctx, grad):
    return torch.ops.pytexsynth._circular_pad2d_backward(grad, ctx.pad), None


def _circular_pad2d_backward_grad(ctx, grad):
    # The backward is linear, its adjoint is the forward: double backward pads again.
    return torch.ops.pytexsynth.circular_pad2d(grad, ctx.pad), None


if _ext.HAS_EXTENSION:
    torch.library.register_fake("pytexsynth::circular_pad2d")(_circular_pad2d_fake)
    torch.library.register_fake("pytexsynth::_circular_pad2d_backward")(_circular_pad2d_backward_fake)
    torch.library.register_autograd("pytexsynth::circular_pad2d", _circular_pad2d_grad, setup_context=_save_pad)
    torch.library.register_autograd(
        "pytexsynth::_circular_pad2d_backward", _circular_pad2d_backward_grad, setup_context=_save_pad
    )


# ---- gram --------------------------------------------------------------------------------------

def _gram_acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _gram_fake(x, normalize="hw", precision="ieee"):
    b, c = x.shape[:2]
    return x.new_empty((b, c, c))


def _gram_backward_fake(grad_output, x, normalize, precision):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_output_memory_format(x))


def _gram_loss_fake(x, target, weight=1.0, normalize="hw", precision="ieee"):
    b, c = x.shape[:2]
    return x.new_empty(()), x.new_empty((b, c, c), dtype=_gram_acc_dtype(x))


def _gram_loss_backward_fake(grad_loss, diff, x, weight, normalize, precision):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_output_memory_format(x))


def _gram_setup(ctx, inputs, output):
    x, normalize, precision = inputs
    ctx.save_for_backward(x)
    ctx.normalize, ctx.precision = normalize, precision


def _gram_grad(ctx, grad):
    (x,) = ctx.saved_tensors
    return torch.ops.pytexsynth._gram_backward(grad, x, ctx.normalize, ctx.precision), None, None


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
        grad_target = _target_grad(diff, grad_loss, grad_diff, ctx.weight, ctx.target_shape, x.dtype)
    return grad_x, grad_target, None, None, None


# Double backward, with plain torch ops (differentiable again). R is the gradient of grad_x.
def _gram_divisor(x: torch.Tensor, normalize: str) -> float:
    c, n = x.shape[1], x.shape[2] * x.shape[3]
    return float({"hw": n, "chw": c * n, "none": 1}[normalize])


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
    norm = _gram_divisor(x, ctx.normalize)
    g_go = g_x = None
    if ctx.needs_input_grad[0]:
        g_go = (_cross(r, x, grad_output.dtype) / norm).to(grad_output.dtype)
    if ctx.needs_input_grad[1]:
        s = (grad_output + grad_output.mT).to(r.dtype) / norm
        g_x = (s @ r.flatten(2)).reshape(x.shape)
    return g_go, g_x, None, None


def _gram_loss_backward_setup(ctx, inputs, output):
    grad_loss, diff, x, weight, normalize, precision = inputs
    ctx.save_for_backward(grad_loss, diff, x)
    ctx.coef = 2.0 * weight / (diff.numel() * _gram_divisor(x, normalize)) if diff.numel() else 0.0


def _gram_loss_backward_terms(r, grad_loss, diff, x, coef, need_gl, need_diff, need_x):
    # grad_x = coef * gl * (D + D^T) F: its gradients w.r.t. gl, D and F given R.
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
    return (*_gram_loss_backward_terms(r, grad_loss, diff, x, ctx.coef, need[0], need[1], need[2]), None, None, None)


# ---- gram_loss_multi: every style layer in one op -------------------------------------------

def _gram_loss_multi_fake(xs, targets, weights, normalize="hw", precision="ieee"):
    diffs = [x.new_empty((x.shape[0], x.shape[1], x.shape[1]), dtype=_gram_acc_dtype(x)) for x in xs]
    return xs[0].new_empty(()), diffs


def _gram_loss_multi_backward_fake(grad_loss, diffs, xs, weights, normalize, precision):
    return [torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_output_memory_format(x)) for x in xs]


def _gram_loss_multi_setup(ctx, inputs, output):
    xs, targets, weights, normalize, precision = inputs
    ctx.layers = len(xs)
    ctx.save_for_backward(*xs, *output[1])  # x and D = G - T of each layer
    ctx.set_materialize_grads(False)
    ctx.weights, ctx.normalize, ctx.precision = list(weights), normalize, precision
    ctx.target_shapes = [t.shape for t in targets]


def _target_grad(diff, grad_loss, grad_diff, weight, target_shape, dtype):
    # dL/dT = -2 w / (B C^2) * D (and -grad_diff), summed over the batch where T was broadcast.
    g = torch.zeros_like(diff)
    if grad_loss is not None:
        g = g + diff * (grad_loss.to(diff.dtype) * (-2.0 * weight / diff.numel()))
    if grad_diff is not None:
        g = g - grad_diff
    if len(target_shape) == 2 or target_shape[0] != diff.shape[0]:
        g = g.sum(0)
    return g.reshape(target_shape).to(dtype)


def _gram_loss_multi_grad(ctx, grad_loss, grad_diffs):
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
    grad_ts = [_target_grad(diffs[i], grad_loss, grad_diffs[i], ctx.weights[i], ctx.target_shapes[i], xs[i].dtype)
               if need_t[i] else None for i in range(n)]
    return grad_xs, grad_ts, None, None, None


def _gram_loss_multi_backward_setup(ctx, inputs, output):
    grad_loss, diffs, xs, weights, normalize, precision = inputs
    ctx.layers = len(xs)
    ctx.save_for_backward(grad_loss, *diffs, *xs)
    ctx.coefs = [2.0 * w / (d.numel() * _gram_divisor(x, normalize)) if d.numel() else 0.0
                 for w, d, x in zip(weights, diffs, xs)]


def _gram_loss_multi_backward_grad(ctx, rs):
    # Each layer's grad_x = coef_l * gl * (D_l + D_l^T) F_l, as in _gram_loss_backward_grad.
    n = ctx.layers
    grad_loss, diffs, xs = ctx.saved_tensors[0], ctx.saved_tensors[1:n + 1], ctx.saved_tensors[n + 1:]
    need_gl, need_d, need_x = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
    g_gl, g_d, g_x = None, [None] * n, [None] * n
    for i, (r, diff, x, coef) in enumerate(zip(rs, diffs, xs, ctx.coefs)):
        if r is None:
            continue
        a, b, c = _gram_loss_backward_terms(r, grad_loss, diff, x, coef, need_gl, need_d[i], need_x[i])
        if a is not None:
            g_gl = a if g_gl is None else g_gl + a
        g_d[i], g_x[i] = b, c
    return g_gl, g_d, g_x, None, None, None


if _ext.HAS_EXTENSION:
    torch.library.register_fake("pytexsynth::gram")(_gram_fake)
    torch.library.register_fake("pytexsynth::_gram_backward")(_gram_backward_fake)
    torch.library.register_fake("pytexsynth::gram_loss")(_gram_loss_fake)
    torch.library.register_fake("pytexsynth::_gram_loss_backward")(_gram_loss_backward_fake)
    torch.library.register_autograd("pytexsynth::gram", _gram_grad, setup_context=_gram_setup)
    torch.library.register_autograd("pytexsynth::gram_loss", _gram_loss_grad, setup_context=_gram_loss_setup)
    torch.library.register_autograd("pytexsynth::_gram_backward", _gram_backward_grad,
                                    setup_context=_gram_backward_setup)
    torch.library.register_autograd("pytexsynth::_gram_loss_backward", _gram_loss_backward_grad,
                                    setup_context=_gram_loss_backward_setup)
    torch.library.register_fake("pytexsynth::gram_loss_multi")(_gram_loss_multi_fake)
    torch.library.register_fake("pytexsynth::_gram_loss_multi_backward")(_gram_loss_multi_backward_fake)
    torch.library.register_autograd("pytexsynth::gram_loss_multi", _gram_loss_multi_grad,
                                    setup_context=_gram_loss_multi_setup)
    torch.library.register_autograd("pytexsynth::_gram_loss_multi_backward", _gram_loss_multi_backward_grad,
                                    setup_context=_gram_loss_multi_backward_setup)

# ---- histogram matching ----------------------------------------------------------------------

def _histogram_match_fake(x, lo, hi, cdf):
    return torch.empty_like(x, memory_format=_output_memory_format(x))


def _histogram_loss_fake(x, lo, hi, cdf, weight):
    return x.new_empty(()), torch.empty_like(x, memory_format=_output_memory_format(x))


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


if _ext.HAS_EXTENSION:
    torch.library.register_fake("pytexsynth::histogram_match")(_histogram_match_fake)
    torch.library.register_fake("pytexsynth::histogram_loss")(_histogram_loss_fake)
    torch.library.register_fake("pytexsynth::_histogram_loss_backward")(_histogram_loss_backward_fake)
    torch.library.register_autograd("pytexsynth::histogram_match", _histogram_match_grad, setup_context=_histogram_match_setup)
    torch.library.register_autograd("pytexsynth::histogram_loss", _histogram_loss_grad, setup_context=_histogram_loss_setup)
    torch.library.register_autograd(
        "pytexsynth::_histogram_loss_backward", _histogram_loss_backward_grad, setup_context=_histogram_loss_backward_setup
    )
# ---- style_swap ----

def _style_swap_fake(content, style, patch_size=3, stride=1, precision="ieee", method="auto", band_bytes=0):
    B, C, H, W = content.shape
    n_h, n_w = (H - patch_size) // stride + 1, (W - patch_size) // stride + 1
    out = torch.empty((B, C, H, W), dtype=content.dtype, device=content.device,
                      memory_format=_output_memory_format(content))
    return out, content.new_empty((B, n_h, n_w), dtype=torch.long)


def _style_swap_decode_fake(style, indices, height, width, patch_size, stride):
    return torch.empty((indices.shape[0], style.shape[1], height, width), dtype=style.dtype, device=style.device,
                       memory_format=_output_memory_format(style))


def _style_swap_backward_fake(grad_output, indices, style_size, patch_size, stride):
    return torch.empty(tuple(style_size), dtype=grad_output.dtype, device=grad_output.device,
                       memory_format=_output_memory_format(grad_output))


def _style_swap_setup(ctx, inputs, output):
    content, style, ctx.patch_size, ctx.stride = inputs[:4]
    indices = output[1]
    ctx.mark_non_differentiable(indices)
    ctx.save_for_backward(indices)
    ctx.style_size = list(style.shape)
    ctx.content_like = (content.shape, content.dtype, content.device)


def _style_swap_grad(ctx, grad_out, _grad_indices):
    # Content: zero (the argmax is piecewise constant). Style: the adjoint of the decode.
    (indices,) = ctx.saved_tensors
    grad_content = grad_style = None
    if ctx.needs_input_grad[0]:
        shape, dtype, device = ctx.content_like
        grad_content = torch.zeros(shape, dtype=dtype, device=device)
    if ctx.needs_input_grad[1]:
        grad_style = torch.ops.pytexsynth._style_swap_backward(grad_out, indices, ctx.style_size, ctx.patch_size,
                                                               ctx.stride)
    return grad_content, grad_style, None, None, None, None, None


def _style_swap_decode_setup(ctx, inputs, output):
    style, indices, _h, _w, ctx.patch_size, ctx.stride = inputs
    ctx.save_for_backward(indices)
    ctx.style_size = list(style.shape)


def _style_swap_decode_grad(ctx, grad):
    (indices,) = ctx.saved_tensors
    grad_style = torch.ops.pytexsynth._style_swap_backward(grad, indices, ctx.style_size, ctx.patch_size, ctx.stride)
    return grad_style, None, None, None, None, None


def _style_swap_backward_setup(ctx, inputs, output):
    grad_output, indices, _size, ctx.patch_size, ctx.stride = inputs
    ctx.save_for_backward(indices)
    ctx.height, ctx.width = grad_output.shape[-2:]


def _style_swap_backward_grad(ctx, grad):
    # The backward is linear in grad_output; its adjoint is the decode.
    (indices,) = ctx.saved_tensors
    gg = torch.ops.pytexsynth._style_swap_decode(grad, indices, ctx.height, ctx.width, ctx.patch_size, ctx.stride)
    return gg, None, None, None, None


if _ext.HAS_EXTENSION:
    torch.library.register_fake("pytexsynth::style_swap")(_style_swap_fake)
    torch.library.register_fake("pytexsynth::_style_swap_decode")(_style_swap_decode_fake)
    torch.library.register_fake("pytexsynth::_style_swap_backward")(_style_swap_backward_fake)
    torch.library.register_autograd("pytexsynth::style_swap", _style_swap_grad, setup_context=_style_swap_setup)
    torch.library.register_autograd("pytexsynth::_style_swap_decode", _style_swap_decode_grad,
                                    setup_context=_style_swap_decode_setup)
    torch.library.register_autograd("pytexsynth::_style_swap_backward", _style_swap_backward_grad,
                                    setup_context=_style_swap_backward_setup)


# ---- winograd_conv3x3 ----

def _winograd_fake(x, U, bias=None, padding=1, chunk_bytes=0):
    n, _, h, w = x.shape
    return torch.empty((n, U.shape[2], h + 2 * padding - 2, w + 2 * padding - 2), dtype=x.dtype, device=x.device,
                       memory_format=torch.channels_last)


def _winograd_backward_fake(grad_output, x, U, padding, chunk_bytes, output_mask):
    dx = (torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
          if output_mask[0] else x.new_empty((0,)))
    dU = torch.empty_like(U, memory_format=torch.contiguous_format) if output_mask[1] else x.new_empty((0,))
    return dx, dU


def _winograd_setup(ctx, inputs, output):
    x, U, bias, ctx.padding, ctx.chunk_bytes = inputs
    ctx.bias_needs_grad = bias is not None and bias.requires_grad
    ctx.save_for_backward(x, U)


def _winograd_grad(ctx, grad):
    x, U = ctx.saved_tensors
    need_x, need_U = ctx.needs_input_grad[:2]
    dx = dU = db = None
    if need_x or need_U:
        gx, gU = torch.ops.pytexsynth._winograd_conv3x3_backward(grad, x, U, ctx.padding, ctx.chunk_bytes,
                                                                 [need_x, need_U])
        dx = gx if need_x else None
        dU = gU if need_U else None
    if ctx.bias_needs_grad:
        db = grad.sum((0, 2, 3))
    return dx, dU, db, None, None


def _winograd_backward_setup(ctx, inputs, output):
    g, x, U, ctx.padding, ctx.chunk_bytes, _mask = inputs
    ctx.save_for_backward(g, x, U)


def _winograd_backward_grad(ctx, gdx, gdU):
    # (dx, dU) = (Bx(g, U), BU(g, x)): Bx is linear in g and in U, BU bilinear in g and x, with
    # <h, Bx(g, U)> = <g, conv(h, U)> and <V, BU(g, x)> = <g, conv(x, V)> (conv: no bias).
    g, x, U = ctx.saved_tensors
    conv = torch.ops.pytexsynth.winograd_conv3x3
    back = torch.ops.pytexsynth._winograd_conv3x3_backward
    p, cb = ctx.padding, ctx.chunk_bytes
    has_dx = gdx is not None and gdx.numel() > 0  # masked-out outputs are empty (0,) tensors
    has_dU = gdU is not None and gdU.numel() > 0
    need_g, need_x, need_U = ctx.needs_input_grad[:3]
    dg = dx = dU = None
    if need_g:
        parts = ([conv(gdx, U, None, p, cb)] if has_dx else []) + ([conv(x, gdU, None, p, cb)] if has_dU else [])
        dg = sum(parts) if parts else None
    if need_x and has_dU:
        dx = back(g, x, gdU, p, cb, [True, False])[0]
    if need_U and has_dx:
        dU = back(g, gdx, U, p, cb, [False, True])[1]
    return dg, dx, dU, None, None, None


if _ext.HAS_EXTENSION:
    torch.library.register_fake("pytexsynth::winograd_conv3x3")(_winograd_fake)
    torch.library.register_fake("pytexsynth::_winograd_conv3x3_backward")(_winograd_backward_fake)
    torch.library.register_autograd("pytexsynth::winograd_conv3x3", _winograd_grad, setup_context=_winograd_setup)
    torch.library.register_autograd("pytexsynth::_winograd_conv3x3_backward", _winograd_backward_grad,
                                    setup_context=_winograd_backward_setup)
