#!/usr/bin/env bash
# Run every benchmark file (pinned threads, one process per file) and print the Markdown tables
# of BENCHMARKS.md. Usage: bash benchmarks/run_all.sh [python] > tables.md
# ZENNIT_PYTHON: an interpreter with Pillow < 13, pytest-benchmark and zennit (--no-deps) for
# bench_colorize, whose baseline is zennit's own imgify loop (its palette images fail on Pillow 13);
# it imports xaifast from this tree. Without it, bench_colorize's baseline is the xaifast imgify loop.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-.venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for bench in benchmarks/bench_*.py; do
  name=$(basename "$bench" .py)
  runner=("$PYTHON")
  if [ "$name" = bench_colorize ] && [ -n "${ZENNIT_PYTHON:-}" ]; then
    runner=(env "PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}" "$ZENNIT_PYTHON")
  fi
  "${runner[@]}" -m pytest "$bench" -q -W ignore -p no:cacheprovider --benchmark-min-rounds=7 \
    --benchmark-json="$out/$name.json" >&2
  # Whole methods against TorchRay, op-level groups (no TorchRay row) against the reference.
  baseline=reference
  case "$name" in
    bench_blur|bench_ebp|bench_extremal) baseline=torchray,reference ;;
    bench_colorize) baseline=zennit-loop,imgify-loop ;;
  esac
  echo "### $name (speed-up vs ${baseline//,/, else })"
  echo
  "$PYTHON" benchmarks/report.py "$out/$name.json" --baseline "$baseline" --extra
  echo
done
