"""Builds ``xaifast._C`` with torch.utils.cpp_extension.

* C++ kernels always (``-O3``, ``at::parallel_for`` over OpenMP).
* CUDA kernels too when torch was built with CUDA (``torch.version.cuda``) and a CUDA toolkit
  is found (``CUDA_HOME``). ``TORCH_CUDA_ARCH_LIST`` picks the GPU architectures; on a host
  without a GPU it must be set, e.g. ``TORCH_CUDA_ARCH_LIST="8.0;9.0"``.
* ``XAIFAST_BUILD_EXT=0`` skips the extension: a pure-Python install that runs every op
  through its PyTorch reference.
* ``XAIFAST_FORCE_CUDA=1`` fails the build instead of falling back to CPU-only kernels.
"""

import glob
import os
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name, default):
    return os.environ.get(name, default).strip().lower() not in ("0", "false", "no", "off", "")


def _extensions():
    if not _flag("XAIFAST_BUILD_EXT", "1"):
        print("xaifast: XAIFAST_BUILD_EXT=0, building without the compiled extension", file=sys.stderr)
        return [], {}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    sources = [os.path.relpath(p, ROOT) for p in sorted(glob.glob(os.path.join(ROOT, "csrc", "*.cpp")))]
    sources += [os.path.relpath(p, ROOT) for p in sorted(glob.glob(os.path.join(ROOT, "csrc", "cpu", "*.cpp")))]
    cuda_sources = [os.path.relpath(p, ROOT) for p in sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))]

    # at::parallel_for is a header template: with torch's OpenMP backend our own translation units
    # carry the `omp parallel` regions, so they need -fopenmp (cpp_extension does not add it).
    openmp = sys.platform.startswith("linux") and "OpenMP" in torch.__config__.parallel_info()
    # -ffp-contract=off: no fused multiply-adds the source does not ask for, so the AVX2/AVX-512
    # clones of the hot loops (which have FMA) round exactly like the baseline clone and the
    # references: results are the same bits on every x86-64 CPU.
    cxx_flags = ["-O3", "-ffp-contract=off"] + (["-fopenmp"] if openmp else [])
    extra_link = ["-fopenmp"] if openmp else []
    include_dirs = [os.path.join(ROOT, "csrc")]

    want_cuda = torch.version.cuda is not None and CUDA_HOME is not None
    if torch.version.cuda is not None and CUDA_HOME is None:
        print("xaifast: torch has CUDA but no CUDA toolkit was found (set CUDA_HOME); building CPU kernels only",
              file=sys.stderr)
    if _flag("XAIFAST_FORCE_CUDA", "0") and not want_cuda:
        raise RuntimeError("XAIFAST_FORCE_CUDA=1 but torch.version.cuda is None or no CUDA toolkit was found")
    if want_cuda and not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        raise RuntimeError(
            "xaifast: building the CUDA kernels on a host without a visible GPU needs TORCH_CUDA_ARCH_LIST, "
            "e.g. TORCH_CUDA_ARCH_LIST='8.0;9.0' pip install --no-build-isolation . "
            "(or XAIFAST_BUILD_EXT=0 / a CPU torch for a CPU-only build)")

    if want_cuda:
        ext = CUDAExtension(
            "xaifast._C",
            sources + cuda_sources,
            include_dirs=include_dirs,
            define_macros=[("WITH_CUDA", None)],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--expt-relaxed-constexpr", "-std=c++17"]},
            extra_link_args=extra_link,
        )
    else:
        ext = CppExtension(
            "xaifast._C",
            sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=extra_link,
        )
    return [ext], {"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
