"""circular_pad2d against F.pad(mode='circular'): values, gradients, layouts, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import pytexsynth
from pytexsynth import nn as pnn
from pytexsynth import ops, reference

from conftest import hide_extension, FLOAT_DTYPES, LAYOUTS, assert_compiles_like_eager, make_layout

SHAPES_PADS = [
    ((2, 3, 7, 9), (1, 2, 3, 0)),     # odd sizes, asymmetric pads
    ((1, 1, 5, 5), (5, 5, 5, 5)),     # pads equal to the size: three copies per axis
    ((3, 4, 16, 12), (0, 0, 0, 0)),   # no padding is a copy
    ((2, 5, 1, 8), (3, 4, 1, 0)),     # height 1
    ((4, 6, 11), (2, 3, 4, 1)),       # unbatched (C, H, W)
    ((1, 16, 32, 33), (16, 7, 1, 31)),
]


def _rand(shape, dtype, device):
    # Non-zero, distinct values so a wrong index shows up.
    return (torch.randn(shape, dtype=torch.float64) + 3.0).to(dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape,pad", SHAPES_PADS)
def test_forward_equals_f_pad(device, dtype, layout, shape, pad):
    if layout == "channels_last" and len(shape) != 4:
        pytest.skip("channels_last needs a 4-D tensor")
    x = make_layout(_rand(shape, dtype, device), layout)
    out = ops.circular_pad2d(x, pad)
    expected = F.pad(x, pad, mode="circular")
    assert out.shape == expected.shape
    assert out.dtype == dtype and out.device == x.device
    assert torch.equal(out, expected)


@pytest.mark.parametrize("grad_layout", ["contiguous", "noncontiguous"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape,pad", SHAPES_PADS)
def test_backward_matches_f_pad(device, layout, grad_layout, shape, pad):
    if layout == "channels_last" and len(shape) != 4:
        pytest.skip("channels_last needs a 4-D tensor")
    x = make_layout(_rand(shape, torch.float32, device), layout).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out = ops.circular_pad2d(x, pad)
    grad_out = torch.randn(out.shape, device=device) + 1.0
    if grad_layout == "contiguous" and out.is_contiguous(memory_format=torch.channels_last) and out.dim() == 4:
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
    grad_out = make_layout(grad_out, grad_layout) if grad_layout == "noncontiguous" else grad_out
    (g,) = torch.autograd.grad(out, x, grad_out)
    (g_ref,) = torch.autograd.grad(F.pad(x_ref, pad, mode="circular"), x_ref, grad_out)
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_backward_low_precision_dtypes(device, dtype):
    x = _rand((2, 3, 6, 5), dtype, device).requires_grad_()
    pad = (5, 4, 6, 2)
    out = ops.circular_pad2d(x, pad)
    grad_out = torch.randn(out.shape, dtype=dtype, device=device)
    (g,) = torch.autograd.grad(out, x, grad_out)
    # Reference in float64 from the same (rounded) grad_output; ours accumulates in fp32.
    x64 = x.detach().double().requires_grad_()
    (g_ref,) = torch.autograd.grad(F.pad(x64, pad, mode="circular"), x64, grad_out.double())
    tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float64: 1e-12}[dtype]
    torch.testing.assert_close(g.double(), g_ref, rtol=tol, atol=tol)


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


def test_int_pad_means_all_sides(device):
    x = _rand((1, 2, 4, 4), torch.float32, device)
    assert torch.equal(ops.circular_pad2d(x, 3), F.pad(x, (3, 3, 3, 3), mode="circular"))


def test_empty_batch(device):
    x = torch.empty(0, 3, 4, 5, device=device)
    assert ops.circular_pad2d(x, (1, 2, 3, 4)).shape == (0, 3, 11, 8)


def test_gradcheck_and_gradgradcheck(device):
    x = torch.randn(2, 2, 4, 3, dtype=torch.float64, device=device, requires_grad=True)
    for pad in [(1, 2, 3, 0), (3, 3, 4, 4), (0, 0, 2, 1)]:
        fn = lambda t: ops.circular_pad2d(t, pad)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(device, requires_grad):
    x = torch.randn(2, 3, 5, 6, device=device, requires_grad=requires_grad)
    torch.library.opcheck(torch.ops.pytexsynth.circular_pad2d.default, (x, [1, 2, 3, 4]))
    xcl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(requires_grad)
    torch.library.opcheck(torch.ops.pytexsynth.circular_pad2d.default, (xcl, [2, 0, 1, 5]))
    g = torch.randn(2, 3, 12, 9, device=device, requires_grad=requires_grad)
    torch.library.opcheck(torch.ops.pytexsynth._circular_pad2d_backward.default, (g, [1, 2, 3, 4]))


def test_torch_compile_fullgraph(device):
    conv = pnn.CircularConv2d(3, 4, 3).to(device)

    def f(x):
        return conv(ops.circular_pad2d(x, (1, 1, 2, 2))).relu().sum()

    assert_compiles_like_eager(f, torch.randn(2, 3, 8, 8, device=device))


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


# ---- bad input -----------------------------------------------------------------------------

BAD = [
    (lambda d: torch.randn(4, 5, device=d), (1, 1, 1, 1), ValueError, r"x must be a 3-D \(C, H, W\) or 4-D"),
    (lambda d: torch.randn(1, 1, 1, 4, 5, device=d), (1, 1, 1, 1), ValueError, r"got a 5-D tensor"),
    (lambda d: torch.randn(1, 2, 4, 5, device=d), (1, -1, 0, 0), ValueError, r"pad\[1\] \(right\) = -1 is negative"),
    (lambda d: torch.randn(1, 2, 4, 5, device=d), (6, 0, 0, 0), ValueError, r"pad\[0\] \(left\) = 6 exceeds the input width 5"),
    (lambda d: torch.randn(1, 2, 4, 5, device=d), (0, 0, 0, 5), ValueError, r"pad\[3\] \(bottom\) = 5 exceeds the input height 4"),
    (lambda d: torch.randn(1, 2, 4, 5, device=d), (1, 1, 1), ValueError, r"pad must have 4 entries"),
    (lambda d: torch.randn(1, 2, 4, 5, device=d), (1, 1, 1.5, 1), TypeError, r"pad\[2\] \(top\) must be an int"),
    (lambda d: torch.randn(1, 2, 4, 5, device=d), True, TypeError, r"pad must be an int or a sequence"),
    (lambda d: torch.ones(1, 2, 4, 5, dtype=torch.int64, device=d), (1, 1, 1, 1), TypeError,
     r"x must be a float32, float64, float16 or bfloat16 tensor, got torch.int64"),
    (lambda d: [[1.0]], (1, 1, 1, 1), TypeError, r"x must be a torch.Tensor"),
]


@pytest.mark.parametrize("make,pad,exc,msg", BAD)
def test_bad_input_wrapper(device, make, pad, exc, msg):
    with pytest.raises(exc, match=msg):
        ops.circular_pad2d(make(device), pad)


# The same checks in C++, for callers of torch.ops.pytexsynth.* directly.
BAD_CPP = [
    (torch.randn(4, 5), [1, 1, 1, 1], r"circular_pad2d: x must be a 3-D \(C, H, W\) or 4-D"),
    (torch.randn(1, 2, 4, 5), [1, -1, 0, 0], r"pad\[1\] \(right\) = -1 is negative"),
    (torch.randn(1, 2, 4, 5), [6, 0, 0, 0], r"pad\[0\] \(left\) = 6 exceeds the input width 5"),
    (torch.randn(1, 2, 4, 5), [0, 0, 5, 0], r"pad\[2\] \(top\) = 5 exceeds the input height 4"),
    (torch.randn(1, 2, 4, 5), [1, 1, 1], r"pad must have 4 entries"),
    (torch.ones(1, 2, 4, 5, dtype=torch.int32), [1, 1, 1, 1], r"x must be a float32, float64, float16 or bfloat16 tensor, got Int"),
]


@pytest.mark.parametrize("x,pad,msg", BAD_CPP)
def test_bad_input_op(device, x, pad, msg):
    with pytest.raises(RuntimeError, match=msg):
        torch.ops.pytexsynth.circular_pad2d(x.to(device), pad)


def test_bad_input_backward_op(device):
    with pytest.raises(RuntimeError, match=r"grad_output of shape \[1, 2, 3, 3\] is smaller than the pads"):
        torch.ops.pytexsynth._circular_pad2d_backward(torch.randn(1, 2, 3, 3, device=device), [2, 2, 0, 0])


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


# ---- modules, reference and fallback ---------------------------------------------------------

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


def test_fallback_warns_once_and_matches(monkeypatch):
    hide_extension(monkeypatch)
    x = torch.randn(1, 2, 4, 4)
    with pytest.warns(RuntimeWarning, match="pure-PyTorch reference"):
        out = ops.circular_pad2d(x, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.circular_pad2d(x, 1)  # no second warning
    assert torch.equal(out, F.pad(x, (1, 1, 1, 1), mode="circular"))


def test_deterministic(device):
    x = torch.randn(3, 4, 9, 10, device=device, requires_grad=True)
    g = torch.randn(3, 4, 17, 19, device=device)
    runs = [torch.autograd.grad(ops.circular_pad2d(x, (4, 5, 4, 4)), x, g)[0] for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])


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
