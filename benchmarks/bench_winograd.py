"""winograd_conv3x3 vs F.conv2d (oneDNN on CPU, cuDNN on CUDA) on VGG-19's 3x3 layer shapes at
256 px input, channels_last float32: the forward, and the input gradient (what style transfer
needs: the weights are frozen).

Run:  OMP_NUM_THREADS=1 pytest benchmarks/bench_winograd.py --benchmark-enable --benchmark-json=out.json
Then: python benchmarks/report.py out.json
Quick table (medians of interleaved rounds): PYTHONPATH=. python benchmarks/bench_winograd.py [SIZE]
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pytexsynth import ops

from conftest import DEVICES, interleaved_medians, run_benchmark

# (side at 256 px input, C_in, C_out) of every distinct 3x3 layer shape of VGG-19 up to conv5_1,
# with how many layers of relu5_1's stack have it.
LAYERS = [
    (256, 64, 64, 1),    # conv1_2
    (128, 64, 128, 1),   # conv2_1
    (128, 128, 128, 1),  # conv2_2
    (64, 128, 256, 1),   # conv3_1
    (64, 256, 256, 3),   # conv3_2..3_4
    (32, 256, 512, 1),   # conv4_1
    (32, 512, 512, 3),   # conv4_2..4_4
    (16, 512, 512, 1),   # conv5_1
]


def _problem(side, cin, cout, device, scale=1.0):
    side = max(4, int(side * scale))
    x = torch.randn(1, cin, side, side, device=device).contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, 3, 3, device=device).contiguous(memory_format=torch.channels_last) / (3 * cin ** 0.5)
    b = torch.randn(cout, device=device)
    g = torch.randn(1, cout, side, side, device=device).contiguous(memory_format=torch.channels_last)
    return x, w, b, g


def _fns(x, w, b, g):
    u = ops.winograd_weight(w)
    direct_bwd = lambda: torch.ops.aten.convolution_backward(  # noqa: E731
        g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])
    return {
        ("forward", "ours"): lambda: ops.winograd_conv3x3(x, u, b),
        ("forward", "reference"): lambda: F.conv2d(x, w, b, padding=1),
        ("input_grad", "ours"): lambda: torch.ops.pytexsynth._winograd_conv3x3_backward(g, x, u, 1, 0, [True, False]),
        ("input_grad", "reference"): direct_bwd,
    }


@pytest.mark.parametrize("impl", ["ours", "reference"])
@pytest.mark.parametrize("mode", ["forward", "input_grad"])
@pytest.mark.parametrize("layer", LAYERS, ids=[f"{s}px-{ci}to{co}" for s, ci, co, _ in LAYERS])
@pytest.mark.parametrize("device", DEVICES)
def test_winograd_vs_conv2d(benchmark, device, layer, mode, impl):
    side, cin, cout, _count = layer
    benchmark.group = f"conv3x3 {mode} {device} {side}x{side} {cin}->{cout} fp32 (ours: winograd, reference: F.conv2d)"
    fn = _fns(*_problem(side, cin, cout, device))[(mode, impl)]
    run_benchmark(benchmark, device, fn, rounds=10 if device == "cpu" else None)


def _table(size: int, rounds: int = 9) -> None:
    """Per layer: medians of rounds alternating ours and F.conv2d; totals weighted by how many
    layers of VGG-19 up to conv5_1 have each shape."""
    totals = {"forward": [0.0, 0.0], "input_grad": [0.0, 0.0]}
    print(f"| layer ({size} px input) | fwd conv2d ms | fwd winograd ms | ratio | grad conv2d ms | grad winograd ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for side, cin, cout, count in LAYERS:
        med = interleaved_medians(_fns(*_problem(side, cin, cout, "cpu", size / 256)), rounds)
        row = []
        for mode in ("forward", "input_grad"):
            ref, ours = med[(mode, "reference")], med[(mode, "ours")]
            totals[mode][0] += count * ref
            totals[mode][1] += count * ours
            row += [f"{ref:.1f}", f"{ours:.1f}", f"{ref / ours:.2f}x"]
        s = int(side * size / 256)
        print(f"| {s}x{s} {cin}->{cout} (x{count}) | " + " | ".join(row) + " |")
    f, g = totals["forward"], totals["input_grad"]
    print(f"| total conv1_2..conv5_1 | {f[0]:.0f} | {f[1]:.0f} | {f[0] / f[1]:.2f}x | {g[0]:.0f} | {g[1]:.0f} | "
          f"{g[0] / g[1]:.2f}x |")


if __name__ == "__main__":
    import sys

    _table(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
