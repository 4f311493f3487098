"""xaifast.colormaps: tables equal matplotlib's (and Crameri's), lookup like ListedColormap, errors."""

import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from xaifast import colormaps

ROOT = pathlib.Path(__file__).resolve().parent.parent
MATPLOTLIB_NAMES = ["viridis", "inferno", "magma", "plasma", "cividis", "turbo", "jet", "gray", "hot", "seismic",
                    "berlin"]


@pytest.fixture(scope="module")
def mpl():
    return pytest.importorskip("matplotlib")


def test_names():
    assert set(colormaps.names()) >= set(MATPLOTLIB_NAMES) | {"batlow", "hotcold"}
    assert len(set(colormaps.names())) == len(colormaps.names())


@pytest.mark.parametrize("name", MATPLOTLIB_NAMES)
def test_table_equals_matplotlib(mpl, name):
    if name not in mpl.colormaps:
        pytest.skip(f"matplotlib {mpl.__version__} has no {name}")
    expected = np.round(mpl.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(colormaps.get_table(name), expected)


def test_hotcold_is_trulens_default(mpl):
    # TruLens' _get_hotcold: vstack(binary(ramp) * cool(ramp), hot(ramp)), each resampled to 128.
    ramp = np.linspace(0, 1, 128)
    hot, cool, binary = (mpl.colormaps[n].resampled(128) for n in ("hot", "cool", "binary"))
    hotcold = mpl.colors.ListedColormap(np.vstack((binary(ramp) * cool(ramp), hot(ramp))), name="hotcold")
    expected = np.round(hotcold(np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(colormaps.get_table("hotcold"), expected)
    table = colormaps.get_table("hotcold")
    assert table[0].tolist() == [0, 255, 255] and table[127].tolist() == [0, 0, 0]
    assert table[255].tolist() == [255, 255, 255]


def test_batlow_equals_crameri():
    table = colormaps.get_table("batlow")
    # pinned ends and middle of Crameri's batlow (round(255 * rgb))
    assert table[0].tolist() == [1, 25, 89] and table[128].tolist() == [130, 130, 49]
    assert table[255].tolist() == [250, 204, 250]
    spec = importlib.util.find_spec("cmcrameri")
    if spec is None:
        pytest.skip("cmcrameri not installed")
    source = pathlib.Path(list(spec.submodule_search_locations)[0]) / "cmaps" / "batlow.txt"
    np.testing.assert_array_equal(table, np.round(np.loadtxt(source) * 255).astype(np.uint8))


def test_generated_block_up_to_date(mpl):
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_colormaps.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_get_table_is_a_fresh_copy():
    table = colormaps.get_table("viridis")
    assert table.shape == (256, 3) and table.dtype == np.uint8 and table.flags.writeable
    table[:] = 0
    assert colormaps.get_table("viridis").any()


def test_reversed():
    np.testing.assert_array_equal(colormaps.get_table("jet_r"), colormaps.get_table("jet")[::-1])
    np.testing.assert_array_equal(colormaps.apply(np.array([0.0]), "gray_r"), [[255, 255, 255]])


def test_apply_matches_listed_colormap(mpl):
    values = np.array([-np.inf, -1.0, -1e-9, 0.0, 1 / 256 - 1e-12, 1 / 256, 0.5, 0.999, 1.0, 1.5, np.inf])
    for name in ("viridis", "hotcold"):
        cmap = mpl.colors.ListedColormap(colormaps.get_table(name) / 255.0)
        expected = np.round(cmap(values)[:, :3] * 255).astype(np.uint8)
        np.testing.assert_array_equal(colormaps.apply(values, name), expected)
    values32 = np.random.default_rng(0).random((7, 5)).astype(np.float32)
    cmap = mpl.colors.ListedColormap(colormaps.get_table("turbo") / 255.0)
    np.testing.assert_array_equal(colormaps.apply(values32, "turbo"),
                                  np.round(cmap(values32)[..., :3] * 255).astype(np.uint8))


def test_apply_indexing_by_hand():
    table = colormaps.get_table("jet")
    values = np.array([[0.0, 0.5], [1.0, 2.0]])
    out = colormaps.apply(values, "jet")
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, table[[[0, 128], [255, 255]]])
    # NaN is black; integers are indices, clipped
    np.testing.assert_array_equal(colormaps.apply(np.array([np.nan]), "gray"), [[0, 0, 0]])
    np.testing.assert_array_equal(colormaps.apply(np.array([-3, 7, 300]), "jet"), table[[0, 7, 255]])


def test_apply_tensor_like_numpy():
    values = torch.tensor([[0.1, float("nan")], [0.7, 1.0]])
    out = colormaps.apply(values, "magma")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.numpy(), colormaps.apply(values.numpy(), "magma"))
    np.testing.assert_array_equal(colormaps.apply(torch.tensor([3, 300]), "magma").numpy(),
                                  colormaps.get_table("magma")[[3, 255]])


def test_bad_input():
    with pytest.raises(ValueError, match="name 'nope'.*viridis"):
        colormaps.get_table("nope")
    with pytest.raises(ValueError, match="name"):
        colormaps.apply(np.zeros(3), "Viridis")
    with pytest.raises(TypeError, match="name"):
        colormaps.get_table(3)
    with pytest.raises(TypeError, match="values"):
        colormaps.apply(np.array([True, False]), "gray")
    with pytest.raises(TypeError, match="values"):
        colormaps.apply(torch.tensor([True]), "gray")
