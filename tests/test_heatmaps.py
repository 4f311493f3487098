"""xaifast.heatmaps: reductions, percentile clip, colour maps, resize, overlay, presets, bad input."""

import numpy as np
import pytest
import torch
from PIL import Image

from xaifast import colormaps
from xaifast.heatmaps import (ATTRIBUTION, CAM, PRESETS, SENSITIVITY, AbsSumReduction, AlphaOverlay,
                              CenteredColormap, ExtremaColormap, MaxAbsReduction, NormReduction, PercentileClip,
                              Pipeline, ResizeToImage, SumAbsReduction, SumReduction, Transform, heatmap)
from xaifast.image import palette


def pixels(images):
    return np.stack([np.asarray(image) for image in images])


# channel values of two pixels: (3, -4, 0) and (-1, 2, 2)
CHANNELS = torch.tensor([[3.0, -1.0], [-4.0, 2.0], [0.0, 2.0]]).view(1, 3, 1, 2)


@pytest.mark.parametrize("reduction, expected", [
    (NormReduction(), [5.0, 3.0]),     # sqrt(9 + 16 + 0), sqrt(1 + 4 + 4)
    (SumReduction(), [-1.0, 3.0]),
    (MaxAbsReduction(), [4.0, 2.0]),
    (SumAbsReduction(), [7.0, 5.0]),
    (AbsSumReduction(), [1.0, 3.0]),
])
def test_reductions_by_hand(reduction, expected):
    out = reduction(CHANNELS)
    assert out.shape == (1, 1, 1, 2)
    assert out.flatten().tolist() == expected
    one = torch.tensor([-2.0, 3.0]).view(1, 1, 1, 2)
    assert torch.equal(reduction(one), one)  # a single channel is passed as is (sign kept)


def test_percentile_clip_by_hand():
    values = torch.tensor([0.0, 10.0, 20.0, 30.0, 40.0]).view(1, 1, 1, 5)
    # 10th percentile at position 0.4 -> 4; 90th at 3.6 -> 30 + 0.6 * 10 = 36
    assert PercentileClip(10, 90)(values).flatten().tolist() == pytest.approx([4.0, 10.0, 20.0, 30.0, 36.0])
    ramp = torch.arange(1001.0).view(1, 1, 1, 1001)
    clipped = PercentileClip()(ramp).flatten()  # 0.1 % and 99.9 % of 0..1000 -> 1 and 999
    assert clipped[0].item() == 1.0 and clipped[-1].item() == 999.0 and clipped[500].item() == 500.0
    batch = torch.stack([values[0], 10 * values[0]])  # per item: the second has 10x the bounds
    out = PercentileClip(10, 90)(batch).flatten(1)
    assert out[0].tolist() == pytest.approx([4, 10, 20, 30, 36]) and out[1].tolist() == pytest.approx(
        [40, 100, 200, 300, 360])
    np.testing.assert_allclose(PercentileClip(25, 75)(batch).numpy(),
                               np.clip(batch.numpy(), *np.percentile(batch[0].numpy(), [25, 75]))[:1].repeat(2, 0)
                               * np.array([1, 10]).reshape(2, 1, 1, 1))


@pytest.mark.parametrize("name", ["viridis", "batlow", "jet", "bwr", "00f,80:fff,f00"])
def test_extrema_colormap_ends(name):
    table = colormaps.get_table(name) if name in colormaps.names() else palette(name)
    x = torch.randn(2, 1, 5, 6, generator=torch.Generator().manual_seed(0))
    out = pixels(heatmap(x, ExtremaColormap(name)))
    for i in range(2):
        flat = x[i, 0].flatten()
        lo, hi = divmod(int(flat.argmin()), 6), divmod(int(flat.argmax()), 6)
        assert out[i][lo].tolist() == table[0].tolist()
        assert out[i][hi].tolist() == table[255].tolist()


def test_colormap_interpolates_continuously():
    table = colormaps.get_table("viridis").astype(np.float64) / 255
    x = torch.tensor([0.0, 100.25, 255.0], dtype=torch.float64).view(1, 1, 1, 3)
    rgb = ExtremaColormap("viridis")(x)[0, :, 0].T.numpy()
    np.testing.assert_allclose(rgb[1], 0.75 * table[100] + 0.25 * table[101], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rgb[[0, 2]], table[[0, 255]], rtol=0, atol=1e-12)


def test_centered_colormap_zero_is_middle_and_zero_map_is_first():
    table = colormaps.get_table("berlin").astype(np.float64) / 255
    x = torch.tensor([-2.0, 0.0, 1.0, 2.0], dtype=torch.float64).view(1, 1, 1, 4)
    rgb = CenteredColormap()(x)[0, :, 0].T.numpy()
    np.testing.assert_allclose(rgb[1], (table[127] + table[128]) / 2, atol=1e-12)
    np.testing.assert_allclose(rgb[[0, 3]], table[[0, 255]], atol=1e-12)
    np.testing.assert_allclose(rgb[2], 0.75 * table[191] + 0.25 * table[192], atol=1e-12)  # 0.75 * 255 = 191.25
    zeros = torch.zeros(1, 1, 3, 3)
    for transform, name in ((CenteredColormap(), "berlin"), (ExtremaColormap(), "batlow")):
        out = pixels(heatmap(zeros, transform))[0]
        assert (out == colormaps.get_table(name)[0]).all()  # zero-width range falls back to (0, 1)
    constant = pixels(heatmap(torch.full((1, 1, 2, 2), 5.0), ExtremaColormap("gray")))[0]
    assert (constant == 255).all()  # (0, 1) fallback: 5 clamps to the last colour, as in ColorSchemes.jl


def test_colormap_names_resolution():
    gray = ExtremaColormap("gray")._table  # xaifast.colormaps' gray wins over the CMSL built-in
    assert torch.equal(gray, torch.from_numpy(colormaps.get_table("gray")).double() / 255)
    reverse = ExtremaColormap("viridis_r")._table
    assert torch.equal(reverse, torch.from_numpy(colormaps.get_table("viridis")[::-1].copy()).double() / 255)
    coldnhot = ExtremaColormap("coldnhot")._table
    assert torch.equal(coldnhot, torch.from_numpy(palette("coldnhot")).double() / 255)
    with pytest.raises(ValueError, match="name 'nope'.*viridis.*coldnhot"):
        ExtremaColormap("nope")
    with pytest.raises(ValueError, match="name 'ff0000ff,000'.*position"):
        CenteredColormap("ff0000ff,000")
    with pytest.raises(TypeError, match="name"):
        ExtremaColormap(3)


def test_alpha_overlay_arithmetic_vs_numpy():
    gen = torch.Generator().manual_seed(1)
    x, image = torch.rand(2, 3, 4, 5, generator=gen), torch.rand(2, 3, 4, 5, generator=gen)
    out = AlphaOverlay(0.3)(x, image)
    np.testing.assert_allclose(out.numpy(), image.numpy() * 0.7 + x.numpy() * 0.3, rtol=1e-6)
    assert AlphaOverlay()(x) is x  # no image: no-op
    picture = np.random.default_rng(2).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    maps = torch.rand(1, 1, 4, 5, generator=gen, dtype=torch.float64)
    got = pixels(heatmap(maps, picture, ExtremaColormap("gray") | AlphaOverlay(0.25)))[0]
    grey = (maps[0, 0].numpy() - maps.min().item()) / (maps.max() - maps.min()).item()
    exact = (picture / 255 * 0.75 + grey[..., None] * 0.25) * 255
    tie = np.abs(exact - np.floor(exact) - 0.5) < 1e-9  # ties may round either way after float noise
    np.testing.assert_array_equal(got[~tie], np.round(exact)[~tie])
    assert np.abs(got - exact).max() <= 0.5 + 1e-9


def test_batch_equals_per_item():
    x = torch.randn(3, 3, 6, 7, generator=torch.Generator().manual_seed(3))
    for pipe in (SENSITIVITY, ATTRIBUTION, SumReduction() | PercentileClip(5, 95) | ExtremaColormap("jet")):
        batch = pixels(heatmap(x, pipe))
        single = np.concatenate([pixels(heatmap(x[i:i + 1], pipe)) for i in range(3)])
        np.testing.assert_array_equal(batch, single)


def test_image_broadcast_equals_batch_of_images():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 1, 4, 4, generator=gen)
    image = torch.rand(3, 12, 10, generator=gen)
    one = pixels(heatmap(x, image, CAM))
    listed = pixels(heatmap(x, [image] * 3, CAM))
    stacked = pixels(heatmap(x, image.expand(3, -1, -1, -1), CAM))
    np.testing.assert_array_equal(one, listed)
    np.testing.assert_array_equal(one, stacked)
    hwc = pixels(heatmap(x, image.permute(1, 2, 0).numpy(), CAM))  # HWC float array
    np.testing.assert_array_equal(one, hwc)
    others = torch.rand(3, 3, 12, 10, generator=gen)
    zipped = pixels(heatmap(x, others, CAM))
    for i in range(3):
        np.testing.assert_array_equal(zipped[i], pixels(heatmap(x[i:i + 1], others[i], CAM))[0])
    uint8 = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    assert pixels(heatmap(x, uint8, CAM)).shape == (3, 12, 10, 3)


def test_resize_to_image_sizes():
    x = torch.rand(2, 3, 7, 7)
    assert ResizeToImage()(x) is x
    assert ResizeToImage()(x, torch.zeros(2, 3, 7, 7)) is x
    assert ResizeToImage("nearest")(x, torch.zeros(2, 3, 20, 30)).shape == (2, 3, 20, 30)
    images = heatmap(torch.rand(2, 1, 7, 7), torch.zeros(3, 20, 30), CAM)
    assert [im.size for im in images] == [(30, 20)] * 2  # PIL sizes are (W, H)
    with pytest.raises(ValueError, match="ResizeToImage"):
        heatmap(torch.rand(1, 1, 7, 7), torch.zeros(3, 20, 30), ExtremaColormap() | AlphaOverlay())


def test_defaults_presets_and_composition():
    assert SENSITIVITY == Pipeline(NormReduction(), ExtremaColormap("batlow"))
    assert ATTRIBUTION == NormReduction() | CenteredColormap("berlin")
    assert CAM.transforms == (SumReduction(), ExtremaColormap("jet"), ResizeToImage(), AlphaOverlay(0.6))
    assert set(PRESETS) == {"sensitivity", "attribution", "cam"}
    assert (SENSITIVITY | CAM).transforms == SENSITIVITY.transforms + CAM.transforms
    assert repr(SENSITIVITY) == "NormReduction() | ExtremaColormap(name='batlow')"
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(pixels(heatmap(x)), pixels(heatmap(x, SENSITIVITY)))
    np.testing.assert_array_equal(pixels(heatmap(x, "cam")), pixels(heatmap(x, pipeline=CAM)))
    image = torch.rand(3, 10, 10)
    np.testing.assert_array_equal(pixels(heatmap(x, image)),
                                  pixels(heatmap(x, image, SENSITIVITY | ResizeToImage() | AlphaOverlay())))
    grey = heatmap(x, NormReduction() | PercentileClip())  # no colour map: 1 channel, clipped to [0, 1]
    assert grey[0].mode == "L"

    class Negate(Transform):
        def apply(self, x, image=None):
            return -x
    flipped = pixels(heatmap(x, SumReduction() | Negate() | ExtremaColormap("gray")))
    plain = pixels(heatmap(x, SumReduction() | ExtremaColormap("gray_r")))
    assert np.abs(flipped.astype(int) - plain).max() <= 1


def test_input_kinds_and_dtypes(device):
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected = pixels(heatmap(x, ATTRIBUTION))
    np.testing.assert_array_equal(pixels(heatmap(x.numpy(), ATTRIBUTION)), expected)
    np.testing.assert_array_equal(pixels(heatmap(x.to(device), ATTRIBUTION)), expected)
    assert ATTRIBUTION(x).dtype == torch.float64
    assert len(heatmap(torch.ones(1, 1, 2, 2, dtype=torch.int64))) == 1
    assert len(heatmap(x.float().requires_grad_())) == 2


def test_bad_input_messages():
    with pytest.raises(ValueError, match=r"x must have 4 dimensions.*\(3, 4, 4\)"):
        heatmap(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="x must not be empty"):
        heatmap(torch.rand(0, 3, 4, 4))
    with pytest.raises(ValueError, match="x must be finite"):
        heatmap(torch.tensor([[[[0.0, float("nan")]]]]))
    with pytest.raises(TypeError, match="x must hold real numbers"):
        heatmap("abc")
    with pytest.raises(TypeError, match="x must hold real numbers"):
        heatmap(torch.ones(1, 1, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="one channel per pixel.*reduction"):
        heatmap(torch.rand(1, 3, 4, 4), ExtremaColormap())
    with pytest.raises(ValueError, match="1 or 3 channels"):
        heatmap(torch.rand(1, 4, 4, 4), Pipeline())
    with pytest.raises(ValueError, match="image of shape .* colour channels"):
        heatmap(torch.rand(1, 1, 4, 4), np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="image of shape .* colour channels"):
        heatmap(torch.rand(1, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="image holds 2 images but x holds 3"):
        heatmap(torch.rand(3, 1, 4, 4), torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"image holds floats.*\[0, 1\]"):
        heatmap(torch.rand(1, 1, 4, 4), torch.full((3, 4, 4), 2.0))
    with pytest.raises(ValueError, match="image must not be an empty list"):
        heatmap(torch.rand(1, 1, 4, 4), [])
    with pytest.raises(ValueError, match="one size"):
        heatmap(torch.rand(2, 1, 4, 4), [torch.zeros(3, 4, 4), torch.zeros(3, 5, 4)])
    with pytest.raises(TypeError, match="pipeline must be a Transform"):
        heatmap(torch.rand(1, 1, 4, 4), None, 3)
    with pytest.raises(ValueError, match="pipeline 'nope'.*sensitivity"):
        heatmap(torch.rand(1, 1, 4, 4), "nope")
    with pytest.raises(ValueError, match="lower and upper"):
        PercentileClip(50, 50)
    with pytest.raises(ValueError, match="lower and upper"):
        PercentileClip(-1, 50)
    with pytest.raises(ValueError, match="lower and upper"):
        PercentileClip(0.5, 100.5)
    with pytest.raises(TypeError, match="lower"):
        PercentileClip("1", 50)
    with pytest.raises(ValueError, match="mode must be one of"):
        ResizeToImage("cubic")
    with pytest.raises(ValueError, match="alpha must be in"):
        AlphaOverlay(1.5)
    with pytest.raises(TypeError, match="alpha"):
        AlphaOverlay(None)
    with pytest.raises(TypeError, match=r"transforms\[1\]"):
        Pipeline(NormReduction(), "jet")
    with pytest.raises(TypeError):
        NormReduction() | 3
