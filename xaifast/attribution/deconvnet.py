"""The *DeConvNet* method (Zeiler and Fergus, ECCV 2014).

Backpropagation in which every ReLU passes back only the positive part of the incoming
gradient, whatever its forward input was:

    backward ReLU*(x, p) = max(p, 0)

Example::

    from xaifast.attribution.deconvnet import deconvnet, DeConvNetContext
    saliency_map = deconvnet(model, x, target=category_id)
    with DeConvNetContext():  # or by hand
        model(x)[0, category_id].backward()

References:
    M. D. Zeiler and R. Fergus, *Visualizing and Understanding Convolutional Networks*,
    https://doi.org/10.1007/978-3-319-10590-1_53
"""

__all__ = ["DeConvNetContext", "deconvnet"]

import torch

from .common import ReLUContext, saliency


class DeConvNetReLU(torch.autograd.Function):
    """ReLU with the DeConvNet backward rule.

    Forward: ``input.clamp(min=0)``. Backward: ``grad_output.clamp(min=0)``.

    Example:
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> DeConvNetReLU.apply(x).backward(torch.tensor([3.0, -4.0]))
        >>> x.grad
        tensor([3., 0.])
    """

    @staticmethod
    def forward(ctx, input):
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output.clamp(min=0)


class DeConvNetContext(ReLUContext):
    """Context manager giving every ReLU call the DeConvNet backward rule.

    A :class:`~xaifast.attribution.common.ReLUContext` with :class:`DeConvNetReLU`; unlike
    TorchRay it catches every way of calling ReLU (``nn.ReLU``, ``F.relu``, ``torch.relu``,
    ``Tensor.relu`` and their in-place forms), nests, and does not warn on recent PyTorch.

    Example:
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> with DeConvNetContext():
        ...     torch.nn.ReLU()(x).backward(torch.tensor([3.0, -4.0]))
        >>> x.grad
        tensor([3., 0.])
    """

    def __init__(self):
        super().__init__(DeConvNetReLU)


def deconvnet(*args, context_builder=DeConvNetContext, **kwargs):
    """DeConvNet saliency: :func:`~xaifast.attribution.common.saliency` under
    :class:`DeConvNetContext`.

    Takes and returns what :func:`~xaifast.attribution.common.saliency` does (``model``,
    ``input`` ``(N, C, H, W)``, ``target``, ``saliency_layer=''``, ``resize=False``,
    ``resize_mode='bilinear'``, ``smooth=0``, ``debug=False``, ...).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(),
        ...                             torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 5))
        >>> deconvnet(model, torch.randn(1, 3, 8, 8), 2).shape
        torch.Size([1, 1, 8, 8])
    """
    return saliency(*args, context_builder=context_builder, **kwargs)
