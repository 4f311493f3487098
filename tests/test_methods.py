"""The method registry: every method through one call, same maps as the direct calls, bad input."""

import pytest
import torch
from torch import nn

from xaifast.attribution.excitation_backprop import contrastive_excitation_backprop
from xaifast.attribution.extremal_perturbation import extremal_perturbation
from xaifast.attribution.grad_cam import grad_cam
from xaifast.attribution.gradient import gradient
from xaifast.attribution.rise import rise
from xaifast.methods import LAYER_KEYS, METHODS, center_saliency, explain, infer_layers

from _models import tiny_cnn

# Cheap settings for the slow methods.
FAST = {"rise": dict(num_masks=48, batch_size=16), "extremal_perturbation": dict(max_iter=3)}
TARGETS = [1, 3]


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return tiny_cnn(seed=0)


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def test_registry_names():
    assert list(METHODS) == ["gradient", "deconvnet", "guided_backprop", "grad_cam", "linear_approx",
                             "excitation_backprop", "contrastive_excitation_backprop", "rise",
                             "extremal_perturbation", "center"]


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_batched(method, model, images):
    before = images.clone()
    saliency = explain(method, model, images, TARGETS, **FAST.get(method, {}))
    assert saliency.shape == (2, 1, 16, 16)
    assert saliency.dtype == torch.float32
    assert not saliency.requires_grad
    assert torch.isfinite(saliency).all()
    # The caller's batch is left alone (input-level methods set requires_grad/.grad on their input).
    assert not images.requires_grad and images.grad is None
    assert torch.equal(images, before)


@pytest.mark.parametrize("method", ["gradient", "grad_cam", "rise"])
def test_tensor_and_list_targets_agree(method, model, images):
    a = explain(method, model, images, TARGETS, **FAST.get(method, {}))
    b = explain(method, model, images, torch.tensor(TARGETS), **FAST.get(method, {}))
    assert torch.equal(a, b)


def test_explain_equals_direct_calls(model, images):
    layers = infer_layers(model)
    assert torch.equal(explain("gradient", model, images, TARGETS),
                       gradient(model, images.clone(), TARGETS))
    assert torch.equal(explain("grad_cam", model, images, TARGETS),
                       grad_cam(model, images, TARGETS, saliency_layer=layers["grad_cam"], resize=True))
    assert torch.equal(
        explain("contrastive_excitation_backprop", model, images, TARGETS),
        contrastive_excitation_backprop(model, images, TARGETS, saliency_layer=layers["saliency_layer"],
                                        contrast_layer=layers["contrast_layer"],
                                        classifier_layer=layers["classifier_layer"], resize=True))
    # RISE: the target's channel of the all-class maps.
    all_classes = rise(model, images, num_masks=48, batch_size=16)
    picked = torch.stack([all_classes[n, t] for n, t in enumerate(TARGETS)])[:, None]
    torch.testing.assert_close(explain("rise", model, images, TARGETS, num_masks=48, batch_size=16), picked)
    # Extremal perturbation: areas=[0.1] by default; options reach the method.
    masks, _ = extremal_perturbation(model, images, TARGETS, areas=[0.1], max_iter=3)
    assert torch.equal(explain("extremal_perturbation", model, images, TARGETS, max_iter=3), masks)


def test_extremal_perturbation_sums_areas(model, images):
    masks, _ = extremal_perturbation(model, images, TARGETS, areas=[0.1, 0.3], max_iter=2)
    summed = explain("extremal_perturbation", model, images, TARGETS, areas=[0.1, 0.3], max_iter=2)
    torch.testing.assert_close(summed, masks.reshape(2, 2, 1, 16, 16).sum(1))


def test_single_target_for_every_image(model, images):
    assert torch.equal(explain("guided_backprop", model, images, 3), explain("guided_backprop", model, images, [3, 3]))


def test_layers_from_model_attribute_and_argument(model, images):
    layers = {"grad_cam": "1", "saliency_layer": "1", "contrast_layer": "4", "classifier_layer": "7"}
    direct = grad_cam(model, images, TARGETS, saliency_layer="1", resize=True)
    assert torch.equal(explain("grad_cam", model, images, TARGETS, layers=layers), direct)
    model.xaifast_layers = layers
    try:
        assert torch.equal(explain("grad_cam", model, images, TARGETS), direct)
    finally:
        del model.xaifast_layers


def test_infer_layers():
    model = tiny_cnn()
    assert infer_layers(model) == {"grad_cam": "4", "saliency_layer": "1", "contrast_layer": "5",
                                   "classifier_layer": "7"}
    assert set(infer_layers(model)) == set(LAYER_KEYS)


def test_resize_false_option_still_gives_input_resolution(model, images):
    saliency = explain("grad_cam", model, images, TARGETS, resize=False)
    assert saliency.shape == (2, 1, 16, 16)


def test_center_baseline():
    s = center_saliency((3, 1, 10, 12))
    assert s.shape == (3, 1, 10, 12) and s.dtype == torch.float32
    assert torch.equal(s[0], s[2])
    # The maximum is TorchRay's centre point (w / 2, h / 2) = (6, 5).
    index = int(s[0, 0].argmax())
    assert (index % 12, index // 12) == (6, 5)
    assert torch.equal(explain("center", tiny_cnn(), torch.rand(3, 3, 10, 12), 0), s)
    with pytest.raises(ValueError, match="sigma"):
        center_saliency((1, 1, 4, 4), sigma=0)


def test_unknown_method(model, images):
    with pytest.raises(ValueError, match="method") as info:
        explain("gradcam", model, images, TARGETS)
    assert "grad_cam" in str(info.value)
    with pytest.raises(TypeError, match="method"):
        explain(3, model, images, TARGETS)


@pytest.mark.parametrize("target, error", [
    ([1, 2, 3], ValueError), (-1, ValueError), (1.5, TypeError), ([1.0, 2.0], TypeError),
    (torch.tensor([1.0, 2.0]), TypeError), ("1", TypeError), (torch.ones(2, 2, dtype=torch.long), ValueError),
])
def test_bad_target(model, images, target, error):
    with pytest.raises(error, match="target"):
        explain("gradient", model, images, target)


def test_target_out_of_range_named(model, images):
    with pytest.raises(ValueError, match="target"):
        explain("gradient", model, images, [0, 5])


@pytest.mark.parametrize("layers", [
    {"grad_cam": "nope"}, {"gradcam": "4"}, {"saliency_layer": "1"},
])
def test_bad_layers(model, images, layers):
    with pytest.raises(ValueError, match="layers"):
        explain("grad_cam", model, images, TARGETS, layers=layers)


def test_layers_not_inferable():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    with pytest.raises(ValueError, match="layers"):
        explain("grad_cam", model, torch.rand(1, 3, 4, 4), 0)
    # Input-level methods need no layers.
    assert explain("gradient", model, torch.rand(1, 3, 4, 4), 0).shape == (1, 1, 4, 4)


def test_bad_input(model):
    with pytest.raises(ValueError, match="x"):
        explain("gradient", model, torch.rand(3, 16, 16), 0)
    with pytest.raises(TypeError, match="x"):
        explain("gradient", model, torch.zeros(1, 3, 16, 16, dtype=torch.long), 0)
    with pytest.raises(TypeError, match="model"):
        explain("gradient", lambda x: x, torch.rand(1, 3, 16, 16), 0)
    with pytest.raises(TypeError, match="progress"):
        explain("rise", model, torch.rand(1, 3, 16, 16), 0, progress="yes")
