"""Shared fixtures: devices, dtypes, tolerances, and the "extension loaded" marker."""

import pytest
import torch

from xaifast import _extension

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# Per-dtype tolerances for kernel-vs-reference comparisons (kornia-style).
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.bfloat16: dict(rtol=2e-2, atol=2e-2),
    torch.float16: dict(rtol=5e-3, atol=5e-3),
}

requires_ext = pytest.mark.skipif(not _extension.HAS_EXT, reason=f"compiled extension not loaded: "
                                  f"{_extension.LOAD_ERROR}")


def kernel_devices():
    """Devices on which both a GPU/CPU and a compiled kernel are present."""
    return [d for d in DEVICES if _extension.has_kernel(torch.device(d))]


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def tolerance(dtype):
    return TOLERANCES[dtype]
