"""Shared fixtures: devices (CUDA skipped with a reason), dtypes and input layouts, and the
one place that reaches the package's internal modules (see "internal modules" below)."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest
import torch

import pytexsynth

# ---- internal modules ----------------------------------------------------------------------
# The tests import public names only, except through these helpers: when the package layout
# moves a module, its path changes here alone.

EXTENSION_LOADER = "pytexsynth.ops._ext"
HISTOGRAM_STATS = "pytexsynth.ops.histogram_stats"


def ext_module() -> ModuleType:
    """The module that loads the compiled extension (HAS_EXTENSION, LOAD_ERROR, _warned)."""
    return importlib.import_module(EXTENSION_LOADER)


def histogram_bin_position():
    """bin_position of the histogram statistics module: (bin, frac) of values in bins."""
    return importlib.import_module(HISTOGRAM_STATS).bin_position


def hide_extension(monkeypatch) -> None:
    """From here to the end of the test, the ops see no compiled extension (and have not warned)."""
    ext = ext_module()
    monkeypatch.setattr(ext, "HAS_EXTENSION", False)
    monkeypatch.setattr(ext, "_warned", set())


if not pytexsynth.has_extension():  # the tests are of the kernels: never run them on the fallback
    raise RuntimeError(
        "pytexsynth's compiled extension is not loaded; build it with `pip install .` "
        f"(import error: {ext_module().LOAD_ERROR})"
    )


def cuda_skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device visible"
    if not pytexsynth.has_cuda():
        return "pytexsynth was built without CUDA kernels"
    return None


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(cuda_skip_reason() is not None, reason=str(cuda_skip_reason()))),
]

@pytest.fixture
def one_thread():
    """Tiny tensors: one intra-op thread. On a small loaded machine, OpenMP barriers between two
    threads cost far more than the work (measured 10 ms vs 1.5 s per training step here). Modules
    of training tests use it for every test: `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as x, stored contiguous, channels_last, or non-contiguous."""
    if layout == "contiguous":
        return x.contiguous()
    if layout == "channels_last":
        assert x.dim() == 4
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "noncontiguous":
        # Every other element of a twice-as-wide buffer, whose other entries are poison.
        wide = torch.full((*x.shape[:-1], 2 * x.shape[-1]), float("nan"), dtype=x.dtype, device=x.device)
        wide[..., ::2] = x
        out = wide[..., ::2]
        assert not out.is_contiguous()
        return out
    if layout == "transposed":
        # Stored with H and W swapped in memory.
        out = x.transpose(-1, -2).contiguous().transpose(-1, -2)
        return out
    raise ValueError(layout)


LAYOUTS = ["contiguous", "channels_last", "noncontiguous", "transposed"]


def assert_compiles_like_eager(f, *inputs: torch.Tensor, wrt=(0,), rtol=None, atol=None) -> None:
    """torch.compile(fullgraph=True) of scalar-valued f gives eager's value and the gradients of
    the inputs at positions wrt (default tolerances of assert_close unless given)."""
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")

    def value_and_grads(fn):
        args = [t.detach().clone().requires_grad_(i in wrt) for i, t in enumerate(inputs)]
        out = fn(*args)
        return out, torch.autograd.grad(out, [args[i] for i in wrt]) if wrt else ()

    out, grads = value_and_grads(compiled)
    ref, ref_grads = value_and_grads(f)
    torch.testing.assert_close(out, ref, rtol=rtol, atol=atol)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=rtol, atol=atol)


def pytest_terminal_summary(terminalreporter):
    """The fuzz suite's counts (tests/test_fuzz_ops.py), when it ran."""
    import sys

    fuzz = sys.modules.get("test_fuzz_ops")
    if fuzz is not None and fuzz.COUNTS:
        terminalreporter.write_line(fuzz.summary())
