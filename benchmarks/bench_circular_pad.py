"""circular_pad2d vs F.pad(mode='circular'): forward and forward+backward, CPU and CUDA.

Run:  pytest benchmarks/bench_circular_pad.py --benchmark-enable --benchmark-json=out.json
Then: python benchmarks/report.py out.json
"""

from __future__ import annotations

import pytest
import torch

from pytexsynth import ops, reference

from conftest import DEVICES, run_benchmark

# (name, shape, pad): a 3x3 conv on a small image, a generator layer, and the target.
CASES = [
    ("1x3x64x64-p1", (1, 3, 64, 64), (1, 1, 1, 1)),
    ("4x64x128x128-p1", (4, 64, 128, 128), (1, 1, 1, 1)),
    ("16x48x256x256-p1", (16, 48, 256, 256), (1, 1, 1, 1)),
    ("16x48x256x256-p8", (16, 48, 256, 256), (8, 8, 8, 8)),
]
IMPLS = {"ours": ops.circular_pad2d, "reference": reference.circular_pad2d}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("name,shape,pad", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_circular_pad(benchmark, mode, device, name, shape, pad, impl):
    if device == "cpu" and shape[0] * shape[1] * shape[2] * shape[3] > 20_000_000 and pad[0] > 1:
        pytest.skip("the large-pad case is a GPU case (minutes on a 2-core CPU)")
    fn_op = IMPLS[impl]
    benchmark.group = f"circular_pad2d {mode} {device} {name} float32"
    x = torch.randn(shape, device=device, requires_grad=mode == "forward_backward")
    if mode == "forward":
        fn = lambda: fn_op(x, pad)  # noqa: E731
    else:
        out_shape = (*shape[:2], shape[2] + pad[2] + pad[3], shape[3] + pad[0] + pad[1])
        g = torch.randn(out_shape, device=device)
        fn = lambda: torch.autograd.grad(fn_op(x, pad), x, g)  # noqa: E731
    rounds = 10 if device == "cpu" and x.numel() > 1_000_000 else None
    run_benchmark(benchmark, device, fn, rounds=rounds)
