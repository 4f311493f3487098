#!/usr/bin/env bash
# Compile-check every csrc/cuda/*.cu with nvcc against the installed torch's headers.
#
# A CPU build of torch cannot build .cu files through torch.utils.cpp_extension, so this proves
# the CUDA sources compile (not that they are right: the shared host/device math and the CPU
# tests cover that). Exits 0 with a message when nvcc is absent.
# Usage: scripts/check_cuda_compile.sh [python]   (default: python on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python}
NVCC=${NVCC:-$(command -v nvcc || true)}
if [ -z "$NVCC" ]; then
  echo "check_cuda_compile: nvcc not found, skipping the CUDA compile check"
  exit 0
fi
read -r TORCH_DIR PY_INC < <("$PYTHON" -c "import os, sysconfig, torch; print(os.path.dirname(torch.__file__), sysconfig.get_paths()['include'])")
ARCH=${XAIFAST_CHECK_ARCH:-90}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
shopt -s nullglob
files=(csrc/cuda/*.cu)
if [ ${#files[@]} -eq 0 ]; then echo "check_cuda_compile: no .cu files"; exit 0; fi
for cu in "${files[@]}"; do
  start=$(date +%s)
  if "$NVCC" -c "$cu" -o "$out/$(basename "$cu").o" -std=c++17 -O3 --expt-relaxed-constexpr \
      -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__ \
      -D__CUDA_NO_HALF2_OPERATORS__ -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE -DWITH_CUDA \
      -gencode=arch=compute_${ARCH},code=sm_${ARCH} \
      -I csrc -I "$TORCH_DIR/include" -I "$TORCH_DIR/include/torch/csrc/api/include" -I "$PY_INC" \
      -Xcompiler -fPIC 2>"$out/log"; then
    echo "check_cuda_compile: ok   $cu ($(( $(date +%s) - start )) s)"
  else
    echo "check_cuda_compile: FAIL $cu"; cat "$out/log"; status=1
  fi
done
exit $status
