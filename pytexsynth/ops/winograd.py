"""winograd_weight and winograd_conv3x3: 3x3 convolution by Winograd F(4x4, 3x3); wrappers, fakes, autograd."""

from __future__ import annotations

import torch

from .. import reference
from . import _ext
from .checks import check_tensor

__all__ = ["winograd_weight", "winograd_conv3x3"]


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
    check_tensor(weight, op, "weight", (4,), "(C_out, C_in, 3, 3)")
    if tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"{op}: weight must be (C_out, C_in, 3, 3), got shape {tuple(weight.shape)}")
    _check_winograd_dtype(weight, op, "weight")
    if weight.device.type in ("cpu", "cuda"):  # in weight's dtype under torch.autocast too
        with torch.autocast(weight.device.type, enabled=False):
            return reference.winograd_weight(weight)
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
    backward). On CUDA the 36 plane GEMMs are cuBLAS calls in full fp32, never TF32 whatever
    ``torch.backends.cuda.matmul.allow_tf32`` says (the op's policy is ``"ieee"``,
    csrc/common/precision.h): the transforms amplify rounding, and TF32 would put the error far
    beyond 1e-6.

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
    check_tensor(x, op, "x", (4,), "4-D (N, C, H, W)")
    check_tensor(U, op, "U", (3,), "(36, C_in, C_out)")
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


# ---- fake kernels and autograd -----------------------------------------------------------------

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


_ext.register("winograd_conv3x3", _winograd_fake, _winograd_grad, _winograd_setup)
_ext.register("_winograd_conv3x3_backward", _winograd_backward_fake, _winograd_backward_grad, _winograd_backward_setup)
