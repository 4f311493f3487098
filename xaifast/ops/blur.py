"""Separable blur: the engine of ``imsmooth``, of the blur pyramid and of saliency smoothing.

``separable_blur`` is the op (compiled kernel ``torch.ops.xaifast.separable_blur`` with its own
backward kernel, reference :func:`xaifast.reference.separable_blur`); ``imsmooth`` is TorchRay's
Gaussian smoothing on top of it.
"""

import math

import torch
import torch.nn.functional as F

from .. import reference
from .._extension import HAS_EXT, has_kernel
from ._checks import check_choice, check_int, check_real, check_tensor

PADDING_MODES = ("constant", "reflect", "replicate", "circular")

# TorchRay's float32 constants (torchray.utils.SQRT_TWO_SINGLE, EPSILON_SINGLE): the Gaussian
# taps are computed with them, in float32, so the numbers match TorchRay's.
_SQRT_TWO_SINGLE = torch.tensor(math.sqrt(2), dtype=torch.float32)
_EPSILON_SINGLE = torch.tensor(1.19209290e-07, dtype=torch.float32)


def _check_padding(input, pad, padding_mode, padding_value):
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    padding_value = check_real("padding_value", padding_value)
    if padding_mode != "constant" and padding_value != 0:
        raise ValueError(f"padding_value is only used with padding_mode='constant', got {padding_value} "
                         f"with padding_mode={padding_mode!r}")
    height, width = input.shape[-2:]
    if padding_mode == "reflect" and pad >= min(height, width):
        raise ValueError(f"padding_mode='reflect' needs a padding ({pad}: kernel half-width + padding) smaller "
                         f"than the input's height and width, got {height}x{width}; use 'replicate'")
    if padding_mode == "circular" and pad > min(height, width):
        raise ValueError(f"padding_mode='circular' needs a padding ({pad}: kernel half-width + padding) no larger "
                         f"than the input's height and width, got {height}x{width}")
    return padding_value


def separable_blur(input, weight, stride=1, padding=0, padding_mode="constant", padding_value=0.0):
    """Correlate every channel with the 1-D ``weight`` along H, then along W.

    The input is padded on each side by ``R + padding``, where ``R = (len(weight) - 1) // 2``, with
    ``padding_mode``; then each output pixel is
    ``out[y, x] = sum_ij weight[i] * weight[j] * padded[y * stride + i, x * stride + j]``.
    Differentiable with respect to ``input`` (not ``weight``).

    Args:
        input (Tensor): ``(N, C, H, W)`` floating tensor.
        weight (Tensor): ``(2R + 1,)`` taps, on the input's device (cast to its dtype).
        stride (int): subsampling factor. Default: ``1``.
        padding (int): extra padding beyond ``R``. Default: ``0``.
        padding_mode (str): ``'constant'`` (with ``padding_value``), ``'reflect'``,
            ``'replicate'`` or ``'circular'``. Default: ``'constant'``.
        padding_value (float): value of the ``'constant'`` padding. Default: ``0``.

    Returns:
        Tensor: ``(N, C, (H + 2 padding - 1) // stride + 1, (W + 2 padding - 1) // stride + 1)``.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> separable_blur(x, gaussian_kernel(2.0)).shape
        torch.Size([2, 3, 32, 32])
    """
    return _separable_blur(input, weight, stride, padding, padding_mode, padding_value)


def _separable_blur(input, weight, stride, padding, padding_mode, padding_value, input_name="input"):
    # The checks and dispatch of separable_blur; `input_name` is the caller's name for `input`.
    check_tensor(input_name, input, ndim=4)
    check_tensor("weight", weight, ndim=1)
    if weight.shape[0] % 2 != 1:
        raise ValueError(f"weight must have an odd number of taps (2R + 1), got {weight.shape[0]}")
    if weight.device != input.device:
        raise ValueError(f"weight must be on the input's device {input.device}, got {weight.device}")
    if weight.requires_grad:
        raise ValueError("weight must not require grad: separable_blur is differentiable with respect to "
                         "input only (pass weight.detach())")
    if input.shape[-2] == 0 or input.shape[-1] == 0:
        raise ValueError(f"{input_name} must have a non-empty height and width, got shape {tuple(input.shape)}")
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    padding_value = _check_padding(input, (weight.shape[0] - 1) // 2 + padding, padding_mode, padding_value)
    if HAS_EXT and has_kernel(input.device):
        return torch.ops.xaifast.separable_blur(input, weight.to(input.dtype), stride, padding, padding_mode,
                                                padding_value)
    return reference.separable_blur(input, weight, stride, padding, padding_mode, padding_value)


def gaussian_kernel(sigma, device=None, dtype=torch.float32):
    """TorchRay's normalised 1-D Gaussian: ``2 ceil(4 sigma) + 1`` taps summing to one.

    ``f_i = exp(-(i / (sqrt(2) sigma + eps))^2)`` for ``i = -W..W``, ``W = ceil(4 sigma)``, computed
    in float32 (as TorchRay does) and then cast to ``dtype``. ``sigma = 0`` gives ``[1]``.

    Args:
        sigma (float): standard deviation, ``>= 0``.
        device (torch.device, optional): where the taps live. Default: CPU.
        dtype (torch.dtype): dtype of the result. Default: ``torch.float32``.

    Returns:
        Tensor: ``(2 ceil(4 sigma) + 1,)``.

    Example:
        >>> gaussian_kernel(0.5)
        tensor([0.0003, 0.1065, 0.7866, 0.1065, 0.0003])
    """
    sigma = check_real("sigma", sigma, minimum=0)
    width = math.ceil(4 * sigma)
    taps = torch.arange(-width, width + 1, dtype=torch.float32, device=device)
    taps = taps / (_SQRT_TWO_SINGLE * sigma + _EPSILON_SINGLE).to(taps.device)
    taps = torch.exp(-taps * taps)
    taps /= torch.sum(taps)
    return taps.to(dtype)


def imsmooth(tensor, sigma, stride=1, padding=0, padding_mode="constant", padding_value=0):
    r"""Apply a 2-D Gaussian filter to a tensor (TorchRay's ``torchray.utils.imsmooth``).

    The filter is separated into a vertical and a horizontal 1-D Gaussian
    (:func:`gaussian_kernel`, half-width ``W = ceil(4 sigma)``, normalised to sum to one) and runs
    through the compiled ``separable_blur`` op (forward and backward kernels), or its grouped
    ``conv2d`` reference where no kernel is available. The input is padded by ``W + padding`` on
    each side. Results equal TorchRay's, including its quirk for ``padding > 0`` with zero
    constant padding (the extra ``padding`` is applied twice: the output gains ``2 padding`` zero
    rows and ``2 padding`` columns of context).

    Beyond TorchRay: float64/float16/bfloat16 inputs work (TorchRay's float32 filter fails on
    float64), ``'circular'`` padding is accepted, and bad arguments raise ``ValueError``.

    Args:
        tensor (Tensor): ``(N, C, H, W)`` images.
        sigma (float): standard deviation of the Gaussian, ``>= 0`` (``0`` copies the input).
        stride (int): subsampling factor. Default: ``1``.
        padding (int): extra padding. Default: ``0``.
        padding_mode (str): ``'constant'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
            Default: ``'constant'``.
        padding_value (float): value of ``'constant'`` padding. Default: ``0``.

    Returns:
        Tensor: ``(N, C, H', W')`` smoothed images; ``H' = H`` for ``stride=1, padding=0``.

    Example:
        >>> from xaifast.utils import imsmooth
        >>> x = torch.zeros(1, 1, 9, 9); x[..., 4, 4] = 1
        >>> y = imsmooth(x, sigma=1.0)
        >>> float(y.sum())  # doctest: +ELLIPSIS
        1.0...
    """
    check_tensor("tensor", tensor, ndim=4)
    weight = gaussian_kernel(sigma, device=tensor.device, dtype=tensor.dtype)
    padding = check_int("padding", padding, minimum=0)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    if padding > 0 and padding_mode == "constant" and check_real("padding_value", padding_value) == 0:
        # TorchRay pads the columns by `padding` before its vertical pass and the rows again by
        # `padding` after it: reproduce that shape and those numbers.
        padded = F.pad(tensor, (padding, padding, 0, 0))
        out = _separable_blur(padded, weight, stride, padding, padding_mode, padding_value, "tensor")
        return F.pad(out, (0, 0, padding, padding))
    return _separable_blur(tensor, weight, stride, padding, padding_mode, padding_value, "tensor")


if HAS_EXT:

    @torch.library.register_fake("xaifast::separable_blur")
    def _separable_blur_fake(input, weight, stride, padding, padding_mode, padding_value):
        torch._check(input.dim() == 4, lambda: "separable_blur: input must be 4-D")
        torch._check(weight.dim() == 1, lambda: "separable_blur: weight must be 1-D")
        height = (input.shape[2] + 2 * padding - 1) // stride + 1
        width = (input.shape[3] + 2 * padding - 1) // stride + 1
        return input.new_empty((input.shape[0], input.shape[1], height, width))

    @torch.library.register_fake("xaifast::_separable_blur_backward")
    def _separable_blur_backward_fake(grad, weight, input_size, stride, padding, padding_mode):
        torch._check(grad.dim() == 4, lambda: "_separable_blur_backward: grad must be 4-D")
        return grad.new_empty(input_size)

    def _separable_blur_setup(ctx, inputs, output):
        input, weight, stride, padding, padding_mode, _ = inputs
        ctx.save_for_backward(weight)
        ctx.input_size = input.shape
        ctx.args = (stride, padding, padding_mode)

    def _separable_blur_backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        grad_input = torch.ops.xaifast._separable_blur_backward(grad, weight, ctx.input_size, *ctx.args)
        return grad_input, None, None, None, None, None

    torch.library.register_autograd("xaifast::separable_blur", _separable_blur_backward,
                                    setup_context=_separable_blur_setup)

    def _separable_blur_backward_setup(ctx, inputs, output):
        _, weight, _, stride, padding, padding_mode = inputs
        ctx.save_for_backward(weight)
        ctx.args = (stride, padding, padding_mode)

    def _separable_blur_double_backward(ctx, grad_grad):
        # The backward is linear in `grad`: its adjoint is the forward blur with zero padding value.
        (weight,) = ctx.saved_tensors
        stride, padding, padding_mode = ctx.args
        grad = torch.ops.xaifast.separable_blur(grad_grad, weight, stride, padding, padding_mode, 0.0)
        return grad, None, None, None, None, None

    torch.library.register_autograd("xaifast::_separable_blur_backward", _separable_blur_double_backward,
                                    setup_context=_separable_blur_backward_setup)
