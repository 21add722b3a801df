"""Builds the extension module pytexsynth._C.

CPU kernels are always built. CUDA kernels are built when torch is a CUDA build, nvcc is
found (CUDA_HOME), and either a GPU is visible or PYTEXSYNTH_FORCE_CUDA=1 (how CI compiles
them without a GPU). PYTEXSYNTH_CPU_ONLY=1 skips CUDA. The arch list defaults to
8.0;8.6;8.9;9.0+PTX and is overridden by TORCH_CUDA_ARCH_LIST.
"""

import glob
import os
import sys
from pathlib import Path

from setuptools import setup

import shutil


def _is_toolkit(root) -> bool:
    return bool(root) and os.path.isfile(os.path.join(root, "include", "cuda_runtime_api.h"))


def _locate_cuda_home() -> None:
    """Points CUDA_HOME at a CUDA toolkit that has its headers, before torch looks for one.

    torch takes the parent of the `nvcc` on PATH, which is wrong where that nvcc is a wrapper
    script (here /usr/local/bin/nvcc runs /usr/local/cuda-13.0/bin/nvcc).
    """
    if _is_toolkit(os.environ.get("CUDA_HOME")):
        return
    nvcc = shutil.which("nvcc")
    candidates = [os.environ.get("CUDA_PATH"), nvcc and os.path.dirname(os.path.dirname(os.path.realpath(nvcc))),
                  "/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]
    for root in candidates:
        if _is_toolkit(root) and os.path.isfile(os.path.join(root, "bin", "nvcc")):
            os.environ["CUDA_HOME"] = root
            return


_locate_cuda_home()

import torch  # noqa: E402  (after CUDA_HOME is settled)
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402

ROOT = Path(__file__).resolve().parent
DEFAULT_ARCHS = "8.0;8.6;8.9;9.0+PTX"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _decide_cuda() -> bool:
    cpu_only = _flag("PYTEXSYNTH_CPU_ONLY")
    force = _flag("PYTEXSYNTH_FORCE_CUDA")
    if cpu_only:
        return False
    if force and (torch.version.cuda is None or CUDA_HOME is None):
        sys.exit(
            "pytexsynth: PYTEXSYNTH_FORCE_CUDA=1 but "
            + ("torch is a CPU-only build" if torch.version.cuda is None else "nvcc was not found (set CUDA_HOME)")
        )
    return bool(torch.version.cuda and CUDA_HOME and (torch.cuda.is_available() or force))


def _cuda_library_includes() -> list:
    """Header folders of torch's pip CUDA packages (cusparse.h, cublas_v2.h, ...).

    CUDA 13 wheels put them all in site-packages/nvidia/cu13/include; CUDA 12 wheels use one
    folder per library (nvidia/cusparse/include, ...).
    """
    nvidia = Path(torch.__file__).resolve().parent.parent / "nvidia"
    return sorted(str(p) for p in nvidia.glob("*/include") if p.is_dir())


def _sources(with_cuda: bool) -> list:
    found = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    if with_cuda:
        found += sorted(glob.glob("csrc/cuda/*.cu"))
    return found


def _extension():
    with_cuda = _decide_cuda()
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or DEFAULT_ARCHS
    define_macros = [("TORCH_API_INCLUDE_EXTENSION_H", None)]
    # at::parallel_for is inline OpenMP in torch's headers: without -fopenmp it runs serially.
    openmp = ["-fopenmp"] if "OpenMP" in torch.__config__.parallel_info() and sys.platform != "darwin" else []
    cxx_flags = ["-O3", *openmp]
    include_dirs = [str(ROOT / "csrc")]
    if with_cuda:
        # torch's cpp_extension reads the arch list from this variable.
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs
        # Recorded in the module so pytexsynth.info() can say what was compiled; ',' instead of
        # ';' keeps the value safe on ninja's shell command lines.
        define_macros += [("PYTEXSYNTH_WITH_CUDA", None), ("PYTEXSYNTH_CUDA_ARCHS", archs.replace(";", ",").replace(" ", ","))]
        print(f"pytexsynth: building CUDA kernels for TORCH_CUDA_ARCH_LIST={archs} (CUDA {torch.version.cuda}, nvcc in {CUDA_HOME})")
    else:
        why = (
            "PYTEXSYNTH_CPU_ONLY=1" if _flag("PYTEXSYNTH_CPU_ONLY")
            else "torch is a CPU-only build" if torch.version.cuda is None
            else "nvcc not found" if CUDA_HOME is None
            else "no GPU visible and PYTEXSYNTH_FORCE_CUDA is not set"
        )
        print(f"pytexsynth: building CPU kernels only ({why})")
    kwargs = dict(
        name="pytexsynth._C",
        sources=_sources(with_cuda),
        include_dirs=include_dirs,
        define_macros=define_macros,
        extra_link_args=openmp,
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]},
    )
    if not with_cuda:
        return CppExtension(**{**kwargs, "extra_compile_args": cxx_flags})
    ext = CUDAExtension(**kwargs)
    # After the toolkit's own include folder, which must win for the runtime headers.
    ext.include_dirs += _cuda_library_includes()
    return ext


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
