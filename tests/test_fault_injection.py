"""Fault injection for training: SIGKILL a training process at random moments (during steps and
during checkpoint writes), resume it each time, and check that the final model equals an
uninterrupted run's bitwise and that no file the run does not own is touched."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import pytexsynth

ROOT = Path(__file__).resolve().parent.parent
# The folder of the pytexsynth this test imported (the installed one in CI, the source tree when
# built in place), so the subprocess runs the same build.
PACKAGE_HOME = str(Path(pytexsynth.__file__).resolve().parent.parent)

# A small network and a cheap loss (no VGG), slowed so that kills land inside the run; a
# checkpoint after every step, so they land inside checkpoint writes too.
WORKER = r"""
import sys, time, torch
from pytexsynth.networks import TextureGenerator
from pytexsynth.training import train

torch.set_num_threads(1)
torch.manual_seed(0)
net = TextureGenerator(scales=1, channels=4, norm="instance")

def loss_fn(model, noise):
    time.sleep(0.02)
    return (model(noise) - 0.5).square().mean()

train(net, loss_fn, lambda gen, step: net.sample_noise(2, 16, gen, device="cpu"), steps=int(sys.argv[2]), lr=0.01,
      checkpoint=sys.argv[1], checkpoint_every=1, resume=True, progress=False, device="cpu")
"""

STEPS = 30


def _run(worker: Path, checkpoint: Path, kill_after=None) -> int:
    env = {**os.environ, "PYTHONPATH": PACKAGE_HOME + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(worker), str(checkpoint), str(STEPS)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"the worker failed ({proc.returncode}): {err.decode()[-2000:]}")
    return proc.returncode


def _state(checkpoint: Path):
    data = torch.load(checkpoint, weights_only=True)
    return data["step"], data["losses"], data["model"]


def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path, capsys):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    reference = tmp_path / "reference" / "run.ckpt"
    t0 = time.perf_counter()
    assert _run(worker, reference) == 0
    duration = time.perf_counter() - t0
    ref_step, ref_losses, ref_model = _state(reference)
    rng = random.Random(1234)
    runs, kills, mismatches = 0, 0, 0
    for trial in range(2):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        bystander = folder / "someone-elses.png"
        bystander.write_bytes(b"not the run's")
        checkpoint = folder / "run.ckpt"
        while True:
            runs += 1
            # kill somewhere between the interpreter's start and the run's end (import ~ 1/3 of it)
            code = _run(worker, checkpoint, kill_after=rng.uniform(0.3, 1.0) * duration if runs % 4 else None)
            if code == 0:
                break
            kills += 1
        step, losses, model = _state(checkpoint)
        same = step == ref_step and losses == ref_losses and all(torch.equal(model[k], ref_model[k]) for k in model)
        mismatches += not same
        assert bystander.read_bytes() == b"not the run's"
        assert sorted(p.name for p in folder.iterdir()) == ["run.ckpt", "someone-elses.png"]  # no temporaries left
    with capsys.disabled():
        print(f"\nfault injection: {runs} runs, {kills} SIGKILLs, crashes 0, mismatches {mismatches}")
    assert kills >= 2 and mismatches == 0
