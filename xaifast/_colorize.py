"""``xaifast.image.colorize``: batched heatmaps to RGB through a compiled palette lookup."""

import numbers

import numpy as np
import torch

from . import reference
from ._extension import HAS_EXT, has_kernel


def _as_tensor(heatmaps):
    if isinstance(heatmaps, torch.Tensor):
        return heatmaps.detach()
    if isinstance(heatmaps, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(heatmaps))
    raise TypeError(f"heatmaps must be a torch.Tensor or a numpy array, got {type(heatmaps).__name__}")


def _maps(heatmaps):
    maps = _as_tensor(heatmaps)
    if maps.dim() == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.dim() != 3:
        raise ValueError(f"heatmaps must be (N, H, W) or (N, 1, H, W) single-channel maps, got shape "
                         f"{tuple(maps.shape)}")
    if maps.numel() == 0:
        raise ValueError(f"heatmaps must not be empty, got shape {tuple(maps.shape)}")
    if maps.dtype == torch.bool or maps.is_complex():
        raise TypeError(f"heatmaps must hold real numbers, got {maps.dtype}")
    return maps


def _given_bound(name, value, count, device):
    """A user bound as numpy would hold it: float32 stays float32, anything else is float64."""
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
    elif isinstance(value, (numbers.Real, np.generic, np.ndarray, list, tuple)) and not isinstance(value, bool):
        array = np.asarray(value)
    else:
        raise TypeError(f"{name} must be None, a real number or one number per map, got {type(value).__name__}")
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] not in (1, count)):
        raise ValueError(f"{name} must be a number or one number per map ({count}), got shape {array.shape}")
    dtype = torch.float32 if array.dtype == np.float32 else torch.float64
    return torch.as_tensor(array.astype(np.float64), device=device).to(dtype).reshape(-1).expand(count).contiguous()


def colorize(heatmaps, cmap="bwr", vmin=None, vmax=None, symmetric=False, level=1.0, *, out=None):
    """Colour a batch of single-channel heatmaps: ``(N, H, W, 3)`` uint8 RGB.

    Pixel-identical to ``imgify(map, vmin, vmax, cmap, level, symmetric).convert('RGB')`` of each
    map on its own (zennit's numbers): per map, automatic bounds are its min and max (or
    ``-max|x|, max|x|`` when ``symmetric``), then
    ``index = trunc(clip((x - vmin) / (vmax - vmin) * 255, 0, 255))`` (NaN -> 0, in numpy's dtypes:
    a Python-number bound makes it float64) and ``palette(cmap, level)[index]``. Normalisation,
    index and lookup run in one pass of a compiled kernel, on the CPU or the GPU (a CUDA tensor
    stays on its GPU). uint8 maps are used as palette indices directly, as in imgify;
    float16/bfloat16 are computed in float32 and other integers in float64.

    Args:
        heatmaps (Tensor or numpy.ndarray): ``(N, H, W)`` or ``(N, 1, H, W)``.
        cmap (str or ColorMap): a built-in name (``'bwr'``, ``'coldnhot'``, ...) or a CMSL source.
            Default: ``'bwr'``.
        vmin (float, sequence or None): lower bound, for all maps or one per map. Default: auto.
        vmax (float, sequence or None): upper bound. Default: auto.
        symmetric (bool): automatic bounds symmetric around 0. Default: ``False``.
        level (float): palette level, as :func:`palette`. Default: ``1.0``.
        out (Tensor, optional): a contiguous ``(N, H, W, 3)`` uint8 tensor on the heatmaps' device
            to write into (keyword only, beyond zennit): reusing one buffer across batches saves
            the page faults of a fresh allocation, which cost as much as the colouring itself.

    Returns:
        Tensor: ``(N, H, W, 3)`` uint8 on the heatmaps' device (``out`` when given).

    Example:
        >>> rgb = colorize(torch.randn(8, 64, 64), cmap='coldnhot', symmetric=True)
        >>> rgb.shape, rgb.dtype
        (torch.Size([8, 64, 64, 3]), torch.uint8)
    """
    from .image import palette

    maps = _maps(heatmaps)
    table = torch.from_numpy(np.ascontiguousarray(palette(cmap, level))).to(maps.device)
    if out is not None:
        expected = (*maps.shape, 3)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.uint8 or tuple(out.shape) != expected or \
                not out.is_contiguous() or out.device != maps.device:
            raise ValueError(f"out must be a contiguous uint8 tensor of shape {expected} on {maps.device}, got "
                             f"{getattr(out, 'dtype', type(out).__name__)} {tuple(getattr(out, 'shape', ()))}")
    if maps.dtype == torch.uint8:  # already palette indices, as in imgify
        return _store(table[maps.long()], out)
    if maps.dtype in (torch.float16, torch.bfloat16):
        maps = maps.float()
    elif not maps.is_floating_point():
        maps = maps.double()
    count = maps.shape[0]
    lo = None if vmin is None else _given_bound("vmin", vmin, count, maps.device)
    hi = None if vmax is None else _given_bound("vmax", vmax, count, maps.device)
    symmetric = bool(symmetric)
    if HAS_EXT and has_kernel(maps.device):
        if out is not None:
            torch.ops.xaifast.colorize_into(maps, lo, hi, table, symmetric, out)
            return out
        return torch.ops.xaifast.colorize(maps, lo, hi, table, symmetric)
    return _store(reference.colorize(maps, lo, hi, table, symmetric), out)


def _store(result, out):
    if out is None:
        return result
    return out.copy_(result)


if HAS_EXT:

    @torch.library.register_fake("xaifast::colorize")
    def _colorize_fake(heatmaps, vmin, vmax, palette, symmetric):
        torch._check(heatmaps.dim() == 3, lambda: "colorize: heatmaps must be (N, H, W)")
        return heatmaps.new_empty((*heatmaps.shape, 3), dtype=torch.uint8)

    @torch.library.register_fake("xaifast::colorize_into")
    def _colorize_into_fake(heatmaps, vmin, vmax, palette, symmetric, out):
        return None
