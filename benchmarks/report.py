"""Turns one pytest-benchmark JSON run into a Markdown table of ratios reference / ours.

Usage: python benchmarks/report.py RUN.json [> RUN.md]

Benchmarks put "ours" and the implementation they are compared with in one group, with the
parameter `impl` naming each ("reference", or a peer such as "sort"). Ratios are of medians.
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


def report(data: dict) -> str:
    groups: "OrderedDict[str, dict]" = OrderedDict()
    for b in data["benchmarks"]:
        impl = b["params"].get("impl", b["name"])
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
        for name, other in impls.items():
            if name == "ours":
                continue
            t_o = ours["stats"]["median"] if ours else None
            t_r = other["stats"]["median"]
            mem = lambda b: b.get("extra_info", {}).get("peak_mem_mb", "-") if b else "-"  # noqa: E731
            lines.append(
                f"| {group} | {_fmt_time(t_o) if t_o else '-'} | {name} | {_fmt_time(t_r)} | "
                f"{(t_r / t_o):.2f}x | {mem(ours)} / {mem(other)} |" if t_o else
                f"| {group} | - | {name} | {_fmt_time(t_r)} | - | - |"
            )
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
