"""Turns one pytest-benchmark JSON run into a Markdown table of ratios reference / ours.

Usage: python benchmarks/report.py RUN.json [> RUN.md]

Benchmarks put "ours" and the implementation they are compared with in one group, with the
parameter `impl` naming each ("reference", or a peer such as "sort"). Ratios are of medians.
A benchmark that ran out of memory (see benchmarks/conftest.py) shows as OOM, not as a gap.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict


def _fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _median(b: dict | None) -> float | None:
    return b["stats"]["median"] if b and b.get("stats") else None


def _oom(b: dict | None) -> bool:
    return bool(b and b.get("extra_info", {}).get("oom"))


def _time_cell(b: dict | None) -> str:
    if _oom(b):
        return "OOM"
    t = _median(b)
    return _fmt_time(t) if t is not None else "-"


def _ratio_cell(ours: dict | None, other: dict | None) -> str:
    t_o, t_r = _median(ours), _median(other)
    if t_o and t_r is not None:
        return f"{t_r / t_o:.2f}x"
    if _oom(ours) and not _oom(other) and t_r is not None:
        return "ours OOM"
    if _oom(other) and t_o is not None:
        return "theirs OOM"
    return "-"


def _mem(b: dict | None) -> str:
    return str(b.get("extra_info", {}).get("peak_mem_mb", "-")) if b else "-"


def report(data: dict) -> str:
    """The Markdown table of one run. A benchmark that ran out of memory (extra_info "oom",
    no stats: see benchmarks/conftest.py) shows as OOM in its time cell, never disappears."""
    groups: "OrderedDict[str, dict]" = OrderedDict()
    for b in data["benchmarks"]:
        impl = (b.get("params") or {}).get("impl", b["name"])
        groups.setdefault(b["group"], {})[impl] = b
    machine = data.get("machine_info", {})
    devices = sorted({b.get("extra_info", {}).get("device", "?") for b in data["benchmarks"]})
    torch_versions = sorted({b.get("extra_info", {}).get("torch", "?") for b in data["benchmarks"]})
    lines = [
        f"Machine: {machine.get('node', '?')}, CPU {machine.get('cpu', {}).get('brand_raw', '?')}; "
        f"devices: {', '.join(devices)}; torch {', '.join(torch_versions)}; run {data.get('datetime', '?')}",
        "",
        "| benchmark | ours (median) | compared with | its median | ratio (theirs / ours) | peak MB ours / theirs |",
        "|---|---|---|---|---|---|",
    ]
    for group, impls in groups.items():
        ours = impls.get("ours")
        others = [(name, b) for name, b in impls.items() if name != "ours"] or [("-", None)]
        for name, other in others:
            lines.append(f"| {group} | {_time_cell(ours)} | {name} | {_time_cell(other)} | "
                         f"{_ratio_cell(ours, other)} | {_mem(ours)} / {_mem(other)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        print(report(json.load(f)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
