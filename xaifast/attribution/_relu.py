"""Routing every way of calling ReLU to a custom autograd Function (used by ``ReLUContext``).

TorchRay swaps ``torch.relu`` and ``torch.relu_`` for the custom Function, which misses
``Tensor.relu``/``Tensor.relu_`` and anything that bound the originals earlier. Here a
``TorchFunctionMode`` sees each call at dispatch time instead, whatever name the model used:
``nn.ReLU`` and ``F.relu`` (both reach the mode as ``F.relu``, with their ``inplace`` flag),
``torch.relu``, ``torch.relu_`` (which is also ``F.relu_``), ``Tensor.relu`` and ``Tensor.relu_``.
Modes stack, so nested contexts work: the innermost mode handles the call and its own ops go to
the modes below it, which do not touch anything but ReLU.
"""

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# func -> True if the call modifies its input in place. F.relu is decided by its `inplace` flag.
_RELU_FORMS = {
    torch.relu: False,
    torch.Tensor.relu: False,
    torch.relu_: True,
    torch.Tensor.relu_: True,
}
if getattr(F, "relu_", None) is not None:
    _RELU_FORMS[F.relu_] = True


def _first_argument(args, kwargs):
    if args:
        return args[0], args[1:]
    for key in ("input", "self"):
        if key in kwargs:
            return kwargs[key], ()
    raise TypeError("relu() missing its input tensor")


def relu_in_place(relu_func, x):
    """Apply ``relu_func`` to ``x`` in place and return ``x``.

    The rule runs on a copy of ``x`` (so a rule that saves its input for backward keeps the
    values before the change), then the result is written back into ``x`` with ``copy_``.
    Autograd records the write, so code that ignores the return value of ``relu_`` still sees
    the new values, and the gradient flows through the rule. This works for any autograd
    Function class, not only the ones this package defines.
    """
    result = relu_func.apply(x.clone())
    return x.copy_(result)


class ReLUOverride(TorchFunctionMode):
    """Torch function mode that sends every ReLU call to ``relu_func.apply``.

    Args:
        relu_func (type): a ``torch.autograd.Function`` subclass whose ``forward`` takes one
            tensor and returns its rectified copy.
    """

    def __init__(self, relu_func):
        super().__init__()
        self.relu_func = relu_func

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.relu:
            x, rest = _first_argument(args, kwargs)
            inplace = rest[0] if rest else kwargs.get("inplace", False)
        else:
            try:
                inplace = _RELU_FORMS.get(func)
            except TypeError:  # an unhashable callable cannot be a ReLU form
                inplace = None
            if inplace is None:
                return func(*args, **kwargs)
            x, _ = _first_argument(args, kwargs)
        if inplace:
            return relu_in_place(self.relu_func, x)
        return self.relu_func.apply(x)
