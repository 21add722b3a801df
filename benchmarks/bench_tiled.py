"""Peak memory and time per evaluation of tiled, checkpointed and whole-image style transfer.

Each configuration runs in a fresh process (so its peak RSS is its own): ``transfer_style`` of
astronaut in coffee's style at SIZE px (longer side), one level (the finest), a few evaluations,
one thread unless --threads. Reported per run: the peak RSS above the process's RSS just before
the call (torch, VGG's weights and their Winograd transforms already loaded by a 256 px warm-up
run, whose VGG19 the measured run reuses: what the run itself adds, its setup included: the
content's and the style's features), the peak of
the evaluations after the first above the RSS at their start (what tiling bounds), the whole
process's peak RSS, and the seconds per evaluation (between the first and the
last progress report). "--procs 2" runs the tiled configuration in two gloo processes
(torch.distributed, the tiles dealt out) against one.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_tiled.py [--sizes 512 1024 2048] \
        [--out benchmarks/results/tiled-cpu-epyc] [--merge]

``--merge`` keeps the rows of other sizes already in the --out JSON (a size rerun replaces its rows).

pytest-benchmark (one small tiled evaluation against the whole image's, same run):
    PYTHONPATH=. python -m pytest benchmarks/bench_tiled.py --benchmark-enable -p no:cacheprovider
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = textwrap.dedent("""
    import json, re, sys, time, torch, numpy as np
    import pytexsynth
    from pytexsynth.io import resize_image
    from skimage import data
    size, tile, iterations, optimizer, store, rank, world = sys.argv[1:8]
    size, iterations, rank, world = int(size), int(iterations), int(rank), int(world)
    tile = None if tile == "none" else tile if tile in ("auto", "checkpoint") else int(tile)
    if world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    def image(a):
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255
    content, style = image(data.astronaut()), image(data.coffee())
    def status(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
    # warm-up at 256 px: VGG's weights, the Winograd transforms of every layer (a layer uses them
    # from 16x16 px maps on), the extension
    pytexsynth.transfer_style(content, style, 256, iterations=[1], pyramid=False, device="cpu")
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS")
    stamps, memory, at_first = [], [], []
    def callback(p):
        stamps.append(time.perf_counter()); memory.append(p.memory)
        if not at_first:  # after the first evaluation: the peak of the later ones is the evaluations' own
            at_first.append(status("VmHWM"))
            open("/proc/self/clear_refs", "w").write("5")
            at_first.append(status("VmRSS"))
    t0 = time.perf_counter()
    pytexsynth.transfer_style(content, style, size, iterations=[iterations], pyramid=False, device="cpu", tile=tile,
                              optimizer=optimizer, callback=callback, report_every=1)
    total = time.perf_counter() - t0
    per_eval = (stamps[-1] - stamps[0]) / max(1, len(stamps) - 1)
    print(json.dumps({"size": size, "tile": tile, "procs": world, "rank": rank, "iterations": iterations,
                      "optimizer": optimizer, "seconds_per_evaluation": per_eval, "seconds": total,
                      "peak_above_baseline_gb": (max(at_first[0], status("VmHWM")) - before) / 1e9,
                      "evaluation_peak_gb": (status("VmHWM") - at_first[1]) / 1e9,
                      "peak_rss_gb": max(at_first[0], status("VmHWM")) / 1e9, "baseline_gb": before / 1e9, "memory": memory[-1]}))
    if world > 1:
        dist.destroy_process_group()
""")


def run(size: int, tile, iterations: int = 3, optimizer: str = "adam", procs: int = 1, threads: int = 1) -> dict:
    """One configuration in fresh processes (``procs`` of them); rank 0's measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(_CHILD)
        # a fixed mmap threshold: freed large tensors go back to the OS, so RSS follows what is held
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_="131072")
        children = [subprocess.Popen([sys.executable, str(script), str(size), "none" if tile is None else str(tile), str(iterations), optimizer,
                                      str(Path(tmp) / "store"), str(r), str(procs)], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for r in range(procs)]
        outs = [c.communicate() for c in children]
        for c, (_, err) in zip(children, outs):
            if c.returncode:
                return {"size": size, "tile": tile, "procs": procs, "error": err.strip().splitlines()[-1][:300]}
        return json.loads(outs[0][0].strip().splitlines()[-1])


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name:"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def _table(rows) -> str:
    lines = ["| size | evaluation | procs | s / evaluation | x whole | run peak above baseline (GB) | x whole | "
             "evaluation peak (GB) | x whole | process peak RSS (GB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    whole = {r["size"]: r for r in rows if r.get("tile") is None and r.get("procs") == 1 and "error" not in r}
    for r in rows:
        name = {None: "whole", "checkpoint": "checkpointed"}.get(r["tile"], f"tiles {r['tile']}")
        if "error" in r:
            lines.append(f"| {r['size']} | {name} | {r['procs']} | failed: {r['error']} | | | | | | |")
            continue
        w = whole.get(r["size"])
        t_ratio = f"{r['seconds_per_evaluation'] / w['seconds_per_evaluation']:.2f}" if w else "-"
        m_ratio = f"{r['peak_above_baseline_gb'] / w['peak_above_baseline_gb']:.2f}" if w else "-"
        e_ratio = f"{r['evaluation_peak_gb'] / w['evaluation_peak_gb']:.2f}" if w else "-"
        lines.append(f"| {r['size']} | {name}{' (' + r['memory'] + ')' if r.get('memory') else ''} | {r['procs']} | "
                     f"{r['seconds_per_evaluation']:.1f} | {t_ratio} | {r['peak_above_baseline_gb']:.2f} | {m_ratio} | "
                     f"{r['evaluation_peak_gb']:.2f} | {e_ratio} | {r['peak_rss_gb']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--tile", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tiled-cpu-epyc"))
    p.add_argument("--merge", action="store_true", help="keep the --out JSON's rows of other sizes")
    a = p.parse_args()
    rows = []
    for size in a.sizes:
        configs = [(None, 1), ("checkpoint", 1), (a.tile, 1)] if size <= 1024 else [(a.tile, 1)]
        if size == min(a.sizes):
            configs.append((a.tile, 2))
        for tile, procs in configs:
            # the largest size with L-BFGS (its history counted), two evaluations (each 5 min on one core)
            opt, iterations = ("lbfgs", 2) if size > 1024 else ("adam", 3)
            row = run(size, tile, iterations, opt, procs, a.threads)
            print(json.dumps(row), flush=True)
            rows.append(row)
    sizes = list(a.sizes)
    if a.merge and Path(a.out + ".json").is_file():
        kept = [r for r in json.loads(Path(a.out + ".json").read_text()) if r["size"] not in a.sizes]
        rows = sorted(kept + rows, key=lambda r: r["size"])
        sizes = sorted({r["size"] for r in rows})
    head = (f"CPU: {cpu_name()}, {a.threads} thread(s) per process, torch {_torch_version()}; command: "
            f"`OMP_NUM_THREADS={a.threads} PYTHONPATH=. python benchmarks/bench_tiled.py --sizes "
            f"{' '.join(map(str, sizes))} --tile {a.tile}`"
            + (f" (sizes {', '.join(str(s) for s in sizes if s not in a.sizes)} from an earlier run)" if sizes != list(a.sizes) else "")
            + "\n\n")
    Path(a.out + ".json").write_text(json.dumps(rows, indent=1))
    Path(a.out + ".md").write_text(head + _table(rows) + "\n")
    print(head + _table(rows))


def _torch_version() -> str:
    import torch

    return torch.__version__


def test_tiled_evaluation_vs_whole(benchmark):
    """One tiled evaluation (128 px tiles) of a 256 px image, timed; the whole image's in the same run."""
    import time

    import torch

    from pytexsynth.losses import ContentLoss, GramStyleLoss
    from pytexsynth.models.vgg import VGG19
    from pytexsynth.synthesis.engine import Term
    from pytexsynth.synthesis.tiled import TiledLoss, exact_halo

    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")
    vgg = VGG19(layers)
    x, s = torch.rand(1, 3, 256, 256), torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        sf = vgg(s)
    gram = GramStyleLoss([{n: sf[n] for n in layers[:5]}])
    content = ContentLoss({"relu4_2": sf["relu4_2"]}, "auto")
    terms = [Term("style", 4.0, lambda fe, x: gram(fe), layers[:5], gram),
             Term("content", 1.0, lambda fe, x: content(fe), ("relu4_2",))]
    scales = [torch.tensor(4.0), torch.tensor(1.0)]
    tiled = TiledLoss(vgg, layers, (256, 256), 128, exact_halo(layers))
    t0 = time.perf_counter()
    xr = x.clone().requires_grad_(True)
    f = vgg(xr)
    (4 * gram(f) + content(f)).backward()
    whole = time.perf_counter() - t0
    benchmark.pedantic(lambda: tiled(x, terms, scales), rounds=1, iterations=1)
    benchmark.extra_info["whole_seconds"] = whole


if __name__ == "__main__":
    main()
