"""Functional ops: thin, typed wrappers over ``torch.ops.pytexsynth.*``.

Each wrapper validates its arguments (so the error names the argument whichever backend runs),
then calls the compiled kernel, or the reference in :mod:`pytexsynth.reference` where no kernel
can take the input (see :func:`pytexsynth._ext.use_kernel`).
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch

from . import _ext, reference
from . import _registrations  # noqa: F401  (autograd and fake kernels)

__all__ = ["circular_pad2d"]

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_PAD_NAMES = ("left", "right", "top", "bottom")

PadArg = Union[int, Sequence[int]]


def _check_tensor(x: object, op: str, arg: str, dims: Tuple[int, ...], layout: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{op}: {arg} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in dims:
        raise ValueError(f"{op}: {arg} must be a {layout} tensor, got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op}: {arg} must be a float32, float64, float16 or bfloat16 tensor, got {x.dtype}")


def _normalize_pad(pad: PadArg, op: str) -> Tuple[int, int, int, int]:
    """An int pads all four sides; otherwise (left, right, top, bottom)."""
    if isinstance(pad, bool) or not isinstance(pad, (int, Sequence, torch.Size)):
        raise TypeError(f"{op}: pad must be an int or a sequence of 4 ints (left, right, top, bottom), got {pad!r}")
    if isinstance(pad, int):
        pad = (pad,) * 4
    pad = tuple(pad)
    if len(pad) != 4:
        raise ValueError(f"{op}: pad must have 4 entries (left, right, top, bottom), got {len(pad)}: {pad}")
    for i, p in enumerate(pad):
        if isinstance(p, bool) or not isinstance(p, int):
            raise TypeError(f"{op}: pad[{i}] ({_PAD_NAMES[i]}) must be an int, got {p!r}")
        if p < 0:
            raise ValueError(f"{op}: pad[{i}] ({_PAD_NAMES[i]}) = {p} is negative; circular padding takes pads >= 0")
    return pad  # type: ignore[return-value]


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
    _check_tensor(x, op, "x", (3, 4), "3-D (C, H, W) or 4-D (N, C, H, W)")
    pads = _normalize_pad(pad, op)
    for i, p in enumerate(pads):
        size, what = (x.shape[-1], "width") if i < 2 else (x.shape[-2], "height")
        if p > size:
            raise ValueError(
                f"{op}: pad[{i}] ({_PAD_NAMES[i]}) = {p} exceeds the input {what} {size}; circular padding wraps at most once"
            )
    if _ext.use_kernel(x, op):
        return torch.ops.pytexsynth.circular_pad2d(x, list(pads))
    return reference.circular_pad2d(x, pads)


# ---- style_swap ----
__all__ += ["style_swap"]

_PRECISIONS = ("ieee", "tf32", "bf16")


def _check_positive_int(v: object, op: str, arg: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{op}: {arg} must be an int, got {v!r}")
    if v < 1:
        raise ValueError(f"{op}: {arg} must be >= 1, got {v}")
    return int(v)


def _check_style_swap_args(content, style, patch_size, stride, precision, op: str = "style_swap"):
    _check_tensor(content, op, "content", (4,), "4-D (B, C, H, W)")
    _check_tensor(style, op, "style", (4,), "4-D (B, C, H, W)")
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
    k = _check_positive_int(patch_size, op, "patch_size")
    s = _check_positive_int(stride, op, "stride")
    for what, t in (("content", content), ("style", style)):
        h, w = t.shape[-2:]
        if k > h or k > w:
            raise ValueError(f"{op}: patch_size={k} is larger than the {what} map ({h}x{w})")
    if precision not in _PRECISIONS:
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
    k, s = _check_style_swap_args(content, style, patch_size, stride, precision, op)
    if _ext.use_kernel(content, op):
        out, idx = torch.ops.pytexsynth.style_swap(content, style, k, s, precision)
    else:
        out, idx = reference.style_swap(content, style, k, s, precision, return_indices=True)
    return (out, idx) if return_indices else out
