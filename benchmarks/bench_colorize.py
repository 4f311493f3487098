"""colorize (compiled palette lookup) vs its reference and vs an imgify(map).convert('RGB') loop.

The loop uses xaifast.image.imgify, which computes zennit's imgify pixel for pixel (zennit's own
palette images do not load on Pillow 13); all three return identical pixels.
"""

import numpy as np
import pytest
import torch

import xaifast.reference as reference
from xaifast.image import colorize, imgify, palette


def _maps():
    return torch.randn(256, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("impl", ["kernel", "kernel-out", "reference", "imgify-loop"])
def test_colorize(record, impl):
    record.group = "colorize-forward-cpu-256x224x224-coldnhot"
    maps = _maps()
    if impl == "kernel":
        out = record(colorize, maps, cmap="coldnhot")
    elif impl == "kernel-out":  # one output buffer reused across calls, as a batched pipeline would
        buffer = torch.empty(*maps.shape, 3, dtype=torch.uint8)
        out = record(colorize, maps, cmap="coldnhot", out=buffer)
    elif impl == "reference":
        table = torch.from_numpy(palette("coldnhot"))
        out = record(reference.colorize, maps, None, None, table)
    else:
        arrays = maps.numpy()
        out = record(lambda: np.stack([np.asarray(imgify(m, cmap="coldnhot").convert("RGB")) for m in arrays]))
        out = torch.from_numpy(out)
    assert torch.equal(out, colorize(maps[:], cmap="coldnhot"))
