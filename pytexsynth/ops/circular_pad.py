"""circular_pad2d: periodic padding (Texture Networks' tileable convolutions); wrapper, fake, autograd."""

from __future__ import annotations

import torch

from .. import reference
from . import _ext
from .checks import PAD_NAMES, PadArg, check_tensor, empty_like_layout, normalize_pad

__all__ = ["circular_pad2d"]


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
    check_tensor(x, op, "x", (3, 4), "3-D (C, H, W) or 4-D (N, C, H, W)")
    pads = normalize_pad(pad, op)
    for i, p in enumerate(pads):
        size, what = (x.shape[-1], "width") if i < 2 else (x.shape[-2], "height")
        if p > size:
            raise ValueError(
                f"{op}: pad[{i}] ({PAD_NAMES[i]}) = {p} exceeds the input {what} {size}; circular padding wraps at most once"
            )
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.circular_pad2d(x, list(pads))
    return reference.circular_pad2d(x, pads)


# ---- fake kernels and autograd -----------------------------------------------------------------

def _resized(t: torch.Tensor, dh, dw) -> torch.Tensor:
    return empty_like_layout(t, (*t.shape[:-2], t.shape[-2] + dh, t.shape[-1] + dw))


def _pad_fake(x, pad):
    left, right, top, bottom = pad
    return _resized(x, top + bottom, left + right)


def _unpad_fake(grad_output, pad):
    left, right, top, bottom = pad
    return _resized(grad_output, -top - bottom, -left - right)


def _save_pad(ctx, inputs, output):
    ctx.pad = inputs[1]


def _pad_grad(ctx, grad):
    return torch.ops.pytexsynth._circular_pad2d_backward(grad, ctx.pad), None


def _unpad_grad(ctx, grad):
    # The backward is linear, its adjoint is the forward: double backward pads again.
    return torch.ops.pytexsynth.circular_pad2d(grad, ctx.pad), None


_ext.register("circular_pad2d", _pad_fake, _pad_grad, _save_pad)
_ext.register("_circular_pad2d_backward", _unpad_fake, _unpad_grad, _save_pad)
