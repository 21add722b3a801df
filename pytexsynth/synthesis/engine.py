"""The optimisation engine shared by every optimisation-based method (Gatys, style-swap).

A method describes each pyramid level's loss as a list of :class:`Term` (a name, a weight and a
function of the VGG features and the image) and gives an initial image; :func:`run_pyramid`
does the rest: coarse-to-fine levels, per-term gradient balancing at each level's start
(:func:`balance_scales`), and one optimiser per level (:func:`optimise_lbfgs` or
:func:`optimise_adam`), reporting :class:`SynthesisProgress` to a callback.

Inside the iteration loop nothing waits for the device (no ``.item()``) except at report steps,
so a GPU runs ahead; note that L-BFGS and its line search read the loss on the host at every
function evaluation. With L-BFGS the loss of the clamped image (the one delivered) is minimised.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..models.vgg import VGG19
from ..ops.fixed_order import fixed_order_mean, fixed_order_sum
from ..periodic import periodic_upsample
from .balance import balance_scales
from .terms import Term
from .split import SplitLoss, split_applies
from .tiled import DEFAULT_HISTORY, MemoryPlan, TiledLoss

__all__ = ["Term", "Level", "SynthesisProgress", "Callback", "balance_scales", "optimise_level", "optimise_lbfgs",
           "optimise_adam", "run_pyramid", "pyramid_sizes", "schedule", "OPTIMIZERS", "STOP_WINDOW"]

OPTIMIZERS = ("lbfgs", "adam")
# The stopping rule of L-BFGS levels: a level stops once its best loss improved by less than
# ``stop_tol`` (a fraction) over the last STOP_WINDOW function evaluations.
STOP_WINDOW = 10
# Mean pixel change of L-BFGS's first step at each level (images in [0, 1]); 0: torch's own.
FIRST_STEP = 0.01


@dataclass
class SynthesisProgress:
    """What the callback receives at each report step.

    ``image`` is the current image (1, 3, h, w) in [0, 1] at this level's resolution
    (a detached copy; R = G = B when a grey image is optimised); ``loss`` is the total (balanced) loss and ``terms`` each term's
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
    memory: str = ""  # how the level is evaluated when not plainly: tiles, checkpointing, a shorter L-BFGS history


Callback = Callable[[SynthesisProgress], None]


@dataclass
class Level:
    """One pyramid level's problem (terms and their scales on VGG's ``layers``) and its place in the run."""

    terms: List[Term]
    scales: List[torch.Tensor]
    vgg: VGG19
    layers: Sequence[str]
    iterations: int
    index: int = 0
    levels: int = 1
    step0: int = 0
    total_steps: Optional[int] = None  # default: this level's iterations
    stop_tol: float = 0.0  # L-BFGS: stop when the best loss improved by less than this fraction over STOP_WINDOW evaluations
    tiled: Union[TiledLoss, SplitLoss, None] = None  # evaluate by parts (exact); None: the whole image at once
    checkpoint: bool = False  # recompute VGG's activations in the backward pass (untiled)
    history: int = DEFAULT_HISTORY  # L-BFGS's history length
    memory: str = ""  # SynthesisProgress.memory


def pyramid_sizes(hw: Tuple[int, int], pyramid: bool, min_side: int) -> List[Tuple[int, int]]:
    """The level sizes, coarse to fine: halving ``hw`` while the shorter side stays >= min_side."""
    sizes = [hw]
    if pyramid:
        h, w = hw
        while min(h, w) // 2 >= min_side:
            h, w = h // 2, w // 2
            sizes.append((h, w))
    return sizes[::-1]


def schedule(iterations: Union[None, int, Sequence[int]], levels: int, optimizer: str) -> List[int]:
    """Iterations per level, coarse to fine: a list as given, or the finest level's count with each
    coarser level getting twice as many (they cost 4x less); default 100 (L-BFGS) or 200 (Adam)."""
    if iterations is None:
        iterations = 100 if optimizer == "lbfgs" else 200
    if isinstance(iterations, int):
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        return [iterations * 2 ** (levels - 1 - i) for i in range(levels)]
    its = [int(i) for i in iterations]
    if len(its) != levels or any(i < 0 for i in its):
        raise ValueError(f"iterations: expected {levels} non-negative counts (coarse to fine), got {its}")
    return its


class _Evaluations:
    """Function evaluations of one level (loss and gradient at x), the few most recent kept, and
    the progress reports made from them."""

    def __init__(self, x: torch.Tensor, level: Level, clamp_input: bool, callback: Optional[Callback],
                 report_every: int):
        self.x = x.detach().clone().requires_grad_(True)
        self.level, self.clamp_input = level, clamp_input
        self.callback, self.report_every = callback, report_every
        self.count = 0  # evaluations made
        self.reported = 0  # the last iteration reported; reports fall on multiples of report_every and the end
        self.last_loss: Optional[float] = None
        self.recent: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]] = []  # (x, loss, grad, values)
        self.losses: List[torch.Tensor] = []  # every evaluation's loss, for the stopping rule

    def converged(self, tol: float, window: int = STOP_WINDOW) -> bool:
        """The stopping rule: the best loss improved by less than ``tol`` (a fraction) over the
        last ``window`` evaluations (L-BFGS has read each of these losses on the host already)."""
        if tol <= 0 or len(self.losses) <= window:
            return False
        values = [float(v) for v in self.losses]
        before, now = min(values[:-window]), min(values)
        return before - now <= tol * abs(before)

    def evaluate(self) -> Tuple[torch.Tensor, list]:
        x, lv = self.x, self.level
        x.grad = None
        # L-BFGS with clamp: the loss of the image that will be delivered, clamp(x), is what is
        # minimised, with the gradient passed straight through the clamp: with clamp's own
        # (zero) gradient a pixel pushed out of range would never come back (stuck black and
        # white dots, and twice the exemplar's energy near the Nyquist frequency on a brick
        # texture at 128 px). Adam clamps x after each step.
        if lv.tiled is not None:  # the same loss and gradient, tile by tile
            loss, values, x.grad = lv.tiled(x.detach().clamp(0.0, 1.0) if self.clamp_input else x.detach(),
                                            lv.terms, lv.scales)
        else:
            xin = x + (x.clamp(0.0, 1.0) - x).detach() if self.clamp_input else x
            feats = lv.vgg(xin, lv.layers, checkpoint=True) if lv.checkpoint else lv.vgg(xin, lv.layers)
            values = [s * t.fn(feats, xin) for s, t in zip(lv.scales, lv.terms)]
            loss = torch.stack(values).sum()
            loss.backward()
        if self.clamp_input:
            # ...except where it would push a pixel already at or past a bound further out: there
            # the clamped loss does not change, and a gradient saying it does makes L-BFGS's line
            # search fail again and again (a run that never leaves its start: painting by numbers
            # on a random 32 px content with relative-error weights did).
            with torch.no_grad():
                g = x.grad
                g.masked_fill_(((x >= 1.0) & (g < 0)) | ((x <= 0.0) & (g > 0)), 0.0)
        return loss.detach(), values

    def closure(self) -> torch.Tensor:
        """L-BFGS's closure: the loss at x (x.grad set), reusing a point already evaluated (step()
        starts by evaluating where the last step() ended)."""
        x = self.x
        with torch.no_grad():
            for px, loss, grad, _ in self.recent:
                if torch.equal(px, x):
                    x.grad = grad.clone()
                    return loss
        loss, values = self.evaluate()
        self.count += 1
        if not torch.isfinite(loss):  # L-BFGS reads every loss on the host anyway: no extra wait
            raise self.non_finite(loss, values)
        self.recent.append((x.detach().clone(), loss, x.grad.detach().clone(), values))
        self.losses.append(loss)
        del self.recent[:-3]
        return loss

    def non_finite(self, loss: torch.Tensor, values: list) -> FloatingPointError:
        """The error that stops a run whose loss (or image) is no longer finite."""
        lv = self.level
        terms = ", ".join(f"{t.name} {float(v.detach()):.4g}" for t, v in zip(lv.terms, values)) if values else ""
        return FloatingPointError(
            f"synthesis: the loss became {float(loss):.4g} at level {lv.index + 1}/{lv.levels} "
            f"({self.x.shape[-1]}x{self.x.shape[-2]} px), evaluation {self.count}" + (f" ({terms})" if terms else "")
            + "; check that the weights and images are finite (a lower lr helps Adam)")

    def current(self):
        """The evaluation at x (where the last step() ended), else the latest one."""
        return next((r for r in self.recent if torch.equal(r[0], self.x.detach())), self.recent[-1])

    def report(self, it: int, loss: torch.Tensor, values: list) -> None:
        lv = self.level
        self.last_loss = float(loss)
        self.callback(SynthesisProgress(
            level=lv.index, levels=lv.levels, size=tuple(self.x.shape[-2:]), iteration=it, iterations=lv.iterations,
            step=lv.step0 + it, total_steps=lv.iterations if lv.total_steps is None else lv.total_steps,
            loss=self.last_loss, terms={t.name: float(v.detach()) for t, v in zip(lv.terms, values)},
            image=self.x.detach().clamp(0, 1).expand(-1, 3, -1, -1).clone(), memory=lv.memory))

    def report_upto(self, n: int) -> None:
        """Reports every mark up to ``n`` not yet reported, with the evaluation at x (a line
        search that ran past a mark still reports it: --save-every snapshots go by step)."""
        hit = self.current()
        every = self.report_every
        marks = list(range((self.reported // every + 1) * every, n + 1, every))
        if n not in marks and n == self.level.iterations:
            marks.append(n)
        for it in marks:
            self.report(it, hit[1], hit[3])
            self.reported = it


def optimise_adam(x: torch.Tensor, level: Level, lr: Optional[float] = None, clamp: bool = True,
                  callback: Optional[Callback] = None, report_every: int = 10) -> Tuple[torch.Tensor, Optional[float]]:
    """``level.iterations`` Adam steps (lr default 0.02), x clamped to [0, 1] after each with
    ``clamp``. Returns (x, the last reported loss or None)."""
    ev = _Evaluations(x, level, False, callback, report_every)
    opt = torch.optim.Adam([ev.x], lr=0.02 if lr is None else lr)
    for it in range(1, level.iterations + 1):
        loss, values = ev.evaluate()
        opt.step()
        if clamp:
            with torch.no_grad():
                ev.x.clamp_(0.0, 1.0)
        if callback is not None and (it % report_every == 0 or it == level.iterations):
            ev.report(it, loss, values)
            if not math.isfinite(ev.last_loss):
                ev.count = it
                raise ev.non_finite(loss, values)
    if not bool(torch.isfinite(ev.x).all()):  # one wait for the device per level
        ev.count = level.iterations
        raise ev.non_finite(torch.tensor(float("nan")), [])
    return ev.x.detach(), ev.last_loss


def optimise_lbfgs(x: torch.Tensor, level: Level, lr: Optional[float] = None, clamp: bool = True,
                   callback: Optional[Callback] = None, report_every: int = 10) -> Tuple[torch.Tensor, Optional[float]]:
    """L-BFGS with a strong-Wolfe line search for ``level.iterations`` function evaluations (one
    VGG forward and backward each, what an iteration costs), not L-BFGS steps: the line search
    makes 1.0-1.2 evaluations per step; with ``level.stop_tol`` > 0 the level stops earlier once
    the best loss improved by less than that fraction over the last STOP_WINDOW evaluations
    (checked every STOP_WINDOW evaluations). Without the line search, L-BFGS's second step (scaled by a curvature
    measured over a tiny first step) can overshoot by orders of magnitude and then stall; with
    raw weights on pastiche's objective it did at the coarse level of benchmarks/time_to_loss.py
    (benchmarks/results/synthesis-cpu-xeon.md). ``clamp``: the loss of ``x.clamp(0, 1)`` is
    minimised (the terms receive the clamped image). Returns (x, the last reported loss or None:
    without a callback nothing is read on the host but what L-BFGS reads itself)."""
    ev = _Evaluations(x, level, clamp, callback, report_every)
    with _optimizer_math_on_one_thread(ev):
        return _lbfgs_steps(ev, level, lr, callback, report_every)


@contextlib.contextmanager
def _optimizer_math_on_one_thread(ev: "_Evaluations"):
    """L-BFGS's own vector math (its dot products: BLAS, whose summation order follows the thread
    count) on one thread, the evaluations (VGG) on all of them: the path L-BFGS takes, and so the
    image, is then the same for every --threads. The math is O(pixels x history), a few ms."""
    threads = torch.get_num_threads()
    if ev.x.device.type != "cpu" or threads == 1:
        yield
        return
    evaluate = ev.closure

    def closure():
        torch.set_num_threads(threads)
        try:
            return evaluate()
        finally:
            torch.set_num_threads(1)

    ev.closure = closure
    torch.set_num_threads(1)
    try:
        yield
    finally:
        ev.closure = evaluate
        torch.set_num_threads(threads)


def _lbfgs_steps(ev: "_Evaluations", level: Level, lr: Optional[float], callback: Optional[Callback],
                 report_every: int) -> Tuple[torch.Tensor, Optional[float]]:
    """The body of :func:`optimise_lbfgs`."""
    iterations = level.iterations
    opt = torch.optim.LBFGS([ev.x], lr=1.0 if lr is None else lr, max_iter=iterations, max_eval=iterations,
                            history_size=level.history, tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    group = opt.param_groups[0]
    base_lr = group["lr"]
    every = report_every if callback is not None else iterations
    if level.stop_tol > 0:
        every = min(every, STOP_WINDOW)
    while ev.count < iterations:
        # without a callback or stopping rule one step() runs the whole level; else one per interval
        target = min(iterations, (ev.count // every + 1) * every)
        chunk, before = target - ev.count, ev.count
        cached = ev.count > 0  # step() starts by evaluating the current point, known from the last step()
        if ev.count == 0 and lr is None and FIRST_STEP > 0:
            # torch's first step is min(1, 1/|g|_1) along -g, for an image a step far too short
            # that the line search then spends ~3 evaluations extending; start it instead where
            # pixels move by FIRST_STEP on average (one step, then L-BFGS as usual).
            ev.closure()  # the starting point, evaluated once: step() reuses it
            g = ev.recent[-1][2].abs()
            group["lr"] = float(FIRST_STEP / fixed_order_mean(g).clamp_min(1e-30) * fixed_order_sum(g).clamp_min(1.0))
            chunk, cached = 1, True
        group.update(max_iter=chunk, max_eval=chunk + cached)
        opt.step(ev.closure)
        group["lr"] = base_lr
        if callback is not None:
            ev.report_upto(min(ev.count, iterations))
        if ev.count == before or ev.converged(level.stop_tol):  # converged: nothing new evaluated, or too little gained
            break
    done = min(ev.count, iterations)
    if callback is not None and ev.reported < done:
        ev.report_upto(done)
        if ev.reported < done:  # converged between marks: report where it stopped
            hit = ev.current()
            ev.report(done, hit[1], hit[3])
    return ev.x.detach(), ev.last_loss


def optimise_level(x: torch.Tensor, level: Level, optimizer: str = "lbfgs", lr: Optional[float] = None,
                   clamp: bool = True, callback: Optional[Callback] = None,
                   report_every: int = 10) -> Tuple[torch.Tensor, Optional[float]]:
    """One pyramid level with ``optimizer`` ("lbfgs" or "adam"); see those functions."""
    run = optimise_lbfgs if optimizer == "lbfgs" else optimise_adam
    return run(x, level, lr, clamp, callback, report_every)


def level_evaluator(plan: MemoryPlan, vgg: VGG19, layers: Sequence[str],
                    hw: Tuple[int, int]) -> Union[TiledLoss, SplitLoss, None]:
    """How a level of ``plan`` evaluates its loss: in tiles (TiledLoss), checkpointed with VGG's
    first blocks on tiles (SplitLoss: a lower peak than checkpointing alone), or (None) by one
    forward pass of the whole image, checkpointed by VGG19 when the plan says so and SplitLoss
    cannot split it (a tileable image with a side off its 4 px grid)."""
    if plan.tile is not None:
        return TiledLoss(vgg, layers, hw, plan.tile, plan.halo, plan.checkpoint)
    if plan.checkpoint and split_applies(hw, vgg.circular):
        return SplitLoss(vgg, layers, hw)
    return None


def run_pyramid(make_terms: Callable[[Tuple[int, int], float], Tuple[List[Term], Sequence[str]]],
                init_fn: Callable[[Tuple[int, int]], torch.Tensor], out_hw: Tuple[int, int], *, pyramid: bool,
                min_side: int, iterations, optimizer: str, lr, balance: bool, vgg_factory: Callable[[], VGG19],
                report_every: int, callback: Optional[Callback], gen: torch.Generator, clamp: bool,
                stop_tol: float = 0.0, circular: bool = False,
                memory: Optional[Callable[[Tuple[int, int]], MemoryPlan]] = None) -> torch.Tensor:
    """Coarse to fine: at each level ``make_terms(size, size / out size)`` gives the terms and the
    VGG layers they read, the image is ``init_fn(size)`` at the first level and the previous
    level's result upsampled (bicubic; wrapping around the edges when ``circular``) after;
    returns the finest result clamped to [0, 1].
    ``stop_tol``: L-BFGS's stopping rule (see :func:`optimise_lbfgs`; 0: every level runs its count).
    ``memory(size)``: how each level is evaluated (tiles, checkpointing, L-BFGS history;
    default: the whole image, history DEFAULT_HISTORY)."""
    sizes = pyramid_sizes(out_hw, pyramid, min_side)
    its = schedule(iterations, len(sizes), optimizer)
    x = None
    step = 0
    for index, (hw, n_it) in enumerate(zip(sizes, its)):
        terms, layers = make_terms(hw, hw[0] / out_hw[0])
        if not terms:
            raise ValueError("synthesis: every loss weight is 0, so there is nothing to optimise; give a style (or "
                             "content, histogram) weight > 0")
        vgg = vgg_factory()
        if x is None:
            x = init_fn(hw)
        elif circular:
            x = periodic_upsample(x.clamp(0.0, 1.0), hw)
        else:
            x = F.interpolate(x.clamp(0.0, 1.0), size=hw, mode="bicubic", align_corners=False)
        plan = memory(hw) if memory is not None else MemoryPlan()
        tiled = level_evaluator(plan, vgg, layers, hw)
        checkpoint = plan.checkpoint and tiled is None
        scales = balance_scales(terms, x, vgg, layers, balance, gen, tiled, checkpoint)
        level = Level(terms, scales, vgg, layers, n_it, index, len(sizes), step, sum(its), stop_tol, tiled=tiled,
                      checkpoint=checkpoint, history=plan.history, memory=plan.describe())
        x, _ = optimise_level(x, level, optimizer, lr, clamp, callback, report_every)
        step += n_it
    return x.clamp(0.0, 1.0)
