"""Heatmap arrays to Pillow images, zennit-compatible (``zennit.image``), pixel for pixel.

Single-channel data is normalised to palette indices 0..255 and stored as a palette (``'P'``)
image whose palette is a colour map; three-channel data becomes an ``'RGB'`` image. ``uint8``
input is taken as already normalised. Inputs may be numpy arrays, nested lists or torch tensors
(detached and moved to the CPU); layouts ``(H, W)``, ``(H, W, C)``, ``(C, H, W)`` and, with
``grid``, ``(N, H, W)``, ``(N, H, W, C)``, ``(N, C, H, W)``, with ``C`` 1 or 3 (the last axis wins
when both could be channels).

Normalisation is ``index = trunc(clip((x - vmin) / (vmax - vmin) * 255, 0, 255))`` in the dtype
numpy promotes to (float32 data with automatic bounds stays float32, exactly like zennit). Where that
is NaN -- a constant or all-zero map (0 / 0), a NaN pixel under automatic bounds (NaN bounds), the
pixel equal to ``vmin == vmax`` -- the index is 0: what zennit produces on x86-64 and ARM by casting
NaN, here without the cast's RuntimeWarning and on every platform. Infinite quotients clip to 0 or
255. No warnings are raised for any of these.

Beyond zennit (which raises or misbehaves there): Pillow 13 (palettes are passed as bytes), tensors
that require grad, live on a GPU or are bfloat16, multi-element numpy ``vmin``/``vmax``, and clear
TypeError/ValueError messages that name the bad argument; exception types are zennit's where it
has one (TypeError for layouts, a RuntimeError subclass for bad colour maps). A NaN ``level`` is a
ValueError (zennit returns an all-black palette with a warning).
"""

import math
import numbers
import operator
from collections.abc import Mapping

import numpy as np
import torch
from PIL import Image

from ._colorize import colorize
from .cmap import CMSLError, ColorMap, LazyColorMapCache

__all__ = ["colorize", "CMAPS", "get_cmap", "palette", "imgify", "gridify", "imsave", "interval_norm_bounds",
           "ColorMap", "LazyColorMapCache"]

#: The built-in colour maps, by name (same names, sources and order as ``zennit.image.CMAPS``).
CMAPS = LazyColorMapCache({
    "gray": "000,fff",                        # black -> white
    "wred": "fff,f00",                        # white -> red
    "wblue": "fff,00f",                       # white -> blue
    "hot": "000,f00,ff0,fff",                 # black -> red -> yellow -> white
    "cold": "000,00f,0ff",                    # black -> blue -> cyan
    "coldnhot": "0ff,00f,80:000,f00,ff0,fff",  # cold reversed, black at the centre, then hot
    "bwr": "00f,80:fff,f00",                  # blue -> white at the centre -> red
    "france": "0055a4,80:fff,ef4135",         # the blue, white and red of the French flag
    "seismic": "0000d0,80:d0d0d0,d00000",     # blue -> light grey -> red, channel peak 0xd0
    "coolio": "00d0d0,80:d0d0d0,d000d0",      # cyan -> light grey -> magenta
    "coleus": "00d000,80:d0d0d0,d000d0",      # green -> light grey -> magenta
})


def get_cmap(cmap):
    """Look up a built-in colour map by name, or compile CMSL source.

    Args:
        cmap (str or ColorMap): a name in :data:`CMAPS` (case-sensitive; the shared instance is
            returned), CMSL source (a new :class:`ColorMap` each call), or a :class:`ColorMap`
            (returned as is).

    Returns:
        ColorMap: the colour map.

    Raises:
        CMSLError: ``cmap`` is neither a built-in name nor valid CMSL (a ``RuntimeError`` and a
            ``ValueError``; the message lists the built-ins and the position).
        TypeError: ``cmap`` is neither a str nor a ColorMap.

    Example:
        >>> get_cmap('bwr') is CMAPS['bwr'], get_cmap('000,fff').source
        (True, '000,fff')
    """
    if isinstance(cmap, ColorMap):
        return cmap
    if not isinstance(cmap, str):
        raise TypeError(f"cmap must be a built-in name ({', '.join(CMAPS)}), CMSL source or a ColorMap, "
                        f"got {type(cmap).__name__}")
    if cmap in CMAPS:
        return CMAPS[cmap]
    try:
        return ColorMap(cmap)
    except CMSLError as err:
        head, _, caret = str(err).partition("\n")
        message = (f"cmap {cmap!r} is not a built-in colour map ({', '.join(CMAPS)}) and not valid CMSL: "
                   f"at position {err.position}: {err.reason}\n{caret}")
        raise CMSLError(message, cmap, err.position, err.reason) from None


def palette(cmap="bwr", level=1.0):
    """The 8-bit palette of a colour map: ``get_cmap(cmap).palette(level)``.

    Args:
        cmap (str or ColorMap): built-in name, CMSL source or ColorMap; default ``'bwr'``.
        level (float): palette contrast, default 1.0 (see :meth:`ColorMap.palette`).

    Returns:
        numpy.ndarray: ``(256, 3)`` uint8.

    Example:
        >>> palette('bwr')[[0, 128, 255]].tolist()
        [[0, 0, 255], [255, 255, 255], [255, 0, 0]]
    """
    return get_cmap(cmap).palette(level=level)


def interval_norm_bounds(input, symmetric=False, dim=None):
    """Lower and upper bounds that map ``input`` onto ``[0, 1]``, reduced over ``dim``.

    Args:
        input (numpy.ndarray or Tensor): data; a tensor is converted to numpy.
        symmetric (bool): ``False`` (default): ``(min, max)``. ``True``: ``(-m, m)`` with
            ``m = max(|input|)``, so that 0 maps to 0.5.
        dim (tuple of int): axes to reduce; default all but the first (per-sample bounds).

    Returns:
        tuple: ``(vmin, vmax)`` numpy arrays of ``input``'s dtype, reduced axes kept with size 1.
        NaN in ``input`` gives NaN bounds.

    Example:
        >>> lo, hi = interval_norm_bounds(np.array([[-1.0, 3.0], [0.0, 1.0]]))
        >>> lo.ravel().tolist(), hi.ravel().tolist()
        ([-1.0, 0.0], [3.0, 1.0])
    """
    array = _as_array(input, "input")
    if array.size == 0:
        raise ValueError(f"input is empty (shape {array.shape})")
    if dim is None:
        dim = tuple(range(1, array.ndim))
    if symmetric:
        vmax = np.abs(array).max(dim, keepdims=True)
        return -vmax, vmax
    return array.min(dim, keepdims=True), array.max(dim, keepdims=True)


def _bounds(array, vmin, vmax, symmetric, batched=False):
    """The bounds :func:`imgify` normalises ``array`` with (``colorize`` must use the same).

    A bound that is ``None`` comes from :func:`interval_norm_bounds` -- over all axes of a single
    image, or over all axes but the first (per sample) when ``batched`` -- as an array of
    ``array``'s dtype with the reduced axes kept; a given bound becomes ``np.array(bound)``
    (a Python float -> 0-d float64, which promotes float32 data to float64, as in zennit).
    ``symmetric`` only shapes the automatic bounds; NaN data gives NaN automatic bounds.

    Args:
        array (numpy.ndarray): numeric, channels last; ``(N, ...)`` when ``batched``.
        vmin, vmax (float, array-like or None): bounds; arrays must broadcast to ``array``.
        symmetric (bool): see :func:`interval_norm_bounds`.
        batched (bool): per-sample bounds over axes ``1..``.

    Returns:
        tuple: ``(vmin, vmax)`` numpy arrays broadcastable to ``array``.
    """
    auto = (None, None)
    if vmin is None or vmax is None:
        auto = interval_norm_bounds(array, symmetric=symmetric, dim=tuple(range(1 if batched else 0, array.ndim)))
    bounds = []
    for name, given, automatic in (("vmin", vmin, auto[0]), ("vmax", vmax, auto[1])):
        if given is None:
            bounds.append(automatic)
            continue
        value = _as_array(given, name)
        if value.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a real number or an array of them, got dtype {value.dtype}")
        try:
            fits = np.broadcast_shapes(array.shape, value.shape) == array.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name} of shape {value.shape} does not broadcast to the data's shape {array.shape} "
                             "(channels last)")
        bounds.append(value)
    return tuple(bounds)


def _palette_index(array, vmin, vmax):
    """Palette indices ``trunc(clip((array - vmin) / (vmax - vmin) * 255, 0, 255))`` as uint8.

    Computed in the dtype numpy promotes ``array``, ``vmin`` and ``vmax`` to, in exactly this order
    of operations (that is what makes the result bit-identical to zennit's). Where the quotient is
    NaN (0 / 0, NaN data or bounds) the index is 0; +-inf clip to 255 / 0. Warning-free.

    Args:
        array (numpy.ndarray): numeric data, any shape.
        vmin, vmax (numpy.ndarray): bounds broadcastable to ``array`` (see :func:`_bounds`).

    Returns:
        numpy.ndarray: uint8 of ``array``'s shape.
    """
    with np.errstate(all="ignore"):
        scaled = (array - vmin) / (vmax - vmin)
        scaled = (scaled * 255).clip(0, 255)
    scaled[np.isnan(scaled)] = 0
    return scaled.astype(np.uint8)


# colorize (xaifast/_colorize.py) is the batched, compiled counterpart of imgify: per map it uses
# exactly _bounds(...) and _palette_index(...) above, which tests/test_colorize.py checks.


def imgify(obj, vmin=None, vmax=None, cmap="bwr", level=1.0, symmetric=False, grid=False, gridfill=None):
    """Turn a heatmap or image array into a Pillow image.

    Non-uint8 data is normalised to 0..255 (see the module docstring; in grid mode each sample on
    its own, before tiling). One channel gives a ``'P'`` image with the palette of ``cmap`` at
    ``level``; three channels give ``'RGB'`` (``cmap`` and ``level`` unused).

    Args:
        obj (array-like or Tensor): ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``; with ``grid``
            ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``; ``C`` is 1 or 3.
        vmin (float or array-like): lower bound, replaces the automatic one; default None.
        vmax (float or array-like): upper bound, replaces the automatic one; default None.
        cmap (str or ColorMap): built-in name, CMSL source or ColorMap; default ``'bwr'``.
        level (float): palette contrast, default 1.0 (see :meth:`ColorMap.palette`).
        symmetric (bool): automatic bounds ``(-max|x|, max|x|)`` instead of ``(min, max)``.
        grid (bool or tuple): ``True``: tile the batch into a grid ``ceil(N / w)`` rows by
            ``w = isqrt(N)`` columns; ``(rows, cols)``: that grid (extra samples are dropped).
            Default False.
        gridfill (int or array-like): index / colour of empty cells; default the per-channel
            minimum over the batch.

    Returns:
        PIL.Image.Image: ``'P'`` or ``'RGB'``, ``H x W`` (``rows*H x cols*W`` in grid mode).

    Raises:
        TypeError: wrong number of axes or channels, non-numeric data, bad ``grid``.
        ValueError: empty data, bounds of the wrong shape, NaN ``level``.
        CMSLError: invalid ``cmap`` (only looked at for single-channel data).

    Example:
        >>> img = imgify(np.array([[-1.0, 0.0], [0.5, 1.0]]), symmetric=True)
        >>> img.mode, np.asarray(img).tolist()
        ('P', [[0, 127], [191, 255]])
    """
    array = _as_array(obj, "obj")
    tiled, shape = _grid_request(grid)
    array = _channels_last(array, batched=tiled, name="obj")
    if array.dtype != np.uint8:
        array = _palette_index(array, *_bounds(array, vmin, vmax, symmetric, batched=tiled))
    if tiled:
        array = _tile(array, shape, gridfill, "gridfill")
    elif array.ndim == 2:
        array = array[:, :, None]
    # no `mode=` for fromarray (deprecated in some Pillow releases): uint8 (H, W, 3) is 'RGB',
    # uint8 (H, W) is 'L', which putpalette turns into 'P'
    if array.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(array))
    image = Image.fromarray(np.ascontiguousarray(array[:, :, 0]))
    image.putpalette(palette(cmap, level).tobytes())  # bytes: Pillow 13 rejects an ndarray here
    return image


def imsave(fp, obj, vmin=None, vmax=None, cmap="bwr", level=1.0, grid=False, format=None, writer_params=None,
           symmetric=False, gridfill=None):
    """:func:`imgify` ``obj`` and save it to ``fp`` (note the argument order differs from imgify's).

    Args:
        fp (str, os.PathLike or file object): where to write.
        obj, vmin, vmax, cmap, level, grid, symmetric, gridfill: as for :func:`imgify`.
        format (str): Pillow format name, default None (from the file name).
        writer_params (dict): extra keyword arguments for ``PIL.Image.Image.save``; default None.

    Example:
        >>> import io
        >>> imsave(io.BytesIO(), np.eye(3), format='png')
    """
    if writer_params is not None and not isinstance(writer_params, Mapping):
        raise TypeError(f"writer_params must be a dict of Pillow save options, got {type(writer_params).__name__}")
    image = imgify(obj, vmin=vmin, vmax=vmax, cmap=cmap, level=level, symmetric=symmetric, grid=grid,
                   gridfill=gridfill)
    image.save(fp, format=format, **(writer_params or {}))


def gridify(obj, shape=None, fill_value=None):
    """Tile a batch of images into one image, row by row.

    Args:
        obj (array-like or Tensor): ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``, ``C`` 1 or 3.
        shape (tuple of int): ``(rows, cols)``; default ``cols = isqrt(N)``, ``rows = ceil(N / cols)``.
            Cells beyond the grid are dropped.
        fill_value (scalar or array-like): value of empty cells, cast to ``obj``'s dtype; default the
            per-channel minimum over all images.

    Returns:
        numpy.ndarray: ``(rows * H, cols * W, C)``, ``obj``'s dtype (the channel axis always kept).

    Example:
        >>> gridify(np.arange(3)[:, None, None] * np.ones((3, 1, 2))).shape
        (3, 2, 1)
    """
    array = _as_array(obj, "obj")
    if array.ndim == 3:
        array = array[..., None]  # (N, H, W) is always grey, whatever its sizes
    array = _channels_last(array, batched=True, name="obj", kinds="biuf")
    return _tile(array, None if shape is None else _grid_shape(shape, "shape"), fill_value, "fill_value")


def _as_array(obj, name):
    """``obj`` as a numpy array: tensors detached and moved to the CPU (bfloat16 -> float32)."""
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().resolve_conj().resolve_neg()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    try:
        return np.asarray(obj)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{name} cannot be converted to an array: {err}") from None


def _channels_last(array, batched, name, kinds="iuf"):
    """Check the layout of image data and move its colour axis last (``(C, H, W)`` -> ``(H, W, C)``)."""
    if array.dtype.kind not in kinds:
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    lead = 1 if batched else 0
    if array.ndim not in (2 + lead, 3 + lead):
        expected = ("3 axes (N, H, W) or 4 axes (N, H, W, C) / (N, C, H, W)" if batched else
                    "2 axes (H, W) or 3 axes (H, W, C) / (C, H, W); pass grid=True for a batch")
        raise TypeError(f"{name} must have {expected}, got shape {array.shape}")
    if array.ndim == 3 + lead and array.shape[-1] not in (1, 3):
        if array.shape[lead] not in (1, 3):
            raise TypeError(f"{name} of shape {array.shape} has neither 1 nor 3 colour channels on its last or "
                            f"{'second' if batched else 'first'} axis (2 or 4 channels, e.g. RGBA, are not supported)")
        array = np.moveaxis(array, lead, -1)
    return array


def _grid_shape(shape, name):
    """``(rows, cols)`` of positive ints, or TypeError / ValueError naming ``name``."""
    if isinstance(shape, np.ndarray):
        shape = shape.tolist()
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2:
        raise TypeError(f"{name} must be a (rows, cols) pair, got {shape!r}")
    try:
        rows, cols = (operator.index(size) for size in shape)
    except TypeError:
        raise TypeError(f"{name} must be a pair of ints, got {shape!r}") from None
    if rows < 1 or cols < 1:
        raise ValueError(f"{name} must be positive, got {shape!r}")
    return rows, cols


def _grid_request(grid):
    """imgify's ``grid`` -> (tile?, shape or None). Falsy values (False, None, 0, ()) mean no grid."""
    if isinstance(grid, np.ndarray):
        grid = grid.tolist()
    if grid is None or isinstance(grid, (bool, np.bool_)):
        return bool(grid), None
    if isinstance(grid, (tuple, list, torch.Size)):
        return (True, _grid_shape(grid, "grid")) if len(grid) else (False, None)
    if isinstance(grid, numbers.Integral) and grid == 0:
        return False, None
    raise TypeError(f"grid must be a bool or a (rows, cols) pair, got {grid!r}")


def _tile(array, shape, fill, fill_name):
    """Tile ``(N, H, W[, C])`` row-major into ``(rows * H, cols * W, C)``; see :func:`gridify`."""
    if array.ndim == 3:
        array = array[..., None]
    num, height, width, channels = array.shape
    if shape is None:
        cols = math.isqrt(num)
        rows = -(-num // cols)  # 5 images -> 2 columns, 3 rows
    else:
        rows, cols = shape
    if fill is None:
        fill = array.min((0, 1, 2), keepdims=True)
    else:
        with np.errstate(all="ignore"):
            fill = _as_array(fill, fill_name).astype(array.dtype)
    cells = np.empty((rows * cols, height, width, channels), dtype=array.dtype)
    try:
        cells[...] = fill
    except ValueError:
        raise ValueError(f"{fill_name} of shape {fill.shape} does not broadcast to one grid cell "
                         f"{(height, width, channels)}") from None
    used = min(num, rows * cols)
    cells[:used] = array[:used]
    return cells.reshape(rows, cols, height, width, channels).swapaxes(1, 2).reshape(
        rows * height, cols * width, channels)
