"""Texture Networks vs optimisation: time to make one 256 px texture, and the Gram loss each reaches.

"ours": one forward pass of the texture network trained by docs/texture_networks/make_samples.py
(committed as docs/texture_networks/gravel.pt). "reference": ``pytexsynth.synthesize_texture``
(L-BFGS, coarse-to-fine pyramid) on the same exemplar and size, in the same run. Both outputs are
scored with the same Gram loss (VGG-19 relu1_1..relu5_1, each layer a relative error), recorded
in ``extra_info["gram_loss"]``.

The optimisation takes minutes on a CPU, so it runs once (no warm-up round); generation is
timed as usual (warm-up, several rounds).

    python -m pytest benchmarks/bench_networks.py --benchmark-enable \
        --benchmark-json=benchmarks/results/networks-cpu-xeon-2threads.json
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
# the finest level's L-BFGS iterations (coarser levels get twice as many each); CPU kept short
ITERATIONS = {"cpu": 50, "cuda": 100}


def _exemplar() -> torch.Tensor:
    sys.path.insert(0, str(ROOT / "docs" / "texture_networks"))
    from make_samples import exemplar

    return exemplar("gravel", 256)


def _gram_score(vgg, loss, img: torch.Tensor) -> float:
    with torch.no_grad():
        return float(loss(vgg(img)))


@pytest.fixture(scope="module")
def scorer():
    from pytexsynth.losses import GramStyleLoss

    vgg = pytexsynth.VGG19()
    with torch.no_grad():
        loss = GramStyleLoss([vgg(_exemplar())])
    return vgg, loss


@pytest.mark.skipif(not MODEL.is_file(), reason=f"no trained model at {MODEL} (run docs/texture_networks/make_samples.py)")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("impl", ["ours", "reference"])
def test_texture_256(benchmark, impl, device, scorer):
    benchmark.group = f"texture 256px {device}"
    vgg, loss = scorer
    if impl == "ours":
        net = pytexsynth.load_model(MODEL, map_location=device)
        out = {}

        def fn():
            out["img"] = net.generate(1, SIZE, seed=0)

        run_benchmark(benchmark, device, fn)
        img = out["img"]
    else:
        ex = _exemplar().to(device)
        out = {}

        def fn():
            out["img"] = pytexsynth.synthesize_texture(ex, SIZE, iterations=ITERATIONS[device], seed=0,
                                                       device=device)

        benchmark.extra_info["device"] = device_name(device)
        benchmark.extra_info["torch"] = torch.__version__
        benchmark.extra_info["iterations_finest"] = ITERATIONS[device]
        benchmark.pedantic(fn, rounds=1, warmup_rounds=0, iterations=1)
        img = out["img"]
    assert img.shape == (1, 3, SIZE, SIZE)
    benchmark.extra_info["gram_loss"] = round(_gram_score(vgg, loss, img.cpu()), 5)
