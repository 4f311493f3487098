"""``Probe``: record a module's inputs or outputs and their gradients (re-exported by ``common``)."""

import weakref
from collections import OrderedDict

import torch

from ._checks import check_module


def _wrap_in_list(x):
    """Return ``x`` as a list: lists unchanged, tuples converted, anything else wrapped."""
    if isinstance(x, list):
        return x
    if isinstance(x, tuple):
        return list(x)
    return [x]


def _is_differentiable(x):
    return isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())


class _InjectContrast:
    """Tensor hook that subtracts a fixed ``contrast`` from the incoming gradient.

    Args:
        contrast (Tensor): what to subtract, with the gradient's shape.
        non_negative (bool): clamp the difference at zero.
    """

    def __init__(self, contrast, non_negative):
        self.contrast = contrast
        self.non_negative = non_negative

    def __call__(self, grad):
        if grad.shape != self.contrast.shape:
            raise ValueError(f"contrast must have the gradient's shape {tuple(grad.shape)}, "
                             f"got {tuple(self.contrast.shape)}")
        delta = grad - self.contrast
        if self.non_negative:
            delta = delta.clamp(min=0)
        return delta


class _Catch:
    """Base of the module hooks of a :class:`Probe` (holds the probe weakly)."""

    def __init__(self, probe):
        self.probe = weakref.ref(probe)

    def _process_data(self, data):
        """Record ``data`` in the probe; return the values the model should go on with.

        Each recorded floating tensor is made to require grad and to keep its ``.grad``. The
        model then continues with a clone, so an in-place op after the probed point (for
        example ``nn.ReLU(inplace=True)``) changes the clone and leaves the recorded tensor,
        its values and its gradient as the module produced them.
        """
        probe = self.probe()
        if probe is None:
            return None
        probe.data = data
        passed_on = []
        for i, x in enumerate(data):
            if not _is_differentiable(x):
                passed_on.append(x)
                continue
            x.requires_grad_(True)
            x.retain_grad()
            if i < len(probe.contrast) and probe.contrast[i] is not None:
                x.register_hook(_InjectContrast(probe.contrast[i], probe.non_negative_contrast))
            passed_on.append(x.clone())
        return passed_on


class _CatchInputs(_Catch):
    """Forward pre-hook: records the positional inputs of the module."""

    def __call__(self, module, input):
        passed_on = self._process_data(_wrap_in_list(input))
        return None if passed_on is None else tuple(passed_on)


class _CatchOutputs(_Catch):
    """Forward hook: records the output(s) of the module."""

    def __call__(self, module, input, output):
        passed_on = self._process_data(_wrap_in_list(output))
        if passed_on is None:
            return None
        if isinstance(output, list):
            return passed_on
        if isinstance(output, tuple):
            if hasattr(output, "_fields"):  # a namedtuple keeps its type
                return type(output)(*passed_on)
            return tuple(passed_on)
        return passed_on[0]


class Probe:
    """Records the tensors entering or leaving a module, and their gradients.

    While attached, every call of ``module`` stores its inputs (``target='input'``) or outputs
    (``target='output'``) as a list in :attr:`data`; each floating tensor there is made to
    require grad and to keep its ``.grad`` after a backward pass. If ``contrast[i]`` is set,
    the gradient flowing through ``data[i]`` has ``contrast[i]`` subtracted (and is clamped at
    zero if ``non_negative_contrast``). If the module has an ``inplace`` attribute (as
    ``nn.ReLU`` does), it is set to ``False`` while the probe is attached and restored by
    :meth:`remove`, so the recorded tensor is not overwritten by the module itself.

    Unlike TorchRay, the model continues with a copy of each recorded tensor, so an in-place op
    after the probed point (for example a ``nn.ReLU(inplace=True)`` after a probed convolution
    of a frozen model, where TorchRay raises "a leaf Variable that requires grad is being used
    in an in-place operation") works, and ``data[i]`` and ``data[i].grad`` are the layer's
    output as produced and the gradient with respect to it. Non-floating tensors are recorded
    but left alone, and a bad ``target`` raises ``ValueError`` instead of an ``AssertionError``.

    Args:
        module (torch.nn.Module): the module to watch.
        target (str): ``'input'`` (forward pre-hook, the positional arguments) or ``'output'``
            (forward hook). Default: ``'input'``.

    Attributes:
        module (torch.nn.Module or None): the module, ``None`` once removed.
        data (list): the tensors of the latest call.
        target (str): ``'input'`` or ``'output'``.
        hook: the handle of the registered hook.
        contrast (list): optional tensors to subtract from the gradients of :attr:`data`.
        non_negative_contrast (bool): clamp contrasted gradients at zero. Default: ``False``.
        inplace: the module's ``inplace`` flag before attaching (``None`` if it has none).

    Example:
        >>> layer = torch.nn.Linear(4, 2)
        >>> probe = Probe(layer, target='output')
        >>> layer(torch.randn(3, 4)).sum().backward()
        >>> probe.data[0].grad.shape
        torch.Size([3, 2])
        >>> probe.remove()
    """

    def __init__(self, module, target="input"):
        self.module = None  # lets remove() and __del__ run even if the checks below fail
        self.hook = None
        check_module("module", module)
        if target not in ("input", "output"):
            raise ValueError(f"target must be 'input' or 'output', got {target!r}")
        self.data = []
        self.target = target
        self.contrast = []
        self.non_negative_contrast = False
        self.inplace = getattr(module, "inplace", None)
        if hasattr(module, "inplace"):
            module.inplace = False
        if target == "input":
            self.hook = module.register_forward_pre_hook(_CatchInputs(self))
        else:
            self.hook = module.register_forward_hook(_CatchOutputs(self))
        self.module = module

    def __del__(self):
        self.remove()

    def remove(self):
        """Detach the probe from its module and restore the module's ``inplace`` flag.

        The recorded :attr:`data` stays. Calling it again does nothing.
        """
        module = getattr(self, "module", None)
        if module is not None:
            if hasattr(module, "inplace"):
                module.inplace = self.inplace
            self.hook.remove()
            self.module = None


def attach_debug_probes(model, debug=False):
    """Attach a :class:`Probe` to every module of ``model`` (if ``debug``).

    The model itself (name ``''``) is probed at its input, every other module at its output.

    Args:
        model (torch.nn.Module): the model.
        debug (bool): attach the probes; if ``False`` nothing happens. Default: ``False``.

    Returns:
        collections.OrderedDict or None: module name -> :class:`Probe`, in
        ``model.named_modules()`` order, or ``None`` if not ``debug``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
        >>> probes = attach_debug_probes(model, debug=True)
        >>> list(probes)
        ['', '0', '1']
        >>> for probe in probes.values():
        ...     probe.remove()
    """
    if not debug:
        return None
    check_module("model", model)
    probes = OrderedDict()
    for name, module in model.named_modules():
        probes[name] = Probe(module, target="input" if name == "" else "output")
    return probes
