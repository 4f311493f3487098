"""RISE ops: masks from their low-resolution grids, and the low-rank saliency accumulation.

``rise_masks`` is a compiled op (``torch.ops.xaifast.rise_masks``, CPU and CUDA kernels, with a
backward kernel for the grids); ``rise_accumulate`` forms ``sum_n scores[n, c] * mask_n`` in the
low-resolution domain with dense matrix products. Both have references in
:mod:`xaifast.reference.rise`.
"""

import torch

from .. import reference
from .._extension import HAS_EXT, has_kernel
from ..reference.rise import rise_geometry
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


def axis_weights(cells, size, dtype=torch.float32, device=None):
    """Bilinear weights of one RISE axis: row ``t`` weighs the grid cells read at ``shift + pixel = t``.

    Args:
        cells (int): grid cells along the axis.
        size (int): mask pixels along the axis.

    Returns:
        Tensor: ``(size + cell, cells)``; the mask of grid ``G`` at shifts ``(dy, dx)`` is
        ``rows[dy:dy + H] @ G @ cols[dx:dx + W].T``.
    """
    cell, cell_up = rise_geometry(cells, size)
    in_len = cells + 2
    positions = torch.arange(cell_up, cell_up + size + cell, dtype=dtype, device=device)
    scale = torch.tensor(in_len, dtype=dtype) / torch.tensor(cell_up * in_len, dtype=dtype)
    src = (scale.to(device) * (positions + 0.5) - 0.5).clamp(min=0)
    p0 = src.floor().long().clamp(max=in_len - 1)
    lam = (src - p0.to(dtype)).clamp(0, 1)
    p1 = p0 + (p0 < in_len - 1).long()

    def unpad(p):
        if cells == 1:
            return torch.zeros_like(p)
        i = p - 1
        return torch.where(i < 0, -i, torch.where(i >= cells, 2 * (cells - 1) - i, i))

    weights = torch.zeros(size + cell, cells, dtype=dtype, device=device)
    rows = torch.arange(size + cell, device=device)
    weights.index_put_((rows, unpad(p0)), 1 - lam, accumulate=True)
    weights.index_put_((rows, unpad(p1)), lam, accumulate=True)
    return weights


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
        self.partial = torch.zeros(images, classes, self.cell_h, self.gh * self.width, dtype=dtype, device=device)
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
        start = 0
        for shift, count in enumerate(counts):
            if count == 0:
                continue
            members = order[start:start + count]
            start += count
            group = lowres[members]
            for image in range(self.images):
                self.partial[image, :, shift].addmm_(scores[image, members].T, group)

    def result(self):
        """``(B, C, H, W)``: the accumulated sums, upsampled."""
        self.flush()
        row_index = torch.arange(self.cell_h, device=self.device)[:, None] + torch.arange(self.height,
                                                                                         device=self.device)
        stacked = self.rows[row_index].permute(1, 0, 2).reshape(self.height, self.cell_h * self.gh)
        lowres = self.partial.reshape(self.images, self.classes, self.cell_h * self.gh, self.width)
        return torch.matmul(stacked, lowres)


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


if HAS_EXT:

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
