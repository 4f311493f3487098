#!/usr/bin/env bash
# Set up xaifast in ./.venv on a fresh machine: torch (the CPU wheel 2.13.0), the runtime
# dependencies, and an editable build of the package with its compiled extension.
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh --test   plus pytest, pytest-benchmark and the test oracles
#                                  (TorchRay 1.0.0.2 and zennit, installed --no-deps, with
#                                  matplotlib and packaging, which TorchRay's modules import)
# Environment: PYTHON (default python3), VENV (default .venv), XAIFAST_BUILD_EXT=0 for a
# pure-Python install. Fails if the extension was built but does not load.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
with_tests=0
for arg in "$@"; do
  case "$arg" in
    --test) with_tests=1 ;;
    *) echo "setup.sh: unknown argument $arg (expected --test)" >&2; exit 2 ;;
  esac
done

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
# torch first and pinned: a bare `pip install torch` would pull a multi-GB CUDA build.
pip install torch==2.13.0
pip install numpy pillow ninja "setuptools>=64" wheel tqdm
if [ "$with_tests" = 1 ]; then
  pip install pytest pytest-benchmark matplotlib packaging
  pip install --no-deps torchray==1.0.0.2 zennit
fi
pip install --no-build-isolation -e .
"$VENV/bin/python" - <<'PY'
import os, sys
import xaifast
facts = xaifast.info()
want_ext = os.environ.get("XAIFAST_BUILD_EXT", "1") not in ("0", "false", "no", "off", "")
if want_ext and not facts["extension_loaded"]:
    sys.exit(f"setup.sh: the compiled extension did not load: {facts['load_error']}")
print(f"setup.sh: xaifast {facts['version']} ready in {sys.prefix} "
      f"(extension loaded: {facts['extension_loaded']}, kernels: {', '.join(facts['kernel_devices']) or 'none'})")
PY
