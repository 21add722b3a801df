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
