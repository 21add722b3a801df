"""Every registered op, private ones included, refuses hostile arguments with a Python exception
instead of crashing the process: tests/crash_ops.py runs in a subprocess, so a segfault (or an
abort, a floating-point trap) fails this test and names the call, rather than killing the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytexsynth

ROOT = Path(__file__).resolve().parent.parent
# The folder of the pytexsynth this test imported (the installed one in CI, the source tree when
# built in place), so the subprocess runs the same build.
PACKAGE_HOME = str(Path(pytexsynth.__file__).resolve().parent.parent)


def test_hostile_calls_never_crash(capsys):
    env = {**os.environ, "PYTHONPATH": PACKAGE_HOME + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "crash_ops.py")], env=env, capture_output=True,
                          text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, (f"the process died (status {proc.returncode}) in the call "
                                  f"{lines[-1] if lines else '?'}:\n{proc.stderr[-2000:]}")
    with capsys.disabled():
        print("\n" + lines[-1])
    assert lines[-1].startswith("crash check: ") and "crashes 0" in lines[-1]
