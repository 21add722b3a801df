"""adain against the PyTorch composite (reference.adain): values, gradients, layouts, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytexsynth import nn as pnn
from pytexsynth import ops, reference

from conftest import make_layout
from op_contract import GRAD_CHECKS, OPCHECK, Bad, Close, OpContract, RelErr, bad_op, call_of, sample


def _content(shape, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (2.0 * torch.randn(shape, generator=g, dtype=torch.float64) + 3.0).to(dtype=dtype, device=device)


def _style(shape, dtype, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (0.5 * torch.randn(shape, generator=g, dtype=torch.float64) - 1.0).to(dtype=dtype, device=device)


def _randn(*shape, dtype=torch.float32):
    return lambda d: torch.randn(*shape, dtype=dtype, device=d)


def _adain(c, s, alpha=1.0, eps=1e-5):
    return lambda d: ops.adain(c(d), s(d), alpha, eps)


def _adain_op(c, s, alpha=1.0, eps=1e-5):
    return lambda d: torch.ops.pytexsynth.adain(c(d), s(d), alpha, eps)


class TestAdaIN(OpContract):
    samples = [
        sample((2, 3, 7, 9), (2, 3, 5, 4), alpha=1.0),      # odd sizes, style of another size
        sample((1, 4, 16, 16), (1, 4, 16, 16), alpha=0.5),
        sample((3, 2, 1, 1), (3, 2, 3, 3), alpha=1.0),      # one value per content plane
        sample((4, 6, 11), (4, 9, 5), alpha=0.7),           # unbatched (C, H, W)
        sample((1, 2, 3, 600), (1, 2, 2, 270), alpha=1.0),  # rows longer than the CPU's chunk
        sample((2, 5, 1, 8), (2, 5, 6, 1), alpha=0.25, eps=1e-3),
        sample((2, 3, 4, 5), (2, 3, 3, 6), alpha=1.0, checks=GRAD_CHECKS),
        sample((2, 3, 4, 5), (2, 3, 3, 6), alpha=0.6, eps=0.1, checks=GRAD_CHECKS),
        sample((3, 4, 5), (3, 2, 2), alpha=0.3, checks=GRAD_CHECKS),
        sample((2, 3, 5, 6), (2, 3, 4, 4), alpha=0.8, checks=[OPCHECK]),
    ]
    value_bounds = {torch.float32: Close(1e-5, 1e-5), torch.float64: Close(1e-12, 1e-12),
                    torch.float16: RelErr(2e-3), torch.bfloat16: RelErr(1e-2)}
    grad_bounds = {torch.float32: RelErr(2e-5), torch.float64: RelErr(1e-11),
                   torch.float16: RelErr(5e-3), torch.bfloat16: RelErr(3e-2)}
    grad_argnums = (0, 1)
    empty_samples = [sample((0, 3, 4, 5), (0, 3, 2, 2), alpha=1.0), sample((2, 3, 0, 5), (2, 3, 2, 2), alpha=0.5)]
    determinism_sample = samples[1]
    fallback_sample = samples[0]
    fallback_bound = Close(1e-5, 1e-5)

    call = staticmethod(ops.adain)
    reference = staticmethod(reference.adain)

    def make(self, s, device, dtype, layout):
        content = make_layout(_content(s.shapes[0], dtype, device), layout)
        style = make_layout(_style(s.shapes[1], dtype, device), layout)
        return call_of(content, style, s.alpha, s.params.get("eps", 1e-5))

    def opcheck_calls(self, call, requires_grad):
        c, s, alpha, eps = call.args
        g = torch.randn(c.shape, device=c.device, requires_grad=requires_grad)
        return [(torch.ops.pytexsynth.adain.default, (c, s, alpha, eps)),
                (torch.ops.pytexsynth._adain_backward.default, (g, c, s, alpha, eps))]

    def compile_case(self, device):
        conv = torch.nn.Conv2d(3, 4, 3).to(device)

        def f(x, s):
            return ops.adain(conv(x), s, 0.8).square().sum()

        return f, [torch.randn(2, 3, 9, 9, device=device), torch.randn(2, 4, 5, 6, device=device)], (0, 1)

    bad_inputs = [
        Bad(_adain(_randn(4, 5), _randn(4, 5)), ValueError, r"content must be a 3-D \(C, H, W\) or 4-D", "content"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 1, 2, 4, 5)), ValueError, r"got a 5-D tensor", "style"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(2, 4, 5)), ValueError, r"style must have as many dimensions", "style"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5, dtype=torch.float64)), TypeError,
            r"style must have content's dtype torch.float32", "style"),
        Bad(_adain(_randn(2, 2, 4, 5), _randn(1, 2, 4, 5)), ValueError, r"style must have content's batch size 2", "style"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 3, 4, 5)), ValueError, r"style must have content's 2 channels", "style"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 2, 0, 5)), ValueError, r"style must have at least one value", "style"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5), alpha=1.5), ValueError,
            r"alpha must be a finite number in \[0, 1\], got 1.5", "alpha"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5), alpha=math.nan), ValueError, r"alpha must be a finite", "alpha"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5), alpha="1"), TypeError, r"alpha must be a float", "alpha"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5), eps=0.0), ValueError, r"eps must be a finite number > 0", "eps"),
        Bad(_adain(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5), eps=math.inf), ValueError, r"eps must be a finite", "eps"),
        Bad(_adain(lambda d: torch.ones(1, 2, 4, 5, dtype=torch.int64, device=d), _randn(1, 2, 4, 5)), TypeError,
            r"content must be a float32, float64, float16 or bfloat16 tensor", "content"),
        Bad(_adain(lambda d: [[1.0]], _randn(1, 2, 4, 5)), TypeError, r"content must be a torch.Tensor", "content"),
    ]
    # The same checks in C++, for callers of torch.ops.pytexsynth.* directly.
    bad_op_inputs = [
        bad_op(_adain_op(_randn(4, 5), _randn(4, 5)), r"adain: content must be a 3-D \(C, H, W\) or 4-D", "content"),
        bad_op(_adain_op(_randn(1, 2, 4, 5), _randn(2, 4, 5)), r"style must have as many dimensions", "style"),
        bad_op(_adain_op(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5, dtype=torch.float64)), r"style must have content's dtype",
               "style"),
        bad_op(_adain_op(_randn(2, 2, 4, 5), _randn(3, 2, 4, 5)), r"style must have content's batch size 2", "style"),
        bad_op(_adain_op(_randn(1, 2, 4, 5), _randn(1, 4, 4, 5)), r"style must have content's 2 channels", "style"),
        bad_op(_adain_op(_randn(1, 2, 4, 5), _randn(1, 2, 4, 0)), r"style must have at least one value", "style"),
        bad_op(_adain_op(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5), alpha=-0.1), r"alpha must be a finite number in \[0, 1\]",
               "alpha"),
        bad_op(_adain_op(_randn(1, 2, 4, 5), _randn(1, 2, 4, 5), eps=-1.0), r"eps must be a finite number > 0", "eps"),
        bad_op(lambda d: torch.ops.pytexsynth._adain_backward(torch.randn(1, 2, 4, 4, device=d), torch.randn(1, 2, 4, 5, device=d),
                                                              torch.randn(1, 2, 3, 3, device=d), 1.0, 1e-5),
               r"grad_output must have content's shape \[1, 2, 4, 5\]", "grad_output"),
    ]


# ---- op-specific ---------------------------------------------------------------------------

def test_output_has_the_style_statistics(device):
    c, s = _content((2, 8, 13, 17), torch.float64, device), _style((2, 8, 9, 7), torch.float64, device)
    out = ops.adain(c, s, eps=1e-12)
    torch.testing.assert_close(out.mean((2, 3)), s.mean((2, 3)), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.std((2, 3), unbiased=False), s.std((2, 3), unbiased=False), rtol=1e-8, atol=1e-8)


def test_alpha_zero_returns_content(device):
    c, s = _content((1, 3, 6, 6), torch.float32, device), _style((1, 3, 4, 4), torch.float32, device)
    torch.testing.assert_close(ops.adain(c, s, alpha=0.0), c, rtol=0, atol=2e-6)


def test_constant_content_plane_takes_the_style_mean(device):
    c = torch.full((1, 2, 5, 5), 7.0, device=device)
    s = _style((1, 2, 4, 4), torch.float32, device)
    out = ops.adain(c, s)
    torch.testing.assert_close(out, s.mean((2, 3), keepdim=True).expand_as(out), rtol=1e-6, atol=1e-6)


def test_large_mean_does_not_cancel(device):
    # A plane with mean 1e4 and std 1: E[x^2] - E[x]^2 in float32 would lose the variance.
    g = torch.Generator().manual_seed(3)
    c = (1e4 + torch.randn(1, 4, 64, 64, generator=g, dtype=torch.float64)).float().to(device)
    s = _style((1, 4, 32, 32), torch.float32, device)
    out = ops.adain(c, s)
    ref = reference.adain(c.double(), s.double())
    assert (out.double() - ref).abs().max() < 1e-2


def test_channels_last_in_channels_last_out(device):
    c = make_layout(_content((2, 8, 5, 6), torch.float32, device), "channels_last")
    s = _style((2, 8, 3, 3), torch.float32, device)
    assert ops.adain(c, s).is_contiguous(memory_format=torch.channels_last)
    assert ops.adain(c.contiguous(), s).is_contiguous()


def test_gradient_flows_only_where_requested(device):
    c = _content((1, 3, 4, 4), torch.float32, device).requires_grad_()
    s = _style((1, 3, 4, 4), torch.float32, device)
    ops.adain(c, s, 0.5).sum().backward()
    assert c.grad is not None and torch.isfinite(c.grad).all()


def test_cpu_and_cuda_agree():
    from conftest import cuda_skip_reason

    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    c = _content((2, 64, 33, 31), torch.float32, "cpu").requires_grad_()
    s = _style((2, 64, 20, 25), torch.float32, "cpu").requires_grad_()
    cc, sc = c.detach().cuda().requires_grad_(), s.detach().cuda().requires_grad_()
    out, outc = ops.adain(c, s, 0.9), ops.adain(cc, sc, 0.9)
    g = torch.randn(out.shape)
    out.backward(g)
    outc.backward(g.cuda())
    torch.testing.assert_close(outc.cpu(), out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cc.grad.cpu(), c.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(sc.grad.cpu(), s.grad, rtol=1e-4, atol=1e-5)


def test_module():
    m = pnn.AdaIN(alpha=0.7)
    c, s = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 3, 5)
    torch.testing.assert_close(m(c, s), reference.adain(c, s, 0.7), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m(c, s, alpha=0.2), reference.adain(c, s, 0.2), rtol=1e-5, atol=1e-5)
    assert "alpha=0.7" in repr(m)
    with pytest.raises(ValueError, match="AdaIN: alpha must be a finite number in"):
        pnn.AdaIN(alpha=2.0)


# ---- property test ---------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9),
       hs=st.integers(1, 9), ws=st.integers(1, 9), alpha=st.floats(0.0, 1.0), channels_last=st.booleans())
def test_property_matches_reference(n, c, h, w, hs, ws, alpha, channels_last):
    x = _content((n, c, h, w), torch.float64, "cpu")
    s = _style((n, c, hs, ws), torch.float64, "cpu")
    if channels_last:
        x, s = x.contiguous(memory_format=torch.channels_last), s.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    s.requires_grad_()
    out, ref = ops.adain(x, s, alpha), reference.adain(x, s, alpha)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn(out.shape, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad(out, (x, s), g), torch.autograd.grad(ref, (x, s), g)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
