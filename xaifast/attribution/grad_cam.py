"""The *Grad-CAM* method (Selvaraju et al., ICCV 2017).

The gradient of the target score at an intermediate layer (usually the last convolutional
one) is averaged over the spatial positions into one weight per channel; the map is the
rectified, weighted sum of that layer's activation channels:

    s[n, 0, u] = max(0, sum_c x[n, c, u] * mean_u' dx[n, c, u'])

Example::

    from xaifast.attribution.grad_cam import grad_cam
    saliency_map = grad_cam(model, x, target=category_id, saliency_layer='features.29')

References:
    R. R. Selvaraju, M. Cogswell, A. Das, R. Vedantam, D. Parikh and D. Batra, *Grad-CAM:
    Visual Explanations from Deep Networks via Gradient-based Localization*,
    https://arxiv.org/abs/1610.02391
"""

__all__ = ["grad_cam"]

import torch

from .common import saliency


def gradient_to_grad_cam_saliency(x):
    """Grad-CAM map from an activation and its gradient.

    Unlike TorchRay, an activation that is not ``(N, C, H, W)`` or has no gradient raises
    ``ValueError`` naming the cause.

    Args:
        x (Tensor): ``(N, C, H, W)`` activation with a ``.grad``.

    Returns:
        Tensor: ``(N, 1, H, W)``, ``clamp(sum_c x * mean_{H,W}(x.grad), min=0)``.

    Example:
        >>> x = torch.ones(1, 2, 2, 2, requires_grad=True)
        >>> (x[:, 0] * 3 - x[:, 1]).sum().backward()
        >>> gradient_to_grad_cam_saliency(x).flatten()
        tensor([2., 2., 2., 2.], grad_fn=<ViewBackward0>)
    """
    if x.dim() != 4:
        raise ValueError("Grad-CAM needs a saliency_layer whose output is (N, C, H, W), got shape "
                         f"{tuple(x.shape)}")
    if x.grad is None:
        raise ValueError("x has no gradient: run the backward pass first")
    channel_weight = torch.mean(x.grad, (2, 3), keepdim=True)
    return torch.clamp(torch.sum(x * channel_weight, 1, keepdim=True), min=0)


def grad_cam(*args, saliency_layer, gradient_to_saliency=gradient_to_grad_cam_saliency, **kwargs):
    """Grad-CAM saliency: :func:`~xaifast.attribution.common.saliency` at ``saliency_layer``
    read out by :func:`gradient_to_grad_cam_saliency`.

    Takes and returns what :func:`~xaifast.attribution.common.saliency` does (``model``,
    ``input`` ``(N, C, H, W)``, ``target``, ``resize=False``, ``resize_mode='bilinear'``,
    ``smooth=0``, ``debug=False``, ...); ``saliency_layer`` (a name from
    ``model.named_modules()`` or a module) is required and keyword-only. The map has the
    layer's spatial size unless ``resize`` is set.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU(),
        ...                             torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 5))
        >>> grad_cam(model, torch.randn(1, 3, 8, 8), 2, saliency_layer='0').shape
        torch.Size([1, 1, 6, 6])
    """
    return saliency(*args, saliency_layer=saliency_layer, gradient_to_saliency=gradient_to_saliency,
                    **kwargs)
