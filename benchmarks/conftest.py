"""Benchmark setup: pinned threads and the metadata recorded with every result.

Run: ``.venv/bin/python -m pytest benchmarks -q --benchmark-json=bench.json`` then
``.venv/bin/python benchmarks/report.py bench.json`` for the Markdown table of BENCHMARKS.md.
``XAIFAST_BENCH_THREADS`` sets the thread count (default 2).
"""

import os
import platform

import pytest
import torch

THREADS = int(os.environ.get("XAIFAST_BENCH_THREADS", "2"))


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@pytest.fixture(autouse=True)
def pinned_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield THREADS
    torch.set_num_threads(before)


@pytest.fixture
def record(benchmark):
    """Attach threads, torch version and CPU model to the benchmark; returns the benchmark."""
    from xaifast._extension import HAS_EXT

    benchmark.extra_info.update(threads=torch.get_num_threads(), torch=torch.__version__, cpu=_cpu_model(),
                                extension_loaded=HAS_EXT)
    return benchmark
