"""style_swap (Chen & Schmidt 2016): memory-bounded patch matching and overlap averaging; wrapper, fakes, autograd."""

from __future__ import annotations

import torch

from .. import reference
from . import _ext
from .checks import PRECISIONS, check_positive_int, check_tensor, empty_like_layout

__all__ = ["style_swap"]


def check_style_swap_args(content, style, patch_size, stride, precision, op: str = "style_swap"):
    check_tensor(content, op, "content", (4,), "4-D (B, C, H, W)")
    check_tensor(style, op, "style", (4,), "4-D (B, C, H, W)")
    if content.dtype != style.dtype:
        raise TypeError(f"{op}: content and style must have the same dtype, got {content.dtype} and {style.dtype}")
    if content.device != style.device:
        raise ValueError(f"{op}: content and style must be on the same device, got {content.device} and {style.device}")
    if style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"{op}: style must have batch size 1 or the content's batch size {content.shape[0]}, "
                         f"got {style.shape[0]}")
    if content.shape[1] != style.shape[1]:
        raise ValueError(f"{op}: content has {content.shape[1]} channels but style has {style.shape[1]}; they must match")
    if content.shape[1] < 1:
        raise ValueError(f"{op}: content and style need at least one channel")
    k = check_positive_int(patch_size, op, "patch_size")
    s = check_positive_int(stride, op, "stride")
    for what, t in (("content", content), ("style", style)):
        h, w = t.shape[-2:]
        if k > h or k > w:
            raise ValueError(f"{op}: patch_size={k} is larger than the {what} map ({h}x{w})")
    if precision not in PRECISIONS:
        raise ValueError(f"{op}: precision must be 'ieee', 'tf32' or 'bf16', got {precision!r}")
    return k, s


def style_swap(content: torch.Tensor, style: torch.Tensor, patch_size: int = 3, stride: int = 1,
               precision: str = "ieee", return_indices: bool = False):
    """Style-swap (Chen & Schmidt 2016): each content patch replaced by its best style patch.

    Every ``patch_size`` x ``patch_size`` content patch (at ``stride``) is matched to the style
    patch with the highest normalised cross-correlation
    ``<content patch, style patch> / (||style patch|| + 1e-8)`` (the content is not normalised,
    as in the paper; equal scores go to the smallest style index, as ``torch.argmax``), and the
    output is the average of the chosen style patches where they overlap (exact counts at the
    borders; pixels no patch covers, left over by a stride, are 0).

    Unlike the usual conv2d / argmax / one-hot / conv_transpose2d formulation
    (:func:`pytexsynth.reference.style_swap`), the kernels never store the n_content x n_style
    score matrix: they run GEMMs over bands of patches sized to a fixed memory budget and keep
    a running (max, argmax) per content patch; at stride 1 the GEMM is over pixels and patch
    scores are sums of k*k aligned pixel products (k*k fewer FLOPs). Extra memory is
    O(n_content + n_style + one band).

    Gradients: none flows to ``content`` (the argmax is piecewise constant, its derivative is
    zero almost everywhere: autograd sees a zero gradient); ``style`` gets the overlap-averaged
    output gradient gathered back to the matched patches (deterministic, no atomics).

    Args:
        content: (B, C, H, W) features, float32/float64/float16/bfloat16.
        style: (1, C, Hs, Ws) (shared by the batch) or (B, C, Hs, Ws), same dtype and device.
        patch_size: patch side k (3 in the paper), at most each map's height and width.
        stride: patch stride (1 in the paper).
        precision: matching GEMM precision for float32/16 inputs: "ieee" (full float32, the
            default), "tf32" (tensor cores on CUDA; float32 on the CPU), or "bf16" (operands
            rounded to bfloat16, float32 accumulation). float64 inputs always match in float64.
            The argument alone decides: PyTorch's global TF32 flags are neither read nor changed.
            Reduced precision can flip near-ties to another patch whose score is within the
            rounding error of the best.
        return_indices: also return the (B, nH, nW) int64 indices (row-major over the style
            patch grid) of the chosen patches.

    Returns:
        (B, C, H, W) swapped features (and the indices if ``return_indices``).

    Example:
        >>> style = torch.rand(1, 8, 16, 16) + 0.1
        >>> out = style_swap(style, style)  # each patch is its own best match
        >>> torch.allclose(out, style)
        True
    """
    op = "style_swap"
    k, s = check_style_swap_args(content, style, patch_size, stride, precision, op)
    if _ext.use_kernel(content, op):
        out, idx = torch.ops.pytexsynth.style_swap(content, style, k, s, precision)
    else:
        out, idx = reference.style_swap(content, style, k, s, precision, return_indices=True)
    return (out, idx) if return_indices else out


# ---- fake kernels and autograd -----------------------------------------------------------------

def _style_swap_fake(content, style, patch_size=3, stride=1, precision="ieee", method="auto", band_bytes=0):
    B, _, H, W = content.shape
    n_h, n_w = (H - patch_size) // stride + 1, (W - patch_size) // stride + 1
    out = empty_like_layout(content)
    return out, content.new_empty((B, n_h, n_w), dtype=torch.long)


def _style_swap_decode_fake(style, indices, height, width, patch_size, stride):
    return empty_like_layout(style, (indices.shape[0], style.shape[1], height, width))


def _style_swap_backward_fake(grad_output, indices, style_size, patch_size, stride):
    return empty_like_layout(grad_output, tuple(style_size))


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


_ext.register("style_swap", _style_swap_fake, _style_swap_grad, _style_swap_setup)
_ext.register("_style_swap_decode", _style_swap_decode_fake, _style_swap_decode_grad, _style_swap_decode_setup)
_ext.register("_style_swap_backward", _style_swap_backward_fake, _style_swap_backward_grad, _style_swap_backward_setup)
