"""Optimisation-based texture synthesis and style transfer (Gatys et al.; Risser et al.).

The image itself is optimised (L-BFGS or Adam) so that its VGG-19 features match a style's
Gram matrices (and optionally activation histograms) and, for style transfer, a content image's
features. A coarse-to-fine pyramid does most iterations at low resolution, where they are cheap,
and refines at each doubling. Loss terms are balanced by normalising their gradients once per
pyramid level (the weights then say how strongly each term pulls, whatever its scale).

Inside the iteration loop nothing waits for the device (no ``.item()``) except at report steps,
so a GPU runs ahead; note that L-BFGS and its line search read the loss on the host at every
function evaluation. With L-BFGS the loss of the clamped image (the one delivered) is minimised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .io import resize_image
from .losses import ContentLoss, GramStyleLoss, HistogramStyleLoss, label_masks, total_variation
from .models.vgg import LAYER_NAMES, VGG19, _layer_channels, _winograd_weight_bytes

__all__ = ["synthesize_texture", "transfer_style", "SynthesisProgress", "estimate_memory",
           "DEFAULT_STYLE_LAYERS", "DEFAULT_CONTENT_LAYERS", "DEFAULT_HISTOGRAM_LAYERS"]

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_HISTOGRAM_LAYERS = ("relu1_1", "relu4_1")

Size = Union[int, Tuple[int, int]]
ImageArg = Union[torch.Tensor, str, os.PathLike]


@dataclass
class SynthesisProgress:
    """What the callback receives at each report step.

    ``image`` is the current image (1, 3, h, w) in [0, 1] at this level's resolution
    (a detached copy); ``loss`` is the total (balanced) loss and ``terms`` each term's
    weighted value, as floats (reading them is the only host sync of the loop).
    """

    level: int
    levels: int
    size: Tuple[int, int]
    iteration: int
    iterations: int
    step: int
    total_steps: int
    loss: float
    terms: Dict[str, float] = field(default_factory=dict)
    image: Optional[torch.Tensor] = None


Callback = Callable[[SynthesisProgress], None]


# ---------------------------------------------------------------- helpers

def _as_image(x: ImageArg, name: str, device: torch.device) -> torch.Tensor:
    if isinstance(x, (str, os.PathLike)):
        from .io import load_image

        x = load_image(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be an image tensor (1, 3, H, W) in [0, 1] or a path, got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be (1, 3, H, W) (or (3, H, W)), got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    return x.expand(1, 3, -1, -1).to(device=device, dtype=torch.float32)


def _size_hw(size: Size, ref: Optional[Tuple[int, int]] = None) -> Tuple[int, int]:
    if isinstance(size, bool) or not isinstance(size, (int, tuple, list)):
        raise TypeError(f"size must be an int or (height, width), got {size!r}")
    if isinstance(size, int):
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        if ref is None:
            return size, size
        h, w = ref
        s = size / max(h, w)
        return max(16, round(h * s)), max(16, round(w * s))
    if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 16 for v in size):
        raise ValueError(f"size must be (height, width) of ints >= 16, got {size!r}")
    return int(size[0]), int(size[1])


def _pyramid_sizes(hw: Tuple[int, int], pyramid: bool, min_side: int) -> List[Tuple[int, int]]:
    sizes = [hw]
    if pyramid:
        h, w = hw
        while min(h, w) // 2 >= min_side:
            h, w = h // 2, w // 2
            sizes.append((h, w))
    return sizes[::-1]


def _schedule(iterations: Union[None, int, Sequence[int]], levels: int, optimizer: str) -> List[int]:
    if iterations is None:
        iterations = 100 if optimizer == "lbfgs" else 200
    if isinstance(iterations, int):
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        # finest level gets `iterations`; each coarser level twice as many (they cost 4x less)
        return [iterations * 2 ** (levels - 1 - i) for i in range(levels)]
    its = [int(i) for i in iterations]
    if len(its) != levels or any(i < 0 for i in its):
        raise ValueError(f"iterations: expected {levels} non-negative counts (coarse to fine), got {its}")
    return its


def _generator(seed: Optional[int]) -> torch.Generator:
    """The CPU generator of a run's random draws: seeded for repeatable runs, fresh entropy for None."""
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    if seed is None:
        gen.seed()
    return gen


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# colour: YIQ (NTSC) for luminance-only transfer
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _yiq(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB2YIQ.to(x), x)


def _rgb(yiq: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB2YIQ.double()).float().to(yiq), yiq)


def match_color(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``source`` recoloured so that its colour mean and covariance equal ``target``'s
    (the linear colour transfer of Gatys et al.'s colour preservation)."""
    def stats(x):
        f = x.reshape(3, -1).double()
        mu = f.mean(1, keepdim=True)
        c = (f - mu) @ (f - mu).T / f.shape[1] + 1e-5 * torch.eye(3, dtype=f.dtype, device=f.device)
        return f, mu, c

    def sqrtm(c, inv=False):
        e, v = torch.linalg.eigh(c)
        e = e.clamp_min(1e-10)
        return v @ torch.diag(e.rsqrt() if inv else e.sqrt()) @ v.T

    fs, ms, cs = stats(source)
    _, mt, ct = stats(target)
    out = sqrtm(ct) @ sqrtm(cs, inv=True) @ (fs - ms) + mt
    return out.reshape(source.shape).float().clamp(0, 1)


def _luminance_image(x: torch.Tensor) -> torch.Tensor:
    y = _yiq(x)[:, :1]
    return y.expand(-1, 3, -1, -1)


def _layer_feature_bytes(h: int, w: int, deepest: str) -> int:
    """Bytes of fp32 activations of one forward pass up to ``deepest`` (conv + relu outputs)."""
    total, c = 0, 3
    for name in LAYER_NAMES[: LAYER_NAMES.index(deepest) + 1]:
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        elif name.startswith("conv"):
            c = _layer_channels(name)
        total += c * h * w * 4
    return total


def estimate_memory(size: Tuple[int, int], layers: Sequence[str], style_size: Optional[Tuple[int, int]] = None,
                    optimizer: str = "lbfgs", device: Union[str, torch.device] = "cpu") -> int:
    """A rough upper estimate, in bytes, of the memory one synthesis at ``size`` needs on
    ``device``: the VGG weights (and on the CPU their Winograd transforms), the activations kept
    for the backward pass and their gradients, the style image's features, and the optimiser's
    state."""
    deepest = max((VGG19._check_layers(layers)), key=LAYER_NAMES.index)
    h, w = size
    sh, sw = style_size or size
    weights = 80 * 2**20
    if torch.device(device).type == "cpu":
        weights += _winograd_weight_bytes(deepest)
    acts = 2.5 * _layer_feature_bytes(h, w, deepest)  # saved activations + their gradients
    style = 1.0 * _layer_feature_bytes(sh, sw, deepest)
    opt = (2 * 100 + 4) * 3 * h * w * 4 if optimizer == "lbfgs" else 4 * 3 * h * w * 4
    return int(weights + acts + style + opt)


def available_memory(device: torch.device) -> Optional[int]:
    """Free memory of ``device`` in bytes (None when unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:  # MemAvailable counts reclaimable page cache, which free pages do not
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(device, size, layers, style_size, optimizer):
    need = estimate_memory(size, layers, style_size, optimizer, device)
    have = available_memory(device)
    if have is not None and need > have:
        raise MemoryError(
            f"synthesis at {size[1]}x{size[0]} px needs about {need / 2**30:.1f} GiB on {device}, "
            f"but only {have / 2**30:.1f} GiB is free; choose a smaller size (or check_memory=False to try anyway)")


# ---------------------------------------------------------------- the optimisation engine

# Mean pixel change of L-BFGS's first step at each level (images in [0, 1]); 0: torch's own.
_FIRST_STEP = 0.01


@dataclass
class _Term:
    name: str
    weight: float
    fn: Callable[[Dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def _balance(terms: List[_Term], x: torch.Tensor, vgg: VGG19, layers, balance: bool,
             gen: torch.Generator) -> List[torch.Tensor]:
    """Per-term scales: weight / mean|d term / d image| at the level's start (no host sync)."""
    if not balance:
        return [torch.tensor(t.weight, device=x.device) for t in terms]
    probe = x.detach().clone().requires_grad_(True)
    feats = vgg(probe, layers)
    scales = []
    for t in terms:
        (g,) = torch.autograd.grad(t.fn(feats, probe), probe, retain_graph=True, allow_unused=True)
        norm = g.abs().mean() if g is not None else torch.zeros((), device=x.device)
        scales.append(norm)
    # A term with no gradient at the start (content loss when starting from the content image)
    # is measured at a nearby point instead.
    flat = torch.stack(scales)
    noise = torch.randn(x.shape, generator=gen, device="cpu").to(x.device) * 0.1
    probe2 = (x.detach() + noise).requires_grad_(True)
    feats2 = None
    out = []
    for t, norm in zip(terms, flat):
        if t.weight == 0:
            out.append(torch.zeros((), device=x.device))
            continue
        need_probe = bool(norm < 1e-12)  # one host sync per term per level, outside the loop
        if need_probe:
            if feats2 is None:
                feats2 = vgg(probe2, layers)
            (g,) = torch.autograd.grad(t.fn(feats2, probe2), probe2, retain_graph=True, allow_unused=True)
            norm = g.abs().mean() if g is not None else norm
        out.append(t.weight / norm.clamp_min(1e-20))
    return out


def _optimise_level(x: torch.Tensor, terms: List[_Term], scales: List[torch.Tensor], vgg: VGG19, layers,
                    iterations: int, optimizer: str, lr: Optional[float], report_every: int,
                    callback: Optional[Callback], level: int, levels: int, step0: int, total_steps: int,
                    clamp: bool) -> Tuple[torch.Tensor, Optional[float]]:
    """Optimises one pyramid level. For L-BFGS, ``iterations`` counts function evaluations (one
    VGG forward and backward each, what an iteration costs), not L-BFGS steps: the strong-Wolfe
    line search makes 1.0-1.2 evaluations per step. Without it, L-BFGS's second step (scaled by a
    curvature measured over a tiny first step) can overshoot by orders of magnitude and then
    stall; with raw weights on pastiche's objective it did at the coarse level of
    benchmarks/time_to_loss.py (benchmarks/results/synthesis-cpu-xeon.md). ``clamp``: L-BFGS
    minimises the loss of ``x.clamp(0, 1)`` (the terms receive the clamped image); Adam clamps x
    after each step."""
    x = x.detach().clone().requires_grad_(True)
    last_loss: Optional[float] = None
    recent: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]] = []  # (x, loss, grad, values)

    def evaluate():
        x.grad = None
        # L-BFGS with clamp: the loss of the image that will be delivered, clamp(x), is what is
        # minimised (a pixel pushed out of range stops pulling); Adam clamps x after each step.
        xin = x.clamp(0.0, 1.0) if clamp and optimizer == "lbfgs" else x
        feats = vgg(xin, layers)
        values = [s * t.fn(feats, xin) for s, t in zip(scales, terms)]
        loss = torch.stack(values).sum()
        loss.backward()
        return loss.detach(), values

    def report(it, loss, values):
        nonlocal last_loss
        last_loss = float(loss)
        callback(SynthesisProgress(
            level=level, levels=levels, size=tuple(x.shape[-2:]), iteration=it, iterations=iterations,
            step=step0 + it, total_steps=total_steps, loss=last_loss,
            terms={t.name: float(v.detach()) for t, v in zip(terms, values)},
            image=x.detach().clamp(0, 1).clone()))

    if optimizer != "lbfgs":
        opt = torch.optim.Adam([x], lr=0.02 if lr is None else lr)
        for it in range(1, iterations + 1):
            loss, values = evaluate()
            opt.step()
            if clamp:
                with torch.no_grad():
                    x.clamp_(0.0, 1.0)
            if callback is not None and (it % report_every == 0 or it == iterations):
                report(it, loss, values)
        return x.detach(), last_loss

    opt = torch.optim.LBFGS([x], lr=1.0 if lr is None else lr, max_iter=iterations, max_eval=iterations,
                            history_size=50, tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    evals = 0

    def closure():
        nonlocal evals
        with torch.no_grad():  # a point already evaluated (where the last step() ended): reuse it
            for px, loss, grad, _ in recent:
                if torch.equal(px, x):
                    x.grad = grad.clone()
                    return loss
        loss, values = evaluate()
        evals += 1
        recent.append((x.detach().clone(), loss, x.grad.detach().clone(), values))
        del recent[:-3]
        return loss

    group = opt.param_groups[0]
    base_lr = group["lr"]
    reported = 0  # the last evaluation count reported; reports fall on multiples of report_every and the end

    def current():  # the evaluation at x (where the last step() ended), else the latest one
        return next((r for r in recent if torch.equal(r[0], x.detach())), recent[-1])

    def report_upto(n):
        nonlocal reported
        hit = current()
        marks = list(range((reported // report_every + 1) * report_every, n + 1, report_every))
        if n not in marks and n == iterations:
            marks.append(n)
        for it in marks:  # a line search that ran past a mark still reports it (snapshots by step)
            report(it, hit[1], hit[3])
            reported = it

    while evals < iterations:
        # without a callback one step() runs the whole level; else one per report interval
        target = iterations if callback is None else min(iterations, (evals // report_every + 1) * report_every)
        chunk = target - evals
        before = evals
        cached = evals > 0  # step() starts by evaluating the current point, known from the last step()
        if evals == 0 and lr is None and _FIRST_STEP > 0:
            # torch's first step is min(1, 1/|g|_1) along -g, for an image a step far too short
            # that the line search then spends ~3 evaluations extending; start it instead where
            # pixels move by _FIRST_STEP on average (one step, then L-BFGS as usual).
            closure()  # the starting point, evaluated once: step() reuses it
            g = recent[-1][2].abs()
            group["lr"] = float(_FIRST_STEP / g.mean().clamp_min(1e-30) * g.sum().clamp_min(1.0))
            chunk, cached = 1, True
        group.update(max_iter=chunk, max_eval=chunk + cached)
        opt.step(closure)
        group["lr"] = base_lr
        if callback is not None:
            report_upto(min(evals, iterations))
        if evals == before:  # converged: nothing new evaluated
            break
    if callback is not None and reported < min(evals, iterations):
        report_upto(min(evals, iterations))
        if reported < min(evals, iterations):  # converged between marks: report where it stopped
            hit = current()
            report(min(evals, iterations), hit[1], hit[3])
    return x.detach(), last_loss  # last_loss stays None without a callback: no host sync


def _run(make_terms: Callable[[Tuple[int, int], float], Tuple[List[_Term], List[str]]],
         init_fn: Callable[[Tuple[int, int]], torch.Tensor], out_hw: Tuple[int, int], *, pyramid: bool,
         min_side: int, iterations, optimizer: str, lr, balance: bool, vgg_factory, report_every: int,
         callback, gen: torch.Generator, clamp: bool) -> torch.Tensor:
    sizes = _pyramid_sizes(out_hw, pyramid, min_side)
    its = _schedule(iterations, len(sizes), optimizer)
    total = sum(its)
    x = None
    step = 0
    for level, (hw, n_it) in enumerate(zip(sizes, its)):
        factor = hw[0] / out_hw[0]
        terms, layers = make_terms(hw, factor)
        vgg = vgg_factory()
        x = init_fn(hw) if x is None else F.interpolate(x.clamp(0.0, 1.0), size=hw, mode="bicubic", align_corners=False)
        scales = _balance(terms, x, vgg, layers, balance, gen)
        x, _ = _optimise_level(x, terms, scales, vgg, layers, n_it, optimizer, lr, report_every, callback,
                               level, len(sizes), step, total, clamp)
        step += n_it
    return x.clamp(0.0, 1.0)


def _check_common(optimizer, report_every, style_scale):
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    if isinstance(report_every, bool) or not isinstance(report_every, int) or report_every < 1:
        raise ValueError(f"report_every must be an int >= 1, got {report_every!r}")
    if not isinstance(style_scale, (int, float)) or not (0 < style_scale <= 16):
        raise ValueError(f"style_scale must be in (0, 16], got {style_scale!r}")


def _vgg_factory(layers, pooling, tileable, weights, device):
    cache: Dict[str, VGG19] = {}

    def make() -> VGG19:
        if "vgg" not in cache:
            cache["vgg"] = VGG19(layers, pooling=pooling, circular=tileable, weights=weights).to(device)
        return cache["vgg"]

    return make


def _style_terms(vgg: VGG19, styles: List[torch.Tensor], blend, style_layers, hist_layers, style_weight,
                 histogram_weight, masks=None, layer_weights="auto") -> List[_Term]:
    terms: List[_Term] = []
    with torch.no_grad():
        feats = [vgg(s, tuple(dict.fromkeys((*style_layers, *hist_layers)))) for s in styles]
    if style_weight:
        gram = GramStyleLoss([{n: f[n] for n in style_layers} for f in feats], blend=blend, layer_weights=layer_weights,
                             output_masks=masks[0] if masks else None, style_masks=masks[1] if masks else None)
        terms.append(_Term("style", float(style_weight), lambda fe, x, m=gram: m(fe)))
    if histogram_weight and hist_layers:
        hist = HistogramStyleLoss([{n: f[n] for n in hist_layers} for f in feats], blend=blend,
                                  output_masks=masks[0] if masks else None, style_masks=masks[1] if masks else None)
        terms.append(_Term("histogram", float(histogram_weight), lambda fe, x, m=hist: m(fe)))
    return terms


# ---------------------------------------------------------------- public API

def synthesize_texture(exemplar: ImageArg, size: Size = 256, *, iterations=None, optimizer: str = "lbfgs",
                       lr: Optional[float] = None, pyramid: bool = True, min_side: int = 64,
                       style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS, style_weight: float = 1.0,
                       style_layer_weights="auto", histogram_layers: Sequence[str] = DEFAULT_HISTOGRAM_LAYERS, histogram_weight: float = 0.0,
                       tv_weight: float = 0.0, style_scale: float = 1.0, tileable: bool = False,
                       pooling: str = "max", init: Union[str, torch.Tensor] = "noise", seed: Optional[int] = 0,
                       balance: bool = True, device=None, weights=None, callback: Optional[Callback] = None,
                       report_every: int = 10, check_memory: bool = True) -> torch.Tensor:
    """Synthesises a new image of the exemplar's texture (Gatys et al. 2015, Risser et al. 2017).

    Args:
        exemplar: (1, 3, H, W) RGB in [0, 1], or an image path.
        size: output size: an int (square) or (height, width).
        iterations: per pyramid level (coarse to fine) as a list, or one int: the finest
            level's count, each coarser level getting twice as many (default 100 for L-BFGS,
            200 for Adam). For L-BFGS these are function evaluations (one VGG forward and
            backward each); its strong-Wolfe line search makes 1.0-1.2 per step.
        optimizer: ``"lbfgs"`` or ``"adam"``.  lr: Adam's (default 0.02) or L-BFGS' step (1.0).
        pyramid: coarse-to-fine (halving down to ``min_side``); False runs one level.
        style_layers, style_weight: Gram loss layers and weight.
        style_layer_weights: per-layer weights of the Gram loss (see :class:`GramStyleLoss`;
            default ``"auto"``: relative error per layer).
        histogram_layers, histogram_weight: histogram loss layers and weight (0 turns it off).
        tv_weight: total-variation weight.
        style_scale: exemplar resolution relative to its own pixels (2.0: features twice as big).
        tileable: periodic output (circular padding in VGG, periodic TV): tiles seamlessly.
            Sizes that are multiples of 16 tile best (VGG pools four times before relu5_1).
        pooling: VGG's ``"max"`` or ``"avg"``.
        init: ``"noise"``, or a (1, 3, H, W) image (resized to each level).
        seed: seeds the initial noise (same seed, same device, same result).
        balance: normalise each term's gradient at every level's start (weights are then
            relative pulls); False uses the raw weights.
        device: default CUDA when available, else CPU.
        weights: VGG-19 weights path (default pastiche's file).
        callback: called with a :class:`SynthesisProgress` every ``report_every`` iterations.
        check_memory: refuse (MemoryError, with the estimate) sizes that do not fit the device.

    Returns:
        (1, 3, height, width) float32 RGB in [0, 1], on ``device``.

    Example:
        >>> out = synthesize_texture(exemplar, 128, iterations=50)   # doctest: +SKIP
    """
    _check_common(optimizer, report_every, style_scale)
    dev = _device(device)
    ex = _as_image(exemplar, "exemplar", dev)
    out_hw = _size_hw(size)
    style_layers = VGG19._check_layers(style_layers)
    hist_layers = VGG19._check_layers(histogram_layers) if histogram_weight else ()
    all_layers = tuple(dict.fromkeys((*style_layers, *hist_layers)))
    ex_hw = (max(1, round(ex.shape[-2] * style_scale)), max(1, round(ex.shape[-1] * style_scale)))
    if check_memory:
        _check_memory(dev, out_hw, all_layers, ex_hw, optimizer)
    gen = _generator(seed)
    make_vgg = _vgg_factory(all_layers, pooling, tileable, weights, dev)

    def make_terms(hw, factor):
        vgg = make_vgg()
        s_hw = (max(16, round(ex_hw[0] * factor)), max(16, round(ex_hw[1] * factor)))
        style = resize_image(ex, s_hw)
        terms = _style_terms(vgg, [style], None, style_layers, hist_layers, style_weight, histogram_weight,
                             layer_weights=style_layer_weights)
        if tv_weight:
            terms.append(_Term("tv", float(tv_weight), lambda fe, x: total_variation(x, circular=tileable)))
        return terms, all_layers

    mean = ex.mean(dim=(2, 3), keepdim=True)

    def init_fn(hw):
        if isinstance(init, torch.Tensor):
            return resize_image(_as_image(init, "init", dev), hw)
        if init != "noise":
            raise ValueError(f"init must be 'noise' or an image tensor, got {init!r}")
        noise = torch.randn((1, 3, *hw), generator=gen).to(dev)
        return (mean + 0.2 * noise).clamp(0, 1)

    return _run(make_terms, init_fn, out_hw, pyramid=pyramid, min_side=min_side, iterations=iterations,
                optimizer=optimizer, lr=lr, balance=balance, vgg_factory=make_vgg, report_every=report_every,
                callback=callback, gen=gen, clamp=True)


def transfer_style(content: ImageArg, style: Union[ImageArg, Sequence[ImageArg]], size: Optional[Size] = None, *,
                   blend: Optional[Sequence[float]] = None, iterations=None, optimizer: str = "lbfgs",
                   lr: Optional[float] = None, pyramid: bool = True, min_side: int = 64,
                   content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS, content_weight: float = 1.0,
                   content_layer_weights=None,
                   style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS, style_weight: float = 1.0,
                   style_layer_weights="auto",
                   histogram_layers: Sequence[str] = DEFAULT_HISTOGRAM_LAYERS, histogram_weight: float = 0.0,
                   tv_weight: float = 0.0, style_scale: float = 1.0, preserve_color: Optional[str] = None,
                   content_labels: Optional[torch.Tensor] = None,
                   style_labels: Optional[Sequence[torch.Tensor]] = None, tileable: bool = False,
                   pooling: str = "max", init: Union[str, torch.Tensor] = "content", seed: Optional[int] = 0,
                   balance: bool = True, device=None, weights=None, callback: Optional[Callback] = None,
                   report_every: int = 10, check_memory: bool = True) -> torch.Tensor:
    """Renders ``content`` in the style of ``style`` (one image or several, blended).

    Args:
        content: (1, 3, H, W) RGB in [0, 1], or a path.
        style: one image (tensor or path) or a list of them.
        size: output size: None keeps the content's; an int is the longer side; or (H, W).
        blend: weights of several styles (default equal).
        content_layers, content_weight: feature MSE layers and weight (relative to the style's
            when ``balance``); content_layer_weights: per layer (default equal).
        style_layer_weights: as in :func:`synthesize_texture`.
        style_layers, style_weight, histogram_layers, histogram_weight, tv_weight: as in
            :func:`synthesize_texture`.
        style_scale: style image size relative to the output's (2.0: bigger strokes).
        preserve_color: None, ``"luminance"`` (transfer on luminance only, keep the content's
            colours) or ``"histogram"`` (recolour the style to the content's colour statistics).
        content_labels, style_labels: "painting by numbers": an integer label map (H, W) for
            the content and one per style; each output region gets its own style region's
            Gram statistics and, if the histogram term is on, its activation histograms.
        init: ``"content"``, ``"noise"`` or an image.
        Others: as in :func:`synthesize_texture`.

    Returns:
        (1, 3, height, width) float32 RGB in [0, 1], on ``device``.
    """
    _check_common(optimizer, report_every, style_scale)
    dev = _device(device)
    c = _as_image(content, "content", dev)
    styles_in = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles_in:
        raise ValueError("style: give at least one style image")
    styles = [_as_image(s, f"style[{i}]", dev) for i, s in enumerate(styles_in)]
    if blend is not None and len(blend) != len(styles):
        raise ValueError(f"blend: {len(blend)} weights for {len(styles)} styles")
    if preserve_color not in (None, "luminance", "histogram"):
        raise ValueError(f"preserve_color must be None, 'luminance' or 'histogram', got {preserve_color!r}")
    out_hw = tuple(c.shape[-2:]) if size is None else _size_hw(size, tuple(c.shape[-2:]))
    c = resize_image(c, out_hw)
    style_layers = VGG19._check_layers(style_layers)
    content_layers = VGG19._check_layers(content_layers)
    hist_layers = VGG19._check_layers(histogram_layers) if histogram_weight else ()
    all_layers = tuple(dict.fromkeys((*content_layers, *style_layers, *hist_layers)))
    masks = None
    if content_labels is not None or style_labels is not None:
        if content_labels is None or style_labels is None or len(style_labels) != len(styles):
            raise ValueError("content_labels and style_labels (one per style) must be given together")
        k = 1 + max(int(content_labels.max()), *(int(s.max()) for s in style_labels))
        masks = (label_masks(content_labels, k).to(dev), [label_masks(s, k).to(dev) for s in style_labels])
    # Style images are resized to the output's size times style_scale (longer side).
    target_long = style_scale * max(out_hw)
    if check_memory:
        _check_memory(dev, out_hw, all_layers, (round(target_long), round(target_long)), optimizer)
    if preserve_color == "histogram":
        styles = [match_color(s, c) for s in styles]
    content_for_loss = c
    if preserve_color == "luminance":
        cy = _yiq(c)[:, :1]
        lum_styles = []
        for s in styles:
            sy = _yiq(s)[:, :1]
            sy = (sy - sy.mean()) / sy.std().clamp_min(1e-6) * cy.std() + cy.mean()
            lum_styles.append(sy.expand(-1, 3, -1, -1).clamp(0, 1))
        styles = lum_styles
        content_for_loss = _luminance_image(c)
    gen = _generator(seed)
    make_vgg = _vgg_factory(all_layers, pooling, tileable, weights, dev)

    def make_terms(hw, factor):
        vgg = make_vgg()
        c_l = resize_image(content_for_loss, hw)
        with torch.no_grad():
            cf = vgg(c_l, content_layers)
        closs = ContentLoss(cf, layer_weights=content_layer_weights)
        terms = [_Term("content", float(content_weight), lambda fe, x, m=closs: m(fe))] if content_weight else []
        long = max(16, round(target_long * factor))
        st = [resize_image(s, long) for s in styles]
        terms += _style_terms(vgg, st, blend, style_layers, hist_layers, style_weight, histogram_weight, masks,
                              layer_weights=style_layer_weights)
        if tv_weight:
            terms.append(_Term("tv", float(tv_weight), lambda fe, x: total_variation(x, circular=tileable)))
        return terms, all_layers

    def init_fn(hw):
        if isinstance(init, torch.Tensor):
            return resize_image(_as_image(init, "init", dev), hw)
        if init == "content":
            return resize_image(content_for_loss, hw).clone()
        if init == "noise":
            return torch.rand((1, 3, *hw), generator=gen).to(dev)
        raise ValueError(f"init must be 'content', 'noise' or an image tensor, got {init!r}")

    out = _run(make_terms, init_fn, out_hw, pyramid=pyramid, min_side=min_side, iterations=iterations,
               optimizer=optimizer, lr=lr, balance=balance, vgg_factory=make_vgg, report_every=report_every,
               callback=callback, gen=gen, clamp=True)
    if preserve_color == "luminance":
        y = _yiq(out)[:, :1]
        out = _rgb(torch.cat([y, _yiq(c)[:, 1:]], dim=1)).clamp(0, 1)
    return out
