"""gram_loss_multi (all style layers in one op) and the GramLoss module against the
single-layer ops and float64 references."""

from __future__ import annotations

import pytest
import torch

from pytexsynth import nn as pnn
from pytexsynth import ops, reference

from conftest import cuda_skip_reason, make_layout
from op_contract import GRAD_CHECKS, OPCHECK, Bad, OpContract, RelErr, bad_op, call_of, rel_err, sample
from test_gram import NORMALIZE, _rand, _target, _x


def _vgg_like(device, b=1):
    return {f"relu{i}_1": _rand((b, c, s, s), device=device)
            for i, (c, s) in enumerate([(4, 16), (8, 8), (16, 4)], start=1)}


def _layers(*layers, weights, normalize="hw", checks=()):
    """A gram_loss_multi sample: (shape, layout, target kind) per layer."""
    shapes, layouts, kinds = zip(*layers)
    return sample(*shapes, layouts=layouts, targets=kinds, weights=weights, normalize=normalize, checks=checks)


# Layers of different C, H*W, batch-broadcast and batched targets, mixed layouts, one of them
# several tiles wide (C = 130) so the tile schedule has off-diagonal pairs.
_MIXED = [((2, 4, 9, 7), "channels_last", "2d"), ((2, 130, 6, 5), "contiguous", "batched"),
          ((2, 17, 5, 11), "noncontiguous", "one")]
_VGG_LIKE = [((2, 4, 16, 16), "contiguous", "2d"), ((2, 8, 8, 8), "contiguous", "2d"),
             ((2, 16, 4, 4), "contiguous", "2d")]


def _multi_args(s, device, dtype):
    xs = [make_layout(_rand(shape, dtype, device), lay) for shape, lay in zip(s.shapes, s.layouts)]
    ts = [_target(shape[0], shape[1], kind, device, dtype) for shape, kind in zip(s.shapes, s.targets)]
    return [xs, ts, list(s.weights), s.normalize]


class TestGramLossMulti(OpContract):
    samples = [
        *(_layers(*_MIXED, weights=(0.7, 1.9, 0.3), normalize=n) for n in NORMALIZE),
        _layers(*_VGG_LIKE, weights=(1.0, 0.5, 2.0), normalize="chw"),
        *(_layers(((2, 3, 4, 3), "contiguous", "2d"), ((2, 5, 3, 2), "channels_last", "batched"),
                  weights=(0.6, 1.4), normalize=n, checks=GRAD_CHECKS) for n in NORMALIZE),
        _layers(((2, 3, 5, 6), "contiguous", "2d"), ((2, 6, 3, 4), "channels_last", "batched"), weights=(0.5, 2.0),
                checks=[OPCHECK]),
    ]
    layouts = check_layouts = ["per-layer"]  # each sample names its layers' layouts
    # G rounds to the dtype in float16 / bfloat16: within 1e-2 of float64 there.
    value_bounds = {torch.float32: RelErr(1e-5), torch.float64: RelErr(1e-12), torch.float16: RelErr(1e-2),
                    torch.bfloat16: RelErr(1e-2)}
    grad_bounds = value_bounds
    check_argnums = (0, 1)  # gradcheck and opcheck of the targets too
    scalar_grad_output = 1.7
    empty_samples = [_layers(((0, 3, 4, 4), "contiguous", "2d"), ((0, 5, 3, 3), "contiguous", "2d"), weights=(1, 0.5)),
                     _layers(((2, 3, 0, 4), "contiguous", "2d"), ((2, 5, 3, 3), "contiguous", "2d"), weights=(1, 0.5))]
    determinism_sample = fallback_sample = samples[0]
    fallback_bound = RelErr(1e-5)
    compile_exact = True

    call = staticmethod(ops.gram_loss_multi)
    reference = staticmethod(reference.gram_loss_multi)

    def make(self, s, device, dtype, layout):
        return call_of(*_multi_args(s, device, dtype))

    def grad_cases(self):
        # Divided by C*H*W, the C = 130 layer's float16 gradient is below float16's normal range.
        return [c for c in super().grad_cases()
                if not (c.values[1] == torch.float16 and c.values[0].normalize == "chw")]

    def leaves(self, args, argnums):
        return [t for i in argnums for t in args[i]]

    def with_leaves(self, args, leaves, argnums):
        args, it = list(args), iter(leaves)
        for i in argnums:
            args[i] = [next(it) for _ in args[i]]
        return args

    def plant(self, call, value):
        for xs in (call.args[0], call.ref_args[0]):
            xs[0][tuple(n // 2 for n in xs[0].shape)] = value

    def check_value(self, call, dtype, layout):
        total = super().check_value(call, dtype, layout)
        if dtype != torch.float32:
            return
        xs, targets, weights, normalize = call.args
        # The same per-layer epilogue: each layer's D is bitwise the single-layer op's, and the
        # loss their weighted sum.
        _, diffs = torch.ops.pytexsynth.gram_loss_multi(xs, targets, weights, normalize, "ieee")
        for x, t, w, d in zip(xs, targets, weights, diffs):
            assert torch.equal(d, torch.ops.pytexsynth.gram_loss(x, t, w, normalize, "ieee")[1])
        terms = [ops.gram_loss(x, t, w, normalize) for x, t, w in zip(xs, targets, weights)]
        torch.testing.assert_close(total, sum(terms), rtol=1e-6, atol=0)

    def check_grad(self, call, dtype, layout):
        super().check_grad(call, dtype, layout)
        if dtype != torch.float32:
            return
        # ... and the gradients the single-layer ops', strides included.
        xs, targets, weights, normalize = call.args
        g = torch.tensor(self.scalar_grad_output, device=xs[0].device)
        _, grads = self.grads_of(self.call, call.args, g)
        _, per_layer = self.grads_of(lambda xs, *rest: sum(ops.gram_loss(x, t, w, normalize)
                                                           for x, t, w in zip(xs, targets, weights)), call.args, g)
        for a, b in zip(grads, per_layer):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
            assert a.stride() == b.stride()

    def opcheck_calls(self, call, requires_grad):
        xs, ts, weights, normalize = call.args
        ts[0].requires_grad_(False)  # one target without a gradient
        diffs = [torch.randn(2, 3, 3, device=xs[0].device), torch.randn(2, 6, 6, device=xs[0].device)]
        gl = torch.tensor(1.3, device=xs[0].device).requires_grad_(requires_grad)
        return [(torch.ops.pytexsynth.gram_loss_multi.default, (xs, ts, weights, normalize, "ieee")),
                (torch.ops.pytexsynth.gram_loss_multi.default, (xs, ts, [1.0, 1.0], "chw", "bf16")),
                (torch.ops.pytexsynth._gram_loss_multi_backward.default, (gl, diffs, xs, weights, "none", "ieee"))]

    def compile_case(self, device):
        xs, targets, weights, _ = _multi_args(self.samples[0], device, torch.float32)

        def f(a, b, c):
            return ops.gram_loss_multi([a, torch.relu(b), c], targets, weights) * 2.0

        return f, xs, (0, 1, 2)

    bad_input_devices = bad_op_input_devices = ("cpu",)
    bad_inputs = [
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4)], [torch.rand(3, 3)] * 2, [1.0]), ValueError,
            r"gram_loss_multi: xs, targets and weights must have the same length, got 1, 2 and 1", "targets"),
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4)] * 2, [torch.rand(3, 3)] * 2, [1.0]), ValueError,
            r"same length, got 2, 2 and 1", "weights"),
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4)] * 3, [torch.rand(3, 3)] * 2, [1.0] * 3), ValueError,
            r"xs, targets and weights must have the same length, got 3, 2 and 3", "xs"),
        Bad(lambda d: ops.gram_loss_multi([], [], []), ValueError, r"gram_loss_multi: xs must hold at least one tensor",
            "xs"),
        Bad(lambda d: ops.gram_loss_multi(_x(2, 3, 4, 4), [torch.rand(3, 3)], [1.0]), TypeError,
            r"gram_loss_multi: xs must be a list, got Tensor", "xs"),
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4), _x(2, 3, 4, 4).double()],
                                          [torch.rand(3, 3), torch.rand(3, 3).double()], [1.0, 1.0]), TypeError,
            r"gram_loss_multi: every layer must have one dtype; xs\[1\] is torch.float64 but xs\[0\] is torch.float32",
            "xs"),
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4), _x(2, 3, 4, 4).to("meta")],
                                          [torch.rand(3, 3), torch.rand(3, 3, device="meta")], [1.0, 1.0]), ValueError,
            r"gram_loss_multi: every layer must be on one device; xs\[1\] is on meta but xs\[0\] is on cpu", "xs"),
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4), _x(3, 4, 4)], [torch.rand(3, 3)] * 2, [1.0, 1.0]),
            ValueError, r"gram_loss_multi: xs\[1\] must be a 4-D", "xs"),
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4)] * 2, [torch.rand(3, 3), torch.rand(2, 3)], [1.0, 1.0]),
            ValueError, r"gram_loss_multi: targets\[1\] of shape \(2, 3\) does not match xs\[1\]'s 3 channels",
            "targets"),
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4)], [torch.rand(3, 3, device="meta")], [1.0]), ValueError,
            r"xs\[0\] and targets\[0\] must be on the same device", "targets"),
        Bad(lambda d: ops.gram_loss_multi([_x(2, 3, 4, 4)], [torch.rand(3, 3)], ["a"]), TypeError,
            r"weights\[0\]: weight must be a float", "weights"),
    ]
    bad_op_inputs = [
        bad_op(lambda d: torch.ops.pytexsynth.gram_loss_multi([_x(1, 3, 4, 4)], [torch.rand(3, 3)] * 2, [1.0], "hw",
                                                              "ieee"),
               r"xs, targets and weights must have the same length, got 1, 2 and 1", "targets"),
        bad_op(lambda d: torch.ops.pytexsynth.gram_loss_multi([_x(1, 3, 4, 4), _x(1, 3, 4, 4).double()],
                                                              [torch.rand(3, 3), torch.rand(3, 3).double()], [1.0, 1.0],
                                                              "hw", "ieee"),
               r"every layer must have one dtype; xs\[1\] is Double but xs\[0\] is Float", "xs"),
        bad_op(lambda d: torch.ops.pytexsynth.gram_loss_multi([_x(1, 3, 4, 4), _x(1, 2, 4, 4)], [torch.rand(3, 3)] * 2,
                                                              [1.0, 1.0], "hw", "ieee"),
               r"gram_loss_multi: targets\[1\] of shape \[3, 3\] does not match xs\[1\]'s 2 channels", "targets"),
        bad_op(lambda d: torch.ops.pytexsynth.gram_loss_multi([_x(1, 3, 4)], [torch.rand(3, 3)], [1.0], "hw", "ieee"),
               r"gram_loss_multi: xs\[0\] must be a 4-D", "xs"),
        bad_op(lambda d: torch.ops.pytexsynth._gram_loss_multi_backward(torch.tensor(1.0), [torch.rand(1, 3, 3)],
                                                                        [_x(1, 3, 4, 4), _x(1, 3, 4, 4)], [1.0], "hw",
                                                                        "ieee"),
               r"_gram_loss_multi_backward: diffs, xs and weights must have the same length, got 1, 2 and 1", "diffs"),
        bad_op(lambda d: torch.ops.pytexsynth._gram_loss_multi_backward(torch.tensor(1.0), [torch.rand(1, 2, 2)],
                                                                        [_x(1, 3, 4, 4)], [1.0], "hw", "ieee"),
               r"_gram_loss_multi_backward: diffs\[0\] must be \(1, 3, 3\)", "diffs"),
    ]


def test_gram_loss_multi_without_tensors_op():
    # An empty list has no tensor to dispatch on: the dispatcher says so (the Python wrapper
    # names the argument, see TestGramLossMulti.bad_inputs).
    with pytest.raises(NotImplementedError, match="no tensor arguments"):
        torch.ops.pytexsynth.gram_loss_multi([], [], [], "hw", "ieee")


def test_gram_loss_multi_zero_at_own_targets(device):
    for dtype in (torch.float32, torch.float64):
        xs, _, weights, _ = _multi_args(TestGramLossMulti.samples[0], device, dtype)
        loss = ops.gram_loss_multi(xs, [ops.gram(x) for x in xs], weights)
        assert loss.dtype == dtype and loss.item() == 0.0


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
    assert rel_err(loss_c.cpu(), loss) < 1e-5
    for g, gc in zip(torch.autograd.grad(loss, xs), torch.autograd.grad(loss_c, xc)):
        assert rel_err(gc.cpu(), g) < 1e-5
    for x, c in zip(xs, xc):
        g = ops.gram(c.detach())
        assert torch.equal(g, g.mT) and rel_err(g.cpu(), ops.gram(x.detach())) < 1e-5


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
    with pytest.raises(KeyError, match=r"GramLoss: features lack the layers \['b'\]"):
        pnn.GramLoss({"a": style[0], "b": style[1]})({"a": style[0]})
    with pytest.raises(ValueError, match="GramLoss: expected 2 feature tensors, got 1"):
        crit(style[:1])
