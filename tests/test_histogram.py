"""histogram_stats / histogram_match / histogram_loss (Risser et al. 2017) against the reference
spec in float32 (same operations: bitwise) and float64, plus the properties of the issue."""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytexsynth import nn as pnn
from pytexsynth import ops, reference

from conftest import LAYOUTS, histogram_bin_position, make_layout
from op_contract import OPCHECK, Bad, Call, Close, OpContract, RelErr, bad_op, sample

# (x shape, style shape, bins): odd sizes, batch > 1, unbatched, different element counts.
CASES = [
    ((2, 3, 7, 9), (1, 3, 11, 5), 16),
    ((1, 5, 16, 16), (2, 5, 16, 16), 256),
    ((4, 6, 11), (4, 9, 10), 64),
    ((3, 2, 1, 13), (1, 2, 3, 3), 7),
    ((1, 4, 33, 31), (1, 4, 20, 20), 1),
    ((2, 3, 20, 21), (1, 3, 40, 41), 4096),
]


def _act(shape, device, dtype=torch.float32, relu=True):
    """Activation-like values: ReLU'd (many exact zeros) shifted Gaussians of random scale."""
    c = shape[-3]
    scale = torch.rand(c, 1, 1, dtype=torch.float64) * 3 + 0.5
    x = torch.randn(shape, dtype=torch.float64) * scale + 0.3
    if relu:
        x = x.relu()
    return x.to(dtype=dtype, device=device)


def _stats(shape, device, bins, dtype=torch.float32):
    return ops.histogram_stats(_act(shape, device, dtype), bins)


def _planes(t):
    return t.reshape(-1, t.shape[-2] * t.shape[-1])


def _x_and_stats(s, device, dtype, layout):
    """x (in layout) and the style's stats for the op, the float64 x and stats for the spec."""
    style = _act(s.shapes[1], device, dtype)
    x = make_layout(_act(s.shape, device, dtype, relu=s.params.get("relu", True)), layout)
    return x, ops.histogram_stats(style, s.bins), x.double(), ops.histogram_stats(style.double(), s.bins)


def _randn(*shape, dtype=torch.float32):
    return lambda d: torch.randn(*shape, dtype=dtype, device=d)


def _with_stats(f, x=_randn(1, 3, 4, 4)):
    """A call f(x, stats) with stats of 3 channels, 8 bins, on the device."""
    return lambda d: f(x(d), _stats((1, 3, 5, 5), d, 8))


def _match_op(x, lo=None, hi=None, cdf=None):
    """torch.ops.pytexsynth.histogram_match with a stats part replaced."""
    def call(d):
        stats = _stats((1, 3, 5, 5), d, 8)
        parts = [p(stats) if p else s for p, s in zip((lo, hi, cdf), stats)]
        return torch.ops.pytexsynth.histogram_match(x(d), *parts)
    return call


# The interpolated matching is not differentiable (R is held constant). Non-finite x (the
# contract's non-finite test, and test_non_finite.py): NaN stays NaN, +-inf go to the
# style's extremes, kernel and reference alike.


class TestHistogramMatch(OpContract):
    samples = [
        *(sample(xs, ss, bins=bins) for xs, ss, bins in CASES),
        sample((2, 3, 7, 8), (1, 3, 9, 9), bins=32, relu=False, checks=[OPCHECK]),
        sample((1, 2, 5, 5), (1, 2, 6, 6), bins=16),
    ]
    value_bounds = {torch.float32: RelErr(1e-5), torch.float64: RelErr(1e-12), torch.float16: RelErr(2e-3),
                    torch.bfloat16: RelErr(1e-2)}
    empty_samples = [sample((0, 3, 5, 5), (1, 3, 4, 4), bins=8)]
    determinism_sample = sample((2, 8, 31, 29), (1, 8, 20, 20), bins=256)
    determinism_threads = (1, None, 1)
    fallback_sample = samples[-1]
    test_grad_matches_reference = test_gradcheck = test_gradgradcheck = None  # no gradient: R is a constant

    call = staticmethod(ops.histogram_match)
    reference = staticmethod(reference.histogram_match)

    def make(self, s, device, dtype, layout):
        x, stats, x64, stats64 = _x_and_stats(s, device, dtype, layout)
        return Call([x, stats], [x64, stats64])

    def check_value(self, call, dtype, layout):
        out = super().check_value(call, dtype, layout)
        # Same operations in the same order as the reference in x's dtype: the same bin of
        # every value and the same result.
        x, stats = call.args
        assert torch.equal(out, reference.histogram_match(x.contiguous(), stats))
        if layout == "channels_last":
            assert out.is_contiguous(memory_format=torch.channels_last)

    def fallback_followups(self, call):
        return [lambda: self.call(*call.args), lambda: ops.histogram_loss(*call.args)]  # another op: no warning

    def opcheck_calls(self, call, requires_grad):
        x, stats = call.args
        return [(torch.ops.pytexsynth.histogram_match.default, (x, *stats))]

    def compile_case(self, device):
        stats = _stats((1, 4, 10, 10), device, 64)
        return (lambda x: ops.histogram_match(x * 2.0, stats).sum()), [_act((2, 4, 9, 9), device, relu=False)], ()

    bad_inputs = [
        Bad(lambda d: ops.histogram_match(torch.randn(3, 4, device=d), _stats((1, 3, 5, 5), d, 8)), ValueError,
            r"histogram_match: x must be a 3-D \(C, H, W\) or 4-D", "x"),
        Bad(_with_stats(ops.histogram_match, _randn(1, 5, 4, 4)), ValueError,
            r"stats have 3 channels but x of shape \(1, 5, 4, 4\) has 5", "stats"),
        Bad(_with_stats(lambda x, stats: ops.histogram_match(x, stats, mode="sorted")), ValueError,
            "mode must be 'interpolated' or 'exact', got 'sorted'", "mode"),
        # histogram_stats, which makes the stats:
        Bad(lambda d: ops.histogram_stats(torch.randn(1, 3, 4, 4, device=d), bins=0), ValueError,
            r"histogram_stats: bins = 0; expected bins from 1 to 4096", "bins"),
        Bad(lambda d: ops.histogram_stats(torch.randn(1, 3, 4, 4, device=d), bins=4097), ValueError, r"bins = 4097",
            "bins"),
        Bad(lambda d: ops.histogram_stats(torch.randn(1, 3, 4, 4, device=d), bins=2.0), TypeError,
            "bins must be an int", "bins"),
        Bad(lambda d: ops.histogram_stats(torch.full((1, 3, 2, 2), float("nan"), device=d)), ValueError,
            "style must be finite", "style"),
        Bad(lambda d: ops.histogram_stats(torch.empty(1, 3, 0, 2, device=d)), ValueError, "is empty", "style"),
        Bad(lambda d: ops.histogram_stats([[1.0]]), TypeError, "style must be a torch.Tensor", "style"),
    ]
    bad_op_inputs = [
        bad_op(_match_op(_randn(3, 4)),
               r"histogram_match: x must be a 3-D \(C, H, W\) or 4-D \(B, C, H, W\) tensor, got a 2-D", "x"),
        bad_op(_match_op(_randn(1, 3, 4, 4), lo=lambda s: s.lo[:2]),
               r"histogram_match: lo must have shape \(C,\) = \(3,\)", "lo"),
        bad_op(_match_op(_randn(1, 3, 4, 4), cdf=lambda s: s.cdf[:, :1]), r"bins = 0; expected bins from 1 to 4096",
               "bins"),
        bad_op(_match_op(_randn(1, 3, 4, 4), cdf=lambda s: torch.zeros(3, 4098, device=s.cdf.device)), r"bins = 4097",
               "bins"),
        bad_op(_match_op(lambda d: torch.randn(1, 3, 4, 4, device=d).int()),
               r"x must be a float32, float64, float16 or bfloat16 tensor, got Int", "x"),
        bad_op(_match_op(_randn(1, 3, 4, 4), hi=lambda s: s.hi.half()),
               r"hi must be a float32 or float64 tensor \(from histogram_stats\), got Half", "hi"),
    ]


class TestHistogramLoss(OpContract):
    samples = [
        *(sample(xs, ss, bins=bins, weight=1.0) for xs, ss, bins in CASES),
        *(sample((2, 6, 9, 11), (1, 6, 14, 14), bins=32, weight=w, relu=False) for w in (1.0, 0.37)),
        sample((1, 3, 12, 9), (1, 3, 10, 10), bins=32, weight=2.0, relu=False),
        sample((2, 3, 7, 8), (1, 3, 9, 9), bins=32, weight=0.5, relu=False, checks=[OPCHECK]),
        sample((1, 2, 5, 5), (1, 2, 6, 6), bins=16, weight=1.0),
    ]
    # Against the spec on the same (rounded) inputs: in float32 the float32 spec (the same R; the
    # float64 one moves values near bin edges by more than the bound), else the float64 spec.
    value_bounds = {torch.float32: Close(1e-6, 0), torch.float64: Close(1e-10, 0), torch.float16: Close(1e-2, 0),
                    torch.bfloat16: Close(3e-2, 0)}
    grad_bounds = {torch.float32: Close(1e-6, 1e-9), torch.float64: RelErr(1e-10), torch.float16: RelErr(1e-2),
                   torch.bfloat16: RelErr(3e-2)}
    scalar_grad_output = 3.0
    empty_samples = [sample((0, 3, 5, 5), (1, 3, 4, 4), bins=8, weight=1.0)]
    determinism_sample = sample((2, 8, 31, 29), (1, 8, 20, 20), bins=256, weight=0.5)
    determinism_threads = (1, None, 1)
    fallback_sample = samples[-1]
    fallback_bound = Close(1e-6, 0)
    # The gradient holds R(x) constant, so it is not the derivative gradcheck measures: see
    # check_grad's formula and test_double_backward_is_linear.
    test_gradcheck = test_gradgradcheck = None

    call = staticmethod(ops.histogram_loss)
    reference = staticmethod(reference.histogram_loss)

    def make(self, s, device, dtype, layout):
        x, stats, x64, stats64 = _x_and_stats(s, device, dtype, layout)
        if dtype == torch.float32:
            x64, stats64 = x, stats
        return Call([x, stats, s.weight], [x64, stats64, s.weight])

    def check_value(self, call, dtype, layout):
        loss = super().check_value(call, dtype, layout)
        if dtype == torch.float32:  # ... and weight * mean((x - R(x))^2) with the kernel's own R
            x, stats, weight = call.args
            d = (x - ops.histogram_match(x, stats)).double()
            torch.testing.assert_close(loss.double(), weight * d.pow(2).mean(), rtol=1e-6, atol=0)

    def check_grad(self, call, dtype, layout):
        super().check_grad(call, dtype, layout)
        if dtype == torch.float32:  # ... and the formula 2 w / n (x - R(x)) * grad_output
            x, stats, weight = call.args
            g = torch.tensor(self.scalar_grad_output, device=x.device)
            (grad,) = self.grads_of(self.call, call.args, g)[1]
            d = (x.detach() - ops.histogram_match(x, stats)).double()
            torch.testing.assert_close(grad.double(), 3.0 * 2 * weight / x.numel() * d, rtol=1e-6, atol=1e-9)

    def opcheck_calls(self, call, requires_grad):
        x, stats, weight = call.args
        d = torch.randn(x.shape, device=x.device, requires_grad=requires_grad)
        g = torch.tensor(1.5, device=x.device, requires_grad=requires_grad)
        return [(torch.ops.pytexsynth.histogram_loss.default, (x, *stats, weight)),
                (torch.ops.pytexsynth.histogram_loss.default, (x, *stats, 2.0)),
                (torch.ops.pytexsynth._histogram_loss_backward.default, (g, d, 0.5))]

    def compile_case(self, device):
        stats = _stats((1, 4, 10, 10), device, 64)

        def f(x):
            return ops.histogram_loss(x * 2.0, stats, 0.5) + ops.histogram_match(x, stats).sum() * 0.0

        return f, [_act((2, 4, 9, 9), device, relu=False)], (0,)

    bad_inputs = [
        Bad(_with_stats(ops.histogram_loss, lambda d: torch.ones(1, 3, 4, 4, dtype=torch.long, device=d)), TypeError,
            "histogram_loss: x must be a float32, float64, float16 or bfloat16 tensor, got torch.int64", "x"),
        Bad(_with_stats(lambda x, s: ops.histogram_loss(x, (s.lo, s.hi, s.cdf, 1))), TypeError,
            "stats must be a HistogramStats", "stats"),
        Bad(_with_stats(lambda x, s: ops.histogram_loss(x, s, weight="1")), TypeError, "weight must be a float",
            "weight"),
    ]
    bad_op_inputs = [
        bad_op(_with_stats(lambda x, s: torch.ops.pytexsynth.histogram_loss(x, s.lo, s.hi, s.cdf[:2], 1.0)),
               r"histogram_loss: cdf must have shape \(C, bins \+ 1\) with C = 3", "cdf"),
        bad_op(lambda d: torch.ops.pytexsynth._histogram_loss_backward(torch.ones(2, device=d),
                                                                       torch.randn(1, 3, 4, 4, device=d), 1.0),
               r"_histogram_loss_backward: grad_output must hold one element", "grad_output"),
    ]


# ---- values --------------------------------------------------------------------------------

def test_float64_reference_is_the_spec_by_hand():
    # One channel, 4 bins over [0, 4], values 0.5, 1.5, 2.5, 3.5 (one per bin), style = 0..7 in
    # 4 bins over [0, 7] with 2 values per bin: u of 1.5 = (1 + 0.5 * 1) / 4 = 0.375, the style
    # inverse at 0.375 is lo + (1 + 0.5) * 7/4 = 2.625.
    x = torch.tensor([0.5, 1.5, 2.5, 3.5, 0.0, 4.0], dtype=torch.float64).reshape(1, 1, 1, 6)
    style = torch.arange(8, dtype=torch.float64).reshape(1, 1, 2, 4)
    stats = ops.histogram_stats(style, 4)
    torch.testing.assert_close(stats.cdf, torch.tensor([[0, 0.25, 0.5, 0.75, 1.0]], dtype=torch.float64))
    # x's own range is [0, 4]: bins of width 1 with counts 2 (0, 0.5), 1, 1, 2 (3.5, 4.0).
    # u(0.5) = (0 + 0.5 * 2) / 6, u(1.5) = (2 + 0.5) / 6, u(4.0) = 1.
    u = torch.tensor([1 / 6, 2.5 / 6, 3.5 / 6, (4 + 1) / 6, 0, 1], dtype=torch.float64)
    expected = u * 4 * 7 / 4  # the style CDF is linear: inverse(u) = 7 u
    for impl in (ops.histogram_match, reference.histogram_match):
        torch.testing.assert_close(impl(x, stats).flatten(), expected, rtol=1e-12, atol=1e-12)


# ---- properties ----------------------------------------------------------------------------

@pytest.mark.parametrize("bins", [1, 16, 256])
def test_monotone_per_channel(device, bins):
    stats = _stats((1, 4, 20, 20), device, bins)
    x = _act((2, 4, 15, 17), device, relu=False)
    x[0, 1, :3] = x[0, 1, 5, 5]  # ties must map to equal values
    r = ops.histogram_match(x, stats)
    xp, rp = _planes(x), _planes(r)
    order = xp.argsort(dim=1, stable=True)
    r_sorted = rp.gather(1, order)
    assert (r_sorted[:, 1:] >= r_sorted[:, :-1]).all()
    assert (rp[1, :3 * 17] == rp[1, 5 * 17 + 5]).all()


def _bin_counts(values, stats, c):
    """Counts of values in the style's bins of channel c (the histogram of R(x))."""
    bins = stats.bins
    lo, hi = stats.lo[c].double(), stats.hi[c].double()
    t = ((values.double() - lo) / (hi - lo) * bins).floor().clamp(0, bins - 1).long()
    return torch.bincount(t, minlength=bins)


@pytest.mark.parametrize("bins", [8, 64, 256])
def test_histogram_of_r_equals_style_within_one_count(device, bins):
    # Values evenly spread inside their bins (a shuffled ramp) make the piecewise-linear CDF exact,
    # so R(x) reproduces the style histogram up to rounding of the bin edges: one count.
    c, h, w = 3, 24, 20
    style = _act((1, c, h, w), device, torch.float64)
    stats = ops.histogram_stats(style, bins)
    ramp = torch.linspace(-1.0, 2.0, h * w, dtype=torch.float64)
    x = torch.stack([ramp[torch.randperm(h * w)] * (i + 1) for i in range(c)]).reshape(1, c, h, w).to(device)
    r = ops.histogram_match(x, stats)
    for ch in range(c):
        style_counts = (stats.cdf[ch].diff() * h * w).round().long()
        got = _bin_counts(r[0, ch].flatten(), stats, ch)
        assert (got - style_counts).abs().max() <= 1, (ch, got, style_counts)


@pytest.mark.parametrize("bins", [8, 256])
def test_exact_mode_reproduces_style_histogram_exactly(device, bins):
    c, h, w = 4, 16, 21
    style = _act((1, c, h, w), device)
    stats = ops.histogram_stats(style, bins)
    x = _act((1, c, h, w), device, relu=False)
    r = ops.histogram_match(x, stats, mode="exact")
    for ch in range(c):
        style_counts = (stats.cdf[ch].double().diff() * h * w).round().long()
        assert torch.equal(_bin_counts(r[0, ch].flatten(), stats, ch), style_counts)
    # And it is monotone: rank order is kept.
    xp, rp = _planes(x), _planes(r)
    assert (rp.gather(1, xp.argsort(1))[:, 1:] >= rp.gather(1, xp.argsort(1))[:, :-1]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_r_of_style_is_style(device, dtype):
    # The style's own CDF inverted at its own quantiles gives the values back (up to rounding).
    style = _act((1, 5, 19, 23), device, dtype)
    stats = ops.histogram_stats(style, 128)
    r = ops.histogram_match(style, stats)
    span = (stats.hi - stats.lo).max().item()
    assert (r - style).abs().max().item() <= span * (1e-5 if dtype == torch.float32 else 1e-12)


# ---- loss and gradient ---------------------------------------------------------------------

def test_loss_is_zero_on_the_style(device):
    style = _act((1, 4, 16, 16), device, torch.float64)
    stats = ops.histogram_stats(style, 64)
    assert ops.histogram_loss(style, stats).item() < 1e-20


def test_double_backward_is_linear(device):
    # The backward is linear in grad_output and D: its own gradient is defined (R held constant).
    stats = _stats((1, 2, 8, 8), device, 16, torch.float64)
    x = _act((1, 2, 6, 7), device, torch.float64, relu=False).requires_grad_()
    loss = ops.histogram_loss(x, stats, 1.5)
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    d = x.detach() - ops.histogram_match(x, stats)
    torch.testing.assert_close(g.detach(), 2 * 1.5 / x.numel() * d)


# ---- edge cases ----------------------------------------------------------------------------

def test_constant_channel_maps_to_style_median(device):
    style = _act((1, 3, 15, 15), device, torch.float64)
    stats = ops.histogram_stats(style, 64)
    x = _act((2, 3, 6, 6), device, torch.float64)
    x[1, 2] = 4.25
    x[0, 0] = 0.0
    r = ops.histogram_match(x, stats)
    for n, c in [(1, 2), (0, 0)]:
        # The style's inverse CDF at 0.5, evaluated by the reference on a 1-value plane set at 0.5.
        u = torch.full((1,), 0.5, dtype=torch.float64, device=device)
        k = torch.searchsorted(stats.cdf[c, 1:].contiguous(), u).clamp(max=63)
        c0, c1 = stats.cdf[c, k], stats.cdf[c, k + 1]
        median = stats.lo[c] + (k + (0.5 - c0) / (c1 - c0)) * (stats.hi[c] - stats.lo[c]) / 64
        assert torch.allclose(r[n, c], median.expand_as(r[n, c]), rtol=1e-12, atol=1e-12)
        # ... the median of the style values, up to one bin.
        assert abs(r[n, c, 0, 0] - style[0, c].median()) <= (stats.hi[c] - stats.lo[c]) / 64 + 1e-12


def test_max_lands_in_last_bin_and_maps_to_style_max(device):
    stats = _stats((1, 4, 12, 12), device, 32, torch.float64)
    x = _act((1, 4, 9, 9), device, torch.float64, relu=False)
    r = ops.histogram_match(x, stats)
    xp, rp = _planes(x), _planes(r)
    # x's max has u = 1: the top edge of the style's last non-empty bin, i.e. the style max.
    torch.testing.assert_close(rp.gather(1, xp.argmax(1, keepdim=True)).flatten(), stats.hi)
    torch.testing.assert_close(rp.gather(1, xp.argmin(1, keepdim=True)).flatten(), stats.lo)


def test_max_in_last_bin_bin_position():
    # Directly: t = (hi - lo) / (hi - lo) * nb = nb is clamped into bin nb - 1 with frac 1.
    bin_position = histogram_bin_position()
    v = torch.tensor([0.0, 0.3, 1.0])
    b, f = bin_position(v, torch.tensor(0.0), torch.tensor(1.0), 10)
    assert b.tolist() == [0, 3, 9] and f[-1].item() == 1.0


def test_nan_gives_nan_loss(device):
    stats = _stats((1, 3, 8, 8), device, 16)
    x = _act((1, 3, 7, 7), device, relu=False)
    x[0, 1, 2, 3] = float("nan")
    r = ops.histogram_match(x, stats)
    assert torch.isnan(r[0, 1, 2, 3]) and torch.isfinite(r).sum() == r.numel() - 1
    # NaN is left out of its channel's counts, as the reference does.
    ref = reference.histogram_match(x, stats)
    assert torch.equal(torch.nan_to_num(r), torch.nan_to_num(ref))
    xg = x.clone().requires_grad_()
    loss = ops.histogram_loss(xg, stats)
    assert torch.isnan(loss)
    loss.backward()
    assert torch.isnan(xg.grad[0, 1, 2, 3])


def test_all_zero_style_channel(device):
    style = _act((1, 3, 10, 10), device)
    style[0, 1] = 0.0
    stats = ops.histogram_stats(style, 32)
    assert stats.lo[1] == 0 and stats.hi[1] == 0 and stats.cdf[1, 1] == 1
    x = _act((2, 3, 7, 8), device, relu=False)
    r = ops.histogram_match(x, stats)
    assert (r[:, 1] == 0).all()
    xg = x.clone().requires_grad_()
    loss = ops.histogram_loss(xg, stats)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(xg.grad).all()


@pytest.mark.parametrize("bins", [1, 4096])
def test_extreme_bin_counts(device, bins):
    stats = _stats((1, 3, 40, 40), device, bins)
    assert stats.cdf.shape == (3, bins + 1)
    x = _act((2, 3, 21, 19), device)
    r = ops.histogram_match(x, stats)
    assert torch.equal(r, reference.histogram_match(x, stats))
    assert (r >= stats.lo[None, :, None, None]).all() and (r <= stats.hi[None, :, None, None] * (1 + 1e-6)).all()
    if bins == 1:
        # One bin: the style is taken as uniform on [lo, hi], so R is affine in x's quantile.
        assert torch.isfinite(ops.histogram_loss(x, stats))


# ---- layouts, devices ----------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_give_the_same_bits(device, layout):
    stats = _stats((1, 5, 12, 12), device, 64)
    x = _act((3, 5, 10, 13), device)
    xl = make_layout(x, layout).detach().requires_grad_()
    loss = ops.histogram_loss(xl, stats)
    loss.backward()
    x0 = x.detach().clone().requires_grad_()
    loss0 = ops.histogram_loss(x0, stats)
    loss0.backward()
    assert torch.equal(loss, loss0) and torch.equal(xl.grad, x0.grad)


# Shapes for the CUDA comparison: one block per plane, many blocks per plane (the split
# min/max and histogram paths), and more planes than blocks.
CUDA_CASES = [((2, 6, 17, 23), 256), ((1, 4, 300, 301), 4096), ((3, 40, 9, 9), 1), ((2, 5, 64, 64), 2048)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("shape,bins", CUDA_CASES)
def test_cpu_and_cuda_agree_bitwise(shape, bins, dtype):
    from conftest import cuda_skip_reason

    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    style = _act((1, shape[1], 30, 30), "cpu", dtype)
    x = _act(shape, "cpu", dtype)
    x[0, 0] = 1.5  # a constant plane
    x[-1, -1, 0, 0] = float("nan")
    stats = ops.histogram_stats(style, bins)
    for layout in ("contiguous", "channels_last"):
        xl = make_layout(x, layout)
        assert torch.equal(ops.histogram_match(xl, stats).nan_to_num(), ops.histogram_match(xl.cuda(), stats.to("cuda")).cpu().nan_to_num())
    xg = x.clone().nan_to_num_(0.25).requires_grad_()
    xc = xg.detach().cuda().requires_grad_()
    loss, loss_c = ops.histogram_loss(xg, stats), ops.histogram_loss(xc, stats.to("cuda"))
    loss.backward()
    loss_c.backward()
    torch.testing.assert_close(loss_c.cpu(), loss, rtol=1e-6 if dtype != torch.float16 else 1e-3, atol=0)
    assert torch.equal(xg.grad, xc.grad.cpu())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible")
def test_stats_on_another_device_are_refused():
    stats = _stats((1, 3, 5, 5), "cpu", 8)
    with pytest.raises(ValueError, match="stats live on"):
        ops.histogram_match(torch.randn(1, 3, 4, 4), stats.to("cuda"))


# ---- stats ---------------------------------------------------------------------------------

def test_stats_move_and_save(device, tmp_path):
    stats = _stats((2, 3, 9, 9), "cpu", 16)
    moved = stats.to(device)
    assert isinstance(moved, ops.HistogramStats) and moved.lo.device.type == device and moved.bins == 16
    buf = io.BytesIO()
    torch.save(moved, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert isinstance(loaded, ops.HistogramStats) and all(torch.equal(a, b) for a, b in zip(loaded, moved))
    again = ops.HistogramStats.from_state_dict(moved.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(again, moved))


def test_stats_values(device):
    style = _act((2, 3, 6, 7), device, torch.float64)
    stats = ops.histogram_stats(style, 8)
    flat = style.transpose(0, 1).reshape(3, -1)
    assert torch.equal(stats.lo, flat.amin(1)) and torch.equal(stats.hi, flat.amax(1))
    assert (stats.cdf[:, 0] == 0).all() and (stats.cdf[:, -1] == 1).all() and (stats.cdf.diff(dim=1) >= 0).all()
    for c in range(3):
        counts = torch.histc(flat[c].cpu(), bins=8, min=stats.lo[c].item(), max=stats.hi[c].item())
        torch.testing.assert_close(stats.cdf[c].diff().cpu() * flat.shape[1], counts.double())
    assert ops.histogram_stats(style.float(), 8).cdf.dtype == torch.float32
    assert ops.histogram_stats(style.half(), 8).cdf.dtype == torch.float32


# ---- module --------------------------------------------------------------------------------

def test_histogram_loss_module(device):
    style = {"relu1_1": _act((1, 4, 12, 12), device), "relu2_1": _act((1, 6, 6, 6), device)}
    m = pnn.HistogramLoss(style, weights={"relu1_1": 0.25}, bins=32).to(device)
    feats = {"relu1_1": _act((2, 4, 10, 10), device, relu=False).requires_grad_(),
             "relu2_1": _act((2, 6, 5, 5), device, relu=False).requires_grad_()}
    loss = m(feats)
    expected = (ops.histogram_loss(feats["relu1_1"], ops.histogram_stats(style["relu1_1"], 32), 0.25)
                + ops.histogram_loss(feats["relu2_1"], ops.histogram_stats(style["relu2_1"], 32), 1.0))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert feats["relu1_1"].grad is not None
    # Stats are buffers: saved with the module and restored into a fresh one.
    m2 = pnn.HistogramLoss({k: torch.zeros_like(v) + 1 for k, v in style.items()}, bins=32).to(device)
    m2.load_state_dict(m.state_dict())
    m2.weights = m.weights
    torch.testing.assert_close(m2(feats), loss)
    with pytest.raises(KeyError, match="features lack the layers"):
        m({"relu1_1": feats["relu1_1"]})
    with pytest.raises(ValueError, match="weights name layers without style features"):
        pnn.HistogramLoss(style, weights={"conv9": 1.0})


# ---- property test -------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9),
       bins=st.integers(1, 300), relu=st.booleans(), channels_last=st.booleans())
def test_property_matches_reference(n, c, h, w, bins, relu, channels_last):
    stats = ops.histogram_stats(_act((1, c, 7, 6), "cpu", relu=relu), bins)
    x = _act((n, c, h, w), "cpu", relu=relu)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(ops.histogram_match(x, stats), reference.histogram_match(x, stats))
