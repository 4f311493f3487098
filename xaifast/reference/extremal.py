"""References for the extremal-perturbation ops: the blur pyramid, the pyramid lookup, the smooth
mask and the area regulariser.

Each function is the specification its compiled kernel must equal, and TorchRay's arithmetic
(``torchray.attribution.extremal_perturbation``): same float32 level schedule, same lerp between
levels, same mask weights and pooling, same regulariser value and gradient.

Worked geometry (TorchRay's defaults, a 224 x 224 image, ``step=7``, ``sigma=21``): the mask
parameters are ``32 x 32`` (``ceil(224 / 7)``); each parameter is padded by ``padding = 7``,
read through a ``(2 radius + 1)^2 = 9 x 9`` window (``radius = 4``) on a ``38 x 38`` grid
(``shape_mid``), each cell of which covers ``7 x 7`` pixels (``shape_up = 266``); the full mask
keeps ``266 - 7 + 1 = 260`` pixels a side (``shape_out``), and the cropped mask is its
``[21:245, 21:245]`` window.
"""

import functools
import math

import torch
import torch.nn.functional as F

from ..ops.blur import gaussian_kernel
from .blur import separable_blur

POOLING_METHODS = ("softmax", "sum", "sigmoid")

# TorchRay's MaskGenerator.coldness: the temperature of the softmax and sigmoid poolings.
COLDNESS = 20

# Values of one chunk of the smooth-mask computation (per mask): about 2 MB of float32, so a
# chunk and its temporaries stay in cache while nothing of size (2r+1)^2 x H x W is allocated.
_CHUNK_VALUES = 1 << 19


def level_sigmas(num_levels, max_blur):
    """TorchRay's blur of each pyramid level, ``(1 - linspace(0, 1, L)[l]) * max_blur`` in float32.

    Level 0 is the most blurred, level ``L - 1`` the input itself (``sigma = 0``).
    8 levels, max_blur 20 -> 20, 17.142857, 14.285715, ..., 2.857143, 0.

    Returns:
        list of float: ``L`` standard deviations (the float32 values, as Python floats).
    """
    fractions = torch.linspace(0, 1, num_levels)
    return [float((1 - fraction) * max_blur) for fraction in fractions]


def blur_pyramid(input, num_levels, max_blur, type):
    """Perturbation pyramid: ``L`` increasingly perturbed copies of each image.

    Level ``l`` (``t_l = linspace(0, 1, L)[l]``, float32) is, for ``type='blur'``, the image
    smoothed by TorchRay's ``imsmooth`` with ``sigma = (1 - t_l) * max_blur`` and zero padding,
    and for ``type='fade'``, ``input * t_l``. Level ``L - 1`` is the image itself.

    Args:
        input (Tensor): ``(N, C, H, W)`` images.
        num_levels (int): ``L >= 2``.
        max_blur (float): blur of level 0 (``'blur'`` only).
        type (str): ``'blur'`` or ``'fade'``.

    Returns:
        Tensor: ``(N, L, C, H, W)``.
    """
    levels = []
    if type == "blur":
        for sigma in level_sigmas(num_levels, max_blur):
            levels.append(separable_blur(input, gaussian_kernel(sigma, device=input.device, dtype=input.dtype)))
    else:
        for fraction in torch.linspace(0, 1, num_levels):
            levels.append(input * fraction.to(input.device))
    return torch.stack(levels, dim=1)


def pyramid_lookup(pyramid, mask):
    """Perturbed images: each pixel read from the pyramid at the level its mask value selects.

    With ``level = mask * (L - 1)``, ``lo = floor(level)``, ``frac = level - lo`` and
    ``hi = min(lo + 1, L - 1)``, the output is ``(1 - frac) * pyramid[lo] + frac * pyramid[hi]``
    (mask 0.3 with 8 levels -> level 2.1: lo 2, hi 3, frac 0.1). One split per pixel serves
    every channel. Differentiable with respect to ``mask`` through ``frac`` only (and to
    ``pyramid``). Values outside ``[0, 1]`` saturate at the end levels (their gradient is 0).

    Args:
        pyramid (Tensor): ``(L, C, H, W)`` shared by every mask, or ``(K, L, C, H, W)``, one per mask.
        mask (Tensor): ``(K, 1, H, W)``, values in ``[0, 1]``.

    Returns:
        Tensor: ``(K, C, H, W)``.
    """
    num_masks = mask.shape[0]
    num_levels, channels = pyramid.shape[-4], pyramid.shape[-3]
    if pyramid.dim() == 4:
        pyramid = pyramid.unsqueeze(0).expand(num_masks, *pyramid.shape)
    level = mask.unsqueeze(1) * (num_levels - 1)  # (K, 1, 1, H, W)
    lo = level.floor()
    frac = level - lo
    lo = lo.long()
    hi = (lo + 1).clamp(0, num_levels - 1)
    lo = lo.clamp(0, num_levels - 1)
    size = (num_masks, 1, channels) + tuple(mask.shape[2:])
    below = torch.gather(pyramid, 1, lo.expand(size))
    above = torch.gather(pyramid, 1, hi.expand(size))
    return ((1 - frac) * below + frac * above).squeeze(1)


class MaskGeometry:
    """TorchRay's ``MaskGenerator`` layout and weights for one ``(shape, step, sigma)``.

    Attributes mirror TorchRay's names: ``margin`` (``sigma``), ``padding``
    (``1 + ceil((margin + sigma) / step)``), ``radius`` (``1 + ceil(sigma / step)``),
    ``shape_in``, ``shape_mid``, ``shape_up``, ``shape_out`` (lists), ``crop`` (``round(margin)``).
    ``rows``/``cols`` give, for each full-mask pixel, the ``shape_mid`` cell it reads (torch's
    nearest upsampling: ``floor(u * float32(mid / up))``). ``regular`` says that this is
    ``u // step`` on both axes (it is not for some large steps, e.g. 41, where float32 rounding
    shifts a few pixels to the previous cell). ``periodic`` says that every weight depends
    only on the pixel's position inside its ``step x step`` cell (true unless float32 rounding of
    a non-integral ``sigma`` makes the weights vary in their last bits).
    """

    def __init__(self, shape, step, sigma):
        self.shape = tuple(int(z) for z in shape)
        self.step = step
        self.sigma = sigma
        self.margin = sigma
        self.padding = 1 + math.ceil((self.margin + sigma) / step)
        self.radius = 1 + math.ceil(sigma / step)
        self.window = 2 * self.radius + 1
        self.shape_in = [math.ceil(z / step) for z in self.shape]
        self.shape_mid = [z + 2 * self.padding - self.window + 1 for z in self.shape_in]
        self.shape_up = [step * z for z in self.shape_mid]
        self.shape_out = [z - step + 1 for z in self.shape_up]
        self.crop = round(self.margin)
        self.rows, row_offsets = self._axis(0)
        self.cols, col_offsets = self._axis(1)
        self.regular = all(torch.equal(cells, torch.arange(len(cells)) // step) for cells in (self.rows, self.cols))
        # TorchRay's kernel of the distance (in units of sigma) between a pixel and a cell centre.
        squared = row_offsets[:, None, :, None] ** 2 + col_offsets[None, :, None, :] ** 2
        delta = torch.sqrt(squared)
        weight = torch.exp(-2 * ((delta / sigma - .5).clamp(min=0) ** 2))
        weight = weight.reshape(self.window ** 2, *self.shape_out)  # ((2r+1)^2, H_out, W_out), float32
        self._cell = self._cell_weights(weight)
        self.periodic = self.regular and self._tile(self._cell).equal(weight)
        # A periodic geometry keeps only one cell of weights (81 x 7 x 7 instead of 81 x 260 x 260).
        self._weight = None if self.periodic else weight
        self._cache = {}

    def _axis(self, dim):
        out, mid, up = self.shape_out[dim], self.shape_mid[dim], self.shape_up[dim]
        pixels = torch.arange(out, dtype=torch.float32)
        scale = torch.tensor(mid, dtype=torch.float32) / torch.tensor(up, dtype=torch.float32)
        cells = torch.floor(scale * pixels)
        # The centre of cell i + k - padding, read at window offset k, relative to each pixel.
        centres = cells[None, :] + torch.arange(self.window, dtype=torch.float32)[:, None] - self.padding
        offsets = pixels - (self.margin + self.step * centres)  # (2r+1, out): same float32 ops as TorchRay
        return cells.long().clamp(max=mid - 1), offsets

    def _cell_weights(self, weight):
        step = self.step
        cell = weight[:, :step, :step]
        if cell.shape[1:] != (step, step):  # a mask smaller than one cell: never periodic in use
            cell = F.pad(cell, (0, step - cell.shape[2], 0, step - cell.shape[1]))
        return cell

    def _tile(self, cell):
        """``((2r+1)^2, step, step)`` -> ``((2r+1)^2, H_out, W_out)`` by repetition."""
        mid_h, mid_w = self.shape_mid
        tiled = cell[:, None, :, None, :].expand(-1, mid_h, -1, mid_w, -1)
        return tiled.reshape(-1, *self.shape_up)[:, :self.shape_out[0], :self.shape_out[1]]

    def block_weights(self, device, dtype):
        """Weights laid out as the ``(2r+1)^2 x mid_h x step x mid_w x step`` blocks (regular only).

        Periodic: ``((2r+1)^2, 1, step, 1, step)``, broadcast over the cells; otherwise the full
        weights zero-padded to ``shape_up``. Cached per device and dtype.
        """
        key = (torch.device(device), dtype)
        if key not in self._cache:
            step = self.step
            if self.periodic:
                blocks = self._cell.reshape(-1, 1, step, 1, step)
            else:
                pad_h, pad_w = self.shape_up[0] - self.shape_out[0], self.shape_up[1] - self.shape_out[1]
                blocks = F.pad(self._weight, (0, pad_w, 0, pad_h))
                blocks = blocks.reshape(-1, self.shape_mid[0], step, self.shape_mid[1], step)
            self._cache[key] = blocks.to(device=device, dtype=dtype)
        return self._cache[key]

    def plane_weights(self, device, dtype):
        """The weights as the ``smooth_mask`` kernels read them, at ``(y % h, x % w)``.

        Periodic: one cell, ``((2r+1)^2, step, step)``; otherwise the full
        ``((2r+1)^2, H_out, W_out)``. Cached per device and dtype.
        """
        key = ("planes", torch.device(device), dtype)
        if key not in self._cache:
            weight = self._cell if self.periodic else self._weight
            self._cache[key] = weight.to(device=device, dtype=dtype).contiguous()
        return self._cache[key]

    def full_weight(self, device, dtype):
        """TorchRay's ``MaskGenerator.weight`` without its leading 1: ``((2r+1)^2, H_out, W_out)``."""
        weight = self._tile(self._cell) if self.periodic else self._weight
        return weight.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=8)
def mask_geometry(shape, step, sigma):
    """The (cached) :class:`MaskGeometry` of ``(shape, step, sigma)``; ``shape`` a tuple of 2 ints."""
    return MaskGeometry(shape, step, sigma)


def _pool(values, pooling_method, coldness=COLDNESS):
    """TorchRay's pooling of the weighted window values over dim 1."""
    if pooling_method == "softmax":
        if coldness == float("inf"):
            return values.max(dim=1)[0]
        return (values * F.softmax(coldness * values, dim=1)).sum(dim=1)
    if pooling_method == "sum":
        return values.sum(dim=1)
    if coldness == float("inf"):
        return (values.sum(dim=1) - 5 > 0).to(values.dtype)
    return torch.sigmoid(coldness * values.sum(dim=1) - 3)


def _band_rows(geometry):
    """Cell rows per band: a fixed budget per mask, so a mask's numbers never depend on K."""
    per_row = geometry.window ** 2 * geometry.step * geometry.shape_up[1]
    return max(1, min(geometry.shape_mid[0], _CHUNK_VALUES // per_row))


def _bands(geometry, num_masks):
    """``(mask, first cell row, last cell row)`` of every band, mask by mask."""
    band = _band_rows(geometry)
    rows = geometry.shape_mid[0]
    return [(k, first, min(first + band, rows)) for k in range(num_masks) for first in range(0, rows, band)]


class _BlockPooling(torch.autograd.Function):
    """Pooled (unclamped) full mask, computed a band of cells at a time, with its own backward.

    Forward: for one mask and a band of ``n`` cell rows, the weighted window values
    ``(1, (2r+1)^2, n, step, mid_w, step)`` are the unfolded parameters (one value per cell,
    shared by its ``step x step`` pixels) times the block weights; they are pooled with
    TorchRay's expressions and dropped. Backward recomputes them band by band:
    ``d out / d v_k = p_k (1 + c (v_k - out))`` for softmax pooling (``p = softmax(c v)``),
    ``1`` for sum, ``c out (1 - out)`` for sigmoid; the weighted sum over each cell's pixels
    gives the gradient of the unfolded parameters, and ``fold`` (the adjoint of ``unfold``)
    that of the parameters. Masks are done one at a time so that each mask's numbers are the
    same whatever the batch.
    """

    @staticmethod
    def forward(ctx, mask_in, geometry, pooling_method):
        num_masks = mask_in.shape[0]
        mid_h, mid_w = geometry.shape_mid
        step = geometry.step
        unfolded = F.unfold(mask_in, geometry.window, padding=geometry.padding)
        unfolded = unfolded.reshape(num_masks, -1, mid_h, mid_w)
        blocks = geometry.block_weights(mask_in.device, mask_in.dtype)
        pooled = mask_in.new_empty(num_masks, mid_h, step, mid_w, step)
        for k, first, last in _bands(geometry, num_masks):
            weights = blocks if blocks.shape[1] == 1 else blocks[:, first:last]
            values = unfolded[k:k + 1, :, first:last, None, :, None] * weights
            if pooling_method == "softmax":  # TorchRay's expression, the product done in place
                share = F.softmax(COLDNESS * values, dim=1)
                pooled[k:k + 1, first:last] = share.mul_(values).sum(dim=1)
            else:
                pooled[k:k + 1, first:last] = _pool(values, pooling_method)
        ctx.geometry = geometry
        ctx.pooling_method = pooling_method
        ctx.save_for_backward(unfolded, pooled)
        out_h, out_w = geometry.shape_out
        return pooled.reshape(num_masks, 1, *geometry.shape_up)[:, :, :out_h, :out_w].contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        unfolded, pooled = ctx.saved_tensors
        geometry, pooling_method = ctx.geometry, ctx.pooling_method
        num_masks = unfolded.shape[0]
        mid_h, mid_w = geometry.shape_mid
        step = geometry.step
        out_h, out_w = geometry.shape_out
        grad_up = grad.new_zeros(num_masks, *geometry.shape_up)
        grad_up[:, :out_h, :out_w] = grad[:, 0]
        grad_up = grad_up.reshape(num_masks, 1, mid_h, step, mid_w, step)
        pooled = pooled.unsqueeze(1)
        if pooling_method == "softmax":
            # d out / d v = p (1 + c v - c out): with g the incoming gradient,
            # g d out / d v = p (offset + v * slope), offset = g (1 - c out), slope = c g.
            slope = COLDNESS * grad_up
            offset = grad_up * (1 - COLDNESS * pooled)
        elif pooling_method == "sigmoid":
            grad_up = grad_up * (COLDNESS * pooled * (1 - pooled))
        blocks = geometry.block_weights(grad.device, unfolded.dtype)
        grad_unfolded = torch.empty_like(unfolded)
        for k, first, last in _bands(geometry, num_masks):
            weights = blocks if blocks.shape[1] == 1 else blocks[:, first:last]
            band = (slice(k, k + 1), slice(None), slice(first, last))
            if pooling_method == "softmax":
                values = unfolded[k:k + 1, :, first:last, None, :, None] * weights
                share = F.softmax(COLDNESS * values, dim=1)
                grad_values = torch.addcmul(offset[band], values, slope[band]).mul_(share).mul_(weights)
            else:
                grad_values = grad_up[band] * weights
            grad_unfolded[band] = grad_values.sum(dim=(3, 5))
        grad_in = F.fold(grad_unfolded.reshape(num_masks, unfolded.shape[1], -1), tuple(geometry.shape_in),
                         geometry.window, padding=geometry.padding)
        return grad_in, None, None


def smooth_mask_dense(mask_in, geometry, clamp=True, pooling_method="softmax", coldness=COLDNESS):
    """TorchRay's ``MaskGenerator.generate``, literally: materialises ``(K, (2r+1)^2, H, W)``.

    The specification of :func:`smooth_mask`, and its implementation for the geometries the
    banded form does not cover (not :attr:`MaskGeometry.regular`) and for a changed
    ``coldness`` (``float('inf')`` included, as in TorchRay).
    """
    num_masks = mask_in.shape[0]
    unfolded = F.unfold(mask_in, geometry.window, padding=geometry.padding)
    values = unfolded.reshape(num_masks, -1, *geometry.shape_mid)
    values = F.interpolate(values, size=geometry.shape_up, mode="nearest")
    values = values[:, :, :geometry.shape_out[0], :geometry.shape_out[1]]
    values = geometry.full_weight(mask_in.device, mask_in.dtype) * values
    full = _pool(values, pooling_method, coldness).unsqueeze(1)
    return clamp_and_crop(full, geometry, clamp)


def clamp_and_crop(full, geometry, clamp):
    """``(cropped, full)`` of a pooled full mask: clamped to ``[0, 1]`` if ``clamp``, then the
    image-sized window at offset ``round(sigma)`` (a view)."""
    if clamp:
        full = full.clamp(min=0, max=1)
    top = geometry.crop
    return full[:, :, top:top + geometry.shape[0], top:top + geometry.shape[1]], full


def smooth_mask(mask_in, shape, step, sigma, clamp=True, pooling_method="softmax"):
    """TorchRay's smooth mask (``MaskGenerator.generate``) from its low-resolution parameters.

    Every parameter cell, zero-padded by ``padding``, spreads over the ``step x step`` pixels
    of its cell and their neighbours through ``weight`` (a bump of radius ``sigma``); each pixel
    pools the ``(2r+1)^2`` weighted values of its window: ``softmax`` (``sum_k v_k softmax(20 v)_k``,
    a smooth max), ``sum``, or ``sigmoid`` (``sigmoid(20 sum_k v_k - 3)``). The full mask,
    clamped to ``[0, 1]`` if ``clamp``, has ``shape_out`` pixels; the cropped mask is its
    ``shape`` window at offset ``round(sigma)``.

    Computed a band of cell rows at a time with a hand-written backward: neither
    ``(K, (2r+1)^2, H, W)`` nor its softmax is ever held whole (see :class:`_BlockPooling`).

    Args:
        mask_in (Tensor): ``(K, 1, *shape_in)`` parameters, ``shape_in = ceil(shape / step)``.
        shape (tuple): ``(H, W)`` of the cropped mask (the image).
        step (int): pixels per parameter cell.
        sigma (float): bump radius, in pixels, ``> 0``.
        clamp (bool): clamp the pooled mask to ``[0, 1]``. Default: ``True``.
        pooling_method (str): ``'softmax'``, ``'sum'`` or ``'sigmoid'``. Default: ``'softmax'``.

    Returns:
        tuple: ``(cropped, full)``, ``(K, 1, H, W)`` and ``(K, 1, *shape_out)`` (``cropped`` is
        a view of ``full``). Differentiable with respect to ``mask_in``.
    """
    geometry = mask_geometry(tuple(int(z) for z in shape), step, sigma)
    if not geometry.regular:
        return smooth_mask_dense(mask_in, geometry, clamp, pooling_method)
    full = _BlockPooling.apply(mask_in, geometry, pooling_method)
    return clamp_and_crop(full, geometry, clamp)


def _reference_counts(area, size):
    """TorchRay's reference vector for ``area``: ``int(size * (1 - area))`` zeros, then ones."""
    zeros = int(size * (1 - area))
    return zeros, size - zeros


def area_targets(rows, zeros):
    """The 0/1 step each row of ``rows`` is compared with, in the row's own order.

    Row ``r`` gets ones on its ``n - zeros[r]`` largest values and zeros elsewhere, values tied
    at the threshold split as a stable ascending sort orders them (the last ties in index order
    take the ones). Only the ``(zeros[r] + 1)``-th smallest value ``t`` is needed
    (``kthvalue``, O(n)): values above ``t`` get 1, values below 0. The specification of the
    ``area_targets`` kernel for rows without NaN; for NaN the kernel follows ``torch.sort``
    (NaN last), which this ``kthvalue`` form does not.

    Args:
        rows (Tensor): ``(K, n)``.
        zeros (sequence of int): ``K`` counts in ``[0, n]``.

    Returns:
        Tensor: ``(K, n)`` of 0 and 1, the dtype of ``rows``; no gradient.
    """
    size = rows.shape[1]
    ones = torch.zeros_like(rows)
    groups = {}
    for index, count in enumerate(zeros):
        groups.setdefault(int(count), []).append(index)
    with torch.no_grad():
        for count, indices in groups.items():
            num_ones = size - count
            if num_ones == 0:
                continue
            chosen = rows if len(indices) == rows.shape[0] else rows[indices]
            if count == 0:
                top = torch.ones_like(chosen)
            else:
                threshold = torch.kthvalue(chosen, count + 1, dim=1, keepdim=True).values
                above = chosen > threshold
                tied = chosen == threshold
                # The last `missing` ties in index order take the remaining ones: the tie of
                # rank j (1-based, cumulative count) does when j > ties - missing.
                missing = num_ones - above.sum(1, keepdim=True, dtype=torch.int32)
                rank = tied.cumsum(1, dtype=torch.int32)
                top = (above | (tied & (rank > rank[:, -1:] - missing))).to(rows.dtype)
            if len(indices) == rows.shape[0]:
                ones = top
            else:
                ones[indices] = top
    return ones


def area_loss(mask, area, targets=area_targets):
    """TorchRay's area regulariser, ``mean((sort(mask) - reference)^2)``, by selection.

    TorchRay's ``reference`` is a step: ``z = int(n (1 - area))`` zeros then ``n - z`` ones, so
    the sorted mask is compared with 0 on its ``z`` smallest values and with 1 on the others
    (:func:`area_targets` puts that step back in the mask's order).

    Value and gradient equal the sort-based ones. With ties at the threshold, which tied values
    take the ones does not change the value but does change the gradient: this follows a
    stable sort (``torch.sort(..., stable=True)``, which is also what a CUDA sort does);
    torch's default CPU sort orders equal values arbitrarily.

    Args:
        mask (Tensor): ``(K, ...)`` masks, one per row once flattened.
        area (float or sequence): target area fraction in ``(0, 1)``, one for all masks or
            one per mask.
        targets (callable): ``(rows, zeros) -> (K, n)`` step, :func:`area_targets` or the
            compiled op. Default: :func:`area_targets`.

    Returns:
        Tensor: ``(K,)`` losses. Differentiable with respect to ``mask``.
    """
    return (area_residuals(mask, area, targets) ** 2).mean(dim=1)


def area_residuals(mask, area, targets=area_targets):
    """``(K, n)``: each flattened mask minus its step (the terms :func:`area_loss` squares and
    averages). Same arguments as :func:`area_loss`."""
    rows = mask.reshape(mask.shape[0], -1)
    size = rows.shape[1]
    areas = [area] * rows.shape[0] if isinstance(area, (int, float)) else [float(a) for a in area]
    ones = targets(rows.detach(), [_reference_counts(value, size)[0] for value in areas])
    return rows - ones
