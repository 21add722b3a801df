"""Texture Networks vs optimisation: time to make one 256 px texture, and the Gram loss each reaches.

"ours": one forward pass of the texture network trained by docs/texture_networks/make_samples.py
(committed as docs/texture_networks/gravel.pt). "reference": ``pytexsynth.synthesize_texture``
with its default settings (L-BFGS, coarse-to-fine pyramid 64/128/256 px with 400/200/100
iterations, seed 0) on the same exemplar and size, in the same run. Both outputs are scored by
the same scorer (make_samples.GramScorer: VGG-19 relu1_1..relu5_1, zero padding, each layer a
relative error), recorded in ``extra_info["gram_loss"]``; for the network also the mean over 8
samples (``gram_loss_mean8``), since every sample differs.

The optimisation takes minutes on a CPU, so it runs once (no warm-up round); generation is
timed as usual (warm-up, several rounds).

    OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_networks.py --benchmark-enable \
        --benchmark-json=benchmarks/results/networks-cpu-xeon-1thread.json
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import pytexsynth
from conftest import DEVICES, device_name, run_benchmark

ROOT = Path(__file__).resolve().parents[1]
MODEL = Path(os.environ.get("PYTEXSYNTH_BENCH_TEXTURE_MODEL", ROOT / "docs" / "texture_networks" / "gravel.pt"))
SIZE = 256
sys.path.insert(0, str(ROOT / "docs" / "texture_networks"))
from make_samples import GramScorer, exemplar  # noqa: E402


@pytest.fixture(scope="module")
def scorer():
    return GramScorer(exemplar("gravel", 256))


@pytest.mark.skipif(not MODEL.is_file(), reason=f"no trained model at {MODEL} (run docs/texture_networks/make_samples.py)")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_texture_256(benchmark, impl, device, scorer):
    benchmark.group = f"texture 256px {device}"
    out = {}
    if impl == "ours":
        net = pytexsynth.load_model(MODEL, map_location=device)

        def fn():
            out["img"] = net.generate(1, SIZE, seed=0)

        run_benchmark(benchmark, device, fn)
        scores = scorer(net.generate(8, SIZE, seed=0))
        benchmark.extra_info["gram_loss_mean8"] = round(sum(scores) / len(scores), 5)
    else:
        ex = exemplar("gravel", 256).to(device)

        def fn():
            out["img"] = pytexsynth.synthesize_texture(ex, SIZE, seed=0, device=device)

        benchmark.extra_info["device"] = device_name(device)
        benchmark.extra_info["torch"] = torch.__version__
        benchmark.extra_info["settings"] = "synthesize_texture defaults, seed 0"
        benchmark.pedantic(fn, rounds=1, warmup_rounds=0, iterations=1)
    img = out["img"]
    assert img.shape == (1, 3, SIZE, SIZE)
    benchmark.extra_info["gram_loss"] = round(scorer(img)[0], 5)
