"""xaifast.image.colorize: the compiled palette lookup vs imgify (zennit's numbers) and its reference."""

import itertools

import numpy as np
import pytest
import torch

import xaifast.reference as reference
from xaifast.image import colorize, imgify
from conftest import kernel_devices, requires_ext
from xaifast import _extension


def _maps(dtype=torch.float32, n=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    maps = torch.randn(n, 17, 23, generator=generator, dtype=torch.float64).to(dtype)
    maps[1] = 2.5                      # constant map
    maps[2] = 0                        # all zero
    maps[3, 4, 5] = float("nan")       # NaN pixel: NaN automatic bounds
    maps[4, 0, :3] = torch.tensor([float("inf"), -float("inf"), 0.0], dtype=dtype)
    return maps


def _imgify_rgb(maps, **kwargs):
    return np.stack([np.asarray(imgify(m.numpy(), **kwargs).convert("RGB")) for m in maps])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kwargs", [
    dict(), dict(symmetric=True), dict(cmap="coldnhot", level=2.0), dict(cmap="gray", level=0.5),
    dict(vmin=-1.0, vmax=1.5), dict(vmin=0), dict(vmax=np.float32(0.75)), dict(vmin=-0.5, symmetric=True),
    dict(cmap="0:f00,80:fff,ff:00f"), dict(vmin=1.0, vmax=1.0),
], ids=str)
def test_equals_imgify_per_map(dtype, kwargs):
    maps = _maps(dtype)
    expected = _imgify_rgb(maps, **kwargs)
    with np.errstate(all="ignore"):
        out = colorize(maps, **kwargs)
    assert out.dtype == torch.uint8 and out.shape == (6, 17, 23, 3)
    np.testing.assert_array_equal(out.numpy(), expected)


def test_layouts_and_inputs():
    maps = _maps()
    expected = colorize(maps)
    assert torch.equal(colorize(maps[:, None]), expected)       # (N, 1, H, W)
    assert torch.equal(colorize(maps.numpy()), expected)        # numpy in, tensor out
    np.testing.assert_array_equal(colorize(maps[:1], vmin=[0.0], vmax=[1.0]).numpy(),
                                  _imgify_rgb(maps[:1], vmin=0.0, vmax=1.0))
    per_map = colorize(maps[:2], vmin=[-1.0, 0.0], vmax=[1.0, 3.0])
    np.testing.assert_array_equal(per_map[1].numpy(), _imgify_rgb(maps[1:2], vmin=0.0, vmax=3.0)[0])


def test_uint8_and_integer_and_half_maps():
    generator = torch.Generator().manual_seed(1)
    indices = torch.randint(0, 256, (3, 9, 8), generator=generator, dtype=torch.uint8)
    np.testing.assert_array_equal(colorize(indices, cmap="wred").numpy(), _imgify_rgb(indices, cmap="wred"))
    integers = torch.randint(-50, 50, (3, 9, 8), generator=generator)
    np.testing.assert_array_equal(colorize(integers).numpy(), _imgify_rgb(integers))
    halves = torch.randn(2, 9, 8, generator=generator).half()
    np.testing.assert_array_equal(colorize(halves).numpy(), colorize(halves.float()).numpy())


@requires_ext
@pytest.mark.parametrize("device", kernel_devices())
@pytest.mark.parametrize("types", list(itertools.product([torch.float32, torch.float64], repeat=3)),
                         ids=lambda t: "-".join(str(d).split(".")[1] for d in t))
def test_kernel_matches_reference(device, types):
    map_type, lo_type, hi_type = types
    maps = _maps(map_type).to(device)
    generator = torch.Generator().manual_seed(2)
    lo = (torch.rand(6, generator=generator, dtype=torch.float64) - 1).to(lo_type).to(device)
    hi = (torch.rand(6, generator=generator, dtype=torch.float64) + 0.1).to(hi_type).to(device)
    lo[5] = hi[5] = 0.3  # vmin == vmax
    palette = torch.randint(0, 256, (256, 3), generator=generator, dtype=torch.uint8).to(device)
    for symmetric in (False, True):
        for bounds in ((lo, hi), (None, hi), (lo, None), (None, None)):
            assert torch.equal(torch.ops.xaifast.colorize(maps, *bounds, palette, symmetric),
                               reference.colorize(maps, *bounds, palette, symmetric))


@requires_ext
def test_opcheck_and_compile():
    maps = _maps()[:, :8, :8].contiguous()
    lo, hi = maps.nan_to_num().amin((1, 2)), maps.nan_to_num().amax((1, 2))
    palette = torch.arange(768, dtype=torch.int64).reshape(256, 3).remainder(256).to(torch.uint8)
    torch.library.opcheck(torch.ops.xaifast.colorize, (maps, lo, hi, palette, False))
    torch.library.opcheck(torch.ops.xaifast.colorize, (maps, None, None, palette, True))
    out = torch.empty(*maps.shape, 3, dtype=torch.uint8)
    torch.library.opcheck(torch.ops.xaifast.colorize_into, (maps, lo, None, palette, False, out))
    torch._dynamo.reset()
    compiled = torch.compile(lambda m: torch.ops.xaifast.colorize(m, None, None, palette, False), fullgraph=True,
                             backend="aot_eager")
    assert torch.equal(compiled(maps), reference.colorize(maps, None, None, palette))


def test_out_buffer_is_reused():
    maps = _maps()
    out = torch.zeros(*maps.shape, 3, dtype=torch.uint8)
    result = colorize(maps, cmap="coldnhot", out=out)
    assert result is out or result.data_ptr() == out.data_ptr()
    assert torch.equal(out, colorize(maps, cmap="coldnhot"))
    with pytest.raises(ValueError, match="out must be a contiguous uint8 tensor"):
        colorize(maps, out=torch.zeros(2, 2, 2, 3, dtype=torch.uint8))


@requires_ext
def test_deterministic_across_thread_counts():
    maps = torch.randn(8, 64, 61)
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(colorize(maps, cmap="coldnhot"))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(r, results[0]) for r in results[1:])


@pytest.mark.parametrize("call,error,match", [
    (lambda: colorize(torch.rand(4, 4)), ValueError, "heatmaps must be"),
    (lambda: colorize(torch.rand(2, 3, 4, 4)), ValueError, "heatmaps must be"),
    (lambda: colorize(torch.rand(0, 4, 4)), ValueError, "heatmaps must not be empty"),
    (lambda: colorize([[1.0]]), TypeError, "heatmaps must be a torch.Tensor or a numpy array"),
    (lambda: colorize(torch.zeros(1, 2, 2, dtype=torch.bool)), TypeError, "heatmaps must hold real numbers"),
    (lambda: colorize(torch.rand(2, 4, 4), vmin=[0.0, 1.0, 2.0]), ValueError, "vmin must be a number or one"),
    (lambda: colorize(torch.rand(2, 4, 4), vmax="1"), TypeError, "vmax must be None, a real number"),
    (lambda: colorize(torch.rand(2, 4, 4), cmap="no-such-map"), ValueError, "cmap"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _cpu_lookup_paths():
    """The CPU palette-lookup loops this CPU can run (each plainer one is forced in turn)."""
    if not _extension.HAS_EXT:
        return []
    order = ["scalar", "gather", "vbmi"]
    return order[:order.index(_extension._C.colorize_lookup()) + 1]


@requires_ext
@pytest.mark.parametrize("path", _cpu_lookup_paths())
@pytest.mark.parametrize("n,width", [(1, 1), (1, 15), (3, 16), (1, 17), (4, 63), (1, 64), (5, 65), (2, 130),
                                     (3, 224)])
def test_every_cpu_lookup_path_matches_the_reference(path, n, width):
    generator = torch.Generator().manual_seed(width)
    maps = torch.randn(n, 5, width, generator=generator)
    maps[0, 0, 0] = -4.0  # spread the indices over the whole palette
    palette = torch.randint(0, 256, (256, 3), generator=generator, dtype=torch.uint8)
    size = n * 5 * width * 3
    guarded = torch.full((size + 64,), 77, dtype=torch.uint8)  # bytes past the output must stay untouched
    out = guarded[:size].view(n, 5, width, 3)
    previous = _extension._C._force_colorize_lookup(path)
    try:
        for threads in (1, 2):
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                out.zero_()
                torch.ops.xaifast.colorize_into(maps, None, None, palette, False, out)
            finally:
                torch.set_num_threads(before)
            assert torch.equal(out, reference.colorize(maps, None, None, palette, False))
            assert bool((guarded[size:] == 77).all())
    finally:
        _extension._C._force_colorize_lookup(previous)


@requires_ext
def test_lookup_path_switch_rejects_unknown_names():
    with pytest.raises(ValueError, match="colorize lookup path must be"):
        _extension._C._force_colorize_lookup("avx9")
    assert _extension._C.colorize_lookup() in ("scalar", "gather", "vbmi")
