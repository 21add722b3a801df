"""In-process fuzzing of every registered op, private ones included (issue 18's fuzz suite).

Hypothesis draws shapes (empty ones too), dtypes, layouts (contiguous, channels_last, a
transposed view, a storage offset), non-finite values and out-of-range arguments; each case
must either raise a Python exception with a message or return the reference's answer:
- forward ops (through ``torch.ops.pytexsynth`` directly): :mod:`pytexsynth.reference` in float64;
- backward ops: ``torch.autograd.grad`` of the reference composite;
- Winograd: a direct convolution (``F.conv2d``) in float64; with non-finite input the output is
  non-finite wherever the convolution's is (a single inf may spread to NaN over the outputs of
  its 6 x 6 input tile, documented in README) and equal to it wherever both are finite.
Bounded for CI by max_examples; the counts (cases, refused, answered, mismatches) are printed at
the end. Crashes are what tests/test_crash_ops.py checks in a subprocess.
"""

from __future__ import annotations

import collections

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytexsynth
from pytexsynth import reference

T = torch.ops.pytexsynth
COUNTS: collections.Counter = collections.Counter()
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
TOL = {torch.float64: 1e-9, torch.float32: 2e-4, torch.float16: 2e-2, torch.bfloat16: 6e-2}


def summary() -> str:
    """The counts line, printed in pytest's terminal summary (tests/conftest.py)."""
    return (f"fuzz: {COUNTS['refused'] + COUNTS['answered']} cases, {COUNTS['refused']} refused with a message, "
            f"{COUNTS['answered']} answered equal to the reference, mismatches {COUNTS['mismatch']}, crashes 0")


@st.composite
def tensors(draw, shape, dtype=None, finite=False):
    """A tensor of ``shape`` in a drawn dtype and layout, optionally with NaN/inf entries."""
    dtype = dtype or draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    base = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 0.5
    if not finite and base.numel() and draw(st.booleans()):
        value = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        base.view(-1)[draw(st.integers(0, base.numel() - 1))] = value
    layout = draw(st.sampled_from(["contiguous", "channels_last", "transposed", "offset"]))
    x = base.to(dtype)
    if layout == "channels_last" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "transposed" and x.dim() >= 2:
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, non-contiguous strides
    elif layout == "offset" and x.numel():
        x = torch.cat([x.new_zeros(3), x.reshape(-1)])[3:].view(x.shape)
    return x


def outcome(call, expected):
    """Runs ``call``; a Python exception with a message counts as refused; an answer must match
    ``expected()`` (a tensor or tuple of tensors, or a callable that checks the answer)."""
    try:
        got = call()
    except (ValueError, TypeError, RuntimeError, IndexError, NotImplementedError) as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        COUNTS["refused"] += 1
        return
    COUNTS["answered"] += 1
    try:
        expected(got)
    except AssertionError:
        COUNTS["mismatch"] += 1
        raise


def close(got, want, dtype):
    tol = TOL[dtype]
    assert got.shape == want.shape, (got.shape, want.shape)
    torch.testing.assert_close(got.double(), want.double(), rtol=tol, atol=tol * max(1.0, float(
        want.double().nan_to_num(0, 0, 0).abs().max()) if want.numel() else 1.0), equal_nan=True)


SIZES = st.tuples(st.integers(0, 2), st.integers(0, 4), st.integers(0, 7), st.integers(0, 7))


@FUZZ
@given(data=st.data(), shape=SIZES, pad=st.lists(st.integers(-2, 9), min_size=4, max_size=4))
def test_fuzz_circular_pad(data, shape, pad):
    x = data.draw(tensors(shape))
    outcome(lambda: T.circular_pad2d(x, pad),
            lambda y: close(y, reference.circular_pad2d(x.double(), pad), x.dtype))
    grad = data.draw(tensors((shape[0], shape[1], shape[2] + pad[2] + pad[3], shape[3] + pad[0] + pad[1])
                             if min(shape[2] + pad[2] + pad[3], shape[3] + pad[0] + pad[1]) >= 0 else shape, x.dtype))

    def want_backward(g):
        xr = x.double().requires_grad_(True)
        (gx,) = torch.autograd.grad(reference.circular_pad2d(xr, pad), xr, grad.double())
        close(g, gx, x.dtype)
    outcome(lambda: T._circular_pad2d_backward(grad, pad), want_backward)


NORMALIZE = st.sampled_from(["hw", "chw", "none", "bogus"])
PRECISION = st.sampled_from(["ieee", "tf32", "bf16", "bogus"])


@FUZZ
@given(data=st.data(), shape=SIZES, normalize=NORMALIZE, precision=PRECISION,
       weight=st.sampled_from([1.0, 0.5, 0.0, float("nan"), float("inf")]))
def test_fuzz_gram_ops(data, shape, normalize, precision, weight):
    x = data.draw(tensors(shape))
    fp = precision if precision != "bf16" else "ieee"  # bf16 rounds operands: compared at bf16 tolerance
    dt = torch.bfloat16 if precision == "bf16" and x.dtype != torch.float64 else x.dtype
    outcome(lambda: T.gram(x, normalize, precision), lambda g: close(g, reference.gram(x.double(), normalize, fp), dt))
    target = data.draw(tensors((shape[0], shape[1], shape[1]), x.dtype, finite=True))
    outcome(lambda: T.gram_loss(x, target, weight, normalize, precision)[0],
            lambda v: close(v, reference.gram_loss(x.double(), target.double(), weight, normalize, fp), dt))
    outcome(lambda: T.gram_loss_multi([x, x], [target, target], [weight, 1.0], normalize, precision)[0],
            lambda v: close(v, reference.gram_loss_multi([x.double()] * 2, [target.double()] * 2, [weight, 1.0],
                                                         normalize, fp), dt))


@FUZZ
@given(data=st.data(), shape=SIZES, normalize=st.sampled_from(["hw", "chw", "none"]))
def test_fuzz_gram_backward_ops(data, shape, normalize):
    x = data.draw(tensors(shape, finite=True))
    grad = data.draw(tensors((shape[0], shape[1], shape[1]), x.dtype, finite=True))
    xr = x.double().requires_grad_(True)
    want = torch.autograd.grad(reference.gram(xr, normalize), xr, grad.double(), allow_unused=True)[0]
    outcome(lambda: T._gram_backward(grad, x, normalize, "ieee"), lambda g: close(g, want, x.dtype))
    target = data.draw(tensors((shape[0], shape[1], shape[1]), x.dtype, finite=True))

    def loss_backward():
        _, diff = T.gram_loss(x, target, 0.5, normalize, "ieee")
        return T._gram_loss_backward(torch.tensor(1.0, dtype=x.dtype), diff, x, 0.5, normalize, "ieee")
    want_loss = torch.autograd.grad(reference.gram_loss(xr, target.double(), 0.5, normalize), xr, allow_unused=True)[0]
    outcome(loss_backward, lambda g: close(g, want_loss, x.dtype))
    outcome(lambda: T._gram_schedule(*data.draw(st.tuples(st.integers(-3, 2**40), st.integers(-3, 2**40),
                                                          st.integers(-3, 2**40)))), lambda r: None)


@FUZZ
@given(data=st.data(), shape=SIZES, bins=st.integers(-1, 40), weight=st.sampled_from([1.0, 2.5, float("nan")]))
def test_fuzz_histogram_ops(data, shape, bins, weight):
    x = data.draw(tensors(shape))
    style = data.draw(tensors((1, shape[1], 5, 5), x.dtype, finite=True))
    try:
        stats = pytexsynth.ops.histogram_stats(style, bins)
    except ValueError:
        COUNTS["refused"] += 1
        return
    outcome(lambda: T.histogram_match(x, stats.lo, stats.hi, stats.cdf),
            lambda y: close(y, reference.histogram_match(x.double(), stats), x.dtype))
    outcome(lambda: T.histogram_loss(x, stats.lo, stats.hi, stats.cdf, weight)[0],
            lambda v: close(v, reference.histogram_loss(x.double(), stats, weight), x.dtype))

    def backward():
        _, diff = T.histogram_loss(x, stats.lo, stats.hi, stats.cdf, 1.0)
        return T._histogram_loss_backward(torch.tensor(1.0, dtype=x.dtype), diff, 1.0)
    # held-constant R(x): the gradient is 2 (x - R(x)) / n, i.e. the autograd of mean((x - R)^2)
    xr = x.double().requires_grad_(True)
    r = reference.histogram_match(x.double(), stats)
    want = torch.autograd.grad((xr - r).square().mean(), xr)[0] if x.numel() else torch.zeros_like(xr)
    outcome(backward, lambda g: close(g, want, x.dtype))


@FUZZ
@given(data=st.data(), shape=st.tuples(st.integers(0, 2), st.integers(0, 4), st.integers(0, 9), st.integers(0, 9)),
       cout=st.integers(0, 4), padding=st.integers(-1, 2))
def test_fuzz_winograd_ops(data, shape, cout, padding):
    x = data.draw(tensors(shape, dtype=data.draw(st.sampled_from([torch.float32, torch.float64]))))
    w = data.draw(tensors((cout, shape[1], 3, 3), x.dtype, finite=True))
    U = reference.winograd_weight(w.double()).to(x.dtype)

    def check(y):
        assert padding >= 0, f"padding {padding} was accepted"
        n, _, h, w_ = x.shape
        assert y.shape == (n, cout, h + 2 * padding - 2, w_ + 2 * padding - 2)
        if not (x.numel() and w.numel()):  # no inputs: F.conv2d refuses what the op answers
            assert not bool(y.any())
            return
        want = torch.nn.functional.conv2d(x.double(), w.double(), padding=padding)  # what the op computes
        bad = ~torch.isfinite(want)
        assert bool((~torch.isfinite(y))[bad].all()), "finite where the reference is not"
        ok = torch.isfinite(y) & torch.isfinite(want)
        close(y[ok], want[ok], x.dtype)
    outcome(lambda: T.winograd_conv3x3(x, U, None, padding, 0), check)
    if padding == 1 and bool(torch.isfinite(x).all()):
        grad = data.draw(tensors((shape[0], cout, shape[2], shape[3]), x.dtype, finite=True))
        xr, Ur = x.double().requires_grad_(True), U.double().requires_grad_(True)
        if xr.numel() and Ur.numel():
            want = torch.autograd.grad(reference.winograd_conv3x3(xr, Ur, None, 1), (xr, Ur), grad.double(),
                                       allow_unused=True)
        else:
            want = (torch.zeros_like(xr), torch.zeros_like(Ur))
        outcome(lambda: T._winograd_conv3x3_backward(grad, x, U, 1, 0, [True, True]),
                lambda g: (close(g[0], want[0] if want[0] is not None else torch.zeros_like(xr), x.dtype),
                           close(g[1], want[1] if want[1] is not None else torch.zeros_like(Ur), x.dtype)))


@FUZZ
@given(data=st.data(), c=st.integers(0, 3), hw=st.tuples(st.integers(0, 8), st.integers(0, 8)),
       shw=st.tuples(st.integers(0, 7), st.integers(0, 7)), k=st.integers(-1, 4), s=st.integers(-1, 3),
       index=st.sampled_from([0, 1, -1, 9, 10**15]))
def test_fuzz_style_swap_ops(data, c, hw, shw, k, s, index):
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))  # half: ties decided by rounding
    content = data.draw(tensors((1, c, *hw), dtype))
    style = data.draw(tensors((1, c, *shw), dtype))

    def check(result):
        out, idx = result
        want = reference.style_swap(content.double(), style.double(), k, s)
        close(out, want, dtype)
    outcome(lambda: T.style_swap(content, style, k, s, "ieee", "auto", 0), check)
    n_style = max(0, (shw[0] - k) // s + 1) * max(0, (shw[1] - k) // s + 1) if k > 0 and s > 0 else 0
    nh = max(0, (hw[0] - k) // s + 1) if k > 0 and s > 0 else 0
    nw = max(0, (hw[1] - k) // s + 1) if k > 0 and s > 0 else 0
    idx = torch.full((1, nh, nw), index, dtype=torch.long)
    in_range = 0 <= index < n_style

    def decoded(y):
        assert in_range, f"index {index} of {n_style} style patches was accepted"
        assert y.shape == (1, c, hw[0], hw[1])
    outcome(lambda: T._style_swap_decode(style, idx, hw[0], hw[1], k, s), decoded)
    grad = data.draw(tensors((1, c, *hw), dtype, finite=True))

    def style_grad(g):
        assert in_range, f"index {index} of {n_style} style patches was accepted"
        assert g.shape == style.shape
    outcome(lambda: T._style_swap_backward(grad, idx, list(style.shape), k, s), style_grad)
