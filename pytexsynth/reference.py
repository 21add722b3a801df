"""Pure-PyTorch reference of every pytexsynth op.

These define what the kernels compute: the tests compare against them, the benchmarks time
them, and the ops fall back to them when the compiled extension is absent.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .ops.checks import compute_dtype
from .ops.histogram_stats import HistogramStats, bin_position


def circular_pad2d(x: torch.Tensor, pad: Sequence[int]) -> torch.Tensor:
    """Circular (periodic) padding of the last two dims: ``F.pad(x, pad, mode="circular")``.

    Args:
        x: (C, H, W) or (N, C, H, W).
        pad: (left, right, top, bottom), each between 0 and the size of its dimension.
    """
    return F.pad(x, tuple(int(p) for p in pad), mode="circular")


# ---- gram ----

def gram_divisor(x: torch.Tensor, normalize: str) -> int:
    """The divisor of :func:`gram` for (B, C, H, W) features: H*W ("hw"), C*H*W ("chw") or 1."""
    c, n = x.shape[1], x.shape[2] * x.shape[3]
    return {"hw": n, "chw": c * n, "none": 1}[normalize]


def gram(x: torch.Tensor, normalize: str = "hw", precision: str = "ieee") -> torch.Tensor:
    """Gram matrices ``F F^T / divisor`` of (B, C, H, W) features, (B, C, C) in x's dtype.

    ``precision="bf16"`` rounds F to bfloat16 and multiplies in float32 (the products of two
    bfloat16 values are exact in float32, so this is "bf16 inputs, fp32 accumulation").
    ``"ieee"`` and ``"tf32"`` are plain matmuls: which one CUDA runs is PyTorch's global
    ``torch.backends.cuda.matmul`` setting (the benchmarks set it explicitly).
    """
    f = x.flatten(2)
    if precision == "bf16" and f.dtype != torch.float64:
        f = f.to(torch.bfloat16).float()
    elif f.dtype in (torch.float16, torch.bfloat16):
        f = f.float()
    g = f @ f.mT / gram_divisor(x, normalize)
    return g.to(x.dtype)


def gram_loss(x: torch.Tensor, target: torch.Tensor, weight: float = 1.0, normalize: str = "hw",
              precision: str = "ieee") -> torch.Tensor:
    """Gram (style) loss ``weight * mean((gram(x) - target)**2)``, target (C, C) or (B, C, C)."""
    g = gram(x, normalize, precision)
    return weight * F.mse_loss(g, target.expand_as(g))


def gram_loss_multi(xs, targets, weights, normalize: str = "hw", precision: str = "ieee") -> torch.Tensor:
    """``sum_l weights[l] * gram_loss(xs[l], targets[l])``, summed in list order."""
    total = None
    for x, t, w in zip(xs, targets, weights):
        term = gram_loss(x, t, w, normalize, precision)
        total = term if total is None else total + term
    return total


def gram_loss_unfused(x: torch.Tensor, target: torch.Tensor, weight: float = 1.0, normalize: str = "hw") -> torch.Tensor:
    """What every public implementation runs: ``bmm`` + ``mse_loss`` (the benchmarks' baseline)."""
    b, c = x.shape[:2]
    f = x.reshape(b, c, -1)
    g = torch.bmm(f, f.transpose(1, 2)) / gram_divisor(x, normalize)
    return weight * F.mse_loss(g, target.expand_as(g))

# ---- histogram matching ----------------------------------------------------------------------


def _planes(x: torch.Tensor) -> torch.Tensor:
    """x as (planes, H * W) in the compute dtype: one row per (n, c) plane."""
    return x.detach().to(compute_dtype(x.dtype)).reshape(-1, x.shape[-2] * x.shape[-1])


def _style_rows(stats: HistogramStats, planes: int, channels: int, dtype: torch.dtype):
    """The style statistics of each plane's channel: lo, step (P, 1) and cdf (P, bins + 1)."""
    bins = stats.bins
    lo = stats.lo.to(dtype)
    hi = stats.hi.to(dtype)
    width = hi - lo
    step = torch.where(torch.isinf(width), hi / bins - lo / bins, width / bins)  # as csrc/common/histogram.h
    idx = torch.arange(planes, device=lo.device) % channels
    return lo[idx, None], step[idx, None], stats.cdf.to(dtype)[idx].contiguous()


def _style_inverse(u: torch.Tensor, lo, step, cdf, bins: int) -> torch.Tensor:
    """Style value at quantile u (P, M): bin k = first with cdf[k + 1] >= u, then lo + (k + f) * step
    with f the linear position of u between cdf[k] and cdf[k + 1]."""
    k = torch.searchsorted(cdf[:, 1:].contiguous(), u.contiguous(), side="left").clamp(max=bins - 1)
    c0 = cdf.gather(1, k)
    c1 = cdf.gather(1, k + 1)
    f = torch.where(c1 > c0, (u - c0) / (c1 - c0), torch.zeros_like(u)).clamp(0, 1)
    kf = k.to(u.dtype) + f
    offset = kf * step
    half_offset = kf * (step * 0.5)  # where the offset overflows (a style range near the float range)
    return torch.where(offset <= torch.finfo(u.dtype).max, lo + offset, (lo + half_offset) + half_offset)


def histogram_match(x: torch.Tensor, stats: HistogramStats) -> torch.Tensor:
    """R(x), the spec of the kernels (vectorised): per (n, c) plane of x (C, H, W) or (B, C, H, W),
    each value's quantile u in the plane's own piecewise-linear CDF (cum[b] + frac * count[b]) / n,
    then the style value at u by inverting the style CDF with linear interpolation. A constant plane
    maps to the style median (u = 0.5); NaN stays NaN and is left out of the counts. Computed in
    float32 (float64 for float64 x), returned in x's dtype. No gradient (R is a constant).
    +-inf are left out of the range and the counts and go to the style's extremes (quantile 1 for
    +inf, 0 for -inf); the finite values are matched among themselves."""
    bins = stats.bins
    if x.shape[-2] * x.shape[-1] == 0:  # empty planes: nothing to match
        return x.detach().clone()
    xf = _planes(x)
    dt = xf.dtype
    nan = torch.isnan(xf)
    finite = torch.isfinite(xf)
    lo = torch.where(finite, xf, torch.full_like(xf, float("inf"))).amin(dim=1, keepdim=True)
    hi = torch.where(finite, xf, torch.full_like(xf, float("-inf"))).amax(dim=1, keepdim=True)
    varies = hi > lo
    b, frac = bin_position(xf, lo, hi, bins)
    valid = finite & varies
    counts = torch.zeros(xf.shape[0], bins, dtype=torch.long, device=xf.device)
    counts.scatter_add_(1, b, valid.long())
    cum = torch.cat([counts.new_zeros(xf.shape[0], 1), counts.cumsum(1)], dim=1)
    n = cum[:, -1:].to(dt)
    u = ((cum.gather(1, b).to(dt) + frac * counts.gather(1, b).to(dt)) / n).clamp(max=1)
    u = torch.where(varies, u, torch.full_like(u, 0.5))
    u = torch.where(finite | nan, u, (xf > 0).to(dt))
    s_lo, s_step, s_cdf = _style_rows(stats, xf.shape[0], x.shape[-3], dt)
    r = _style_inverse(u, s_lo, s_step, s_cdf, bins)
    r = torch.where(nan, xf, r)
    return r.reshape(x.shape).to(x.dtype)


def histogram_match_exact(x: torch.Tensor, stats: HistogramStats) -> torch.Tensor:
    """Sort-based matching: the value of rank r (0-based, ties broken by position) in its plane of
    M values goes to the style quantile u = (r + 0.5) / M. With as many values as the style, the
    histogram of the result equals the style's exactly. NaN stays NaN and takes no quantile (M counts
    the other values); -inf and +inf rank first and last. No gradient."""
    bins = stats.bins
    if x.shape[-2] * x.shape[-1] == 0:  # empty planes: nothing to match
        return x.detach().clone()
    xf = _planes(x)
    dt = xf.dtype
    m = xf.shape[1]
    order = torch.sort(xf, dim=1, stable=True).indices  # -inf first, +inf then NaN last
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(m, device=xf.device).expand_as(order))
    counted = (~torch.isnan(xf)).sum(dim=1, keepdim=True).clamp_min(1).to(dt)  # NaN takes no quantile
    u = ((ranks.to(dt) + 0.5) / counted).clamp(max=1)
    s_lo, s_step, s_cdf = _style_rows(stats, xf.shape[0], x.shape[-3], dt)
    r = _style_inverse(u, s_lo, s_step, s_cdf, bins)
    r = torch.where(torch.isnan(xf), xf, r)
    return r.reshape(x.shape).to(x.dtype)


def histogram_loss(x: torch.Tensor, stats: HistogramStats, weight: float = 1.0, mode: str = "interpolated") -> torch.Tensor:
    """weight * mean((x - R(x))^2) with R(x) held constant: its gradient is 2 * weight / N * (x - R)."""
    match = histogram_match if mode == "interpolated" else histogram_match_exact
    r = match(x, stats).to(x.dtype)
    return weight * (x - r).pow(2).mean()
# ---- style_swap ----

def style_swap(content: torch.Tensor, style: torch.Tensor, patch_size: int = 3, stride: int = 1,
               precision: str = "ieee", return_indices: bool = False):
    """Style-swap (Chen & Schmidt 2016) the way it is usually written, one image at a time.

    conv2d of the content with the normalised style patches as filters -> argmax over the
    style patches -> the chosen raw patches folded back, divided by the overlap count. It
    materialises the n_content x n_style score tensor: the memory problem the kernels avoid.
    Pixels no patch covers (when (H - patch_size) % stride != 0) are 0. ``precision="bf16"``
    rounds the GEMM operands to bfloat16 (products in float32); "tf32" computes in full
    float32 here.
    """
    k, s = int(patch_size), int(stride)
    B, C, H, W = content.shape
    ct = compute_dtype(content.dtype)  # half inputs match in float32, as the kernels do (1e-8 underflows in half)
    outs, indices = [], []
    for b in range(B):
        sty = style[b if style.shape[0] > 1 else 0].unsqueeze(0)
        patches = F.unfold(sty, k, stride=s).squeeze(0).t().reshape(-1, C, k, k)  # (ns, C, k, k)
        norms = patches.to(ct).flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        filters = patches.to(ct) / (norms + 1e-8)
        x = content[b].unsqueeze(0).to(ct)
        if precision == "bf16" and ct != torch.float64:
            x = x.to(torch.bfloat16).to(ct)
            filters = filters.to(torch.bfloat16).to(ct)
        scores = F.conv2d(x, filters, stride=s)  # (1, ns, nH, nW)
        # A NaN score (a non-finite style patch, or content) never wins, as in the kernels;
        # torch.argmax would pick it.
        scores = torch.where(torch.isnan(scores), torch.full_like(scores, float("-inf")), scores)
        idx = scores.argmax(dim=1)  # (1, nH, nW)
        # Decode: every chosen patch added where it lies (fold), divided by the overlap count. A
        # gather, not conv_transpose2d of a one-hot, whose 0 * NaN would spread an unchosen
        # non-finite patch everywhere.
        cols = F.unfold(sty.to(ct), k, stride=s)[0]  # (C * k * k, ns)
        chosen = cols[:, idx.flatten()].unsqueeze(0)  # (1, C * k * k, nc)
        out = F.fold(chosen, (H, W), k, stride=s)
        count = F.fold(torch.ones_like(chosen[:, :k * k]), (H, W), k, stride=s)
        outs.append(torch.where(count > 0, out / count.clamp_min(1), torch.zeros_like(out)).to(content.dtype))
        indices.append(idx)
    out = torch.cat(outs) if outs else content.new_empty(content.shape)
    idx = torch.cat(indices) if indices else torch.empty(
        (0, (H - k) // s + 1, (W - k) // s + 1), dtype=torch.long, device=content.device)
    return (out, idx) if return_indices else out


# ---- winograd_conv3x3 ----
# Winograd F(4x4, 3x3) (Lavin & Gray 2016), interpolation points 0, +-1, +-2, infinity.
_WINO_BT = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
            (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
_WINO_G = ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
           (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))
_WINO_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) weights -> U (36, C_in, C_out), U[6a + b] = (G w G^T)[a, b]."""
    g = torch.tensor(_WINO_G, dtype=torch.float64).to(weight.device, weight.dtype)
    u = torch.einsum("ax,oixy,by->abio", g, weight, g)
    return u.reshape(36, weight.shape[1], weight.shape[0]).contiguous()


def winograd_conv3x3(x: torch.Tensor, U: torch.Tensor, bias=None, padding: int = 1) -> torch.Tensor:
    """The same algorithm as the kernels in plain tensor ops (all tiles at once, no chunks):
    6x6 input tiles at stride 4 -> B^T d B -> per-plane products with U -> A^T m A."""
    n, c, h, w = x.shape
    ho, wo = h + 2 * padding - 2, w + 2 * padding - 2
    th, tw = -(-ho // 4), -(-wo // 4)
    # zero padding, plus whatever the overhanging last tiles read past the far edge
    xp = F.pad(x, (padding, 4 * tw + 2 - w - padding, padding, 4 * th + 2 - h - padding))
    d = xp.unfold(2, 6, 4).unfold(3, 6, 4)  # (n, c, th, tw, 6, 6)
    bt = torch.tensor(_WINO_BT, dtype=x.dtype, device=x.device)
    at = torch.tensor(_WINO_AT, dtype=x.dtype, device=x.device)
    v = torch.einsum("ai,ncpqij,bj->abnpqc", bt, d, bt)
    cout = U.shape[-1]  # U is (36, C_in, C_out): explicit sizes, as -1 is ambiguous for empty tensors
    m = torch.einsum("abnpqc,abco->abnpqo", v, U.reshape(6, 6, c, cout))
    y = torch.einsum("ia,abnpqo,jb->nopiqj", at, m, at).reshape(n, cout, 4 * th, 4 * tw)[:, :, :ho, :wo]
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.contiguous(memory_format=torch.channels_last)


# ---- adain ---------------------------------------------------------------------------------

def adain(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017), the PyTorch composite.

    Per (n, c) plane: ``y = sigma_s (x - mu_x) / sigma_x + mu_s`` with ``sigma = sqrt(var + eps)``
    (biased variance), returned as ``alpha * y + (1 - alpha) * x``; computed in float32 for
    half inputs (float64 for float64) and cast back.
    """
    cd = compute_dtype(content.dtype)
    x, s = content.to(cd), style.to(cd)
    mu_x, mu_s = x.mean((-2, -1), keepdim=True), s.mean((-2, -1), keepdim=True)
    sig_x = (x.var((-2, -1), unbiased=False, keepdim=True) + eps).sqrt()
    sig_s = (s.var((-2, -1), unbiased=False, keepdim=True) + eps).sqrt()
    y = sig_s * (x - mu_x) / sig_x + mu_s
    return (alpha * y + (1.0 - alpha) * x).to(content.dtype)
