"""gram / gram_loss / GramLoss against float64 references: values, gradients, layouts, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytexsynth import nn as pnn
from pytexsynth import ops, reference

from conftest import hide_extension, assert_compiles_like_eager, cuda_skip_reason, make_layout

# Odd C and H*W, B = 1..3, a single channel, a single pixel row.
SHAPES = [(1, 3, 5, 7), (2, 8, 9, 11), (3, 17, 13, 6), (2, 1, 4, 4), (1, 33, 1, 19)]
LAYOUTS = ["contiguous", "channels_last", "noncontiguous", "transposed"]
NORMALIZE = ["hw", "chw", "none"]


def _rand(shape, dtype=torch.float32, device="cpu"):
    # Fresh, non-zero, mixed-sign features.
    return (torch.randn(shape, dtype=torch.float64) + 0.5).to(dtype=dtype, device=device)


def _rel_err(a, b):
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def _gram64(x, normalize="hw"):
    return reference.gram(x.detach().double(), normalize)


def _loss64(x, target, weight=1.0, normalize="hw"):
    return reference.gram_loss(x.double(), target.double(), weight, normalize)


def _check_ieee_against_float64(x, t):
    """fp32 "ieee": G exactly symmetric and within 1e-5 of float64; the loss is 0 at its own G;
    loss and gradient within 1e-5 of the float64 autograd reference. Returns G and that reference."""
    g = ops.gram(x.detach())
    assert torch.equal(g, g.mT)
    assert _rel_err(g, _gram64(x)) < 1e-5
    assert ops.gram_loss(x.detach(), g).item() == 0.0
    loss = ops.gram_loss(x, t)
    (grad,) = torch.autograd.grad(loss, x)
    x64 = x.detach().double().requires_grad_()
    ref = _loss64(x64, t)
    (ref_grad,) = torch.autograd.grad(ref, x64)
    assert _rel_err(loss, ref) < 1e-5 and _rel_err(grad, ref_grad) < 1e-5
    return g, ref


# ---- gram ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gram_matches_float64_reference(device, shape, layout):
    for normalize in NORMALIZE:
        x = make_layout(_rand(shape, device=device), layout)
        g = ops.gram(x, normalize)
        assert g.shape == (shape[0], shape[1], shape[1]) and g.dtype == x.dtype and g.is_contiguous()
        assert _rel_err(g, _gram64(x, normalize)) < 1e-5


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float16, 2e-3), (torch.bfloat16, 1e-2)])
def test_gram_dtypes(device, dtype, tol):
    x = _rand((2, 6, 7, 5), dtype, device)
    g = ops.gram(x)
    assert g.dtype == dtype
    assert _rel_err(g, _gram64(x)) < tol


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gram_exactly_symmetric(device, layout):
    x = make_layout(_rand((3, 37, 23, 29), device=device), layout)
    for precision in ("ieee", "bf16"):
        g = ops.gram(x, precision=precision)
        assert torch.equal(g, g.mT)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "noncontiguous"])
@pytest.mark.parametrize("normalize", NORMALIZE)
def test_gram_backward(device, layout, normalize):
    x = make_layout(_rand((2, 7, 5, 9), device=device), layout).requires_grad_()
    g_out = torch.randn(2, 7, 7, device=device)  # not symmetric: the backward must use dG + dG^T
    (grad,) = torch.autograd.grad(ops.gram(x, normalize), x, g_out)
    x64 = x.detach().double().requires_grad_()
    (ref,) = torch.autograd.grad(reference.gram(x64, normalize), x64, g_out.double())
    assert _rel_err(grad, ref) < 1e-5
    if layout == "channels_last":
        assert grad.is_contiguous(memory_format=torch.channels_last)


def test_gram_backward_expanded_grad(device):
    # .sum() hands the backward an all-zero-stride gradient.
    x = _rand((2, 4, 3, 5), torch.float64, device).requires_grad_()
    ops.gram(x).sum().backward()
    x_ref = x.detach().clone().requires_grad_()
    reference.gram(x_ref).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)


# ---- gram_loss -------------------------------------------------------------------------------

def _target(b, c, kind, device, dtype=torch.float32):
    shape = {"2d": (c, c), "batched": (b, c, c), "one": (1, c, c)}[kind]
    return (torch.rand(shape, dtype=torch.float64) + 0.1).to(dtype=dtype, device=device)


@pytest.mark.parametrize("target_kind", ["2d", "batched", "one"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gram_loss_matches_float64_reference(device, shape, layout, target_kind):
    b, c = shape[:2]
    normalize = NORMALIZE[(len(layout) + b) % 3]
    x = make_layout(_rand(shape, device=device), layout).requires_grad_()
    t = _target(b, c, target_kind, device)
    weight, grad_out = 0.37, torch.tensor(2.5, device=device)  # grad_output other than 1
    loss = ops.gram_loss(x, t, weight, normalize)
    assert loss.shape == () and loss.dtype == torch.float32
    (grad,) = torch.autograd.grad(loss, x, grad_out)
    x64 = x.detach().double().requires_grad_()
    ref = _loss64(x64, t, weight, normalize)
    (ref_grad,) = torch.autograd.grad(ref, x64, grad_out.double())
    assert _rel_err(loss, ref) < 1e-5
    assert _rel_err(grad, ref_grad) < 1e-5
    assert grad.stride() == torch.empty_like(x).stride() or layout not in ("contiguous", "channels_last")


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float16, 1e-2), (torch.bfloat16, 5e-2)])
def test_gram_loss_dtypes(device, dtype, tol):
    x = _rand((2, 6, 7, 5), dtype, device).requires_grad_()
    t = _target(2, 6, "2d", device, dtype)
    loss = ops.gram_loss(x, t, 1.5)
    assert loss.dtype == dtype
    (grad,) = torch.autograd.grad(loss, x)
    assert grad.dtype == dtype
    x64 = x.detach().double().requires_grad_()
    ref = _loss64(x64, t, 1.5)
    (ref_grad,) = torch.autograd.grad(ref, x64)
    assert _rel_err(loss, ref) < tol
    assert _rel_err(grad, ref_grad) < tol


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


@pytest.mark.parametrize("normalize", NORMALIZE)
def test_gradcheck(device, normalize):
    x = torch.randn(2, 3, 4, 3, dtype=torch.float64, device=device, requires_grad=True)
    xcl = torch.randn(2, 3, 4, 3, dtype=torch.float64, device=device).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    t2 = torch.randn(3, 3, dtype=torch.float64, device=device, requires_grad=True)
    t3 = torch.randn(2, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
    for xi in (x, xcl):
        assert torch.autograd.gradcheck(lambda a: ops.gram(a, normalize), (xi,))
        assert torch.autograd.gradcheck(lambda a, t: ops.gram_loss(a, t, 0.6, normalize), (xi, t2))
        assert torch.autograd.gradcheck(lambda a, t: ops.gram_loss(a, t, 1.3, normalize), (xi, t3))


def test_gradgradcheck(device):
    # The backward ops are differentiable too; D is an output of gram_loss, so the double
    # backward reaches x through it.
    x = torch.randn(2, 3, 4, 3, dtype=torch.float64, device=device, requires_grad=True)
    t = torch.randn(3, 3, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a: ops.gram(a, "chw"), (x,))
    assert torch.autograd.gradgradcheck(lambda a, b: ops.gram_loss(a, b, 0.7, "hw"), (x, t))
    d = torch.randn(2, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
    gl = torch.tensor(1.3, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda g, dd, a: torch.ops.pytexsynth._gram_loss_backward(g, dd, a, 0.4, "none", "ieee"), (gl, d, x))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(device, requires_grad):
    def mk(*shape):
        return torch.randn(shape, device=device).requires_grad_(requires_grad)

    x = mk(2, 3, 5, 6)
    xcl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(requires_grad)
    for xi in (x, xcl):
        torch.library.opcheck(torch.ops.pytexsynth.gram.default, (xi, "hw", "ieee"))
        torch.library.opcheck(torch.ops.pytexsynth.gram.default, (xi, "chw", "bf16"))
        torch.library.opcheck(torch.ops.pytexsynth.gram_loss.default, (xi, mk(3, 3), 0.5, "hw", "ieee"))
        torch.library.opcheck(torch.ops.pytexsynth.gram_loss.default, (xi, mk(2, 3, 3), 2.0, "none", "tf32"))
        torch.library.opcheck(torch.ops.pytexsynth._gram_backward.default, (mk(2, 3, 3), xi, "hw", "ieee"))
        diff = torch.randn(2, 3, 3, device=device)
        torch.library.opcheck(torch.ops.pytexsynth._gram_loss_backward.default,
                              (mk(), diff, xi, 0.5, "chw", "ieee"))


def test_torch_compile_fullgraph(device):
    style = _rand((1, 4, 6, 6), device=device)
    target = ops.gram(style)[0]

    def f(x):
        feats = torch.nn.functional.avg_pool2d(x, 2)
        return ops.gram_loss(x, target, 2.0) + ops.gram(feats, "chw").sum()

    assert_compiles_like_eager(f, _rand((2, 4, 6, 6), device=device))


# ---- precision -------------------------------------------------------------------------------

def test_bf16_precision(device):
    x = _rand((2, 16, 12, 10), device=device).requires_grad_()
    t = _target(2, 16, "2d", device)
    # Against the reference of the same semantics (bf16 operands, exact fp32 products): tight.
    g = ops.gram(x.detach(), precision="bf16")
    g_ref = reference.gram(x.detach(), precision="bf16")
    assert _rel_err(g, g_ref) < 1e-5
    assert _rel_err(g, _gram64(x)) < 2e-2
    loss = ops.gram_loss(x, t, precision="bf16")
    (grad,) = torch.autograd.grad(loss, x)
    x64 = x.detach().double().requires_grad_()
    ref = _loss64(x64, t)
    (ref_grad,) = torch.autograd.grad(ref, x64)
    assert _rel_err(loss, ref) < 2e-2
    assert _rel_err(grad, ref_grad) < 2e-2
    assert _rel_err(grad, ref_grad) > 0  # it does round


def test_tf32_is_ieee_on_cpu():
    x = _rand((2, 8, 9, 7))
    t = _target(2, 8, "2d", "cpu")
    assert torch.equal(ops.gram(x, precision="tf32"), ops.gram(x))
    assert torch.equal(ops.gram_loss(x, t, precision="tf32"), ops.gram_loss(x, t))


def test_deterministic(device):
    x = _rand((2, 40, 31, 33), device=device).requires_grad_()
    t = _target(2, 40, "2d", device)
    runs = []
    for _ in range(3):
        loss = ops.gram_loss(x, t, 1.0)
        runs.append((loss, torch.autograd.grad(loss, x)[0]))
    assert all(torch.equal(runs[0][0], r[0]) and torch.equal(runs[0][1], r[1]) for r in runs[1:])


def test_empty_inputs_match_reference(device):
    for shape in [(0, 3, 4, 4), (2, 3, 0, 4)]:
        x = torch.randn(shape, device=device)
        t = torch.rand(3, 3, device=device)
        torch.testing.assert_close(ops.gram(x), reference.gram(x), equal_nan=True)
        torch.testing.assert_close(ops.gram_loss(x, t), reference.gram_loss(x, t), equal_nan=True)


def test_cpu_and_cuda_agree():
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    x = _rand((2, 64, 70, 90)).requires_grad_()
    xc = x.detach().cuda().requires_grad_()
    t = _target(2, 64, "2d", "cpu")
    loss, loss_c = ops.gram_loss(x, t), ops.gram_loss(xc, t.cuda())
    loss.backward()
    loss_c.backward()
    assert _rel_err(loss_c.cpu(), loss) < 1e-5
    assert _rel_err(xc.grad.cpu(), x.grad) < 1e-5


@pytest.mark.parametrize("hw", [(64, 48), (67, 131)], ids=["aligned-batched", "odd-per-item"])
def test_cpu_and_cuda_agree_multi(hw):
    # 16-byte aligned operands go through cublasGemmBatchedEx, odd H*W through per-item GEMMs.
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    h, w = hw
    xs = [_rand((2, 64, 2 * h, 2 * w)), _rand((2, 300, h, w)).contiguous(memory_format=torch.channels_last),
          _rand((1, 129, h, w))]
    ts = [_target(2, 64, "2d", "cpu"), _target(2, 300, "batched", "cpu"), _target(1, 129, "one", "cpu")]
    xc = [x.cuda().requires_grad_() for x in xs]
    xs = [x.requires_grad_() for x in xs]
    loss = ops.gram_loss_multi(xs, ts, [1.0, 0.5, 2.0])
    loss_c = ops.gram_loss_multi(xc, [t.cuda() for t in ts], [1.0, 0.5, 2.0])
    assert _rel_err(loss_c.cpu(), loss) < 1e-5
    for g, gc in zip(torch.autograd.grad(loss, xs), torch.autograd.grad(loss_c, xc)):
        assert _rel_err(gc.cpu(), g) < 1e-5
    for x, c in zip(xs, xc):
        g = ops.gram(c.detach())
        assert torch.equal(g, g.mT) and _rel_err(g.cpu(), ops.gram(x.detach())) < 1e-5


def test_cuda_split_sum_and_tf32():
    # Large H*W: the CUDA forward slices H*W into several partial GEMMs (and a tail slice).
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    x = _rand((2, 64, 257, 129), device="cuda").requires_grad_()
    t = _target(2, 64, "2d", "cuda")
    _, ref = _check_ieee_against_float64(x, t)
    loss32 = ops.gram_loss(x, t, precision="tf32")
    assert 0 < _rel_err(ops.gram(x.detach(), precision="tf32"), _gram64(x)) < 5e-3
    assert _rel_err(loss32, ref) < 1e-2


# ---- tile schedule ---------------------------------------------------------------------------

def _schedule(b, c, n):
    tile, tiles, pairs, chunk, chunks, items = torch.ops.pytexsynth._gram_schedule(b, c, n)
    return dict(tile=tile, tiles=tiles, pairs=pairs, chunk=chunk, chunks=chunks, items=items)


# (shape, what of the schedule it exercises); the test asserts each claim against the schedule.
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
        assert _rel_err(g, _gram64(x, normalize)) < 1e-5
    t = _target(shape[0], shape[1], "batched", device) * g.diagonal(dim1=1, dim2=2).mean()
    xg = x.detach().clone().requires_grad_()
    loss = ops.gram_loss(xg, t, 0.8, "none")
    (grad,) = torch.autograd.grad(loss, xg)
    x64 = x.detach().double().requires_grad_()
    ref = _loss64(x64, t, 0.8, "none")
    (ref_grad,) = torch.autograd.grad(ref, x64)
    assert _rel_err(loss, ref) < 1e-5 and _rel_err(grad, ref_grad) < 1e-5
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


# ---- bad input -------------------------------------------------------------------------------

def _x(*shape):
    return torch.randn(*shape)


BAD_GRAM = [
    (lambda: _x(3, 4, 5), {}, ValueError, r"gram: x must be a 4-D \(B, C, H, W\) tensor, got a 3-D"),
    (lambda: torch.ones(1, 2, 3, 3, dtype=torch.int64), {}, TypeError,
     r"gram: x must be a float32, float64, float16 or bfloat16 tensor, got torch.int64"),
    (lambda: [[1.0]], {}, TypeError, r"gram: x must be a torch.Tensor"),
    (lambda: _x(1, 2, 3, 3), {"normalize": "c"}, ValueError, r"gram: normalize must be one of 'hw', 'chw', 'none'"),
    (lambda: _x(1, 2, 3, 3), {"normalize": None}, TypeError, r"gram: normalize must be one of"),
    (lambda: _x(1, 2, 3, 3), {"precision": "fp16"}, ValueError, r"gram: precision must be one of 'ieee', 'tf32', 'bf16'"),
]


@pytest.mark.parametrize("make,kw,exc,msg", BAD_GRAM)
def test_bad_input_gram(make, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ops.gram(make(), **kw)


BAD_LOSS = [
    (_x(2, 3, 4), torch.rand(3, 3), {}, ValueError, r"gram_loss: x must be a 4-D"),
    (torch.ones(2, 3, 4, 4, dtype=torch.int32), torch.rand(3, 3), {}, TypeError, r"x must be a float32.*got torch.int32"),
    (_x(2, 3, 4, 4), torch.rand(4, 4), {}, ValueError,
     r"gram_loss: target of shape \(4, 4\) does not match x's 3 channels; expected \(3, 3\) or \(2, 3, 3\)"),
    (_x(2, 3, 4, 4), torch.rand(3, 4), {}, ValueError, r"does not match x's 3 channels"),
    (_x(2, 3, 4, 4), torch.rand(3, 3, 3), {}, ValueError, r"target of shape \(3, 3, 3\) has batch 3 but x has batch 2"),
    (_x(2, 3, 4, 4), torch.rand(3), {}, ValueError, r"target must be \(C, C\) or \(B, C, C\), got a 1-D"),
    (_x(2, 3, 4, 4), torch.rand(3, 3, dtype=torch.float64), {}, TypeError,
     r"target must have the dtype of x \(torch.float32\), got torch.float64"),
    (_x(2, 3, 4, 4), torch.rand(3, 3, device="meta"), {}, ValueError,
     r"gram_loss: x and target must be on the same device, got cpu and meta"),
    (_x(2, 3, 4, 4), "T", {}, TypeError, r"target must be a torch.Tensor"),
    (_x(2, 3, 4, 4), torch.rand(3, 3), {"weight": "1"}, TypeError, r"weight must be a float"),
    (_x(2, 3, 4, 4), torch.rand(3, 3), {"normalize": "HW"}, ValueError, r"normalize must be one of"),
    (_x(2, 3, 4, 4), torch.rand(3, 3), {"precision": "tf16"}, ValueError, r"precision must be one of"),
]


@pytest.mark.parametrize("x,t,kw,exc,msg", BAD_LOSS)
def test_bad_input_gram_loss(x, t, kw, exc, msg):
    with pytest.raises(exc, match=msg):
        ops.gram_loss(x, t, **kw)


# The same checks in C++, for callers of torch.ops.pytexsynth.* directly.
BAD_CPP = [
    (lambda: torch.ops.pytexsynth.gram(_x(3, 4, 5), "hw", "ieee"), r"gram: x must be a 4-D \(B, C, H, W\) tensor"),
    (lambda: torch.ops.pytexsynth.gram(torch.ones(1, 2, 3, 3, dtype=torch.int32), "hw", "ieee"),
     r"gram: x must be a float32, float64, float16 or bfloat16 tensor, got Int"),
    (lambda: torch.ops.pytexsynth.gram(_x(1, 2, 3, 3), "w", "ieee"), r"gram: normalize must be 'hw', 'chw' or 'none', got 'w'"),
    (lambda: torch.ops.pytexsynth.gram(_x(1, 2, 3, 3), "hw", "x"), r"gram: precision must be 'ieee', 'tf32' or 'bf16', got 'x'"),
    (lambda: torch.ops.pytexsynth.gram_loss(_x(2, 3, 4, 4), torch.rand(4, 4), 1.0, "hw", "ieee"),
     r"gram_loss: target of shape \[4, 4\] does not match x's 3 channels"),
    (lambda: torch.ops.pytexsynth.gram_loss(_x(2, 3, 4, 4), torch.rand(5, 3, 3), 1.0, "hw", "ieee"),
     r"gram_loss: target of shape \[5, 3, 3\] has batch 5 but x has batch 2"),
    (lambda: torch.ops.pytexsynth.gram_loss(_x(2, 3, 4, 4), torch.rand(3, 3).double(), 1.0, "hw", "ieee"),
     r"gram_loss: target must have the dtype of x \(Float\), got Double"),
    (lambda: torch.ops.pytexsynth._gram_backward(_x(2, 3, 4), _x(2, 3, 4, 4), "hw", "ieee"),
     r"_gram_backward: grad_output must be \(2, 3, 3\), got \[2, 3, 4\]"),
    (lambda: torch.ops.pytexsynth._gram_loss_backward(torch.tensor(1.0), torch.rand(2, 3, 3).double(), _x(2, 3, 4, 4),
                                                      1.0, "hw", "ieee"),
     r"_gram_loss_backward: diff must be Float, got Double"),
    (lambda: torch.ops.pytexsynth._gram_loss_backward(torch.ones(2), torch.rand(2, 3, 3), _x(2, 3, 4, 4),
                                                      1.0, "hw", "ieee"),
     r"_gram_loss_backward: grad_loss must hold one value"),
]


@pytest.mark.parametrize("call,msg", BAD_CPP)
def test_bad_input_op(call, msg):
    with pytest.raises(RuntimeError, match=msg):
        call()


def test_wrong_device_cuda():
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    x = _x(2, 3, 4, 4).cuda()
    with pytest.raises(ValueError, match=r"x and target must be on the same device, got cuda:0 and cpu"):
        ops.gram_loss(x, torch.rand(3, 3))
    with pytest.raises(RuntimeError, match=r"gram_loss: x and target must be on the same device"):
        torch.ops.pytexsynth.gram_loss(x, torch.rand(3, 3), 1.0, "hw", "ieee")


# ---- property test ---------------------------------------------------------------------------

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


# ---- multi-layer entry and module ------------------------------------------------------------

def _vgg_like(device, b=1):
    return {f"relu{i}_1": _rand((b, c, s, s), device=device)
            for i, (c, s) in enumerate([(4, 16), (8, 8), (16, 4)], start=1)}


def test_gram_loss_multi_is_sum(device):
    feats = list(_vgg_like(device, 2).values())
    targets = [_target(2, f.shape[1], "2d", device) for f in feats]
    weights = [1.0, 0.5, 2.0]
    total = ops.gram_loss_multi(feats, targets, weights, "chw")
    expected = sum(ops.gram_loss(f, t, w, "chw") for f, t, w in zip(feats, targets, weights))
    torch.testing.assert_close(total, expected, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="xs, targets and weights must have the same length, got 3, 2 and 3"):
        ops.gram_loss_multi(feats, targets[:2], weights)
    with pytest.raises(ValueError, match="at least one"):
        ops.gram_loss_multi([], [], [])


def _multi_case(device, dtype=torch.float32):
    # Layers of different C, H*W, batch-broadcast and batched targets, mixed layouts, one of
    # them several tiles wide (C = 130) so the tile schedule has off-diagonal pairs.
    xs = [make_layout(_rand((2, 4, 9, 7), dtype, device), "channels_last"),
          make_layout(_rand((2, 130, 6, 5), dtype, device), "contiguous"),
          make_layout(_rand((2, 17, 5, 11), dtype, device), "noncontiguous")]
    targets = [_target(2, 4, "2d", device, dtype), _target(2, 130, "batched", device, dtype),
               _target(2, 17, "one", device, dtype)]
    return xs, targets, [0.7, 1.9, 0.3]


@pytest.mark.parametrize("normalize", NORMALIZE)
def test_gram_loss_multi_matches_per_layer(device, normalize):
    xs, targets, weights = _multi_case(device)
    xs = [x.requires_grad_() for x in xs]
    total = ops.gram_loss_multi(xs, targets, weights, normalize)
    grads = torch.autograd.grad(total, xs, torch.tensor(1.7, device=device))
    terms = [ops.gram_loss(x, t, w, normalize) for x, t, w in zip(xs, targets, weights)]
    # The same per-layer epilogue: each layer's D is bitwise the single-layer op's.
    raw = torch.ops.pytexsynth.gram_loss_multi(xs, targets, weights, normalize, "ieee")
    for x, t, w, d in zip(xs, targets, weights, raw[1]):
        assert torch.equal(d, torch.ops.pytexsynth.gram_loss(x, t, w, normalize, "ieee")[1])
    torch.testing.assert_close(total, sum(terms), rtol=1e-6, atol=0)
    ref_grads = torch.autograd.grad(sum(terms), xs, torch.tensor(1.7, device=device))
    for g, r, x in zip(grads, ref_grads, xs):
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-9)
        assert g.stride() == r.stride()
    x64 = [x.detach().double().requires_grad_() for x in xs]
    ref = sum(_loss64(x, t, w, normalize) for x, t, w in zip(x64, targets, weights))
    assert _rel_err(total, ref) < 1e-5
    for g, r in zip(grads, torch.autograd.grad(ref, x64, torch.tensor(1.7, dtype=torch.float64, device=device))):
        assert _rel_err(g, r) < 1e-5


def test_gram_loss_multi_zero_at_own_targets_and_dtypes(device):
    for dtype in (torch.float32, torch.float64):
        xs, _, weights = _multi_case(device, dtype)
        loss = ops.gram_loss_multi(xs, [ops.gram(x) for x in xs], weights)
        assert loss.dtype == dtype and loss.item() == 0.0
    for dtype in (torch.float16, torch.bfloat16):  # G rounds to dtype as a target: not exactly 0
        xs, targets, weights = _multi_case(device, dtype)
        loss = ops.gram_loss_multi(xs, targets, weights)
        assert loss.dtype == dtype
        ref = sum(_loss64(x, t, w) for x, t, w in zip(xs, targets, weights))
        assert _rel_err(loss, ref) < 1e-2


def test_gram_loss_multi_gradcheck(device):
    xs = [torch.randn(2, 3, 4, 3, dtype=torch.float64, device=device, requires_grad=True),
          torch.randn(2, 5, 3, 2, dtype=torch.float64, device=device).contiguous(
              memory_format=torch.channels_last).requires_grad_()]
    ts = [torch.randn(3, 3, dtype=torch.float64, device=device, requires_grad=True),
          torch.randn(2, 5, 5, dtype=torch.float64, device=device, requires_grad=True)]
    for normalize in NORMALIZE:
        assert torch.autograd.gradcheck(
            lambda a, b, s, t: ops.gram_loss_multi([a, b], [s, t], [0.6, 1.4], normalize), (*xs, *ts))
    assert torch.autograd.gradgradcheck(lambda a, b, s, t: ops.gram_loss_multi([a, b], [s, t], [0.6, 1.4]),
                                        (*xs, *ts))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_gram_loss_multi_opcheck(device, requires_grad):
    xs = [torch.randn(2, 3, 5, 6, device=device).requires_grad_(requires_grad),
          torch.randn(2, 6, 3, 4, device=device).contiguous(memory_format=torch.channels_last)
          .requires_grad_(requires_grad)]
    ts = [torch.randn(3, 3, device=device), torch.randn(2, 6, 6, device=device).requires_grad_(requires_grad)]
    torch.library.opcheck(torch.ops.pytexsynth.gram_loss_multi.default, (xs, ts, [0.5, 2.0], "hw", "ieee"))
    torch.library.opcheck(torch.ops.pytexsynth.gram_loss_multi.default, (xs, ts, [1.0, 1.0], "chw", "bf16"))
    diffs = [torch.randn(2, 3, 3, device=device), torch.randn(2, 6, 6, device=device)]
    gl = torch.tensor(1.3, device=device).requires_grad_(requires_grad)
    torch.library.opcheck(torch.ops.pytexsynth._gram_loss_multi_backward.default,
                          (gl, diffs, xs, [0.5, 2.0], "none", "ieee"))


def test_gram_loss_multi_torch_compile_fullgraph(device):
    xs, targets, weights = _multi_case(device)

    def f(a, b, c):
        return ops.gram_loss_multi([a, torch.relu(b), c], targets, weights) * 2.0

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    leaves = [x.detach().clone().requires_grad_() for x in xs]
    out = compiled(*leaves)
    grads = torch.autograd.grad(out, leaves)
    ref_leaves = [x.detach().clone().requires_grad_() for x in xs]
    ref = f(*ref_leaves)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    for g, r in zip(grads, torch.autograd.grad(ref, ref_leaves)):
        torch.testing.assert_close(g, r, rtol=0, atol=0)


BAD_MULTI = [
    (lambda x, t: ([x], [t, t], [1.0]), ValueError, r"gram_loss_multi: xs, targets and weights must have the same length, got 1, 2 and 1"),
    (lambda x, t: ([x, x], [t, t], [1.0]), ValueError, r"same length, got 2, 2 and 1"),
    (lambda x, t: ([], [], []), ValueError, r"gram_loss_multi: xs must hold at least one tensor"),
    (lambda x, t: (x, [t], [1.0]), TypeError, r"gram_loss_multi: xs must be a list, got Tensor"),
    (lambda x, t: ([x, x.double()], [t, t.double()], [1.0, 1.0]), TypeError,
     r"gram_loss_multi: every layer must have one dtype; xs\[1\] is torch.float64 but xs\[0\] is torch.float32"),
    (lambda x, t: ([x, x.to("meta")], [t, t.to("meta")], [1.0, 1.0]), ValueError,
     r"gram_loss_multi: every layer must be on one device; xs\[1\] is on meta but xs\[0\] is on cpu"),
    (lambda x, t: ([x, x[0]], [t, t], [1.0, 1.0]), ValueError, r"gram_loss_multi: xs\[1\] must be a 4-D"),
    (lambda x, t: ([x, x], [t, t[:2]], [1.0, 1.0]), ValueError,
     r"gram_loss_multi: targets\[1\] of shape \(2, 3\) does not match xs\[1\]'s 3 channels"),
    (lambda x, t: ([x], [t.to("meta")], [1.0]), ValueError, r"xs\[0\] and targets\[0\] must be on the same device"),
    (lambda x, t: ([x], [t], ["a"]), TypeError, r"weights\[0\]: weight must be a float"),
]


@pytest.mark.parametrize("make,exc,msg", BAD_MULTI)
def test_bad_input_gram_loss_multi(make, exc, msg):
    xs, ts, ws = make(_x(2, 3, 4, 4), torch.rand(3, 3))
    with pytest.raises(exc, match=msg):
        ops.gram_loss_multi(xs, ts, ws)


BAD_MULTI_CPP = [
    (lambda: torch.ops.pytexsynth.gram_loss_multi([_x(1, 3, 4, 4)], [torch.rand(3, 3)] * 2, [1.0], "hw", "ieee"),
     r"xs, targets and weights must have the same length, got 1, 2 and 1"),
    (lambda: torch.ops.pytexsynth.gram_loss_multi([_x(1, 3, 4, 4), _x(1, 3, 4, 4).double()],
                                                  [torch.rand(3, 3), torch.rand(3, 3).double()], [1.0, 1.0], "hw", "ieee"),
     r"every layer must have one dtype; xs\[1\] is Double but xs\[0\] is Float"),
    (lambda: torch.ops.pytexsynth.gram_loss_multi([_x(1, 3, 4, 4), _x(1, 2, 4, 4)], [torch.rand(3, 3)] * 2, [1.0, 1.0],
                                                  "hw", "ieee"),
     r"gram_loss_multi: targets\[1\] of shape \[3, 3\] does not match xs\[1\]'s 2 channels"),
    (lambda: torch.ops.pytexsynth.gram_loss_multi([_x(1, 3, 4)], [torch.rand(3, 3)], [1.0], "hw", "ieee"),
     r"gram_loss_multi: xs\[0\] must be a 4-D"),
    (lambda: torch.ops.pytexsynth._gram_loss_multi_backward(torch.tensor(1.0), [torch.rand(1, 3, 3)],
                                                            [_x(1, 3, 4, 4), _x(1, 3, 4, 4)], [1.0], "hw", "ieee"),
     r"_gram_loss_multi_backward: diffs, xs and weights must have the same length, got 1, 2 and 1"),
    (lambda: torch.ops.pytexsynth._gram_loss_multi_backward(torch.tensor(1.0), [torch.rand(1, 2, 2)],
                                                            [_x(1, 3, 4, 4)], [1.0], "hw", "ieee"),
     r"_gram_loss_multi_backward: diffs\[0\] must be \(1, 3, 3\)"),
]


@pytest.mark.parametrize("call,msg", BAD_MULTI_CPP)
def test_bad_input_gram_loss_multi_op(call, msg):
    with pytest.raises(RuntimeError, match=msg):
        call()
    # An empty list has no tensor to dispatch on: the dispatcher says so (the Python wrapper
    # names the argument, see BAD_MULTI).
    with pytest.raises(NotImplementedError, match="no tensor arguments"):
        torch.ops.pytexsynth.gram_loss_multi([], [], [], "hw", "ieee")


def test_gram_loss_multi_mixed_devices_cuda():
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    xs = [_x(1, 3, 4, 4), _x(1, 3, 4, 4).cuda()]
    ts = [torch.rand(3, 3), torch.rand(3, 3).cuda()]
    with pytest.raises(ValueError, match=r"every layer must be on one device; xs\[1\] is on cuda:0"):
        ops.gram_loss_multi(xs, ts, [1.0, 1.0])
    with pytest.raises(RuntimeError, match=r"every layer must be on one device"):
        torch.ops.pytexsynth.gram_loss_multi(xs, ts, [1.0, 1.0], "hw", "ieee")


def test_gram_loss_module(device):
    style = _vgg_like(device)
    weights = {"relu1_1": 1.0, "relu2_1": 0.25, "relu3_1": 4.0}
    crit = pnn.GramLoss(style, weights=weights).to(device)
    assert crit(style).item() == 0.0  # exactly 0 at the style
    x = {k: _rand((2, v.shape[1], v.shape[2] + 3, v.shape[3] + 1), device=device).requires_grad_()
         for k, v in style.items()}
    x["conv4_1"] = _rand((2, 3, 4, 4), device=device)  # extra layers are ignored
    loss = crit(x)
    expected = sum(w * reference.gram_loss(x[k], reference.gram(style[k])[0]) for k, w in weights.items())
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)
    loss.backward()
    assert all(x[k].grad is not None for k in style)
    assert "relu2_1" in repr(crit) and len(list(crit.buffers())) == 3


def test_gram_loss_module_list_and_errors():
    style = [_rand((1, 4, 8, 8)), _rand((1, 6, 4, 4))]
    crit = pnn.GramLoss(style, weights=[1.0, 2.0], normalize="chw", precision="bf16")
    assert crit(style).item() == 0.0
    per_sample = pnn.GramLoss([_rand((2, 4, 8, 8))])
    assert per_sample.targets()[0].shape == (2, 4, 4)
    with pytest.raises(ValueError, match="GramLoss: 1 weights for 2 layers"):
        pnn.GramLoss(style, weights=[1.0])
    with pytest.raises(ValueError, match=r"GramLoss: weights has no entry for layers \['b'\]"):
        pnn.GramLoss({"a": style[0], "b": style[1]}, weights={"a": 1.0})
    with pytest.raises(TypeError, match="GramLoss: style_features must be a dict"):
        pnn.GramLoss(style[0])
    with pytest.raises(ValueError, match="GramLoss: precision must be one of"):
        pnn.GramLoss(style, precision="half")
    with pytest.raises(KeyError, match=r"GramLoss: features has no layers \['b'\]"):
        pnn.GramLoss({"a": style[0], "b": style[1]})({"a": style[0]})
    with pytest.raises(ValueError, match="GramLoss: expected 2 feature tensors, got 1"):
        crit(style[:1])


# ---- reference and fallback ------------------------------------------------------------------

def test_reference_is_bmm_mse():
    x = _rand((2, 5, 6, 7))
    t = _target(2, 5, "2d", "cpu")
    torch.testing.assert_close(reference.gram_loss(x, t, 0.3), reference.gram_loss_unfused(x, t, 0.3))


def test_fallback_warns_once_and_matches(monkeypatch):
    hide_extension(monkeypatch)
    x = _rand((1, 3, 4, 4))
    t = _target(1, 3, "2d", "cpu")
    with pytest.warns(RuntimeWarning, match="pure-PyTorch reference"):
        out = ops.gram_loss(x, t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = ops.gram(x)
    torch.testing.assert_close(out, reference.gram_loss(x, t))
    torch.testing.assert_close(g, reference.gram(x))
