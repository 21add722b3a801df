"""Fused Gram loss vs bmm + mse_loss autograd: forward+backward of the style loss summed over
VGG-19's relu1_1..relu5_1 feature shapes (64, 128, 256, 512, 512 channels at H, H/2, H/4, H/8,
H/16; batch 1), for 256, 512 and 1024 px images.

"ours" is the grouped op (ops.gram_loss_multi: one op for all five layers, what
losses.GramLoss calls); "per_layer" sums ops.gram_loss layer by layer (the grouped entry's own
baseline: is one call for all layers faster?); "reference" is bmm + mse_loss autograd.
An out-of-memory case is recorded as OOM (benchmarks/conftest.py) and shows as such in the table.

Pairs compare like with like: "fp32 vs fp32" runs ours with precision="ieee" against the
reference with PyTorch's fp32 matmul precision "ieee"; "tf32 vs tf32" runs ours with
precision="tf32" against the reference with fp32 matmul precision "tf32" (CUDA only: the CPU has
no TF32).

Run:  pytest benchmarks/bench_gram.py --benchmark-enable --benchmark-json=out.json
Then: python benchmarks/report.py out.json
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from pytexsynth import ops, reference

from conftest import DEVICES, interleaved_medians, run_benchmark

VGG19_STYLE_LAYERS = [(64, 1), (128, 2), (256, 4), (512, 8), (512, 16)]  # (channels, downsampling)
SIZES = [256, 512, 1024]
PRECISIONS = {"fp32": "ieee", "tf32": "tf32"}


@contextlib.contextmanager
def matmul_precision(p: str):
    """PyTorch's fp32 matmul precision on CUDA ("ieee" or "tf32") for the reference, restored after."""
    previous = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = p
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision = previous


def vgg_features(size: int, device: str):
    g = torch.Generator().manual_seed(size)
    feats, targets = [], []
    for c, down in VGG19_STYLE_LAYERS:
        s = size // down
        # Post-ReLU features: non-negative, about half zeros.
        f = torch.randn(1, c, s, s, generator=g).relu_().to(device).requires_grad_()
        style = torch.randn(1, c, s, s, generator=g).relu_().to(device)
        feats.append(f)
        targets.append(reference.gram(style)[0])
    return feats, targets


@pytest.mark.parametrize("impl", ["ours", "per_layer", "reference"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_gram_loss_vgg19(benchmark, precision, device, size, impl):
    if device == "cpu" and precision == "tf32":
        pytest.skip("TF32 is a CUDA tensor-core mode; the CPU computes in IEEE fp32 (the fp32 pair)")
    if device == "cpu" and size > 512:
        pytest.skip("1024 px takes seconds per iteration on a 2-core CPU: a GPU case")
    benchmark.group = f"gram_loss fwd+bwd relu1_1..relu5_1 {device} {size}px {precision} vs {precision}"
    feats, targets = vgg_features(size, device)
    weights = [1.0] * len(feats)
    p = PRECISIONS[precision]
    if impl == "ours":
        def fn():
            loss = ops.gram_loss_multi(feats, targets, weights, "hw", p)
            return torch.autograd.grad(loss, feats)
    elif impl == "per_layer":
        def fn():
            loss = sum(ops.gram_loss(f, t, w, "hw", p) for f, t, w in zip(feats, targets, weights))
            return torch.autograd.grad(loss, feats)
    else:
        def fn():
            loss = sum(reference.gram_loss_unfused(f, t, w) for f, t, w in zip(feats, targets, weights))
            return torch.autograd.grad(loss, feats)
    try:
        with matmul_precision(p):
            run_benchmark(benchmark, device, fn, rounds=10 if device == "cpu" else None)
    except torch.OutOfMemoryError as exc:
        benchmark.extra_info["oom"] = True
        if device == "cuda":
            torch.cuda.empty_cache()
        pytest.skip(f"OOM: {impl} at {size} px: {str(exc).splitlines()[0]}")


@pytest.mark.parametrize("impl", ["ours", "reference"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("device", DEVICES)
def test_gram_forward_vgg19(benchmark, device, size, impl):
    """G alone (no loss, no backward) for the five layers: isolates the upper-triangle schedule,
    which computes 3 of 4 tiles at C=256 and 10 of 16 at C=512 (128-wide tiles)."""
    if device == "cpu" and size > 512:
        pytest.skip("1024 px takes seconds per iteration on a 2-core CPU: a GPU case")
    benchmark.group = f"gram forward relu1_1..relu5_1 {device} {size}px fp32 vs fp32"
    feats = [f.detach() for f in vgg_features(size, device)[0]]
    if impl == "ours":
        def fn():
            return [ops.gram(f) for f in feats]
    else:
        def fn():
            return [reference.gram(f) for f in feats]
    with matmul_precision("ieee"):
        run_benchmark(benchmark, device, fn, rounds=10 if device == "cpu" else None)


def _per_layer_forward(size: int, rounds: int = 15) -> None:
    """Prints ops.gram vs f @ f.mT per layer with the CPU tile schedule of each: medians of
    rounds that alternate the two, so load from other jobs hits both alike."""
    for f in (f.detach() for f in vgg_features(size, "cpu")[0]):
        med = interleaved_medians({"ours": lambda: ops.gram(f), "reference": lambda: reference.gram(f)}, rounds)
        tile, tiles, pairs, chunk, chunks, items = torch.ops.pytexsynth._gram_schedule(1, f.shape[1], f.shape[2] * f.shape[3])
        print(f"{tuple(f.shape)}: {pairs} of {tiles * tiles} tiles of {tile}, {chunks} chunks of {chunk} px: "
              f"ours {med['ours']:.2f} ms, reference {med['reference']:.2f} ms, ratio {med['reference'] / med['ours']:.2f}x")


if __name__ == "__main__":  # per-layer forward table: PYTHONPATH=. python benchmarks/bench_gram.py [SIZE]
    import sys

    _per_layer_forward(int(sys.argv[1]) if len(sys.argv) > 1 else 512)
