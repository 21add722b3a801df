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
