"""benchmarks/report.py and the OOM rows of benchmarks/conftest.py: a benchmark that ran out of
memory shows in the table as OOM instead of vanishing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

pytest_plugins = ["pytester"]

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _report_module():
    spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _row(group, impl, median=None, oom=False):
    extra = {"device": "cpu x1", "torch": "t"}
    if oom:
        extra["oom"] = True
    return {"group": group, "name": f"test[{impl}]", "params": {"impl": impl}, "extra_info": extra,
            "stats": {"median": median} if median is not None else None}


def test_report_shows_oom_rows():
    data = {"benchmarks": [
        _row("g1", "ours", 0.5), _row("g1", "reference", 1.0),
        _row("g2", "ours", 0.25), _row("g2", "reference", oom=True),
        _row("g3", "ours", oom=True), _row("g3", "reference", 2.0),
        _row("g4", "ours", oom=True),
    ]}
    lines = {line.split(" | ")[0].lstrip("| "): line for line in _report_module().report(data).splitlines()
             if line.startswith("| g")}
    assert "| 500.00 ms | reference | 1.00 s | 2.00x |" in lines["g1"]
    assert "| 250.00 ms | reference | OOM | theirs OOM |" in lines["g2"]
    assert "| OOM | reference | 2.00 s | ours OOM |" in lines["g3"]
    assert "| OOM | - | - | - |" in lines["g4"]


def test_oom_benchmark_reaches_the_json_and_the_table(pytester):
    # The real conftest hooks on a benchmark that raises OutOfMemoryError in its warm-up.
    pytester.makeconftest((BENCH / "conftest.py").read_text())
    pytester.makepyfile(test_oom_bench="""
        import pytest, torch
        from conftest import run_benchmark

        @pytest.mark.parametrize("impl", ["ours", "reference"])
        def test_case(benchmark, impl):
            benchmark.group = "demo"
            def fn():
                if impl == "reference":
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 33 GiB")
                return sum(range(100))
            try:
                run_benchmark(benchmark, "cpu", fn, rounds=2)
            except torch.OutOfMemoryError as exc:
                benchmark.extra_info["oom"] = True
                pytest.skip(f"OOM: {exc}")
    """)
    out = pytester.path / "run.json"
    result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-enable", f"--benchmark-json={out}")
    result.assert_outcomes(passed=1, skipped=1)
    data = json.loads(out.read_text())
    rows = {b["params"]["impl"]: b for b in data["benchmarks"]}
    assert rows["reference"]["stats"] is None and rows["reference"]["extra_info"]["oom"] is True
    assert {"device", "torch"} <= set(rows["reference"]["extra_info"])  # recorded before the warm-up
    assert rows["ours"]["stats"]["median"] > 0
    table = _report_module().report(data)
    assert "| demo |" in table and "| reference | OOM | theirs OOM |" in table
