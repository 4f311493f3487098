"""xaifast.overlay: the Captum Grad-CAM tutorial overlay, against a numpy version of the recipe."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from xaifast import colormaps
from xaifast.image import palette
from xaifast.overlay import overlay

JET = colormaps.get_table("jet")


def captum_recipe(saliency, image, mode="bicubic", table=JET, weight=0.5):
    """The tutorial, in numpy, with cv2's jet replaced by the jet table (cv2.applyColorMap + [..., ::-1])."""
    height, width = image.shape[:2]
    # LayerAttribution.interpolate(attr, (H, W), mode) is F.interpolate
    up = F.interpolate(torch.as_tensor(saliency)[None, None], (height, width), mode=mode)[0, 0].numpy()
    gray = up.copy()                          # to_gray_image
    gray -= gray.min()
    gray /= gray.max() + np.spacing(1)
    gray *= 255
    heat = table[gray.astype(np.uint8)]
    blend = weight * image.astype(np.float64) + (1 - weight) * heat  # cv2.addWeighted(img, w, heat, 1 - w, 0)
    return np.clip(np.round(blend), 0, 255).astype(np.uint8)


def sample(seed=0, size=(7, 7), shape=(32, 40, 3)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(size).astype(np.float32), rng.integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_matches_the_captum_tutorial_recipe(mode):
    saliency, image = sample()
    got = np.asarray(overlay(torch.from_numpy(saliency), image, mode=mode))
    expected = captum_recipe(saliency, image, mode=mode)
    assert got.shape == expected.shape == image.shape
    np.testing.assert_array_equal(got, expected)  # .5 ties too: both round half to even, as cv2 does


def test_weights_ends_and_constant_map():
    saliency, image = sample(1)
    heat_only = np.asarray(overlay(saliency, image, image_weight=0.0, mode="bicubic"))
    np.testing.assert_array_equal(heat_only, captum_recipe(saliency, image, weight=0.0))
    np.testing.assert_array_equal(np.asarray(overlay(saliency, image, image_weight=1.0)), image)
    flat = np.asarray(overlay(np.full((4, 4), 3.0), image, image_weight=0.0))
    assert (flat == JET[0]).all()  # a constant map is all zeros: the first colour
    extremes = np.asarray(overlay(np.array([[0.0, 1.0]]), np.zeros((1, 2, 3), np.uint8), image_weight=0.0))
    assert extremes[0, 0].tolist() == JET[0].tolist() and extremes[0, 1].tolist() == JET[255].tolist()


def test_batch_per_item_and_image_kinds():
    gen = torch.Generator().manual_seed(2)
    maps = torch.rand(3, 1, 5, 5, generator=gen)
    image = torch.rand(3, 20, 24, generator=gen)  # CHW floats in [0, 1]
    batch = overlay(maps, image)
    assert isinstance(batch, list) and len(batch) == 3 and batch[0].size == (24, 20)
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(batch[i]), np.asarray(overlay(maps[i, 0], image)))
        np.testing.assert_array_equal(np.asarray(batch[i]), np.asarray(overlay(maps[i], image)))
    as_list = overlay(maps, [image] * 3)
    as_tensor = overlay(maps, image.expand(3, -1, -1, -1))
    for a, b, c in zip(batch, as_list, as_tensor):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    hwc = image.permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.asarray(overlay(maps[0, 0], hwc)), np.asarray(batch[0]))
    uint8 = (hwc * 255).round().astype(np.uint8)
    from_pil = overlay(maps[0, 0].numpy(), Image.fromarray(uint8))
    np.testing.assert_array_equal(np.asarray(from_pil), np.asarray(overlay(maps[0, 0], uint8)))
    assert np.abs(np.asarray(from_pil).astype(int) - np.asarray(batch[0])).max() <= 1
    grey = overlay(maps[0, 0], Image.fromarray(uint8[..., 0]))
    assert grey.mode == "RGB" and grey.size == (24, 20)


def test_mean_std_unnormalise_a_model_input():
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 16, 16, generator=gen, dtype=torch.float64)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    model_input = (image - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    maps = torch.rand(1, 1, 4, 4, generator=gen, dtype=torch.float64)
    got = overlay(maps, model_input, mean=mean, std=std)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(overlay(maps, image)[0]))
    with pytest.raises(ValueError, match="mean= and std="):
        overlay(maps, model_input)
    with pytest.raises(ValueError, match="uint8"):
        overlay(maps, np.zeros((16, 16, 3), np.uint8), mean=mean, std=std)
    with pytest.raises(ValueError, match="std must not contain 0"):
        overlay(maps, model_input, mean=mean, std=[1, 0, 1])
    with pytest.raises(ValueError, match="mean must be 1 or 3"):
        overlay(maps, model_input, mean=[0, 0], std=std)


def test_renormalize_like_show_cam_on_image():
    saliency, image = sample(4, shape=(12, 12, 3))
    image = (image // 3).astype(np.uint8)  # a dark image: the re-normalisation brightens it
    got = np.asarray(overlay(saliency, image, image_weight=0.3, renormalize=True))
    up = F.interpolate(torch.from_numpy(saliency)[None, None], (12, 12), mode="bilinear")[0, 0].numpy()
    mask = (up - up.min()) / (up.max() - up.min())   # scale_cam_image
    heat = JET[np.uint8(255 * mask)] / 255.0          # cv2.applyColorMap(np.uint8(255 * mask)), RGB
    cam = 0.7 * heat + 0.3 * image / 255.0
    cam = cam / cam.max()
    assert np.abs(got.astype(int) - np.round(255 * cam)).max() <= 1
    assert got.max() == 255


def test_other_colour_maps():
    saliency, image = sample(5)
    for cmap, table in (("viridis", colormaps.get_table("viridis")), ("bwr", palette("bwr")),
                        ("000,fff", palette("000,fff"))):
        got = np.asarray(overlay(saliency, image, cmap=cmap, mode="bicubic"))
        assert np.abs(got.astype(int) - captum_recipe(saliency, image, table=table)).max() <= 1


def test_device(device):
    saliency, image = sample(6)
    cpu = np.asarray(overlay(saliency, image))
    on_device = np.asarray(overlay(torch.from_numpy(saliency).to(device), torch.from_numpy(image).to(device)
                                   .permute(2, 0, 1)))
    assert np.abs(cpu.astype(int) - on_device).max() <= 1


def test_bad_input_messages():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"saliency must have 1 channel"):
        overlay(torch.rand(2, 2, 4, 4), image)
    with pytest.raises(ValueError, match=r"saliency must be \(h, w\)"):
        overlay(torch.rand(2, 4, 4), image)
    with pytest.raises(ValueError, match=r"saliency must be \(h, w\)"):
        overlay(torch.rand(1, 1, 1, 4, 4), image)
    with pytest.raises(ValueError, match="saliency must not be empty"):
        overlay(torch.rand(0, 1, 4, 4), image)
    with pytest.raises(ValueError, match="saliency must be finite"):
        overlay(torch.tensor([[0.0, float("inf")]]), image)
    with pytest.raises(TypeError, match="saliency"):
        overlay(object(), image)
    with pytest.raises(ValueError, match="mode must be one of"):
        overlay(torch.rand(4, 4), image, mode="cubic")
    with pytest.raises(ValueError, match="image_weight must be in"):
        overlay(torch.rand(4, 4), image, image_weight=1.5)
    with pytest.raises(TypeError, match="image_weight"):
        overlay(torch.rand(4, 4), image, image_weight="0.5")
    with pytest.raises(ValueError, match="cmap 'nope'.*jet"):
        overlay(torch.rand(4, 4), image, cmap="nope")
    with pytest.raises(ValueError, match="image holds 2 images but saliency holds 3"):
        overlay(torch.rand(3, 1, 4, 4), torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="saliency is one map"):
        overlay(torch.rand(4, 4), torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="image of shape .* colour channels"):
        overlay(torch.rand(4, 4), np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="image must be one image"):
        overlay(torch.rand(4, 4), np.zeros(8, np.uint8))
    with pytest.raises(TypeError, match="image must hold real numbers"):
        overlay(torch.rand(4, 4), "cat.png")
