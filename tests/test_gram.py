"""gram / gram_loss / GramLoss against float64 references: values, gradients, layouts, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytexsynth import ops, reference

from conftest import cuda_skip_reason, make_layout
from op_contract import GRAD_CHECKS, OPCHECK, Bad, OpContract, RelErr, bad_op, call_of, rel_err, sample

# Odd C and H*W, B = 1..3, a single channel, a single pixel row.
SHAPES = [(1, 3, 5, 7), (2, 8, 9, 11), (3, 17, 13, 6), (2, 1, 4, 4), (1, 33, 1, 19)]
LAYOUTS = ["contiguous", "channels_last", "noncontiguous", "transposed"]
NORMALIZE = ["hw", "chw", "none"]
TARGET_KINDS = ["2d", "batched", "one"]


def _rand(shape, dtype=torch.float32, device="cpu"):
    # Fresh, non-zero, mixed-sign features.
    return (torch.randn(shape, dtype=torch.float64) + 0.5).to(dtype=dtype, device=device)


def _target(b, c, kind, device, dtype=torch.float32):
    shape = {"2d": (c, c), "batched": (b, c, c), "one": (1, c, c)}[kind]
    return (torch.rand(shape, dtype=torch.float64) + 0.1).to(dtype=dtype, device=device)


def _gram64(x, normalize="hw"):
    return reference.gram(x.detach().double(), normalize)


def _loss64(x, target, weight=1.0, normalize="hw"):
    return reference.gram_loss(x.double(), target.double(), weight, normalize)


def _check_ieee_against_float64(x, t):
    """fp32 "ieee": G exactly symmetric and within 1e-5 of float64; the loss is 0 at its own G;
    loss and gradient within 1e-5 of the float64 autograd reference. Returns G and that reference."""
    g = ops.gram(x.detach())
    assert torch.equal(g, g.mT)
    assert rel_err(g, _gram64(x)) < 1e-5
    assert ops.gram_loss(x.detach(), g).item() == 0.0
    loss = ops.gram_loss(x, t)
    (grad,) = torch.autograd.grad(loss, x)
    x64 = x.detach().double().requires_grad_()
    ref = _loss64(x64, t)
    (ref_grad,) = torch.autograd.grad(ref, x64)
    assert rel_err(loss, ref) < 1e-5 and rel_err(grad, ref_grad) < 1e-5
    return g, ref


def _x(*shape):
    return torch.randn(*shape)


# ---- the contracts ---------------------------------------------------------------------------

class TestGram(OpContract):
    samples = [
        *(sample(shape, normalize=n) for shape in SHAPES for n in NORMALIZE),
        sample((2, 6, 7, 5), normalize="hw"),
        *(sample((2, 7, 5, 9), normalize=n) for n in NORMALIZE),
        *(sample((2, 3, 4, 3), normalize=n, checks=GRAD_CHECKS) for n in NORMALIZE),
        sample((2, 3, 5, 6), normalize="hw", checks=[OPCHECK]),
    ]
    value_bounds = {torch.float32: RelErr(1e-5), torch.float64: RelErr(1e-12), torch.float16: RelErr(2e-3),
                    torch.bfloat16: RelErr(1e-2)}
    grad_bounds = value_bounds
    grad_keeps_layout = True
    empty_samples = [sample((0, 3, 4, 4), normalize="hw"), sample((2, 3, 0, 4), normalize="hw")]
    determinism_sample = samples[8]
    fallback_sample = sample((1, 3, 4, 4), normalize="hw")
    fallback_bound = RelErr(1e-5)

    call = staticmethod(ops.gram)
    reference = staticmethod(reference.gram)

    def make(self, s, device, dtype, layout):
        return call_of(make_layout(_rand(s.shape, dtype, device), layout), s.normalize)

    def check_value(self, call, dtype, layout):
        g = super().check_value(call, dtype, layout)
        assert g.is_contiguous()

    # The gradient output is random (B, C, C), not symmetric: the backward must use dG + dG^T.

    def opcheck_calls(self, call, requires_grad):
        x, normalize = call.args
        g = torch.randn(2, 3, 3, device=x.device, requires_grad=requires_grad)
        return [(torch.ops.pytexsynth.gram.default, (x, normalize, "ieee")),
                (torch.ops.pytexsynth.gram.default, (x, "chw", "bf16")),
                (torch.ops.pytexsynth._gram_backward.default, (g, x, "hw", "ieee"))]

    def compile_case(self, device):
        def f(x):
            return ops.gram(torch.nn.functional.avg_pool2d(x, 2), "chw").sum()

        return f, [_rand((2, 4, 6, 6), device=device)], (0,)

    bad_input_devices = bad_op_input_devices = ("cpu",)
    bad_inputs = [
        Bad(lambda d: ops.gram(_x(3, 4, 5)), ValueError, r"gram: x must be a 4-D \(B, C, H, W\) tensor, got a 3-D",
            "x"),
        Bad(lambda d: ops.gram(torch.ones(1, 2, 3, 3, dtype=torch.int64)), TypeError,
            r"gram: x must be a float32, float64, float16 or bfloat16 tensor, got torch.int64", "x"),
        Bad(lambda d: ops.gram([[1.0]]), TypeError, r"gram: x must be a torch.Tensor", "x"),
        Bad(lambda d: ops.gram(_x(1, 2, 3, 3), normalize="c"), ValueError,
            r"gram: normalize must be one of 'hw', 'chw', 'none'", "normalize"),
        Bad(lambda d: ops.gram(_x(1, 2, 3, 3), normalize=None), TypeError, r"gram: normalize must be one of",
            "normalize"),
        Bad(lambda d: ops.gram(_x(1, 2, 3, 3), precision="fp16"), ValueError,
            r"gram: precision must be one of 'ieee', 'tf32', 'bf16'", "precision"),
    ]
    # The same checks in C++, for callers of torch.ops.pytexsynth.* directly.
    bad_op_inputs = [
        bad_op(lambda d: torch.ops.pytexsynth.gram(_x(3, 4, 5), "hw", "ieee"),
               r"gram: x must be a 4-D \(B, C, H, W\) tensor", "x"),
        bad_op(lambda d: torch.ops.pytexsynth.gram(torch.ones(1, 2, 3, 3, dtype=torch.int32), "hw", "ieee"),
               r"gram: x must be a float32, float64, float16 or bfloat16 tensor, got Int", "x"),
        bad_op(lambda d: torch.ops.pytexsynth.gram(_x(1, 2, 3, 3), "w", "ieee"),
               r"gram: normalize must be 'hw', 'chw' or 'none', got 'w'", "normalize"),
        bad_op(lambda d: torch.ops.pytexsynth.gram(_x(1, 2, 3, 3), "hw", "x"),
               r"gram: precision must be 'ieee', 'tf32' or 'bf16', got 'x'", "precision"),
        bad_op(lambda d: torch.ops.pytexsynth._gram_backward(_x(2, 3, 4), _x(2, 3, 4, 4), "hw", "ieee"),
               r"_gram_backward: grad_output must be \(2, 3, 3\), got \[2, 3, 4\]", "grad_output"),
    ]


# The normalisation of each shape of the gram_loss comparison (each of the three appears).
SHAPE_NORMALIZE = list(zip(SHAPES, ["none", "hw", "chw", "hw", "none"]))


class TestGramLoss(OpContract):
    samples = [
        *(sample(shape, target=kind, weight=0.37, normalize=n)
          for shape, n in SHAPE_NORMALIZE for kind in TARGET_KINDS),
        sample((2, 6, 7, 5), target="2d", weight=1.5, normalize="hw"),
        sample((2, 40, 31, 33), target="2d", weight=1.0, normalize="hw"),
        *(sample((2, 3, 4, 3), target=kind, weight=w, normalize=n, checks=GRAD_CHECKS)
          for kind, w in [("2d", 0.6), ("batched", 1.3)] for n in NORMALIZE),
        sample((2, 3, 5, 6), target="2d", weight=0.5, normalize="hw", checks=[OPCHECK]),
    ]
    value_bounds = {torch.float32: RelErr(1e-5), torch.float64: RelErr(1e-12), torch.float16: RelErr(1e-2),
                    torch.bfloat16: RelErr(5e-2)}
    grad_bounds = value_bounds
    check_argnums = (0, 1)  # gradcheck and opcheck of the target too
    grad_keeps_layout = True
    empty_samples = [sample((0, 3, 4, 4), target="2d", weight=1.0, normalize="hw"),
                     sample((2, 3, 0, 4), target="2d", weight=1.0, normalize="hw")]
    determinism_sample = samples[16]
    fallback_sample = sample((1, 3, 4, 4), target="2d", weight=1.0, normalize="hw")
    fallback_bound = RelErr(1e-5)

    call = staticmethod(ops.gram_loss)
    reference = staticmethod(reference.gram_loss)

    def make(self, s, device, dtype, layout):
        x = make_layout(_rand(s.shape, dtype, device), layout)
        return call_of(x, _target(s.shape[0], s.shape[1], s.target, device, dtype), s.weight, s.normalize)

    def fallback_followups(self, call):
        x = call.args[0]
        return [lambda: self.call(*call.args), lambda: ops.gram(x)]  # another op: no second warning

    def opcheck_calls(self, call, requires_grad):
        x, t, weight, normalize = call.args
        t3 = torch.randn(2, 3, 3, device=x.device, requires_grad=requires_grad)
        gl = torch.randn((), device=x.device, requires_grad=requires_grad)
        diff = torch.randn(2, 3, 3, device=x.device)
        return [(torch.ops.pytexsynth.gram_loss.default, (x, t, weight, normalize, "ieee")),
                (torch.ops.pytexsynth.gram_loss.default, (x, t3, 2.0, "none", "tf32")),
                (torch.ops.pytexsynth._gram_loss_backward.default, (gl, diff, x, 0.5, "chw", "ieee"))]

    def compile_case(self, device):
        target = ops.gram(_rand((1, 4, 6, 6), device=device))[0]

        def f(x):
            feats = torch.nn.functional.avg_pool2d(x, 2)
            return ops.gram_loss(x, target, 2.0) + ops.gram(feats, "chw").sum()

        return f, [_rand((2, 4, 6, 6), device=device)], (0,)

    bad_input_devices = bad_op_input_devices = ("cpu",)
    bad_inputs = [
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4), torch.rand(3, 3)), ValueError, r"gram_loss: x must be a 4-D", "x"),
        Bad(lambda d: ops.gram_loss(torch.ones(2, 3, 4, 4, dtype=torch.int32), torch.rand(3, 3)), TypeError,
            r"x must be a float32.*got torch.int32", "x"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(4, 4)), ValueError,
            r"gram_loss: target of shape \(4, 4\) does not match x's 3 channels; expected \(3, 3\) or \(2, 3, 3\)",
            "target"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 4)), ValueError, r"does not match x's 3 channels",
            "target"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 3, 3)), ValueError,
            r"target of shape \(3, 3, 3\) has batch 3 but x has batch 2", "target"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(3)), ValueError,
            r"target must be \(C, C\) or \(B, C, C\), got a 1-D", "target"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 3, dtype=torch.float64)), TypeError,
            r"target must have the dtype of x \(torch.float32\), got torch.float64", "target"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 3, device="meta")), ValueError,
            r"gram_loss: x and target must be on the same device, got cpu and meta", "target"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), "T"), TypeError, r"target must be a torch.Tensor", "target"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 3), weight="1"), TypeError,
            r"weight must be a float", "weight"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 3), normalize="HW"), ValueError,
            r"normalize must be one of", "normalize"),
        Bad(lambda d: ops.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 3), precision="tf16"), ValueError,
            r"precision must be one of", "precision"),
    ]
    bad_op_inputs = [
        bad_op(lambda d: torch.ops.pytexsynth.gram_loss(_x(2, 3, 4, 4), torch.rand(4, 4), 1.0, "hw", "ieee"),
               r"gram_loss: target of shape \[4, 4\] does not match x's 3 channels", "target"),
        bad_op(lambda d: torch.ops.pytexsynth.gram_loss(_x(2, 3, 4, 4), torch.rand(5, 3, 3), 1.0, "hw", "ieee"),
               r"gram_loss: target of shape \[5, 3, 3\] has batch 5 but x has batch 2", "target"),
        bad_op(lambda d: torch.ops.pytexsynth.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 3).double(), 1.0, "hw", "ieee"),
               r"gram_loss: target must have the dtype of x \(Float\), got Double", "target"),
        bad_op(lambda d: torch.ops.pytexsynth._gram_loss_backward(torch.tensor(1.0), torch.rand(2, 3, 3).double(),
                                                                  _x(2, 3, 4, 4), 1.0, "hw", "ieee"),
               r"_gram_loss_backward: diff must be Float, got Double", "diff"),
        bad_op(lambda d: torch.ops.pytexsynth._gram_loss_backward(torch.ones(2), torch.rand(2, 3, 3), _x(2, 3, 4, 4),
                                                                  1.0, "hw", "ieee"),
               r"_gram_loss_backward: grad_loss must hold one value", "grad_loss"),
    ]


# ---- gram ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_gram_exactly_symmetric(device, layout):
    x = make_layout(_rand((3, 37, 23, 29), device=device), layout)
    for precision in ("ieee", "bf16"):
        g = ops.gram(x, precision=precision)
        assert torch.equal(g, g.mT)


def test_gram_backward_expanded_grad(device):
    # .sum() hands the backward an all-zero-stride gradient.
    x = _rand((2, 4, 3, 5), torch.float64, device).requires_grad_()
    ops.gram(x).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    reference.gram(x_ref).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)


# ---- gram_loss -------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["ieee", "tf32", "bf16"])
@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_loss_exactly_zero_at_own_target(device, layout, normalize, precision):
    for dtype in (torch.float32, torch.float64):
        x = make_layout(_rand((2, 19, 11, 13), dtype, device), layout).requires_grad_()
        target = ops.gram(x.detach(), normalize, precision)
        loss = ops.gram_loss(x, target, 3.0, normalize, precision)
        assert loss.item() == 0.0
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.count_nonzero(grad).item() == 0


def test_long_reduction_accuracy(device):
    # Post-ReLU features with a long H*W reduction and C beyond one 128-wide GEMM tile: fp32
    # stays within 1e-5 of float64 (the bound), and the loss at its own target is 0.
    x = torch.randn(1, 130, 150, 170, device=device).relu_().requires_grad_()
    t = ops.gram(torch.randn(1, 130, 150, 170, device=device).relu_())[0]
    g, _ = _check_ieee_against_float64(x, t)
    assert ops.gram_loss(x.detach(), g[0]).item() == 0.0  # a (C, C) target too


def test_target_broadcast_over_batch(device):
    x = _rand((3, 5, 6, 7), device=device)
    t = _target(3, 5, "2d", device)
    a = ops.gram_loss(x, t)
    assert torch.equal(a, ops.gram_loss(x, t[None]))
    assert torch.equal(a, ops.gram_loss(x, t.expand(3, 5, 5)))
    assert torch.equal(a, ops.gram_loss(x, t.expand(3, 5, 5).contiguous()))
    # A non-contiguous (transposed) target is read through its strides.
    tt = torch.rand(5, 5, device=device)
    torch.testing.assert_close(ops.gram_loss(x, tt.mT), ops.gram_loss(x, tt.mT.contiguous()), rtol=0, atol=0)


def test_non_symmetric_target_gradient(device):
    # D = G - T is not symmetric: the backward must use D + D^T.
    x = _rand((2, 4, 5, 3), torch.float64, device).requires_grad_()
    t = torch.randn(2, 4, 4, dtype=torch.float64, device=device)
    (grad,) = torch.autograd.grad(ops.gram_loss(x, t), x)
    x_ref = x.detach().clone().requires_grad_()
    (ref,) = torch.autograd.grad(reference.gram_loss(x_ref, t), x_ref)
    torch.testing.assert_close(grad, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["2d", "batched", "one"])
def test_target_gradient(device, kind):
    x = _rand((2, 4, 3, 3), torch.float64, device)
    t = _target(2, 4, kind, device, torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(ops.gram_loss(x, t, 0.8), t, torch.tensor(1.7, dtype=torch.float64, device=device))
    t_ref = t.detach().clone().requires_grad_()
    (ref,) = torch.autograd.grad(reference.gram_loss(x, t_ref, 0.8), t_ref, torch.tensor(1.7, dtype=torch.float64,
                                                                                        device=device))
    assert grad.shape == t.shape
    torch.testing.assert_close(grad, ref, rtol=1e-12, atol=1e-12)


def test_nan_propagates(device):
    x = _rand((2, 4, 5, 5), device=device)
    x[1, 2, 3, 1] = float("nan")
    g = ops.gram(x)
    assert torch.isnan(g[1, 2]).all() and torch.isnan(g[1, :, 2]).all()
    assert not torch.isnan(g[0]).any() and not torch.isnan(g[1, 0, 1])
    t = ops.gram(_rand((1, 4, 5, 5), device=device))[0]
    xg = x.clone().requires_grad_()
    loss = ops.gram_loss(xg, t)
    assert torch.isnan(loss)
    (grad,) = torch.autograd.grad(loss, xg)
    assert torch.isnan(grad[1]).all()
    # A NaN in the target (one entry, below the diagonal) poisons the loss too.
    t_nan = t.clone()
    t_nan[3, 0] = float("nan")
    assert torch.isnan(ops.gram_loss(_rand((2, 4, 5, 5), device=device), t_nan))
    inf = _rand((1, 4, 5, 5), device=device)
    inf[0, 0, 0, 0] = float("inf")
    assert torch.isinf(ops.gram_loss(inf, t))


def test_gram_loss_backward_op_gradcheck(device):
    # The backward ops are differentiable too; D is an output of gram_loss, so the double
    # backward reaches x through it.
    x = torch.randn(2, 3, 4, 3, dtype=torch.float64, device=device, requires_grad=True)
    d = torch.randn(2, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
    gl = torch.tensor(1.3, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda g, dd, a: torch.ops.pytexsynth._gram_loss_backward(g, dd, a, 0.4, "none", "ieee"), (gl, d, x))


# ---- precision -------------------------------------------------------------------------------

def test_bf16_precision(device):
    x = _rand((2, 16, 12, 10), device=device).requires_grad_()
    t = _target(2, 16, "2d", device)
    # Against the reference of the same semantics (bf16 operands, exact fp32 products): tight.
    g = ops.gram(x.detach(), precision="bf16")
    g_ref = reference.gram(x.detach(), precision="bf16")
    assert rel_err(g, g_ref) < 1e-5
    assert rel_err(g, _gram64(x)) < 2e-2
    loss = ops.gram_loss(x, t, precision="bf16")
    (grad,) = torch.autograd.grad(loss, x)
    x64 = x.detach().double().requires_grad_()
    ref = _loss64(x64, t)
    (ref_grad,) = torch.autograd.grad(ref, x64)
    assert rel_err(loss, ref) < 2e-2
    assert rel_err(grad, ref_grad) < 2e-2
    assert rel_err(grad, ref_grad) > 0  # it does round


def test_tf32_is_ieee_on_cpu():
    x = _rand((2, 8, 9, 7))
    t = _target(2, 8, "2d", "cpu")
    assert torch.equal(ops.gram(x, precision="tf32"), ops.gram(x))
    assert torch.equal(ops.gram_loss(x, t, precision="tf32"), ops.gram_loss(x, t))


def test_cpu_and_cuda_agree():
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    x = _rand((2, 64, 70, 90)).requires_grad_()
    xc = x.detach().cuda().requires_grad_()
    t = _target(2, 64, "2d", "cpu")
    loss, loss_c = ops.gram_loss(x, t), ops.gram_loss(xc, t.cuda())
    loss.backward()
    loss_c.backward()
    assert rel_err(loss_c.cpu(), loss) < 1e-5
    assert rel_err(xc.grad.cpu(), x.grad) < 1e-5


def test_cuda_split_sum_and_tf32():
    # Large H*W: the CUDA forward slices H*W into several partial GEMMs (and a tail slice).
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    x = _rand((2, 64, 257, 129), device="cuda").requires_grad_()
    t = _target(2, 64, "2d", "cuda")
    _, ref = _check_ieee_against_float64(x, t)
    loss32 = ops.gram_loss(x, t, precision="tf32")
    assert 0 < rel_err(ops.gram(x.detach(), precision="tf32"), _gram64(x)) < 5e-3
    assert rel_err(loss32, ref) < 1e-2


# ---- tile schedule ---------------------------------------------------------------------------

def _schedule(b, c, n):
    tile, tiles, pairs, chunk, chunks, items = torch.ops.pytexsynth._gram_schedule(b, c, n)
    return dict(tile=tile, tiles=tiles, pairs=pairs, chunk=chunk, chunks=chunks, items=items)


SCHEDULE_CASES = [
    ((2, 300, 67, 131), "tiles=3 (last 44 wide), chunks with a remainder, B=2"),
    ((1, 129, 130, 140), "a 1-channel last tile, 4 chunks with a remainder"),
    ((1, 100, 97, 101), "C below one tile, 2 chunks"),
    ((3, 256, 30, 40), "C exactly 2 tiles, one chunk, B=3"),
]


def test_schedule_cases_exercise_what_they_claim():
    s = [_schedule(b, c, h * w) for (b, c, h, w), _ in SCHEDULE_CASES]
    assert s[0]["tiles"] == 3 and 300 % s[0]["tile"] == 44 and s[0]["chunks"] > 1 and 67 * 131 % s[0]["chunk"] != 0
    assert s[1]["tiles"] == 2 and 129 % s[1]["tile"] == 1 and s[1]["chunks"] == 4 and 130 * 140 % s[1]["chunk"] != 0
    assert s[2]["tiles"] == 1 and s[2]["tile"] == 100 and s[2]["chunks"] == 2
    assert s[3]["tiles"] == 2 and 256 % s[3]["tile"] == 0 and s[3]["chunks"] == 1
    for (b, c, h, w), _ in SCHEDULE_CASES:
        d = _schedule(b, c, h * w)
        assert d["pairs"] == d["tiles"] * (d["tiles"] + 1) // 2  # upper triangle only
        assert d["items"] == b * d["pairs"] * d["chunks"]
        assert d["chunk"] % 8 == 0 and (d["chunks"] - 1) * d["chunk"] < h * w <= d["chunks"] * d["chunk"]
    assert _schedule(1, 512, 64 * 64)["pairs"] == 10  # 10 of 16 tiles at C = 512: the saving
    # The schedule depends on the shape only (not on the thread count).
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _schedule(2, 300, 67 * 131)
    finally:
        torch.set_num_threads(n)
    assert one == s[0]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "noncontiguous"])
@pytest.mark.parametrize("case", range(len(SCHEDULE_CASES)))
def test_tile_schedule_matches_float64(device, case, layout):
    shape = SCHEDULE_CASES[case][0]
    x = make_layout(torch.randn(shape, device=device).relu_(), layout)
    for normalize in NORMALIZE:
        g = ops.gram(x, normalize)
        assert torch.equal(g, g.mT)  # mirrored, bit for bit
        assert rel_err(g, _gram64(x, normalize)) < 1e-5
    t = _target(shape[0], shape[1], "batched", device) * g.diagonal(dim1=1, dim2=2).mean()
    xg = x.detach().clone().requires_grad_()
    loss = ops.gram_loss(xg, t, 0.8, "none")
    (grad,) = torch.autograd.grad(loss, xg)
    x64 = x.detach().double().requires_grad_()
    ref = _loss64(x64, t, 0.8, "none")
    (ref_grad,) = torch.autograd.grad(ref, x64)
    assert rel_err(loss, ref) < 1e-5 and rel_err(grad, ref_grad) < 1e-5
    assert ops.gram_loss(x, g, 1.0, "none").item() == 0.0  # own target through the same schedule


def test_tile_schedule_deterministic(device):
    # Chunked, several-tile layers through gram, gram_loss_multi and its backward: two runs give
    # the same bits (fixed chunk order, fixed row/layer reduction order, no atomics).
    x = torch.randn(2, 300, 67, 131, device=device).relu_().contiguous(memory_format=torch.channels_last)
    t = _target(2, 300, "2d", device)
    xs = [torch.randn(1, 129, 130, 140, device=device).relu_(), x]

    def run():
        xg = [a.detach().clone().requires_grad_() for a in xs]
        loss = ops.gram_loss_multi(xg, [ops.gram(xs[0])[0] * 1.1, t], [1.0, 0.5])
        return [ops.gram(x), loss, *torch.autograd.grad(loss, xg)]

    for a, b in zip(run(), run()):
        assert torch.equal(a, b)


# ---- devices, property test -------------------------------------------------------------------

def test_wrong_device_cuda():
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    x = _x(2, 3, 4, 4).cuda()
    with pytest.raises(ValueError, match=r"x and target must be on the same device, got cuda:0 and cpu"):
        ops.gram_loss(x, torch.rand(3, 3))
    with pytest.raises(RuntimeError, match=r"gram_loss: x and target must be on the same device"):
        torch.ops.pytexsynth.gram_loss(x, torch.rand(3, 3), 1.0, "hw", "ieee")


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 9), h=st.integers(1, 8), w=st.integers(1, 8),
       channels_last=st.booleans(), normalize=st.sampled_from(NORMALIZE), batched_target=st.booleans())
def test_property_matches_reference(b, c, h, w, channels_last, normalize, batched_target):
    x = torch.randn(b, c, h, w, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    t = torch.randn((b, c, c) if batched_target else (c, c), dtype=torch.float64)
    loss = ops.gram_loss(x, t, 0.9, normalize)
    ref = reference.gram_loss(x, t, 0.9, normalize)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(loss, x)[0], torch.autograd.grad(ref, x)[0], rtol=1e-10, atol=1e-12)
    g = ops.gram(x.detach(), normalize)
    assert torch.equal(g, g.mT)
    torch.testing.assert_close(g, reference.gram(x.detach(), normalize), rtol=1e-12, atol=1e-12)


# ---- reference ---------------------------------------------------------------------------------

def test_reference_is_bmm_mse():
    x = _rand((2, 5, 6, 7))
    t = _target(2, 5, "2d", "cpu")
    torch.testing.assert_close(reference.gram_loss(x, t, 0.3), reference.gram_loss_unfused(x, t, 0.3))
