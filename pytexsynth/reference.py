"""Pure-PyTorch reference of every pytexsynth op.

These define what the kernels compute: the tests compare against them, the benchmarks time
them, and the ops fall back to them when the compiled extension is absent.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def circular_pad2d(x: torch.Tensor, pad: Sequence[int]) -> torch.Tensor:
    """Circular (periodic) padding of the last two dims: ``F.pad(x, pad, mode="circular")``.

    Args:
        x: (C, H, W) or (N, C, H, W).
        pad: (left, right, top, bottom), each between 0 and the size of its dimension.
    """
    return F.pad(x, tuple(int(p) for p in pad), mode="circular")


# ---- style_swap ----

def style_swap(content: torch.Tensor, style: torch.Tensor, patch_size: int = 3, stride: int = 1,
               precision: str = "ieee", return_indices: bool = False):
    """Style-swap (Chen & Schmidt 2016) the way it is usually written, one image at a time.

    conv2d of the content with the normalised style patches as filters -> argmax over the
    style patches -> one-hot -> conv_transpose2d with the raw patches, divided by a
    conv_transpose2d of ones (the overlap count). It materialises an n_content x n_style
    score tensor and a one-hot of the same size: the memory problem the kernels avoid.
    Pixels no patch covers (when (H - patch_size) % stride != 0) are 0. ``precision="bf16"``
    rounds the GEMM operands to bfloat16 (products in float32); "tf32" computes in full
    float32 here.
    """
    k, s = int(patch_size), int(stride)
    B, C, H, W = content.shape
    outs, indices = [], []
    for b in range(B):
        sty = style[b if style.shape[0] > 1 else 0].unsqueeze(0)
        patches = F.unfold(sty, k, stride=s).squeeze(0).t().reshape(-1, C, k, k)  # (ns, C, k, k)
        norms = patches.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        filters = patches / (norms + 1e-8)
        x = content[b].unsqueeze(0)
        if precision == "bf16" and x.dtype != torch.float64:
            x = x.to(torch.bfloat16).float()
            filters = filters.to(torch.bfloat16).float()
        scores = F.conv2d(x.to(filters.dtype), filters, stride=s)  # (1, ns, nH, nW)
        idx = scores.argmax(dim=1)  # (1, nH, nW)
        one_hot = torch.zeros_like(scores).scatter_(1, idx.unsqueeze(1), 1.0)
        extra = ((H - k) % s, (W - k) % s)
        out = F.conv_transpose2d(one_hot, patches.to(one_hot.dtype), stride=s, output_padding=extra)
        count = F.conv_transpose2d(one_hot, torch.ones_like(patches[:, :1]), stride=s, output_padding=extra)
        outs.append(torch.where(count > 0, out / count.clamp_min(1), torch.zeros_like(out)).to(content.dtype))
        indices.append(idx)
    out = torch.cat(outs) if outs else content.new_empty(content.shape)
    idx = torch.cat(indices) if indices else torch.empty(
        (0, (H - k) // s + 1, (W - k) // s + 1), dtype=torch.long, device=content.device)
    return (out, idx) if return_indices else out
