"""The *gradient* method (Simonyan, Vedaldi and Zisserman, ICLR workshop 2014).

Saliency is plain backpropagation of the target class score to the input (or to a layer),
read out as the largest absolute gradient over the channels.

Example::

    from xaifast.attribution.gradient import gradient
    saliency_map = gradient(model, x, target=category_id)  # (N, 1, H, W)

References:
    K. Simonyan, A. Vedaldi and A. Zisserman, *Deep Inside Convolutional Networks:
    Visualising Image Classification Models and Saliency Maps*, https://arxiv.org/abs/1312.6034
"""

__all__ = ["gradient"]

from .common import saliency


def gradient(*args, context_builder=None, **kwargs):
    """Gradient saliency: :func:`~xaifast.attribution.common.saliency` with plain backprop.

    Takes and returns what :func:`~xaifast.attribution.common.saliency` does (``model``,
    ``input`` ``(N, C, H, W)``, ``target``, ``saliency_layer=''``, ``resize=False``,
    ``resize_mode='bilinear'``, ``smooth=0``, ``debug=False``, ...). Unlike TorchRay, which
    asserts, passing a ``context_builder`` raises ``TypeError``: this method has no backward
    rule to choose (use ``saliency`` directly for that).

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(),
        ...                             torch.nn.Linear(2 * 6 * 6, 5))
        >>> gradient(model, torch.randn(2, 3, 8, 8), [1, 4]).shape
        torch.Size([2, 1, 8, 8])
    """
    if context_builder is not None:
        raise TypeError("gradient() does not take a context_builder (it is plain backpropagation); "
                        "call xaifast.attribution.common.saliency to use one")
    return saliency(*args, **kwargs)
