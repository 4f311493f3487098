"""The excitation-backprop backward rules and the torch function mode that applies them.

TorchRay swaps attributes of ``torch.nn.functional`` for custom Functions, so it misses
``torch.conv2d``, functions bound before the swap and its own ``eltwise_sum`` imported by name.
Here a ``TorchFunctionMode`` sees each call at dispatch time instead, whatever name the model
used, and sends it to one of three autograd Functions:

* :class:`_ExcitationRule` (convolutions, linear, average pools):
  ``p_in = x * f*(x, W+, p_out / (f(x, W+) + eps))``, where ``f*`` is the vector-Jacobian
  product with respect to ``x`` only. The extra forward with ``W+`` (no bias) runs once, in the
  backward pass; ``W+`` comes from a :class:`PositiveWeightCache`. No gradient is computed for
  the weight or the bias.
* :class:`_PassThroughRule` (batch norm): the signal goes through unchanged.
* :class:`_EltwiseSumRule` (:func:`eltwise_sum`): ``p_i = x_i / (x_1 + ... + x_k) * p_out``.

The rule's own calls (the layer in the forward pass, the ``W+`` forward in the backward pass)
run with the mode suspended on the running thread, so nested modes never wrap them twice.

Also here: the ResNet block forwards of ``update_resnet`` and the layer lookups and checks of
``contrastive_excitation_backprop``.
"""

import threading
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.overrides import TorchFunctionMode, handle_torch_function, has_torch_function

from ..ops.excitation import ebp_normalize, ebp_product
from .common import _find_layer, get_module

_EPSILON = 1e-20  # TorchRay's stabiliser of the normalisation
_state = threading.local()


class _Suspended:
    """While active on this thread, every excitation mode lets the layer calls through."""

    def __enter__(self):
        _state.depth = getattr(_state, "depth", 0) + 1

    def __exit__(self, exc_type, exc_value, traceback):
        _state.depth -= 1
        return False


def _suspended():
    return getattr(_state, "depth", 0) > 0


def eltwise_sum(*inputs):
    """Element-wise sum ``inputs[0] + inputs[1] + ...`` that excitation backprop can see.

    Write a skip connection ``out = eltwise_sum(out, identity)`` (or use the
    :class:`~xaifast.attribution.excitation_backprop.EltwiseSum` module) instead of
    ``out + identity``: inside an
    :class:`~xaifast.attribution.excitation_backprop.ExcitationBackpropContext` the sum then
    divides the excitation between its inputs in proportion to their values,
    ``p_i = x_i / (x_1 + ... + x_k) * p`` (no epsilon, as TorchRay). Outside the context it is
    a plain sum with plain gradients.

    Args:
        *inputs (Tensor): one or more tensors of one shape (broadcasting also works).

    Returns:
        Tensor: their sum.

    Example:
        >>> eltwise_sum(torch.ones(2), torch.full((2,), 3.0))
        tensor([4., 4.])
    """
    if not inputs:
        raise ValueError("eltwise_sum needs at least one input tensor")
    if has_torch_function(inputs):
        return handle_torch_function(eltwise_sum, inputs, *inputs)
    return _sum(inputs)


def _sum(inputs):
    total = inputs[0]
    for x in inputs[1:]:
        total = total + x
    return total


class PositiveWeightCache:
    """``W+ = max(W, 0)`` of each weight, kept while the weight's ``_version`` is unchanged.

    An in-place change of the weight through autograd-visible ops (``weight.mul_(...)`` under
    ``no_grad``, an optimizer step, ``load_state_dict``) bumps ``_version`` and the next lookup
    clamps again. Changes through ``weight.data`` are not seen: call :meth:`forget` after them.
    Entries hold the weight weakly.

    Example:
        >>> cache = PositiveWeightCache()
        >>> weight = torch.tensor([-1.0, 2.0])
        >>> cache(weight) is cache(weight)
        True
    """

    def __init__(self):
        self._entries = {}

    def __call__(self, weight):
        try:
            version = weight._version
        except RuntimeError:  # inference tensors have no version counter: never cache
            return weight.detach().clamp(min=0)
        key = id(weight)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is weight and entry[1] == version:
            return entry[2]
        positive = weight.detach().clamp(min=0)
        self._entries[key] = (weakref.ref(weight), version, positive)
        return positive

    def __len__(self):
        return len(self._entries)

    def forget(self, weight=None):
        """Drop the entry of ``weight`` (every entry if ``None``)."""
        if weight is None:
            self._entries.clear()
        else:
            self._entries.pop(id(weight), None)


class _LayerCall:
    """A caught call ``func(*args, **kwargs)`` that can be rerun with some tensors replaced.

    ``names`` are the leading parameters of ``func`` that are tensors (``'input'``,
    ``'weight'``, ...); each is found among the positional arguments or the keywords.
    """

    __slots__ = ("func", "args", "kwargs", "slots")

    def __init__(self, func, args, kwargs, names):
        self.func = func
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.slots = []
        for index, name in enumerate(names):
            if index < len(args):
                self.slots.append(index)
            elif name in kwargs:
                self.slots.append(name)
            else:
                self.slots.append(None)  # left to its default

    def tensors(self):
        return [None if slot is None else
                self.args[slot] if isinstance(slot, int) else self.kwargs[slot]
                for slot in self.slots]

    def __call__(self, *values):
        args, kwargs = list(self.args), dict(self.kwargs)
        for slot, value in zip(self.slots, values):
            if slot is None:
                continue  # a missing bias stays missing (None)
            if isinstance(slot, int):
                args[slot] = value
            else:
                kwargs[slot] = value
        with _Suspended():
            return self.func(*args, **kwargs)


def excite(call, x, positive_weight, grad_output, weighted):
    """``x * f*(x, W+, grad_output / (f(x, W+) + eps))`` for the layer ``call``.

    One forward with ``W+`` and no bias (``f(x)`` for a pool), one vector-Jacobian product with
    respect to ``x`` only, through the compiled ``ebp_normalize`` and ``ebp_product``.
    """
    x_ = x.detach().requires_grad_(True)
    with torch.enable_grad():
        response = call(x_, positive_weight, None) if weighted else call(x_)
    ratio = ebp_normalize(grad_output, response.detach(), _EPSILON)
    (back,) = torch.autograd.grad(response, x_, ratio)
    return ebp_product(x.detach(), back)


class _ExcitationRule(torch.autograd.Function):
    """Convolution, linear or average-pool call with the excitation-backprop backward."""

    @staticmethod
    def forward(ctx, call, cache, x, weight=None, bias=None):
        ctx.call = call
        ctx.cache = cache
        ctx.weight = weight  # read at backward time (contrastive EBP flips it in between)
        ctx.save_for_backward(x)
        return call(x, weight, bias) if weight is not None else call(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        grads = [None] * len(ctx.needs_input_grad)  # the weight and the bias get none
        if ctx.needs_input_grad[2]:
            (x,) = ctx.saved_tensors
            weighted = ctx.weight is not None
            positive_weight = ctx.cache(ctx.weight) if weighted else None
            grads[2] = excite(ctx.call, x, positive_weight, grad_output, weighted)
        return tuple(grads)


class _PassThroughRule(torch.autograd.Function):
    """Batch-norm call whose backward passes the signal through unchanged."""

    @staticmethod
    def forward(ctx, call, x, *others):
        ctx.num_others = len(others)
        return call(x, *others)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return (None, grad_output) + (None,) * ctx.num_others


class _EltwiseSumRule(torch.autograd.Function):
    """Element-wise sum whose backward shares the signal in proportion to the inputs."""

    @staticmethod
    def forward(ctx, *inputs):
        ctx.save_for_backward(*inputs)
        return _sum(inputs)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        inputs = ctx.saved_tensors
        total = _sum(inputs)
        ratio = ebp_normalize(grad_output, total.expand_as(grad_output), 0.0)  # p / sum, no eps
        grads = []
        for x, needed in zip(inputs, ctx.needs_input_grad):
            if not needed:
                grads.append(None)
                continue
            grad = ebp_product(x.expand_as(ratio), ratio)
            grads.append(grad.sum_to_size(x.shape) if grad.shape != x.shape else grad)
        return tuple(grads)


# Caught functions: func -> (printed name, rule, names of the leading tensor parameters).
_WEIGHTED = ("input", "weight", "bias")
_POOL = ("input",)
_RULES = {}


def _add(func, name, rule, names):
    if func is not None:
        _RULES.setdefault(func, (name, rule, names))


for _name in ("conv1d", "conv2d", "conv3d", "linear"):
    _add(getattr(F, _name), f"torch.nn.functional.{_name}", "weighted", _WEIGHTED)
for _name in ("avg_pool1d", "avg_pool2d", "avg_pool3d",
              "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d"):
    _add(getattr(F, _name), f"torch.nn.functional.{_name}", "pool", _POOL)
    # F.adaptive_avg_pool2d/3d are Python wrappers of these builtins; catch direct calls too.
    _add(getattr(torch._C._nn, _name, None), f"torch.nn.functional.{_name}", "pool", _POOL)
_add(F.batch_norm, "torch.nn.functional.batch_norm", "norm",
     ("input", "running_mean", "running_var", "weight", "bias"))
_add(torch.batch_norm, "torch.batch_norm", "norm",
     ("input", "weight", "bias", "running_mean", "running_var"))
_add(eltwise_sum, "xaifast.attribution.excitation_backprop.eltwise_sum", "sum", ())
del _name


def _requires_grad(tensors):
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


class ExcitationMode(TorchFunctionMode):
    """Torch function mode that gives the caught layer calls the excitation-backprop rules.

    Args:
        enable (bool): apply the rules; if ``False`` the calls run unchanged (plain gradients).
        debug (bool): print ``EBP <function>`` for every caught call.
        cache (PositiveWeightCache): where ``W+`` is kept.
    """

    def __init__(self, enable, debug, cache):
        super().__init__()
        self.enable = enable
        self.debug = debug
        self.cache = cache

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            entry = _RULES.get(func)
        except TypeError:  # an unhashable callable is never a caught layer
            entry = None
        if entry is None or _suspended():
            return func(*args, **kwargs)
        name, rule, names = entry
        if self.debug:
            print(f"EBP {name}")
        if rule == "sum":
            if not self.enable or not torch.is_grad_enabled() or not _requires_grad(args):
                return _sum(args)
            return _EltwiseSumRule.apply(*args)
        if not self.enable or not torch.is_grad_enabled():
            return func(*args, **kwargs)
        call = _LayerCall(func, args, kwargs, names)
        tensors = call.tensors()
        if not _requires_grad(tensors):
            return func(*args, **kwargs)  # nothing to backpropagate through this call
        if rule == "norm":
            return _PassThroughRule.apply(call, *tensors)
        if rule == "pool":
            return _ExcitationRule.apply(call, self.cache, tensors[0])
        return _ExcitationRule.apply(call, self.cache, *tensors)


# --------------------------------------------------------------------------- update_resnet

def _is_resnet_block(module):
    """A torchvision ``BasicBlock`` or ``Bottleneck``, told by its attributes."""
    names = ("conv1", "bn1", "relu", "conv2", "bn2")
    if not all(isinstance(getattr(module, name, None), nn.Module) for name in names):
        return False
    downsample = getattr(module, "downsample", False)
    return downsample is None or isinstance(downsample, nn.Module)


def _is_bottleneck(module):
    return (isinstance(getattr(module, "conv3", None), nn.Module)
            and isinstance(getattr(module, "bn3", None), nn.Module))


def _basic_block_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return self.relu(self.skip(out, identity))


def _bottleneck_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu(self.skip(out, identity))


# --------------------------------------------------------------------------- contrastive EBP

_CLASSIFIER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _get_classifier_layer(model):
    """The last Conv1d/2d/3d or Linear layer owning a ``weight``, and its name, as TorchRay."""
    for parameter_name, _ in reversed(list(model.named_parameters())):
        if parameter_name == "weight":
            module_name = ""
        elif ".weight" in parameter_name:
            module_name = parameter_name.split(".weight")[0]
        else:
            continue
        module = get_module(model, module_name)
        if isinstance(module, _CLASSIFIER_TYPES):
            return module, module_name
    raise ValueError("classifier_layer=None: the model has no Conv1d/2d/3d or Linear layer to use "
                     "as classifier; pass classifier_layer")


def _classifier(model, classifier_layer):
    if classifier_layer is None:
        return _get_classifier_layer(model)[0]
    module = _find_layer(model, classifier_layer, "classifier_layer")
    if not any(module is layer for layer in model.modules()):
        # TorchRay would negate the weights of a module the model never calls.
        raise ValueError(f"classifier_layer {classifier_layer!r} is not a layer of the model")
    if not isinstance(module, _CLASSIFIER_TYPES):
        raise ValueError(f"classifier_layer {classifier_layer!r} must be a Conv1d/2d/3d or Linear "
                         f"layer, got {type(module).__name__}")
    return module


def _flip(weight, context):
    # Through .data, as TorchRay: a version bump would trip autograd's saved-tensor checks of
    # any other op that saved the weight. Hence the explicit forget() of the cached W+.
    weight.data.neg_()
    context.positive_weights.forget(weight)


def _check_called(probe, name, layer):
    if not probe.data:
        raise ValueError(f"{name} {layer!r} was not called by the model's forward pass")


def _forward(model, input, probe, name, layer):
    output = model(input)
    _check_called(probe, name, layer)
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the model must return a tensor, got {type(output).__name__}")
    if not output.requires_grad:
        raise ValueError(f"the model output does not depend on {name} {layer!r} "
                         "(or gradients are disabled)")
    return output


def _gradient_of(probe, name, layer):
    probed = probe.data[0]
    if not isinstance(probed, torch.Tensor) or not probed.is_floating_point() or probed.grad is None:
        raise ValueError(f"{name} {layer!r} got no excitation: its output is not a floating "
                         "tensor the model output depends on")
    return probed
