"""xaifast.image against zennit.image, pixel for pixel.

The oracle is zennit's own ``image.py`` and ``cmap.py`` (loaded by path: zennit's package
``__init__`` needs torchvision). zennit's palette images only work on Pillow <= 12.3 (it hands
``putpalette`` an ndarray), so its side runs, unmodified, in a subprocess with a Pillow <= 12.3
directory first on ``PYTHONPATH`` ($XAIFAST_PIL12_DIR, default /tmp/pil12; make one with
``pip install --no-deps --target /tmp/pil12 "pillow==12.3.0"``). Without such a directory it runs
in this process with ``putpalette`` converting the ndarray to bytes, which is exactly what Pillow
<= 12.3 did inside ``putpalette``. Without zennit the comparisons are skipped.
"""

import importlib.util
import io
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import xaifast.image as xi
from xaifast.cmap import CMSLError, ColorMap

# Runs zennit's calls; shared by the subprocess and the in-process fallback.
RUNNER = r'''
import importlib, pickle, sys, types
import numpy as np
from PIL import Image

def load_zennit_image(directory):
    if "_zennit_oracle" not in sys.modules:
        stand_in = types.ModuleType("_zennit_oracle")  # zennit's files, without its __init__
        stand_in.__path__ = [directory]
        sys.modules["_zennit_oracle"] = stand_in
    return importlib.import_module("_zennit_oracle.image")

def pack(value):
    if isinstance(value, Image.Image):
        return ("image", value.mode, value.size, np.array(value), value.getpalette())
    return ("value", value)

def run_calls(image, calls):
    import warnings
    results = []
    for func, args, kwargs in calls:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # zennit's NaN casts warn; we only want its pixels
                results.append(pack(getattr(image, func)(*args, **kwargs)))
        except Exception as err:
            results.append(("error", type(err).__name__, str(err)))
    return results

if __name__ == "__main__":
    import PIL
    image = load_zennit_image(sys.argv[1])
    results = run_calls(image, pickle.load(sys.stdin.buffer))
    pickle.dump((PIL.__version__, results), sys.stdout.buffer)
'''


def _zennit_dir():
    spec = importlib.util.find_spec("zennit")
    return None if spec is None or not spec.submodule_search_locations else list(spec.submodule_search_locations)[0]


def _old_pillow_dir():
    directory = os.environ.get("XAIFAST_PIL12_DIR", "/tmp/pil12")
    return directory if directory and os.path.isdir(os.path.join(directory, "PIL")) else None


def run_zennit(calls):
    """``[(func name, args, kwargs)]`` -> (Pillow version used, [packed result or error])."""
    directory = _zennit_dir()
    old_pillow = _old_pillow_dir()
    if old_pillow and int(Image.__version__.split(".")[0]) >= 13:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([old_pillow] + [p for p in sys.path if p]))
        done = subprocess.run([sys.executable, "-c", RUNNER, directory], input=pickle.dumps(calls),
                              capture_output=True, env=env, check=True, timeout=300)
        return pickle.loads(done.stdout)
    namespace = {"__name__": "zennit_runner"}
    exec(RUNNER, namespace)
    original = Image.Image.putpalette

    def putpalette(self, data, rawmode="RGB"):  # what Pillow <= 12.3 did with an array
        return original(self, bytes(data) if isinstance(data, np.ndarray) else data, rawmode)

    Image.Image.putpalette = putpalette
    try:
        return Image.__version__ + " (putpalette shim)", namespace["run_calls"](
            namespace["load_zennit_image"](directory), calls)
    finally:
        Image.Image.putpalette = original


RNG = np.random.default_rng(2024)


def normal(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


CASES = {}


def case(name, func, *args, **kwargs):
    CASES[name] = (func, args, kwargs)


# layouts
case("hw", "imgify", normal(5, 7))
case("hw-f32", "imgify", normal(16, 16, dtype=np.float32))
case("hw-f16", "imgify", normal(6, 6, dtype=np.float16))
case("hw1", "imgify", normal(6, 5, 1))
case("hwc", "imgify", normal(6, 5, 3))
case("1hw", "imgify", normal(1, 6, 5))
case("chw", "imgify", normal(3, 6, 5))
case("ambiguous-333", "imgify", normal(3, 3, 3))
case("ambiguous-153", "imgify", normal(1, 5, 3))
case("ambiguous-351", "imgify", normal(3, 5, 1))
case("int", "imgify", RNG.integers(-5, 6, size=(4, 4)))
case("uint8-gray", "imgify", RNG.integers(0, 256, size=(4, 5), dtype=np.uint8), vmin=3.0, symmetric=True)
case("uint8-rgb", "imgify", RNG.integers(0, 256, size=(3, 4, 5), dtype=np.uint8))
case("list", "imgify", [[0.0, 1.0], [2.0, 3.0]])
# bounds and colour maps
case("symmetric", "imgify", normal(8, 9), symmetric=True)
case("vmin-vmax", "imgify", normal(8, 9), vmin=-0.5, vmax=1.5)
case("vmin-only", "imgify", normal(8, 9), vmin=0.0)
case("vmax-only-f32", "imgify", normal(8, 9, dtype=np.float32), vmax=0.7)
case("symmetric-vmin0", "imgify", np.array([[-1.0, 0.0], [1.0, 2.0]]), symmetric=True, vmin=0)
case("inverted", "imgify", normal(5, 5), vmin=1.0, vmax=-1.0)
case("rgb-bounds", "imgify", normal(4, 4, 3), vmin=[-1.0, -0.5, 0.0], vmax=[1.0, 2.0, 0.5])
case("rgb-symmetric", "imgify", normal(3, 4, 4), symmetric=True)
for _name in ("gray", "wred", "wblue", "hot", "cold", "coldnhot", "bwr", "france", "seismic", "coolio", "coleus"):
    case(f"cmap-{_name}", "imgify", normal(6, 6), cmap=_name, level=1.5)
case("cmap-cmsl", "imgify", normal(6, 6), cmap="0ff,00f,40:000,c0:f00,fff")
for _level in (0.5, 2.0, 0.0, -1.0, 7.3):
    case(f"level-{_level}", "imgify", normal(6, 6), cmap="coldnhot", level=_level)
case("rgb-ignores-bad-cmap", "imgify", normal(4, 4, 3), cmap="not a colour map")
# grids
case("grid-nchw1", "imgify", normal(5, 1, 4, 6), grid=True)
case("grid-nchw3", "imgify", normal(5, 3, 4, 6), grid=True, symmetric=True)
case("grid-nhwc3", "imgify", normal(4, 4, 6, 3), grid=True)
case("grid-nhwc1", "imgify", normal(3, 4, 5, 1), grid=True, cmap="hot")
case("grid-nhw", "imgify", normal(7, 4, 5), grid=True)
case("grid-10", "imgify", normal(10, 3, 3), grid=True, symmetric=True, cmap="coldnhot")
case("grid-1", "imgify", normal(1, 3, 4), grid=True)
case("grid-shape", "imgify", normal(5, 4, 6), grid=(2, 3))
case("grid-list-shape", "imgify", normal(5, 4, 6), grid=[3, 3], gridfill=7)
case("grid-drops", "imgify", normal(5, 4, 6), grid=(1, 2))
case("grid-rgb-fill", "imgify", normal(5, 3, 4, 4), grid=(2, 3), gridfill=[10, 20, 30])
case("grid-vmin", "imgify", normal(4, 5, 5), grid=True, vmin=-1.0)
case("grid-per-sample-bounds", "imgify", normal(3, 4, 4), grid=True,
     vmin=[[[-1.0]], [[0.0]], [[-2.0]]], vmax=[[[1.0]], [[0.5]], [[2.0]]])
case("grid-uint8", "imgify", RNG.integers(0, 256, size=(3, 4, 4), dtype=np.uint8), grid=True)
# float32 rounding: bounds computed in float32 vs promoted to float64 by Python-float bounds
case("precision-f32-auto", "imgify", normal(16, 64, 64, dtype=np.float32), grid=True)
case("precision-f32-symmetric", "imgify", normal(16, 64, 64, dtype=np.float32), grid=True, symmetric=True)
case("precision-f32-given", "imgify", normal(64, 64, dtype=np.float32), vmin=-2.5, vmax=2.5)
# degenerate data: zennit's pixels on this machine (NaN cast to 0), which we reproduce without warnings
case("constant", "imgify", np.full((4, 4), 2.5))
case("constant-vmin0", "imgify", np.full((4, 4), 2.5), vmin=0)
case("zeros", "imgify", np.zeros((4, 4)))
case("zeros-symmetric", "imgify", np.zeros((4, 4)), symmetric=True)
case("zeros-rgb", "imgify", np.zeros((4, 4, 3)))
case("nan-auto", "imgify", np.array([[0.0, np.nan], [1.0, 2.0]]))
case("nan-given", "imgify", np.array([[0.0, np.nan], [1.0, 2.0]]), vmin=0.0, vmax=2.0)
case("inf", "imgify", np.array([[0.0, np.inf], [1.0, 2.0]]))
case("vmin-eq-vmax", "imgify", np.array([[0.0, 1.0], [2.0, 3.0]]), vmin=1, vmax=1)
case("grid-constant-sample", "imgify", np.stack([np.zeros((3, 3)), normal(3, 3), np.full((3, 3), np.nan)]),
     grid=True)
# gridify, interval_norm_bounds, palette
case("gridify-nhw", "gridify", normal(5, 3, 4))
case("gridify-nchw", "gridify", normal(3, 3, 4, 5), shape=(2, 2), fill_value=0.5)
case("gridify-nhwc", "gridify", RNG.integers(0, 256, size=(7, 3, 4, 3), dtype=np.uint8), fill_value=[1, 2, 300])
case("gridify-drop", "gridify", normal(6, 2, 2, 1), shape=(1, 4))
case("bounds", "interval_norm_bounds", normal(4, 3, 5))
case("bounds-symmetric", "interval_norm_bounds", normal(4, 3, 5, dtype=np.float32), symmetric=True)
case("bounds-dim", "interval_norm_bounds", normal(4, 3, 5), dim=(0, 2))
for _level in (1.0, 2.0, 0.3, -1.0):
    case(f"palette-{_level}", "palette", "coldnhot", level=_level)
case("palette-cmsl", "palette", "f1f,111,ff1")
# bad input: zennit's exception types
case("bad-2-channels", "imgify", normal(2, 5, 5))
case("bad-4-channels", "imgify", normal(5, 5, 4))
case("bad-1d", "imgify", normal(5))
case("bad-4d", "imgify", normal(2, 3, 4, 4))
case("bad-2d-grid", "imgify", normal(4, 4), grid=True)
case("bad-grid-len", "imgify", normal(3, 4, 4), grid=(1, 2, 3))
case("bad-grid-channels", "imgify", normal(3, 4, 4, 4), grid=True)
case("bad-gridify-2d", "gridify", normal(4, 4))
case("bad-cmap", "imgify", normal(4, 4), cmap="viridis")
case("bad-bool", "imgify", np.zeros((3, 3), dtype=bool))


@pytest.fixture(scope="module")
def zennit():
    """{case name: zennit's result}, all computed in one go."""
    if _zennit_dir() is None:
        pytest.skip("zennit is not installed")
    names = list(CASES)
    version, results = run_zennit([CASES[name] for name in names])
    return dict(zip(names, results), _pillow=version)


def ours(func, args, kwargs, convert=None):
    args = tuple(convert(a) if isinstance(a, np.ndarray) and convert else a for a in args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warnings whatsoever, degenerate data included
        return getattr(xi, func)(*args, **kwargs)


def assert_same(got, want, name):
    if want[0] == "image":
        _, mode, size, pixels, pal = want
        assert isinstance(got, Image.Image), name
        assert (got.mode, got.size) == (mode, size), name
        np.testing.assert_array_equal(np.asarray(got), pixels, err_msg=name)
        assert got.getpalette() == pal, name
    elif isinstance(want[1], tuple):
        for g, w in zip(got, want[1], strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape, name
            np.testing.assert_array_equal(g, w, err_msg=name)
    else:
        assert got.dtype == want[1].dtype, name
        np.testing.assert_array_equal(got, want[1], err_msg=name)


GOOD = [name for name in CASES if not name.startswith("bad-")]
BAD = [name for name in CASES if name.startswith("bad-")]


@pytest.mark.parametrize("name", GOOD)
def test_matches_zennit(zennit, name):
    func, args, kwargs = CASES[name]
    assert zennit[name][0] != "error", zennit[name]
    assert_same(ours(func, args, kwargs), zennit[name], name)


@pytest.mark.parametrize("name", [n for n in GOOD if CASES[n][0] != "palette" and "f16" not in n])
def test_torch_input_matches_zennit(zennit, name):
    func, args, kwargs = CASES[name]
    assert_same(ours(func, args, kwargs, convert=lambda a: torch.from_numpy(a).requires_grad_(a.dtype.kind == "f")),
                zennit[name], name)


@pytest.mark.parametrize("name", BAD)
def test_bad_input_raises_zennits_type(zennit, name):
    func, args, kwargs = CASES[name]
    status, error_type = zennit[name][:2]
    assert status == "error"
    expected = {"TypeError": TypeError, "RuntimeError": RuntimeError, "ValueError": ValueError}[error_type]
    with pytest.raises(expected):
        ours(func, args, kwargs)


@pytest.mark.parametrize("mode_case", ["hw", "chw", "grid-nchw1", "grid-rgb-fill"])
def test_imsave_png_round_trip(zennit, tmp_path, mode_case):
    func, args, kwargs = CASES[mode_case]
    ours_path, theirs_path = tmp_path / "ours.png", tmp_path / "theirs.png"
    save_kwargs = dict(kwargs, writer_params={"optimize": True})
    xi.imsave(ours_path, *args, **save_kwargs)
    _, [result] = run_zennit([("imsave", (str(theirs_path),) + args, save_kwargs)])
    assert result[0] == "value", result
    with Image.open(ours_path) as mine, Image.open(theirs_path) as theirs:
        assert mine.mode == theirs.mode == zennit[mode_case][1]
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
        assert mine.getpalette() == theirs.getpalette()
        if mine.mode == "P":
            assert mine.getpalette()[:768] == xi.palette(kwargs.get("cmap", "bwr")).ravel().tolist()


def test_imsave_argument_order_and_file_object():
    data = normal(4, 4)
    buffer = io.BytesIO()
    xi.imsave(buffer, data, None, None, "hot", 2.0, False, "png", None, True, None)
    buffer.seek(0)
    with Image.open(buffer) as image:
        expected = xi.imgify(data, cmap="hot", level=2.0, symmetric=True)
        np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))
        assert image.getpalette() == expected.getpalette()


def test_signatures_match_zennit():
    """Same parameter names in the same order (read from zennit's source text, not imported)."""
    import inspect
    if _zennit_dir() is None:
        pytest.skip("zennit is not installed")
    with open(os.path.join(_zennit_dir(), "image.py")) as handle:
        source = handle.read()
    for func in ("imgify", "imsave", "gridify", "interval_norm_bounds", "get_cmap", "palette"):
        header = source[source.index(f"def {func}("):].split(":\n", 1)[0]
        theirs = [p.strip().split("=")[0] for p in header[header.index("(") + 1:header.rindex(")")].split(",")]
        assert list(inspect.signature(getattr(xi, func)).parameters) == [p for p in theirs if p], func


@pytest.mark.parametrize("data,kwargs", [
    (np.full((4, 4), 3.0), {}), (np.zeros((4, 4)), {"symmetric": True}), (np.zeros((3, 4, 4)), {"grid": True}),
    (np.array([[np.nan, 1.0], [2.0, 3.0]]), {}), (np.array([[np.nan, 1.0], [2.0, 3.0]]), {"vmin": 0, "vmax": 3}),
    (np.array([[0.0, 1.0], [2.0, 3.0]]), {"vmin": 1, "vmax": 1}), (np.array([[-np.inf, 1.0], [np.inf, 3.0]]), {}),
    (np.full((4, 4), 7, dtype=np.int32), {}), (np.full((2, 2), 60000.0, dtype=np.float16), {"vmin": 0, "vmax": 1}),
])
def test_degenerate_data_defined_without_warnings(data, kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = xi.imgify(data, **kwargs)
        rgb = np.asarray(image.convert("RGB"))
    indices = np.asarray(image)
    assert indices.dtype == np.uint8 and rgb.shape[:2] == indices.shape[:2]
    finite = np.isfinite(np.asarray(data, dtype=float))
    if not finite.all() and "vmin" not in kwargs:
        assert (indices == 0).all()  # NaN bounds -> NaN quotient -> index 0, like zennit on x86-64
    if np.ptp(data) == 0 and "vmin" not in kwargs:
        assert (indices == 0).all()  # 0 / 0 -> index 0


def test_pillow_13_palette_image_is_usable(tmp_path):
    data = normal(6, 7)
    image = xi.imgify(data, cmap="coldnhot")
    assert image.mode == "P"
    rgb = np.asarray(image.convert("RGB"))
    np.testing.assert_array_equal(rgb, xi.palette("coldnhot")[np.asarray(image)])
    image.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as again:
        assert again.mode == "P"
        np.testing.assert_array_equal(np.asarray(again.convert("RGB")), rgb)


def test_helpers_for_batched_colorize():
    maps = normal(4, 5, 6, dtype=np.float32)
    maps[1] = 0.0
    lo, hi = xi._bounds(maps, None, None, True, batched=True)
    assert lo.shape == hi.shape == (4, 1, 1) and lo.dtype == np.float32
    colours = xi.palette("bwr", 1.5)[xi._palette_index(maps, lo, hi)]
    for n in range(4):
        single = xi.imgify(maps[n], symmetric=True, level=1.5)
        np.testing.assert_array_equal(colours[n], np.asarray(single.convert("RGB")))
    np.testing.assert_array_equal(np.asarray(xi.imgify(maps, grid=(1, 4), symmetric=True, level=1.5).convert("RGB")),
                                  np.concatenate(list(colours), axis=1))


def test_tensor_inputs_are_detached_and_bounds_may_be_tensors():
    data = torch.randn(2, 5, 5, requires_grad=True)
    image = xi.imgify(data, grid=True, vmin=torch.tensor(-1.0), vmax=torch.tensor([[[1.0]], [[2.0]]]))
    expected = xi.imgify(data.detach().numpy(), grid=True, vmin=np.float32(-1.0), vmax=np.array([[[1.0]], [[2.0]]],
                                                                                                 np.float32))
    np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))
    bf16 = xi.imgify(torch.linspace(0, 1, 16, dtype=torch.bfloat16).reshape(4, 4))
    assert np.asarray(bf16)[0, 0] == 0 and np.asarray(bf16)[-1, -1] == 255


def test_builtins_and_get_cmap():
    assert xi.get_cmap("bwr") is xi.CMAPS["bwr"]
    assert "BWR" not in xi.CMAPS
    custom = ColorMap("000,fff")
    assert xi.get_cmap(custom) is custom
    assert xi.get_cmap("000,fff") is not xi.get_cmap("000,fff")


@pytest.mark.parametrize("call,error,pattern", [
    (lambda: xi.imgify(normal(2, 5, 5)), TypeError, "obj.*channels"),
    (lambda: xi.imgify(normal(5, 5, 4)), TypeError, "obj.*RGBA"),
    (lambda: xi.imgify(normal(5)), TypeError, "obj.*2 axes"),
    (lambda: xi.imgify(normal(2, 3, 4, 4)), TypeError, "obj.*grid=True"),
    (lambda: xi.imgify(normal(4, 4), grid=True), TypeError, "obj.*3 axes"),
    (lambda: xi.imgify(np.zeros((0, 4))), ValueError, "obj.*empty"),
    (lambda: xi.imgify(np.zeros((3, 3), dtype=bool)), TypeError, "obj.*dtype bool"),
    (lambda: xi.imgify(np.array([["a", "b"]])), TypeError, "obj"),
    (lambda: xi.imgify(normal(3, 4, 4), grid=(1, 2, 3)), TypeError, "grid"),
    (lambda: xi.imgify(normal(3, 4, 4), grid=1), TypeError, "grid"),
    (lambda: xi.imgify(normal(3, 4, 4), grid=(0, 2)), ValueError, "grid"),
    (lambda: xi.imgify(normal(3, 4, 4), grid=(1.5, 2)), TypeError, "grid"),
    (lambda: xi.imgify(normal(3, 4, 4), grid=True, gridfill=[1, 2]), ValueError, "gridfill"),
    (lambda: xi.imgify(normal(4, 4), vmin=[1.0, 2.0, 3.0]), ValueError, "vmin"),
    (lambda: xi.imgify(normal(4, 4), vmax="high"), TypeError, "vmax"),
    (lambda: xi.imgify(normal(4, 4), cmap="viridis"), CMSLError, r"cmap 'viridis'.*gray, wred.*coleus.*position 0"),
    (lambda: xi.imgify(normal(4, 4), cmap=42), TypeError, "cmap.*bwr"),
    (lambda: xi.imgify(normal(4, 4), level=float("nan")), ValueError, "level"),
    (lambda: xi.get_cmap("00f,80:fff,,f00"), ValueError, r"cmap.*position 11"),
    (lambda: xi.palette("bwr", level="x"), TypeError, "level"),
    (lambda: xi.gridify(normal(4, 4)), TypeError, "obj.*3 axes"),
    (lambda: xi.gridify(normal(3, 4, 4), shape=(2,)), TypeError, "shape"),
    (lambda: xi.gridify(normal(3, 4, 4, 5)), TypeError, "obj.*channels"),
    (lambda: xi.gridify(normal(3, 4, 4), fill_value=[1, 2]), ValueError, "fill_value"),
    (lambda: xi.interval_norm_bounds(np.zeros((0, 3))), ValueError, "input.*empty"),
    (lambda: xi.imsave(io.BytesIO(), normal(4, 4), writer_params=[1]), TypeError, "writer_params"),
])
def test_bad_input_messages(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_falsy_grid_means_no_grid():
    data = normal(4, 5)
    for grid in (False, None, 0, (), []):
        np.testing.assert_array_equal(np.asarray(xi.imgify(data, grid=grid)), np.asarray(xi.imgify(data)))
    np.testing.assert_array_equal(np.asarray(xi.imgify(normal(4, 3, 3), grid=np.array([2, 2]))).shape, (6, 6))


def test_oracle_ran_zennit_on_a_pillow_it_supports(zennit):
    # either a Pillow <= 12.3 subprocess, or this process with the putpalette shim
    major, minor = (int(part) for part in zennit["_pillow"].split(".")[:2])
    assert (major, minor) <= (12, 3) or zennit["_pillow"].endswith("(putpalette shim)")
