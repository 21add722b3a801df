"""Calls every pytexsynth op forward and backward once on one device, on small shapes that are
not multiples of any tile size, and checks each against pytexsynth.reference: the workload that
compute-sanitizer runs in benchmarks/gpu/validate.py (memcheck on every op, racecheck on the
kernels that use shared memory: gram, histogram, style_swap).

    python benchmarks/gpu/sanitize_ops.py [--device cuda] [--ops circular_pad,gram,...]

Prints one line per check ("ok NAME" or "FAIL NAME: why") and a last line "checks: N ok, M
failed"; exit status 1 when any check failed or a CUDA op fell back to the reference.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

if __name__ == "__main__":  # run as a script from the checkout: import its pytexsynth
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pytexsynth import ops, reference  # noqa: E402

GROUPS = ("circular_pad", "gram", "histogram", "style_swap", "winograd")


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-3) -> None:
    """Relative error ||a - e|| / ||e|| under rtol (float64 norms); finite; same shape."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.detach().double(), expected.detach().double()
    assert torch.isfinite(a).all(), "non-finite values"
    err = float((a - e).norm() / e.norm().clamp_min(1e-30))
    assert err < rtol, f"relative error {err:.3g} >= {rtol}"


def grad_of(fn, *inputs: torch.Tensor, seed: int = 1):
    """Gradients of sum(fn(*inputs) * g) to inputs, g a fixed random cotangent."""
    out = fn(*inputs)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out)
    return torch.autograd.grad(out, inputs, g)


def leaf(shape, device, dtype=torch.float32, relu=False):
    x = torch.randn(shape, dtype=torch.float32)
    x = x.relu() if relu else x
    return x.to(device=device, dtype=dtype).requires_grad_()


def circular_pad_checks(device):
    x = leaf((2, 3, 7, 9), device)
    pad = (2, 1, 3, 1)
    yield "circular_pad2d forward fp32", lambda: close(ops.circular_pad2d(x, pad), F.pad(x, pad, mode="circular"))
    yield "circular_pad2d backward fp32", lambda: close(
        grad_of(lambda t: ops.circular_pad2d(t, pad), x)[0], grad_of(lambda t: F.pad(t, pad, mode="circular"), x)[0])
    h = leaf((2, 5, 6, 11), device, torch.float16).detach().contiguous(memory_format=torch.channels_last)
    h.requires_grad_()
    yield "circular_pad2d fwd+bwd fp16 channels_last", lambda: close(
        grad_of(lambda t: ops.circular_pad2d(t, (1, 1, 1, 1)), h)[0].float(),
        grad_of(lambda t: reference.circular_pad2d(t.float(), (1, 1, 1, 1)), h)[0].float())


def gram_checks(device):
    x = leaf((2, 130, 9, 7), device, relu=True)  # C = 130: two tiles of 128 per side, ragged
    y = leaf((1, 67, 5, 13), device, relu=True)
    tx = reference.gram(torch.randn(2, 130, 9, 7).relu().to(device))
    ty = reference.gram(torch.randn(1, 67, 5, 13).relu().to(device))[0]
    yield "gram forward ieee", lambda: close(ops.gram(x), reference.gram(x))
    yield "gram forward tf32", lambda: close(ops.gram(x, "hw", "tf32"), reference.gram(x), rtol=1e-2)
    yield "gram_loss forward+backward", lambda: close(
        grad_of(lambda t: ops.gram_loss(t, tx, 0.5).reshape(1), x)[0],
        grad_of(lambda t: reference.gram_loss_unfused(t, tx, 0.5).reshape(1), x)[0])
    yield "gram_loss_multi forward+backward", lambda: [close(a, b) for a, b in zip(
        grad_of(lambda a, b: ops.gram_loss_multi([a, b], [tx, ty], [1.0, 0.25]).reshape(1), x, y),
        grad_of(lambda a, b: (reference.gram_loss_unfused(a, tx, 1.0) + reference.gram_loss_unfused(b, ty, 0.25))
                .reshape(1), x, y))]


def histogram_checks(device):
    style = torch.randn(2, 5, 17, 19).relu().to(device)
    x = leaf((2, 5, 13, 11), device, relu=True)
    for bins in (256, 7):
        stats = ops.histogram_stats(style, bins)
        yield f"histogram_stats bins={bins}", lambda s=stats: close(s.cdf[:, -1], torch.ones_like(s.cdf[:, -1]))
        yield f"histogram_match bins={bins}", lambda s=stats: close(
            ops.histogram_match(x.detach(), s), reference.histogram_match(x.detach(), s))
        yield f"histogram_loss forward+backward bins={bins}", lambda s=stats: close(
            grad_of(lambda t: ops.histogram_loss(t, s, 2.0).reshape(1), x)[0],
            grad_of(lambda t: reference.histogram_loss(t, s, 2.0).reshape(1), x)[0])


def style_swap_checks(device):
    content = torch.randn(1, 8, 9, 11).relu().to(device)
    style = leaf((1, 8, 7, 6), device, relu=True)
    yield "style_swap forward ieee", lambda: close(ops.style_swap(content, style), reference.style_swap(content, style))
    yield "style_swap forward tf32 + indices", lambda: ops.style_swap(content, style, 3, 1, "tf32", True)
    yield "style_swap stride 2", lambda: close(ops.style_swap(content, style, 3, 2),
                                               reference.style_swap(content, style, 3, 2))
    yield "style_swap backward (to style)", lambda: close(
        grad_of(lambda s: ops.style_swap(content, s), style)[0],
        grad_of(lambda s: reference.style_swap(content, s), style)[0])


def winograd_checks(device):
    x = leaf((1, 5, 10, 9), device)
    w = leaf((7, 5, 3, 3), device)
    b = torch.randn(7).to(device)
    yield "winograd_weight", lambda: close(ops.winograd_weight(w), reference.winograd_weight(w))
    yield "winograd_conv3x3 forward", lambda: close(
        ops.winograd_conv3x3(x, ops.winograd_weight(w), b), F.conv2d(x, w, b, padding=1))
    yield "winograd_conv3x3 backward (x, w)", lambda: [close(a, r) for a, r in zip(
        grad_of(lambda t, v: ops.winograd_conv3x3(t, ops.winograd_weight(v), b), x, w),
        grad_of(lambda t, v: F.conv2d(t, v, b, padding=1), x, w))]


CHECKS = {"circular_pad": circular_pad_checks, "gram": gram_checks, "histogram": histogram_checks,
          "style_swap": style_swap_checks, "winograd": winograd_checks}


def guarded(group: str, device: str):
    """The checks of ``group``; an error while making their inputs is one failing check."""
    try:
        yield from CHECKS[group](device)
    except Exception as exc:  # noqa: BLE001
        def fail(exc=exc):
            raise exc
        yield f"{group} inputs", fail


def run_checks(device: str, groups=GROUPS, out=sys.stdout) -> tuple:
    """Runs the checks of ``groups`` on ``device``; returns (ok, failed) counts. On CUDA a build
    without CUDA kernels, or an op falling back to the reference (its warning), is a failure:
    the kernels are what is being checked."""
    import pytexsynth

    if device.startswith("cuda") and not pytexsynth.has_cuda():
        print("FAIL all: pytexsynth was built without CUDA kernels", file=out, flush=True)
        return 0, 1
    ok = failed = 0
    for group in groups:
        for name, check in guarded(group, device):
            try:
                with warnings.catch_warnings():
                    warnings.filterwarnings("error", message="pytexsynth:", category=RuntimeWarning)
                    check()
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                ok += 1
                print(f"ok {name}", file=out, flush=True)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, the rest still run
                failed += 1
                where = traceback.extract_tb(exc.__traceback__)[-1]
                print(f"FAIL {name}: {type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})",
                      file=out, flush=True)
    return ok, failed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--ops", default=",".join(GROUPS), help=f"comma-separated groups of {', '.join(GROUPS)}")
    args = p.parse_args(argv)
    groups = [g for g in args.ops.split(",") if g]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        p.error(f"unknown op groups: {', '.join(unknown)}")
    torch.manual_seed(0)
    ok, failed = run_checks(args.device, groups)
    print(f"checks: {ok} ok, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
