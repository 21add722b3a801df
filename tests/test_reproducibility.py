"""Reproducibility (issue 18 item 14): the same command and seed give the same image whatever the
CPU thread count, because every reduction that decides the image runs in a fixed order (the
package's kernels, MKL in strict CBWR mode, the fixed_order_* reductions, L-BFGS's vector math
on one thread)."""

from __future__ import annotations

import contextlib

import pytest
import torch

import pytexsynth
from pytexsynth.ops import fixed_order_mean, fixed_order_mse, fixed_order_sum


@contextlib.contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Sizes at and above PyTorch's parallel grain (32768 elements), where its own sum splits the work
# over threads, and a reduced extent of one output (a grey image's per-channel mean).
SHAPES = [((1, 512, 32, 32), None), ((3, 100003), None), ((1, 1, 300, 300), (2, 3)), ((2, 3, 181, 181), (0, 2, 3)),
          ((5,), None), ((4, 7, 9), (1,))]


@pytest.mark.parametrize("shape,dim", SHAPES)
def test_fixed_order_reductions_match_torch_and_ignore_the_thread_count(shape, dim):
    t = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    if t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    dims = tuple(range(t.dim())) if dim is None else dim
    values = []
    for n in (1, 2, 3):
        with threads(n):
            values.append((fixed_order_sum(t, dim, keepdim=True), fixed_order_mean(t, dim)))
    for s, m in values[1:]:
        assert torch.equal(s, values[0][0]) and torch.equal(m, values[0][1])
    s, m = values[0]
    torch.testing.assert_close(s.double(), t.double().sum(dims, keepdim=True), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(m, t.mean(dims), rtol=1e-4, atol=1e-6)


def test_fixed_order_reductions_have_the_gradient_of_sum_and_mean():
    x = torch.randn(3, 5, 7, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 5, 7, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: fixed_order_sum(a, (0, 2)), (x,))
    assert torch.autograd.gradcheck(lambda a: fixed_order_mean(a), (x,))
    assert torch.autograd.gradcheck(lambda a: fixed_order_mse(a, y), (x,))
    torch.testing.assert_close(fixed_order_mse(x, y), torch.nn.functional.mse_loss(x, y))
    with pytest.raises(ValueError, match="shapes differ"):
        fixed_order_mse(x, y[:1])
    assert torch.isnan(fixed_order_mean(torch.empty(0)))


def _stylize(n_threads: int) -> torch.Tensor:
    content = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    style = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(2)) * 0.5
    with threads(n_threads):
        return pytexsynth.transfer_style(content, style, size=96, iterations=8, seed=0)


def test_style_transfer_is_the_same_for_every_thread_count():
    # 96 px: the content (512 x 12 x 12 at relu4_2) and the gradient norms of the balance
    # exceed PyTorch's parallel grain, so before the fixed-order reductions the images differed.
    one, two, three = _stylize(1), _stylize(2), _stylize(3)
    assert torch.equal(one, two) and torch.equal(one, three)
