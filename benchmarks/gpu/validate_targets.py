"""The project's CUDA performance targets, judged from one run's merged benchmark JSON (the
groups and ``impl`` names of benchmarks/bench_*.py, as benchmarks/report.py reads them) and
from benchmarks/gpu/e2e_timings.py's JSON: each met, not met, or unmeasured, with its figure.

Ratios are of medians, the compared implementation's over ours (above 1: ours is faster). The
targets were set for an H100; ``device`` names the run's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

MET, NOT_MET, UNMEASURED = "met", "not met", "unmeasured"


def load_json(path) -> dict | None:
    try:
        return json.loads(Path(path).read_text()) if path else None
    except (OSError, ValueError):
        return None


def median(row: dict | None) -> float | None:
    return row["stats"]["median"] if row and row.get("stats") else None


def groups(bench: dict | None) -> dict:
    """group -> {impl: row} of a pytest-benchmark JSON (rows without stats kept: OOM)."""
    out: dict = {}
    for row in (bench or {}).get("benchmarks", []):
        impl = (row.get("params") or {}).get("impl", row.get("name"))
        out.setdefault(row.get("group"), {})[impl] = row
    return out


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.2f} s"


def row(name: str, target: str, status: str, figure: str) -> dict:
    return {"name": name, "target": target, "status": status, "figure": figure}


def ratio_target(by_group: dict, name: str, group: str, min_ratio: float) -> dict:
    """ours vs "reference" in ``group``: met when reference / ours >= min_ratio."""
    target = f">= {min_ratio:g}x"
    impls = by_group.get(group, {})
    ours, ref = median(impls.get("ours")), median(impls.get("reference"))
    if ours is None or ref is None:
        oom = [k for k, v in impls.items() if (v.get("extra_info") or {}).get("oom")]
        why = f"OOM: {', '.join(oom)}" if oom else "no benchmark row"
        return row(name, target, UNMEASURED, f"{why} ({group})")
    ratio = ref / ours
    return row(name, target, MET if ratio >= min_ratio else NOT_MET,
               f"{ratio:.2f}x (ours {fmt_time(ours)}, reference {fmt_time(ref)})")


def histogram_target(by_group: dict, device: str) -> dict:
    """The five layers at 512 px: the "all layers" group, else the sum of the per-layer medians."""
    name, target = "histogram_loss fwd+bwd, 512 px relu1_1..relu5_1, vs the vectorised reference", ">= 5x"
    whole = f"histogram_loss forward_backward {device} 512px all layers relu1_1..relu5_1 float32"
    if whole in by_group:
        return ratio_target(by_group, name, whole, 5.0)
    pattern = re.compile(rf"histogram_loss forward_backward {re.escape(device)} 512px relu\d_1 ")
    layers = [impls for g, impls in by_group.items() if pattern.match(g or "")]
    sums = {impl: [median(layer.get(impl)) for layer in layers] for impl in ("ours", "reference")}
    if len(layers) != 5 or any(None in v for v in sums.values()):
        return row(name, target, UNMEASURED, "no benchmark rows for the five layers")
    ours, ref = sum(sums["ours"]), sum(sums["reference"])
    ratio = ref / ours
    return row(name, target, MET if ratio >= 5.0 else NOT_MET,
               f"{ratio:.2f}x (sum of per-layer medians: ours {fmt_time(ours)}, reference {fmt_time(ref)})")


def style_swap_target(by_group: dict, device: str) -> dict:
    """At 1024 px if both were timed there, else at the largest size where both were."""
    name, target = "style_swap relu3_1 vs conv2d/argmax/one-hot reference", ">= 5x and peak memory <= 1/20"
    pattern = re.compile(rf"style_swap relu3_1 {re.escape(device)} (\d+)px C=256 float32$")
    timed = {}
    for g, impls in by_group.items():
        m = pattern.match(g or "")
        if m and median(impls.get("ours")) is not None and median(impls.get("reference")) is not None:
            timed[int(m.group(1))] = impls
    if not timed:
        return row(name, target, UNMEASURED, "no size where both were timed")
    px = 1024 if 1024 in timed else max(timed)
    ours, ref = timed[px]["ours"], timed[px]["reference"]
    ratio = median(ref) / median(ours)
    mem_ours, mem_ref = ((r.get("extra_info") or {}).get("peak_mem_mb") for r in (ours, ref))
    figure = f"{px} px: {ratio:.2f}x"
    if not mem_ours or not mem_ref:
        return row(name, target, NOT_MET if ratio < 5 else UNMEASURED, figure + ", peak memory not recorded")
    share = mem_ours / mem_ref
    figure += f", peak {mem_ours:.0f} / {mem_ref:.0f} MB = 1/{1 / share:.0f}" if share > 0 else ", peak 0 MB"
    return row(name, target, MET if ratio >= 5 and share <= 1 / 20 else NOT_MET, figure)


def e2e_part(e2e: dict | None, part: str) -> dict | None:
    """A part of e2e.json measured at full size on a GPU (None for a CPU or --smoke run)."""
    if not e2e or e2e.get("smoke") or e2e.get("device", "cpu") == "cpu":
        return None
    got = (e2e.get("parts") or {}).get(part)
    return got if got and got.get("status") == "ok" else None


def gatys_target(e2e: dict | None) -> dict:
    name, target = "Gatys style transfer, 512 px x 500 iterations, no pyramid (whole call)", "< 3 s"
    got = e2e_part(e2e, "gatys")
    if not got or got.get("size") != 512 or got.get("iterations") != 500:
        return row(name, target, UNMEASURED, "no full-size GPU run in e2e.json")
    return row(name, target, MET if got["seconds"] < 3 else NOT_MET,
               f"{got['seconds']:.2f} s ({got.get('per_iteration_ms')} ms per iteration after set-up)")


def one_pass_target(e2e: dict | None) -> dict:
    name, target = "style-swap transfer, one pass, 1024 px (README)", "< 50 ms and < 4 GB"
    got = e2e_part(e2e, "style_swap")
    if not got or got.get("size") != 1024 or got.get("peak_mb") is None:
        return row(name, target, UNMEASURED, "no full-size GPU run in e2e.json")
    ok = got["ms"] < 50 and got["peak_mb"] < 4096
    return row(name, target, MET if ok else NOT_MET, f"{got['ms']:.1f} ms, peak {got['peak_mb']:.0f} MB")


def evaluate(bench_path=None, e2e_path=None, device: str = "cuda") -> list:
    """Every target's row: name, target, status (met / not met / unmeasured) and figure."""
    by_group, e2e = groups(load_json(bench_path)), load_json(e2e_path)
    return [
        ratio_target(by_group, "circular_pad2d fwd+bwd, 16x48x256x256 pad 1, vs F.pad(mode='circular')",
                     f"circular_pad2d forward_backward {device} 16x48x256x256-p1 float32", 4.0),
        ratio_target(by_group, "gram_loss fwd+bwd, 512 px relu1_1..relu5_1, vs bmm + mse_loss, fp32 vs fp32",
                     f"gram_loss fwd+bwd relu1_1..relu5_1 {device} 512px fp32 vs fp32", 4.0),
        histogram_target(by_group, device),
        style_swap_target(by_group, device),
        gatys_target(e2e),
        one_pass_target(e2e),
    ]
