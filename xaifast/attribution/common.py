"""Machinery shared by the backpropagation attribution methods (TorchRay-compatible).

Every backprop method is :func:`saliency` with a different backward rule (``context_builder``)
or a different way of turning the gradient into a map (``gradient_to_saliency``).
"""

import contextlib
import importlib

import torch

from ..ops.blur import imsmooth
from ._checks import (check_callable, check_module, check_nonnegative_real, check_resize,
                      check_resize_mode, check_tensor, interpolate)
from ._probe import (Probe, _Catch, _CatchInputs, _CatchOutputs, _InjectContrast,  # noqa: F401
                     _wrap_in_list, attach_debug_probes)
from ._relu import ReLUOverride
from ._targets import get_backward_gradient, get_pointing_gradient

__all__ = [
    "attach_debug_probes",
    "get_backward_gradient",
    "get_module",
    "get_pointing_gradient",
    "gradient_to_saliency",
    "Probe",
    "Patch",
    "NullContext",
    "ReLUContext",
    "resize_saliency",
    "saliency",
]


class Patch:
    """Replace an attribute of a module (usually a function) until :meth:`remove` is called.

    Args:
        target (str): dotted path of the attribute, e.g. ``'torch.nn.functional.conv2d'``.
        new_callable: the replacement.

    Attributes:
        target: the object that owns the attribute (``None`` once removed).
        attribute (str): the attribute's name.
        orig_callable: the original value, put back by :meth:`remove`.

    The patch is global (not thread-safe); it is also removed when the object is collected.

    Example:
        >>> patch = Patch('math.floor', lambda x: 42)
        >>> import math; math.floor(1.5)
        42
        >>> patch.remove(); math.floor(1.5)
        1
    """

    @staticmethod
    def resolve(target):
        """Split ``'package.module.attr'`` into the owner object (importing it) and ``'attr'``.

        Unlike TorchRay, a path through a class (``'torch.Tensor.relu'``) also resolves.

        Args:
            target (str): dotted path.

        Returns:
            tuple: ``(owner, attribute_name)``.

        Example:
            >>> Patch.resolve('torch.nn.functional.relu')[1]
            'relu'
        """
        if not isinstance(target, str) or "." not in target.strip("."):
            raise ValueError(f"target must be a dotted path such as 'torch.relu', got {target!r}")
        path, attribute = target.rsplit(".", 1)
        parts = path.split(".")
        owner = importlib.import_module(parts[0])
        prefix = parts[0]
        for part in parts[1:]:
            prefix = f"{prefix}.{part}"
            try:
                owner = importlib.import_module(prefix)
            except ModuleNotFoundError:
                owner = getattr(owner, part)
        return owner, attribute

    def __init__(self, target, new_callable):
        self.target = None  # lets __del__ run if resolving fails
        owner, attribute = Patch.resolve(target)
        if not hasattr(owner, attribute):
            raise ValueError(f"target {target!r} does not exist")
        self.attribute = attribute
        self.orig_callable = getattr(owner, attribute)
        setattr(owner, attribute, new_callable)
        self.target = owner

    def __del__(self):
        self.remove()

    def remove(self):
        """Put the original attribute back (once; later calls do nothing)."""
        if getattr(self, "target", None) is not None:
            setattr(self.target, self.attribute, self.orig_callable)
        self.target = None


class NullContext:
    """A context manager that does nothing (the backward rule of plain gradients).

    Example:
        >>> with NullContext():
        ...     pass
    """

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        return False


class ReLUContext:
    """Context manager inside which every ReLU call runs ``relu_func`` instead.

    Used by :class:`~xaifast.attribution.deconvnet.DeConvNetContext` and
    :class:`~xaifast.attribution.guided_backprop.GuidedBackpropContext` to change the backward
    rule of ReLU. Unlike TorchRay, which swaps only ``torch.relu`` and ``torch.relu_``, every
    form is caught: ``nn.ReLU`` (also ``inplace=True``), ``F.relu`` (also ``inplace=True``),
    ``F.relu_``, ``torch.relu``, ``torch.relu_``, ``Tensor.relu`` and ``Tensor.relu_``. It works
    through a ``torch.overrides.TorchFunctionMode``, so nothing in ``torch`` is patched; the
    in-place forms still modify their input (and return it). Contexts nest (the innermost one
    wins; when it exits the outer one applies again), and leaving the ``with`` block, also by an
    exception, restores plain ReLU. The Function class is used through its ``apply`` and never
    instantiated (TorchRay's instantiation warns on recent PyTorch), and a ``relu_func`` that is
    not a Function class raises ``TypeError`` rather than an ``AssertionError``.

    Args:
        relu_func (type): a ``torch.autograd.Function`` subclass whose ``forward(ctx, input)``
            returns the rectified input and whose ``backward`` is the wanted rule.

    Example:
        >>> from xaifast.attribution.deconvnet import DeConvNetReLU
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> with ReLUContext(DeConvNetReLU):
        ...     x.relu().backward(torch.tensor([3.0, -4.0]))
        >>> x.grad
        tensor([3., 0.])
    """

    def __init__(self, relu_func):
        if not (isinstance(relu_func, type) and issubclass(relu_func, torch.autograd.Function)):
            raise TypeError("relu_func must be a torch.autograd.Function subclass (the class, not "
                            f"an instance or its apply), got {relu_func!r}")
        self.relu_func = relu_func
        self._modes = []

    def __enter__(self):
        mode = ReLUOverride(self.relu_func)
        mode.__enter__()
        self._modes.append(mode)
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self._modes.pop().__exit__(exc_type, exc_value, traceback)
        return False  # never swallow the exception


def get_module(model, module):
    """Find a layer of ``model`` by name (as in ``model.named_modules()``).

    Args:
        model (torch.nn.Module): the model.
        module (str or torch.nn.Module): a name (``''`` is the model itself), or a module,
            returned as it is.

    Returns:
        torch.nn.Module or None: the layer, or ``None`` if no module has that name.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
        >>> get_module(model, '1')
        ReLU()
    """
    if isinstance(module, torch.nn.Module):
        return module
    if not isinstance(module, str):
        raise TypeError(f"module must be a str or a torch.nn.Module, got {type(module).__name__}")
    if module == "":
        return model
    for name, candidate in model.named_modules():
        if name == module:
            return candidate
    return None


def gradient_to_saliency(x):
    """Saliency as the largest absolute gradient over the channels.

    Args:
        x (Tensor): ``(N, C, ...)`` activation with a ``.grad``.

    Returns:
        Tensor: ``(N, 1, ...)``, ``max_c |x.grad[:, c]|``.

    Example:
        >>> x = torch.ones(1, 2, 1, 1, requires_grad=True)
        >>> (x * torch.tensor([-3.0, 2.0]).view(1, 2, 1, 1)).sum().backward()
        >>> gradient_to_saliency(x).flatten()
        tensor([3.])
    """
    if x.grad is None:
        raise ValueError("x has no gradient: run the backward pass first")
    return x.grad.abs().max(dim=1, keepdim=True)[0]


def _resize(tensor, saliency_map, size, mode, size_name, mode_name):
    check_resize(size_name, size)
    check_resize_mode(mode_name, mode)
    if size is False:
        return saliency_map
    check_resize_mode(mode_name, mode, saliency_map.dim() - 2)
    if size is True:
        size = tuple(tensor.shape[2:])
    else:
        size = tuple(int(s) for s in size[::-1])  # (width, height) -> (height, width)
    if len(size) != saliency_map.dim() - 2:
        raise ValueError(f"{size_name} must give {saliency_map.dim() - 2} sizes for a saliency map "
                         f"of shape {tuple(saliency_map.shape)}, got {len(size)}")
    return interpolate(saliency_map, size, mode)


def resize_saliency(tensor, saliency, size, mode):
    """Resize a saliency map to the input's size or to a given ``(width, height)``.

    Unlike TorchRay, which always passes ``align_corners=False`` and so fails for ``'nearest'``
    and ``'area'``, every ``F.interpolate`` mode works (``align_corners=False`` goes only to the
    interpolating modes; ``'bilinear'`` gives TorchRay's numbers), and bad values raise
    ``ValueError``/``TypeError`` naming ``size`` or ``mode``.

    Args:
        tensor (Tensor): reference ``(N, C, H, W)`` tensor (for ``size=True``).
        saliency (Tensor): ``(N, 1, h, w)`` map.
        size (bool or tuple): ``False`` (unchanged), ``True`` (to ``(H, W)``) or a
            ``(width, height)`` tuple or list.
        mode (str): ``'bilinear'``, ``'nearest'``, ``'area'``, ``'bicubic'``, ... (as
            ``F.interpolate``).

    Returns:
        Tensor: the resized map.

    Example:
        >>> resize_saliency(torch.zeros(1, 3, 8, 8), torch.ones(1, 1, 2, 2), True, 'nearest').shape
        torch.Size([1, 1, 8, 8])
    """
    check_tensor("tensor", tensor)
    check_tensor("saliency", saliency)
    return _resize(tensor, saliency, size, mode, "size", "mode")


def _find_layer(model, layer, name="saliency_layer"):
    """The module ``layer`` names (or is) in ``model``; errors name the argument ``name``."""
    if not isinstance(layer, (str, torch.nn.Module)):
        raise TypeError(f"{name} must be a layer name (str) or a torch.nn.Module, got "
                        f"{type(layer).__name__}")
    module = get_module(model, layer)
    if module is None:
        names = [n for n, _ in model.named_modules() if n][:8]
        raise ValueError(f"{name} {layer!r} is not a layer of the model; names come from "
                         f"model.named_modules(), e.g. {names}")
    return module


def _restore(parameters, modes, root_training, model):
    for parameter, requires_grad in parameters:
        parameter.requires_grad_(requires_grad)
    model.train(root_training)  # lets a model's own train() override run, as TorchRay does
    for module, training in modes:  # then put back submodules whose mode differed from the root
        module.training = training


@contextlib.contextmanager
def _attribution_state(model, debug):
    """Freeze the parameters and switch to eval for an attribution run; undo it all on exit.

    Yields ``(probes, debug_probes)``: the caller appends the probes it attaches to ``probes``;
    on exit, also after an exception, every probe is removed, the parameters' ``requires_grad``
    and every module's train/eval flag are restored.
    """
    parameters = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    probes = []
    try:
        for parameter, _ in parameters:
            parameter.requires_grad_(False)
        model.eval()
        debug_probes = attach_debug_probes(model, debug=debug)
        if debug_probes is not None:
            probes.extend(debug_probes.values())
        yield probes, debug_probes
    finally:
        for attached in reversed(probes):
            attached.remove()
        _restore(parameters, modes, modes[0][1], model)


def saliency(model, input, target, saliency_layer="", resize=False, resize_mode="bilinear",
             smooth=0, context_builder=NullContext, gradient_to_saliency=gradient_to_saliency,
             get_backward_gradient=get_backward_gradient, debug=False):
    """Run a backpropagation attribution method and return its saliency map.

    1. Freezes the model's parameters and puts it in ``eval()`` mode.
    2. Attaches a :class:`Probe` to the output of ``saliency_layer`` (to the model's input for
       ``''``) and, if ``debug``, one to every module (:func:`attach_debug_probes`).
    3. Inside ``context_builder()``, runs ``model(input)`` and backpropagates
       ``get_backward_gradient(output, target)`` (a one-hot of ``target`` by default).
    4. Turns the probed tensor and its gradient into a map with ``gradient_to_saliency``,
       resizes it (:func:`resize_saliency`) and, if ``smooth > 0``, blurs it with
       ``imsmooth(map, sigma=smooth * max(H, W), padding_mode='replicate')``.
    5. Removes the probes and restores the parameters' ``requires_grad`` and the modules'
       train/eval modes.

    As in TorchRay, an existing ``input.grad`` is zeroed in place first and, when probed at the
    input, ``input`` is left with ``requires_grad=True`` and its ``.grad`` set.

    Unlike TorchRay: step 5 also runs when something raises, and restores the train/eval flag
    of each submodule (TorchRay calls ``model.train()``, which switches every submodule to
    training); the debug probes are detached before returning (their data and gradients stay;
    TorchRay leaves them hooked, recording later forward passes, with every ReLU kept
    ``inplace=False``); all arguments are checked before the model runs and bad ones raise
    ``TypeError``/``ValueError`` naming the argument; ``resize_mode`` may be any
    ``F.interpolate`` mode; a ``target`` of one class index per image works for batches.

    Args:
        model (torch.nn.Module): the model, mapping ``(N, C, H, W)`` to ``(N, K)`` or
            ``(N, K, h, w)`` scores.
        input (Tensor): ``(N, C, H, W)`` input batch.
        target (int, sequence or Tensor): class index (for every image), one index per image,
            or a tensor with the output's shape used as the backward gradient.
        saliency_layer (str or torch.nn.Module): layer whose output is probed, by name as in
            ``model.named_modules()``. Default: ``''`` (the input).
        resize (bool or tuple): ``True`` resizes the map to the input's ``(H, W)``; a
            ``(width, height)`` pair to that size. Default: ``False``.
        resize_mode (str): ``F.interpolate`` mode. Default: ``'bilinear'``.
        smooth (float): Gaussian blur, ``sigma`` as a fraction of the map's larger side;
            ``0`` disables. Default: ``0``.
        context_builder (callable): returns the context manager that sets the backward rule.
            Default: :class:`NullContext` (plain gradient).
        gradient_to_saliency (callable): probed tensor (with ``.grad``) -> map. Default:
            :func:`gradient_to_saliency`.
        get_backward_gradient (callable): ``(output, target)`` -> gradient of the output.
            Default: :func:`get_backward_gradient`.
        debug (bool): also return the debug probes. Default: ``False``.

    Returns:
        Tensor or tuple: the ``(N, 1, h, w)`` map, or ``(map, probes)`` if ``debug``, with
        ``probes`` an ``OrderedDict`` module name -> :class:`Probe`.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(),
        ...                             torch.nn.Linear(2 * 6 * 6, 5))
        >>> saliency(model, torch.randn(1, 3, 8, 8), target=3).shape
        torch.Size([1, 1, 8, 8])
    """
    check_module("model", model)
    check_tensor("input", input)
    check_resize("resize", resize)
    check_resize_mode("resize_mode", resize_mode)
    smooth = check_nonnegative_real("smooth", smooth)
    check_callable("context_builder", context_builder)
    check_callable("gradient_to_saliency", gradient_to_saliency)
    check_callable("get_backward_gradient", get_backward_gradient)
    layer = _find_layer(model, saliency_layer)
    at_input = isinstance(saliency_layer, str) and saliency_layer == ""

    # Reading .grad of a non-leaf warns; only a leaf (or a retaining tensor) can have one.
    if (input.is_leaf or input.retains_grad) and input.grad is not None:
        with torch.no_grad():
            input.grad.zero_()

    with _attribution_state(model, debug) as (probes, debug_probes):
        probe = Probe(layer, target="input" if at_input else "output")
        probes.append(probe)

        with context_builder():
            output = model(input)
            if not probe.data:
                raise ValueError(f"saliency_layer {saliency_layer!r} was not called by the model's "
                                 "forward pass")
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"the model must return a tensor, got {type(output).__name__}")
            if not output.requires_grad:
                raise ValueError(f"the model output does not depend on saliency_layer "
                                 f"{saliency_layer!r} (or gradients are disabled)")
            output.backward(get_backward_gradient(output, target))

        probed = probe.data[0]
        if not isinstance(probed, torch.Tensor) or not probed.is_floating_point() or probed.grad is None:
            raise ValueError(f"saliency_layer {saliency_layer!r} got no gradient: its first "
                             f"{probe.target} is not a floating tensor the output depends on")
        saliency_map = gradient_to_saliency(probed)
        saliency_map = _resize(input, saliency_map, resize, resize_mode, "resize", "resize_mode")
        if smooth > 0:
            if saliency_map.dim() != 4:
                raise ValueError(f"smooth needs an (N, 1, H, W) saliency map, but saliency_layer "
                                 f"{saliency_layer!r} gives shape {tuple(saliency_map.shape)}")
            saliency_map = imsmooth(saliency_map, sigma=smooth * max(saliency_map.shape[2:]),
                                    padding_mode="replicate")

    if debug:
        return saliency_map, debug_probes
    return saliency_map
