"""Pointing game (TorchRay semantics, batched) and RISE's deletion/insertion metrics."""

import importlib.util
import os
import sys
import types
import warnings

import pytest
import torch
from torch import nn

from xaifast.benchmark.evaluation import auc, deletion_insertion
from xaifast.benchmark.pointing_game import PointingGame, pointing_game, pointing_hits, saliency_to_point


def _torchray_pointing_game():
    """TorchRay's PointingGame class, loaded from its file with stand-ins for torchvision.

    ``torchray.benchmark`` imports torchvision (not installed here); the class itself does not use it.
    """
    spec = importlib.util.find_spec("torchray")
    if spec is None:
        pytest.skip("torchray is not installed")
    path = os.path.join(os.path.dirname(spec.origin), "benchmark", "pointing_game.py")
    stubs = {"torchvision": types.ModuleType("torchvision"),
             "torchray.benchmark": types.ModuleType("torchray.benchmark"),
             "torchray.benchmark.datasets": types.ModuleType("torchray.benchmark.datasets")}
    stubs["torchvision"].datasets = types.SimpleNamespace()
    stubs["torchray.benchmark"].__path__ = [os.path.dirname(path)]
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # torchray's own import of its VERSION
            importlib.import_module("torchray")
        module_spec = importlib.util.spec_from_file_location("torchray.benchmark.pointing_game", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
    return module.PointingGame


# --------------------------------------------------------------------------------------------
# Pointing game
# --------------------------------------------------------------------------------------------

def _square_mask(height=40, width=40, top=10, left=10, size=5):
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top:top + size, left:left + size] = True
    return mask


def test_evaluate_hand_computed():
    game = PointingGame(3, tolerance=15)
    mask = _square_mask()                     # rows and columns 10..14
    assert game.evaluate(mask, (12, 12)) == 1  # inside
    assert game.evaluate(mask, (28, 12)) == 1  # 14 px right of column 14: 14 < 15
    assert game.evaluate(mask, (29, 12)) == -1  # exactly 15 px: not < 15, a miss
    assert game.evaluate(mask, (14 + 11, 14 + 10)) == 1  # 11^2 + 10^2 = 221 < 225
    assert game.evaluate(mask, (14 + 11, 14 + 11)) == -1  # 242 >= 225
    assert game.evaluate(torch.zeros(5, 5, dtype=torch.bool), (2, 2)) == -1
    # (u, v) is (column, row): a tall thin object.
    thin = torch.zeros(40, 40, dtype=torch.bool)
    thin[:, 0] = True
    assert PointingGame(1, tolerance=2).evaluate(thin, (1, 39)) == 1
    assert PointingGame(1, tolerance=2).evaluate(thin, (39, 1)) == -1


def test_aggregate_and_accuracies():
    game = PointingGame(3)
    for hit, class_id in [(1, 0), (-1, 0), (1, 0), (0, 0), (-1, 1)]:
        game.aggregate(hit, class_id)
    assert game.hits.tolist() == [2, 0, 0] and game.misses.tolist() == [1, 1, 0]
    torch.testing.assert_close(game.class_accuracies, torch.tensor([2 / 3, 0, 0], dtype=torch.float64))
    torch.testing.assert_close(game.accuracy, torch.tensor(2 / 9, dtype=torch.float64))
    assert str(game) == "22.2% [0:66.7% 1: 0.0% 2: 0.0%]"
    game.reset()
    assert game.hits.sum() == 0 and game.misses.sum() == 0


def test_matches_torchray_pointing_game():
    TorchRayGame = _torchray_pointing_game()
    generator = torch.Generator().manual_seed(0)
    ours, theirs = PointingGame(4, tolerance=6), TorchRayGame(4, tolerance=6)
    for trial in range(60):
        mask = torch.rand(23, 31, generator=generator) > 0.97
        point = (int(torch.randint(31, (1,), generator=generator)), int(torch.randint(23, (1,), generator=generator)))
        if trial % 5 == 0:
            point = (point[0] + 0.5, point[1] - 0.5)  # fractional, like TorchRay's centre point
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchRay's meshgrid without `indexing`
            expected = theirs.evaluate(mask, point)
        assert ours.evaluate(mask, point) == expected
        ours.aggregate(expected, trial % 4)
        theirs.aggregate(expected, trial % 4)
    assert torch.equal(ours.class_accuracies, theirs.class_accuracies)
    assert torch.equal(ours.accuracy, theirs.accuracy)
    assert str(ours) == str(theirs)


def test_saliency_to_point_first_maximum():
    s = torch.zeros(2, 1, 4, 6)
    s[0, 0, 1, 4] = s[0, 0, 3, 0] = 2.0         # tie: the first in row-major order wins
    assert saliency_to_point(s).tolist() == [[4, 1], [0, 0]]


def test_pointing_hits_equals_loop():
    generator = torch.Generator().manual_seed(1)
    saliency = torch.rand(16, 1, 30, 26, generator=generator)
    saliency[3] = 0                              # all ties: the point is (0, 0)
    masks = torch.zeros(16, 30, 26, dtype=torch.bool)
    for n in range(16):
        top, left = torch.randint(0, 25, (2,), generator=generator).tolist()
        masks[n, top:top + 5, left % 22:left % 22 + 4] = True
    for tolerance in (0, 1, 5, 15):
        game = PointingGame(1, tolerance=tolerance)
        expected = []
        for n in range(16):
            index = int(saliency[n].flatten().argmax())
            expected.append(game.evaluate(masks[n], (index % 26, index // 26)) == 1)
        assert pointing_hits(saliency, masks, tolerance).tolist() == expected
        assert pointing_hits(saliency[:, 0], masks, tolerance).tolist() == expected


def test_pointing_game_equals_pointing_game_class():
    generator = torch.Generator().manual_seed(2)
    saliency = torch.rand(20, 1, 24, 24, generator=generator)
    masks = torch.rand(20, 24, 24, generator=generator) > 0.98
    class_ids = torch.randint(0, 3, (20,), generator=generator)   # class 3 never appears
    game = PointingGame(4, tolerance=4)
    for n in range(20):
        game.aggregate(game.evaluate(masks[n], saliency_to_point(saliency[n:n + 1])[0].tolist()), int(class_ids[n]))
    accuracy, per_class = pointing_game(saliency, masks, class_ids, num_classes=4, tolerance=4)
    assert torch.equal(per_class, game.class_accuracies)
    assert torch.equal(accuracy, game.accuracy)
    assert per_class[3] == 0


def test_pointing_bad_input():
    with pytest.raises(ValueError, match="masks"):
        pointing_hits(torch.rand(2, 1, 8, 8), torch.zeros(2, 8, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="saliency"):
        pointing_hits(torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="saliency"):
        pointing_hits(torch.full((1, 1, 4, 4), float("nan")), torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="tolerance"):
        pointing_hits(torch.rand(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.bool), tolerance=-1)
    with pytest.raises(ValueError, match="class_ids"):
        pointing_game(torch.rand(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool), [0, 5], num_classes=3)
    with pytest.raises(ValueError, match="class_ids"):
        pointing_game(torch.rand(2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool), [0], num_classes=3)
    with pytest.raises(TypeError, match="num_classes"):
        PointingGame(2.0)
    with pytest.raises(ValueError, match="hit"):
        PointingGame(2).aggregate(2, 0)
    with pytest.raises(ValueError, match="class_id"):
        PointingGame(2).aggregate(1, 2)


# --------------------------------------------------------------------------------------------
# Deletion and insertion
# --------------------------------------------------------------------------------------------

class RegionMean(nn.Module):
    """Two 'classes': the mean of channel 0 over the top-left 4 x 4 region, and its negative."""

    def forward(self, x):
        region = x[:, 0, :4, :4].mean((1, 2))
        return torch.stack((region, -region), 1)


def _region_saliency(reverse=False):
    saliency = torch.zeros(2, 1, 8, 8)
    saliency[:, :, :4, :4] = 1.0
    return -saliency if reverse else saliency


def test_auc_trapezoid():
    torch.testing.assert_close(auc(torch.tensor([[0.0, 1.0], [1.0, 1.0]])), torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(auc(torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0])), torch.tensor(0.875))
    with pytest.raises(ValueError, match="curve"):
        auc(torch.tensor([1.0]))


def test_deletion_known_answer():
    images = torch.ones(2, 3, 8, 8)
    good = deletion_insertion(RegionMean(), images, _region_saliency(), 0, steps=4, score="logit",
                              return_curves=True)
    # The region is the first quarter of the pixels: removed by step 1, the score drops 1 -> 0.
    torch.testing.assert_close(good["curves"], torch.tensor([[1.0, 0, 0, 0, 0]] * 2, dtype=torch.float64))
    torch.testing.assert_close(good["auc"], torch.full((2,), 0.125, dtype=torch.float64))
    torch.testing.assert_close(good["fractions"], torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=torch.float64))
    bad = deletion_insertion(RegionMean(), images, _region_saliency(reverse=True), 0, steps=4, score="logit",
                             return_curves=True)
    # Ranked last: the score stays 1 until the last step.
    torch.testing.assert_close(bad["curves"], torch.tensor([[1.0, 1, 1, 1, 0]] * 2, dtype=torch.float64))
    torch.testing.assert_close(bad["auc"], torch.full((2,), 0.875, dtype=torch.float64))


def test_insertion_known_answer():
    images = torch.ones(2, 3, 8, 8)
    substrate = torch.zeros(1, 3, 1, 1)
    good = deletion_insertion(RegionMean(), images, _region_saliency(), [0, 0], mode="insertion", steps=4,
                              substrate=substrate, score="logit")["auc"]
    bad = deletion_insertion(RegionMean(), images, _region_saliency(reverse=True), [0, 0], mode="insertion",
                             steps=4, substrate=substrate, score="logit")["auc"]
    torch.testing.assert_close(good, torch.full((2,), 0.875, dtype=torch.float64))
    torch.testing.assert_close(bad, torch.full((2,), 0.125, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
@pytest.mark.parametrize("score", ["softmax", "sigmoid", "logit"])
def test_chunking_does_not_change_results(mode, score):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 5)).eval()
    images, saliency = torch.randn(3, 3, 12, 10), torch.rand(3, 1, 12, 10)
    results = [deletion_insertion(model, images, saliency, [0, 2, 4], mode=mode, steps=7, score=score,
                                  batch_size=b, return_curves=True) for b in (1, 5, 64)]
    for other in results[1:]:
        torch.testing.assert_close(other["curves"], results[0]["curves"])
        torch.testing.assert_close(other["auc"], results[0]["auc"])
    if score != "logit":
        assert ((results[0]["auc"] >= 0) & (results[0]["auc"] <= 1)).all()


def test_each_image_on_its_own():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    images, saliency = torch.randn(3, 3, 8, 8), torch.rand(3, 1, 8, 8)
    batched = deletion_insertion(model, images, saliency, [0, 1, 2], mode="insertion", steps=8)["auc"]
    single = torch.cat([deletion_insertion(model, images[n:n + 1], saliency[n:n + 1], n, mode="insertion",
                                           steps=8)["auc"] for n in range(3)])
    torch.testing.assert_close(batched, single)


def test_blur_substrate():
    images = torch.zeros(1, 3, 9, 9)
    images[..., 4, 4] = 1.0
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 9 * 9, 2))
    saliency = torch.rand(1, 1, 9, 9)
    start = deletion_insertion(model, images, saliency, 1, mode="insertion", steps=3, blur_sigma=1.0,
                               score="logit", return_curves=True)["curves"][0, 0]
    from xaifast.utils import imsmooth
    expected = model(imsmooth(images, sigma=1.0, padding_mode="replicate"))[0, 1]
    torch.testing.assert_close(start, expected.double())
    with pytest.raises(ValueError, match="blur_sigma"):
        deletion_insertion(model, images, saliency, 1, mode="insertion", blur_sigma=-1)


def test_ties_are_ranked_row_major_and_deterministic():
    images = torch.ones(1, 3, 8, 8)
    flat = torch.zeros(1, 1, 8, 8)          # every pixel tied: rows from the top
    curve = deletion_insertion(RegionMean(), images, flat, 0, steps=4, score="logit", return_curves=True)["curves"]
    # After 16 pixels (rows 0-1) half the region is gone, after 32 (rows 0-3) all of it.
    torch.testing.assert_close(curve, torch.tensor([[1.0, 0.5, 0, 0, 0]], dtype=torch.float64))


def test_model_mode_restored():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(3 * 4 * 4, 2)).train()
    model[1].eval()
    deletion_insertion(model, torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4), 0, steps=2)
    assert model.training and model[2].training and not model[1].training


def test_deletion_insertion_bad_input():
    model, images, saliency = RegionMean(), torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="mode"):
        deletion_insertion(model, images, saliency, 0, mode="remove")
    with pytest.raises(ValueError, match="score"):
        deletion_insertion(model, images, saliency, 0, score="prob")
    with pytest.raises(ValueError, match="saliency"):
        deletion_insertion(model, images, saliency[:, :, :4], 0)
    with pytest.raises(ValueError, match="saliency"):
        deletion_insertion(model, images, torch.full_like(saliency, float("nan")), 0)
    with pytest.raises(ValueError, match="steps"):
        deletion_insertion(model, images, saliency, 0, steps=0)
    with pytest.raises(ValueError, match="steps"):
        deletion_insertion(model, images, saliency, 0, steps=65)
    with pytest.raises(ValueError, match="target"):
        deletion_insertion(model, images, saliency, [0, 1, 1])
    with pytest.raises(ValueError, match="target"):
        deletion_insertion(model, images, saliency, 2)
    with pytest.raises(TypeError, match="target"):
        deletion_insertion(model, images, saliency, 0.5)
    with pytest.raises(ValueError, match="images"):
        deletion_insertion(model, images[0], saliency, 0)
    with pytest.raises(ValueError, match="substrate"):
        deletion_insertion(model, images, saliency, 0, substrate="noise")
    with pytest.raises(TypeError, match="batch_size"):
        deletion_insertion(model, images, saliency, 0, batch_size=2.0)
