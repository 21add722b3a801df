"""adain vs the PyTorch composite (reference.adain): forward and forward+backward, CPU and CUDA.

The cases are VGG-19 relu4_1 features (512 channels at 1/8 of the image side) of a 256, 512 and
1024 px image, the style at the same size; the composite is what every public AdaIN runs
(mean, var, normalise, scale, shift, blend: several passes and temporaries).

Run:  pytest benchmarks/bench_adain.py --benchmark-enable --benchmark-json=out.json
Then: python benchmarks/report.py out.json
"""

from __future__ import annotations

import pytest
import torch

from pytexsynth import ops, reference

from conftest import DEVICES, run_benchmark

# (name, content shape, style shape): relu4_1 at 256, 512, 1024 px; relu1_1 at 256 px.
CASES = [
    ("relu4_1-256px", (1, 512, 32, 32), (1, 512, 32, 32)),
    ("relu4_1-512px", (1, 512, 64, 64), (1, 512, 64, 64)),
    ("relu4_1-1024px", (1, 512, 128, 128), (1, 512, 128, 128)),
    ("relu1_1-256px-b4", (4, 64, 256, 256), (4, 64, 256, 256)),
]
IMPLS = {"ours": ops.adain, "reference": reference.adain}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("name,shape,style_shape", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_adain(benchmark, mode, device, name, shape, style_shape, impl):
    fn_op = IMPLS[impl]
    benchmark.group = f"adain {mode} {device} {name} float32"
    grad = mode == "forward_backward"
    x = (torch.randn(shape, device=device) * 2 + 1).requires_grad_(grad)
    s = (torch.randn(style_shape, device=device) * 0.5 - 1).requires_grad_(grad)
    if mode == "forward":
        fn = lambda: fn_op(x, s, 0.9)  # noqa: E731
    else:
        g = torch.randn(shape, device=device)
        fn = lambda: torch.autograd.grad(fn_op(x, s, 0.9), (x, s), g)  # noqa: E731
    rounds = 10 if device == "cpu" and x.numel() > 4_000_000 else None
    run_benchmark(benchmark, device, fn, rounds=rounds)
