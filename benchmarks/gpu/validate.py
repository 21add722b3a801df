#!/usr/bin/env python3
"""One prepared command that proves the CUDA path on a GPU machine (issue 17).

    bash benchmarks/gpu/validate.sh RESULTS_DIR [--budget SECONDS] [--dry-run] [--stages a,b]

Stages, in priority order (STAGES below; validate_stages.py, validate_bench.py): setup (carried wheels
installed from .whl/ into a target folder; what the machine has), build (the extension in place, CUDA
kernels for the local arch only, all cores, timed), tests (the CUDA cases of tests/, junit XML),
sanitizer (compute-sanitizer memcheck on every op, racecheck on the shared-memory kernels),
benchmarks (every benchmark's CUDA cases, short settings, benchmarks/report.py's table), e2e
(Gatys 512 px x 500 iterations, Texture Networks, one-pass style swap).

Budget: a stage starts only when at least its estimate is left of --budget; it may take up to
its cap, less the estimates of the stages after it, never more than what is left; every
command it runs gets at most the stage's remaining time as its timeout (the process group is
killed at the limit). A stage not started is recorded as skipped with the reason ("budget: ...",
or the build's failure for the stages that need CUDA). Every failure is caught and recorded;
no stage stops the later ones except a failed build (or no CUDA device), which skips the CUDA
stages.

RESULTS_DIR, rewritten after every stage so a stop at a time limit keeps what finished, holds at
most these files, flat (what a device machine returns from $OUT: at most 8 files, names of
letters, digits, '.', '_', '-'): summary.md, summary.json (each stage's status, duration, key
figures, notes; the performance targets met / not met / unmeasured), logs.tar.gz (every
command's log, the junit XML, each benchmark file's JSON), bench.json (the benchmarks merged)
and bench.md (report.py's table of it), e2e.json.

--dry-run (no GPU, a few seconds; tests/test_gpu_validate.py runs it in CI): every stage builds
its real command lines and checks them (the program exists, the repository paths they name
exist), then runs a stand-in subprocess that prints them, through the same timeouts and logs;
the budget clock advances by each stage's estimate instead of real time, so skipping is
exercised; nothing is built, tested or timed, and the targets are unmeasured.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import validate_targets  # noqa: E402
from validate_bench import benchmarks, e2e  # noqa: E402
from validate_stages import Outcome, Stage, build, sanitizer, setup, tests  # noqa: E402

STAGES = [  # priority order; (name, what, estimate s, cap s, needs CUDA, the stage)
    Stage("setup", "carried wheels, what the machine has", 5, 90, False, setup),
    Stage("build", "the extension in place, CUDA kernels for the local arch, all cores", 120, 330, False, build),
    Stage("tests", "the CUDA cases of tests/ (pytest -k cuda)", 40, 150, True, tests),
    Stage("sanitizer", "compute-sanitizer memcheck on every op, racecheck on gram/histogram/style_swap", 30, 90,
          True, sanitizer),
    Stage("benchmarks", "every benchmark's CUDA cases, short settings", 40, 150, True, benchmarks),
    Stage("e2e", "Gatys 512 px x 500 iterations, Texture Networks, one-pass style swap", 30, 90, True, e2e),
]

MAX_RESULT_FILES = 8
RESULT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
LOG_BYTES_KEPT = 4 * 2**20  # per log in logs.tar.gz: the first quarter and the last three quarters
STAND_IN = "import sys; print('dry run: stand-in for:', ' '.join(sys.argv[1:]))"


class Clock:
    """Seconds since the start; in a dry run, advanced by each stage's estimate instead."""

    def __init__(self, simulated: bool):
        self.simulated, self._start, self._simulated_s = simulated, time.monotonic(), 0.0

    def elapsed(self) -> float:
        return self._simulated_s if self.simulated else time.monotonic() - self._start

    def advance(self, seconds: float) -> None:
        self._simulated_s += seconds


@dataclass
class CommandResult:
    rc: int | None
    seconds: float
    timed_out: bool
    log: Path

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out

    def tail(self, lines: int = 15) -> list:
        try:
            return self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    def describe(self) -> str:
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s (see {self.log.name})"
        return f"exit {self.rc} after {self.seconds:.1f} s (see {self.log.name})"


def repo_path_problems(cmd: list) -> list:
    """Arguments that name files of the repository (tests, benchmarks/..., setup.py) but miss."""
    problems = []
    for arg in map(str, cmd[1:]):
        if arg.startswith("-") or "=" in arg:
            continue
        if arg.split("/")[0] in ("tests", "benchmarks", "setup.py") and not (ROOT / arg).exists():
            problems.append(f"no such file in the repository: {arg}")
    return problems


def stop(proc: subprocess.Popen) -> int | None:
    """Ends the process group that proc leads (SIGTERM, then SIGKILL after 10 s)."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


class Context:
    """What the stages share: paths, the budget clock, the environment, what earlier stages
    learned (``facts``), and ``run`` for every command."""

    def __init__(self, args, scratch: Path):
        self.results, self.logs, self.dry_run = args.results, scratch, args.dry_run
        self.budget_s, self.clock = args.budget, Clock(args.dry_run)
        self.wheels, self.site, self.python = args.wheels, args.site, sys.executable
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.facts: dict = {}
        self.stage_deadline = float("inf")
        self.dry_run_problems: list = []  # what the dry run found wrong with the current stage's commands

    def remaining(self) -> float:
        return self.budget_s - self.clock.elapsed()

    def stage_remaining(self) -> float:
        return min(self.remaining(), self.stage_deadline - self.clock.elapsed())

    def add_pythonpath(self, path) -> None:
        self.env["PYTHONPATH"] = os.pathsep.join([self.env["PYTHONPATH"], str(path)])

    def run(self, cmd: list, log_name: str, *, timeout: float | None = None, env: dict | None = None,
            absent_ok: bool = False) -> CommandResult:
        """Runs cmd from the repository root, output to logs/log_name, killed at its timeout
        (at most the stage's remaining time). In a dry run: checks cmd, runs a stand-in."""
        limit = max(1.0, min(self.stage_remaining(), timeout if timeout is not None else float("inf")))
        cmd = [str(c) for c in cmd]
        log = self.logs / log_name
        extra = " ".join(f"{k}={v}" for k, v in (env or {}).items())
        with open(log, "a") as f:
            f.write(f"$ {extra + ' ' if extra else ''}{shlex.join(cmd)}\n# timeout {limit:.0f} s\n")
            f.flush()
            if self.dry_run:
                problems = repo_path_problems(cmd)
                if not (absent_ok or shutil.which(cmd[0]) or Path(cmd[0]).is_file()):
                    problems.append(f"program not found: {cmd[0]}")
                self.dry_run_problems += [f"{log_name}: {p}" for p in problems]
                cmd = [self.python, "-c", STAND_IN if not problems else
                       f"import sys; print({'; '.join(problems)!r}); sys.exit(127)", *cmd]
            t0 = time.monotonic()
            rc, timed_out = self._wait(cmd, f, {**self.env, **(env or {})}, limit)
            seconds = time.monotonic() - t0
            f.write(f"\n# exit {rc}{' (timed out)' if timed_out else ''} after {seconds:.1f} s\n")
        return CommandResult(rc, seconds, timed_out, log)

    @staticmethod
    def _wait(cmd, log_file, env, limit) -> tuple:
        try:
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=ROOT, env=env, start_new_session=True)
        except OSError as exc:
            log_file.write(f"could not start: {exc}\n")
            return 127, False
        try:
            return proc.wait(timeout=limit), False
        except subprocess.TimeoutExpired:
            return stop(proc), True
        except BaseException:  # interrupted: leave nothing running behind
            stop(proc)
            raise


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def bundle_logs(logs: Path, results: Path) -> None:
    """logs.tar.gz of every file under logs, each cut to LOG_BYTES_KEPT (head and tail)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(p for p in logs.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if len(data) > LOG_BYTES_KEPT:
                head = LOG_BYTES_KEPT // 4
                data = data[:head] + b"\n[... cut by validate.py ...]\n" + data[-(LOG_BYTES_KEPT - head):]
            info = tarfile.TarInfo(str(path.relative_to(logs)))
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    write_atomic(results / "logs.tar.gz", buf.getvalue())


def results_problems(results: Path) -> list:
    """What a device machine would not return from this folder: over 8 files, odd names, depth."""
    files = [p for p in results.rglob("*") if p.is_file()]
    problems = [f"{len(files)} files (at most {MAX_RESULT_FILES})"] if len(files) > MAX_RESULT_FILES else []
    for p in results.rglob("*"):
        rel = p.relative_to(results)
        if not all(RESULT_NAME.match(part) for part in rel.parts):
            problems.append(f"odd name: {rel}")
        if len(rel.parts) > 3:
            problems.append(f"too deep: {rel}")
    return problems


class Summary:
    """summary.json and summary.md, rewritten at every change of a stage."""

    def __init__(self, ctx: Context, stages: list, argv: list):
        self.ctx, self.argv, self.started = ctx, argv, now()
        self.stages = {s.name: {"name": s.name, "what": s.what, "status": "pending", "duration_s": None,
                                "timeout_s": None, "figures": {}, "notes": []} for s in stages}
        self.finished = None

    def update(self, name: str, **fields) -> None:
        self.stages[name].update(fields)
        self.flush()

    def as_dict(self) -> dict:
        ctx = self.ctx
        targets = validate_targets.evaluate(ctx.results / "bench.json", ctx.results / "e2e.json", "cuda")
        return {"dry_run": ctx.dry_run, "command": self.argv, "started": self.started, "finished": self.finished,
                "budget_s": ctx.budget_s, "elapsed_s": round(ctx.clock.elapsed(), 1), "machine": ctx.facts.get("machine", {}),
                "stages": list(self.stages.values()), "targets": targets}

    def flush(self) -> None:
        data = self.as_dict()
        write_atomic(self.ctx.results / "summary.json", (json.dumps(data, indent=1) + "\n").encode())
        write_atomic(self.ctx.results / "summary.md", render_markdown(data).encode())


def cell(value) -> str:
    return str(value).replace("|", "/").replace("\n", " ")


def render_markdown(data: dict) -> str:
    title = "# pytexsynth GPU validation" + (" (DRY RUN: nothing was built, run or timed)" if data["dry_run"] else "")
    machine = ", ".join(f"{k} {v}" for k, v in data["machine"].items()) or "unknown (setup did not run)"
    lines = [title, "", f"Started {data['started']}, finished {data['finished'] or '(still running or stopped)'}; "
             f"budget {data['budget_s']:.0f} s, elapsed {data['elapsed_s']:.0f} s.", "", f"Machine: {machine}.", "",
             "| stage | status | seconds | timeout s | key figures |", "|---|---|---|---|---|"]
    for s in data["stages"]:
        figures = "; ".join(f"{k}: {v}" for k, v in s["figures"].items())
        lines.append(f"| {s['name']} | {s['status']} | {s['duration_s'] if s['duration_s'] is not None else '-'} | "
                     f"{s['timeout_s'] or '-'} | {cell(figures) or '-'} |")
    lines += ["", "Performance targets (set for an H100; ratios are of medians, the compared implementation's "
              "over ours):", "", "| target | wanted | status | figure |", "|---|---|---|---|"]
    lines += [f"| {cell(t['name'])} | {cell(t['target'])} | {t['status']} | {cell(t['figure'])} |" for t in data["targets"]]
    lines += ["", "## Notes", ""]
    for s in data["stages"]:
        lines += [f"- **{s['name']}** ({s['what']}): {s['status']}"] + [f"  - {cell(n)}" for n in s["notes"]]
    lines += ["", f"Command: `{shlex.join(data['command'])}`", ""]
    return "\n".join(lines)


def skip_reason(ctx: Context, stage: Stage) -> str | None:
    if stage.needs_cuda and ctx.facts.get("cuda_blocker"):
        return ctx.facts["cuda_blocker"]
    if ctx.remaining() < stage.estimate_s:
        return f"budget: {max(0.0, ctx.remaining()):.0f} s of {ctx.budget_s:.0f} s left, needs about {stage.estimate_s:.0f} s"
    return None


def stage_timeout(ctx: Context, stage: Stage, later: list) -> float:
    """Its cap, less what the later stages need at least, never under its estimate nor over what is left."""
    reserved = sum(s.estimate_s for s in later)
    return min(stage.cap_s, max(stage.estimate_s, ctx.remaining() - reserved), ctx.remaining())


def run_stage(ctx: Context, stage: Stage, later: list, summary: Summary) -> str:
    reason = skip_reason(ctx, stage)
    if reason:
        summary.update(stage.name, status="skipped", notes=[reason])
        return "skipped"
    timeout, start, wall = stage_timeout(ctx, stage, later), ctx.clock.elapsed(), time.monotonic()
    ctx.stage_deadline, ctx.dry_run_problems = start + timeout, []
    summary.update(stage.name, status="running", timeout_s=round(timeout), started_at_s=round(start, 1))
    try:
        outcome = stage.run(ctx)
    except Exception as exc:  # noqa: BLE001 - recorded; the later stages still run
        outcome = Outcome("failed", notes=[f"driver error: {type(exc).__name__}: {exc}",
                                           *traceback.format_exc().splitlines()[-6:]])
    if ctx.dry_run:
        ctx.clock.advance(stage.estimate_s)
        if ctx.dry_run_problems:
            outcome = Outcome("failed", outcome.figures, outcome.notes + ctx.dry_run_problems)
    summary.update(stage.name, status=outcome.status, duration_s=round(ctx.clock.elapsed() - start, 1),
                   wall_s=round(time.monotonic() - wall, 1), figures=outcome.figures, notes=outcome.notes)
    return outcome.status


def run_stages(ctx: Context, stages: list, summary: Summary) -> list:
    statuses = []
    for i, stage in enumerate(stages):
        try:
            statuses.append(run_stage(ctx, stage, stages[i + 1:], summary))
        finally:
            bundle_logs(ctx.logs, ctx.results)
        s = summary.stages[stage.name]
        print(f"[validate] {stage.name}: {s['status']} ({s['duration_s']} s) {s['figures'] or ''}", flush=True)
    return statuses


def parse_args(argv, stage_names: list):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="folder for the results (created; at most 8 files are written)")
    p.add_argument("--budget", type=float, default=480.0, help="total seconds for every stage (default 480)")
    p.add_argument("--dry-run", action="store_true", help="check the stages' command lines, build or time nothing")
    p.add_argument("--stages", default=",".join(stage_names), help=f"comma-separated, of {','.join(stage_names)}")
    p.add_argument("--wheels", type=Path, default=ROOT / ".whl", help="folder of carried wheels (default .whl/)")
    p.add_argument("--site", type=Path, default=Path("/tmp/site"), help="where the wheels are installed")
    args = p.parse_args(argv)
    args.results, args.wheels, args.site = (path.resolve() for path in (args.results, args.wheels, args.site))
    unknown = set(args.stages.split(",")) - set(stage_names)
    if unknown:
        p.error(f"unknown stages: {', '.join(sorted(unknown))}")
    return args


def interrupted(signum, frame):  # noqa: ARG001 - SIGTERM: record the stop, as Ctrl-C would
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    names = [s.name for s in STAGES]
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv, names)
    args.results.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, interrupted)
    stages = [s for s in STAGES if s.name in args.stages.split(",")]
    with tempfile.TemporaryDirectory(prefix="pytexsynth-validate-") as scratch:
        ctx = Context(args, Path(scratch))
        summary = Summary(ctx, stages, ["benchmarks/gpu/validate.py", *argv])
        try:
            statuses = run_stages(ctx, stages, summary)
        except KeyboardInterrupt as exc:
            running = [s for s in summary.stages.values() if s["status"] == "running"]
            for s in running:
                s.update(status="interrupted", notes=s["notes"] + [f"stopped: {exc}"])
            statuses = ["interrupted"]
        summary.finished = now()
        summary.flush()
        bundle_logs(ctx.logs, ctx.results)
    print((args.results / "summary.md").read_text())
    problems = results_problems(args.results)
    for problem in problems:
        print(f"[validate] results folder: {problem}", file=sys.stderr)
    return 1 if problems or any(s in ("failed", "timeout", "interrupted") for s in statuses) else 0


if __name__ == "__main__":
    sys.exit(main())
