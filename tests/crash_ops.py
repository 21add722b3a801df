"""Hostile calls of every registered op, private ones included, straight through torch.ops.

Run as a script (tests/test_crash_ops.py runs it in a subprocess, so that a segfault fails that
test instead of killing the suite): for each op a valid call is mutated one argument at a time
(empty, wrong rank, wrong dtype, strided, broadcast, non-finite and mismatched tensors; negative,
zero and huge ints; wrong-length, negative and huge int lists; NaN and infinite floats; unknown
strings; empty and short tensor lists). Every call must return or raise a Python exception.
Each case's name is printed (and flushed) before it runs, so a crash names its case; the last
line is the tally.
"""

from __future__ import annotations

import sys

import torch

import pytexsynth  # registers the ops, their fakes and autograd
from pytexsynth import ops

T = torch.ops.pytexsynth
HUGE = (2**31, 2**40, 2**62)


def _base_calls():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 8, 9, generator=g) + 0.1
    xs = [x, torch.rand(1, 5, 4, 4, generator=g) + 0.1]
    targets = [ops.gram(t)[0] for t in xs]
    _, diff = T.gram_loss(x, targets[0], 1.0, "hw", "ieee")
    _, diffs = T.gram_loss_multi(xs, targets, [1.0, 0.5], "hw", "ieee")
    st = ops.histogram_stats(x, 16)
    _, hdiff = T.histogram_loss(x, st.lo, st.hi, st.cdf, 1.0)
    U = ops.winograd_weight(torch.randn(4, 3, 3, 3, generator=g))
    content, style = torch.rand(2, 3, 7, 7, generator=g) + 0.1, torch.rand(1, 3, 6, 6, generator=g) + 0.1
    swapped, idx = T.style_swap(content, style, 3, 1, "ieee", "auto", 0)
    return {
        "circular_pad2d": (x, [1, 2, 1, 0]),
        "_circular_pad2d_backward": (torch.rand(2, 3, 9, 12, generator=g), [1, 2, 1, 0]),
        "gram": (x, "hw", "ieee"),
        "_gram_backward": (torch.rand(2, 3, 3, generator=g), x, "hw", "ieee"),
        "gram_loss": (x, targets[0], 1.0, "hw", "ieee"),
        "_gram_loss_backward": (torch.tensor(1.0), diff, x, 1.0, "hw", "ieee"),
        "gram_loss_multi": (xs, targets, [1.0, 0.5], "hw", "ieee"),
        "_gram_loss_multi_backward": (torch.tensor(1.0), list(diffs), xs, [1.0, 0.5], "hw", "ieee"),
        "_gram_schedule": (2, 3, 72),
        "histogram_match": (x, st.lo, st.hi, st.cdf),
        "histogram_loss": (x, st.lo, st.hi, st.cdf, 1.0),
        "_histogram_loss_backward": (torch.tensor(1.0), hdiff, 1.0),
        "winograd_conv3x3": (x, U, None, 1, 0),
        "_winograd_conv3x3_backward": (torch.rand(2, 4, 8, 9, generator=g), x, U, 1, 0, [True, True]),
        "style_swap": (content, style, 3, 1, "ieee", "auto", 0),
        "_style_swap_decode": (style, idx, 7, 7, 3, 1),
        "_style_swap_backward": (swapped, idx, [1, 3, 6, 6], 3, 1),
    }


def _tensor_variants(t: torch.Tensor):
    yield "empty", t.new_empty((0,) + tuple(t.shape[1:])) if t.dim() else t.new_empty(0)
    yield "1-D", t.reshape(-1)
    yield "5-D", t.reshape(1, *t.shape) if t.dim() < 5 else t[None]
    yield "0-D", t.reshape(-1)[:1].reshape(())
    for dtype in (torch.int64, torch.int32, torch.bool, torch.float16, torch.float64):
        if dtype != t.dtype:
            yield f"{dtype}", t.to(dtype)
    if t.dim() >= 2:
        yield "transposed", t.transpose(-1, -2)
        yield "short", t[..., :-1]
        yield "long", torch.cat([t, t[..., :1]], dim=-1)
        yield "zero-stride", t[..., :1].expand(t.shape)
    if t.is_floating_point():
        for v in (float("nan"), float("inf"), -float("inf")):
            bad = t.clone()
            bad.view(-1)[bad.numel() // 2] = v
            yield f"holds {v}", bad
    else:
        for v in (-1, 10**15, -(2**62)):
            yield f"holds {v}", torch.full_like(t, v)
    yield "meta", t.to("meta")


def _variants(arg):
    """(name, value) of hostile replacements of one argument."""
    if isinstance(arg, torch.Tensor):
        yield from _tensor_variants(arg)
    elif isinstance(arg, bool):
        yield "not a bool", 3
    elif isinstance(arg, int):
        for v in (-1, 0, *HUGE, -(2**62)):
            yield f"int {v}", v
    elif isinstance(arg, float):
        for v in (float("nan"), float("inf"), -1.0, 1e308):
            yield f"float {v}", v
    elif isinstance(arg, str):
        yield "unknown string", "bogus"
    elif isinstance(arg, list) and arg and isinstance(arg[0], torch.Tensor):
        yield "empty list", []
        yield "short list", arg[:-1]
        for i, t in enumerate(arg):
            for name, v in _tensor_variants(t):
                yield f"[{i}] {name}", [*arg[:i], v, *arg[i + 1:]]
    elif isinstance(arg, list):
        yield "empty list", []
        yield "long list", arg + arg[:1]
        for i, v in enumerate(arg):
            for name, w in _variants(v):
                yield f"[{i}] {name}", [*arg[:i], w, *arg[i + 1:]]
    elif arg is None:
        yield "a tensor", torch.rand(4)


def main() -> int:
    if not pytexsynth.has_extension():
        print(f"the compiled extension is not loaded ({pytexsynth.__file__}): nothing to check", flush=True)
        return 1
    calls = _base_calls()
    ran = raised = 0
    for op, args in calls.items():
        for i, arg in enumerate(args):
            for name, value in _variants(arg):
                mutated = (*args[:i], value, *args[i + 1:])
                print(f"{op} arg {i}: {name}", flush=True)
                ran += 1
                try:
                    getattr(T, op)(*mutated)
                except Exception:  # noqa: BLE001 - any Python exception is a clean refusal
                    raised += 1
    print(f"crash check: {ran} hostile calls of {len(calls)} ops, {raised} refused with an exception, "
          f"{ran - raised} returned, crashes 0", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
