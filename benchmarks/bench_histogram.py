"""histogram_loss forward+backward: ours vs the vectorised PyTorch reference and vs torch.sort
exact matching, on VGG-19 relu1_1..relu5_1 activation shapes (B = 1, float32, 256 bins).

Run:  pytest benchmarks/bench_histogram.py --benchmark-enable --benchmark-json=out.json
Then: python benchmarks/report.py out.json
The issue's acceptance figure is the sum over the five layers at 512 px of each implementation's
median: the "all layers" groups time exactly that (the five layers one after the other) on CUDA;
on CPU that group is skipped to keep the run near 3 minutes, and the sum of the per-layer
medians is printed by `python benchmarks/bench_histogram.py RUN.json`.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch

from pytexsynth import ops, reference

from conftest import DEVICES, run_benchmark

# relu1_1 .. relu5_1: channels and the downsampling factor of each layer.
LAYERS = [("relu1_1", 64, 1), ("relu2_1", 128, 2), ("relu3_1", 256, 4), ("relu4_1", 512, 8), ("relu5_1", 512, 16)]
SIZES = [512, 1024]
BINS = 256
IMPLS = {
    "ours": ops.histogram_loss,
    "reference": lambda x, s, w: reference.histogram_loss(x, s, w),
    "sort": lambda x, s, w: reference.histogram_loss(x, s, w, mode="exact"),
}


def _activation(c, h, device, seed):
    # ReLU'd features: about half exact zeros (the hard case for the histogram's atomics).
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(c, 1, 1, generator=g) * 2 + 0.5
    return (torch.randn(1, c, h, h, generator=g) * scale + 0.1).relu().to(device)


def _problem(c, h, device):
    stats = ops.histogram_stats(_activation(c, h, device, 1), BINS)
    x = _activation(c, h, device, 2).requires_grad_()
    return x, stats


def _cpu_skip(device, size):
    if device == "cpu" and size > 512:
        pytest.skip("1024 px is a GPU case: the reference and sort take minutes on a 2-core CPU")


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("layer,channels,down", LAYERS, ids=[l[0] for l in LAYERS])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("device", DEVICES)
def test_histogram_loss_layer(benchmark, device, size, layer, channels, down, impl):
    _cpu_skip(device, size)
    h = size // down
    benchmark.group = f"histogram_loss forward_backward {device} {size}px {layer} 1x{channels}x{h}x{h} float32"
    x, stats = _problem(channels, h, device)
    fn_loss = IMPLS[impl]

    def fn():
        x.grad = None
        fn_loss(x, stats, 1.0).backward()

    rounds = 3 if device == "cpu" and x.numel() > 2_000_000 else (5 if device == "cpu" else None)
    run_benchmark(benchmark, device, fn, rounds=rounds)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("device", DEVICES)
def test_histogram_loss_all_layers(benchmark, device, size, impl):
    if device == "cpu":
        pytest.skip("on CPU the per-layer medians are summed instead (a 2-core run would take minutes more)")
    benchmark.group = f"histogram_loss forward_backward {device} {size}px all layers relu1_1..relu5_1 float32"
    problems = [_problem(c, size // d, device) for _, c, d in LAYERS]
    fn_loss = IMPLS[impl]

    def fn():
        total = 0.0
        for x, stats in problems:
            x.grad = None
            total = total + fn_loss(x, stats, 1.0)
        total.backward()

    run_benchmark(benchmark, device, fn, rounds=3 if device == "cpu" else None)


def layer_sums(path: str) -> str:
    """Markdown lines: per device and size, the sum over the five layers of each impl's median."""
    sums: dict = {}
    for b in json.load(open(path))["benchmarks"]:
        if not b["name"].startswith("test_histogram_loss_layer"):
            continue
        p = b["params"]
        key = (p["device"], p["size"])
        sums.setdefault(key, {}).setdefault(p["impl"], []).append(b["stats"]["median"])
    lines = ["", "Sum over relu1_1..relu5_1 of the per-layer medians (forward+backward):", "",
             "| device | size | ours | reference | sort | reference / ours | sort / ours |", "|---|---|---|---|---|---|---|"]
    for (device, size), impls in sorted(sums.items()):
        if any(len(v) != len(LAYERS) for v in impls.values()):
            continue
        t = {k: sum(v) for k, v in impls.items()}
        lines.append(f"| {device} | {size} px | {t['ours'] * 1e3:.1f} ms | {t['reference'] * 1e3:.1f} ms | "
                     f"{t['sort'] * 1e3:.1f} ms | {t['reference'] / t['ours']:.2f}x | {t['sort'] / t['ours']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(layer_sums(sys.argv[1]))
