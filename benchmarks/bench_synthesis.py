"""Gatys style-transfer iteration time: pytexsynth vs a plain-PyTorch loop on the same VGG, and
vs pastiche's CLI. Same layers as pastiche's defaults (content relu4_2, style relu1_1..relu5_1),
L-BFGS, one image, no pyramid.

pytest-benchmark (ours vs plain PyTorch vs pastiche, 3 L-BFGS iterations per round):
    pytest benchmarks/bench_synthesis.py --benchmark-enable --benchmark-json=out.json
    python benchmarks/report.py out.json

vs pastiche (its PasticheArtist, which its CLI runs): each implementation in its own worker
process, as a user runs it, rounds of L-BFGS iterations interleaved across the three (the
parent starts a round in one worker, waits, then the next), medians; start-up, weight loading
and a warm-up iteration excluded:
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_synthesis.py --size 256
``--same-process`` runs all three in this process instead (then process-wide state such as
the heap is shared: pytexsynth's loop keeps freed memory in the heap only while it runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import pytest
import torch
import torch.nn.functional as F

from pytexsynth.losses import ContentLoss, GramStyleLoss
from pytexsynth.models import VGG19
from pytexsynth.synthesis import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from pytexsynth.synthesis.engine import Level, Term, balance_scales, optimise_lbfgs

ITERS = 3
LAYERS = tuple(dict.fromkeys((*DEFAULT_CONTENT_LAYERS, *DEFAULT_STYLE_LAYERS)))


def _images(size, device):
    g = torch.Generator().manual_seed(0)
    c = torch.rand(1, 3, size, size, generator=g)
    s = torch.rand(1, 3, size, size, generator=g)
    return c.to(device), s.to(device)


def make_ours(size, device):
    """One L-BFGS level of pytexsynth.transfer_style, set up once; returns run(iters)."""
    vgg = VGG19(LAYERS).to(device)
    c, s = _images(size, device)
    with torch.no_grad():
        cf = vgg(c, DEFAULT_CONTENT_LAYERS)
        sf = vgg(s, DEFAULT_STYLE_LAYERS)
    closs, sloss = ContentLoss(cf), GramStyleLoss([sf])
    evals = [0]

    def content(fe, x):
        evals[0] += 1  # one per function evaluation (VGG forward + backward)
        return closs(fe)

    terms = [Term("content", 1.0, content), Term("style", 1.0, lambda fe, x: sloss(fe))]
    scales = balance_scales(terms, c, vgg, LAYERS, True, torch.Generator().manual_seed(0))
    state = {"x": c}

    def run(iters):
        """`iters` function evaluations (the line search may run a few past); returns how many ran."""
        before = evals[0]
        state["x"], _ = optimise_lbfgs(state["x"], Level(terms, scales, vgg, LAYERS, iters), clamp=False)
        return evals[0] - before

    return run


def make_plain(size, device):
    """The usual Gatys loop: bmm Gram + mse_loss through autograd, on the same VGG module with
    PyTorch's own convolutions (oneDNN / cuDNN: winograd=False)."""
    vgg = VGG19(LAYERS, winograd=False).to(device)
    c, s = _images(size, device)

    def gram(f):
        b, ch, h, w = f.shape
        f = f.reshape(b, ch, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (h * w)

    with torch.no_grad():
        ct = vgg(c, DEFAULT_CONTENT_LAYERS)
        st = {n: gram(f) for n, f in vgg(s, DEFAULT_STYLE_LAYERS).items()}

    def run(iters):
        x = c.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=50, tolerance_grad=0.0, tolerance_change=0.0)

        def closure():
            opt.zero_grad()
            feats = vgg(x)
            loss = sum(0.01 * F.mse_loss(feats[n], ct[n]) for n in DEFAULT_CONTENT_LAYERS)
            for n in DEFAULT_STYLE_LAYERS:
                loss = loss + 10.0 / feats[n].shape[1] ** 2 * F.mse_loss(gram(feats[n]), st[n])
            loss.backward()
            return loss

        for _ in range(iters):
            opt.step(closure)
        return iters  # one evaluation per L-BFGS step without line search

    return run


IMPLS = {"ours": make_ours, "plain-pytorch": make_plain}


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("size", [256, pytest.param(512, marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="512 px on CPU takes minutes per round; CUDA only"))])
def test_gatys_iterations(benchmark, size, impl):
    from conftest import DEVICES, run_benchmark  # noqa: F401

    device = "cuda" if torch.cuda.is_available() else "cpu"
    run = IMPLS[impl](size, device)
    benchmark.group = f"gatys-lbfgs-{ITERS}it-{size}px-{device}"
    benchmark.extra_info["iterations_per_round"] = ITERS
    run_benchmark(benchmark, device, lambda: run(ITERS), rounds=3)


# ---------------------------------------------------------------- vs pastiche

def make_pastiche(size, device):
    """pastiche's own PasticheArtist (what its CLI runs), same images and layers; run(iters) = draw() x iters."""
    from pastiche.pastiche import PasticheArtist

    from pytexsynth.io import save_image

    d = tempfile.mkdtemp()
    c, s = _images(size, "cpu")
    cp, sp = os.path.join(d, "c.png"), os.path.join(d, "s.png")
    save_image(c, cp)
    save_image(s, sp)
    artist = PasticheArtist(cp, [sp], optimizer="lbfgs", device=device, size=size)

    def run(iters):
        for _ in range(iters):
            artist.draw()
        return iters  # one evaluation per draw (L-BFGS, max_iter=1, no line search)

    return run


IMPLS["pastiche"] = make_pastiche


RUNNERS = {"pytexsynth": make_ours, "plain-pytorch": make_plain, "pastiche": make_pastiche}


def _worker(name, size):
    """Builds one implementation, warms it up, then times `N` iterations per line read on stdin."""
    fn = RUNNERS[name](size, "cpu")
    fn(1)
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        t, c = time.perf_counter(), time.process_time()
        e = fn(n)
        print(time.perf_counter() - t, time.process_time() - c, e, flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=3, help="iterations per timed round")
    p.add_argument("--rounds", type=int, default=5, help="rounds, interleaved across the implementations")
    p.add_argument("--same-process", action="store_true", help="all implementations in this process")
    p.add_argument("--worker", choices=list(RUNNERS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.size)
        return 0
    times = {k: [] for k in RUNNERS}
    cpu = {k: [] for k in RUNNERS}  # process CPU time: robust to other jobs taking turns on the cores
    if args.same_process:
        runs = {k: make(args.size, "cpu") for k, make in RUNNERS.items()}
        for fn in runs.values():
            fn(1)  # warm-up

        def timed(name):
            t, c = time.perf_counter(), time.process_time()
            e = runs[name](args.steps)
            return time.perf_counter() - t, time.process_time() - c, e
    else:
        procs = {k: subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", k, "--size", str(args.size)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for k in RUNNERS}
        for k, pr in procs.items():  # built and warmed up one after the other
            if pr.stdout.readline().strip() != "ready":
                raise RuntimeError(f"worker {k} failed")

        def timed(name):
            procs[name].stdin.write(f"{args.steps}\n")
            procs[name].stdin.flush()
            wall, c, e = procs[name].stdout.readline().split()
            return float(wall), float(c), int(e)
    for _ in range(args.rounds):
        for name in RUNNERS:
            wall, c, e = timed(name)
            times[name].append(wall / e)
            cpu[name].append(c / e)
    if not args.same_process:
        for pr in procs.values():
            pr.stdin.close()
            pr.wait()
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    where = "one process" if args.same_process else "one process each"
    print(f"{args.size} px, CPU, {torch.get_num_threads()} threads, L-BFGS, content relu4_2, style relu1_1..relu5_1; "
          f"{args.rounds} interleaved rounds of {args.steps} iterations, {where}; medians per function evaluation "
          "(one VGG forward + backward: one L-BFGS iteration of pastiche and of the plain loop; pytexsynth's "
          "line search makes 1.0-1.2 per iteration, and its `iterations` count evaluations)\n")
    print("| impl | wall s | min wall s | pastiche / impl (wall) | CPU s | pastiche / impl (CPU) |")
    print("|---|---|---|---|---|---|")
    for name, v in med.items():
        print(f"| {name} | {v:.3f} | {min(times[name]):.3f} | {med['pastiche'] / v:.2f}x | {mcpu[name]:.3f} | "
              f"{mcpu['pastiche'] / mcpu[name]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
