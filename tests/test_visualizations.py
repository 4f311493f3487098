"""xaifast.visualizations: TruLens' visualizers, by hand-computed values, per the behaviour notes."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from xaifast import _visualization_utils as vu
from xaifast import colormaps
from xaifast.visualizations import (ChannelMaskVisualizer, HeatmapVisualizer, MaskVisualizer, Tiler,
                                    Visualizer)

# One item, 3 channels, 1 x 2 pixels: ch0 [1, -2], ch1 [4, 0.5], ch2 [-1, 0].
ITEM = np.array([[[1.0, -2.0]], [[4.0, 0.5]], [[-1.0, 0.0]]])
EXPECTED = {
    "unsigned_max": [[0.25, -0.5], [1, 0.125], [-0.25, 0]],  # / max|a| = 4 over the item
    "unsigned_max_positive_centered": [[0.625, 0.25], [1, 0.5625], [0.375, 0.5]],
    "magnitude_max": [[0.25, 0.5], [1, 0.125], [0.25, 0]],
    "magnitude_sum": [[1 / 3, 2 / 3], [4 / 4.5, 0.5 / 4.5], [1, 0]],  # per channel
    "signed_max": [[0.25, -1], [1, 0.125], [-0.5, 0]],  # positives / 4, negatives / 2
    "signed_max_positive_centered": [[0.625, 0], [1, 0.5625], [0.25, 0.5]],
    "signed_sum": [[1, -1], [4 / 4.5, 0.5 / 4.5], [-1, 0]],  # per channel, positives and negatives apart
    "01": [[0.5, 0], [1, 2.5 / 6], [1 / 6, 2 / 6]],  # (a + 2) / 6 over the item
    "unnormalized": ITEM[:, 0].tolist(),
}


def _read(path):
    """The pixels of an image file, closing it."""
    with Image.open(path) as image:
        return np.asarray(image)


def batch():
    """Two items, the second 10x the first: every type but 'unnormalized' gives the same for both."""
    return np.stack([ITEM, 10 * ITEM])


@pytest.mark.parametrize("normalization_type", sorted(EXPECTED))
def test_normalization_types_by_hand(normalization_type):
    out = Visualizer(normalization_type=normalization_type)(batch(), imshow=False)
    assert out.shape == (2, 3, 1, 2)
    np.testing.assert_allclose(out[0, :, 0], EXPECTED[normalization_type], rtol=1e-12, atol=1e-15)
    scale = 10 if normalization_type == "unnormalized" else 1
    np.testing.assert_allclose(out[1, :, 0], np.array(EXPECTED[normalization_type]) * scale, rtol=1e-12)


def test_default_normalization_and_edge_cases():
    viz = Visualizer()
    np.testing.assert_allclose(viz(batch(), imshow=False)[0, :, 0], EXPECTED["unsigned_max_positive_centered"])
    one = ITEM[None, :1]
    np.testing.assert_allclose(viz(one, imshow=False)[0, 0, 0], [0.5, -1.0])  # 1 channel: unsigned_max
    combined = viz(batch(), imshow=False, combine_channels=True)
    np.testing.assert_allclose(combined[0, 0, 0], [1.0, -0.375])  # channel means [4/3, -0.5] / (4/3)
    zeros = np.zeros((1, 1, 2, 2))
    assert (viz(zeros, imshow=False) == 0).all()
    assert (viz(zeros, imshow=False, normalization_type="unsigned_max_positive_centered") == 0.5).all()
    assert np.isnan(viz(np.array([[[[1.0, np.nan]]]]), imshow=False)).all()


def test_channels_last_and_tensors_agree():
    data = np.random.default_rng(1).normal(size=(3, 3, 5, 4))
    viz = Visualizer(normalization_type="signed_max", blur=1.0)
    first = viz(data, imshow=False)
    last = viz(data.transpose(0, 2, 3, 1), imshow=False)
    explicit = Visualizer(normalization_type="signed_max", blur=1.0, dim_order="channels_last")(
        data.transpose(0, 2, 3, 1), imshow=False)
    np.testing.assert_allclose(last, first.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(explicit, last)
    tensor = viz(torch.tensor(data, requires_grad=True), imshow=False)
    assert isinstance(tensor, np.ndarray)
    np.testing.assert_allclose(tensor, first)
    np.testing.assert_allclose(viz(data, imshow=False, return_tiled=True),
                               viz(data.transpose(0, 2, 3, 1), imshow=False, return_tiled=True))
    # float32 stays float32 through the normalisation
    assert viz(data.astype(np.float32), imshow=False).dtype == np.float32


def test_ambiguous_order_defaults_to_channels_first():
    data = np.random.default_rng(2).normal(size=(1, 3, 3, 3))
    out = Visualizer(normalization_type="magnitude_sum")(data, imshow=False)
    np.testing.assert_allclose(out.sum(axis=(2, 3)), 1.0)  # per channel along axis 1


def _blur_by_hand(image, sigma):
    """One 2-D image, scipy's gaussian_filter written out: symmetric padding, explicit sums."""
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(image, radius, mode="symmetric")
    rows = np.array([[padded[i, j:j + 2 * radius + 1] @ taps for j in range(image.shape[1])]
                     for i in range(padded.shape[0])])
    return np.array([[rows[i:i + 2 * radius + 1, j] @ taps for j in range(image.shape[1])]
                     for i in range(image.shape[0])])


def test_blur_by_hand_and_per_channel():
    data = np.random.default_rng(3).normal(size=(2, 3, 6, 5))
    original = data.copy()
    blurred = vu.gaussian_blur(data, 1.3)
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(blurred[n, c], _blur_by_hand(data[n, c], 1.3), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(data, original)  # not in place (TruLens blurred the caller's array)
    np.testing.assert_allclose(vu.gaussian_blur(np.full((1, 1, 4, 4), 2.5), 10.0), 2.5)  # radius 40 > size
    out = Visualizer(normalization_type="unnormalized", blur=1.3)(data, imshow=False)
    np.testing.assert_allclose(out, blurred)
    np.testing.assert_array_equal(data, original)


def test_blur_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    image = np.random.default_rng(4).normal(size=(9, 7))
    for sigma in (0.5, 2.0, 10.0):
        np.testing.assert_allclose(vu.gaussian_blur(image[None, None], sigma)[0, 0],
                                   ndimage.gaussian_filter(image, sigma), atol=1e-12)


@pytest.mark.parametrize("n, grid", [(1, (1, 1)), (3, (1, 3)), (5, (2, 3)), (7, (2, 4)), (10, (3, 4))])
def test_tiler_shapes(n, grid):
    images = np.arange(n * 2 * 3 * 3, dtype=np.float32).reshape(n, 3, 2, 3)
    tiled = Tiler().tile(images)
    assert tiled.shape == (grid[0] * 2, grid[1] * 3, 3) and tiled.dtype == np.float64
    np.testing.assert_array_equal(Tiler().tile(images.transpose(0, 2, 3, 1)), tiled)
    last = n - 1  # row-major placement, zero fill after the last image
    row, col = divmod(last, grid[1])
    np.testing.assert_array_equal(tiled[row * 2:row * 2 + 2, col * 3:col * 3 + 3], images[last].transpose(1, 2, 0))
    assert not tiled[row * 2:, (col + 1) * 3:].any()


def test_tiler_squeezes_only_the_channel():
    assert Tiler().tile(np.ones((4, 1, 5, 6))).shape == (10, 12)
    assert Tiler().tile(torch.ones(1, 1, 1, 6)).shape == (1, 6)  # TruLens: (6,)
    assert Tiler(dim_order="channels_last").tile(np.ones((2, 1, 6, 1))).shape == (1, 12)


def _x():
    """Images (1, 3, 2, 2) whose per-item [0, 1] scaling is the identity: pixel values 0 .. 1."""
    return np.array([[[[0.0, 0.25], [0.5, 1.0]]] * 3])


def test_mask_threshold_and_opacity():
    x = _x()
    attributions = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])  # -> (a - 1) / 3 = 0, 1/3, 2/3, 1; median 0.5
    out = MaskVisualizer(blur=0)(attributions, x, imshow=False, return_tiled=False)
    np.testing.assert_allclose(out, np.array([[0.2, 0.2], [1.0, 1.0]]) * x)
    out = MaskVisualizer(blur=0, threshold=0.25, masked_opacity=0.0)(attributions, x, imshow=False)
    assert out.shape == (2, 2, 3)  # tiled, channels last
    np.testing.assert_allclose(out[..., 0], np.array([[0, 1], [1, 1]]) * x[0, 0])


def test_mask_positive_only_and_attr_as_opacity():
    x = _x()
    attributions = np.array([[[[-3.0, 1.0], [2.0, 0.0]]]])
    # positive_only (the documented default, which TruLens' constructor drops): [0, 1, 2, 0] / 2
    opacity = MaskVisualizer(blur=0, use_attr_as_opacity=True)(attributions, x, imshow=False, return_tiled=False)
    np.testing.assert_allclose(opacity, np.array([[0, 0.5], [1, 0]]) * x)
    # without it: (a + 3) / 5
    opacity = MaskVisualizer(blur=0, use_attr_as_opacity=True, positive_only=False)(
        attributions, x, imshow=False, return_tiled=False)
    np.testing.assert_allclose(opacity, np.array([[0, 0.8], [1, 0.6]]) * x)
    # threshold=None in the constructor also means "attribution as opacity" (TruLens' code path)
    same = MaskVisualizer(blur=0, threshold=None)(attributions, x, imshow=False, return_tiled=False)
    np.testing.assert_allclose(same, np.array([[0, 0.5], [1, 0]]) * x)
    # thresholded, positive only: percentile 50 of [0, .5, 1, 0] is 0.25 -> unmask 0.5 and 1
    masked = MaskVisualizer(blur=0)(attributions, x, imshow=False, return_tiled=False)
    np.testing.assert_allclose(masked, np.array([[0.2, 1], [1, 0.2]]) * x)
    # per-call overrides win over the constructor
    masked = MaskVisualizer(blur=0)(attributions, x, imshow=False, return_tiled=False, positive_only=False,
                                    masked_opacity=0.0)
    np.testing.assert_allclose(masked, np.array([[0, 1], [1, 0]]) * x)  # median of [0, .8, 1, .6] is 0.7


def test_mask_per_channel_blur_and_orders():
    rng = np.random.default_rng(5)
    x, attributions = rng.random((3, 3, 6, 6)), rng.normal(size=(3, 3, 6, 6))
    viz = MaskVisualizer(blur=1.0, combine_channels=False)
    first = viz(attributions, x, imshow=False, return_tiled=False)
    last = viz(attributions.transpose(0, 2, 3, 1), torch.tensor(x.transpose(0, 2, 3, 1)), imshow=False,
               return_tiled=False)
    np.testing.assert_allclose(last, first.transpose(0, 2, 3, 1))
    # by hand: blur, clip, scale per item, threshold per item over all channels
    a = np.maximum(vu.gaussian_blur(attributions, 1.0), 0)
    a = (a - a.min(axis=(1, 2, 3), keepdims=True)) / (a - a.min(axis=(1, 2, 3), keepdims=True)).max(
        axis=(1, 2, 3), keepdims=True)
    xs = (x - x.min(axis=(1, 2, 3), keepdims=True))
    xs = xs / xs.max(axis=(1, 2, 3), keepdims=True)
    cut = np.array([np.percentile(item, 50) for item in a])[:, None, None, None]
    np.testing.assert_allclose(first, np.maximum(a > cut, 0.2) * xs)
    assert viz(attributions, x, imshow=False).shape == (6, 18, 3)  # 3 items -> 1 x 3


def test_heatmap_returns_normalized_mean_and_blends(tmp_path):
    rng = np.random.default_rng(6)
    x, attributions = rng.random((2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
    viz = HeatmapVisualizer(blur=0.0)
    heat = viz(attributions, x, imshow=False)
    mean = attributions.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(heat, mean / np.abs(mean).max(axis=(1, 2, 3), keepdims=True))
    tiled = viz(attributions, x, imshow=False, return_tiled=True)
    assert tiled.shape == (4, 10)
    # opacity 0: the images scaled to [0, 1] per item; opacity 1: the colour-mapped heatmap
    path = tmp_path / "under.png"
    viz(attributions, x, output_file=path, imshow=False, overlay_opacity=0.0)
    xs = (x - x.min(axis=(1, 2, 3), keepdims=True))
    xs = xs / xs.max(axis=(1, 2, 3), keepdims=True)
    expected = np.round(Tiler().tile(xs) * 255).astype(np.uint8)
    np.testing.assert_array_equal(_read(path), expected)
    path = tmp_path / "over.png"
    viz(attributions, x, output_file=path, imshow=False, overlay_opacity=1.0, cmap="viridis")
    scaled = (tiled - tiled.min()) / (tiled.max() - tiled.min())
    np.testing.assert_array_equal(_read(path), colormaps.apply(scaled, "viridis"))


def test_output_file_png(tmp_path):
    data = np.random.default_rng(7).normal(size=(5, 1, 3, 4))
    path = tmp_path / "viz.png"
    tiled = Visualizer()(data, output_file=str(path), imshow=False, return_tiled=True)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB" and image.size == (12, 6)
        pixels = np.asarray(image)
    scaled = (tiled - tiled.min()) / (tiled.max() - tiled.min())  # imshow's autoscale, zero fill included
    np.testing.assert_array_equal(pixels, colormaps.apply(scaled, "hotcold"))
    rgb = tmp_path / "rgb.png"
    out = Visualizer(normalization_type="01")(np.random.default_rng(8).random((2, 3, 4, 4)), output_file=rgb,
                                              imshow=False, return_tiled=True)
    np.testing.assert_array_equal(_read(rgb), np.round(out * 255).astype(np.uint8))
    masked = tmp_path / "mask.png"
    MaskVisualizer(blur=0)(np.ones((1, 1, 2, 2)), _x(), output_file=masked, imshow=False)
    assert _read(masked).shape == (2, 2, 3)


def test_display_with_matplotlib():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure()
    Visualizer()(np.ones((1, 1, 3, 3)), imshow=False, fig=fig)
    assert len(fig.axes[0].images) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Agg: "cannot show the figure"
        MaskVisualizer(blur=0)(np.ones((1, 1, 2, 2)), _x(), imshow=True)
    plt.close("all")


def test_import_and_use_without_matplotlib(tmp_path):
    code = ("import sys, numpy as np\n"
            "import xaifast.visualizations as v, xaifast.colormaps\n"
            f"v.Visualizer()(np.random.rand(2, 1, 4, 4), imshow=False, output_file={str(tmp_path / 'a.png')!r})\n"
            "v.HeatmapVisualizer()(np.random.rand(1, 3, 4, 4), np.random.rand(1, 3, 4, 4), imshow=False)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'scipy')]\n"
            "assert not bad, bad\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


class _Stop(torch.nn.Module):
    def forward(self, x):
        raise AssertionError("the forward pass should have stopped at the layer")


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 5, 3, padding=1), _Stop()).double()


def _grad_times_input(net, x, select):
    x = x.clone().requires_grad_(True)
    activation = net[2](net[1](net[0](x)))
    (gradient,) = torch.autograd.grad(select(activation).sum(), x)
    return (gradient * x).detach().numpy()


def test_channel_influence_is_gradient_times_input():
    net, x = _net(), torch.rand(2, 3, 6, 6, dtype=torch.float64)
    expected = _grad_times_input(net, x, lambda y: y[:, 1])
    for layer in ("2", net[2], 2):  # name, module, index into named_modules() without the root
        np.testing.assert_allclose(ChannelMaskVisualizer(net, layer, 1).attributions(x), expected, rtol=1e-12)
    both = _grad_times_input(net, x, lambda y: y[:, 1] + y[:, 3])
    np.testing.assert_allclose(ChannelMaskVisualizer(net, "2", [1, 3]).attributions(x.numpy()), both, rtol=1e-12)
    peak = _grad_times_input(net, x, lambda y: y[:, 0].amax(dim=(1, 2)))
    viz = ChannelMaskVisualizer(net, "2", 0, agg_fn=lambda a: a.amax(dim=(1, 2)))
    np.testing.assert_allclose(viz.attributions(x), peak, rtol=1e-12)


def test_channel_influence_linear_doi_and_dense_layer():
    net, x = _net(), torch.rand(1, 3, 5, 5, dtype=torch.float64)
    total = 0
    for i in range(10):  # TruLens' LinearDoi: (1 - i/9) x, zero baseline, times x
        point = ((1 - i / 9) * x).requires_grad_(True)
        (gradient,) = torch.autograd.grad(net[2](net[1](net[0](point)))[:, 2].sum(), point)
        total = total + gradient
    viz = ChannelMaskVisualizer(net, "2", 2, doi="linear")
    np.testing.assert_allclose(viz.attributions(x), (total / 10 * x).numpy(), rtol=1e-12)
    dense = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 4))
    x = torch.rand(2, 3, 2, 2)
    expected = torch.autograd.functional.jacobian(lambda v: dense(v)[:, 3].sum(), x) * x
    np.testing.assert_allclose(ChannelMaskVisualizer(dense, 1, 3).attributions(x), expected.numpy(), rtol=1e-6)


def test_channel_mask_visualizer_end_to_end(tmp_path):
    net, x = _net(), torch.rand(2, 3, 6, 6, dtype=torch.float64)
    shifted = x - 0.5
    viz = ChannelMaskVisualizer(net, "2", 4, blur=1.0, threshold=0.3)
    out = viz(x, x_preprocessed=shifted, output_file=tmp_path / "c.png", imshow=False)
    expected = MaskVisualizer(blur=1.0, threshold=0.3)(viz.attributions(shifted), x, imshow=False)
    np.testing.assert_allclose(out, expected)
    assert out.shape == (6, 12, 3) and _read(tmp_path / "c.png").shape == (6, 12, 3)
    untiled = viz(x, imshow=False, return_tiled=False, masked_opacity=0.0)
    assert untiled.shape == (2, 3, 6, 6)


def test_bad_input():
    data = np.zeros((1, 3, 2, 2))
    with pytest.raises(ValueError, match="attributions"):
        Visualizer()(np.zeros((3, 2, 2)), imshow=False)
    with pytest.raises(ValueError, match="normalization_type"):
        Visualizer(normalization_type="max")
    with pytest.raises(ValueError, match="normalization_type"):
        Visualizer()(data, imshow=False, normalization_type="l2")
    with pytest.raises(ValueError, match="combine_channels"):
        Visualizer()(np.zeros((1, 5, 7, 7)), imshow=False)
    with pytest.raises(ValueError, match="cmap"):
        Visualizer(cmap="viridiss")
    with pytest.raises(TypeError, match="cmap"):
        Visualizer(cmap=3)
    with pytest.raises(ValueError, match="blur"):
        Visualizer(blur=-1)
    with pytest.raises(ValueError, match="dim_order"):
        Visualizer(dim_order="NCHW")
    with pytest.raises(TypeError, match="attributions"):
        Visualizer()(np.zeros((1, 1, 2, 2), dtype=bool), imshow=False)
    with pytest.raises(ValueError, match="attributions"):
        Visualizer()(np.zeros((0, 1, 2, 2)), imshow=False)
    with pytest.raises(ValueError, match="output_file"):
        Visualizer()(data, imshow=False, output_file="no_extension")
    with pytest.raises(ValueError, match="a must hold at least one"):
        Tiler().tile(np.zeros((0, 1, 2, 2)))
    with pytest.raises(ValueError, match="overlay_opacity"):
        HeatmapVisualizer(overlay_opacity=1.5)
    with pytest.raises(ValueError, match="x must hold"):
        HeatmapVisualizer()(data, np.zeros((1, 3, 2, 3)), imshow=False)
    with pytest.raises(ValueError, match="attributions .* x"):
        MaskVisualizer()(np.zeros((1, 3, 2, 2)), np.zeros((1, 3, 4, 4)), imshow=False)
    with pytest.raises(ValueError, match="x must have 1, 3 or 4"):
        MaskVisualizer()(np.zeros((1, 1, 2, 2)), np.zeros((1, 2, 2, 2)), imshow=False)
    with pytest.raises(ValueError, match="threshold"):
        MaskVisualizer(threshold=2)
    with pytest.raises(ValueError, match="masked_opacity"):
        MaskVisualizer()(data, data, imshow=False, masked_opacity=-0.1)
    net = _net()
    with pytest.raises(TypeError, match="model"):
        ChannelMaskVisualizer(object(), "2", 0)
    with pytest.raises(ValueError, match="layer 'conv9'"):
        ChannelMaskVisualizer(net, "conv9", 0)
    with pytest.raises(ValueError, match="layer"):
        ChannelMaskVisualizer(net, 17, 0)
    with pytest.raises(ValueError, match="layer"):
        ChannelMaskVisualizer(net, torch.nn.ReLU(), 0)
    with pytest.raises(TypeError, match="channel"):
        ChannelMaskVisualizer(net, "2", 1.5)
    with pytest.raises(ValueError, match="doi"):
        ChannelMaskVisualizer(net, "2", 0, doi="gaussian")
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="channel 9"):
        ChannelMaskVisualizer(net, "2", 9).attributions(x)
    with pytest.raises(ValueError, match="channel_axis"):
        ChannelMaskVisualizer(net, "2", 0, channel_axis=7).attributions(x)
    with pytest.raises(ValueError, match="x_preprocessed"):
        ChannelMaskVisualizer(net, "2", 0)(x, x_preprocessed=x[:, :, :2], imshow=False)
