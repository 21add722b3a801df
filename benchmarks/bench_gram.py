"""Fused Gram loss vs bmm + mse_loss autograd: forward+backward of the style loss summed over
VGG-19's relu1_1..relu5_1 feature shapes (64, 128, 256, 512, 512 channels at H, H/2, H/4, H/8,
H/16; batch 1), for 256, 512 and 1024 px images.

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

from conftest import DEVICES, run_benchmark

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


@pytest.mark.parametrize("impl", ["ours", "reference"])
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
    if impl == "ours":
        p = PRECISIONS[precision]

        def fn():
            loss = ops.gram_loss_multi(feats, targets, weights, "hw", p)
            return torch.autograd.grad(loss, feats)
        run_benchmark(benchmark, device, fn, rounds=10 if device == "cpu" else None)
    else:
        def fn():
            loss = sum(reference.gram_loss_unfused(f, t, w) for f, t, w in zip(feats, targets, weights))
            return torch.autograd.grad(loss, feats)
        with matmul_precision(PRECISIONS[precision]):
            run_benchmark(benchmark, device, fn, rounds=10 if device == "cpu" else None)
