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
