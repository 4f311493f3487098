"""xaifast.utils: parity with torchray.utils where TorchRay works, and the cases where it does not."""

import gc
import inspect
import io
import json
import os
import subprocess
import sys
import urllib.request
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import xaifast.utils as xu


@pytest.fixture
def tr():
    """torchray.utils as the oracle (skips when TorchRay is not installed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchray's import of its VERSION file
        return pytest.importorskip("torchray.utils")


@pytest.fixture
def rgb_png(tmp_path):
    """A 40x30 RGB PNG with smooth gradients plus noise (so LANCZOS has something to do)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(pixels, "RGB").save(path)
    return path


def _save(tmp_path, name, image):
    path = tmp_path / name
    image.save(path)
    return path


# --- the API surface -------------------------------------------------------------------------

PUBLIC_FUNCTIONS = ["get_config", "get_device", "xmkdir", "is_url", "tensor_to_im", "pil_to_tensor",
                    "im_to_numpy", "imread", "imsc", "imarraysc", "resample", "imsmooth"]


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_signature_matches_torchray(tr, name):
    assert inspect.signature(getattr(xu, name)) == inspect.signature(getattr(tr, name))


def test_constants_match_torchray(tr):
    for name in ["EPSILON_DOUBLE", "EPSILON_SINGLE", "SQRT_TWO_DOUBLE", "SQRT_TWO_SINGLE"]:
        ours, theirs = getattr(xu, name), getattr(tr, name)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape == ()
        assert ours.item() == theirs.item()


def test_constants_dtypes():
    assert xu.EPSILON_DOUBLE.dtype == torch.float64
    assert xu.EPSILON_SINGLE.dtype == torch.float32
    assert xu.SQRT_TWO_DOUBLE.dtype == torch.float32  # TorchRay's quirk, kept on purpose
    assert xu.SQRT_TWO_SINGLE.dtype == torch.float32
    assert xu.EPSILON_SINGLE.item() == np.finfo(np.float32).eps
    assert xu.EPSILON_DOUBLE.item() == np.finfo(np.float64).eps


def test_imsmooth_is_the_compiled_op(tr):
    from xaifast.ops.blur import imsmooth

    assert xu.imsmooth is imsmooth
    x = torch.rand(2, 3, 17, 13, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(xu.imsmooth(x, 1.5), tr.imsmooth(x, 1.5))


def test_import_does_not_import_matplotlib():
    code = ("import sys, torch, xaifast.utils as u\n"
            "assert 'matplotlib' not in sys.modules, 'imported by import xaifast.utils'\n"
            "u.imsc(torch.rand(3, 4, 4), quiet=True)\n"
            "u.imarraysc(torch.rand(2, 1, 4, 4), quiet=True)\n"
            "assert 'matplotlib' not in sys.modules, 'imported by a quiet call'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --- small helpers ---------------------------------------------------------------------------

def test_get_device_cpu(tr, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for gpu in (0, 1, None):
        assert xu.get_device(gpu) == tr.get_device(gpu) == torch.device("cpu")


def test_get_device_cuda_index(tr, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert xu.get_device() == tr.get_device() == torch.device("cuda:0")
    assert xu.get_device(2) == tr.get_device(2) == torch.device("cuda:2")
    assert xu.get_device(None) == tr.get_device(None) == torch.device("cpu")


def test_get_device_on_this_machine():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert xu.get_device().type == expected
    assert xu.get_device(None) == torch.device("cpu")


@pytest.mark.parametrize("gpu", [-1, 1.0, "0", True])
def test_get_device_bad_gpu(gpu):
    with pytest.raises(ValueError, match="gpu"):
        xu.get_device(gpu)


def test_xmkdir(tmp_path):
    nested = tmp_path / "a" / "b" / "c"
    xu.xmkdir(str(nested))
    assert nested.is_dir()
    xu.xmkdir(nested)  # exists already; Path objects work too
    xu.xmkdir(None)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    xu.xmkdir(a_file)  # an existing path is left alone, as in TorchRay
    assert a_file.is_file()


IS_URL_CASES = ["https://example.com/cat.jpg", "http://host/a?b=1", "ftp://host/x", "https://example.com",
                "cat.jpg", "/abs/path.png", "file:///tmp/x.png", "", None, 3, b"http://host/x.png", ["x"]]


def test_is_url_matches_torchray(tr):
    for obj in IS_URL_CASES:
        assert xu.is_url(obj) == tr.is_url(obj), obj


def test_is_url():
    assert xu.is_url("https://example.com/cat.jpg")
    assert not xu.is_url("https://example.com")  # no path
    assert not xu.is_url("cat.jpg")
    assert not xu.is_url(None)


def test_tensor_to_im_matches_torchray(tr):
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    ours = xu.tensor_to_im(x)
    assert ours.shape == (6, 1, 5, 7)
    assert torch.equal(ours, tr.tensor_to_im(x))
    assert torch.equal(ours[4, 0], x[1, 1])


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 2, 3, 5, 7), (7,)])
def test_tensor_to_im_bad_shape(shape):
    with pytest.raises(ValueError, match="tensor"):
        xu.tensor_to_im(torch.zeros(shape))
    with pytest.raises(TypeError, match="tensor"):
        xu.tensor_to_im(np.zeros((1, 1, 2, 2)))


# --- PIL, numpy and tensors ------------------------------------------------------------------

def _images():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    return {
        "RGB": Image.fromarray(rgb, "RGB"),
        "L": Image.fromarray(rgb[:, :, 0], "L"),
        "RGBA": Image.fromarray(np.dstack([rgb, rgb[:, :, :1]]), "RGBA"),
        "1": Image.fromarray(rgb[:, :, 0] > 128),
        "F": Image.fromarray(rng.standard_normal((6, 9)).astype(np.float32), "F"),
        "P": Image.fromarray(rgb, "RGB").convert("P"),
    }


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "1", "F", "P"])
def test_pil_to_tensor_matches_torchray(tr, mode):
    image = _images()[mode]
    ours = xu.pil_to_tensor(image)
    theirs = tr.pil_to_tensor(image)
    assert ours.dtype == theirs.dtype == torch.float32
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)


def test_pil_to_tensor():
    x = xu.pil_to_tensor(Image.new("RGB", (4, 2), (255, 0, 51)))
    assert x.shape == (3, 2, 4)
    assert torch.equal(x[:, 0, 0], torch.tensor([1.0, 0.0, 0.2]))
    assert xu.pil_to_tensor(Image.new("L", (4, 2))).shape == (1, 2, 4)
    with pytest.raises(TypeError, match="pil_image"):
        xu.pil_to_tensor(torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="pil_image"):
        xu.pil_to_tensor(np.zeros((1, 2, 3, 4)))


@pytest.mark.parametrize("channels", [1, 3])
def test_im_to_numpy_matches_torchray(tr, channels):
    x = torch.rand(channels, 4, 6, generator=torch.Generator().manual_seed(3))
    ours = xu.im_to_numpy(x)
    assert ours.shape == (4, 6, 3)
    np.testing.assert_array_equal(ours, tr.im_to_numpy(x))


@pytest.mark.parametrize("shape", [(2, 4, 6), (4, 6), (1, 3, 4, 6)])
def test_im_to_numpy_bad_shape(shape):
    with pytest.raises(ValueError, match="tensor"):
        xu.im_to_numpy(torch.zeros(shape))


# --- imread ----------------------------------------------------------------------------------

@pytest.mark.parametrize("to_rgb", [False, True])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_imread_matches_torchray(tr, tmp_path, mode, to_rgb):
    path = _save(tmp_path, f"img_{mode}.png", _images()[mode])
    ours = xu.imread(str(path), to_rgb=to_rgb)
    assert torch.equal(ours, tr.imread(str(path), to_rgb=to_rgb))
    assert ours.shape[0] == (3 if to_rgb else len(_images()[mode].getbands()))
    ours_pil = xu.imread(path, as_pil=True, to_rgb=to_rgb)
    with open(path, "rb") as file:  # TorchRay leaves a path it opened open with as_pil=True
        theirs_pil = tr.imread(file, as_pil=True, to_rgb=to_rgb)
        assert ours_pil.mode == theirs_pil.mode and ours_pil.size == theirs_pil.size
        assert np.array_equal(np.array(ours_pil), np.array(theirs_pil))


@pytest.mark.parametrize("resize, size", [(15, (20, 15)), (15.0, (20, 15)), (45, (60, 45)), (30, (40, 30)),
                                          ((10, 7), (10, 7)), ([8, 12], (8, 12))])
def test_imread_resize_is_pil_lanczos(rgb_png, resize, size):
    """An int sets the shorter side (40x30 -> 20x15 for 15); a pair is (W, H)."""
    with Image.open(rgb_png) as original:
        expected = original.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    image = xu.imread(rgb_png, as_pil=True, resize=resize)
    assert image.size == size
    assert np.array_equal(np.array(image), np.array(expected))
    x = xu.imread(rgb_png, resize=resize)
    assert x.shape == (3, size[1], size[0])
    assert torch.equal(x, torch.from_numpy(np.array(expected)).permute(2, 0, 1).float() / 255)


def test_imread_resize_rounds_like_torchray(tmp_path):
    # 50x20 image, shorter side 7: scale 0.35 -> width round(17.5) = 18 (round half to even).
    path = _save(tmp_path, "wide.png", Image.new("RGB", (50, 20), (10, 20, 30)))
    assert xu.imread(path, resize=7).shape == (3, 7, 18)


def test_imread_closes_files(tmp_path):
    png = _save(tmp_path, "a.png", Image.new("RGB", (8, 6), (1, 2, 3)))
    frames = [Image.new("L", (8, 6), 40 * i) for i in range(3)]
    gif = tmp_path / "a.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in (png, gif):
            for as_pil in (False, True):
                image = xu.imread(path, as_pil=as_pil)
                del image
                gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_imread_file_object(rgb_png):
    with open(rgb_png, "rb") as file:
        x = xu.imread(file)
    assert torch.equal(x, xu.imread(rgb_png))


def test_imread_url_without_network(monkeypatch, rgb_png):
    """URLs go through urllib.request.urlopen, whose response is closed after reading."""
    requests = []

    class Response(io.BytesIO):
        def __exit__(self, *exc):
            requests.append("closed")
            return super().__exit__(*exc)

    def fake_urlopen(request, *args, **kwargs):
        requests.append(request.full_url)
        return Response(rgb_png.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    x = xu.imread("https://example.com/images/cat.png", resize=(10, 7))
    assert requests == ["https://example.com/images/cat.png", "closed"]
    assert torch.equal(x, xu.imread(rgb_png, resize=(10, 7)))


@pytest.mark.parametrize("resize, error", [("big", TypeError), (0, ValueError),
                                           (-3, ValueError), ((10, 7, 3), ValueError), ((10,), ValueError),
                                           ((10.5, 7), ValueError), ((0, 7), ValueError), (True, TypeError),
                                           (float("nan"), ValueError)])
def test_imread_bad_resize(rgb_png, resize, error):
    with pytest.raises(error, match="resize"):
        xu.imread(rgb_png, resize=resize)


def test_imread_bad_file():
    with pytest.raises(TypeError, match="file"):
        xu.imread(3)


# --- imsc ------------------------------------------------------------------------------------

def _rand(*shape, seed=4, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 3 + 1


@pytest.mark.parametrize("lim", [None, [], [-1.0, 2.5], [0, 1]])
@pytest.mark.parametrize("shape", [(3, 5, 6), (1, 4, 4), (2, 3, 5, 6)])
def test_imsc_quiet_matches_torchray(tr, shape, lim):
    x = _rand(*shape)
    before = x.clone()
    ours, handle = xu.imsc(x, quiet=True, lim=lim)
    theirs, _ = tr.imsc(x, quiet=True, lim=lim)
    assert handle is None
    assert torch.equal(ours, theirs)
    assert torch.equal(x, before)  # the input is not modified


def test_imsc_tensor_limits_match_torchray(tr):
    x = _rand(3, 5, 6, dtype=torch.float64)
    lim = [torch.tensor(-0.5, dtype=torch.float64), torch.tensor(2.0, dtype=torch.float64)]
    assert torch.equal(xu.imsc(x, quiet=True, lim=lim)[0], tr.imsc(x, quiet=True, lim=lim)[0])


def test_imsc_pil_matches_torchray(tr):
    image = _images()["RGB"]
    assert torch.equal(xu.imsc(image, quiet=True)[0], tr.imsc(image, quiet=True)[0])


def test_imsc_quiet():
    x = torch.tensor([[[2.0, 4.0, 6.0]]], requires_grad=True)
    scaled, handle = xu.imsc(x, quiet=True)
    assert handle is None and not scaled.requires_grad
    assert torch.equal(scaled, torch.tensor([[[0.0, 0.5, 1.0]]]))
    clamped, _ = xu.imsc(torch.tensor([[[-1.0, 0.5, 3.0]]]), quiet=True, lim=(0, 1))
    assert torch.equal(clamped, torch.tensor([[[0.0, 0.5, 1.0]]]))
    as_float, _ = xu.imsc(torch.tensor([[[0, 51, 255]]], dtype=torch.uint8), quiet=True)
    torch.testing.assert_close(as_float, torch.tensor([[[0.0, 0.2, 1.0]]]))


def test_imsc_constant_image_is_not_nan():
    scaled, _ = xu.imsc(torch.full((1, 3, 3), 7.0), quiet=True)
    assert torch.equal(scaled, torch.zeros(1, 3, 3))
    step, _ = xu.imsc(torch.tensor([[[0.0, 1.0, 2.0]]]), quiet=True, lim=[1.0, 1.0])
    assert torch.equal(step, torch.tensor([[[0.0, 0.0, 1.0]]]))


def test_imsc_draws_like_torchray(tr):
    plt = pytest.importorskip("matplotlib.pyplot")
    x = _rand(1, 5, 6)
    try:
        plt.figure()
        ours, handle = xu.imsc(x, interpolation="nearest", cmap="gray")
        assert not plt.gca().axison
        plt.figure()
        theirs, their_handle = tr.imsc(x, interpolation="nearest", cmap="gray")
    finally:
        plt.close("all")
    assert torch.equal(ours, theirs)
    assert handle.get_interpolation() == "nearest"
    np.testing.assert_array_equal(handle.get_array(), their_handle.get_array())
    assert handle.get_array().shape == (5, 6, 3)


def test_imsc_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib...` fail
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    x = _rand(3, 4, 4)
    with pytest.warns(UserWarning, match="matplotlib") as record:
        scaled, handle = xu.imsc(x)
    assert len(record) == 1 and handle is None
    assert record[0].filename == __file__  # points at the caller
    assert torch.equal(scaled, xu.imsc(x, quiet=True)[0])
    with pytest.warns(UserWarning, match="imarraysc: matplotlib") as record:
        mosaic, handle = xu.imarraysc(_rand(3, 1, 4, 4))
    assert record[0].filename == __file__  # points at the caller
    assert handle is None and mosaic.shape == (1, 8, 8)  # 2 x 2 grid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xu.imsc(x, quiet=True)


def test_imsc_bad_input():
    with pytest.raises(ValueError, match="img"):
        xu.imsc(torch.rand(2, 4, 4))  # two channels cannot be drawn
    with pytest.raises(TypeError, match="img"):
        xu.imsc(np.zeros((3, 4, 4)), quiet=True)
    with pytest.raises(ValueError, match="lim"):
        xu.imsc(torch.rand(3, 4, 4), quiet=True, lim=[0, 1, 2])


# --- imarraysc -------------------------------------------------------------------------------

@pytest.mark.parametrize("count, spacing, lim", [(1, 0, None), (4, 0, None), (5, 2, None), (7, 1, [-1.0, 3.0]),
                                                 (10, 3, None)])
def test_imarraysc_matches_torchray(tr, count, spacing, lim):
    tiles = _rand(count, 3, 5, 4, seed=count)
    ours, handle = xu.imarraysc(tiles, spacing=spacing, quiet=True, lim=lim)
    theirs, _ = tr.imarraysc(tiles, spacing=spacing, quiet=True, lim=lim)
    assert handle is None
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)


def test_imarraysc_draws_like_torchray(tr):
    plt = pytest.importorskip("matplotlib.pyplot")
    tiles = _rand(3, 1, 4, 5)
    try:
        plt.figure()
        ours, handle = xu.imarraysc(tiles, spacing=1, interpolation="nearest")
        plt.figure()
        theirs, their_handle = tr.imarraysc(tiles, spacing=1, interpolation="nearest")
    finally:
        plt.close("all")
    assert torch.equal(ours, theirs)
    np.testing.assert_array_equal(handle.get_array(), their_handle.get_array())


def test_imarraysc_layout():
    tiles = _rand(5, 1, 8, 8)
    mosaic, _ = xu.imarraysc(tiles, spacing=1, quiet=True)
    assert mosaic.shape == (1, 17, 26)  # 3 columns, 2 rows, 1-pixel gaps
    assert torch.equal(mosaic[:, 9:17, 18:26], torch.zeros(1, 8, 8))  # no sixth tile
    torch.testing.assert_close(mosaic[:, 9:17, 9:17], xu.imsc(tiles[4], quiet=True)[0])
    from_list, _ = xu.imarraysc(list(tiles), spacing=1, quiet=True)
    assert torch.equal(from_list, mosaic)
    as_double, _ = xu.imarraysc(tiles.double(), quiet=True)
    assert as_double.dtype == torch.float64


def test_imarraysc_bad_input():
    with pytest.raises(ValueError, match="tiles"):
        xu.imarraysc([], quiet=True)
    with pytest.raises(ValueError, match="tiles"):
        xu.imarraysc(torch.zeros(0, 3, 4, 4), quiet=True)
    with pytest.raises(ValueError, match="tiles"):
        xu.imarraysc(torch.zeros(3, 4, 4), quiet=True)
    with pytest.raises(TypeError, match="tiles"):
        xu.imarraysc(np.zeros((2, 3, 4, 4)), quiet=True)
    with pytest.raises(ValueError, match="tiles"):
        xu.imarraysc(torch.zeros(2, 2, 4, 4))  # two channels cannot be drawn
    with pytest.raises(ValueError, match="spacing"):
        xu.imarraysc(torch.zeros(2, 3, 4, 4), spacing=-1, quiet=True)


# --- resample --------------------------------------------------------------------------------

RESAMPLE_CASES = [
    ((8, 8), (16, 32), [[4.0, 0.0], [2.0, 0.0]]),   # stretch
    ((9, 7), (9, 7), [[1.0, 1.5], [1.0, -2.0]]),    # shift
    ((12, 10), (5, 4), [[0.4, 0.3], [0.5, 0.0]]),   # shrink with offset
    ((6, 6), (6, 6), [[-1.0, -6.0], [1.0, 0.0]]),   # horizontal flip
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size, target, transform", RESAMPLE_CASES)
def test_resample_matches_torchray(tr, size, target, transform, dtype):
    source = _rand(2, 3, *size, dtype=dtype)
    transform = torch.tensor(transform, dtype=dtype)
    ours = xu.resample(source, target, transform)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # TorchRay's meshgrid / align_corners warnings
        theirs = tr.resample(source, target, transform)
    assert ours.shape == (2, 3, *target) and ours.dtype == dtype
    assert torch.equal(ours, theirs)


def test_resample_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xu.resample(_rand(1, 2, 6, 6), (12, 12), torch.tensor([[2.0, 0.0], [2.0, 0.0]]))


def test_resample_identity_and_gradients():
    source = _rand(2, 3, 5, 7, dtype=torch.float64).requires_grad_()
    transform = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    out = xu.resample(source, (5, 7), transform)
    torch.testing.assert_close(out, source, rtol=0, atol=1e-12)
    out.sum().backward()
    assert source.grad is not None and transform.grad is not None
    # A list transform is accepted too: 2x along both axes.
    assert xu.resample(source.detach(), (10, 14), [[2.0, 0.0], [2.0, 0.0]]).shape == (2, 3, 10, 14)


def test_resample_bad_input():
    source = torch.rand(1, 1, 4, 4)
    identity = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="transform"):
        xu.resample(source, (4, 4), torch.eye(3))
    with pytest.raises(ValueError, match="transform"):
        xu.resample(source, (4, 4), torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="source"):
        xu.resample(torch.rand(1, 4, 4), (4, 4), identity)
    with pytest.raises(ValueError, match="source"):
        xu.resample(torch.zeros(1, 1, 4, 4, dtype=torch.long), (4, 4), identity)
    with pytest.raises(TypeError, match="source"):
        xu.resample(np.zeros((1, 1, 4, 4)), (4, 4), identity)
    for target_size in [(4,), 4, (4, 0), (4.0, 4)]:
        with pytest.raises(ValueError, match="target_size"):
            xu.resample(source, target_size, identity)


# --- get_config ------------------------------------------------------------------------------

@pytest.fixture
def config_dirs(tmp_path, monkeypatch):
    """Fresh current and home folders, and no cached configuration."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(xu, "_config", None)
    return cwd, home


def test_get_config_defaults_match_torchray(tr, config_dirs, monkeypatch):
    monkeypatch.setattr(tr, "_DEFAULT_CONFIG", json.loads(json.dumps(tr._DEFAULT_CONFIG)))
    monkeypatch.setattr(tr, "_config_read", False)
    assert xu.get_config() == tr.get_config()


def test_get_config_file_matches_torchray(tr, config_dirs, monkeypatch):
    cwd, _ = config_dirs
    (cwd / ".torchrayrc").write_text(json.dumps({"benchmark": {"voc_dir": "/data/voc"}, "mongo": {"port": 1}}))
    monkeypatch.setattr(tr, "_DEFAULT_CONFIG", json.loads(json.dumps(tr._DEFAULT_CONFIG)))
    monkeypatch.setattr(tr, "_config_read", False)
    assert xu.get_config() == tr.get_config()


def test_get_config_reads_once_and_prefers_cwd(config_dirs):
    cwd, home = config_dirs
    (home / ".torchrayrc").write_text(json.dumps({"benchmark": {"models_dir": "/home/models"}}))
    (cwd / ".torchrayrc").write_text(json.dumps({"benchmark": {"models_dir": "/cwd/models"}}))
    config = xu.get_config()
    assert config["benchmark"]["models_dir"] == "/cwd/models"
    assert config["benchmark"]["voc_dir"] == "./data/datasets/voc"
    assert config["mongo"]["port"] == 27017
    (cwd / ".torchrayrc").unlink()
    assert xu.get_config() is config  # cached: the files are not read again
    assert xu._DEFAULT_CONFIG["benchmark"]["models_dir"] == "./data/models"  # defaults untouched


def test_get_config_home(config_dirs):
    _, home = config_dirs
    (home / ".torchrayrc").write_text(json.dumps({"mongo": {"hostname": "db.example"}}))
    assert xu.get_config()["mongo"]["hostname"] == "db.example"


@pytest.mark.parametrize("content, match", [({"benchmark": {"voc_dri": "x"}}, "benchmark.voc_dri"),
                                            ({"mongoo": {}}, "mongoo"),
                                            ({"mongo": "localhost"}, "mongo"),
                                            ([1, 2], "top level")])
def test_get_config_bad_file(config_dirs, content, match):
    cwd, _ = config_dirs
    (cwd / ".torchrayrc").write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
        xu.get_config()
    assert xu._config is None  # nothing half-merged was cached
    (cwd / ".torchrayrc").write_text("{not json")
    with pytest.raises(ValueError, match="torchrayrc"):
        xu.get_config()
    os.remove(cwd / ".torchrayrc")
    assert xu.get_config()["mongo"]["server"] == "mongod"
