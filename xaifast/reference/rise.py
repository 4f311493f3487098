"""References for the RISE ops: TorchRay's mask construction and saliency accumulation.

A RISE mask is a low-resolution binary grid, reflect-padded by one cell, bilinearly upsampled
(``align_corners=False``) so each cell covers ``cell_up = ceil((size + cell) / cells)`` pixels,
where ``cell = ceil(size / cells)``, then cropped to the image size at a random shift in
``[0, cell)``: exactly ``torchray.attribution.rise``'s ``_upsample_reflect`` and crop loop.
"""

import math

import torch
import torch.nn.functional as F


def rise_geometry(cells, size):
    """``(cell, cell_up)`` for one axis: the shift range and the upsampled cell size.

    ``cell = ceil(size / cells)`` bounds the random shift; the grid is upsampled to
    ``cell_up * (cells + 2)`` pixels with ``cell_up = ceil((size + cell) / cells)``.
    224 pixels, 7 cells -> cell 32, cell_up 37.
    """
    cell = math.ceil(size / cells)
    return cell, math.ceil((size + cell) / cells)


def upsample_reflect(grid, height, width):
    """TorchRay's ``_upsample_reflect``: ``(n, 1, gh, gw)`` -> ``(n, 1, height + cell_h, width + cell_w)``."""
    cells_h, cells_w = grid.shape[-2:]
    cell_h, up_h = rise_geometry(cells_h, height)
    cell_w, up_w = rise_geometry(cells_w, width)
    # A single cell has no neighbour to reflect: its padded grid is constant (replicate).
    mode = "reflect" if min(cells_h, cells_w) > 1 else "replicate"
    padded = F.pad(grid, (1, 1, 1, 1), mode=mode)
    upsampled = F.interpolate(padded, (up_h * (cells_h + 2), up_w * (cells_w + 2)), mode="bilinear",
                              align_corners=False)
    return upsampled[:, :, up_h:up_h + height + cell_h, up_w:up_w + width + cell_w]


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


def rise_upsample(partial, height):
    """The last step of the low-rank RISE sum: ``out[c] = sum_dy A_dy @ partial[dy, c]``.

    Args:
        partial (Tensor): ``(cell_h, C, gh, W)``: per row shift ``dy``, per class, the sum of the
            column-interpolated grids ``G_n @ B_dx_n.T`` weighted by the masks' scores.
        height (int): ``H``.

    Returns:
        Tensor: ``(C, H, W)``, with ``A_dy = axis_weights(gh, H)[dy:dy + H]`` (``(H, gh)``).
    """
    cell_h, classes, gh, width = partial.shape
    rows = axis_weights(gh, height, partial.dtype, partial.device)
    index = torch.arange(cell_h, device=partial.device)[:, None] + torch.arange(height, device=partial.device)
    stacked = rows[index].permute(1, 0, 2).reshape(height, cell_h * gh)  # [A_0 ... A_{cell_h - 1}]
    return torch.matmul(stacked, partial.permute(1, 0, 2, 3).reshape(classes, cell_h * gh, width))


def rise_masks(grid, shifts, height, width, input=None):
    """RISE masks from their grids and shifts, optionally multiplied into an image.

    Args:
        grid (Tensor): ``(n, gh, gw)`` low-resolution grids (binary in RISE, any values here).
        shifts (Tensor): ``(n, 2)`` integer shifts ``(dy, dx)``, ``0 <= dy < ceil(height / gh)``,
            ``0 <= dx < ceil(width / gw)``.
        height (int): mask height ``H``.
        width (int): mask width ``W``.
        input (Tensor, optional): ``(C, H, W)`` image to mask.

    Returns:
        Tensor: ``(n, 1, H, W)`` masks, or ``(n, C, H, W)`` masked images when ``input`` is given.
    """
    n = grid.shape[0]
    upsampled = upsample_reflect(grid[:, None], height, width)[:, 0]
    shifts = shifts.to(grid.device)
    rows = shifts[:, 0, None] + torch.arange(height, device=grid.device)
    cols = shifts[:, 1, None] + torch.arange(width, device=grid.device)
    index = torch.arange(n, device=grid.device)[:, None, None]
    masks = upsampled[index, rows[:, :, None], cols[:, None, :]][:, None]
    return masks if input is None else input[None] * masks


def rise_accumulate(scores, grid, shifts, height, width):
    """``saliency[c] = sum_n scores[n, c] * mask_n``: the dense product TorchRay computes.

    Args:
        scores (Tensor): ``(n, C)`` class scores of the masked images.
        grid (Tensor): ``(n, gh, gw)`` grids of the masks.
        shifts (Tensor): ``(n, 2)`` shifts of the masks.
        height (int): mask height ``H``.
        width (int): mask width ``W``.

    Returns:
        Tensor: ``(C, H, W)``.
    """
    masks = rise_masks(grid, shifts, height, width)
    return (scores.transpose(0, 1) @ masks.reshape(masks.shape[0], -1)).reshape(-1, height, width)


def rise(model, input, seed=0, num_masks=8000, num_cells=7, batch_size=32, p=0.5):
    """TorchRay's RISE algorithm, step for step: the reference path of :func:`xaifast.attribution.rise.rise`.

    Per chunk of ``batch_size`` masks: draw the grids (``torch.rand < p``) on the input's device
    and the row, then column shifts on the CPU, from generators seeded with ``seed`` (TorchRay's
    global-generator draws, in the same order); upsample and crop the masks; for each image, score
    the masked batch with ``sigmoid(model(.))`` and add the dense product ``scores.T @ masks`` to the
    saliency. Returns ``(N, C, H, W) / num_masks``. Slow by design: it is the oracle and the
    baseline of the benchmarks.
    """
    num_images, _, height, width = input.shape
    device = input.device
    cell_h, cell_w = math.ceil(height / num_cells), math.ceil(width / num_cells)
    grid_generator = torch.Generator(device=device).manual_seed(seed)
    shift_generator = grid_generator if device.type == "cpu" else torch.Generator().manual_seed(seed)
    saliency = None
    with torch.no_grad():
        for chunk in range((num_masks + batch_size - 1) // batch_size):
            size = min(num_masks - batch_size * chunk, batch_size)
            grid = (torch.rand(size, 1, num_cells, num_cells, device=device, generator=grid_generator) < p).float()
            shift_y = torch.randint(0, cell_h, (size,), generator=shift_generator)
            shift_x = torch.randint(0, cell_w, (size,), generator=shift_generator)
            masks = rise_masks(grid[:, 0], torch.stack([shift_y, shift_x], 1), height, width)
            for image in range(num_images):
                scores = torch.sigmoid(model(input[image:image + 1] * masks))
                if scores.dim() == 4:
                    scores = scores[:, :, 0, 0]
                if saliency is None:
                    saliency = torch.zeros(num_images, scores.shape[1], height, width, device=device)
                partial = (scores.T @ masks.reshape(size, height * width)).reshape(-1, height, width)
                saliency[image] = saliency[image] + partial
    return saliency / num_masks
