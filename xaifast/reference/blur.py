"""Reference for the ``separable_blur`` op: two grouped ``conv2d`` calls."""

import torch.nn.functional as F


def separable_blur(input, weight, stride=1, padding=0, padding_mode="constant", padding_value=0.0):
    """Blur every channel with the 1-D ``weight`` along H, then along W.

    The input is padded on each side by ``(len(weight) - 1) // 2 + padding`` with ``padding_mode``
    (``'constant'`` with ``padding_value``, ``'reflect'``, ``'replicate'`` or ``'circular'``), then
    correlated with ``weight`` vertically with stride ``(stride, 1)`` and horizontally with stride
    ``(1, stride)``: TorchRay's ``imsmooth`` (for ``padding == 0``).

    Args:
        input (Tensor): ``(N, C, H, W)``.
        weight (Tensor): ``(2R + 1,)`` kernel taps, any values (a normalised Gaussian for a blur).
        stride (int): subsampling factor of both passes. Default: ``1``.
        padding (int): extra padding beyond the kernel half-width ``R``. Default: ``0``.
        padding_mode (str): ``'constant'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        padding_value (float): the value of ``'constant'`` padding. Default: ``0``.

    Returns:
        Tensor: ``(N, C, (H + 2 * padding - 1) // stride + 1, (W + 2 * padding - 1) // stride + 1)``.
    """
    channels = input.shape[1]
    pad = (weight.shape[0] - 1) // 2 + padding
    taps = weight.to(input.dtype)
    column = taps.reshape(1, 1, -1, 1).expand(channels, -1, -1, -1)
    row = taps.reshape(1, 1, 1, -1).expand(channels, -1, -1, -1)
    if padding_mode == "constant" and padding_value == 0:
        x = F.conv2d(input, column, padding=(pad, 0), stride=(stride, 1), groups=channels)
        return F.conv2d(x, row, padding=(0, pad), stride=(1, stride), groups=channels)
    if padding_mode == "constant":
        x = F.pad(input, (pad, pad, pad, pad), mode="constant", value=padding_value)
    else:
        x = F.pad(input, (pad, pad, pad, pad), mode=padding_mode)
    x = F.conv2d(x, column, stride=(stride, 1), groups=channels)
    return F.conv2d(x, row, stride=(1, stride), groups=channels)
