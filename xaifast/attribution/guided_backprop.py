"""The *guided backpropagation* method (Springenberg et al., ICLR workshop 2015).

Backpropagation in which every ReLU passes back the positive part of the incoming gradient,
and only where its forward input was not negative:

    backward ReLU*(x, p) = p if p > 0 and x >= 0, else 0

(as in TorchRay, an input of exactly zero lets the gradient through).

Example::

    from xaifast.attribution.guided_backprop import guided_backprop
    saliency_map = guided_backprop(model, x, target=category_id)

References:
    J. T. Springenberg, A. Dosovitskiy, T. Brox and M. Riedmiller, *Striving for Simplicity:
    The All Convolutional Net*, https://arxiv.org/abs/1412.6806
"""

__all__ = ["GuidedBackpropContext", "guided_backprop"]

import torch

from .common import ReLUContext, saliency


class GuidedBackpropReLU(torch.autograd.Function):
    """ReLU with the guided backpropagation backward rule.

    Forward: ``input.clamp(min=0)``. Backward: the gradient is zeroed where ``input < 0``, then
    clamped at zero.

    Example:
        >>> x = torch.tensor([-1.0, 0.0, 2.0, 3.0], requires_grad=True)
        >>> GuidedBackpropReLU.apply(x).backward(torch.tensor([5.0, 5.0, 5.0, -5.0]))
        >>> x.grad
        tensor([0., 5., 5., 0.])
    """

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        return grad_output.masked_fill(input < 0, 0).clamp(min=0)


class GuidedBackpropContext(ReLUContext):
    """Context manager giving every ReLU call the guided backpropagation backward rule.

    A :class:`~xaifast.attribution.common.ReLUContext` with :class:`GuidedBackpropReLU`; unlike
    TorchRay it catches every way of calling ReLU (``nn.ReLU``, ``F.relu``, ``torch.relu``,
    ``Tensor.relu`` and their in-place forms), nests, and does not warn on recent PyTorch.

    Example:
        >>> x = torch.tensor([-1.0, 2.0, 3.0], requires_grad=True)
        >>> with GuidedBackpropContext():
        ...     x.relu().backward(torch.tensor([5.0, 5.0, -5.0]))
        >>> x.grad
        tensor([0., 5., 0.])
    """

    def __init__(self):
        super().__init__(GuidedBackpropReLU)


def guided_backprop(*args, context_builder=GuidedBackpropContext, **kwargs):
    """Guided backpropagation saliency: :func:`~xaifast.attribution.common.saliency` under
    :class:`GuidedBackpropContext`.

    Takes and returns what :func:`~xaifast.attribution.common.saliency` does (``model``,
    ``input`` ``(N, C, H, W)``, ``target``, ``saliency_layer=''``, ``resize=False``,
    ``resize_mode='bilinear'``, ``smooth=0``, ``debug=False``, ...).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(),
        ...                             torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 5))
        >>> guided_backprop(model, torch.randn(1, 3, 8, 8), 2).shape
        torch.Size([1, 1, 8, 8])
    """
    return saliency(*args, context_builder=context_builder, **kwargs)
