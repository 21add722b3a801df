"""The quality harness: pytexsynth's defaults against pastiche's, judged on the original VGG-19.

For each content/style pair (benchmarks/quality_inputs.py) it runs, as a user would, each as a
CLI command in its own process with the same thread count (OMP_NUM_THREADS and --threads):

- pastiche's CLI at its defaults with 100 L-BFGS steps (``pastiche -c C -s S -o O --size N
  --num-steps 100 --device cpu``);
- ``pytexsynth stylize C S -o O --size N`` at its defaults, and at a few other style strengths;

and scores every output with benchmarks/quality_metrics.py's judge: relative Gram error (mean
over relu1_1..relu5_1) against the style, relative relu4_2 content error against the content,
wall time and CPU time (of the child process: its own work, whatever else the machine runs).
For each texture exemplar it runs ``pytexsynth texture`` at its defaults with two seeds
(diversity) and with ``--tileable`` (seam score), beside the exemplar's own mirror and rotation
Gram errors ("another piece of the same texture").

Writes under --out a Markdown table per pair, a summary (README.md) and one contact sheet per
pair (content | style | pastiche | ours at defaults | ours at other strengths).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/quality.py [--quick] [--size 256] [--threads 1]

pytest-benchmark (the --quick subset, one round):
    PYTHONPATH=. python -m pytest benchmarks/quality.py --benchmark-enable -p no:cacheprovider
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality_inputs as qi  # noqa: E402
from quality_metrics import Judge, diversity, seam_score  # noqa: E402

ROOT = HERE.parent
STRENGTHS = (0.5, 2.0)  # besides the default (1): --style-strength values shown on each sheet
PASTICHE_STEPS = 100
# the targets of issue 14: Gram error at most pastiche's, content error at most pastiche's + 0.02,
# wall time at most 1/3 of pastiche's
CONTENT_SLACK, TIME_FRACTION = 0.02, 1 / 3


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        line = next(l for l in out.splitlines() if l.startswith("Model name:"))
        return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or platform.machine()


def timed_run(cmd: Sequence[str], threads: int) -> Dict[str, float]:
    """Runs a command with ``threads`` OpenMP threads; {"wall": s, "cpu": s of that child process}
    (its own rusage from wait4, right when runs overlap with --jobs)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read().decode()[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime}


CACHE = HERE / ".cache"  # pastiche's outputs and times, by command and input hashes (gitignored)


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def cached_run(cmd: Sequence[str], inputs: Sequence[Path], out: Path, threads: int,
               cache: Optional[Path]) -> Dict[str, float]:
    """timed_run(cmd), or, with a ``cache`` folder, the output and times saved there by an earlier
    run of the same command (the input files by content, the output path left out) at the same
    thread count and pastiche version: used while tuning our defaults, so that only ours re-runs."""
    if cache is None:
        return timed_run(cmd, threads)
    from importlib.metadata import version

    names = {str(p): f"<{_digest(p)}>" for p in inputs}
    key_parts = [names.get(a, a) for a in cmd if a != str(out)][1:]  # not the interpreter's path
    key = hashlib.sha256(json.dumps([key_parts, threads, version("pastiche")]).encode()).hexdigest()[:20]
    png, meta = cache / f"{key}.png", cache / f"{key}.json"
    if png.exists() and meta.exists():
        shutil.copyfile(png, out)
        return dict(json.loads(meta.read_text()), cached=True)
    t = timed_run(cmd, threads)
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, png)
    meta.write_text(json.dumps(dict(t, command=key_parts)))
    return t


def pastiche_cmd(content: Path, style: Path, out: Path, size: int) -> List[str]:
    return [sys.executable, "-m", "pastiche", "-c", str(content), "-s", str(style), "-o", str(out), "--size",
            str(size), "--num-steps", str(PASTICHE_STEPS), "--device", "cpu", "--seed", "0", "--no-verbose"]


def ours_cmd(command: str, inputs: Sequence[Path], out: Path, size: int, threads: int,
             extra: Sequence[str] = ()) -> List[str]:
    return [sys.executable, "-m", "pytexsynth", command, *map(str, inputs), "-o", str(out), "--size", str(size),
            "--threads", str(threads), "--device", "cpu", "--quiet", "--force", *extra]


def load(path: Path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def run_pair(judge: Judge, content: str, style: str, size: int, threads: int, work: Path,
             strengths: Sequence[float], cache: Optional[Path] = None, pastiche_only: bool = False) -> dict:
    """Every run of one pair: {"rows": [{name, gram, content, wall, cpu, image}], ...}."""
    files = qi.write_inputs([content, style], size, work / "inputs")
    c, s = files[content], files[style]
    runs = [("pastiche", None)] + [("ours, defaults", ())] + [
        (f"ours, --style-strength {v:g}", ("--style-strength", f"{v:g}")) for v in strengths]
    rows = []
    for name, extra in runs[:1] if pastiche_only else runs:
        out = work / f"{content}-{style}-{size}-{len(rows)}.png"
        if extra is None:
            t = cached_run(pastiche_cmd(c, s, out, size), [c, s], out, threads, cache)
        else:
            t = timed_run(ours_cmd("stylize", [c, s], out, size, threads, extra), threads)
        img = load(out)
        rows.append(dict(name=name, gram=judge.gram_error(img, load(s)), content=judge.content_error(img, load(c)),
                         image=out, **t))
        print(f"  {content} x {style}: {name}: Gram {rows[-1]['gram']:.3f}, content {rows[-1]['content']:.3f}, "
              f"{t['wall']:.1f} s wall, {t['cpu']:.1f} s CPU{' (cached)' if t.get('cached') else ''}", flush=True)
    if pastiche_only:
        return dict(content=content, style=style, size=size, rows=rows)
    ref = dict(name="the content image itself", gram=judge.gram_error(load(c), load(s)), content=0.0)
    return dict(content=content, style=style, size=size, rows=rows, reference=ref, content_path=c, style_path=s,
                targets=targets(rows[0], rows[1]))


def targets(p: dict, o: dict) -> Dict[str, bool]:
    """Which of issue 14's targets ours at defaults (``o``) meets against pastiche (``p``)."""
    return {"gram": o["gram"] <= p["gram"], "content": o["content"] <= p["content"] + CONTENT_SLACK,
            "wall": o["wall"] <= TIME_FRACTION * p["wall"], "cpu": o["cpu"] <= TIME_FRACTION * p["cpu"]}


def run_texture(judge: Judge, name: str, size: int, threads: int, work: Path) -> dict:
    """Two seeds and a tileable run of ``pytexsynth texture`` at defaults, and the exemplar's own scores."""
    import torch

    ex = qi.write_inputs([name], size, work / "inputs")[name]
    exemplar = load(ex)
    runs = [("seed 0", ("--seed", "0")), ("seed 1", ("--seed", "1")), ("seed 0, --tileable", ("--tileable",))]
    rows = []
    for label, extra in runs:
        out = work / f"texture-{name}-{size}-{len(rows)}.png"
        t = timed_run(ours_cmd("texture", [ex], out, size, threads, extra), threads)
        img = load(out)
        rows.append(dict(name=label, gram=judge.gram_error(img, exemplar), seam=seam_score(img), image=out, **t))
        print(f"  texture {name}: {label}: Gram {rows[-1]['gram']:.3f}, seam {rows[-1]['seam']:.2f}, "
              f"{t['wall']:.1f} s wall", flush=True)
    x = torch.from_numpy(__import__("numpy").asarray(exemplar)).permute(2, 0, 1)[None].float() / 255
    own = {"mirror": judge.gram_error(x.flip(-1), x), "rotation": judge.gram_error(x.rot90(1, (2, 3)), x)}
    return dict(name=name, size=size, rows=rows, own=own, exemplar=ex, exemplar_seam=seam_score(x),
                diversity=diversity(load(rows[0]["image"]), load(rows[1]["image"])))


def contact_sheet(tiles: Sequence[tuple], path: Path, tile: int) -> None:
    """One row of (label, image path) tiles, each ``tile`` px, labels above."""
    from PIL import Image, ImageDraw

    band = 18
    sheet = Image.new("RGB", (tile * len(tiles), tile + band), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, p) in enumerate(tiles):
        im = load(p)
        if im.size != (tile, tile):
            im = im.resize((tile, tile), Image.LANCZOS)
        sheet.paste(im, (i * tile, band))
        draw.text((i * tile + 4, 3), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def tiled(path: Path, work: Path) -> Path:
    """A 2x2 tiling of the image (its seams in the middle), at the image's size."""
    from PIL import Image

    im = load(path)
    w, h = im.size
    big = Image.new("RGB", (2 * w, 2 * h))
    for dx in (0, w):
        for dy in (0, h):
            big.paste(im, (dx, dy))
    out = work / (path.stem + "-2x2.png")
    big.resize((w, h), Image.LANCZOS).save(out)
    return out


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def pair_table(r: dict) -> str:
    p = r["rows"][0]
    lines = [f"### {r['content']} x {r['style']}, {r['size']} px", "",
             "| run | Gram error | content error | wall s | CPU s | wall / pastiche's |", "|---|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['name']} | {row['gram']:.3f} | {row['content']:.3f} | {row['wall']:.1f} | "
                     f"{row['cpu']:.1f} | {row['wall'] / p['wall']:.2f} |")
    ref = r["reference"]
    lines.append(f"| ({ref['name']}) | {ref['gram']:.3f} | 0 | | | |")
    t = r["targets"]
    lines += ["", f"Targets at defaults: Gram <= pastiche's: {_yes(t['gram'])}; content <= pastiche's + "
                  f"{CONTENT_SLACK}: {_yes(t['content'])}; wall <= 1/3 of pastiche's: {_yes(t['wall'])} "
                  f"(CPU time: {_yes(t['cpu'])}).", "",
              f"![{r['content']} x {r['style']}]({r['sheet'].name})", ""]
    return "\n".join(lines)


def texture_table(r: dict) -> str:
    own = r["own"]
    lines = [f"### texture {r['name']}, {r['size']} px", "",
             "| run | Gram error | seam score | wall s | CPU s |", "|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['name']} | {row['gram']:.3f} | {row['seam']:.2f} | {row['wall']:.1f} | {row['cpu']:.1f} |")
    lines += [f"| (the exemplar mirrored / rotated 90 degrees) | {own['mirror']:.3f} / {own['rotation']:.3f} | "
              f"{r['exemplar_seam']:.2f} (exemplar) | | |", "",
              f"Diversity (mean absolute difference of seeds 0 and 1, 0..1): {r['diversity']:.3f}. "
              f"Gram error at defaults <= the exemplar's mirror / rotation score: "
              f"{_yes(r['rows'][0]['gram'] <= own['mirror'])} / {_yes(r['rows'][0]['gram'] <= own['rotation'])}.",
              "", f"![texture {r['name']}]({r['sheet'].name})", ""]
    return "\n".join(lines)


def summary(pairs: List[dict], textures: List[dict]) -> str:
    lines = ["| pair | pastiche Gram / content / wall s | ours Gram / content / wall s | wall ratio | "
             "targets met (Gram, content, time) |", "|---|---|---|---|---|"]
    for r in pairs:
        p, o = r["rows"][0], r["rows"][1]
        t = r["targets"]
        lines.append(f"| {r['content']} x {r['style']} | {p['gram']:.3f} / {p['content']:.3f} / {p['wall']:.1f} | "
                     f"{o['gram']:.3f} / {o['content']:.3f} / {o['wall']:.1f} | {o['wall'] / p['wall']:.2f} | "
                     f"{_yes(t['gram'])}, {_yes(t['content'])}, {_yes(t['wall'])} |")
    met = all(all(r["targets"][k] for k in ("gram", "content", "wall")) for r in pairs)
    tex_ok = all(r["rows"][0]["gram"] <= max(r["own"].values()) for r in textures)
    lines += ["", f"Every pair meets every target: {_yes(met)}. Every texture's Gram error at defaults is at most "
                  f"the larger of its exemplar's mirror and rotation scores: {_yes(tex_ok)}."]
    return "\n".join(lines)


def command_line(argv: Sequence[str]) -> str:
    return ("OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/quality.py " + " ".join(argv)).strip()


def write_report(pairs, textures, out: Path, cmd: str, threads: int, seconds: float) -> Path:
    load1 = os.getloadavg()[0]
    text = "\n".join([
        "# Quality harness: pytexsynth's defaults vs pastiche's", "",
        f"Command: `{cmd}` ({seconds / 60:.1f} min). CPU: {cpu_name()}; {threads} thread(s) for every "
        f"run; 1-minute load average at the end {load1:.2f} (the machine is shared: wall times carry that load, "
        "CPU times are each process's own work).", "",
        "Judge: benchmarks/quality_metrics.py on the original VGG-19 (pastiche's weights, plain PyTorch "
        "convolutions): Gram error = mean over relu1_1..relu5_1 of ||G(out)-G(style)||_F / ||G(style)||_F "
        "(G = F F^T / HW); content error = ||F(out)-F(content)|| / ||F(content)|| at relu4_2. Lower is better. "
        f"pastiche {PASTICHE_STEPS} L-BFGS steps at its defaults; ours `pytexsynth stylize` at its defaults.", "",
        *([f"pastiche's outputs and times for {cached} of {len(pairs)} pairs came from the cache (--cache: "
           "run earlier on this machine, same command, inputs, threads and pastiche version), not from this run.", ""]
          if (cached := sum(bool(r["rows"][0].get("cached")) for r in pairs)) else []),
        "## Summary", "", summary(pairs, textures), "", "## Pairs", "",
        *[pair_table(r) for r in pairs], "## Textures", "", *[texture_table(r) for r in textures]])
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text(text + "\n")
    return out / "README.md"


def save_result(r: dict, out: Path) -> None:
    """One pair's or texture's results as OUT/runs/<sheet name>.json (paths as strings)."""
    folder = out / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (r["sheet"].stem + ".json")).write_text(json.dumps(r, default=str, indent=1))


def report_from_runs(out: Path, size: int, argv) -> dict:
    """The report from the saved results of ``size`` (pairs in quality_inputs' order)."""
    runs = {}
    for f in sorted((out / "runs").glob(f"*-{size}.json")):
        r = json.loads(f.read_text())
        r["sheet"] = Path(r["sheet"])
        runs[r["sheet"].stem] = r
    pairs = [runs[k] for k in (f"{c}-{s}-{size}" for c, s in qi.PAIRS) if k in runs]
    textures = [runs[k] for k in (f"texture-{n}-{size}" for n in qi.TEXTURES) if k in runs]
    first = (pairs + textures)[0]
    report = write_report(pairs, textures, out, first["command"], first["threads"],
                          max(r["seconds"] for r in pairs + textures))
    print(report.read_text())
    return dict(pairs=pairs, textures=textures)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"{len(qi.QUICK_PAIRS)} pairs and "
                   f"{len(qi.QUICK_TEXTURES)} texture instead of {len(qi.PAIRS)} and {len(qi.TEXTURES)}")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "docs" / "quality"))
    p.add_argument("--strengths", type=float, nargs="*", default=list(STRENGTHS))
    p.add_argument("--jobs", type=int, default=1,
                   help="pairs and textures run at once (each its runs in turn, so a pair's times stay one run's)")
    p.add_argument("--report-only", action="store_true",
                   help="no runs: the report from the results saved under OUT/runs/ (each pair's and texture's, "
                        "written as it finishes)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="run only these pairs (CONTENT-STYLE) and textures (NAME) of the chosen set")
    p.add_argument("--cache", action="store_true",
                   help=f"reuse pastiche's outputs and times from {CACHE.relative_to(ROOT)}/ (same command, inputs, "
                        "threads and pastiche version), run and store them there if absent: for tuning; the committed "
                        "tables run pastiche afresh in the same run as ours")
    p.add_argument("--pastiche-only", action="store_true",
                   help="with --cache: only fill the cache with pastiche's runs (no report)")
    args = p.parse_args(argv)
    cache = CACHE if args.cache else None
    if args.pastiche_only and cache is None:
        p.error("--pastiche-only needs --cache")
    if args.report_only:
        return report_from_runs(Path(args.out), args.size, argv)
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)  # the judge's own VGG runs
    judge, out = Judge(), Path(args.out)
    cmd = command_line(argv if argv is not None else sys.argv[1:])

    def save_run(r):  # with what the report needs to be written again by --report-only
        save_result(dict(r, command=cmd, threads=args.threads, seconds=time.perf_counter() - t0), out)
    pairs_in = qi.QUICK_PAIRS if args.quick else qi.PAIRS
    textures_in = qi.QUICK_TEXTURES if args.quick else qi.TEXTURES
    if args.only is not None:
        pairs_in = [cs for cs in pairs_in if "-".join(cs) in args.only]
        textures_in = [n for n in textures_in if n in args.only]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max(1, args.jobs)) as pool:
        work = Path(tmp)
        qi.write_inputs([n for pair in pairs_in for n in pair] + list(textures_in), args.size, work / "inputs")

        def pair(cs):
            r = run_pair(judge, cs[0], cs[1], args.size, args.threads, work, args.strengths, cache, args.pastiche_only)
            if args.pastiche_only:
                return r
            r["sheet"] = out / f"{cs[0]}-{cs[1]}-{args.size}.png"
            contact_sheet([("content", r["content_path"]), ("style", r["style_path"])]
                          + [(row["name"].replace("--style-strength", "strength"), row["image"]) for row in r["rows"]],
                          r["sheet"], args.size)
            save_run(r)
            return r

        def texture(name):
            r = run_texture(judge, name, args.size, args.threads, work)
            r["sheet"] = out / f"texture-{name}-{args.size}.png"
            contact_sheet([("exemplar", r["exemplar"])] + [(row["name"], row["image"]) for row in r["rows"]]
                          + [("tileable, 2x2 tiled", tiled(r["rows"][2]["image"], work))], r["sheet"], args.size)
            save_run(r)
            return r

        pair_runs = [pool.submit(pair, cs) for cs in pairs_in]
        if args.pastiche_only:
            return dict(pairs=[f.result() for f in pair_runs], textures=[])
        texture_runs = [pool.submit(texture, n) for n in textures_in]
        pairs, textures = [f.result() for f in pair_runs], [f.result() for f in texture_runs]
        report = write_report(pairs, textures, out, cmd, args.threads, time.perf_counter() - t0)
    print(report.read_text())
    return dict(pairs=pairs, textures=textures)


def test_quality_quick(benchmark, tmp_path):
    """The --quick subset at 128 px as one benchmark round (its table in tmp_path)."""
    result = benchmark.pedantic(run, args=(["--quick", "--size", "128", "--out", str(tmp_path)],), rounds=1,
                                iterations=1)
    for r in result["pairs"]:
        benchmark.extra_info[f"{r['content']}x{r['style']}"] = {
            k: round(r["rows"][i][m], 3) for i, k0 in ((0, "pastiche"), (1, "ours")) for m in ("gram", "content", "wall")
            for k in [f"{k0}_{m}"]}
    assert (tmp_path / "README.md").is_file()


if __name__ == "__main__":
    run()
