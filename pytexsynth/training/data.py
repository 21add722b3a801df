"""Training data: the user's images as random crops, and the augmentation of the inverse network.

Every random choice is drawn from the ``torch.Generator`` that :func:`pytexsynth.training.train`
owns and checkpoints, so batches are reproducible and a resumed run draws what an uninterrupted
one would.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F

from ..io import ImageLoadError, load_image, resize_image

__all__ = ["ContentFolder", "augment"]


class ContentFolder:
    """The user's content images: every readable image file under a folder (recursively).

    Files that cannot be read as images are skipped with one warning naming them, and counted in
    :attr:`skipped`. Batches are random crops (after scaling the shorter side to ``size``), drawn
    from the generator the training loop owns, so they are reproducible and resumable.
    """

    def __init__(self, folder: Union[str, os.PathLike], size: int, cache: bool = True):
        from PIL import Image

        root = Path(folder)
        if not root.is_dir():
            raise NotADirectoryError(f"content_dir {str(root)!r} is not a folder")
        self.size = size
        self.files: List[Path] = []
        self.skipped: List[str] = []
        candidates = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        for p in candidates:
            try:
                with Image.open(p) as img:
                    img.verify()
                self.files.append(p)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is skipped, by design
                self.skipped.append(f"{p.name} ({type(exc).__name__})")
        if self.skipped:
            shown = ", ".join(self.skipped[:10]) + (" ..." if len(self.skipped) > 10 else "")
            warnings.warn(f"content_dir {str(root)!r}: skipped {len(self.skipped)} unreadable file(s): {shown}",
                          RuntimeWarning, stacklevel=2)
        if not self.files:
            raise ValueError(f"content_dir {str(root)!r} holds no readable images "
                             f"({len(candidates)} file(s), {len(self.skipped)} unreadable)")
        self._cache: Optional[Dict[int, torch.Tensor]] = {} if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, i: int) -> Optional[torch.Tensor]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        try:
            x = load_image(self.files[i])
        except ImageLoadError as exc:
            warnings.warn(f"skipping unreadable content image: {exc}", RuntimeWarning, stacklevel=3)
            self.skipped.append(self.files[i].name)
            return None
        h, w = x.shape[-2:]
        s = self.size / min(h, w)
        x = resize_image(x, (max(self.size, round(h * s)), max(self.size, round(w * s))))
        if self._cache is not None:
            self._cache[i] = x
        return x

    def batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """n random crops of size x size, shape (n, 3, size, size)."""
        out = []
        while len(out) < n:
            i = int(torch.randint(len(self.files), (1,), generator=gen))
            x = self._load(i)
            if x is None:
                continue  # counted in skipped; drawn again
            h, w = x.shape[-2:]
            top = int(torch.randint(h - self.size + 1, (1,), generator=gen))
            left = int(torch.randint(w - self.size + 1, (1,), generator=gen))
            out.append(x[..., top:top + self.size, left:left + self.size])
        return torch.cat(out)


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def augment(crops: torch.Tensor, size: int, gen: torch.Generator, jitter: float = 0.2) -> torch.Tensor:
    """Random-scale sub-crops resized to ``size``, flips and colour jitter of (N, 3, L, L) crops.

    Each image gets a square sub-crop of side in [size, L] (a random zoom), a horizontal flip
    and a vertical flip with probability 1/2 each, and colour jitter of amplitude ``jitter``:
    brightness and contrast factors in [1 - jitter, 1 + jitter], saturation in
    [1 - 2 jitter, 1 + 2 jitter] (grayscale images gain some colour through the next step),
    and per-channel gains in [1 - jitter / 2, 1 + jitter / 2] (a colour cast). Draws from ``gen``.
    """
    n, _, h, w = crops.shape
    out = []
    for i in range(n):
        side = int(torch.randint(size, min(h, w) + 1, (1,), generator=gen))
        top = int(torch.randint(h - side + 1, (1,), generator=gen))
        left = int(torch.randint(w - side + 1, (1,), generator=gen))
        x = crops[i:i + 1, :, top:top + side, left:left + side]
        if side != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        flips = torch.rand(2, generator=gen)
        if flips[0] < 0.5:
            x = x.flip(-1)
        if flips[1] < 0.5:
            x = x.flip(-2)
        out.append(x)
    x = torch.cat(out)
    if jitter > 0:
        b = _uniform(gen, n, 1 - jitter, 1 + jitter).view(n, 1, 1, 1)
        c = _uniform(gen, n, 1 - jitter, 1 + jitter).view(n, 1, 1, 1)
        s = _uniform(gen, n, 1 - 2 * jitter, 1 + 2 * jitter).view(n, 1, 1, 1)
        g = _uniform(gen, 3 * n, 1 - jitter / 2, 1 + jitter / 2).view(n, 3, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c + mean * b
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * s + gray
        x = x * g
    return x.clamp(0.0, 1.0)
