"""xaifast.attribution.excitation_backprop: rules, call forms, contexts, TorchRay parity, state."""

import copy
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _ebp_models import (BasicBlock, Bottleneck, set_inplace, tiny_1d, tiny_3d, tiny_resnet,
                         tiny_vgg, torchray_excitation_backprop)
from torch.nn.functional import conv2d as bound_conv2d  # bound before any context

from xaifast.attribution.common import NullContext, Probe
from xaifast.attribution.excitation_backprop import (
    EltwiseSum, ExcitationBackpropContext, contrastive_excitation_backprop, eltwise_sum,
    excitation_backprop, gradient_to_contrastive_excitation_backprop_saliency,
    gradient_to_excitation_backprop_saliency, update_resnet)
from xaifast.attribution.excitation_backprop import eltwise_sum as bound_eltwise_sum

pytestmark = pytest.mark.filterwarnings("error")

TORCHRAY_TOL = dict(rtol=1e-5, atol=1e-8)


def rand(*shape, seed=1):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def randn(*shape, seed=2):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def torchray_ebp():
    with torchray_excitation_backprop() as module:
        yield module


def assert_parity(ours, theirs):
    scale = theirs.abs().max().item()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6 * scale)


# --------------------------------------------------------------------------- the rules by hand

def expected_rule(layer_with_positive_weights, x, p):
    """x * f*(x, W+, p / (f(x, W+) + 1e-20)) with plain autograd: the independent reference."""
    x_ = x.detach().requires_grad_(True)
    response = layer_with_positive_weights(x_)
    (back,) = torch.autograd.grad(response, x_, p / (response.detach() + 1e-20))
    return x.detach() * back


def _conv_case(dims):
    weight, bias = randn(4, 3, *(3,) * dims), randn(4, seed=3)
    conv = getattr(F, f"conv{dims}d")
    module = getattr(nn, f"Conv{dims}d")(3, 4, 3, padding=1)
    with torch.no_grad():
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return weight, bias, conv, module


def _conv2d_forms():
    weight, bias, _, module = _conv_case(2)
    shape = (2, 3, 6, 6)
    plus = lambda x: F.conv2d(x, weight.clamp(min=0), None, 1, 1)  # noqa: E731
    reflect = copy.deepcopy(module)
    reflect.padding_mode = "reflect"
    return {
        "F.conv2d(keywords)": (shape, lambda x: F.conv2d(input=x, weight=weight, bias=bias, padding=1), plus),
        "torch.conv2d": (shape, lambda x: torch.conv2d(x, weight, bias, padding=1), plus),
        "conv2d bound early": (shape, lambda x: bound_conv2d(x, weight, bias, 1, 1), plus),
        "F.conv2d(no bias)": (shape, lambda x: F.conv2d(x, weight, padding=1), plus),
        # F.pad then F.conv2d: the rule sees the padded input, the same map by linearity
        "nn.Conv2d(reflect)": (shape, reflect, lambda x: F.conv2d(F.pad(x, (1,) * 4, mode="reflect"),
                                                                    weight.clamp(min=0))),
    }


def _linear_forms():
    weight, bias = randn(4, 5), randn(4, seed=3)
    linear = nn.Linear(5, 4)
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    plus = lambda x: F.linear(x, weight.clamp(min=0))  # noqa: E731
    return {
        "nn.Linear": ((3, 5), linear, plus),
        "nn.Linear(3-D input)": ((2, 3, 5), linear, plus),
        "F.linear": ((3, 5), lambda x: F.linear(x, weight, bias), plus),
        "F.linear(keywords)": ((3, 5), lambda x: F.linear(input=x, weight=weight, bias=bias), plus),
    }


def _weighted_forms():
    forms = {}
    for dims in (1, 2, 3):
        weight, bias, conv, module = _conv_case(dims)
        shape = (2, 3) + (6,) * dims
        plus = (lambda c, w: lambda x: c(x, w.clamp(min=0), None, 1, 1))(conv, weight)
        forms[f"nn.Conv{dims}d"] = (shape, module, plus)
        functional = (lambda c, w, b: lambda x: c(x, w, b, 1, 1))(conv, weight, bias)
        forms[f"F.conv{dims}d"] = (shape, functional, plus)
    forms.update(_conv2d_forms())
    forms.update(_linear_forms())
    return forms


def _pool_forms():
    forms = {}
    for dims in (1, 2, 3):
        shape = (2, 3) + (6,) * dims
        avg = getattr(nn, f"AvgPool{dims}d")(2)
        adaptive = getattr(nn, f"AdaptiveAvgPool{dims}d")(4)
        forms[f"nn.AvgPool{dims}d"] = (shape, avg, avg)
        forms[f"nn.AdaptiveAvgPool{dims}d"] = (shape, adaptive, adaptive)
        f_avg = getattr(F, f"avg_pool{dims}d")
        padded = (lambda f: lambda x: f(x, 3, 1, 1))(f_avg)  # kernel 3, stride 1, padding 1
        forms[f"F.avg_pool{dims}d"] = (shape, padded, padded)
    shape = (2, 3, 6, 6)
    forms["F.adaptive_avg_pool2d"] = (shape, lambda x: F.adaptive_avg_pool2d(x, 4), nn.AdaptiveAvgPool2d(4))
    forms["torch._C._nn.adaptive_avg_pool2d"] = (shape, lambda x: torch._C._nn.adaptive_avg_pool2d(x, (4, 4)),
                                                 nn.AdaptiveAvgPool2d(4))
    forms["torch.avg_pool1d"] = ((2, 3, 6), lambda x: torch.avg_pool1d(x, 2), nn.AvgPool1d(2))
    forms["F.avg_pool2d(keywords)"] = (shape, lambda x: F.avg_pool2d(input=x, kernel_size=2), nn.AvgPool2d(2))
    return forms


WEIGHTED_FORMS = _weighted_forms()
POOL_FORMS = _pool_forms()


@pytest.mark.parametrize("form", list(WEIGHTED_FORMS) + list(POOL_FORMS))
def test_every_layer_form_gets_the_rule(form):
    shape, layer, positive_layer = {**WEIGHTED_FORMS, **POOL_FORMS}[form]
    x = rand(*shape).requires_grad_(True)
    with torch.no_grad():
        p = rand(*layer(x).shape, seed=5)
    with ExcitationBackpropContext():
        y = layer(x)
        y.backward(p)
    torch.testing.assert_close(y.detach(), layer(x).detach())  # the forward is unchanged
    expected = expected_rule(positive_layer, x, p)
    torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-7)

    plain = x.detach().requires_grad_(True)
    layer(plain).backward(p)  # plain gradients again after the context
    (reference,) = torch.autograd.grad(layer(x), x, p)
    torch.testing.assert_close(plain.grad, reference)
    assert not torch.allclose(plain.grad, expected)


def _norm_forms():
    mean, var, weight, bias = randn(3) * 0.1, rand(3) + 0.5, rand(3, seed=4) + 2, randn(3, seed=5)
    module = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        module.running_mean.copy_(mean)
        module.running_var.copy_(var)
        module.weight.copy_(weight)
        module.bias.copy_(bias)
    return {
        "nn.BatchNorm2d": module,
        "F.batch_norm": lambda x: F.batch_norm(x, mean, var, weight, bias),
        "F.batch_norm(keywords)": lambda x: F.batch_norm(x, running_mean=mean, running_var=var,
                                                         weight=weight, bias=bias, eps=1e-3),
        "torch.batch_norm": lambda x: torch.batch_norm(x, weight, bias, mean, var, False, 0.1, 1e-5, False),
    }


NORM_FORMS = _norm_forms()


@pytest.mark.parametrize("form", list(NORM_FORMS))
def test_batch_norm_passes_the_signal_through(form):
    layer = NORM_FORMS[form]
    x = rand(2, 3, 4, 4).requires_grad_(True)
    p = rand(2, 3, 4, 4, seed=5)
    with ExcitationBackpropContext():
        y = layer(x)
        y.backward(p)
    torch.testing.assert_close(y.detach(), layer(x).detach())
    torch.testing.assert_close(x.grad, p)


SUM_FORMS = {
    "EltwiseSum": lambda *xs: EltwiseSum()(*xs),
    "eltwise_sum": lambda *xs: eltwise_sum(*xs),
    "eltwise_sum bound early": lambda *xs: bound_eltwise_sum(*xs),
}


@pytest.mark.parametrize("form", list(SUM_FORMS))
@pytest.mark.parametrize("count", [2, 3])
def test_eltwise_sum_shares_in_proportion(form, count):
    inputs = [rand(2, 4, seed=s).requires_grad_(True) for s in range(count)]
    p = rand(2, 4, seed=9)
    with ExcitationBackpropContext():
        total = SUM_FORMS[form](*inputs)
        total.backward(p)
    torch.testing.assert_close(total.detach(), sum(x.detach() for x in inputs))
    for x in inputs:
        torch.testing.assert_close(x.grad, x.detach() / total.detach() * p)
    # Outside the context: a plain sum with plain gradients, as TorchRay's.
    inputs = [x.detach().requires_grad_(True) for x in inputs]
    SUM_FORMS[form](*inputs).backward(p)
    for x in inputs:
        torch.testing.assert_close(x.grad, p)


def test_conservation_by_hand():
    """2-layer linear model, zero biases, non-negative input: the map sums to 1 per image."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        model[0].bias.zero_()
        model[2].bias.zero_()
    x, target = rand(2, 6), [2, 0]
    saliency_map = excitation_backprop(model, x, target)

    w1, w2 = model[0].weight.detach().clamp(min=0), model[2].weight.detach().clamp(min=0)
    hidden = torch.relu(x @ model[0].weight.detach().T)
    p2 = torch.zeros(2, 3)
    p2[0, 2] = p2[1, 0] = 1
    p1 = hidden * ((p2 / (hidden @ w2.T + 1e-20)) @ w2)
    p0 = x * ((p1 / (x @ w1.T + 1e-20)) @ w1)
    torch.testing.assert_close(saliency_map, p0.sum(1, keepdim=True))
    torch.testing.assert_close(saliency_map.flatten(), torch.ones(2))


def test_resnet_conserves_the_signal_through_skips():
    model = update_resnet(tiny_resnet())
    with torch.no_grad():  # all weights non-negative, no bias, batch norm as identity
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.zero_(), module.running_var.fill_(1 - module.eps)
                module.weight.fill_(1), module.bias.zero_()
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.abs_()
                if module.bias is not None:
                    module.bias.zero_()
    saliency_map = excitation_backprop(model, rand(2, 3, 16, 16), [1, 4])
    torch.testing.assert_close(saliency_map.sum((1, 2, 3)), torch.ones(2))


# --------------------------------------------------------------------------- TorchRay parity

@pytest.mark.parametrize("layer, resize, target", [
    ("", False, 3),
    ("2", True, [1, 4]),
    ("module 8", (20, 12), 2),
    ("11", False, torch.tensor([0, 2])),
])
def test_excitation_backprop_matches_torchray(torchray_ebp, layer, resize, target):
    model, x = tiny_vgg(), rand(2, 3, 16, 16)
    ours_model, their_model = copy.deepcopy(model), copy.deepcopy(model)
    ours_layer = ours_model[8] if layer == "module 8" else layer
    their_layer = their_model[8] if layer == "module 8" else layer
    ours = excitation_backprop(ours_model, x.clone(), target, saliency_layer=ours_layer, resize=resize)
    theirs = torchray_ebp.excitation_backprop(their_model, x.clone(), torch.as_tensor(target),
                                              saliency_layer=their_layer, resize=resize)
    assert_parity(ours, theirs)


@pytest.mark.parametrize("build, shape, layer", [
    (tiny_3d, (2, 2, 6, 6, 6), ""),
    (tiny_3d, (2, 2, 6, 6, 6), "2"),
])
def test_excitation_backprop_3d_matches_torchray(torchray_ebp, build, shape, layer):
    model, x = build(), rand(*shape)
    ours = excitation_backprop(copy.deepcopy(model), x.clone(), [1, 3], saliency_layer=layer)
    theirs = torchray_ebp.excitation_backprop(copy.deepcopy(model), x.clone(), torch.tensor([1, 3]),
                                              saliency_layer=layer)
    assert_parity(ours, theirs)


def test_excitation_backprop_1d_matches_torchray_without_pools(torchray_ebp):
    # TorchRay's 1-D pool rule raises ("A view was created in no_grad mode ..."): compare the
    # convolutions and linear layers here; the 1-D pools are checked by hand above.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv1d(4, 4, 3, stride=2),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 7, 5)).eval()
    x = rand(2, 2, 16)
    ours = excitation_backprop(copy.deepcopy(model), x.clone(), [1, 3])
    theirs = torchray_ebp.excitation_backprop(copy.deepcopy(model), x.clone(), torch.tensor([1, 3]))
    assert_parity(ours, theirs)


def test_excitation_backprop_1d_pools_batch_equals_per_image():
    model, x = tiny_1d(), rand(2, 2, 16)
    saliency_map = excitation_backprop(model, x, [1, 3])
    assert saliency_map.shape == (2, 1, 16)
    for i, target in enumerate([1, 3]):
        torch.testing.assert_close(saliency_map[i:i + 1], excitation_backprop(model, x[i:i + 1], target))
    # Non-negative input and signal: the map is non-negative and carries at most the signal 1.
    assert saliency_map.min() >= 0 and (saliency_map.sum((1, 2)) <= 1 + 1e-5).all()


@pytest.mark.parametrize("saliency_layer, contrast_layer, classifier_layer, resize, target", [
    ("2", "8", None, False, 2),
    ("5", "12", "13", True, [1, 4]),
    ("modules", "modules", "modules", (8, 8), 3),
    ("1", "11", "11", False, torch.tensor([0, 2])),
])
def test_contrastive_matches_torchray(torchray_ebp, saliency_layer, contrast_layer, classifier_layer,
                                      resize, target):
    model, x = tiny_vgg(), rand(2, 3, 16, 16)
    results = []
    for run in (contrastive_excitation_backprop, torchray_ebp.contrastive_excitation_backprop):
        copied = copy.deepcopy(model)
        if saliency_layer == "modules":
            layers = copied[5], copied[12], copied[13]
        else:
            layers = saliency_layer, contrast_layer, classifier_layer
        results.append(run(copied, x.clone(), target if run is contrastive_excitation_backprop
                           else torch.as_tensor(target), *layers, resize=resize))
    assert_parity(*results)
    assert results[0].min() >= 0


def test_contrastive_runs_the_model_once():
    model, x = tiny_vgg(), rand(2, 3, 16, 16)
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(1))
    contrastive_excitation_backprop(model, x, 1, "2", "8")
    assert len(calls) == 1  # TorchRay runs it twice; the values would be the same


@pytest.mark.parametrize("method", ["plain", "contrastive"])
def test_channels_last_input_matches_torchray(torchray_ebp, method):
    model, x = tiny_vgg(), rand(2, 3, 16, 16)
    last = x.contiguous(memory_format=torch.channels_last)
    if method == "plain":
        ours = excitation_backprop(copy.deepcopy(model), last, 1, saliency_layer="5")
        theirs = torchray_ebp.excitation_backprop(copy.deepcopy(model), x.clone(), 1, saliency_layer="5")
    else:
        ours = contrastive_excitation_backprop(copy.deepcopy(model), last, 1, "2", "8")
        theirs = torchray_ebp.contrastive_excitation_backprop(copy.deepcopy(model), x.clone(), 1, "2", "8")
    assert_parity(ours, theirs)


@pytest.mark.parametrize("layer", ["", "layer1", "layer1.1.relu", "layer2.0.bn3"])
def test_resnet_matches_torchray(torchray_ebp, layer):
    model, x = tiny_resnet(), rand(2, 3, 16, 16)
    ours = excitation_backprop(update_resnet(copy.deepcopy(model)), x.clone(), [1, 3], saliency_layer=layer)
    theirs_model = set_inplace(torchray_ebp.update_resnet(copy.deepcopy(model)), False)
    theirs = torchray_ebp.excitation_backprop(theirs_model, x.clone(), torch.tensor([1, 3]),
                                              saliency_layer=layer)
    assert_parity(ours, theirs)


def test_resnet_contrastive_matches_torchray(torchray_ebp):
    model, x = tiny_resnet(), rand(2, 3, 16, 16)
    ours = contrastive_excitation_backprop(update_resnet(copy.deepcopy(model)), x.clone(), 2,
                                           "layer1", "layer2", resize=True)
    theirs = torchray_ebp.contrastive_excitation_backprop(torchray_ebp.update_resnet(copy.deepcopy(model)),
                                                          x.clone(), 2, "layer1", "layer2", resize=True)
    assert_parity(ours, theirs)


def test_update_resnet_matches_torchray_forward_and_structure(torchray_ebp):
    model, x = tiny_resnet(), rand(2, 3, 16, 16)
    ours, theirs = update_resnet(copy.deepcopy(model)), torchray_ebp.update_resnet(copy.deepcopy(model))
    assert [n for n, m in ours.named_modules() if isinstance(m, EltwiseSum)] == \
        [n for n, m in theirs.named_modules() if isinstance(m, torchray_ebp.EltwiseSum)]
    with torch.no_grad():
        torch.testing.assert_close(ours(x), model(x))
        torch.testing.assert_close(ours(x), theirs(x))


def test_update_resnet_without_torchvision():
    """The hand-built blocks have torchvision's structure; torchvision is not imported."""
    import sys
    model = tiny_resnet()
    assert update_resnet(model, debug=False) is model
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    assert len(blocks) == 3 and all(isinstance(b.skip, EltwiseSum) for b in blocks)
    assert "torchvision" not in sys.modules or not hasattr(sys.modules["torchvision"], "__file__")
    copied = copy.deepcopy(model)  # the rebound forwards survive a deep copy
    x = rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(copied(x), model(x))
    assert copied.layer1[0].forward.__self__ is copied.layer1[0]


def test_update_resnet_debug_prints(capsys):
    update_resnet(tiny_resnet(), debug=True)
    out = capsys.readouterr().out
    assert "layer1.0" in out and "layer2.0" in out


# --------------------------------------------------------------------------- in-place ReLU (#20)

@pytest.mark.parametrize("layer", ["1", "4", "0"])
def test_inplace_relu_after_probed_layer(torchray_ebp, layer):
    model, x = tiny_vgg(inplace=True), rand(2, 3, 16, 16)
    ours = excitation_backprop(copy.deepcopy(model), x.clone(), 2, saliency_layer=layer)
    theirs = torchray_ebp.excitation_backprop(set_inplace(copy.deepcopy(model), False), x.clone(), 2,
                                              saliency_layer=layer)
    assert_parity(ours, theirs)
    if layer != "0":  # TorchRay issue #20, for reference
        with pytest.raises(RuntimeError, match="in-place"):
            torchray_ebp.excitation_backprop(copy.deepcopy(model), x.clone(), 2, saliency_layer=layer)


def test_inplace_relu_in_resnet_block():
    model, x = update_resnet(tiny_resnet()), rand(2, 3, 16, 16)
    reference = excitation_backprop(set_inplace(copy.deepcopy(model), False), x, 1,
                                    saliency_layer="layer1.0.bn1")
    result = excitation_backprop(model, x, 1, saliency_layer="layer1.0.bn1")
    torch.testing.assert_close(result, reference)
    assert model.layer1[0].relu.inplace


# --------------------------------------------------------------------------- the context

def _plain_and_ebp(model, x, target=1):
    x = x.detach().requires_grad_(True)
    output = model(x)
    output.backward(F.one_hot(torch.tensor([target] * x.shape[0]), output.shape[1]).float())
    return x.grad


def test_contexts_nest_and_restore_torch():
    model, x = tiny_vgg(), rand(1, 3, 16, 16)
    before = {name: getattr(F, name) for name in dir(F)}
    plain = _plain_and_ebp(model, x)
    with ExcitationBackpropContext():
        ebp = _plain_and_ebp(model, x)
    outer = ExcitationBackpropContext()
    with outer:
        with ExcitationBackpropContext():
            torch.testing.assert_close(_plain_and_ebp(model, x), ebp)
        torch.testing.assert_close(_plain_and_ebp(model, x), ebp)
        with outer:  # the same object entered twice
            torch.testing.assert_close(_plain_and_ebp(model, x), ebp)
    torch.testing.assert_close(_plain_and_ebp(model, x), plain)
    assert not torch.allclose(plain, ebp)
    assert {name: getattr(F, name) for name in dir(F)} == before


def test_exception_restores_plain_gradients():
    model, x = tiny_vgg(), rand(1, 3, 16, 16)
    plain = _plain_and_ebp(model, x)
    with pytest.raises(KeyError):
        with ExcitationBackpropContext():
            model(x)
            raise KeyError("boom")
    torch.testing.assert_close(_plain_and_ebp(model, x), plain)


def test_backward_after_exit_keeps_the_rule():
    model, x = tiny_vgg(), rand(1, 3, 16, 16)
    with ExcitationBackpropContext():
        inside = _plain_and_ebp(model, x)
        x2 = x.clone().requires_grad_(True)
        output = model(x2)
    output.backward(F.one_hot(torch.tensor([1]), 5).float())
    torch.testing.assert_close(x2.grad, inside)


def test_enable_false_gives_plain_gradients():
    model, x = tiny_vgg(), rand(1, 3, 16, 16)
    plain = _plain_and_ebp(model, x)
    with ExcitationBackpropContext(enable=False):
        torch.testing.assert_close(_plain_and_ebp(model, x), plain)


def test_debug_prints_each_caught_call(capsys):
    with ExcitationBackpropContext(debug=True):
        _plain_and_ebp(update_resnet(tiny_resnet()), rand(1, 3, 16, 16))
    out = capsys.readouterr().out
    for name in ("conv2d", "batch_norm", "adaptive_avg_pool2d", "linear"):
        assert f"EBP torch.nn.functional.{name}" in out
    assert "EBP xaifast.attribution.excitation_backprop.eltwise_sum" in out


def test_no_parameter_gradients():
    model, x = tiny_vgg(), rand(2, 3, 16, 16)
    assert all(p.requires_grad for p in model.parameters())
    with ExcitationBackpropContext():
        model(x).sum().backward()  # the input needs no gradient: nothing is computed
        grad = _plain_and_ebp(model, x)
    assert grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_one_extra_forward_per_layer_call(monkeypatch):
    from xaifast.attribution import _excitation_rules
    calls = []
    original = _excitation_rules._LayerCall.__call__

    def spy(self, *values):
        calls.append(values[1] if len(values) > 1 else None)
        return original(self, *values)

    monkeypatch.setattr(_excitation_rules._LayerCall, "__call__", spy)
    layer, x, p = nn.Linear(5, 3), rand(4, 5).requires_grad_(True), rand(4, 3, seed=3)
    with ExcitationBackpropContext():
        layer(x).backward(p)
    # The forward with W, then one forward with W+ in the backward pass.
    assert len(calls) == 2 and calls[0] is layer.weight
    torch.testing.assert_close(calls[1], layer.weight.detach().clamp(min=0))
    torch.testing.assert_close(x.grad, expected_rule(
        lambda z: F.linear(z, layer.weight.detach().clamp(min=0)), x, p))


def test_rule_calls_are_not_wrapped_again():
    """Inside a rule the caught functions run as they are, even if a mode is active there."""
    from xaifast.attribution._excitation_rules import ExcitationMode, PositiveWeightCache
    layer, x = nn.Linear(5, 3), rand(4, 5).requires_grad_(True)
    with ExcitationBackpropContext():
        y = layer(x)
    with ExcitationMode(True, False, PositiveWeightCache()):
        # Call the rule's backward directly, under an active mode (no Tensor.backward to pop it).
        (grad,) = y.grad_fn.apply(torch.ones(4, 3))[2:3]
    torch.testing.assert_close(grad, expected_rule(
        lambda z: F.linear(z, layer.weight.detach().clamp(min=0)), x, torch.ones(4, 3)))


def test_positive_weight_cache():
    layer = nn.Linear(5, 3)
    x, p = rand(4, 5), rand(4, 3, seed=3)

    def run():
        x_ = x.clone().requires_grad_(True)
        layer(x_).backward(p)
        return x_.grad

    context = ExcitationBackpropContext()
    with context:
        first_grad = run()
        assert len(context.positive_weights) == 1
        cached = context.positive_weights(layer.weight)
        assert cached is context.positive_weights(layer.weight)
        torch.testing.assert_close(cached, layer.weight.detach().clamp(min=0))
        torch.testing.assert_close(run(), first_grad)
        assert context.positive_weights(layer.weight) is cached  # the backward hit the cache
        with torch.no_grad():
            layer.weight.mul_(-1)  # in place: a new _version
        flipped_grad = run()
        fresh = context.positive_weights(layer.weight)
        assert fresh is not cached
        torch.testing.assert_close(fresh, layer.weight.detach().clamp(min=0))
    assert len(context.positive_weights) == 0  # emptied on exit
    torch.testing.assert_close(flipped_grad, expected_rule(
        lambda z: F.linear(z, layer.weight.detach().clamp(min=0)), x, p))
    assert not torch.allclose(flipped_grad, first_grad)


def test_probe_inside_context():
    model, x = tiny_vgg(), rand(1, 3, 16, 16)
    probe = Probe(model[5], target="output")
    with ExcitationBackpropContext():
        model(x)[0, 2].backward()
    probe.remove()
    reference = excitation_backprop(model, x, 2, saliency_layer="5")
    torch.testing.assert_close(gradient_to_excitation_backprop_saliency(probe.data[0]), reference)


# --------------------------------------------------------------------------- state and errors

class _Trap(nn.Module):
    """Identity that raises in the forward or backward pass when armed."""

    def __init__(self, when=None):
        super().__init__()
        self.when = when

    def forward(self, x):
        if self.when == "forward":
            raise RuntimeError("trap in forward")
        y = x * 1
        if self.when == "backward" and y.requires_grad:
            y.register_hook(lambda grad: (_ for _ in ()).throw(RuntimeError("trap in backward")))
        return y


def _trap_model(when):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), _Trap(when),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    model.train()
    model[2].eval()
    model[0].weight.requires_grad_(False)
    return model


def _state(model):
    return ([p.requires_grad for p in model.parameters()], [m.training for m in model.modules()],
            [p.detach().clone() for p in model.parameters()])


def _assert_state(model, state):
    requires_grad, training, values = _state(model)
    assert requires_grad == state[0]
    assert training == state[1]
    for value, original in zip(values, state[2]):
        assert torch.equal(value, original)


@pytest.mark.parametrize("when", ["forward", "backward"])
@pytest.mark.parametrize("method", ["contrastive", "plain"])
def test_state_restored_when_the_model_raises(when, method):
    model = _trap_model(when)
    state = _state(model)
    with pytest.raises(RuntimeError, match=f"trap in {when}"):
        if method == "contrastive":
            contrastive_excitation_backprop(model, rand(1, 3, 8, 8), 1, "1", "3")
        else:
            excitation_backprop(model, rand(1, 3, 8, 8), 1, saliency_layer="1")
    _assert_state(model, state)
    plain = _plain_and_ebp(_trap_model(None), rand(1, 3, 8, 8))
    torch.testing.assert_close(_plain_and_ebp(_trap_model(None), rand(1, 3, 8, 8)), plain)


def test_contrastive_restores_state_and_detaches_debug_probes():
    model = _trap_model(None)
    state = _state(model)
    saliency_map, probes = contrastive_excitation_backprop(model, rand(2, 3, 8, 8), [1, 2], "1", "3",
                                                           debug=True)
    assert saliency_map.shape == (2, 1, 6, 6)
    _assert_state(model, state)
    assert list(probes) == [name for name, _ in model.named_modules()]
    assert all(probe.module is None for probe in probes.values())


def test_classifier_layer_none_finds_the_last_linear_or_conv():
    from xaifast.attribution.excitation_backprop import _get_classifier_layer
    model = tiny_vgg()
    assert _get_classifier_layer(model) == (model[13], "13")
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.Conv2d(4, 5, 1)),
                          nn.BatchNorm2d(5))
    assert _get_classifier_layer(model) == (model[2][0], "2.0")
    assert _get_classifier_layer(nn.Linear(3, 2))[1] == ""


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(saliency_layer="nope1", contrast_layer="8"), ValueError, "saliency_layer 'nope1'"),
    (dict(saliency_layer="2", contrast_layer="nope2"), ValueError, "contrast_layer 'nope2'"),
    (dict(saliency_layer="2", contrast_layer="8", classifier_layer="nope3"), ValueError,
     "classifier_layer 'nope3'"),
    (dict(saliency_layer="2", contrast_layer="8", classifier_layer="12"), ValueError,
     "classifier_layer '12' must be a Conv1d/2d/3d or Linear layer, got ReLU"),
    (dict(saliency_layer="2", contrast_layer="8", classifier_layer=nn.Linear(2, 2)), ValueError,
     "classifier_layer Linear(in_features=2, out_features=2, bias=True) is not a layer of the model"),
    (dict(saliency_layer=3, contrast_layer="8"), TypeError, "saliency_layer"),
    (dict(saliency_layer="2", contrast_layer="8", resize="yes"), TypeError, "resize"),
    (dict(saliency_layer="2", contrast_layer="8", resize_mode="cubic"), ValueError, "resize_mode"),
])
def test_contrastive_bad_input(kwargs, error, message):
    model = tiny_vgg()
    state = _state(model)
    with pytest.raises(error, match=re.escape(message)):
        contrastive_excitation_backprop(model, rand(1, 3, 16, 16), 1, **kwargs)
    _assert_state(model, state)


class _WithUnusedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        self.unused = nn.ReLU()

    def forward(self, x):
        return self.body(x)


def test_contrastive_bad_input_model_and_layers():
    with pytest.raises(TypeError, match="model"):
        contrastive_excitation_backprop("vgg", rand(1, 3, 16, 16), 1, "2", "8")
    with pytest.raises(ValueError, match="classifier_layer"):  # no linear or conv layer
        contrastive_excitation_backprop(nn.Sequential(nn.ReLU(), nn.Flatten()), rand(1, 3), 1, "0", "1")
    model = _WithUnusedLayer()
    with pytest.raises(ValueError, match="contrast_layer 'unused' was not called"):
        contrastive_excitation_backprop(model, rand(1, 3), 1, "body.1", "unused")
    with pytest.raises(ValueError, match="saliency_layer 'unused' was not called"):
        contrastive_excitation_backprop(model, rand(1, 3), 1, "unused", "body.1")


def test_excitation_backprop_bad_input():
    with pytest.raises(ValueError, match="saliency_layer 'nope'"):
        excitation_backprop(tiny_vgg(), rand(1, 3, 16, 16), 1, saliency_layer="nope")
    with pytest.raises(ValueError, match="context_builder"):
        excitation_backprop(tiny_vgg(), rand(1, 3, 16, 16), 1, context_builder=NullContext)
    with pytest.raises(ValueError, match="x has no gradient"):
        gradient_to_excitation_backprop_saliency(torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match="x has no gradient"):
        gradient_to_contrastive_excitation_backprop_saliency(torch.zeros(1, 2, 3, 3))
    with pytest.raises(TypeError, match="x"):
        gradient_to_excitation_backprop_saliency([1.0])


def test_update_resnet_bad_input():
    with pytest.raises(TypeError, match="model"):
        update_resnet("resnet50")
    with pytest.raises(ValueError, match="no ResNet block"):
        update_resnet(tiny_vgg())


def test_eltwise_sum_needs_an_input():
    with pytest.raises(ValueError, match="eltwise_sum"):
        eltwise_sum()


def test_excitation_backprop_debug_and_smooth():
    model, x = tiny_vgg(), rand(1, 3, 16, 16)
    saliency_map, probes = excitation_backprop(model, x, 1, saliency_layer="5", debug=True, smooth=0.1)
    assert saliency_map.shape == (1, 1, 8, 8)
    assert probes["5"].data[0].grad is not None


def test_module_all_matches_torchray(torchray_ebp):
    import xaifast.attribution.excitation_backprop as ours
    assert sorted(ours.__all__) == sorted(torchray_ebp.__all__)
    for name in ("EltwiseSum", "EltwiseSumFunction", "update_resnet", "_get_classifier_layer",
                 "gradient_to_excitation_backprop_saliency",
                 "gradient_to_contrastive_excitation_backprop_saliency"):
        assert hasattr(ours, name)
