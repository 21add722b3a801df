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
