"""ReLUContext, DeConvNetContext and GuidedBackpropContext: every ReLU form, nesting, restoring."""

import pytest
import torch
from _models import RELU_FORMS, FormNet, form_net_as_sequential, quietly, seeded_input, torchray

from xaifast.attribution.common import ReLUContext
from xaifast.attribution.deconvnet import DeConvNetContext, DeConvNetReLU, deconvnet
from xaifast.attribution.guided_backprop import GuidedBackpropContext, GuidedBackpropReLU, guided_backprop

pytestmark = pytest.mark.filterwarnings("error")

X = [-1.0, 0.0, 2.0, 3.0]
GRAD_OUT = [5.0, 5.0, 5.0, -5.0]
# Gradient reaching x through each rule for the X and GRAD_OUT above.
EXPECTED = {
    None: [0.0, 0.0, 5.0, -5.0],  # plain autograd: relu'(0) = 0
    DeConvNetContext: [5.0, 5.0, 5.0, 0.0],  # clamp(g, 0), whatever x
    GuidedBackpropContext: [0.0, 5.0, 5.0, 0.0],  # zero where x < 0 (x == 0 passes), clamp(g, 0)
}


def relu_gradient(form):
    """Forward and backward through ``form``; return (forward values, gradient at x)."""
    x = torch.tensor(X, requires_grad=True)
    h = x * 1  # a non-leaf, so the in-place forms are allowed
    result = RELU_FORMS[form](h)
    result.backward(torch.tensor(GRAD_OUT))
    return result.detach(), x.grad


@pytest.mark.parametrize("form", list(RELU_FORMS))
@pytest.mark.parametrize("context", [DeConvNetContext, GuidedBackpropContext])
def test_every_relu_form_gets_the_rule(form, context):
    with context():
        values, grad = relu_gradient(form)
    torch.testing.assert_close(values, torch.tensor(X).clamp(min=0))
    torch.testing.assert_close(grad, torch.tensor(EXPECTED[context]))
    values, grad = relu_gradient(form)  # plain autograd is back after exit
    torch.testing.assert_close(grad, torch.tensor(EXPECTED[None]))


@pytest.mark.parametrize("form", ["nn.ReLU(inplace)", "F.relu_", "Tensor.relu_", "torch.relu_"])
def test_inplace_forms_modify_their_input(form):
    with GuidedBackpropContext():
        h = torch.tensor(X) * 1
        returned = RELU_FORMS[form](h)
        assert returned is h
        torch.testing.assert_close(h, torch.tensor(X).clamp(min=0))


def test_inplace_form_on_a_view():
    x = torch.tensor(X, requires_grad=True)
    with DeConvNetContext():
        h = x * 1
        h[:2].relu_()
        h.backward(torch.tensor(GRAD_OUT))
    torch.testing.assert_close(x.grad, torch.tensor([5.0, 5.0, 5.0, -5.0]))


def test_contexts_nest_innermost_wins():
    with DeConvNetContext():
        with GuidedBackpropContext():
            torch.testing.assert_close(relu_gradient("F.relu")[1], torch.tensor(EXPECTED[GuidedBackpropContext]))
            with DeConvNetContext():
                torch.testing.assert_close(relu_gradient("Tensor.relu")[1], torch.tensor(EXPECTED[DeConvNetContext]))
            torch.testing.assert_close(relu_gradient("nn.ReLU")[1], torch.tensor(EXPECTED[GuidedBackpropContext]))
        torch.testing.assert_close(relu_gradient("torch.relu_")[1], torch.tensor(EXPECTED[DeConvNetContext]))
    torch.testing.assert_close(relu_gradient("nn.ReLU(inplace)")[1], torch.tensor(EXPECTED[None]))


def test_same_context_object_reentered():
    context = GuidedBackpropContext()
    with context as entered:
        assert entered is context
        with context:
            pass
        torch.testing.assert_close(relu_gradient("F.relu")[1], torch.tensor(EXPECTED[GuidedBackpropContext]))
    torch.testing.assert_close(relu_gradient("F.relu")[1], torch.tensor(EXPECTED[None]))


@pytest.mark.parametrize("context", [DeConvNetContext, GuidedBackpropContext])
def test_exception_inside_restores_plain_relu(context):
    net = FormNet("Tensor.relu_")

    def broken(x):
        net(x)
        raise RuntimeError("model failure")

    with pytest.raises(RuntimeError, match="model failure"):
        with context():
            broken(torch.randn(1, 3, 16, 16))
    torch.testing.assert_close(relu_gradient("Tensor.relu_")[1], torch.tensor(EXPECTED[None]))


def test_relu_context_with_a_custom_function():
    class Doubling(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, grad):
            return 2 * grad

    for form in ("F.relu", "F.relu(inplace)", "Tensor.relu_"):
        with ReLUContext(Doubling):
            _, grad = relu_gradient(form)
        torch.testing.assert_close(grad, 2 * torch.tensor(GRAD_OUT))


@pytest.mark.parametrize("bad", [DeConvNetReLU.apply, torch.relu, 42, torch.nn.ReLU])
def test_relu_context_rejects_non_function_classes(bad):
    with pytest.raises(TypeError, match="relu_func must be a torch.autograd.Function subclass"):
        ReLUContext(bad)


def test_rule_functions_match_torchray():
    tr_deconv, tr_guided = torchray("attribution.deconvnet"), torchray("attribution.guided_backprop")
    pairs = [(DeConvNetReLU, tr_deconv.DeConvNetReLU), (GuidedBackpropReLU, tr_guided.GuidedBackpropReLU)]
    for ours, theirs in pairs:
        x = seeded_input(50).requires_grad_(True)
        x.data[:5] = 0  # exact zeros take the `input < 0` branch's other side
        grad_out = seeded_input(50, seed=2)
        ours.apply(x).backward(grad_out)
        ours_grad, x.grad = x.grad, None
        theirs.apply(x).backward(grad_out)
        torch.testing.assert_close(ours_grad, x.grad, rtol=0, atol=0)


@pytest.mark.parametrize("form", list(RELU_FORMS))
@pytest.mark.parametrize("method, module", [(deconvnet, "attribution.deconvnet"),
                                            (guided_backprop, "attribution.guided_backprop")])
@pytest.mark.parametrize("layer", ["", "conv1"])
def test_models_with_every_relu_form_match_torchray(form, method, module, layer):
    # TorchRay only catches torch.relu/torch.relu_, so its reference model uses nn.ReLU.
    theirs = getattr(torchray(module), method.__name__)
    net = FormNet(form)
    reference = form_net_as_sequential(net)
    x = seeded_input(2, 3, 16, 16)
    ours = method(net, x.clone(), [1, 3], saliency_layer=layer)
    expected = quietly(theirs, reference, x.clone(), [1, 3], saliency_layer="0" if layer else "")
    torch.testing.assert_close(ours, expected)
