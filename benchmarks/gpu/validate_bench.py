"""The benchmarks and e2e stages of benchmarks/gpu/validate.py: every benchmark file's CUDA cases
with short settings (one pytest per file, the targets' files first, so a stop keeps the files
that finished), merged into bench.json and benchmarks/report.py's table; then
benchmarks/gpu/e2e_timings.py."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from validate_stages import Outcome, combine, pytest_timeout_flag

ROOT = Path(__file__).resolve().parents[2]


# ---- benchmarks -----------------------------------------------------------------------------
BENCH_RUNS = (  # (label, file, -k expression, needs the VGG-19 weights): the targets' cases first
    ("circular_pad", "bench_circular_pad.py", "cuda", False),
    ("gram", "bench_gram.py", "cuda", False),
    ("histogram", "bench_histogram.py", "cuda", False),
    ("style_swap", "bench_style_swap.py", "cuda and not 2048px", False),
    ("synthesis", "bench_synthesis.py", None, True),  # no device parameter: all on CUDA where a GPU is visible
    ("winograd", "bench_winograd.py", "cuda", False),
    ("networks", "bench_networks.py", "cuda", True),
    ("style_transfer", "bench_style_transfer.py", "cuda", True),
    ("style_swap_2048", "bench_style_swap.py", "cuda and 2048px", False),  # ours: seconds a call; last
)
BENCH_SETTINGS = ["--benchmark-enable", "--benchmark-max-time=0.2", "--benchmark-min-rounds=3", "--benchmark-warmup=off"]
BENCH_FILE_CAP_S, BENCH_FILE_MIN_S = 120, 15


def merge_benchmarks(ctx) -> int:
    """bench.json (every run's rows, BENCH_RUNS order) and bench.md (report.py) in the results."""
    merged, rows = None, []
    for label, _, _, _ in BENCH_RUNS:
        path = ctx.logs / f"bench-{label}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        merged = merged or data
        rows += data.get("benchmarks", [])
    if merged is None:
        return 0
    merged["benchmarks"] = rows
    (ctx.results / "bench.json").write_text(json.dumps(merged, indent=1) + "\n")
    settings = " ".join(BENCH_SETTINGS)
    (ctx.results / "bench.md").write_text(f"Short settings ({settings}), benchmarks/gpu/validate.py\n\n"
                                          + bench_report().report(merged))
    return len(rows)


def bench_report():
    """benchmarks/report.py as a module (loaded by path: benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("pytexsynth_bench_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_tally(log_lines: list) -> str:
    """pytest's last "N passed, M failed in T s" line, without its '=' frame."""
    tallies = [line.strip("= ") for line in log_lines if re.search(r"\b(passed|failed|skipped|deselected|error)", line)
               and re.search(r"\bin [\d.]+s", line)]
    return tallies[-1] if tallies else ""


def bench_file(ctx, label: str, name: str, select: str | None) -> tuple:
    """(status, what to say) of one pytest run of a benchmark file; its JSON stays in the logs."""
    cmd = [ctx.python, "-m", "pytest", f"benchmarks/{name}", *(["-k", select] if select else []), "-q",
           "-p", "no:cacheprovider", "-rfE", f"--benchmark-json={ctx.logs / f'bench-{label}.json'}", *BENCH_SETTINGS,
           *pytest_timeout_flag(ctx, 90)]
    r = ctx.run(cmd, f"bench-{label}.log", timeout=BENCH_FILE_CAP_S)
    if ctx.dry_run:
        return "ok", "ok"
    status = "timeout" if r.timed_out else "ok" if r.rc == 0 else "failed"
    tally = pytest_tally(r.tail(40))
    return status, f"{status} ({tally or r.describe()})"


def benchmarks(ctx) -> Outcome:
    per_file, statuses, notes = {}, [], []
    for label, name, select, needs_vgg in BENCH_RUNS:
        if needs_vgg and not ctx.facts.get("vgg_weights"):
            per_file[label], status = "skipped: no VGG-19 weights", "partial"
        elif ctx.stage_remaining() < BENCH_FILE_MIN_S:
            per_file[label], status = "skipped: budget", "partial"
        else:
            status, per_file[label] = bench_file(ctx, label, name, select)
        statuses.append(status)
        try:
            rows = merge_benchmarks(ctx)
        except Exception as exc:  # noqa: BLE001 - a broken JSON or table is a note, not a stop
            rows = None
            notes.append(f"merging or the table failed after {label}: {type(exc).__name__}: {exc}")
    figures = {"files": ", ".join(f"{k} {v}" for k, v in per_file.items()), "rows": rows}
    return Outcome(combine(statuses), figures, notes)


# ---- end to end -----------------------------------------------------------------------------
def e2e(ctx) -> Outcome:
    out = ctx.results / "e2e.json"
    r = ctx.run([ctx.python, "benchmarks/gpu/e2e_timings.py", "--device", "cuda", "--out", out], "e2e.log")
    if ctx.dry_run:
        return Outcome("ok", {}, ["dry run: nothing was timed"])
    try:
        parts = json.loads(out.read_text())["parts"]
    except (OSError, ValueError, KeyError):
        return Outcome("timeout" if r.timed_out else "failed", {}, [f"no e2e.json: {r.describe()}", *r.tail(8)])
    figures, notes, statuses = {}, [], []
    for name, part in parts.items():
        statuses.append({"ok": "ok", "skipped": "partial"}.get(part.get("status"), "failed"))
        keep = {k: v for k, v in part.items() if isinstance(v, (int, float)) and k != "wall_s"}
        figures.update({f"{name} {k}": v for k, v in keep.items()})
        if part.get("status") != "ok":
            notes.append(f"{name}: {part.get('status')}: {part.get('reason') or part.get('error')}")
    if r.timed_out:
        statuses.append("timeout")
        notes.append(f"stopped: {r.describe()}; the parts above finished")
    return Outcome(combine(statuses), figures, notes)
