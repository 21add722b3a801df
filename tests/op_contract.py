"""OpContract: the tests every pytexsynth op passes, written once.

Like torchvision's RoIOpTester (test/test_ops.py in pytorch/vision): one subclass per op, named
Test<Op>, declares the op, its reference and its sample inputs, and inherits the generic tests
below; the op's own tests (tile schedules, tie rules, ...) stay beside it in its module.

A subclass declares (class attributes):
    samples           the op's inputs (`sample(...)`), each declared once. Every sample feeds the
                      reference comparison; those whose `checks` hold GRADCHECK, GRADGRADCHECK
                      (GRAD_CHECKS: both) or OPCHECK feed those checks too.
    value_bounds      {dtype: bound} of the value against the reference; its keys are the dtypes.
    grad_bounds       {dtype: bound} of the input gradient against the reference's.
    layouts           layouts of the reference comparison (default: all of conftest.LAYOUTS).
    check_layouts     layouts of gradcheck and opcheck (default: contiguous and channels_last).
    grad_argnums      positions of the arguments whose gradients are compared to the reference's;
                      check_argnums: those of gradcheck and opcheck (default: grad_argnums).
    bad_inputs        `Bad` calls of the public wrapper; bad_op_inputs: of torch.ops.pytexsynth.*
                      (bad_input_devices, bad_op_input_devices: where they run; default all).
    non_finite        values planted in the input by the non-finite test (default NaN, inf, -inf).
    empty_samples     samples with an empty dimension.
    determinism_sample, fallback_sample   the samples those two tests run.
and implements:
    call(*args)       the public wrapper (or the op, for arguments only the op takes);
                      reference(*ref_args): the float64 spec it is held to.
    make(sample, device, dtype, layout) -> Call   the arguments of one sample.
    opcheck_calls(call, requires_grad) -> [(overload, args)]   the op and its backward ops.
    compile_case(device) -> (f, inputs, wrt)   a scalar function of inputs that uses the op.

A generic test that does not apply to an op is switched off by setting it to None in the
subclass, with the reason beside it (pytest collects only callables).
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from typing import Any, Callable, Mapping, Sequence

import pytest
import torch

from conftest import DEVICES, LAYOUTS, assert_compiles_like_eager, hide_extension

GRADCHECK = "gradcheck"
GRADGRADCHECK = "gradgradcheck"
GRAD_CHECKS = (GRADCHECK, GRADGRADCHECK)
OPCHECK = "opcheck"


# ---- bounds: how close a result must be to what it is compared with --------------------------

def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Relative error in the Frobenius norm, in float64."""
    a, b = actual.detach().double(), expected.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@dataclasses.dataclass(frozen=True)
class Exact:
    """The same bits, in the result's dtype."""

    def check(self, actual: torch.Tensor, expected: torch.Tensor) -> None:
        assert actual.shape == expected.shape
        assert torch.equal(actual, expected.to(actual.dtype))


@dataclasses.dataclass(frozen=True)
class Close:
    """Elementwise |actual - expected| <= atol + rtol |expected|, in float64."""

    rtol: float
    atol: float

    def check(self, actual: torch.Tensor, expected: torch.Tensor) -> None:
        torch.testing.assert_close(actual.double(), expected.double(), rtol=self.rtol, atol=self.atol)


@dataclasses.dataclass(frozen=True)
class RelErr:
    """rel_err(actual, expected) < bound."""

    bound: float

    def check(self, actual: torch.Tensor, expected: torch.Tensor) -> None:
        assert actual.shape == expected.shape
        err = rel_err(actual, expected)
        assert err < self.bound, f"relative error {err:.3g} is not below {self.bound:g}"


# ---- samples, calls and bad inputs -----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Sample:
    """One input of an op: tensor shapes (the first is the main input's) and other arguments,
    read as attributes (`s.pad`); `checks` names the check tests it feeds besides the reference
    comparison."""

    shapes: tuple
    params: Mapping[str, Any]
    checks: frozenset = frozenset()

    @property
    def shape(self) -> tuple:
        return self.shapes[0]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["params"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __str__(self) -> str:
        shapes = ["x".join(map(str, s)) for s in self.shapes]
        params = [f"{k}={_short(v)}" for k, v in self.params.items()]
        return "-".join(shapes + params)


def _short(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return ",".join(map(_short, v))
    return str(v)


def sample(*shapes, checks=(), **params) -> Sample:
    return Sample(tuple(tuple(s) for s in shapes), dict(params), frozenset(checks))


@dataclasses.dataclass
class Call:
    """The arguments of one sample: `args` for the op, `ref_args` for its reference (float64
    copies of the same values, unless the subclass makes them otherwise)."""

    args: list
    ref_args: list


def float64(obj: Any) -> Any:
    """A float64 copy of every floating tensor in obj (through lists, tuples and NamedTuples)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().double() if obj.is_floating_point() else obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*map(float64, obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(map(float64, obj))
    return obj


def call_of(*args) -> Call:
    """A Call whose reference runs on float64 copies of the op's own arguments."""
    return Call(list(args), [float64(a) for a in args])


@dataclasses.dataclass(frozen=True)
class Bad:
    """A call (of the device) that must raise `exc` with a message that matches `match` and
    names the argument `arg`."""

    call: Callable[[str], Any]
    exc: type
    match: str
    arg: str


def bad_op(call: Callable[[str], Any], match: str, arg: str) -> Bad:
    """A bad call of torch.ops.pytexsynth.*: the C++ checks raise RuntimeError."""
    return Bad(call, RuntimeError, match, arg)


def seeded_randn(shape, dtype: torch.dtype, device: str, seed: int = 1) -> torch.Tensor:
    """The same random tensor on every call (a gradient output that runs can share)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype=dtype,
                                                                                                   device=device)


# ---- the generated grids -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    values: tuple
    id: str
    devices: tuple | None = None  # None: every device of conftest.DEVICES


def _grid(cases: str, *argnames: str):
    """The test runs once per device and entry of the subclass's method `cases`."""
    def mark(test):
        test.contract_grid = (cases, argnames)
        return test
    return mark


def _devices():
    for d in DEVICES:
        yield (d.values[0], d.marks) if hasattr(d, "values") else (d, ())


def _dtype_id(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---- the contract ----------------------------------------------------------------------------

class OpContract:
    samples: Sequence[Sample] = ()
    value_bounds: Mapping[torch.dtype, Any] = {}
    grad_bounds: Mapping[torch.dtype, Any] = {}
    layouts: Sequence[str] = tuple(LAYOUTS)
    check_layouts: Sequence[str] = ("contiguous", "channels_last")
    grad_argnums: Sequence[int] = (0,)
    check_argnums: Sequence[int] | None = None  # None: grad_argnums
    grad_keeps_layout = False  # the input gradient of a (channels_last) contiguous x has x's strides
    scalar_grad_output = 2.5  # the gradient output of a scalar op, other than 1
    bad_inputs: Sequence[Bad] = ()
    bad_op_inputs: Sequence[Bad] = ()
    bad_input_devices: tuple | None = None  # None: every device
    bad_op_input_devices: tuple | None = None
    non_finite: Sequence[float] = (math.nan, math.inf, -math.inf)
    empty_samples: Sequence[Sample] = ()
    determinism_sample: Sample | None = None
    determinism_threads: Sequence[int | None] = (None, None, None)  # None: the current count
    fallback_sample: Sample | None = None
    fallback_bound: Any = Exact()  # the fallback's result against the kernel's
    compile_exact = False  # compiled equals eager to the bit (else assert_close's defaults)

    # -- what a subclass implements ------------------------------------------------------------

    def call(self, *args):
        raise NotImplementedError

    def reference(self, *ref_args):
        raise NotImplementedError

    def make(self, sample: Sample, device: str, dtype: torch.dtype, layout: str) -> Call:
        raise NotImplementedError

    def opcheck_calls(self, call: Call, requires_grad: bool) -> list:
        raise NotImplementedError

    def compile_case(self, device: str):
        raise NotImplementedError

    # -- parametrisation -----------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc) -> None:
        grid = getattr(metafunc.function, "contract_grid", None)
        if grid is None:
            return
        method, argnames = grid
        cases = getattr(self, method)()
        assert cases, f"{type(self).__name__}.{method} is empty: declare its inputs or set the test to None"
        params = [pytest.param(device, *case.values, marks=marks, id=f"{device}-{case.id}")
                  for device, marks in _devices() for case in cases
                  if case.devices is None or device in case.devices]
        metafunc.parametrize(("device", *argnames), params)

    def applies(self, sample: Sample, dtype: torch.dtype, layout: str) -> bool:
        """Whether sample runs in dtype and layout (channels_last needs a 4-D input)."""
        return layout != "channels_last" or len(sample.shape) == 4

    def _sample_grid(self, bounds, layouts, samples=None) -> list:
        return [Case((s, dtype, layout), f"{_dtype_id(dtype)}-{layout}-{s}")
                for s in (self.samples if samples is None else samples) for dtype in bounds for layout in layouts
                if self.applies(s, dtype, layout)]

    def value_cases(self):
        return self._sample_grid(self.value_bounds, self.layouts)

    def grad_cases(self):
        return self._sample_grid(self.grad_bounds, self.layouts)

    def _check_cases(self, check: str, dtype: torch.dtype) -> list:
        chosen = [s for s in self.samples if check in s.checks]
        return [Case(c.values[::2], f"{c.values[2]}-{c.values[0]}")
                for c in self._sample_grid([dtype], self.check_layouts, chosen)]

    def gradcheck_cases(self):
        return self._check_cases(GRADCHECK, torch.float64)

    def gradgradcheck_cases(self):
        return self._check_cases(GRADGRADCHECK, torch.float64)

    def opcheck_cases(self):
        return [Case((*c.values, rg), f"{c.id}-requires_grad={rg}")
                for c in self._check_cases(OPCHECK, torch.float32) for rg in (False, True)]

    def bad_cases(self):
        return [Case((b,), f"{i}-{b.arg}", self.bad_input_devices) for i, b in enumerate(self.bad_inputs)]

    def bad_op_cases(self):
        return [Case((b,), f"{i}-{b.arg}", self.bad_op_input_devices) for i, b in enumerate(self.bad_op_inputs)]

    def non_finite_cases(self):
        return [Case((v,), str(v)) for v in self.non_finite]

    def empty_cases(self):
        return [Case((s,), str(s)) for s in self.empty_samples]

    # -- helpers the tests share (subclasses override the first four where their op needs) -----

    def leaves(self, args: list, argnums: Sequence[int]) -> list:
        """The differentiable arguments at argnums (those that are not None)."""
        return [args[i] for i in argnums if args[i] is not None]

    def with_leaves(self, args: list, leaves: Sequence, argnums: Sequence[int]) -> list:
        """args with the arguments at argnums (those that are not None) replaced by leaves."""
        args = list(args)
        for i, t in zip([i for i in argnums if args[i] is not None], leaves):
            args[i] = t
        return args

    @property
    def _check_argnums(self) -> Sequence[int]:
        return self.grad_argnums if self.check_argnums is None else self.check_argnums

    def grad_outputs(self, call: Call, out: torch.Tensor, layout: str) -> list:
        """The gradient outputs the input gradients are compared at."""
        if out.dim() == 0:
            return [torch.tensor(self.scalar_grad_output, dtype=out.dtype, device=out.device)]
        return [seeded_randn(out.shape, out.dtype, out.device)]

    def reference_on_args(self, call: Call):
        """The reference run on the op's own arguments: what the op falls back to."""
        return self.reference(*call.args)

    def grads_of(self, fn: Callable, args: list, grad_output: torch.Tensor):
        """fn(*args) and the gradients of its differentiable arguments at grad_output (in the
        output's dtype; the arguments keep their strides)."""
        leaves = [t.detach().requires_grad_() for t in self.leaves(args, self.grad_argnums)]
        out = fn(*self.with_leaves(args, leaves, self.grad_argnums))
        return out, torch.autograd.grad(out, leaves, grad_output.to(out.dtype))

    def outputs_and_grads(self, call: Call) -> list:
        """The output, and the input gradients of a differentiable op."""
        out = self.call(*call.args)
        if not self.grad_bounds:
            return [out]
        (grad_output,) = self.grad_outputs(call, out, "contiguous")[:1]
        _, grads = self.grads_of(self.call, call.args, grad_output)
        return [out, *grads]

    def plant(self, call: Call, value: float) -> None:
        """Puts value in the middle element of the main input (and of the reference's copy)."""
        for t in (call.args[0], call.ref_args[0]):
            t[tuple(n // 2 for n in t.shape)] = value

    # -- reference comparison ------------------------------------------------------------------

    def check_value(self, call: Call, dtype: torch.dtype, layout: str) -> torch.Tensor:
        out = self.call(*call.args)
        expected = self.reference(*call.ref_args)
        assert out.shape == expected.shape and out.dtype == dtype and out.device == expected.device
        self.value_bounds[dtype].check(out, expected)
        return out

    def check_grad(self, call: Call, dtype: torch.dtype, layout: str) -> None:
        for grad_output in self.grad_outputs(call, self.call(*call.args), layout):
            _, grads = self.grads_of(self.call, call.args, grad_output)
            _, ref_grads = self.grads_of(self.reference, call.ref_args, grad_output)
            for x, g, r in zip(self.leaves(call.args, self.grad_argnums), grads, ref_grads):
                assert g.shape == x.shape and g.dtype == x.dtype
                self.grad_bounds[dtype].check(g, r)
                if self.grad_keeps_layout and layout in ("contiguous", "channels_last"):
                    assert g.stride() == torch.empty_like(x).stride()

    @_grid("value_cases", "sample", "dtype", "layout")
    def test_value_matches_reference(self, device, sample, dtype, layout):
        self.check_value(self.make(sample, device, dtype, layout), dtype, layout)

    @_grid("grad_cases", "sample", "dtype", "layout")
    def test_grad_matches_reference(self, device, sample, dtype, layout):
        self.check_grad(self.make(sample, device, dtype, layout), dtype, layout)

    # -- autograd and op-registration checks ---------------------------------------------------

    def _differentiable(self, call: Call):
        argnums = self._check_argnums
        leaves = [t.detach().requires_grad_() for t in self.leaves(call.args, argnums)]
        return (lambda *ts: self.call(*self.with_leaves(call.args, ts, argnums))), tuple(leaves)

    @_grid("gradcheck_cases", "sample", "layout")
    def test_gradcheck(self, device, sample, layout):
        fn, inputs = self._differentiable(self.make(sample, device, torch.float64, layout))
        assert torch.autograd.gradcheck(fn, inputs)

    @_grid("gradgradcheck_cases", "sample", "layout")
    def test_gradgradcheck(self, device, sample, layout):
        fn, inputs = self._differentiable(self.make(sample, device, torch.float64, layout))
        assert torch.autograd.gradgradcheck(fn, inputs)

    @_grid("opcheck_cases", "sample", "layout", "requires_grad")
    def test_opcheck(self, device, sample, layout, requires_grad):
        call = self.make(sample, device, torch.float32, layout)
        argnums = self._check_argnums
        leaves = [t.requires_grad_(requires_grad) for t in self.leaves(call.args, argnums)]
        call.args = self.with_leaves(call.args, leaves, argnums)
        for overload, args in self.opcheck_calls(call, requires_grad):
            torch.library.opcheck(overload, args)

    def test_compiles_like_eager(self, device):
        f, inputs, wrt = self.compile_case(device)
        tol = 0.0 if self.compile_exact else None
        assert_compiles_like_eager(f, *inputs, wrt=wrt, rtol=tol, atol=tol)

    # -- bad and non-finite input --------------------------------------------------------------

    @staticmethod
    def _raises(bad: Bad, device: str) -> None:
        with pytest.raises(bad.exc, match=bad.match) as info:
            bad.call(device)
        message = str(info.value)
        assert re.search(rf"(?<!\w){re.escape(bad.arg)}(?!\w)", message), f"does not name {bad.arg!r}: {message}"

    @_grid("bad_cases", "bad")
    def test_bad_input(self, device, bad):
        self._raises(bad, device)

    @_grid("bad_op_cases", "bad")
    def test_bad_input_op(self, device, bad):
        self._raises(bad, device)

    def check_non_finite(self, call: Call, value: float) -> None:
        """The output, and the input gradients of a differentiable op, against the reference
        (float64 unless the subclass makes ref_args otherwise): finite at the same entries and
        within the float32 bound there; infinite of the same sign where both are; NaN where it
        is NaN when the input holds NaN (an inf input may give inf where the reference's order
        of operations meets inf - inf)."""
        out = self.call(*call.args)
        compared = [(out, self.reference(*call.ref_args), self.value_bounds[torch.float32])]
        if self.grad_bounds:
            grad_output = self.grad_outputs(call, out, "contiguous")[0]
            _, grads = self.grads_of(self.call, call.args, grad_output)
            _, ref_grads = self.grads_of(self.reference, call.ref_args, grad_output)
            compared += [(g, r, self.grad_bounds[torch.float32]) for g, r in zip(grads, ref_grads)]
        for actual, expected, bound in compared:
            finite = torch.isfinite(expected)
            assert torch.equal(torch.isfinite(actual), finite)
            if finite.any():
                bound.check(actual[finite], expected[finite])
            both_inf = torch.isinf(actual) & torch.isinf(expected)
            assert torch.equal(actual[both_inf].sign(), expected[both_inf].sign().to(actual.dtype))
            if math.isnan(value):
                assert torch.equal(torch.isnan(actual), torch.isnan(expected))

    @_grid("non_finite_cases", "value")
    def test_non_finite_input(self, device, value):
        call = self.make(self.samples[0], device, torch.float32, "contiguous")
        self.plant(call, value)
        self.check_non_finite(call, value)

    def check_empty(self, call: Call) -> None:
        out, expected = self.call(*call.args), self.reference_on_args(call)
        assert out.shape == expected.shape and out.dtype == expected.dtype
        torch.testing.assert_close(out, expected, equal_nan=True)

    @_grid("empty_cases", "sample")
    def test_empty_input(self, device, sample):
        self.check_empty(self.make(sample, device, torch.float32, "contiguous"))

    # -- determinism and the fallback ----------------------------------------------------------

    def test_deterministic(self, device):
        call = self.make(self.determinism_sample, device, torch.float32, "contiguous")
        runs = []
        threads = torch.get_num_threads()
        try:
            for n in self.determinism_threads:
                torch.set_num_threads(n or threads)
                runs.append(self.outputs_and_grads(call))
        finally:
            torch.set_num_threads(threads)
        for run in runs[1:]:
            assert all(torch.equal(a, b) for a, b in zip(runs[0], run))

    def fallback_followups(self, call: Call) -> list:
        """Calls after the first fallback, none of which may warn again."""
        return [lambda: self.call(*call.args)]

    def test_fallback_warns_once_and_matches(self, monkeypatch):
        call = self.make(self.fallback_sample, "cpu", torch.float32, "contiguous")
        kernel = self.call(*call.args)
        hide_extension(monkeypatch)
        with pytest.warns(RuntimeWarning, match="pure-PyTorch reference"):
            out = self.call(*call.args)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for followup in self.fallback_followups(call):
                followup()
        assert torch.equal(out, self.reference_on_args(call))  # what the fallback runs
        self.fallback_bound.check(out, kernel)
