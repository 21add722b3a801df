"""Tuning runs for the defaults (docs/quality/tuning.md): ``transfer_style`` (or
``synthesize_texture``) in-process at candidate settings on the harness's pairs, against pastiche's
outputs from the harness's cache (benchmarks/quality.py --cache: run there once per pair and size).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/quality.py --cache --pastiche-only --size 256
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/tune_defaults.py --size 256 \\
        --config "w=4 it=20,20,40" --config "w=5 it=20,20,40 tol=0.005" [--only chelsea-coffee] [--save DIR]
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/tune_defaults.py --textures --config "it=40,40,60"

A config is space-separated key=value: w (style weight), it (L-BFGS evaluations per level,
coarse to fine), tol (stop_tol), init (content or noise),
min (the pyramid's min_side), cl (content layers, comma-separated). CPU seconds are this process's own
(time.process_time, one thread), without the CLI's start-up (about 5-6 s: importing torch).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality as q  # noqa: E402
import quality_inputs as qi  # noqa: E402
from quality_metrics import Judge  # noqa: E402


def parse(config: str) -> dict:
    kw = {}
    for item in config.split():
        k, v = item.split("=", 1)
        if k == "w":
            kw["style_weight"] = float(v)
        elif k == "it":
            kw["iterations"] = [int(x) for x in v.split(",")]
        elif k == "tol":
            kw["stop_tol"] = float(v)
        elif k == "init":
            kw["init"] = v
        elif k == "min":
            kw["min_side"] = int(v)
        elif k == "cl":
            kw["content_layers"] = tuple(v.split(","))
        else:
            raise SystemExit(f"unknown key {k!r} in {config!r}")
    return kw


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--config", action="append", required=True)
    p.add_argument("--only", nargs="+", default=None)
    p.add_argument("--extra", nargs="+", default=[], metavar="CONTENT-STYLE",
                   help="pairs of quality_inputs' images beyond the harness's (astronaut-coffee)")
    p.add_argument("--textures", action="store_true", help="the harness's texture exemplars instead of the pairs")
    p.add_argument("--save", default=None, help="write each output PNG here")
    args = p.parse_args()
    import torch

    from pytexsynth import synthesize_texture, transfer_style

    torch.set_num_threads(1)
    judge = Judge()
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.textures:
            names = [n for n in qi.TEXTURES if args.only is None or n in args.only]
            for name in names:
                x = q.load(qi.write_inputs([name], args.size, work)[name])
                t = torch.from_numpy(__import__("numpy").asarray(x)).permute(2, 0, 1)[None].float() / 255
                mirror, rot = judge.gram_error(t.flip(-1), t), judge.gram_error(t.rot90(1, (2, 3)), t)
                for config in args.config:
                    t0 = time.process_time()
                    out = synthesize_texture(t, args.size, device="cpu", seed=0, **parse(config))
                    cpu = time.process_time() - t0
                    g = judge.gram_error(out, t)
                    print(f"{name:8s} [{config}] Gram {g:.3f} (mirror {mirror:.3f}, rotation {rot:.3f}) "
                          f"{'ok' if g <= mirror else 'OVER'}, {cpu:.1f} s CPU", flush=True)
                    if save:
                        _save(out, save / f"texture-{name}-{args.size}-{config.replace(' ', '_')}.png")
            return
        pairs = [cs for cs in qi.PAIRS if args.only is None or "-".join(cs) in args.only]
        pairs += [tuple(e.split("-")) for e in args.extra]
        for c_name, s_name in pairs:
            files = qi.write_inputs([c_name, s_name], args.size, work / "inputs")
            c, s = files[c_name], files[s_name]
            out = work / "pastiche.png"
            cimg, simg = q.load(c), q.load(s)
            if (c_name, s_name) in qi.PAIRS:
                pt = q.cached_run(q.pastiche_cmd(c, s, out, args.size), [c, s], out, 1, q.CACHE)
                pimg = q.load(out)
                pg, pc = judge.gram_error(pimg, simg), judge.content_error(pimg, cimg)
                print(f"{c_name} x {s_name}: pastiche Gram {pg:.3f} content {pc:.3f} CPU {pt['cpu']:.1f} s "
                      f"(1/3: {pt['cpu'] / 3:.1f}; content image's own Gram {judge.gram_error(cimg, simg):.3f})",
                      flush=True)
                if save:
                    out.replace(save / f"{c_name}-{s_name}-{args.size}-pastiche.png")
            else:  # an extra pair: ours only (to look at)
                pg, pc, pt = float("inf"), float("inf"), dict(cpu=float("inf"))
                print(f"{c_name} x {s_name} (no pastiche run)", flush=True)
            for config in args.config:
                t0 = time.process_time()
                img = transfer_style(str(c), str(s), args.size, device="cpu", **parse(config))
                cpu = time.process_time() - t0
                g, ce = judge.gram_error(img, simg), judge.content_error(img, cimg)
                ok = g <= pg and ce <= pc + q.CONTENT_SLACK
                print(f"    [{config}] Gram {g:.3f} content {ce:.3f} CPU {cpu:.1f} s (+~5.5 start-up: "
                      f"{(cpu + 5.5) / pt['cpu']:.2f} of pastiche's) {'ok' if ok else 'FAIL'}", flush=True)
                if save:
                    _save(img, save / f"{c_name}-{s_name}-{args.size}-{config.replace(' ', '_').replace('=', '')}.png")


def _save(img, path: Path) -> None:
    from pytexsynth.io import save_image

    save_image(img, str(path))


if __name__ == "__main__":
    main()
