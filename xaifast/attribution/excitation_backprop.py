r"""The *excitation backprop* method (Zhang et al., ECCV 2016) and its contrastive variant.

Excitation backprop is a backpropagation method: it changes the backward rule of the linear
layers of the network. For a layer ``y = f(x, W)`` (convolution, linear, average pooling,
adaptive average pooling; 1-D, 2-D or 3-D) the signal ``p`` reaching the output goes back as

    p' = x * f*(x, W+, p / (f(x, W+) + eps)),    W+ = max(W, 0),  eps = 1e-20

where ``f*`` is the usual backward (vector-Jacobian product) with respect to ``x``: each input
receives the share of each output's signal that it contributes through the positive weights
(the bias is left out). For non-negative inputs the signal is conserved: what leaves a layer
sums to what entered it. Batch normalisation passes the signal through unchanged, and a skip
connection written with :func:`eltwise_sum` (or :class:`EltwiseSum`) divides it between its
inputs in proportion to their values.

Example::

    from xaifast.attribution.excitation_backprop import excitation_backprop
    saliency_map = excitation_backprop(model, x, target=category_id,
                                       saliency_layer='features.9')

or, by hand::

    from xaifast.attribution.common import Probe, get_module
    from xaifast.attribution.excitation_backprop import ExcitationBackpropContext
    probe = Probe(get_module(model, 'features.9'), target='output')
    with ExcitationBackpropContext():
        y = model(x)
        y[0, category_id].backward()
    saliency_map = probe.data[0].grad.sum(1, keepdim=True)
    probe.remove()

Skip connections must be marked, or they pass the signal back whole to both branches. For
torchvision ResNets call :func:`update_resnet`; in any other model use the module or the
function in place of ``+``::

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
            self.skip = EltwiseSum()

        def forward(self, x):
            return torch.relu(self.skip(self.conv(x), x))   # not self.conv(x) + x

The contrastive variant (:func:`contrastive_excitation_backprop`) first sends back the signal
of the target with the classifier's weights negated, records it at ``contrast_layer``, then
runs again with the true weights and subtracts that record at ``contrast_layer``, keeping the
positive part of the map at ``saliency_layer``.

Unlike TorchRay, nothing is patched: a ``TorchFunctionMode`` catches the layers however they
are called (modules, ``torch.nn.functional``, ``torch.conv2d``, functions bound before the
context, :func:`eltwise_sum` imported by name); no parameter gradient is computed (TorchRay
computes and throws them away); ``W+`` is computed once per weight and version; importing
this module does not need torchvision.

References:
    J. Zhang, Z. Lin, J. Brandt, X. Shen and S. Sclaroff, *Top-down Neural Attention by
    Excitation Backprop*, ECCV 2016, https://arxiv.org/abs/1608.00507
"""

__all__ = [
    "contrastive_excitation_backprop",
    "eltwise_sum",
    "excitation_backprop",
    "ExcitationBackpropContext",
]

import torch
import torch.nn as nn

from ._checks import check_callable, check_module, check_resize, check_resize_mode, check_tensor
from ._excitation_rules import (ExcitationMode, PositiveWeightCache, _basic_block_forward,  # noqa: F401
                                _bottleneck_forward, _check_called, _classifier, _flip, _forward,
                                _get_classifier_layer, _gradient_of, _is_bottleneck,
                                _is_resnet_block, eltwise_sum)
from ._probe import _InjectContrast
from .common import Probe, _attribution_state, _find_layer, _resize, get_backward_gradient, saliency


class EltwiseSumFunction(torch.autograd.Function):
    """Element-wise sum of its inputs as an autograd Function, with plain gradients.

    Kept for TorchRay compatibility; excitation backprop does not see it. Use
    :func:`eltwise_sum` or :class:`EltwiseSum` to mark a skip connection.

    Example:
        >>> EltwiseSumFunction.apply(torch.ones(2), torch.ones(2))
        tensor([2., 2.])
    """

    @staticmethod
    def forward(ctx, *inputs):
        ctx.num_inputs = len(inputs)
        total = inputs[0]
        for x in inputs[1:]:
            total = total + x
        return total

    @staticmethod
    def backward(ctx, grad_output):
        return (grad_output,) * ctx.num_inputs


class EltwiseSum(nn.Module):
    """A skip connection (element-wise sum) as a module: ``EltwiseSum()(a, b) == a + b``.

    Inside an :class:`ExcitationBackpropContext` it shares the signal between its inputs in
    proportion to their values (see :func:`eltwise_sum`).

    Shape:
        inputs: tensors of one shape; output: that shape.

    Example:
        >>> EltwiseSum()(torch.ones(1, 2), torch.ones(1, 2))
        tensor([[2., 2.]])
    """

    def forward(self, *inputs):
        return eltwise_sum(*inputs)


def update_resnet(model, debug=False):
    """Mark the skip connections of a torchvision-style ResNet with :class:`EltwiseSum`.

    Every block with the attributes of torchvision's ``BasicBlock`` (``conv1``, ``bn1``,
    ``relu``, ``conv2``, ``bn2``, ``downsample``) or ``Bottleneck`` (also ``conv3``, ``bn3``)
    gets a ``skip = EltwiseSum()`` submodule and a forward that computes what torchvision's does
    with ``self.skip(out, identity)`` in place of ``out += identity``. The model is changed in
    place; its outputs are unchanged.

    Unlike TorchRay, which imports torchvision and checks ``isinstance(model, ResNet)``, the
    blocks are recognised by structure, so torchvision is not needed and ResNet-like models
    built the same way work too; a model without such blocks raises ``ValueError`` (TorchRay:
    ``AssertionError``).

    Args:
        model (torch.nn.Module): the ResNet.
        debug (bool): print the name of every updated block. Default: ``False``.

    Returns:
        torch.nn.Module: ``model`` itself.

    Example:
        >>> import torchvision  # doctest: +SKIP
        >>> model = update_resnet(torchvision.models.resnet18())  # doctest: +SKIP
        >>> model.layer1[0].skip  # doctest: +SKIP
        EltwiseSum()
    """
    check_module("model", model)
    updated = 0
    for name, module in list(model.named_modules()):  # adds submodules as it goes
        if not _is_resnet_block(module):
            continue
        forward = _bottleneck_forward if _is_bottleneck(module) else _basic_block_forward
        module.skip = EltwiseSum()
        module.forward = forward.__get__(module)
        updated += 1
        if debug:
            print(f"update_resnet: {name} now sums its skip connection with EltwiseSum")
    if updated == 0:
        raise ValueError("update_resnet: model has no ResNet block (a module with conv1, bn1, "
                         "relu, conv2, bn2 and downsample attributes, as torchvision's BasicBlock "
                         "and Bottleneck); mark skip connections with EltwiseSum by hand")
    return model


class ExcitationBackpropContext:
    """Context manager inside which the layers backpropagate with excitation-backprop rules.

    Caught: ``conv1d/2d/3d`` and ``linear`` (weighted rule), ``avg_pool1d/2d/3d`` and
    ``adaptive_avg_pool1d/2d/3d`` (the same rule without weights), ``batch_norm`` (signal passed
    through) and :func:`eltwise_sum` (signal shared in proportion to the inputs), whether they
    are called through ``nn`` modules, ``torch.nn.functional``, ``torch`` or names bound before
    the context. Only the gradient with respect to the layer's input is computed: weights and
    biases get none, even if they require grad. Gradients computed in the context follow the
    rules also if ``backward`` runs after it exits.

    Unlike TorchRay, which replaces attributes of ``torch.nn.functional`` and of its own module,
    nothing is patched: the rules come from a ``torch.overrides.TorchFunctionMode``, contexts
    nest, and leaving the ``with`` block, also by an exception, restores plain gradients. ``W+``
    is cached per weight and weight version (:attr:`positive_weights`) for the life of the
    ``with`` block. Like TorchRay's, the rules assume non-negative layer inputs (as after a
    ReLU) and do not clamp them.

    Args:
        enable (bool): apply the rules; ``False`` leaves plain gradients. Default: ``True``.
        debug (bool): print ``EBP <function>`` for every caught call. Default: ``False``.

    Attributes:
        positive_weights (PositiveWeightCache): ``W+`` of the weights seen in backward passes.

    Example:
        >>> layer = torch.nn.Linear(2, 1)
        >>> with torch.no_grad():
        ...     _ = layer.weight.copy_(torch.tensor([[1.0, 3.0]]))
        >>> x = torch.tensor([[2.0, 2.0]], requires_grad=True)
        >>> with ExcitationBackpropContext():
        ...     layer(x).backward(torch.ones(1, 1))
        >>> x.grad  # the signal 1 shared as 1*2 : 3*2
        tensor([[0.2500, 0.7500]])
    """

    def __init__(self, enable=True, debug=False):
        self.enable = bool(enable)
        self.debug = bool(debug)
        self.positive_weights = PositiveWeightCache()
        self._modes = []

    def __enter__(self):
        mode = ExcitationMode(self.enable, self.debug, self.positive_weights)
        mode.__enter__()
        self._modes.append(mode)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self._modes.pop().__exit__(exc_type, exc_value, traceback)
        if not self._modes:
            self.positive_weights.forget()
        return False  # never swallow the exception


def gradient_to_excitation_backprop_saliency(x):
    """Excitation-backprop map: the excitation summed over the channels.

    As TorchRay's code (its docstring promises a clamp at zero that the code does not do),
    the sum is not clamped.

    Args:
        x (Tensor): ``(N, C, ...)`` activation with a ``.grad``.

    Returns:
        Tensor: ``(N, 1, ...)``, ``sum_c x.grad[:, c]``.

    Example:
        >>> x = torch.zeros(1, 2, 1, 1, requires_grad=True)
        >>> x.grad = torch.tensor([0.25, -0.5]).view(1, 2, 1, 1)
        >>> gradient_to_excitation_backprop_saliency(x).flatten()
        tensor([-0.2500])
    """
    check_tensor("x", x)
    if x.grad is None:
        raise ValueError("x has no gradient: run the backward pass first")
    return torch.sum(x.grad, 1, keepdim=True)


def gradient_to_contrastive_excitation_backprop_saliency(x):
    """Contrastive excitation-backprop map: the channel sum of the excitation, clamped at 0.

    Args:
        x (Tensor): ``(N, C, ...)`` activation with a ``.grad``.

    Returns:
        Tensor: ``(N, 1, ...)``, ``max(sum_c x.grad[:, c], 0)``.

    Example:
        >>> x = torch.zeros(1, 2, 1, 2, requires_grad=True)
        >>> x.grad = torch.tensor([[1.0, -2.0], [0.5, 0.5]]).view(1, 2, 1, 2)
        >>> gradient_to_contrastive_excitation_backprop_saliency(x).flatten()
        tensor([1.5000, 0.0000])
    """
    check_tensor("x", x)
    if x.grad is None:
        raise ValueError("x has no gradient: run the backward pass first")
    return torch.clamp(torch.sum(x.grad, 1, keepdim=True), min=0)


def excitation_backprop(*args, context_builder=ExcitationBackpropContext,
                        gradient_to_saliency=gradient_to_excitation_backprop_saliency, **kwargs):
    """Excitation-backprop saliency: :func:`~xaifast.attribution.common.saliency` under
    :class:`ExcitationBackpropContext`, summing the excitation over channels.

    Takes and returns what :func:`~xaifast.attribution.common.saliency` does (``model``,
    ``input`` ``(N, C, H, W)``, ``target``, ``saliency_layer=''``, ``resize=False``,
    ``resize_mode='bilinear'``, ``smooth=0``, ``debug=False``, ...). The map is
    ``(N, 1, h, w)`` at ``saliency_layer`` (the input by default).

    Unlike TorchRay, a ``context_builder`` other than :class:`ExcitationBackpropContext` (or a
    subclass) raises ``ValueError`` rather than an ``AssertionError``, and an in-place ReLU
    after a probed layer works (TorchRay issue #20).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(),
        ...                             torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 5))
        >>> excitation_backprop(model, torch.rand(1, 3, 8, 8), 2, saliency_layer='1').shape
        torch.Size([1, 1, 6, 6])
    """
    if not (isinstance(context_builder, type) and issubclass(context_builder, ExcitationBackpropContext)):
        raise ValueError(f"context_builder must be ExcitationBackpropContext, got {context_builder!r}")
    return saliency(*args, context_builder=context_builder,
                    gradient_to_saliency=gradient_to_saliency, **kwargs)


def contrastive_excitation_backprop(model, input, target, saliency_layer, contrast_layer,
                                    classifier_layer=None, resize=False, resize_mode="bilinear",
                                    get_backward_gradient=get_backward_gradient, debug=False):
    """Contrastive excitation-backprop saliency map at ``saliency_layer``.

    1. Runs the model and sends back the target's signal with the weights of
       ``classifier_layer`` negated, as far as ``contrast_layer``, recording the excitation
       ``c`` there.
    2. Sends back the target's signal with the true weights, subtracting ``c`` at
       ``contrast_layer`` (not clamped, as TorchRay).
    3. The map is ``max(sum_c excitation, 0)`` at ``saliency_layer``
       (:func:`gradient_to_contrastive_excitation_backprop_saliency`), resized if asked.

    ``saliency_layer`` should come before ``contrast_layer`` in the network, and
    ``contrast_layer`` before the classifier.

    Unlike TorchRay, the model runs once, not twice (both passes use its one graph; TorchRay's
    second run computes the same values, the model being in ``eval()`` mode), and the first pass
    stops at ``contrast_layer``. Unlike TorchRay, which leaves every parameter with
    ``requires_grad=False`` and the model in ``eval()`` mode, both are restored (also when the
    model raises), as are the classifier's weights; debug probes are detached before returning;
    unknown layer names, a ``classifier_layer`` that is not a convolution or linear layer, and
    other bad arguments raise ``ValueError``/``TypeError`` naming them; ``resize_mode`` may be
    any ``F.interpolate`` mode.

    Args:
        model (torch.nn.Module): the model, ``(N, C, H, W)`` -> ``(N, K)`` or ``(N, K, h, w)``.
        input (Tensor): ``(N, C, H, W)`` input batch.
        target (int, sequence or Tensor): class index (for every image), one per image, or a
            tensor with the output's shape used as the backward gradient.
        saliency_layer (str or torch.nn.Module): layer whose output gets the map.
        contrast_layer (str or torch.nn.Module): layer whose output gets the contrast.
        classifier_layer (str or torch.nn.Module, optional): the layer whose weights are
            negated. Default: ``None``, the last Conv1d/2d/3d or Linear layer (by the order of
            ``model.named_parameters()``).
        resize (bool or tuple): ``True`` resizes the map to the input's ``(H, W)``; a
            ``(width, height)`` pair to that size. Default: ``False``.
        resize_mode (str): ``F.interpolate`` mode. Default: ``'bilinear'``.
        get_backward_gradient (callable): ``(output, target)`` -> gradient of the output.
            Default: :func:`~xaifast.attribution.common.get_backward_gradient`.
        debug (bool): also return probes of every module. Default: ``False``.

    Returns:
        Tensor or tuple: the ``(N, 1, h, w)`` map, or ``(map, probes)`` if ``debug``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                             torch.nn.Conv2d(4, 4, 3), torch.nn.ReLU(),
        ...                             torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5))
        >>> contrastive_excitation_backprop(model, torch.rand(1, 3, 8, 8), 2,
        ...                                 saliency_layer='1', contrast_layer='3').shape
        torch.Size([1, 1, 6, 6])
    """
    check_module("model", model)
    check_tensor("input", input)
    check_resize("resize", resize)
    check_resize_mode("resize_mode", resize_mode)
    check_callable("get_backward_gradient", get_backward_gradient)
    saliency_module = _find_layer(model, saliency_layer, "saliency_layer")
    contrast_module = _find_layer(model, contrast_layer, "contrast_layer")
    classifier = _classifier(model, classifier_layer)

    with _attribution_state(model, debug) as (probes, debug_probes):
        context = ExcitationBackpropContext()
        with context:
            # One forward for both passes (TorchRay runs the model twice; with the model in
            # eval() mode both runs compute the same values).
            contrast_probe = Probe(contrast_module, target="output")
            saliency_probe = Probe(saliency_module, target="output")
            probes.extend([contrast_probe, saliency_probe])
            output = _forward(model, input, contrast_probe, "contrast_layer", contrast_layer)
            _check_called(saliency_probe, "saliency_layer", saliency_layer)
            contrasted = contrast_probe.data[0]
            if not isinstance(contrasted, torch.Tensor) or not contrasted.is_floating_point():
                raise ValueError(f"contrast_layer {contrast_layer!r} got no excitation: its output is not a "
                                 "floating tensor the model output depends on")
            gradient = get_backward_gradient(output, target)
            # Pass 1, with the classifier's weights negated: only down to contrast_layer
            # (autograd.grad runs just the part of the graph between the two), graph kept.
            _flip(classifier.weight, context)
            try:
                (contrast,) = torch.autograd.grad(output, contrasted, gradient.clone(), retain_graph=True,
                                                  allow_unused=True)
            finally:
                _flip(classifier.weight, context)
            if contrast is None:
                raise ValueError(f"contrast_layer {contrast_layer!r} got no excitation: the model output "
                                 "does not depend on it")
            contrast_probe.contrast = [contrast]
            contrasted.register_hook(_InjectContrast(contrast, contrast_probe.non_negative_contrast))
            # Pass 2, true weights, the contrast subtracted at contrast_layer.
            output.backward(gradient)

        probed = _gradient_of(saliency_probe, "saliency_layer", saliency_layer)
        saliency_map = gradient_to_contrastive_excitation_backprop_saliency(probed)
        saliency_map = _resize(input, saliency_map, resize, resize_mode, "resize", "resize_mode")

    if debug:
        return saliency_map, debug_probes
    return saliency_map
