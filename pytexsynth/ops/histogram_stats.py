"""Style statistics of histogram matching (Risser et al. 2017): :class:`HistogramStats`.

The statistics are computed once from the style activations, with PyTorch ops on the style's
device, and then used by every call of :func:`pytexsynth.ops.histogram_match` and
:func:`pytexsynth.ops.histogram_loss` (kernels and reference alike).
"""

from __future__ import annotations

from typing import Dict, NamedTuple

import torch

from .checks import compute_dtype

MAX_BINS = 4096


class HistogramStats(NamedTuple):
    """Per-channel range and normalised CDF of style activations.

    Fields:
        lo: (C,) per-channel minimum.
        hi: (C,) per-channel maximum.
        cdf: (C, bins + 1) normalised cumulative histogram of ``bins`` equal bins over
            [lo, hi]: ``cdf[:, 0] == 0``, ``cdf[:, bins] == 1``, ``cdf[:, k]`` the fraction of
            values in bins ``< k``. Non-decreasing.

    float64 for a float64 style, float32 otherwise. A NamedTuple of tensors, so it moves with
    :meth:`to`, saves with ``torch.save`` (or :meth:`state_dict` / :meth:`from_state_dict`),
    and passes through ``torch.compile``.
    """

    lo: torch.Tensor
    hi: torch.Tensor
    cdf: torch.Tensor

    @property
    def bins(self) -> int:
        return self.cdf.shape[-1] - 1

    @property
    def channels(self) -> int:
        return self.lo.shape[0]

    @property
    def device(self) -> torch.device:
        return self.lo.device

    def to(self, *args, **kwargs) -> "HistogramStats":
        """Moves (or casts) all three tensors, like ``Tensor.to``."""
        return HistogramStats(self.lo.to(*args, **kwargs), self.hi.to(*args, **kwargs), self.cdf.to(*args, **kwargs))

    def state_dict(self) -> Dict[str, torch.Tensor]:
        return {"lo": self.lo, "hi": self.hi, "cdf": self.cdf}

    @classmethod
    def from_state_dict(cls, state: Dict[str, torch.Tensor]) -> "HistogramStats":
        return cls(state["lo"], state["hi"], state["cdf"])


# torch.load(weights_only=True) may unpickle a saved HistogramStats.
torch.serialization.add_safe_globals([HistogramStats])


def bin_position(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bins: int):
    """(bin, frac) of values v in ``bins`` bins over [lo, hi] (hi > lo), as
    csrc/common/histogram_math.h:bin_position: t = (v - lo) / (hi - lo) * bins, bin = floor(t)
    clamped to [0, bins - 1] (v == hi lands in the last bin with frac 1). NaN gives bin 0. A range
    whose width overflows is measured in halves (as the kernels)."""
    width = hi - lo
    t = torch.where(torch.isinf(width), (v * 0.5 - lo * 0.5) / (hi * 0.5 - lo * 0.5) * bins, (v - lo) / width * bins)
    b = torch.nan_to_num(t.floor(), nan=0.0).clamp(0, bins - 1)
    frac = (t - b).clamp(0, 1)
    return b.long(), frac


def compute_stats(style: torch.Tensor, bins: int = 256) -> HistogramStats:
    """Computes :class:`HistogramStats` of style (C, H, W) or (B, C, H, W), pooled over batch and
    space per channel. A constant channel puts all values in bin 0. Arguments are checked by
    :func:`pytexsynth.ops.histogram_stats`."""
    dt = compute_dtype(style.dtype)
    s = style.detach().to(dt)
    channels = s.shape[-3]
    flat = (s.transpose(0, 1) if s.dim() == 4 else s).reshape(channels, -1)
    n = flat.shape[1]
    lo = flat.amin(dim=1)
    hi = flat.amax(dim=1)
    varies = (hi > lo)[:, None]
    b, _ = bin_position(flat, lo[:, None], hi[:, None], bins)
    b = torch.where(varies, b, torch.zeros_like(b))
    offsets = torch.arange(channels, device=s.device)[:, None] * bins
    counts = torch.bincount((b + offsets).reshape(-1), minlength=channels * bins).reshape(channels, bins)
    cum = torch.cat([counts.new_zeros(channels, 1), counts.cumsum(1)], dim=1)
    cdf = cum.to(dt) / float(n)
    return HistogramStats(lo, hi, cdf)
