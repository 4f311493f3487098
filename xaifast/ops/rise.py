"""RISE ops: masks from their low-resolution grids, and the low-rank saliency accumulation.

``rise_masks`` is a compiled op (``torch.ops.xaifast.rise_masks``, CPU and CUDA kernels, with a
backward kernel for the grids); ``rise_accumulate`` forms ``sum_n scores[n, c] * mask_n`` in the
low-resolution domain with dense matrix products. Both have references in
:mod:`xaifast.reference.rise`.
"""

import torch

from .. import reference
from .._extension import HAS_EXT, has_kernel
from ..reference.rise import axis_weights, rise_geometry
from ._checks import check_int, check_tensor


def _check_masks_args(grid, shifts, height, width, input):
    check_tensor("grid", grid, ndim=3)
    if not isinstance(shifts, torch.Tensor) or shifts.dtype != torch.int64:
        raise TypeError(f"shifts must be an int64 tensor, got {getattr(shifts, 'dtype', type(shifts).__name__)}")
    if shifts.shape != (grid.shape[0], 2):
        raise ValueError(f"shifts must have shape ({grid.shape[0]}, 2), got {tuple(shifts.shape)}")
    height = check_int("height", height, minimum=grid.shape[1])
    width = check_int("width", width, minimum=grid.shape[2])
    if shifts.device.type == "cpu" and shifts.numel():  # on a GPU the kernel clamps instead of syncing to check
        cell_h, cell_w = rise_geometry(grid.shape[1], height)[0], rise_geometry(grid.shape[2], width)[0]
        low, high = shifts.min(0).values.tolist(), shifts.max(0).values.tolist()
        if min(low) < 0 or high[0] >= cell_h or high[1] >= cell_w:
            raise ValueError(f"shifts must lie in [0, {cell_h}) x [0, {cell_w}) (ceil(H / gh), ceil(W / gw)), "
                             f"got values from {low} to {high}")
    if input is not None:
        check_tensor("input", input, ndim=3)
        if tuple(input.shape[1:]) != (height, width):
            raise ValueError(f"input must be (C, {height}, {width}), got {tuple(input.shape)}")
        if input.device != grid.device or input.dtype != grid.dtype:
            raise ValueError(f"input must match the grid's device and dtype ({grid.device}, {grid.dtype}), "
                             f"got ({input.device}, {input.dtype})")
    return height, width


def rise_masks(grid, shifts, height, width, input=None):
    """RISE masks from their grids and shifts, optionally multiplied into an image.

    Each mask is TorchRay's: the grid reflect-padded by one cell, bilinearly upsampled so each
    cell covers ``ceil((H + cell_h) / gh)`` pixels (``cell_h = ceil(H / gh)``), cropped at
    ``shift``. The kernel computes every pixel directly from the grid (no upsampled tensor, no
    per-mask loop) and, given ``input``, writes the masked images in the same pass.

    Args:
        grid (Tensor): ``(n, gh, gw)`` low-resolution grids (float32 or float64).
        shifts (Tensor): ``(n, 2)`` int64 ``(dy, dx)``, ``0 <= dy < ceil(H / gh)``,
            ``0 <= dx < ceil(W / gw)``, on the grid's device.
        height (int): ``H``, at least ``gh``.
        width (int): ``W``, at least ``gw``.
        input (Tensor, optional): ``(C, H, W)`` image, same dtype and device as ``grid``.

    Returns:
        Tensor: ``(n, 1, H, W)`` masks, or ``(n, C, H, W)`` masked images. Differentiable with
        respect to ``grid`` and ``input``.

    Example:
        >>> grid = (torch.rand(4, 7, 7) < 0.5).float()
        >>> shifts = torch.randint(0, 32, (4, 2))
        >>> rise_masks(grid, shifts, 224, 224).shape
        torch.Size([4, 1, 224, 224])
    """
    height, width = _check_masks_args(grid, shifts, height, width, input)
    if HAS_EXT and has_kernel(grid.device) and grid.dtype in (torch.float32, torch.float64):
        return torch.ops.xaifast.rise_masks(grid, shifts, height, width, input)
    return reference.rise_masks(grid, shifts, height, width, input)


def rise_upsample(partial, height):
    """``out[c] = sum_dy A_dy @ partial[dy, c]``: the last step of the low-rank RISE sum.

    On the CPU a compiled kernel exploits that, within a bilinear segment, the row weights are
    affine in the shift: prefix and suffix sums over the shifts leave 8 rows of work per output
    row instead of ``2 * cell_h``. Elsewhere, the reference's dense product.

    Args:
        partial (Tensor): ``(cell_h, C, gh, W)``, ``cell_h = ceil(H / gh)``.
        height (int): ``H``.

    Returns:
        Tensor: ``(C, H, W)``. Differentiable with respect to ``partial``.

    Example:
        >>> rise_upsample(torch.rand(32, 10, 7, 224), 224).shape
        torch.Size([10, 224, 224])
    """
    check_tensor("partial", partial, ndim=4)
    height = check_int("height", height, minimum=partial.shape[2])
    if partial.shape[0] != rise_geometry(partial.shape[2], height)[0]:
        raise ValueError(f"partial must hold ceil(height / gh) = {rise_geometry(partial.shape[2], height)[0]} "
                         f"row shifts, got {partial.shape[0]}")
    if HAS_EXT and has_kernel(partial.device) and partial.device.type == "cpu" and \
            partial.dtype in (torch.float32, torch.float64):
        return torch.ops.xaifast.rise_upsample(partial, height)
    return reference.rise_upsample(partial, height)


class LowRankAccumulator:
    """Accumulates ``saliency[b, c] += sum_n scores[b, n, c] * mask_n`` in the low-resolution domain.

    Every RISE mask is ``A_dy @ G @ B_dx.T`` (see :func:`axis_weights`). Masks are buffered as
    ``G_n @ B_dx_n.T`` (``gh x W`` values each, shared by all images) with their scores; on
    :meth:`flush`, ``T[b, c, dy] += sum_{n: dy_n = dy} scores[b, n, c] * (G_n @ B_dx_n.T)`` is one
    matrix product per row shift, added in place. :meth:`result` upsamples once per class with
    the stacked ``[A_0 ... A_{cell-1}]``: for 224 x 224 and 7 x 7 cells that is 224 multiply-adds
    per output pixel and class whatever the number of masks, instead of one per mask. Memory:
    ``T`` is about the size of the result, plus a buffer of ``flush_every`` masks.

    Args:
        images (int): ``B``, images sharing the masks.
        classes (int): ``C``, scores per image and mask.
        cells (tuple): ``(gh, gw)``.
        size (tuple): ``(H, W)``.
        dtype (torch.dtype): accumulation dtype. Default: ``torch.float32``.
        device (torch.device, optional): where everything lives.
        flush_every (int): masks buffered between flushes. Default: ``1024``.
    """

    def __init__(self, images, classes, cells, size, dtype=torch.float32, device=None, flush_every=1024):
        self.images, self.classes = images, classes
        (self.gh, self.gw), (self.height, self.width) = cells, size
        self.dtype, self.device = dtype, device
        self.flush_every = flush_every
        self.cell_h = rise_geometry(self.gh, self.height)[0]
        self.rows = axis_weights(self.gh, self.height, dtype, device)
        self.cols = axis_weights(self.gw, self.width, dtype, device)
        # (B, cell_h, C, gh * W): each shift's block is contiguous, so flushes add into it in place.
        # Left uninitialised: each shift's block is written by its first product (a zero fill of
        # ~C x H x W values would cost as much as the whole upsample), zeroed at the end if unused.
        self.partial = torch.empty(images, self.cell_h, classes, self.gh * self.width, dtype=dtype, device=device)
        self._written = [False] * self.cell_h
        self._buffer = []  # (scores (B, b, C), lowres (b, gh * W), dy (b,))
        self._buffered = 0

    def add(self, scores, grid, shifts):
        """Buffer one chunk of masks.

        Args:
            scores (Tensor): ``(B, b, C)`` (or ``(b, C)`` when ``B == 1``).
            grid (Tensor): ``(b, gh, gw)``.
            shifts (Tensor): ``(b, 2)`` int64 ``(dy, dx)``.
        """
        if scores.dim() == 2:
            scores = scores[None]
        shifts = shifts.to(self.device)
        col_index = shifts[:, 1, None] + torch.arange(self.width, device=self.device)
        lowres = torch.bmm(grid.to(self.dtype), self.cols[col_index].transpose(1, 2))
        self._buffer.append((scores.to(self.dtype), lowres.reshape(grid.shape[0], -1), shifts[:, 0]))
        self._buffered += grid.shape[0]
        if self._buffered >= self.flush_every:
            self.flush()

    def flush(self):
        """Add the buffered masks into the low-resolution sums."""
        if not self._buffer:
            return
        scores = torch.cat([entry[0] for entry in self._buffer], 1)
        lowres = torch.cat([entry[1] for entry in self._buffer], 0)
        dy = torch.cat([entry[2] for entry in self._buffer], 0)
        self._buffer, self._buffered = [], 0
        order = torch.argsort(dy, stable=True)
        counts = torch.bincount(dy, minlength=self.cell_h).tolist()
        scores, lowres = scores[:, order], lowres[order]  # grouped by row shift
        start = 0
        for shift, count in enumerate(counts):
            if count == 0:
                continue
            group = slice(start, start + count)
            start += count
            for image in range(self.images):
                matmul_into(self.partial[image, shift], scores[image, group].T, lowres[group],
                            accumulate=self._written[shift])
            self._written[shift] = True

    def result(self):
        """``(B, C, H, W)``: the accumulated sums, upsampled (:func:`rise_upsample`)."""
        self.flush()
        for shift, written in enumerate(self._written):
            if not written:
                self.partial[:, shift].zero_()
                self._written[shift] = True
        shape = (self.cell_h, self.classes, self.gh, self.width)
        if self.images == 1:  # no stacking copy of a (C, H, W) result that may be hundreds of MB
            return rise_upsample(self.partial[0].reshape(shape), self.height)[None]
        return torch.stack([rise_upsample(partial.reshape(shape), self.height) for partial in self.partial])


def rise_accumulate(scores, grid, shifts, height, width):
    """``saliency[c] = sum_n scores[n, c] * mask_n`` without forming any full-size mask.

    The low-rank sum of :class:`LowRankAccumulator` for one image; equals
    :func:`xaifast.reference.rise_accumulate` (the dense product TorchRay computes).

    Args:
        scores (Tensor): ``(n, C)``.
        grid (Tensor): ``(n, gh, gw)``.
        shifts (Tensor): ``(n, 2)`` int64 ``(dy, dx)``.
        height (int): ``H``.
        width (int): ``W``.

    Returns:
        Tensor: ``(C, H, W)``.

    Example:
        >>> grid = (torch.rand(16, 7, 7) < 0.5).float()
        >>> shifts = torch.randint(0, 32, (16, 2))
        >>> rise_accumulate(torch.rand(16, 10), grid, shifts, 224, 224).shape
        torch.Size([10, 224, 224])
    """
    height, width = _check_masks_args(grid, shifts, height, width, None)
    check_tensor("scores", scores, ndim=2)
    if scores.shape[0] != grid.shape[0]:
        raise ValueError(f"scores must have one row per mask ({grid.shape[0]}), got {tuple(scores.shape)}")
    dtype = torch.promote_types(scores.dtype, grid.dtype)
    accumulator = LowRankAccumulator(1, scores.shape[1], tuple(grid.shape[1:]), (height, width), dtype,
                                     grid.device, flush_every=max(1, grid.shape[0]))
    accumulator.add(scores, grid, shifts)
    return accumulator.result()[0]


def matmul_into(out, a, b, accumulate=False):
    """``out = a @ b`` (or ``out += a @ b``) in place, the same bits on every thread count.

    RISE's accumulation runs through this: BLAS's own threading splits sums by the thread count
    (on an AMD EPYC a 10 x 30 @ 30 x 1024 product differed in the last bit between 1 and 2
    threads). On the CPU with the compiled extension the product is cut into blocks that depend
    on the shapes alone, each computed by one thread (``torch.ops.xaifast.matmul_into``);
    elsewhere it is ``torch.mm``/``addmm_`` (cuBLAS is deterministic for fixed shapes).

    Args:
        out (Tensor): ``(M, N)``, float32 or float64, rows contiguous; written in place.
        a (Tensor): ``(M, K)``, the same dtype and device.
        b (Tensor): ``(K, N)``, the same dtype and device.
        accumulate (bool): add to ``out`` instead of overwriting it. Default: ``False``.

    Returns:
        Tensor: ``out``.

    Example:
        >>> out = torch.zeros(10, 1024)
        >>> matmul_into(out, torch.rand(10, 30), torch.rand(30, 1024), accumulate=True).shape
        torch.Size([10, 1024])
    """
    for name, value in (("out", out), ("a", a), ("b", b)):
        check_tensor(name, value, ndim=2)
    if out.device.type == "cpu" and has_kernel("cpu") and out.dtype in (torch.float32, torch.float64):
        torch.ops.xaifast.matmul_into(out, a, b, bool(accumulate))
    elif accumulate:
        out.addmm_(a, b)
    else:
        torch.mm(a, b, out=out)
    return out


if HAS_EXT:

    @torch.library.register_fake("xaifast::matmul_into")
    def _matmul_into_fake(out, a, b, accumulate):
        torch._check(a.dim() == 2 and b.dim() == 2 and out.dim() == 2, lambda: "matmul_into: 2-D tensors only")
        return None

    @torch.library.register_fake("xaifast::rise_upsample")
    def _rise_upsample_fake(partial, height):
        torch._check(partial.dim() == 4, lambda: "rise_upsample: partial must be (cell_h, C, gh, W)")
        return partial.new_empty((partial.shape[1], height, partial.shape[3]))

    def _rise_upsample_setup(ctx, inputs, output):
        partial, height = inputs
        ctx.shape, ctx.dtype, ctx.device = partial.shape, partial.dtype, partial.device
        ctx.height = height

    def _rise_upsample_backward(ctx, grad):
        # Linear in `partial`: the adjoint of [A_0 ... A_{cell-1}] @ (.), by the reference's weights.
        cell_h, classes, gh, width = ctx.shape
        rows = axis_weights(gh, ctx.height, ctx.dtype, ctx.device)
        index = torch.arange(cell_h, device=ctx.device)[:, None] + torch.arange(ctx.height, device=ctx.device)
        stacked = rows[index].permute(1, 0, 2).reshape(ctx.height, cell_h * gh)
        grad_partial = torch.matmul(stacked.T, grad).reshape(classes, cell_h, gh, width).permute(1, 0, 2, 3)
        return grad_partial, None

    torch.library.register_autograd("xaifast::rise_upsample", _rise_upsample_backward,
                                    setup_context=_rise_upsample_setup)

    @torch.library.register_fake("xaifast::rise_masks")
    def _rise_masks_fake(grid, shifts, height, width, input):
        torch._check(grid.dim() == 3, lambda: "rise_masks: grid must be (n, gh, gw)")
        channels = 1 if input is None else input.shape[0]
        return grid.new_empty((grid.shape[0], channels, height, width))

    @torch.library.register_fake("xaifast::_rise_masks_backward")
    def _rise_masks_backward_fake(grad_masks, grid, shifts):
        return grid.new_empty(grid.shape)

    def _rise_masks_setup(ctx, inputs, output):
        grid, shifts, height, width, input = inputs
        ctx.save_for_backward(grid, shifts, input)
        ctx.size = (height, width)

    def _rise_masks_backward(ctx, grad):
        grid, shifts, input = ctx.saved_tensors
        grad_grid = grad_input = None
        if input is None:
            grad_masks = grad
        else:
            grad_masks = (grad * input).sum(1, keepdim=True)
            if ctx.needs_input_grad[4]:
                masks = torch.ops.xaifast.rise_masks(grid, shifts, *ctx.size, None)
                grad_input = (grad * masks).sum(0)
        if ctx.needs_input_grad[0]:
            grad_grid = torch.ops.xaifast._rise_masks_backward(grad_masks.contiguous(), grid, shifts)
        return grad_grid, None, None, None, grad_input

    torch.library.register_autograd("xaifast::rise_masks", _rise_masks_backward, setup_context=_rise_masks_setup)

    def _rise_masks_backward_setup(ctx, inputs, output):
        grad_masks, _, shifts = inputs
        ctx.save_for_backward(shifts)
        ctx.size = tuple(grad_masks.shape[2:])

    def _rise_masks_double_backward(ctx, grad_grad):
        # The backward is linear in grad_masks and its adjoint is the forward mask op itself.
        (shifts,) = ctx.saved_tensors
        return torch.ops.xaifast.rise_masks(grad_grad, shifts, *ctx.size, None), None, None

    torch.library.register_autograd("xaifast::_rise_masks_backward", _rise_masks_double_backward,
                                    setup_context=_rise_masks_backward_setup)
