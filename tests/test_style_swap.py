"""style_swap against float64 references: matches, ties, decode, gradients, layouts, errors."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from pytexsynth import nn as pnn
from pytexsynth import ops, reference

from conftest import hide_extension, make_layout

# (content shape, style shape, patch_size, stride): odd sizes, batch > 1, shared and per-image
# style, stride 2 with uncovered trailing pixels, patch 5, patch 1, a 1-wide patch grid.
CASES = [
    ((2, 5, 9, 11), (1, 5, 10, 7), 3, 1),
    ((2, 4, 8, 7), (2, 4, 9, 9), 3, 1),
    ((1, 3, 12, 13), (1, 3, 11, 10), 5, 1),
    ((2, 6, 10, 9), (1, 6, 9, 12), 3, 2),   # (10 - 3) % 2 = 1: last row uncovered
    ((1, 4, 13, 12), (2 - 1, 4, 14, 11), 5, 2),
    ((3, 2, 6, 5), (1, 2, 4, 5), 1, 1),
    ((1, 7, 3, 8), (1, 7, 3, 3), 3, 1),     # one patch row; one style patch
]
METHODS = ["patch", "pixel"]


def _rand(shape, dtype=torch.float64, device="cpu", offset=0.0):
    return (torch.randn(shape, dtype=torch.float64) + offset).to(dtype=dtype, device=device)


def _patches64(x, k, s):
    """(B, n, C*k*k) float64 patches in row-major patch order."""
    return F.unfold(x.double(), k, stride=s).transpose(1, 2)


def _match64(content, style, k, s, chunk=7):
    """Chunked float64 reference: running (max, first argmax) over chunks of style patches."""
    cp = _patches64(content, k, s)
    sp = _patches64(style, k, s)
    sp = sp / (sp.norm(dim=2, keepdim=True) + 1e-8)
    if sp.shape[0] == 1:
        sp = sp.expand(cp.shape[0], -1, -1)
    best = torch.full(cp.shape[:2], -float("inf"), dtype=torch.float64)
    arg = torch.zeros(cp.shape[:2], dtype=torch.long)
    for c0 in range(0, sp.shape[1], chunk):
        sc = cp @ sp[:, c0:c0 + chunk].transpose(1, 2)
        v, i = sc.max(dim=2)
        better = v > best
        best = torch.where(better, v, best)
        arg = torch.where(better, i + c0, arg)
    return best, arg, cp, sp


def _scores_of(indices, cp, sp):
    """float64 scores of the chosen style patches."""
    chosen = torch.gather(sp, 1, indices.flatten(1).unsqueeze(-1).expand(-1, -1, sp.shape[2]))
    return (cp * chosen).sum(-1)


def _decode64(style, indices, H, W, k, s):
    """The conv_transpose2d formulation of the overlap average, for given indices."""
    B = indices.shape[0]
    outs = []
    for b in range(B):
        st = style[b if style.shape[0] > 1 else 0].unsqueeze(0).double()
        C = st.shape[1]
        patches = F.unfold(st, k, stride=s).squeeze(0).t().reshape(-1, C, k, k)
        one_hot = torch.zeros(1, patches.shape[0], *indices.shape[1:], dtype=torch.float64)
        one_hot.scatter_(1, indices[b:b + 1].unsqueeze(1).cpu(), 1.0)
        extra = ((H - k) % s, (W - k) % s)
        num = F.conv_transpose2d(one_hot, patches, stride=s, output_padding=extra)
        den = F.conv_transpose2d(one_hot, torch.ones_like(patches[:, :1]), stride=s, output_padding=extra)
        outs.append(torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num)))
    return torch.cat(outs)


def _swap(content, style, k, s, precision="ieee", method="auto"):
    return torch.ops.pytexsynth.style_swap(content, style, k, s, precision, method)


def _check_against_float64(content, style, k, s, out, idx, rel_tol):
    best, arg, cp, sp = _match64(content.cpu(), style.cpu(), k, s)
    chosen = _scores_of(idx.cpu(), cp, sp)
    scale = cp.norm(dim=2).clamp_min(1e-12)
    # Any index whose float64 score is within the rounding of the best is a right answer.
    assert bool((chosen >= best - rel_tol * scale).all()), float(((best - chosen) / scale).max())
    H, W = content.shape[-2:]
    torch.testing.assert_close(out.cpu().double(), _decode64(style.cpu(), idx.cpu(), H, W, k, s),
                               rtol=1e-6 if out.dtype != torch.float64 else 1e-12, atol=1e-6)
    return arg


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cshape,sshape,k,s", CASES)
def test_matches_chunked_float64_reference(device, method, cshape, sshape, k, s):
    content = _rand(cshape, device=device, offset=0.2)
    style = _rand(sshape, device=device, offset=0.2)
    for dtype, tol in [(torch.float64, 1e-12), (torch.float32, 2e-6)]:
        c, st = content.to(dtype), style.to(dtype)
        out, idx = _swap(c, st, k, s, method=method)
        assert out.shape == cshape and out.dtype == dtype and idx.dtype == torch.long
        assert idx.shape == (cshape[0], (cshape[2] - k) // s + 1, (cshape[3] - k) // s + 1)
        arg = _check_against_float64(c, st, k, s, out, idx, tol)
        if dtype == torch.float64:  # random data: no near-ties at float64 precision
            assert torch.equal(idx.cpu().flatten(1), arg)


@pytest.mark.parametrize("band_bytes", [600, 5000, 40000])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("cshape,sshape,k,s", [CASES[0], CASES[1], CASES[3], CASES[4]])
def test_bands_match_one_band(device, method, cshape, sshape, k, s, band_bytes):
    # Small budgets split the GEMM into many content and style bands; the result must not change.
    content = _rand(cshape, device=device, offset=0.2)
    style = _rand(sshape, device=device, offset=0.2)
    out1, idx1 = _swap(content, style, k, s, method=method)
    out, idx = torch.ops.pytexsynth.style_swap(content, style, k, s, "ieee", method, band_bytes)
    assert torch.equal(idx, idx1)
    assert torch.equal(out, out1)
    assert torch.equal(idx.cpu().flatten(1), _match64(content.cpu(), style.cpu(), k, s)[1])


@pytest.mark.parametrize("layout", ["channels_last", "noncontiguous", "transposed"])
@pytest.mark.parametrize("method", METHODS)
def test_layouts(device, layout, method):
    content = _rand((2, 5, 9, 8), torch.float32, device, 0.3)
    style = _rand((1, 5, 7, 10), torch.float32, device, 0.3)
    out_ref, idx_ref = _swap(content, style, 3, 1, method=method)
    c, st = make_layout(content, layout), make_layout(style, layout)
    out, idx = _swap(c, st, 3, 1, method=method)
    assert torch.equal(idx, idx_ref)
    torch.testing.assert_close(out, out_ref, rtol=1e-6, atol=1e-6)
    if layout == "channels_last":
        assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("precision,tol", [("tf32", 2e-3), ("bf16", 3e-2)])
@pytest.mark.parametrize("method", METHODS)
def test_reduced_precision_near_ties(device, precision, tol, method):
    content = _rand((2, 8, 10, 9), torch.float32, device, 0.1)
    style = _rand((1, 8, 9, 11), torch.float32, device, 0.1)
    out, idx = _swap(content, style, 3, 1, precision, method)
    _check_against_float64(content, style, 3, 1, out, idx, tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_half_inputs(device, dtype, tol):
    content = _rand((2, 4, 7, 8), dtype, device, 0.2)
    style = _rand((1, 4, 8, 6), dtype, device, 0.2)
    out, idx = _swap(content, style, 3, 1)
    assert out.dtype == dtype
    best, _, cp, sp = _match64(content.cpu(), style.cpu(), 3, 1)
    chosen = _scores_of(idx.cpu(), cp, sp)
    assert bool((chosen >= best - 1e-5 * cp.norm(dim=2)).all())  # matched in float32
    torch.testing.assert_close(out.cpu().double(), _decode64(style.cpu(), idx.cpu(), 7, 8, 3, 1), rtol=tol, atol=tol)


@pytest.mark.parametrize("band_bytes", [0, 700])
@pytest.mark.parametrize("method", METHODS)
def test_exact_ties_pick_smallest_index(device, method, band_bytes):
    # Small integers: every product and sum is exact in float32, so repeated style patches tie
    # exactly. The style repeats with period 3 along W (and 2 along H): many equal patches.
    g = torch.Generator().manual_seed(1)
    base = torch.randint(0, 3, (1, 4, 2, 3), generator=g).float()
    style = base.repeat(1, 1, 4, 4).to(device)  # (1, 4, 8, 12)
    content = torch.randint(0, 3, (2, 4, 7, 9), generator=g).float().to(device)
    content[0, :, :4, :6] = style[0, :, 2:6, 3:9]  # exact copies of style patches too
    # band_bytes=700: one content and one style patch row per band, ties across bands too.
    out, idx = torch.ops.pytexsynth.style_swap(content, style, 3, 1, "ieee", method, band_bytes)
    cp, raw = _patches64(content.cpu(), 3, 1), _patches64(style.cpu(), 3, 1)[0]
    # Integer dot products are exact; equal patches share one 1 / norm: exact float64 ties.
    sc = (cp @ raw.t()) * (1.0 / (raw.norm(dim=1) + 1e-8))
    expected = (sc == sc.max(dim=2, keepdim=True).values).float().argmax(dim=2)
    assert torch.equal(idx.cpu().flatten(1), expected)
    assert int((sc == sc.max(dim=2, keepdim=True).values).sum()) > 2 * expected.numel()  # ties happened


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("k,s", [(3, 1), (5, 1), (3, 2), (2, 2)])
def test_swap_with_itself_is_identity(device, method, k, s):
    S = (torch.rand(1, 6, 13, 12, dtype=torch.float64) + 0.05).to(device)
    for dtype in (torch.float64, torch.float32):
        out, idx = _swap(S.to(dtype), S.to(dtype), k, s, method=method)
        n_h, n_w = (13 - k) // s + 1, (12 - k) // s + 1
        assert torch.equal(idx.cpu(), torch.arange(n_h * n_w).view(1, n_h, n_w))
        covered = S[..., : (n_h - 1) * s + k, : (n_w - 1) * s + k]
        torch.testing.assert_close(out[..., : covered.shape[-2], : covered.shape[-1]], covered.to(dtype),
                                   rtol=1e-6, atol=1e-7)
        assert not out[..., covered.shape[-2]:, :].any() and not out[..., covered.shape[-1]:].any()


@pytest.mark.parametrize("k,s", [(3, 1), (5, 2), (2, 3), (1, 1)])
def test_decode_equals_conv_transpose(device, k, s):
    style = _rand((2, 3, 11, 9), torch.float64, device)
    H, W = 12, 10
    n_s = ((11 - k) // s + 1) * ((9 - k) // s + 1)
    idx = torch.randint(0, n_s, (2, (H - k) // s + 1, (W - k) // s + 1), device=device)
    out = torch.ops.pytexsynth._style_swap_decode(style, idx, H, W, k, s)
    torch.testing.assert_close(out.cpu(), _decode64(style.cpu(), idx.cpu(), H, W, k, s), rtol=1e-12, atol=1e-12)


def test_zero_norm_style_patches_and_zero_content(device):
    style = _rand((1, 3, 9, 9), torch.float64, device)
    style[..., :4, :4] = 0  # four zero patches, at indices 0, 1, 7, 8: score 0 for any content
    content = _rand((2, 3, 8, 8), torch.float64, device)
    content[1] = -content[1].abs()  # negative content: some patches prefer a zero style patch
    for method in METHODS:
        out, idx = _swap(content, style, 3, 1, method=method)
        assert torch.isfinite(out).all()
        best, arg, _, _ = _match64(content.cpu(), style.cpu(), 3, 1)
        assert torch.equal(idx.cpu().flatten(1), arg)
    # All-zero content (ReLU) scores 0 against everything: index 0, as torch.argmax.
    _, idx = _swap(torch.zeros(1, 3, 6, 6, device=device, dtype=torch.float64), style, 3, 1)
    assert not idx.any()


def test_reference_agrees(device):
    content = _rand((2, 4, 9, 10), torch.float64, device, 0.2)
    style = _rand((2, 4, 8, 9), torch.float64, device, 0.2)
    for k, s in [(3, 1), (3, 2)]:
        out, idx = ops.style_swap(content, style, k, s, return_indices=True)
        out_r, idx_r = reference.style_swap(content, style, k, s, return_indices=True)
        assert torch.equal(idx, idx_r)
        torch.testing.assert_close(out, out_r, rtol=1e-12, atol=1e-12)


def test_gradcheck_style(device):
    content = _rand((2, 2, 6, 5), torch.float64, device, 0.2)
    for k, s, bs in [(3, 1, 1), (2, 2, 2), (3, 2, 1)]:
        style = _rand((bs, 2, 5, 6), torch.float64, device, 0.2).requires_grad_()
        assert torch.autograd.gradcheck(lambda st: ops.style_swap(content, st, k, s), (style,))
        _, idx = ops.style_swap(content, style.detach(), k, s, return_indices=True)
        decode = lambda st: torch.ops.pytexsynth._style_swap_decode(st, idx, 6, 5, k, s)  # noqa: E731
        assert torch.autograd.gradcheck(decode, (style,))
        assert torch.autograd.gradgradcheck(decode, (style,))


def test_content_gradient_is_zero(device):
    content = _rand((1, 3, 6, 6), torch.float32, device).requires_grad_()
    style = _rand((1, 3, 6, 6), torch.float32, device).requires_grad_()
    ops.style_swap(content, style).square().sum().backward()
    assert content.grad is not None and not content.grad.any()
    assert style.grad is not None and style.grad.abs().sum() > 0


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "noncontiguous"])
def test_style_gradient_matches_conv_transpose_autograd(device, layout):
    content = _rand((2, 4, 9, 8), torch.float32, device, 0.2)
    style = _rand((1, 4, 8, 9), torch.float32, device, 0.2)
    grad = make_layout(_rand((2, 4, 9, 8), torch.float32, device), layout)
    st = style.clone().requires_grad_()
    out, idx = ops.style_swap(content, st, 3, 1, return_indices=True)
    (g,) = torch.autograd.grad(out, st, grad)
    st64 = style.cpu().double().requires_grad_()
    (g_ref,) = torch.autograd.grad(_decode64(st64, idx.cpu(), 9, 8, 3, 1), st64, grad.cpu().double())
    torch.testing.assert_close(g.cpu().double(), g_ref, rtol=1e-5, atol=1e-6)


def test_deterministic(device):
    content = _rand((2, 8, 12, 11), torch.float32, device)
    style = _rand((1, 8, 10, 12), torch.float32, device).requires_grad_()
    g = torch.randn(2, 8, 12, 11, device=device)
    runs = []
    for _ in range(3):
        out, idx = ops.style_swap(content, style, return_indices=True)
        runs.append((out, idx, torch.autograd.grad(out, style, g)[0]))
    for r in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], r))


def test_empty_batch(device):
    out, idx = _swap(torch.empty(0, 3, 5, 5, device=device), torch.randn(1, 3, 4, 4, device=device), 3, 1)
    assert out.shape == (0, 3, 5, 5) and idx.shape == (0, 3, 3)


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(device, requires_grad):
    content = torch.randn(2, 3, 6, 7, device=device)
    style = torch.randn(1, 3, 5, 6, device=device, requires_grad=requires_grad)
    torch.library.opcheck(torch.ops.pytexsynth.style_swap.default, (content, style, 3, 1, "ieee", "pixel"))
    torch.library.opcheck(torch.ops.pytexsynth.style_swap.default,
                          (content.contiguous(memory_format=torch.channels_last), style, 2, 2, "bf16", "patch"))
    _, idx = _swap(content, style.detach(), 3, 1)
    torch.library.opcheck(torch.ops.pytexsynth._style_swap_decode.default, (style, idx, 6, 7, 3, 1))
    g = torch.randn(2, 3, 6, 7, device=device, requires_grad=requires_grad)
    torch.library.opcheck(torch.ops.pytexsynth._style_swap_backward.default, (g, idx, [1, 3, 5, 6], 3, 1))


def test_torch_compile_fullgraph(device):
    def f(content, style):
        return ops.style_swap(content.relu(), style, 3, 1).square().sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    content = torch.randn(2, 4, 8, 8, device=device)
    style = torch.randn(1, 4, 7, 9, device=device, requires_grad=True)
    out = compiled(content, style)
    out.backward()
    st = style.detach().clone().requires_grad_()
    ref = f(content, st)
    ref.backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(style.grad, st.grad)


def test_module(device):
    style = _rand((1, 4, 9, 8), torch.float32, device, 0.2)
    swap = pnn.StyleSwap(style[0], patch_size=3).to(device)
    content = _rand((2, 4, 7, 7), torch.float32, device, 0.2)
    assert torch.equal(swap(content), ops.style_swap(content, style))
    assert "patch_size=3" in repr(swap) and "style" in dict(swap.named_buffers())
    with pytest.raises(ValueError, match="StyleSwap: style must have batch size 1"):
        pnn.StyleSwap(torch.randn(2, 4, 5, 5))


def test_fallback_uses_reference(monkeypatch):
    hide_extension(monkeypatch)
    content, style = torch.randn(1, 3, 6, 6), torch.randn(1, 3, 5, 5)
    with pytest.warns(RuntimeWarning, match="pure-PyTorch reference"):
        out = ops.style_swap(content, style)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(out, reference.style_swap(content, style))


# ---- bad input -----------------------------------------------------------------------------

BAD = [
    (lambda: (torch.randn(1, 3, 6, 6), torch.randn(1, 4, 6, 6)), {}, ValueError,
     r"content has 3 channels but style has 4"),
    (lambda: (torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6)), {"patch_size": 7}, ValueError,
     r"patch_size=7 is larger than the content map \(6x6\)"),
    (lambda: (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 2, 9)), {}, ValueError,
     r"patch_size=3 is larger than the style map \(2x9\)"),
    (lambda: (torch.ones(1, 3, 6, 6, dtype=torch.int64), torch.ones(1, 3, 6, 6, dtype=torch.int64)), {}, TypeError,
     r"content must be a float32, float64, float16 or bfloat16 tensor, got torch.int64"),
    (lambda: (torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6, dtype=torch.float64)), {}, TypeError,
     r"content and style must have the same dtype"),
    (lambda: (torch.randn(3, 6, 6), torch.randn(1, 3, 6, 6)), {}, ValueError, r"content must be a 4-D"),
    (lambda: (torch.randn(2, 3, 6, 6), torch.randn(3, 3, 6, 6)), {}, ValueError,
     r"style must have batch size 1 or the content's batch size 2, got 3"),
    (lambda: (torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6)), {"stride": 0}, ValueError, r"stride must be >= 1"),
    (lambda: (torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6)), {"patch_size": 2.0}, TypeError,
     r"patch_size must be an int"),
    (lambda: (torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6)), {"precision": "fp16"}, ValueError,
     r"precision must be 'ieee', 'tf32' or 'bf16', got 'fp16'"),
    (lambda: ([[1.0]], torch.randn(1, 3, 6, 6)), {}, TypeError, r"content must be a torch.Tensor"),
]


@pytest.mark.parametrize("make,kwargs,exc,msg", BAD)
def test_bad_input_wrapper(device, make, kwargs, exc, msg):
    content, style = make()
    if isinstance(content, torch.Tensor):
        content, style = content.to(device), style.to(device)
    with pytest.raises(exc, match=msg):
        ops.style_swap(content, style, **kwargs)


BAD_CPP = [
    ((1, 3, 6, 6), (1, 4, 6, 6), torch.float32, 3, 1, "ieee", r"style_swap: content has 3 channels but style has 4"),
    ((1, 3, 6, 6), (1, 3, 6, 6), torch.float32, 7, 1, "ieee", r"patch_size=7 is larger than the content map \(6x6\)"),
    ((1, 3, 6, 6), (1, 3, 6, 6), torch.int32, 3, 1, "ieee", r"content must be a float32, float64, float16 or bfloat16"),
    ((2, 3, 6, 6), (3, 3, 6, 6), torch.float32, 3, 1, "ieee", r"style must have batch size 1 or the content's"),
    ((1, 3, 6, 6), (1, 3, 6, 6), torch.float32, 3, 0, "ieee", r"stride must be >= 1, got 0"),
    ((1, 3, 6, 6), (1, 3, 6, 6), torch.float32, 3, 1, "half", r"precision must be 'ieee', 'tf32' or 'bf16'"),
]


@pytest.mark.parametrize("cshape,sshape,dtype,k,s,prec,msg", BAD_CPP)
def test_bad_input_op(device, cshape, sshape, dtype, k, s, prec, msg):
    content = torch.ones(cshape, dtype=dtype, device=device)
    style = torch.ones(sshape, dtype=dtype, device=device)
    with pytest.raises(RuntimeError, match=msg):
        _swap(content, style, k, s, prec)


def test_bad_input_backward_ops(device):
    idx = torch.zeros(1, 4, 4, dtype=torch.long, device=device)
    with pytest.raises(RuntimeError, match=r"indices must have shape \[1, 2, 2\]"):
        torch.ops.pytexsynth._style_swap_decode(torch.randn(1, 2, 5, 5, device=device), idx, 4, 4, 3, 1)
    with pytest.raises(RuntimeError, match=r"indices must be int64"):
        torch.ops.pytexsynth._style_swap_decode(torch.randn(1, 2, 5, 5, device=device), idx.int(), 6, 6, 3, 1)
    with pytest.raises(RuntimeError, match=r"style_size \[1, 3, 5, 5\] has 3 channels but grad_output has 2"):
        torch.ops.pytexsynth._style_swap_backward(torch.randn(1, 2, 6, 6, device=device), idx, [1, 3, 5, 5], 3, 1)


# ---- property test ---------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(b=st.integers(1, 2), c=st.integers(2, 5), k=st.integers(1, 4), s=st.integers(1, 3), data=st.data(),
       shared_style=st.booleans(), method=st.sampled_from(METHODS), band_bytes=st.sampled_from([0, 300]))
def test_property_matches_float64(b, c, k, s, data, shared_style, method, band_bytes):
    h, w = data.draw(st.integers(k, 9)), data.draw(st.integers(k, 9))
    hs, ws = data.draw(st.integers(k, 9)), data.draw(st.integers(k, 9))
    content = torch.randn(b, c, h, w, dtype=torch.float64)
    style = torch.randn(1 if shared_style else b, c, hs, ws, dtype=torch.float64)
    out, idx = torch.ops.pytexsynth.style_swap(content, style, k, s, "ieee", method, band_bytes)
    assert torch.equal(idx.flatten(1), _match64(content, style, k, s)[1])
    torch.testing.assert_close(out, _decode64(style, idx, h, w, k, s), rtol=1e-12, atol=1e-12)
