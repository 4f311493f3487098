"""xaifast.attribution.common: probes, patches, target gradients, resizing (TorchRay parity)."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _models import seeded_input, torchray

from xaifast.attribution.common import (NullContext, Patch, Probe, attach_debug_probes,
                                        get_backward_gradient, get_module, get_pointing_gradient,
                                        gradient_to_saliency, resize_saliency)

pytestmark = pytest.mark.filterwarnings("error")


def test_all_matches_torchray():
    import xaifast.attribution.common as common
    assert common.__all__ == torchray("attribution.common").__all__
    for name in ("_wrap_in_list", "_InjectContrast", "_Catch", "_CatchInputs", "_CatchOutputs"):
        assert hasattr(common, name)


# ---------------------------------------------------------------------------------------- Patch
def test_patch_replaces_and_restores():
    original = math.floor
    patch = Patch("math.floor", lambda x: 42)
    assert math.floor(1.5) == 42 and patch.orig_callable is original and patch.attribute == "floor"
    patch.remove()
    patch.remove()  # a second remove does nothing
    assert math.floor is original and patch.target is None


def test_patch_resolves_through_packages_and_classes():
    assert Patch.resolve("torch.nn.functional.conv2d") == (F, "conv2d")
    assert Patch.resolve("torch.Tensor.relu") == (torch.Tensor, "relu")


@pytest.mark.parametrize("target", ["nodots", "", 3])
def test_patch_bad_target(target):
    with pytest.raises(ValueError, match="target"):
        Patch(target, print)


def test_patch_missing_attribute():
    with pytest.raises(ValueError, match="target 'math.nope'"):
        Patch("math.nope", print)


def test_null_context_does_not_swallow():
    with NullContext() as context:
        assert isinstance(context, NullContext)
    with pytest.raises(KeyError):
        with NullContext():
            raise KeyError("x")


# ---------------------------------------------------------------------------------------- Probe
def _frozen(model):
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def test_probe_output_and_input_of_linear():
    torch.manual_seed(0)
    layer = _frozen(nn.Linear(4, 3))
    x = torch.randn(2, 4)
    probe_in, probe_out = Probe(layer, target="input"), Probe(layer, "output")
    layer(x).pow(2).sum().backward()
    assert probe_in.data[0] is x and x.requires_grad  # the input itself, as in TorchRay
    output = probe_out.data[0]
    torch.testing.assert_close(output, F.linear(x, layer.weight, layer.bias))
    torch.testing.assert_close(output.grad, 2 * output.detach())
    torch.testing.assert_close(x.grad, (2 * output.detach()) @ layer.weight)
    probe_in.remove(), probe_out.remove()
    assert not layer._forward_hooks and not layer._forward_pre_hooks


@pytest.mark.parametrize("with_input_grad", [False, True])
def test_probe_followed_by_inplace_relu(with_input_grad):
    # TorchRay raises "a leaf Variable that requires grad is being used in an in-place operation".
    torch.manual_seed(0)
    model = _frozen(nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(12, 2)))
    x = torch.randn(1, 2, 4, 4, requires_grad=with_input_grad)
    probe = Probe(model[0], target="output")
    model(x)[0, 1].backward()
    probe.remove()
    recorded = probe.data[0]
    # Reference: the same network with an out-of-place ReLU, gradient taken at the conv output.
    conv_out = model[0](x).detach().requires_grad_(True)
    model[3](F.relu(conv_out).flatten(1))[0, 1].backward()
    torch.testing.assert_close(recorded.detach(), conv_out.detach())  # values before the ReLU
    torch.testing.assert_close(recorded.grad, conv_out.grad)


def test_probe_input_followed_by_inplace_op():
    model = nn.ReLU(inplace=True)
    holder = nn.Sequential(nn.Identity(), model)
    x = torch.tensor([[-1.0, 2.0]])
    probe = Probe(holder, target="input")
    holder(x).sum().backward()
    assert probe.data[0] is x
    torch.testing.assert_close(x, torch.tensor([[-1.0, 2.0]]))  # the model changed a copy
    torch.testing.assert_close(x.grad, torch.tensor([[0.0, 1.0]]))
    probe.remove()


def test_probe_sets_and_restores_inplace():
    relu = nn.ReLU(inplace=True)
    probe = Probe(relu, target="output")
    assert relu.inplace is False and probe.inplace is True
    x = torch.tensor([-1.0, 2.0])
    relu(x)
    torch.testing.assert_close(x, torch.tensor([-1.0, 2.0]))  # not overwritten while probed
    probe.remove()
    assert relu.inplace is True and probe.module is None
    linear_probe = Probe(nn.Linear(2, 2))
    assert linear_probe.inplace is None and not hasattr(linear_probe.module, "inplace")


def test_probe_keeps_torchray_attributes():
    probe = Probe(nn.Linear(2, 2), "output")
    for name in ("module", "data", "target", "hook", "contrast", "non_negative_contrast", "inplace"):
        assert hasattr(probe, name)
    assert probe.data == [] and probe.contrast == [] and probe.non_negative_contrast is False


@pytest.mark.parametrize("non_negative", [False, True])
def test_probe_contrast(non_negative):
    layer = _frozen(nn.Linear(2, 2))
    layer.weight.copy_(torch.eye(2))
    x = torch.ones(1, 2, requires_grad=True)
    probe = Probe(layer, "output")
    probe.contrast = [torch.tensor([[0.5, 3.0]])]
    probe.non_negative_contrast = non_negative
    layer(x).sum().backward()
    expected = torch.tensor([[0.5, 0.0 if non_negative else -2.0]])
    torch.testing.assert_close(x.grad, expected)
    torch.testing.assert_close(probe.data[0].grad, expected)


def test_probe_tuple_and_namedtuple_outputs():
    import collections
    Pair = collections.namedtuple("Pair", "a b")

    class Split(nn.Module):
        def forward(self, x):
            return Pair(x * 2, x * 3)

    module = Split()
    probe = Probe(module, "output")
    x = torch.ones(2, requires_grad=True)
    out = module(x)
    assert isinstance(out, Pair)
    (out.a + out.b).sum().backward()
    torch.testing.assert_close(probe.data[0].grad, torch.ones(2))
    torch.testing.assert_close(x.grad, torch.full((2,), 5.0))


def test_probe_bad_arguments():
    with pytest.raises(ValueError, match="target must be 'input' or 'output'"):
        Probe(nn.ReLU(), target="inputs")
    with pytest.raises(TypeError, match="module"):
        Probe(lambda x: x)
    relu = nn.ReLU(inplace=True)
    with pytest.raises(ValueError):
        Probe(relu, target="middle")
    assert relu.inplace is True  # a rejected probe leaves the module alone


def test_attach_debug_probes():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    assert attach_debug_probes(model) is None
    probes = attach_debug_probes(model, debug=True)
    assert list(probes) == ["", "0", "1"]
    assert [p.target for p in probes.values()] == ["input", "output", "output"]
    for probe in probes.values():
        probe.remove()


# ----------------------------------------------------------------------------- small functions
def test_get_module():
    model = nn.Sequential(nn.Linear(3, 2), nn.Sequential(nn.ReLU()))
    assert get_module(model, "") is model
    assert get_module(model, "1.0") is model[1][0]
    assert get_module(model, model[0]) is model[0]
    assert get_module(model, "nope") is None
    with pytest.raises(TypeError, match="module"):
        get_module(model, 3)


def test_gradient_to_saliency_matches_torchray():
    tr = torchray("attribution.common")
    x = seeded_input(2, 3, 4, 5).requires_grad_(True)
    (x * seeded_input(2, 3, 4, 5, seed=2)).sum().backward()
    torch.testing.assert_close(gradient_to_saliency(x), tr.gradient_to_saliency(x), rtol=0, atol=0)


@pytest.mark.parametrize("target", [3, [1, 4], (0, 0), torch.tensor([2, 1]), torch.tensor(4)])
@pytest.mark.parametrize("shape", [(2, 5), (2, 5, 3, 2)])
def test_get_backward_gradient_matches_torchray(target, shape):
    tr = torchray("attribution.common")
    pred = seeded_input(*shape)
    torch.testing.assert_close(get_backward_gradient(pred, target), tr.get_backward_gradient(pred, target))


def test_get_backward_gradient_values_and_identity():
    grad = get_backward_gradient(torch.zeros(2, 3, 1, 2), [2, 0])
    assert grad[0, 2].eq(1).all() and grad[1, 0].eq(1).all() and grad.sum() == 4
    full = torch.rand(2, 3)
    assert get_backward_gradient(torch.zeros(2, 3), full) is full
    torch.testing.assert_close(get_backward_gradient(torch.zeros(1, 3), torch.tensor([1], dtype=torch.int32)),
                               torch.tensor([[0.0, 1.0, 0.0]]))


@pytest.mark.parametrize("target, error, message", [
    (5, ValueError, r"target must be a class index in \[0, 5\).*5 classes"),
    (-1, ValueError, r"target .*5 classes"),
    ([0, 1, 2], ValueError, r"target .*batch size 2"),
    (torch.tensor([0.0, 1.0]), TypeError, "target .*integer"),
    ("cat", TypeError, "target"),
])
def test_get_backward_gradient_bad_target(target, error, message):
    with pytest.raises(error, match=message):
        get_backward_gradient(torch.zeros(2, 5), target)


@pytest.mark.parametrize("shape", [(1, 4), (1, 4, 3, 5)])
@pytest.mark.parametrize("normalize", [True, False])
def test_get_pointing_gradient_matches_torchray(shape, normalize):
    tr = torchray("attribution.common")
    pred = seeded_input(*shape)
    expected = tr.get_pointing_gradient(pred, 2, normalize=normalize)
    torch.testing.assert_close(get_pointing_gradient(pred, 2, normalize=normalize), expected)


def test_get_pointing_gradient_batch_is_per_image():
    pred = seeded_input(3, 4, 2, 2)
    batched = get_pointing_gradient(pred, [1, 3, 0])
    for n, label in enumerate([1, 3, 0]):
        torch.testing.assert_close(batched[n:n + 1], get_pointing_gradient(pred[n:n + 1], label))


def test_get_pointing_gradient_bad_input():
    with pytest.raises(ValueError, match="pred_y"):
        get_pointing_gradient(torch.zeros(1, 3, 2), 0)
    with pytest.raises(TypeError, match="pred_y"):
        get_pointing_gradient([[0.0]], 0)
    with pytest.raises(ValueError, match=r"y .*batch size 3"):
        get_pointing_gradient(torch.zeros(3, 4), [0, 1])
    with pytest.raises(ValueError, match=r"y must be a class index in \[0, 4\)"):
        get_pointing_gradient(torch.zeros(1, 4), 4)
    with pytest.raises(TypeError, match="y must be"):
        get_pointing_gradient(torch.zeros(1, 4), 1.0)


# ------------------------------------------------------------------------------------- resizing
@pytest.mark.parametrize("size", [True, (7, 5), [9, 11]])
def test_resize_bilinear_matches_torchray(size):
    tr = torchray("attribution.common")
    reference, small = torch.zeros(1, 3, 12, 10), seeded_input(2, 1, 3, 4)
    torch.testing.assert_close(resize_saliency(reference, small, size, "bilinear"),
                               tr.resize_saliency(reference, small, size, "bilinear"))


@pytest.mark.parametrize("mode", ["nearest", "area", "nearest-exact", "bicubic"])
def test_resize_modes_torchray_rejects(mode):
    small = seeded_input(1, 1, 3, 4)
    resized = resize_saliency(torch.zeros(1, 3, 6, 8), small, True, mode)
    torch.testing.assert_close(resized, F.interpolate(small, (6, 8), mode=mode))
    assert resize_saliency(torch.zeros(1, 3, 6, 8), small, (2, 5), mode).shape == (1, 1, 5, 2)


def test_resize_false_returns_the_map():
    small = torch.ones(1, 1, 2, 2)
    assert resize_saliency(torch.zeros(1, 3, 8, 8), small, False, "bilinear") is small


@pytest.mark.parametrize("size, error, message", [
    (1, TypeError, "size must be True, False or a"),
    (None, TypeError, "size"),
    ((0, 4), ValueError, "size must hold positive"),
    ((4,), ValueError, "size must give 2 sizes"),
    ((2.5, 4), ValueError, "size"),
])
def test_resize_bad_size(size, error, message):
    with pytest.raises(error, match=message):
        resize_saliency(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 2, 2), size, "bilinear")


@pytest.mark.parametrize("mode", ["bogus", "trilinear", None])
def test_resize_bad_mode(mode):
    with pytest.raises(ValueError, match="mode"):
        resize_saliency(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 2, 2), True, mode)


def test_resize_bad_tensors():
    with pytest.raises(TypeError, match="saliency"):
        resize_saliency(torch.zeros(1, 3, 8, 8), [[1.0]], True, "bilinear")
    with pytest.raises(TypeError, match="tensor"):
        resize_saliency("image", torch.ones(1, 1, 2, 2), True, "bilinear")
