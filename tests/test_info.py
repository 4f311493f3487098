"""xaifast.info() and `python -m xaifast info`."""

import json
import os
import subprocess
import sys

import torch

import xaifast


def test_info_keys_and_types():
    facts = xaifast.info()
    for key in ("extension_loaded", "load_error", "ops", "kernel_devices", "cuda_built", "torch", "threads"):
        assert key in facts
    assert isinstance(facts["extension_loaded"], bool)
    assert facts["torch"] == torch.__version__
    assert facts["threads"] == torch.get_num_threads()
    if facts["extension_loaded"]:
        assert facts["load_error"] is None
        assert {"separable_blur", "_separable_blur_backward"} <= set(facts["ops"])
        assert "cpu" in facts["kernel_devices"]
        assert facts["cpu_dispatch"] in ("x86-64-v4", "x86-64-v3", "baseline")
    else:
        assert isinstance(facts["load_error"], str) and facts["ops"] == []


def test_extension_required_in_ci():
    # CI exports XAIFAST_REQUIRE_EXT=1: a build that silently fell back to the references fails here.
    if os.environ.get("XAIFAST_REQUIRE_EXT") == "1":
        assert xaifast.info()["extension_loaded"], xaifast.info()["load_error"]


def test_cli_info_json():
    out = subprocess.run([sys.executable, "-m", "xaifast", "info", "--json"], check=True, capture_output=True,
                         text=True).stdout
    facts = json.loads(out)
    assert facts["extension_loaded"] == xaifast.info()["extension_loaded"]


def test_cli_info_text_and_usage():
    out = subprocess.run([sys.executable, "-m", "xaifast", "info"], check=True, capture_output=True, text=True)
    assert "extension_loaded" in out.stdout
    usage = subprocess.run([sys.executable, "-m", "xaifast"], capture_output=True, text=True)
    assert usage.returncode == 2 and "info" in usage.stdout


def test_import_needs_no_matplotlib_or_torchvision():
    code = ("import sys, xaifast, xaifast.utils, xaifast.ops\n"
            "bad = [m for m in ('matplotlib', 'torchvision') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cpu_dispatch_matches_the_cpu_flags():
    # The multiversioned loops must run the widest clone the CPU supports (a model-based
    # dispatch once ran SSE2 on an AVX-512 Xeon unnoticed).
    facts = xaifast.info()
    if not facts["extension_loaded"] or not os.path.exists("/proc/cpuinfo"):
        return
    with open("/proc/cpuinfo") as handle:
        flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    if {"avx512f", "avx512bw", "avx512vl"} <= set(flags):
        assert facts["colorize_lookup"] == ("vbmi" if "avx512vbmi" in flags else "gather")
    else:
        assert facts["colorize_lookup"] == "scalar"
    if {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= set(flags):
        assert facts["cpu_dispatch"] == "x86-64-v4"
    elif {"avx2", "fma", "bmi2"} <= set(flags):
        assert facts["cpu_dispatch"] == "x86-64-v3"
