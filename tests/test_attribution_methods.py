"""gradient, deconvnet, guided_backprop, grad_cam, linear_approx and common.saliency."""

import copy

import pytest
import torch
import torch.nn as nn
from _models import quietly, seeded_input, tiny_cnn, torchray

from xaifast.attribution.common import NullContext, gradient_to_saliency, saliency
from xaifast.attribution.deconvnet import deconvnet
from xaifast.attribution.grad_cam import grad_cam, gradient_to_grad_cam_saliency
from xaifast.attribution.gradient import gradient
from xaifast.attribution.guided_backprop import guided_backprop
from xaifast.attribution.linear_approx import gradient_to_linear_approx_saliency, linear_approx

pytestmark = pytest.mark.filterwarnings("error")

METHODS = {
    "gradient": gradient,
    "deconvnet": deconvnet,
    "guided_backprop": guided_backprop,
    "linear_approx": linear_approx,
    "grad_cam": grad_cam,
}
OPTIONS = [
    {},
    {"resize": True},
    {"resize": (20, 12), "resize_mode": "bicubic"},
    {"smooth": 0.05},
    {"saliency_layer": "3"},
    {"saliency_layer": "4", "resize": True, "smooth": 0.02},
    {"saliency_layer": "7"},
    {"debug": True},
    {"saliency_layer": "3", "debug": True},
]
GRAD_CAM_OPTIONS = [
    {"saliency_layer": "3"},
    {"saliency_layer": "4"},
    {"saliency_layer": "0", "resize": True},
    {"saliency_layer": "4", "resize": True, "smooth": 0.1},
    {"saliency_layer": "3", "debug": True},
]
CASES = ([(name, options) for name in ("gradient", "deconvnet", "guided_backprop", "linear_approx")
          for options in OPTIONS] + [("grad_cam", options) for options in GRAD_CAM_OPTIONS])


def _compare_probes(ours, theirs):
    assert list(ours) == list(theirs)
    for name in ours:
        mine, reference = ours[name].data[0], theirs[name].data[0]
        torch.testing.assert_close(mine.detach(), reference.detach())
        assert (mine.grad is None) == (reference.grad is None), name
        if mine.grad is not None:
            torch.testing.assert_close(mine.grad, reference.grad)


@pytest.mark.parametrize("name, options", CASES)
@pytest.mark.parametrize("shape, target", [((1, 3, 16, 16), 2), ((2, 3, 16, 16), [4, 1])])
def test_matches_torchray(name, options, shape, target):
    theirs = getattr(torchray(f"attribution.{name}"), name)
    model, x = tiny_cnn(), seeded_input(*shape)
    expected = quietly(theirs, copy.deepcopy(model), x.clone(), target, **options)
    ours = METHODS[name](model, x.clone(), target, **options)
    if options.get("debug"):
        (ours, ours_probes), (expected, their_probes) = ours, expected
        _compare_probes(ours_probes, their_probes)
    torch.testing.assert_close(ours, expected)


# -------------------------------------------------------------------------- hand-computed values
def _linear_model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2, 4)).eval()


def test_gradient_of_a_linear_model():
    model, x = _linear_model(), seeded_input(1, 3, 2, 2)
    weight = model[1].weight[2].detach().reshape(1, 3, 2, 2)
    torch.testing.assert_close(gradient(model, x, 2), weight.abs().amax(1, keepdim=True))
    torch.testing.assert_close(linear_approx(model, x, 2), (x * weight).sum(1, keepdim=True))
    # Without ReLUs the backward rules change nothing.
    torch.testing.assert_close(deconvnet(model, x, 2), gradient(model, x, 2))


def test_grad_cam_of_a_1x1_conv_model():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    x = seeded_input(1, 2, 3, 5)
    # score_t = mean_u a_t(u): d score / d a_k(u) = [k == t] / (H W), so Grad-CAM = relu(a_t) / (H W).
    conv = model[0]
    activation = (conv.weight[1, :, 0, 0].view(1, 2, 1, 1) * x).sum(1, keepdim=True) + conv.bias[1]
    expected = activation.detach().clamp(min=0) / 15
    torch.testing.assert_close(grad_cam(model, x, 1, saliency_layer="0").detach(), expected)
    torch.testing.assert_close(linear_approx(model, x, 1, saliency_layer="0").detach(),
                               activation.detach() / 15)


def test_guided_backprop_and_deconvnet_by_hand():
    # score = w2 . relu(W1 x): the rules act on the gradient reaching the hidden units.
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model[2].weight.copy_(torch.tensor([[2.0, -3.0]]))
    x = torch.tensor([[-1.0, 1.0]])  # hidden pre-activations (-1, 1)
    grad_of = {"gradient": [0.0, -3.0], "deconvnet": [2.0, 0.0], "guided_backprop": [0.0, 0.0]}
    for name, expected in grad_of.items():
        x_run = x.clone()
        METHODS[name](model, x_run, 0, gradient_to_saliency=lambda t: t.grad)
        torch.testing.assert_close(x_run.grad, torch.tensor([expected]))


# ----------------------------------------------------------------------------------- batching
@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("target", [[0, 3, 1], (0, 3, 1), torch.tensor([0, 3, 1])])
def test_batch_equals_per_image_runs(name, target):
    model, x = tiny_cnn(dtype=torch.float64), seeded_input(3, 3, 16, 16, dtype=torch.float64)
    options = {"saliency_layer": "3", "resize": True} if name == "grad_cam" else {"smooth": 0.05}
    batched = METHODS[name](model, x.clone(), target, **options)
    singles = [METHODS[name](model, x[n:n + 1].clone(), int(target[n]), **options) for n in range(3)]
    torch.testing.assert_close(batched, torch.cat(singles))


# --------------------------------------------------------------------------- saliency behaviour
def test_inplace_relu_model_matches_out_of_place():
    x = seeded_input(1, 3, 16, 16)
    for name, options in [("grad_cam", {"saliency_layer": "3"}), ("guided_backprop", {"saliency_layer": "0"}),
                          ("linear_approx", {"saliency_layer": "0"}), ("gradient", {})]:
        ours = METHODS[name](tiny_cnn(inplace=True), x.clone(), 1, **options)
        torch.testing.assert_close(ours, METHODS[name](tiny_cnn(), x.clone(), 1, **options))


def test_input_grad_zeroed_and_left_requiring_grad():
    model, x = tiny_cnn(), seeded_input(1, 3, 16, 16)
    x.grad = torch.full_like(x, 7.0)
    stale = x.grad
    saliency_map = gradient(model, x, 1)
    assert x.requires_grad and x.grad is stale  # zeroed in place, then accumulated
    torch.testing.assert_close(x.grad.abs().amax(1, keepdim=True), saliency_map)


def test_resize_modes_torchray_cannot_do():
    model, x = tiny_cnn(), seeded_input(1, 3, 16, 16)
    small = grad_cam(model, x.clone(), 1, saliency_layer="3")
    for mode in ("nearest", "area"):
        resized = grad_cam(model, x.clone(), 1, saliency_layer="3", resize=True, resize_mode=mode)
        torch.testing.assert_close(resized, nn.functional.interpolate(small, (16, 16), mode=mode))


class _Failing(nn.Module):
    def forward(self, x):
        raise RuntimeError("model failure")


def _stateful_model(fail=False):
    model = tiny_cnn()
    model.train()
    model[3].eval()
    model[0].weight.requires_grad_(False)
    if fail:
        model[6] = _Failing()
    return model


def _state(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()],
            [getattr(m, "inplace", None) for m in model.modules()])


@pytest.mark.parametrize("fail", [False, True])
@pytest.mark.parametrize("name", ["gradient", "guided_backprop"])
@pytest.mark.parametrize("debug", [False, True])
def test_state_restored(fail, name, debug):
    model = _stateful_model(fail)
    model[1].inplace = True
    before = _state(model)
    x = seeded_input(1, 3, 16, 16)
    if fail:
        with pytest.raises(RuntimeError, match="model failure"):
            METHODS[name](model, x, 0, saliency_layer="3", debug=debug)
    else:
        METHODS[name](model, x, 0, saliency_layer="3", debug=debug)
    assert _state(model) == before
    h = torch.tensor([-1.0, 2.0], requires_grad=True)
    torch.relu(h).sum().backward()  # plain ReLU again
    torch.testing.assert_close(h.grad, torch.tensor([0.0, 1.0]))


def test_state_restored_after_bad_target():
    model = _stateful_model()
    before = _state(model)
    with pytest.raises(ValueError, match="target"):
        deconvnet(model, seeded_input(1, 3, 16, 16), 9)
    assert _state(model) == before


def test_gradient_to_saliency_helpers_need_gradients():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gradient_to_grad_cam_saliency(torch.ones(2, 3, requires_grad=True))
    with pytest.raises(ValueError, match="no gradient"):
        gradient_to_grad_cam_saliency(torch.ones(1, 2, 3, 3))
    with pytest.raises(ValueError, match="no gradient"):
        gradient_to_linear_approx_saliency(torch.ones(1, 2, 3, 3))
    with pytest.raises(ValueError, match="no gradient"):
        gradient_to_saliency(torch.ones(1, 2, 3, 3))


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, error, message", [
    ({"input": [[0.0]]}, TypeError, "input must be a torch.Tensor"),
    ({"model": "vgg"}, TypeError, "model must be a torch.nn.Module"),
    ({"saliency_layer": "conv9"}, ValueError, r"saliency_layer 'conv9'.*model.named_modules\(\)"),
    ({"saliency_layer": 3}, TypeError, "saliency_layer"),
    ({"saliency_layer": nn.ReLU()}, ValueError, "saliency_layer .*not called"),
    ({"target": 5}, ValueError, r"target must be a class index in \[0, 5\).*5 classes"),
    ({"target": [0, 1]}, ValueError, r"target .*batch size 1"),
    ({"target": 1.5}, ValueError, "target must hold whole-number"),
    ({"target": "cat"}, TypeError, "target"),
    ({"resize_mode": "bogus"}, ValueError, "resize_mode"),
    ({"resize": 2}, TypeError, "resize must be True, False or a"),
    ({"resize": (4, -1)}, ValueError, "resize"),
    ({"resize": (4, 4, 4)}, ValueError, "resize must give 2 sizes"),
    ({"smooth": -0.1}, ValueError, "smooth"),
    ({"smooth": "a"}, TypeError, "smooth"),
    ({"smooth": float("nan")}, ValueError, "smooth"),
    ({"context_builder": 3}, TypeError, "context_builder"),
    ({"gradient_to_saliency": None}, TypeError, "gradient_to_saliency"),
    ({"get_backward_gradient": "one-hot"}, TypeError, "get_backward_gradient"),
])
def test_saliency_bad_input(kwargs, error, message):
    arguments = {"model": tiny_cnn(), "input": seeded_input(1, 3, 16, 16), "target": 1, **kwargs}
    with pytest.raises(error, match=message):
        saliency(**arguments)


def test_smooth_needs_a_spatial_map():
    with pytest.raises(ValueError, match=r"smooth needs an \(N, 1, H, W\) saliency map.*'7'"):
        gradient(tiny_cnn(), seeded_input(1, 3, 16, 16), 0, saliency_layer="7", smooth=0.1)


def test_fully_convolutional_model_matches_torchray():
    theirs = torchray("attribution.gradient").gradient
    model = tiny_cnn()[:5].append(nn.Conv2d(6, 5, 1)).eval()  # (N, 5, 8, 8) scores
    x = seeded_input(2, 3, 16, 16)
    expected = quietly(theirs, copy.deepcopy(model), x.clone(), [3, 0], resize=True)
    torch.testing.assert_close(gradient(model, x.clone(), [3, 0], resize=True), expected)


def test_gradient_rejects_context_builder():
    with pytest.raises(TypeError, match="context_builder"):
        gradient(tiny_cnn(), seeded_input(1, 3, 16, 16), 0, context_builder=NullContext)


def test_grad_cam_needs_saliency_layer():
    with pytest.raises(TypeError, match="saliency_layer"):
        grad_cam(tiny_cnn(), seeded_input(1, 3, 16, 16), 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        grad_cam(tiny_cnn(), seeded_input(1, 3, 16, 16), 0, saliency_layer="7")


def test_module_all_match_torchray():
    for name in METHODS:
        ours = __import__(f"xaifast.attribution.{name}", fromlist=["__all__"])
        assert ours.__all__ == torchray(f"attribution.{name}").__all__
