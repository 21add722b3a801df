"""circular_pad2d against F.pad(mode='circular'): values, gradients, layouts, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import pytexsynth
from pytexsynth import nn as pnn
from pytexsynth import ops, reference

from conftest import FLOAT_DTYPES, make_layout
from op_contract import GRAD_CHECKS, OPCHECK, Bad, Close, Exact, OpContract, bad_op, call_of, sample, seeded_randn


def _rand(shape, dtype, device):
    # Non-zero, distinct values so a wrong index shows up.
    return (torch.randn(shape, dtype=torch.float64) + 3.0).to(dtype=dtype, device=device)


def _randn(*shape, dtype=torch.float32):
    return lambda d: torch.randn(*shape, dtype=dtype, device=d)


def _ones(*shape, dtype):
    return lambda d: torch.ones(*shape, dtype=dtype, device=d)


def _pad(make, pad):
    return lambda d: ops.circular_pad2d(make(d), pad)


def _pad_op(make, pad):
    return lambda d: torch.ops.pytexsynth.circular_pad2d(make(d), pad)


class TestCircularPad2d(OpContract):
    samples = [
        sample((2, 3, 7, 9), pad=(1, 2, 3, 0)),     # odd sizes, asymmetric pads
        sample((1, 1, 5, 5), pad=(5, 5, 5, 5)),     # pads equal to the size: three copies per axis
        sample((3, 4, 16, 12), pad=(0, 0, 0, 0)),   # no padding is a copy
        sample((2, 5, 1, 8), pad=(3, 4, 1, 0)),     # height 1
        sample((4, 6, 11), pad=(2, 3, 4, 1)),       # unbatched (C, H, W)
        sample((1, 16, 32, 33), pad=(16, 7, 1, 31)),
        sample((2, 3, 6, 5), pad=(5, 4, 6, 2)),     # wraps almost whole copies back onto x
        sample((1, 2, 4, 4), pad=3),                # an int pads all four sides
        sample((1, 2, 4, 4), pad=1),
        sample((3, 4, 9, 10), pad=(4, 5, 4, 4)),
        *(sample((2, 2, 4, 3), pad=pad, checks=GRAD_CHECKS) for pad in [(1, 2, 3, 0), (3, 3, 4, 4), (0, 0, 2, 1)]),
        sample((2, 3, 5, 6), pad=(1, 2, 3, 4), checks=[OPCHECK]),
        sample((2, 3, 5, 6), pad=(2, 0, 1, 5), checks=[OPCHECK]),
    ]
    value_bounds = {dtype: Exact() for dtype in FLOAT_DTYPES}
    # The backward accumulates in float32; the reference in float64 from the same gradient.
    grad_bounds = {torch.float32: Close(1e-6, 1e-6), torch.float64: Close(1e-12, 1e-12),
                   torch.float16: Close(2e-3, 2e-3), torch.bfloat16: Close(1e-2, 1e-2)}
    empty_samples = [sample((0, 3, 4, 5), pad=(1, 2, 3, 4))]
    determinism_sample = samples[9]
    fallback_sample = samples[8]

    call = staticmethod(ops.circular_pad2d)

    @staticmethod
    def reference(x, pad):
        return F.pad(x, (pad,) * 4 if isinstance(pad, int) else pad, mode="circular")

    def make(self, s, device, dtype, layout):
        return call_of(make_layout(_rand(s.shape, dtype, device), layout), s.pad)

    def grad_outputs(self, call, out, layout):
        # A dense gradient in the output's layout, and a non-contiguous one.
        g = seeded_randn(out.shape, out.dtype, out.device) + 1.0
        if out.dim() == 4 and out.is_contiguous(memory_format=torch.channels_last):
            g = g.contiguous(memory_format=torch.channels_last)
        return [g, make_layout(g, "noncontiguous")]

    def opcheck_calls(self, call, requires_grad):
        x, pad = call.args
        out = ops.circular_pad2d(x.detach(), pad)
        g = torch.randn(out.shape, device=x.device, requires_grad=requires_grad)
        return [(torch.ops.pytexsynth.circular_pad2d.default, (x, list(pad))),
                (torch.ops.pytexsynth._circular_pad2d_backward.default, (g, list(pad)))]

    def compile_case(self, device):
        conv = pnn.CircularConv2d(3, 4, 3).to(device)

        def f(x):
            return conv(ops.circular_pad2d(x, (1, 1, 2, 2))).relu().sum()

        return f, [torch.randn(2, 3, 8, 8, device=device)], (0,)

    bad_inputs = [
        Bad(_pad(_randn(4, 5), (1, 1, 1, 1)), ValueError, r"x must be a 3-D \(C, H, W\) or 4-D", "x"),
        Bad(_pad(_randn(1, 1, 1, 4, 5), (1, 1, 1, 1)), ValueError, r"got a 5-D tensor", "x"),
        Bad(_pad(_randn(1, 2, 4, 5), (1, -1, 0, 0)), ValueError, r"pad\[1\] \(right\) = -1 is negative", "pad"),
        Bad(_pad(_randn(1, 2, 4, 5), (6, 0, 0, 0)), ValueError, r"pad\[0\] \(left\) = 6 exceeds the input width 5",
            "pad"),
        Bad(_pad(_randn(1, 2, 4, 5), (0, 0, 0, 5)), ValueError,
            r"pad\[3\] \(bottom\) = 5 exceeds the input height 4", "pad"),
        Bad(_pad(_randn(1, 2, 4, 5), (1, 1, 1)), ValueError, r"pad must have 4 entries", "pad"),
        Bad(_pad(_randn(1, 2, 4, 5), (1, 1, 1.5, 1)), TypeError, r"pad\[2\] \(top\) must be an int", "pad"),
        Bad(_pad(_randn(1, 2, 4, 5), True), TypeError, r"pad must be an int or a sequence", "pad"),
        Bad(_pad(_ones(1, 2, 4, 5, dtype=torch.int64), (1, 1, 1, 1)), TypeError,
            r"x must be a float32, float64, float16 or bfloat16 tensor, got torch.int64", "x"),
        Bad(_pad(lambda d: [[1.0]], (1, 1, 1, 1)), TypeError, r"x must be a torch.Tensor", "x"),
    ]
    # The same checks in C++, for callers of torch.ops.pytexsynth.* directly.
    bad_op_inputs = [
        bad_op(_pad_op(_randn(4, 5), [1, 1, 1, 1]), r"circular_pad2d: x must be a 3-D \(C, H, W\) or 4-D", "x"),
        bad_op(_pad_op(_randn(1, 2, 4, 5), [1, -1, 0, 0]), r"pad\[1\] \(right\) = -1 is negative", "pad"),
        bad_op(_pad_op(_randn(1, 2, 4, 5), [6, 0, 0, 0]), r"pad\[0\] \(left\) = 6 exceeds the input width 5", "pad"),
        bad_op(_pad_op(_randn(1, 2, 4, 5), [0, 0, 5, 0]), r"pad\[2\] \(top\) = 5 exceeds the input height 4", "pad"),
        bad_op(_pad_op(_randn(1, 2, 4, 5), [1, 1, 1]), r"pad must have 4 entries", "pad"),
        bad_op(_pad_op(_ones(1, 2, 4, 5, dtype=torch.int32), [1, 1, 1, 1]),
               r"x must be a float32, float64, float16 or bfloat16 tensor, got Int", "x"),
        bad_op(lambda d: torch.ops.pytexsynth._circular_pad2d_backward(torch.randn(1, 2, 3, 3, device=d), [2, 2, 0, 0]),
               r"grad_output of shape \[1, 2, 3, 3\] is smaller than the pads", "grad_output"),
    ]


# ---- op-specific ---------------------------------------------------------------------------

def test_sum_backward_broadcast_grad(device):
    # .sum() hands the backward an expanded (all-zero-stride) gradient.
    x = _rand((2, 3, 4, 5), torch.float32, device).requires_grad_()
    ops.circular_pad2d(x, (4, 5, 4, 4)).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    F.pad(x_ref, (4, 5, 4, 4), mode="circular").sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=0)


def test_channels_last_in_channels_last_out(device):
    x = make_layout(_rand((2, 8, 5, 6), torch.float32, device), "channels_last")
    out = ops.circular_pad2d(x, 2)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert ops.circular_pad2d(x.contiguous(), 2).is_contiguous()


def test_cpu_and_cuda_agree_bitwise():
    from conftest import cuda_skip_reason

    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    x = torch.randn(2, 5, 9, 7, requires_grad=True)
    xc = x.detach().cuda().requires_grad_()
    pad = (7, 3, 9, 2)
    out, outc = ops.circular_pad2d(x, pad), ops.circular_pad2d(xc, pad)
    g = torch.randn(out.shape)
    out.backward(g)
    outc.backward(g.cuda())
    assert torch.equal(out, outc.cpu())
    assert torch.equal(x.grad, xc.grad.cpu())


# ---- property test ---------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9),
    data=st.data(), channels_last=st.booleans(),
)
def test_property_matches_f_pad(n, c, h, w, data, channels_last):
    pad = (data.draw(st.integers(0, w)), data.draw(st.integers(0, w)),
           data.draw(st.integers(0, h)), data.draw(st.integers(0, h)))
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    if channels_last:
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    out = ops.circular_pad2d(x, pad)
    ref = F.pad(x, pad, mode="circular")
    assert torch.equal(out, ref)
    g = torch.randn(out.shape, dtype=torch.float64)
    torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(ref, x, g)[0],
                               rtol=1e-12, atol=1e-12)


# ---- modules and reference ---------------------------------------------------------------

@pytest.mark.parametrize("kernel_size,dilation", [(3, 1), (5, 2), (1, 1), ((3, 5), 1)])
def test_circular_conv_matches_conv2d_circular(device, kernel_size, dilation):
    ours = pnn.CircularConv2d(3, 4, kernel_size, dilation=dilation).to(device)
    ks = ours.kernel_size
    ref = torch.nn.Conv2d(3, 4, ks, dilation=dilation, padding=(dilation * (ks[0] - 1) // 2, dilation * (ks[1] - 1) // 2),
                          padding_mode="circular").to(device)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 12, 13, device=device)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_circular_conv_output_is_periodic():
    # A circular convolution commutes with rolling its input: the property that makes tiles.
    conv = pnn.CircularConv2d(2, 3, 3)
    x = torch.randn(1, 2, 10, 10)
    torch.testing.assert_close(conv(torch.roll(x, (3, 4), (2, 3))), torch.roll(conv(x), (3, 4), (2, 3)))


def test_circular_pad_module():
    m = pnn.CircularPad2d((1, 2, 3, 4))
    x = torch.randn(1, 2, 5, 5)
    assert torch.equal(m(x), F.pad(x, (1, 2, 3, 4), mode="circular"))
    assert "padding=(1, 2, 3, 4)" in repr(m)
    with pytest.raises(ValueError, match="CircularPad2d: pad must have 4 entries"):
        pnn.CircularPad2d((1, 2))


def test_reference_is_f_pad():
    x = torch.randn(2, 3, 6, 7)
    assert torch.equal(reference.circular_pad2d(x, (1, 2, 3, 4)), F.pad(x, (1, 2, 3, 4), mode="circular"))


@pytest.mark.skipif(not torch.cuda.is_available() or not pytexsynth.has_cuda(), reason="no CUDA device/kernels")
def test_cuda_64bit_indexing():
    # Over 2^31 elements: the kernel must switch to 64-bit indices.
    free, _ = torch.cuda.mem_get_info()
    if free < 12 * 2**30:
        pytest.skip("needs 12 GiB of free GPU memory")
    x = torch.randn(1, 2, 32768, 32768, dtype=torch.bfloat16, device="cuda")
    out = ops.circular_pad2d(x, (1, 1, 1, 1))
    assert torch.equal(out[:, :, -1, -1], x[:, :, 0, 0])
    assert torch.equal(out[:, :, 1:-1, 1:-1], x)
