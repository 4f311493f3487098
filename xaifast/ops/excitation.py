"""Excitation-backprop ops: ``ebp_normalize`` (``grad / (output + eps)``) and ``ebp_product``
(``input * grad``), fused elementwise kernels (one pass, no temporaries) with references in
:mod:`xaifast.reference.excitation`.

The excitation-backprop rule of a linear layer ``f`` is
``p_in = x * f*(x, W+, p_out / (f(x, W+) + eps))``: ``ebp_normalize`` is the division,
``ebp_product`` the final product.
"""

import torch

from .. import reference
from .._extension import HAS_EXT, has_kernel
from ._checks import check_real, check_tensor

_KERNEL_DTYPES = (torch.float32, torch.float64)


def _check_pair(first_name, first, second_name, second):
    check_tensor(first_name, first)
    check_tensor(second_name, second)
    if first.shape != second.shape:
        raise ValueError(f"{second_name} must have the shape of {first_name} {tuple(first.shape)}, "
                         f"got {tuple(second.shape)}")
    if first.device != second.device:
        raise ValueError(f"{second_name} must be on {first_name}'s device {first.device}, got {second.device}")


def _use_kernel(a, b):
    return HAS_EXT and has_kernel(a.device) and a.dtype == b.dtype and a.dtype in _KERNEL_DTYPES


def ebp_normalize(grad, output, eps=1e-20):
    """``grad / (output + eps)`` in one pass.

    Args:
        grad (Tensor): incoming excitation, any shape, floating.
        output (Tensor): the layer's response with ``W+`` and no bias, same shape and device.
        eps (float): stabiliser added to ``output``. Default: ``1e-20`` (TorchRay's).

    Returns:
        Tensor: same shape. Differentiable with respect to both tensors.

    Example:
        >>> ebp_normalize(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0]))
        tensor([0.5000, 0.5000])
    """
    _check_pair("grad", grad, "output", output)
    eps = check_real("eps", eps)
    if _use_kernel(grad, output):
        return torch.ops.xaifast.ebp_normalize(grad, output, eps)
    return reference.ebp_normalize(grad, output, eps)


def ebp_product(input, grad):
    """``input * grad`` in one pass (the last step of the excitation-backprop rule).

    Args:
        input (Tensor): the layer's input, any shape, floating.
        grad (Tensor): back-projected normalised excitation, same shape and device.

    Returns:
        Tensor: same shape. Differentiable with respect to both tensors.

    Example:
        >>> ebp_product(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.5]))
        tensor([3., 1.])
    """
    _check_pair("input", input, "grad", grad)
    if _use_kernel(input, grad):
        return torch.ops.xaifast.ebp_product(input, grad)
    return reference.ebp_product(input, grad)


if HAS_EXT:

    def _is_dense(t):
        # at::Tensor::is_non_overlapping_and_dense: by increasing stride, each stride is the
        # product of the sizes before it (size-1 dimensions ignored).
        expected = 1
        for stride, size in sorted((st, n) for st, n in zip(t.stride(), t.shape) if n != 1):
            if stride != expected:
                return False
            expected *= size
        return True

    def _output_like(a, b):
        # As the kernels: the operands' layout when they share one dense layout, else contiguous.
        if a.stride() == b.stride() and _is_dense(a):
            return torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device=a.device)
        return torch.empty_like(a, memory_format=torch.contiguous_format)

    @torch.library.register_fake("xaifast::ebp_normalize")
    def _ebp_normalize_fake(grad, output, eps):
        torch._check(grad.shape == output.shape, lambda: "ebp_normalize: grad and output must have one shape")
        return _output_like(grad, output)

    @torch.library.register_fake("xaifast::ebp_product")
    def _ebp_product_fake(input, grad):
        torch._check(input.shape == grad.shape, lambda: "ebp_product: input and grad must have one shape")
        return _output_like(input, grad)

    def _normalize_setup(ctx, inputs, output):
        grad, out, eps = inputs
        ctx.save_for_backward(grad, out)
        ctx.eps = eps

    def _normalize_backward(ctx, upstream):
        grad, out = ctx.saved_tensors
        ratio = torch.ops.xaifast.ebp_normalize(upstream, out, ctx.eps)  # upstream / (out + eps)
        return ratio, -torch.ops.xaifast.ebp_normalize(ratio * grad, out, ctx.eps), None

    torch.library.register_autograd("xaifast::ebp_normalize", _normalize_backward, setup_context=_normalize_setup)

    def _product_setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def _product_backward(ctx, upstream):
        input, grad = ctx.saved_tensors
        return torch.ops.xaifast.ebp_product(upstream, grad), torch.ops.xaifast.ebp_product(upstream, input)

    torch.library.register_autograd("xaifast::ebp_product", _product_backward, setup_context=_product_setup)
