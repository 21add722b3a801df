"""style_swap vs the conv2d / argmax / one-hot / conv_transpose2d reference, at VGG relu3_1.

Shapes: C=256, H=W=px/4 for content and style images of px = 256, 512, 1024, 2048 (B=1,
3x3 patches, stride 1, float32, precision "ieee"). Time (median) and peak memory: on CUDA the
allocator's peak above the inputs (conftest.run_benchmark); on the CPU the peak resident set
above the inputs of one call in a fresh process (so caches of earlier calls do not hide it).
An out-of-memory is recorded as `"oom": true` in extra_info with no time (the test then
skips with "OOM").

Run:  pytest benchmarks/bench_style_swap.py --benchmark-enable --benchmark-json=out.json
Then: python benchmarks/report.py out.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pytexsynth import ops, reference

from conftest import DEVICES, run_benchmark

SIZES = [256, 512, 1024, 2048]
CHANNELS = 256
IMPLS = {
    "ours": lambda c, s: ops.style_swap(c, s),
    "reference": lambda c, s: reference.style_swap(c, s),
}
ROOT = Path(__file__).resolve().parents[1]

# One call in a fresh process: peak resident memory above the inputs (Linux: clear_refs 5
# resets VmHWM, the high-water mark of the resident set).
_CPU_PEAK_SCRIPT = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from pytexsynth import ops, reference
px, impl = int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
n = px // 4
c = torch.randn(1, 256, n, n).relu_(); s = torch.randn(1, 256, n, n).relu_()
fn = {"ours": lambda: ops.style_swap(c, s), "reference": lambda: reference.style_swap(c, s)}[impl]
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS:")
fn()
print(json.dumps({"peak_mb": round((status("VmHWM:") - base) / 2**20, 2)}))
"""


def cpu_peak_mb(px: int, impl: str) -> float | None:
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    r = subprocess.run([sys.executable, "-c", _CPU_PEAK_SCRIPT, str(ROOT), str(px), impl], capture_output=True,
                       text=True, env=env, timeout=600)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])["peak_mb"]


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("px", SIZES, ids=[f"{p}px" for p in SIZES])
@pytest.mark.parametrize("device", DEVICES)
def test_style_swap(benchmark, device, px, impl):
    if device == "cpu" and px > 512:
        pytest.skip("1024/2048 px are GPU cases: minutes per call on a 2-core CPU, and the reference's "
                    "score matrix and one-hot (33+ GB at 1024 px) exceed this machine's memory")
    benchmark.group = f"style_swap relu3_1 {device} {px}px C={CHANNELS} float32"
    n = px // 4
    content = torch.randn(1, CHANNELS, n, n, device=device).relu_()
    style = torch.randn(1, CHANNELS, n, n, device=device).relu_()
    fn_op = IMPLS[impl]
    benchmark.extra_info["shape"] = [1, CHANNELS, n, n]
    try:
        run_benchmark(benchmark, device, lambda: fn_op(content, style), rounds=3 if px >= 512 else 5)
    except torch.OutOfMemoryError as exc:
        benchmark.extra_info["oom"] = True
        if device == "cuda":
            torch.cuda.empty_cache()
        pytest.skip(f"OOM: {impl} at {px} px: {str(exc).splitlines()[0]}")
    if device == "cpu":
        peak = cpu_peak_mb(px, impl)
        if peak is not None:
            benchmark.extra_info["peak_mem_mb"] = peak
