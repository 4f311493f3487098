"""colorize (compiled palette lookup) vs its reference and vs imgify(map).convert('RGB') loops.

`zennit-loop` is the issue's baseline, zennit's own imgify; its palette images fail on Pillow 13,
so it runs only where Pillow < 13 is installed (BENCHMARKS.md says how) and is skipped elsewhere.
`imgify-loop` is the same loop over xaifast.image.imgify, which computes zennit's imgify pixel for
pixel on any Pillow. Every implementation must return identical pixels.
"""

import importlib
import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

import xaifast.reference as reference
from xaifast.image import colorize, imgify, palette


def _maps():
    return torch.randn(256, 224, 224, generator=torch.Generator().manual_seed(0))


def _zennit_imgify():
    """zennit.image.imgify without zennit/__init__.py (which imports torchvision), or a skip."""
    spec = importlib.util.find_spec("zennit")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("zennit is not installed")
    if "_zennit_oracle" not in sys.modules:
        stand_in = types.ModuleType("_zennit_oracle")  # a package of zennit's files under another name
        stand_in.__path__ = list(spec.submodule_search_locations)
        sys.modules["_zennit_oracle"] = stand_in
    imgify_ = importlib.import_module("_zennit_oracle.image").imgify
    try:
        imgify_(np.zeros((2, 2), dtype=np.float32), cmap="coldnhot").convert("RGB")
    except Exception as exc:  # Pillow 13 rejects zennit's palette images
        pytest.skip(f"zennit's imgify fails under this Pillow: {type(exc).__name__}: {exc}")
    return imgify_


@pytest.mark.parametrize("impl", ["kernel", "kernel-out", "reference", "imgify-loop", "zennit-loop"])
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
        imgify_ = _zennit_imgify() if impl == "zennit-loop" else imgify
        arrays = maps.numpy()
        out = record(lambda: np.stack([np.asarray(imgify_(m, cmap="coldnhot").convert("RGB")) for m in arrays]))
        out = torch.from_numpy(out)
    assert torch.equal(out, colorize(maps[:], cmap="coldnhot"))
