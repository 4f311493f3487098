"""The *linear approximation* method.

The map is the first-order (gradient times activation) estimate of each position's
contribution to the target score at a layer, summed over the channels:

    s[n, 0, u] = sum_c x[n, c, u] * dx[n, c, u]

Example::

    from xaifast.attribution.linear_approx import linear_approx
    saliency_map = linear_approx(model, x, target=category_id, saliency_layer='features.29')
"""

__all__ = ["gradient_to_linear_approx_saliency", "linear_approx"]

import torch

from .common import saliency


def gradient_to_linear_approx_saliency(x):
    """Linear-approximation map: activation times gradient, summed over channels.

    Args:
        x (Tensor): ``(N, C, ...)`` activation with a ``.grad``.

    Returns:
        Tensor: ``(N, 1, ...)``, ``sum_c x * x.grad`` (may be negative).

    Example:
        >>> x = torch.full((1, 2, 1, 1), 2.0, requires_grad=True)
        >>> (x[:, 0] * 3 - x[:, 1]).sum().backward()
        >>> gradient_to_linear_approx_saliency(x).flatten()
        tensor([4.], grad_fn=<ViewBackward0>)
    """
    if x.grad is None:
        raise ValueError("x has no gradient: run the backward pass first")
    return torch.sum(x * x.grad, 1, keepdim=True)


def linear_approx(*args, gradient_to_saliency=gradient_to_linear_approx_saliency, **kwargs):
    """Linear-approximation saliency: :func:`~xaifast.attribution.common.saliency` read out by
    :func:`gradient_to_linear_approx_saliency`.

    Takes and returns what :func:`~xaifast.attribution.common.saliency` does (``model``,
    ``input`` ``(N, C, H, W)``, ``target``, ``saliency_layer=''``, ``resize=False``,
    ``resize_mode='bilinear'``, ``smooth=0``, ``debug=False``, ...).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(),
        ...                             torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 5))
        >>> linear_approx(model, torch.randn(1, 3, 8, 8), 2, saliency_layer='1').shape
        torch.Size([1, 1, 6, 6])
    """
    return saliency(*args, gradient_to_saliency=gradient_to_saliency, **kwargs)
