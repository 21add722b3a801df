"""style_swap against float64 references: matches, ties, decode, gradients, layouts, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pytexsynth import nn as pnn
from pytexsynth import ops, reference

from conftest import make_layout
from op_contract import GRAD_CHECKS, OPCHECK, Bad, Close, OpContract, bad_op, call_of, sample, seeded_randn

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


def _check_against_float64(content, style, k, s, out, idx, rel_tol, decode=Close(1e-6, 1e-6)):
    """Each chosen index scores within rel_tol of the best float64 score, and out is the float64
    decode of the chosen indices within `decode`. Returns the float64 argmax."""
    best, arg, cp, sp = _match64(content.cpu(), style.cpu(), k, s)
    chosen = _scores_of(idx.cpu(), cp, sp)
    scale = cp.norm(dim=2).clamp_min(1e-12)
    # Any index whose float64 score is within the rounding of the best is a right answer.
    assert bool((chosen >= best - rel_tol * scale).all()), float(((best - chosen) / scale).max())
    H, W = content.shape[-2:]
    decode.check(out.cpu(), _decode64(style.cpu(), idx.cpu(), H, W, k, s))
    return arg


def _ones(*shape, dtype=torch.float32):
    return lambda d: torch.ones(shape, dtype=dtype, device=d)


def _swap_bad(content, style, **kwargs):
    """ops.style_swap of content and style (callables of the device, or plain values)."""
    def call(d):
        return ops.style_swap(content(d) if callable(content) else content, style(d), **kwargs)
    return call


def _randn(*shape, dtype=torch.float32):
    return lambda d: torch.randn(*shape, dtype=dtype, device=d)


def _swap_op_bad(cshape, sshape, dtype, k, s, precision):
    return lambda d: _swap(_ones(*cshape, dtype=dtype)(d), _ones(*sshape, dtype=dtype)(d), k, s, precision)


def _decode_bad(index_dtype, h, w):
    """The decode of a (1, 2, 5, 5) style at (1, 4, 4) indices into an h x w map, k = 3, s = 1."""
    return lambda d: torch.ops.pytexsynth._style_swap_decode(torch.randn(1, 2, 5, 5, device=d),
                                                             torch.zeros(1, 4, 4, dtype=index_dtype, device=d), h, w, 3, 1)


class TestStyleSwap(OpContract):
    samples = [
        *(sample(cs, ss, k=k, s=s, method=m, offset=0.2) for cs, ss, k, s in CASES for m in METHODS),
        *(sample((2, 5, 9, 8), (1, 5, 7, 10), k=3, s=1, method=m, offset=0.3) for m in METHODS),
        sample((2, 4, 7, 8), (1, 4, 8, 6), k=3, s=1, method="auto", offset=0.2),
        sample((2, 8, 12, 11), (1, 8, 10, 12), k=3, s=1, method="auto", offset=0.0),
        sample((1, 3, 6, 6), (1, 3, 5, 5), k=3, s=1, method="auto", offset=0.0),
        *(sample((2, 2, 6, 5), (bs, 2, 5, 6), k=k, s=s, method="auto", offset=0.2, checks=GRAD_CHECKS)
          for k, s, bs in [(3, 1, 1), (2, 2, 2), (3, 2, 1)]),
        sample((2, 3, 6, 7), (1, 3, 5, 6), k=3, s=1, method="pixel", offset=0.0, checks=[OPCHECK]),
    ]
    # The output (the overlap average of the chosen style patches) against the float64 decode
    # of the chosen indices; TIES: how far below the best float64 score (relative to the
    # content patch's norm) a chosen patch may score; float16 / bfloat16 match in float32.
    value_bounds = {torch.float64: Close(1e-12, 1e-6), torch.float32: Close(1e-6, 1e-6),
                    torch.float16: Close(2e-3, 2e-3), torch.bfloat16: Close(2e-2, 2e-2)}
    TIES = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 1e-5, torch.bfloat16: 1e-5}
    # The style gradient against the float64 autograd of that decode.
    grad_bounds = {torch.float32: Close(1e-5, 1e-6), torch.float64: Close(1e-12, 1e-12),
                   torch.float16: Close(2e-3, 2e-3), torch.bfloat16: Close(2e-2, 2e-2)}
    grad_argnums = (1,)  # the content's gradient is zero (test_content_gradient_is_zero)
    empty_samples = [sample((0, 3, 5, 5), (1, 3, 4, 4), k=3, s=1, method="auto", offset=0.0)]
    determinism_sample = samples[17]
    fallback_sample = samples[18]
    fallback_bound = Close(1e-6, 1e-6)

    @staticmethod
    def swap(content, style, k, s, method):
        """(out, indices): the public wrapper for method "auto", else the op with that method."""
        if method == "auto":
            return ops.style_swap(content, style, k, s, return_indices=True)
        return _swap(content, style, k, s, method=method)

    def call(self, content, style, k, s, method):
        return self.swap(content, style, k, s, method)[0]

    @staticmethod
    def reference(content, style, k, s, method):
        return reference.style_swap(content, style, k, s)

    def make(self, s, device, dtype, layout):
        content, style = (make_layout(_rand(shape, dtype, device, s.offset), layout) for shape in s.shapes)
        return call_of(content, style, s.k, s.s, s.method)

    def check_value(self, call, dtype, layout):
        content, style, k, s, method = call.args
        out, idx = self.swap(content, style, k, s, method)
        assert out.shape == content.shape and out.dtype == dtype and idx.dtype == torch.long
        assert idx.shape == (content.shape[0], (content.shape[2] - k) // s + 1, (content.shape[3] - k) // s + 1)
        arg = _check_against_float64(content, style, k, s, out, idx, self.TIES[dtype], self.value_bounds[dtype])
        if dtype == torch.float64:  # random data: no near-ties at float64 precision
            assert torch.equal(idx.cpu().flatten(1), arg)
        if layout != "contiguous" and dtype == torch.float32:  # the strides change nothing
            out_ref, idx_ref = self.swap(content.contiguous(), style.contiguous(), k, s, method)
            assert torch.equal(idx, idx_ref)
            torch.testing.assert_close(out, out_ref, rtol=1e-6, atol=1e-6)
        if layout == "channels_last":
            assert out.is_contiguous(memory_format=torch.channels_last)

    def grad_outputs(self, call, out, layout):
        return [make_layout(seeded_randn(out.shape, out.dtype, out.device), layout)]

    def check_grad(self, call, dtype, layout):
        content, style, k, s, method = call.args
        (grad_output,) = self.grad_outputs(call, content, layout)
        st = style.detach().requires_grad_()
        out, idx = self.swap(content, st, k, s, method)
        (g,) = torch.autograd.grad(out, st, grad_output)
        assert g.shape == style.shape and g.dtype == dtype
        st64 = style.detach().cpu().double().requires_grad_()
        (g_ref,) = torch.autograd.grad(_decode64(st64, idx.cpu(), *content.shape[-2:], k, s), st64,
                                       grad_output.cpu().double())
        self.grad_bounds[dtype].check(g.cpu(), g_ref)

    def check_empty(self, call):
        super().check_empty(call)
        content, style, k, s, _ = call.args
        assert self.swap(*call.args)[1].shape == (0, content.shape[2] - k + 1, content.shape[3] - k + 1)

    def outputs_and_grads(self, call):
        content, style, k, s, method = call.args
        st = style.detach().requires_grad_()
        out, idx = self.swap(content, st, k, s, method)
        return [out, idx, torch.autograd.grad(out, st, seeded_randn(out.shape, out.dtype, out.device))[0]]

    def opcheck_calls(self, call, requires_grad):
        content, style, k, s, method = call.args
        _, idx = _swap(content, style.detach(), k, s)
        g = torch.randn(content.shape, device=content.device, requires_grad=requires_grad)
        return [(torch.ops.pytexsynth.style_swap.default, (content, style, k, s, "ieee", method)),
                (torch.ops.pytexsynth.style_swap.default,
                 (content.contiguous(memory_format=torch.channels_last), style, 2, 2, "bf16", "patch")),
                (torch.ops.pytexsynth._style_swap_decode.default, (style, idx, *content.shape[-2:], k, s)),
                (torch.ops.pytexsynth._style_swap_backward.default, (g, idx, list(style.shape), k, s))]

    def compile_case(self, device):
        def f(content, style):
            return ops.style_swap(content.relu(), style, 3, 1).square().sum()

        return f, [torch.randn(2, 4, 8, 8, device=device), torch.randn(1, 4, 7, 9, device=device)], (1,)

    bad_inputs = [
        Bad(_swap_bad(_randn(1, 3, 6, 6), _randn(1, 4, 6, 6)), ValueError, r"content has 3 channels but style has 4",
            "style"),
        Bad(_swap_bad(_randn(1, 3, 6, 6), _randn(1, 3, 6, 6), patch_size=7), ValueError,
            r"patch_size=7 is larger than the content map \(6x6\)", "patch_size"),
        Bad(_swap_bad(_randn(1, 3, 8, 8), _randn(1, 3, 2, 9)), ValueError,
            r"patch_size=3 is larger than the style map \(2x9\)", "patch_size"),
        Bad(_swap_bad(_ones(1, 3, 6, 6, dtype=torch.int64), _ones(1, 3, 6, 6, dtype=torch.int64)), TypeError,
            r"content must be a float32, float64, float16 or bfloat16 tensor, got torch.int64", "content"),
        Bad(_swap_bad(_randn(1, 3, 6, 6), _randn(1, 3, 6, 6, dtype=torch.float64)), TypeError,
            r"content and style must have the same dtype", "style"),
        Bad(_swap_bad(_randn(3, 6, 6), _randn(1, 3, 6, 6)), ValueError, r"content must be a 4-D", "content"),
        Bad(_swap_bad(_randn(2, 3, 6, 6), _randn(3, 3, 6, 6)), ValueError,
            r"style must have batch size 1 or the content's batch size 2, got 3", "style"),
        Bad(_swap_bad(_randn(1, 3, 6, 6), _randn(1, 3, 6, 6), stride=0), ValueError, r"stride must be >= 1", "stride"),
        Bad(_swap_bad(_randn(1, 3, 6, 6), _randn(1, 3, 6, 6), patch_size=2.0), TypeError, r"patch_size must be an int",
            "patch_size"),
        Bad(_swap_bad(_randn(1, 3, 6, 6), _randn(1, 3, 6, 6), precision="fp16"), ValueError,
            r"precision must be 'ieee', 'tf32' or 'bf16', got 'fp16'", "precision"),
        Bad(_swap_bad([[1.0]], _randn(1, 3, 6, 6)), TypeError, r"content must be a torch.Tensor", "content"),
    ]
    bad_op_inputs = [
        bad_op(_swap_op_bad((1, 3, 6, 6), (1, 4, 6, 6), torch.float32, 3, 1, "ieee"),
               r"style_swap: content has 3 channels but style has 4", "style"),
        bad_op(_swap_op_bad((1, 3, 6, 6), (1, 3, 6, 6), torch.float32, 7, 1, "ieee"),
               r"patch_size=7 is larger than the content map \(6x6\)", "patch_size"),
        bad_op(_swap_op_bad((1, 3, 6, 6), (1, 3, 6, 6), torch.int32, 3, 1, "ieee"),
               r"content must be a float32, float64, float16 or bfloat16", "content"),
        bad_op(_swap_op_bad((2, 3, 6, 6), (3, 3, 6, 6), torch.float32, 3, 1, "ieee"),
               r"style must have batch size 1 or the content's", "style"),
        bad_op(_swap_op_bad((1, 3, 6, 6), (1, 3, 6, 6), torch.float32, 3, 0, "ieee"), r"stride must be >= 1, got 0",
               "stride"),
        bad_op(_swap_op_bad((1, 3, 6, 6), (1, 3, 6, 6), torch.float32, 3, 1, "half"),
               r"precision must be 'ieee', 'tf32' or 'bf16'", "precision"),
        bad_op(_decode_bad(torch.long, 4, 4), r"indices must have shape \[1, 2, 2\]", "indices"),
        bad_op(_decode_bad(torch.int, 6, 6), r"indices must be int64", "indices"),
        bad_op(lambda d: torch.ops.pytexsynth._style_swap_backward(torch.randn(1, 2, 6, 6, device=d),
                                                                   torch.zeros(1, 4, 4, dtype=torch.long, device=d),
                                                                   [1, 3, 5, 5], 3, 1),
               r"style_size \[1, 3, 5, 5\] has 3 channels but grad_output has 2", "style_size"),
    ]


# ---- op-specific ---------------------------------------------------------------------------

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


@pytest.mark.parametrize("precision,tol", [("tf32", 2e-3), ("bf16", 3e-2)])
@pytest.mark.parametrize("method", METHODS)
def test_reduced_precision_near_ties(device, precision, tol, method):
    content = _rand((2, 8, 10, 9), torch.float32, device, 0.1)
    style = _rand((1, 8, 9, 11), torch.float32, device, 0.1)
    out, idx = _swap(content, style, 3, 1, precision, method)
    _check_against_float64(content, style, 3, 1, out, idx, tol)


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


def test_decode_gradcheck(device):
    content = _rand((2, 2, 6, 5), torch.float64, device, 0.2)
    for k, s, bs in [(3, 1, 1), (2, 2, 2), (3, 2, 1)]:
        style = _rand((bs, 2, 5, 6), torch.float64, device, 0.2).requires_grad_()
        _, idx = ops.style_swap(content, style.detach(), k, s, return_indices=True)
        decode = lambda st: torch.ops.pytexsynth._style_swap_decode(st, idx, 6, 5, k, s)  # noqa: E731
        assert torch.autograd.gradcheck(decode, (style,))
        assert torch.autograd.gradgradcheck(decode, (style,))


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


def test_content_gradient_is_zero(device):
    content = _rand((1, 3, 6, 6), torch.float32, device).requires_grad_()
    style = _rand((1, 3, 6, 6), torch.float32, device).requires_grad_()
    ops.style_swap(content, style).square().sum().backward()
    assert content.grad is not None and not content.grad.any()
    assert style.grad is not None and style.grad.abs().sum() > 0


def test_module(device):
    style = _rand((1, 4, 9, 8), torch.float32, device, 0.2)
    swap = pnn.StyleSwap(style[0], patch_size=3).to(device)
    content = _rand((2, 4, 7, 7), torch.float32, device, 0.2)
    assert torch.equal(swap(content), ops.style_swap(content, style))
    assert "patch_size=3" in repr(swap) and "style" in dict(swap.named_buffers())
    with pytest.raises(ValueError, match="StyleSwap: style must have batch size 1"):
        pnn.StyleSwap(torch.randn(2, 4, 5, 5))


# ---- property test -------------------------------------------------------------------------

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
