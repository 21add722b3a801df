"""Benchmark helpers: device parametrisation, synchronised timing, peak memory."""

from __future__ import annotations

import platform

import pytest
import torch

import pytexsynth

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(
        not (torch.cuda.is_available() and pytexsynth.has_cuda()), reason="no CUDA device or kernels")),
]


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def run_benchmark(benchmark, device: str, fn, *, rounds: int | None = None) -> None:
    """Times fn (synchronising CUDA so the kernel time is counted), records peak memory."""
    def timed():
        fn()
        if device == "cuda":
            torch.cuda.synchronize()

    timed()  # warm-up (and compile/autotune caches)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        timed()
        benchmark.extra_info["peak_mem_mb"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 2)
    benchmark.extra_info["device"] = device_name(device)
    benchmark.extra_info["torch"] = torch.__version__
    if rounds:
        benchmark.pedantic(timed, rounds=rounds, warmup_rounds=1, iterations=1)
    else:
        benchmark(timed)
