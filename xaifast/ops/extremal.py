"""Extremal-perturbation ops: the blur pyramid, the pyramid lookup, the smooth mask and the area
regulariser, with references in :mod:`xaifast.reference.extremal`.

These wrappers check their arguments, then run the compiled kernel where the device has one
(``pyramid_lookup``: CPU and CUDA kernels, forward and backward) and the reference otherwise;
the references are the specification. ``smooth_mask`` runs the fused ``smooth_mask`` kernel
(CPU and CUDA, forward and backward; the banded reference for geometries where a pixel's cell is
not ``y // step``), ``area_loss`` its reference (a selection, not a sort). ``blur_pyramid``
runs on the compiled blur (``imsmooth``), one call per level for the whole batch.
"""

import math
import numbers

import torch

from .._extension import HAS_EXT, has_kernel
from ..reference import extremal as reference
from ._checks import check_choice, check_int, check_real, check_tensor
from .blur import imsmooth

PERTURBATION_TYPES = ("blur", "fade")
POOLING_METHODS = reference.POOLING_METHODS


def blur_pyramid(input, num_levels=8, max_blur=20, type="blur"):
    """``L`` increasingly perturbed copies of each image (TorchRay's ``Perturbation.pyramid``).

    Level ``l`` uses ``t_l = linspace(0, 1, L)[l]`` (float32, as TorchRay): ``'blur'`` smooths
    with TorchRay's ``imsmooth`` at ``sigma = (1 - t_l) * max_blur`` (zero padding), ``'fade'``
    multiplies by ``t_l``. Level 0 is the most perturbed, level ``L - 1`` the image itself.

    Args:
        input (Tensor): ``(N, C, H, W)`` images.
        num_levels (int): ``L >= 2``. Default: ``8``.
        max_blur (float): ``sigma`` of level 0, ``> 0``. Default: ``20``.
        type (str): ``'blur'`` or ``'fade'``. Default: ``'blur'``.

    Returns:
        Tensor: ``(N, L, C, H, W)`` (no gradient is tracked through it by the blur levels'
        callers in this package, but it is differentiable with respect to ``input``).

    Example:
        >>> blur_pyramid(torch.rand(2, 3, 32, 32), num_levels=4).shape
        torch.Size([2, 4, 3, 32, 32])
    """
    check_tensor("input", input, ndim=4)
    num_levels = check_int("num_levels", num_levels, minimum=2)
    max_blur = check_real("max_blur", max_blur)
    if max_blur <= 0:
        raise ValueError(f"max_blur must be > 0, got {max_blur}")
    check_choice("type", type, PERTURBATION_TYPES)
    if type == "fade":
        return reference.blur_pyramid(input, num_levels, max_blur, type)
    # The compiled blur (separable_blur kernel) per level; a one-pass pyramid kernel slots in here.
    levels = [imsmooth(input, sigma) for sigma in reference.level_sigmas(num_levels, max_blur)]
    return torch.stack(levels, dim=1)


def pyramid_lookup(pyramid, mask):
    """Perturbed images: each pixel interpolated between two pyramid levels chosen by the mask.

    ``level = mask * (L - 1)``; ``lo = floor(level)``, ``frac = level - lo``,
    ``hi = min(lo + 1, L - 1)``; output ``(1 - frac) * pyramid[lo] + frac * pyramid[hi]``, the
    split computed once per pixel for all channels (TorchRay's ``Perturbation.apply``). Values
    outside ``[0, 1]`` saturate at the end levels.

    Args:
        pyramid (Tensor): ``(L, C, H, W)`` shared by all masks, or ``(K, L, C, H, W)`` one per mask.
        mask (Tensor): ``(K, 1, H, W)`` in ``[0, 1]``, same dtype and device.

    Returns:
        Tensor: ``(K, C, H, W)``. Differentiable with respect to ``mask`` (through ``frac``).

    Example:
        >>> pyramid = blur_pyramid(torch.rand(1, 3, 32, 32))[0]
        >>> pyramid_lookup(pyramid, torch.rand(4, 1, 32, 32)).shape
        torch.Size([4, 3, 32, 32])
    """
    check_tensor("pyramid", pyramid, ndim=(4, 5))
    check_tensor("mask", mask, ndim=4)
    if mask.shape[1] != 1:
        raise ValueError(f"mask must be (K, 1, H, W), got shape {tuple(mask.shape)}")
    if pyramid.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"mask must have the pyramid's height and width {tuple(pyramid.shape[-2:])}, "
                         f"got {tuple(mask.shape[-2:])}")
    if pyramid.dim() == 5 and pyramid.shape[0] != mask.shape[0]:
        raise ValueError(f"pyramid must hold one pyramid per mask ({mask.shape[0]}), got {pyramid.shape[0]}")
    if pyramid.device != mask.device or pyramid.dtype != mask.dtype:
        raise ValueError(f"mask must match the pyramid's device and dtype ({pyramid.device}, {pyramid.dtype}), "
                         f"got ({mask.device}, {mask.dtype})")
    if HAS_EXT and has_kernel(mask.device) and mask.dtype in (torch.float32, torch.float64):
        return torch.ops.xaifast.pyramid_lookup(pyramid, mask)
    return reference.pyramid_lookup(pyramid, mask)


def _check_geometry(shape, step, sigma):
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2:
        raise ValueError(f"shape must be a (height, width) pair, got {shape!r}")
    shape = tuple(check_int("shape", z, minimum=1) for z in shape)
    step = check_int("step", step, minimum=1)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return shape, step


def mask_geometry(shape, step, sigma):
    """TorchRay's ``MaskGenerator`` layout and weights (:class:`xaifast.reference.extremal.MaskGeometry`).

    Example:
        >>> mask_geometry((224, 224), 7, 21).shape_out
        [260, 260]
    """
    shape, step = _check_geometry(shape, step, sigma)
    return reference.mask_geometry(shape, step, sigma)


def smooth_mask(mask_in, shape, step, sigma, clamp=True, pooling_method="softmax"):
    """Smooth mask from its low-resolution parameters (TorchRay's ``MaskGenerator.generate``).

    Each pixel pools the ``(2r + 1)^2`` parameters around it, weighted by a bump of radius
    ``sigma`` (``r = 1 + ceil(sigma / step)``): ``'softmax'`` (a smooth max,
    ``sum_k v_k softmax(20 v)_k``), ``'sum'`` or ``'sigmoid'``; then clamps to ``[0, 1]``.
    The ``(K, (2r+1)^2, H, W)`` window tensor TorchRay builds is never held whole.

    Args:
        mask_in (Tensor): ``(K, 1, ceil(H / step), ceil(W / step))`` parameters.
        shape (tuple): ``(H, W)`` of the image.
        step (int): pixels per parameter, ``>= 1``.
        sigma (float): bump radius in pixels, ``> 0``.
        clamp (bool): clamp to ``[0, 1]``. Default: ``True``.
        pooling_method (str): ``'softmax'``, ``'sum'`` or ``'sigmoid'``. Default: ``'softmax'``.

    Returns:
        tuple: ``(cropped, full)``: ``(K, 1, H, W)`` and ``(K, 1, *shape_out)`` with a margin of
        ``round(sigma)`` pixels; ``cropped`` is a view of ``full``.

    Example:
        >>> cropped, full = smooth_mask(torch.rand(2, 1, 32, 32), (224, 224), 7, 21)
        >>> cropped.shape, full.shape
        (torch.Size([2, 1, 224, 224]), torch.Size([2, 1, 260, 260]))
    """
    shape, step = _check_geometry(shape, step, sigma)
    check_tensor("mask_in", mask_in, ndim=4)
    expected = [math.ceil(z / step) for z in shape]
    if mask_in.shape[1] != 1 or list(mask_in.shape[2:]) != expected:
        raise ValueError(f"mask_in must be (K, 1, {expected[0]}, {expected[1]}) for shape {shape} and step {step}, "
                         f"got {tuple(mask_in.shape)}")
    if not isinstance(clamp, bool):
        raise TypeError(f"clamp must be a bool, got {type(clamp).__name__}")
    check_choice("pooling_method", pooling_method, POOLING_METHODS)
    geometry = reference.mask_geometry(shape, step, sigma)
    if _smooth_mask_kernel_runs(mask_in.device, mask_in.dtype, geometry):
        weight = geometry.plane_weights(mask_in.device, mask_in.dtype)
        full, _ = torch.ops.xaifast.smooth_mask(mask_in, weight, step, geometry.padding, pooling_method,
                                                reference.COLDNESS)
        return reference.clamp_and_crop(full, geometry, clamp)
    return reference.smooth_mask(mask_in, shape, step, sigma, clamp, pooling_method)


def _smooth_mask_kernel_runs(device, dtype, geometry):
    """Whether :func:`smooth_mask` runs the compiled op (else the banded reference): a kernel for
    ``device``, float32/float64, and a geometry where a pixel's cell is ``y // step``."""
    return HAS_EXT and has_kernel(device) and geometry.regular and dtype in (torch.float32, torch.float64)


def check_areas(areas, name="area"):
    """Area fractions as a list of floats, each strictly between 0 and 1."""
    if isinstance(areas, torch.Tensor):
        areas = areas.reshape(-1).tolist()
    elif isinstance(areas, numbers.Real) and not isinstance(areas, bool):
        areas = [areas]
    if not isinstance(areas, (list, tuple)) or not areas:
        raise ValueError(f"{name} must be a number or a non-empty sequence of numbers in (0, 1), got {areas!r}")
    checked = []
    for value in areas:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
            raise ValueError(f"{name} must hold fractions strictly between 0 and 1, got {value!r}")
        checked.append(float(value))
    return checked


def area_loss(mask, area):
    """TorchRay's area regulariser ``mean((sort(mask) - reference)^2)``, without sorting.

    ``reference`` is ``int(n (1 - area))`` zeros followed by ones; only the ``k``-th smallest
    value matters, found by selection (O(n)): on the CPU by the compiled ``area_targets`` op
    (radix selection, 8 bits per pass over the values still in the running), elsewhere by
    ``kthvalue``. Same value and gradient as the sort-based form; values tied at the threshold are
    split between 0 and 1 as a stable sort orders them.

    Args:
        mask (Tensor): ``(K, ...)`` masks (each row flattened).
        area (float or sequence): target area in ``(0, 1)``, one for all or one per mask.

    Returns:
        Tensor: ``(K,)`` losses, differentiable with respect to ``mask``.

    Example:
        >>> area_loss(torch.tensor([[0.0, 0.2, 0.9, 1.0]]), 0.5)
        tensor([0.0125])
    """
    check_tensor("mask", mask)
    if mask.dim() < 2 or mask.shape[0] == 0 or mask[0].numel() == 0:
        raise ValueError(f"mask must be (K, ...) with K >= 1 non-empty masks, got shape {tuple(mask.shape)}")
    areas = check_areas(area)
    if len(areas) not in (1, mask.shape[0]):
        raise ValueError(f"area must be one number or one per mask ({mask.shape[0]}), got {len(areas)}")
    area = areas if len(areas) > 1 else areas[0]
    if mask.device.type == "cpu" and has_kernel("cpu") and mask.dtype in (torch.float32, torch.float64):
        return reference.area_loss(mask, area, targets=torch.ops.xaifast.area_targets)
    return reference.area_loss(mask, area)


if HAS_EXT:

    @torch.library.register_fake("xaifast::area_targets")
    def _area_targets_fake(rows, zeros):
        torch._check(rows.dim() == 2, lambda: "area_targets: rows must be (K, n)")
        return torch.empty_like(rows, memory_format=torch.contiguous_format)

    @torch.library.register_fake("xaifast::pyramid_lookup")
    def _pyramid_lookup_fake(pyramid, mask):
        torch._check(mask.dim() == 4, lambda: "pyramid_lookup: mask must be (K, 1, H, W)")
        return pyramid.new_empty((mask.shape[0], pyramid.shape[-3], mask.shape[2], mask.shape[3]))

    @torch.library.register_fake("xaifast::_pyramid_lookup_backward")
    def _pyramid_lookup_backward_fake(grad, pyramid, mask):
        return torch.empty_like(mask, memory_format=torch.contiguous_format)

    def _pyramid_lookup_setup(ctx, inputs, output):
        pyramid, mask = inputs
        ctx.save_for_backward(pyramid, mask)

    def _pyramid_lookup_backward(ctx, grad):
        pyramid, mask = ctx.saved_tensors
        grad_pyramid = grad_mask = None
        if ctx.needs_input_grad[1]:
            grad_mask = torch.ops.xaifast._pyramid_lookup_backward(grad.contiguous(), pyramid, mask)
        if ctx.needs_input_grad[0]:  # rarely needed (the pyramid is data): through the reference's adjoint
            with torch.enable_grad():
                copy = pyramid.detach().requires_grad_(True)
                (grad_pyramid,) = torch.autograd.grad(reference.pyramid_lookup(copy, mask.detach()), copy, grad)
        return grad_pyramid, grad_mask

    torch.library.register_autograd("xaifast::pyramid_lookup", _pyramid_lookup_backward,
                                    setup_context=_pyramid_lookup_setup)

    def _smooth_mask_shape(mask_in, weight, padding, step):
        window = math.isqrt(int(weight.shape[0]))
        torch._check(window * window == weight.shape[0], lambda: "smooth_mask: weight must hold window^2 planes")
        torch._check(mask_in.dim() == 4 and mask_in.shape[1] == 1, lambda: "smooth_mask: mask_in must be (K, 1, h, w)")
        mid_h = mask_in.shape[2] + 2 * padding - window + 1
        mid_w = mask_in.shape[3] + 2 * padding - window + 1
        return step * mid_h - step + 1, step * mid_w - step + 1

    @torch.library.register_fake("xaifast::smooth_mask")
    def _smooth_mask_fake(mask_in, weight, step, padding, pooling_method, coldness):
        out_h, out_w = _smooth_mask_shape(mask_in, weight, padding, step)
        stats = 2 if pooling_method == "softmax" else 0
        return (mask_in.new_empty((mask_in.shape[0], 1, out_h, out_w)),
                mask_in.new_empty((mask_in.shape[0], stats, out_h, out_w)))

    @torch.library.register_fake("xaifast::_smooth_mask_backward")
    def _smooth_mask_backward_fake(grad, mask_in, weight, full, stats, step, padding, pooling_method, coldness):
        return torch.empty_like(mask_in, memory_format=torch.contiguous_format)

    def _smooth_mask_setup(ctx, inputs, output):
        mask_in, weight, step, padding, pooling_method, coldness = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)  # no zero-filled gradient for the statistics (0.5 MB at 224)
        ctx.save_for_backward(mask_in, weight, output[0], output[1])
        ctx.arguments = (step, padding, pooling_method, coldness)

    def _smooth_mask_backward(ctx, grad, _grad_stats):
        if grad is None:
            return None, None, None, None, None, None
        mask_in, weight, full, stats = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            raise NotImplementedError("xaifast::smooth_mask: no gradient with respect to weight (a constant of "
                                      "the mask geometry)")
        grad_in = torch.ops.xaifast._smooth_mask_backward(grad, mask_in, weight, full, stats,
                                                          *ctx.arguments)
        return grad_in, None, None, None, None, None

    torch.library.register_autograd("xaifast::smooth_mask", _smooth_mask_backward,
                                    setup_context=_smooth_mask_setup)
