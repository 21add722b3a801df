"""Label masks of "painting by numbers": each output region matched to the same label's region of a style.

A label map (integers, one per pixel) becomes one-hot masks (1, K, H, W); at a feature layer's
resolution a mask is the fraction of each cell that the label covers. The Gram loss scales the
features of each region so that its Gram matrix is the region's own mean
(:func:`masked_features`); the histogram loss gives each cell to the label covering most of it
(:func:`region_cells`).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F

from .ops.fixed_order import fixed_order_sum

__all__ = ["label_masks", "masks_at", "masked_features", "region_cells", "check_masks"]


def label_masks(labels: torch.Tensor, num_labels: Optional[int] = None) -> torch.Tensor:
    """A label map (H, W) or (1, H, W) or (1, 1, H, W) of ints -> one-hot masks (1, K, H, W) float."""
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"label_masks: labels must be an integer tensor, got {labels.dtype}")
    lab = labels.reshape(labels.shape[-2:]).long()
    if lab.numel() and int(lab.min()) < 0:
        raise ValueError("label_masks: labels must be >= 0")
    k = int(lab.max()) + 1 if num_labels is None else num_labels
    return F.one_hot(lab, k).permute(2, 0, 1).unsqueeze(0).float()


def masks_at(masks: torch.Tensor, size) -> torch.Tensor:
    """Soft masks at a layer's resolution: the fraction of each cell covered by each label."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.adaptive_avg_pool2d(masks, size)


def masked_features(f: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) features and (1, K, H, W) masks -> (K, C, H, W), region k scaled so that its
    ``gram(normalize="hw")`` is the mean over the region only."""
    hw = f.shape[-2] * f.shape[-1]
    area = fixed_order_sum(masks, dim=(-2, -1)).clamp_min(1e-6)  # (1, K)
    scale = (hw / area).sqrt().view(-1, 1, 1, 1)
    return f * masks.transpose(0, 1) * scale


def region_cells(masks: torch.Tensor, size) -> List[torch.Tensor]:
    """(1, K, H, W) masks -> per label, the flat indices of a (h, w) layer's cells that the label
    covers most of (each cell in exactly one region)."""
    label = masks_at(masks.float(), size)[0].argmax(0).flatten()
    return [torch.nonzero(label == k).flatten() for k in range(masks.shape[1])]


def check_masks(output_masks: torch.Tensor, style_masks: Optional[Sequence[torch.Tensor]], n_styles: int,
                what: str) -> None:
    """One style mask per style image, each with the output masks' number of labels."""
    if style_masks is None or len(style_masks) != n_styles:
        raise ValueError(f"{what}: output_masks needs one style mask per style image")
    if any(m.shape[1] != output_masks.shape[1] for m in style_masks):
        raise ValueError(
            f"{what}: output and style masks must have the same number of labels, got "
            f"{output_masks.shape[1]} and {[m.shape[1] for m in style_masks]}")
