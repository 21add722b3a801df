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

    benchmark.extra_info["device"] = device_name(device)  # before the warm-up: an OOM row names it too
    benchmark.extra_info["torch"] = torch.__version__
    timed()  # warm-up (and compile/autotune caches)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        timed()
        benchmark.extra_info["peak_mem_mb"] = round((torch.cuda.max_memory_allocated() - base) / 2**20, 2)
    if rounds:
        benchmark.pedantic(timed, rounds=rounds, warmup_rounds=1, iterations=1)
    else:
        benchmark(timed)


def interleaved_medians(fns: dict, rounds: int) -> dict:
    """Median milliseconds of each of ``fns`` (name -> callable, CPU), after one warm-up call
    each, over rounds that call them one after the other, so load from other jobs hits all alike."""
    import statistics
    import time

    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


# ---- out-of-memory rows ----------------------------------------------------------------------
# A benchmark that runs out of memory sets benchmark.extra_info["oom"] = True and skips (see
# bench_style_swap.py). pytest-benchmark saves only benchmarks that were timed, so such a case
# would vanish from the JSON; these hooks add it as a row with "stats": null, which
# benchmarks/report.py shows as OOM.
_OOM_ROWS: list = []


def oom_row(bench) -> dict:
    """The JSON row of a benchmark fixture that ran out of memory before it was timed."""
    def plain(v):
        return v if isinstance(v, (str, int, float, bool, type(None))) else str(v)

    return {"group": bench.group, "name": bench.name, "fullname": bench.fullname, "param": bench.param,
            "params": {k: plain(v) for k, v in (bench.params or {}).items()},
            "extra_info": {k: plain(v) for k, v in bench.extra_info.items()}, "options": {}, "stats": None}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield
    if call.when != "call":
        return
    bench = getattr(item, "funcargs", {}).get("benchmark")
    if bench is not None and bench.extra_info.get("oom") and getattr(bench, "stats", None) is None:
        _OOM_ROWS.append(oom_row(bench))


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["benchmarks"].extend(_OOM_ROWS)
