"""Histogram matching's (and style-swap's) defined behaviour for non-finite and extreme input (issue 18 item 9):
NaN stays NaN and takes no part; +-inf are left out of the plane's range and counts and go to the
style's extremes; the finite values are matched among themselves; a finite range whose width
overflows float32 is matched like any other. The kernel (on every device) and the reference give
the same bits."""
from __future__ import annotations

import pytest
import torch

from pytexsynth import ops, reference

from conftest import DEVICES

INF = float("inf")


def _style(device, dtype=torch.float32):
    torch.manual_seed(0)
    return ops.histogram_stats(torch.rand(1, 2, 16, 16, device=device, dtype=dtype) * 3 + 1, bins=32)


def _planted(device, dtype=torch.float32):
    torch.manual_seed(1)
    x = torch.rand(1, 2, 9, 9, device=device, dtype=dtype)
    x[0, 0, 1, 1], x[0, 0, 2, 2], x[0, 1, 0, 0], x[0, 1, 3, 4] = INF, -INF, float("nan"), INF
    return x


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_kernel_and_reference_agree_on_nan_and_inf(device, dtype):
    x, stats = _planted(device, dtype), _style(device)
    out = ops.histogram_match(x, stats)
    expected = reference.histogram_match(x, stats)
    assert torch.equal(torch.isnan(out), torch.isnan(x))
    assert torch.equal(out.nan_to_num(7.0), expected.nan_to_num(7.0))


@pytest.mark.parametrize("device", DEVICES)
def test_infinities_go_to_the_style_extremes_and_the_finite_values_keep_their_spread(device):
    x, stats = _planted(device), _style(device)
    out = ops.histogram_match(x, stats)
    assert out[0, 0, 1, 1] == stats.hi[0] and out[0, 0, 2, 2] == stats.lo[0] and out[0, 1, 3, 4] == stats.hi[1]
    # The finite values are matched as if the infinities were not there, i.e. as if they were NaN
    # (before: every finite value went to the style minimum) ...
    finite = torch.isfinite(x)
    as_nan = ops.histogram_match(x.masked_fill(~finite, float("nan")), stats)
    assert torch.equal(out[finite], as_nan[finite])
    # ... and keep their spread.
    for c in range(2):
        got = out[0, c][finite[0, c]]
        assert got.max() - got.min() > 0.5 * (stats.hi[c] - stats.lo[c])


@pytest.mark.parametrize("device", DEVICES)
def test_a_plane_of_infinities_only(device):
    stats = _style(device)
    x = torch.tensor([INF, -INF, INF, float("nan")], device=device).view(1, 1, 2, 2).expand(1, 2, 2, 2).contiguous()
    out = ops.histogram_match(x, stats)
    assert torch.equal(out[0, :, 0, 0], stats.hi) and torch.equal(out[0, :, 0, 1], stats.lo)
    assert torch.isnan(out[0, :, 1, 1]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_a_range_whose_width_overflows_float32_does_not_collapse(device):
    torch.manual_seed(2)
    values = torch.rand(1, 1, 16, 16, device=device) * 2 - 1
    wide, narrow = values * 3e38, values
    style_values = torch.rand(1, 1, 16, 16, device=device) * 2 - 1
    out_wide = ops.histogram_match(wide, ops.histogram_stats(style_values * 3e38, bins=64))
    out_narrow = ops.histogram_match(narrow, ops.histogram_stats(style_values, bins=64))
    assert torch.isfinite(out_wide).all()
    assert torch.equal(out_wide, reference.histogram_match(wide, ops.histogram_stats(style_values * 3e38, bins=64)))
    # Scaling input and style by the same factor scales the result (before: every value in bin 0).
    torch.testing.assert_close(out_wide / 3e38, out_narrow, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_histogram_loss_is_inf_or_nan_where_the_input_is(device):
    stats = _style(device)
    x = torch.rand(1, 2, 6, 6, device=device)
    x[0, 0, 0, 0] = INF
    assert ops.histogram_loss(x, stats).isinf()
    x[0, 0, 0, 0] = float("nan")
    assert ops.histogram_loss(x, stats).isnan()


def test_exact_mode_gives_nan_no_quantile():
    stats = ops.histogram_stats(torch.arange(16.0).view(1, 1, 4, 4), bins=16)
    x = torch.tensor([0.0, 1.0, 2.0, float("nan")]).view(1, 1, 2, 2)
    out = ops.histogram_match(x, stats, mode="exact")
    # Three values take the quantiles 1/6, 3/6, 5/6 of the uniform style over [0, 15], i.e. 15 u
    # (before: 1/8, 3/8, 5/8, as if NaN held the top quantile).
    torch.testing.assert_close(out.flatten()[:3], 15 * torch.tensor([1 / 6, 3 / 6, 5 / 6]), rtol=0, atol=1e-4)
    assert torch.isnan(out.flatten()[3])


# ---- style_swap: the kernels and the reference share the rule "a NaN score never wins" ----

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("value", [float("nan"), INF, -INF])
@pytest.mark.parametrize("where", ["content", "style"])
def test_style_swap_non_finite_matches_the_reference(device, value, where):
    torch.manual_seed(3)
    content, style = torch.rand(1, 2, 7, 7, device=device), torch.rand(1, 2, 8, 8, device=device)
    (content if where == "content" else style)[0, 1, 3, 4] = value
    out, idx = ops.style_swap(content, style, return_indices=True)
    ref, ref_idx = reference.style_swap(content, style, return_indices=True)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(out, ref, equal_nan=True)
    if where == "style":  # the non-finite style patches are never chosen: the output stays finite
        assert torch.isfinite(out).all()
