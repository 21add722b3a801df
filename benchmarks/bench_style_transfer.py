"""Style-swap style transfer: one pass through the shipped decoder ("ours") vs the optimisation
method ("optimize"), same content, style and size, in the same run; and peak memory.

Inputs: scikit-image's astronaut photo (512 px, in its wheel; nothing downloaded) resized to
``px`` as the content, scikit-image's gravel texture (512 px) as the style, reduced to the
default style size (256 px longer side), relu3_1, 3x3 patches, stride 1.

* ``test_stylize[px]``: time of ``style_swap_transfer(method="inverse")`` vs
  ``method="optimize"`` (L-BFGS, pyramid from 64 px, ``OPT_ITERATIONS`` at the finest level and
  twice as many at each coarser one; one round: it takes minutes on a CPU). Both outputs are
  scored by the relative error of their relu3_1 features to the swapped target,
  ``||Phi(I) - Phi_ss||^2 / ||Phi_ss||^2``, in ``extra_info["swap_error"]`` (for reference,
  the content image's own error is ``extra_info["content_swap_error"]``).
* ``test_one_pass_peak_memory[px]``: one call in a fresh process at 1024 and 2048 px; the peak
  resident set above the loaded inputs and models (CPU; Linux VmHWM) or the CUDA allocator's
  peak, and that call's time, in extra_info.

Run:  python -m pytest benchmarks/bench_style_transfer.py --benchmark-enable --benchmark-json=out.json
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

import pytexsynth
from pytexsynth.synthesis.style_swap import default_decoder_path, swap_target

from conftest import DEVICES, device_name, run_benchmark

ROOT = Path(__file__).resolve().parents[1]
OPT_ITERATIONS = {"cpu": 10, "cuda": 100}
TIME_SIZES = [512, 1024]
MEMORY_SIZES = [1024, 2048]

pytestmark = pytest.mark.skipif(not default_decoder_path().is_file(), reason="no shipped decoder")


def _skimage(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


def inputs(px: int):
    from pytexsynth.io import load_image

    content = load_image(_skimage("astronaut.png"), size=px)
    style = load_image(_skimage("gravel.png"))
    return content, style


def _swap_error(vgg, img, target) -> float:
    with torch.no_grad():
        f = vgg(img.float(), ("relu3_1",))["relu3_1"].float()
    return round(float((f - target).square().mean() / target.square().mean()), 4)


@pytest.fixture(scope="module")
def scorer():
    return pytexsynth.VGG19(("relu3_1",))


@pytest.mark.parametrize("impl", ["ours", "optimize"])
@pytest.mark.parametrize("px", TIME_SIZES, ids=[f"{p}px" for p in TIME_SIZES])
@pytest.mark.parametrize("device", DEVICES)
def test_stylize(benchmark, device, px, impl, scorer):
    benchmark.group = f"style-swap transfer {px}px {device}"
    content, style = inputs(px)
    content, style = content.to(device), style.to(device)
    out = {}
    if impl == "ours":
        decoder = pytexsynth.synthesis.style_swap.load_default_decoder(device)

        def fn():
            out["img"] = pytexsynth.style_swap_transfer(content, style, method="inverse", decoder=decoder,
                                                        device=device)

        run_benchmark(benchmark, device, fn, rounds=3)
    else:
        def fn():
            out["img"] = pytexsynth.style_swap_transfer(content, style, method="optimize",
                                                        iterations=OPT_ITERATIONS[device], device=device)

        benchmark.extra_info["device"] = device_name(device)
        benchmark.extra_info["torch"] = torch.__version__
        benchmark.extra_info["iterations_finest"] = OPT_ITERATIONS[device]
        benchmark.pedantic(fn, rounds=1, warmup_rounds=0, iterations=1)
    img = out["img"].cpu()
    assert img.shape == content.shape
    from pytexsynth.io import resize_image

    c = content.cpu()
    with torch.no_grad():
        cf = scorer(c, ("relu3_1",))["relu3_1"]
        sf = scorer(resize_image(style.cpu(), 256), ("relu3_1",))["relu3_1"]
    target = swap_target(cf, sf)
    benchmark.extra_info["swap_error"] = _swap_error(scorer, img, target)
    benchmark.extra_info["content_swap_error"] = _swap_error(scorer, c, target)


# One call in a fresh process, after a warm-up call at a small size (so library code loaded on
# first use is not counted): peak resident memory above the inputs and models (Linux: clear_refs
# 5 resets VmHWM, the resident-set high-water mark), or the CUDA allocator's peak.
_PEAK_SCRIPT = r"""
import json, sys, time, torch
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + "/benchmarks")
import pytexsynth
from pytexsynth.synthesis.style_swap import load_default_decoder
from bench_style_transfer import inputs
px, device = int(sys.argv[2]), sys.argv[3]
content, style = inputs(px)
content, style = content.to(device), style.to(device)
decoder = load_default_decoder(device)
vgg = pytexsynth.VGG19(("relu3_1",)).to(device)
run = lambda c: pytexsynth.style_swap_transfer(c, style, method="inverse", decoder=decoder, device=device)
run(content[..., :64, :64])
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
if device == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
else:
    open("/proc/self/clear_refs", "w").write("5"); base = status("VmRSS:")
t0 = time.perf_counter()
out = run(content)
if device == "cuda":
    torch.cuda.synchronize()
seconds = time.perf_counter() - t0
peak = (torch.cuda.max_memory_allocated() if device == "cuda" else status("VmHWM:")) - base
print(json.dumps({"peak_mb": round(peak / 2**20, 1), "seconds": round(seconds, 3), "shape": list(out.shape)}))
"""


@pytest.mark.parametrize("px", MEMORY_SIZES, ids=[f"{p}px" for p in MEMORY_SIZES])
@pytest.mark.parametrize("device", DEVICES)
def test_one_pass_peak_memory(benchmark, device, px):
    benchmark.group = f"style-swap one pass, peak memory {px}px {device}"
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    result = {}

    def fn():
        r = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(ROOT), str(px), device], capture_output=True,
                           text=True, env=env, timeout=1200)
        assert r.returncode == 0, r.stderr[-2000:]
        result.update(json.loads(r.stdout.strip().splitlines()[-1]))

    benchmark.pedantic(fn, rounds=1, warmup_rounds=0, iterations=1)
    assert result["shape"][-1] == px
    benchmark.extra_info.update(device=device_name(device), torch=torch.__version__, peak_mem_mb=result["peak_mb"],
                                call_seconds=result["seconds"])
