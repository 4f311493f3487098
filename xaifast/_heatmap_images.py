"""Private helpers shared by :mod:`xaifast.heatmaps` and :mod:`xaifast.overlay`.

* :func:`as_map_batch`: attribution data -> a floating ``(N, C, H, W)`` tensor, checked.
* :func:`as_image_batch`: an image or a batch of images -> ``(B, 3, H, W)`` floats in ``[0, 1]``.
* :func:`colour_table`: a colour map name or CMSL source -> its ``(256, 3)`` uint8 table;
  :func:`continuous`: values in ``[0, 1]`` -> colours, interpolating between table entries.
* :func:`to_pil`: ``(N, C, H, W)`` floats in ``[0, 1]`` -> Pillow images.
"""

import functools
import numbers

import numpy as np
import torch
from PIL import Image

from . import colormaps
from .cmap import CMSLError, ColorMap
from .image import CMAPS, get_cmap


def as_tensor(value, name):
    """``value`` (tensor, numpy array or nested lists) as a tensor; TypeError naming ``name``."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, Image.Image):
        raise TypeError(f"{name} must be a tensor or an array, got a PIL image")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a tensor or an array, got {type(value).__name__}: {err}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got {type(value).__name__} of dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _floating(tensor, name):
    """float64 stays float64; float16/bfloat16/integers become float32; bool and complex are rejected."""
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def as_map_batch(x, name="x", channels=None):
    """Check attribution data and return it as a floating ``(N, C, H, W)`` tensor.

    Args:
        x (Tensor or array-like): ``(N, C, H, W)``, real, finite, non-empty.
        name (str): the argument's name for messages.
        channels (tuple of int): allowed ``C``; default any.

    Returns:
        Tensor: float32 or float64 (float64 input), on ``x``'s device, detached.
    """
    tensor = _floating(as_tensor(x, name), name)
    if tensor.dim() != 4:
        raise ValueError(f"{name} must have 4 dimensions (N, C, H, W) (PyTorch's NCHW convention), "
                         f"got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(tensor.shape)}")
    if channels is not None and tensor.shape[1] not in channels:
        raise ValueError(f"{name} must have {' or '.join(map(str, channels))} channel(s) on dim 1, "
                         f"got shape {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite, it holds NaN or infinite values")
    return tensor


def _channels_first(tensor, prefer_first, name):
    """``(C, H, W)`` or ``(H, W, C)`` with ``C`` in (1, 3) -> ``(C, H, W)``; ``(H, W)`` -> ``(1, H, W)``."""
    if tensor.dim() == 2:
        return tensor[None]
    first, last = tensor.shape[0] in (1, 3), tensor.shape[-1] in (1, 3)
    if first and (prefer_first or not last):
        return tensor
    if last:
        return tensor.permute(2, 0, 1)
    raise ValueError(f"{name} of shape {tuple(tensor.shape)} has neither 1 nor 3 colour channels on its first or "
                     "last dimension (2 or 4 channels, e.g. RGBA arrays, are not supported)")


def _one_image(image, name):
    """One image (PIL, HWC/CHW array or tensor, HW grey) -> ``(C, H, W)`` tensor, dtype as given."""
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    is_tensor = isinstance(image, torch.Tensor)
    tensor = as_tensor(image, name)
    if tensor.dim() not in (2, 3):
        raise ValueError(f"{name} must be one image of shape (H, W), (H, W, C) or (C, H, W), "
                         f"got shape {tuple(tensor.shape)}")
    return _channels_first(tensor, prefer_first=is_tensor, name=name)


def as_image_batch(image, name="image", hint="", mean=None, std=None, scale=1.0):
    """An image or a batch of images as ``(B, 3, H, W)`` floats in ``[0, 1]``.

    Args:
        image: a PIL image, an ``(H, W)``/``(H, W, C)``/``(C, H, W)`` array or tensor (arrays prefer
            channels last, tensors channels first), an ``(N, C, H, W)`` tensor (or array; an array
            whose last axis is 1 or 3 is ``(N, H, W, C)``) or a list of single images of one
            size. ``C`` is 1 (grey, repeated) or 3. uint8 is divided by 255; floats must lie in
            ``[0, 1]`` unless ``mean``/``std`` are given.
        name (str): the argument's name for messages. hint (str): appended to the range error.
        mean, std (sequence of float): per-channel un-normalisation ``image * std + mean`` of floating
            images, then clipped to ``[0, 1]``.
        scale (float): multiply the result by it; ``255`` keeps uint8 values exact integers.

    Returns:
        tuple: ``(images, batched)``: float32 or float64 (float64 input) CPU tensor ``(B, 3, H, W)``
        in ``[0, scale]``
        (``B == 1`` for a single image), and whether ``image`` was a batch.
    """
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError(f"{name} must not be an empty list")
        items = [_one_image(item, f"{name}[{i}]") for i, item in enumerate(image)]
        sizes = {tuple(item.shape[1:]) for item in items}
        if len(sizes) > 1:
            raise ValueError(f"the images in {name} must have one size, got (H, W) sizes {sorted(sizes)}")
        kinds = {item.dtype == torch.uint8 for item in items}
        if len(kinds) > 1:
            raise TypeError(f"the images in {name} must be all uint8 or all floating, not a mix")
        items = [item.expand(3, -1, -1) for item in items]
        batch, batched = torch.stack([_floating(item, name) if item.dtype != torch.uint8 else item
                                      for item in items]), True
    else:
        is_tensor = isinstance(image, torch.Tensor)
        if not isinstance(image, Image.Image) and as_tensor(image, name).dim() == 4:
            batch = as_tensor(image, name)
            if not is_tensor and batch.shape[-1] in (1, 3):
                batch = batch.permute(0, 3, 1, 2)
            if batch.shape[1] not in (1, 3):
                raise ValueError(f"{name} as a batch must have shape (N, 1 or 3, H, W), got {tuple(batch.shape)}")
            if batch.shape[0] == 0:
                raise ValueError(f"{name} must not be an empty batch, got shape {tuple(batch.shape)}")
            batched = True
        else:
            batch, batched = _one_image(image, name)[None], False
        batch = batch.expand(-1, 3, -1, -1)
    if batch.shape[-2] == 0 or batch.shape[-1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(batch.shape)}")
    batch = batch.cpu()
    if batch.dtype == torch.uint8:
        if mean is not None or std is not None:
            raise ValueError(f"mean/std un-normalise floating model inputs; {name} is uint8 (already in 0..255)")
        return batch.float() * (scale / 255.0) if scale != 255 else batch.float(), batched
    batch = _floating(batch, name)
    if not bool(torch.isfinite(batch).all()):
        raise ValueError(f"{name} must be finite, it holds NaN or infinite values")
    if mean is not None or std is not None:
        batch = batch * _per_channel(std, "std", 1.0, batch.dtype) + _per_channel(mean, "mean", 0.0, batch.dtype)
        return batch.clamp(0.0, 1.0) * scale, batched
    low, high = float(batch.min()), float(batch.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{name} holds floats in [{low:.4g}, {high:.4g}]; floating images must lie in [0, 1] "
                         f"(uint8 images are divided by 255){hint}")
    return batch * scale if scale != 1 else batch, batched


def _per_channel(values, name, default, dtype):
    """``mean``/``std`` as a ``(1, 3, 1, 1)`` tensor (one value or three); ValueError naming it."""
    if values is None:
        return torch.full((1, 3, 1, 1), default, dtype=dtype)
    if isinstance(values, numbers.Real):
        values = [values]
    try:
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float64).ravel(), dtype=dtype)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a sequence of 1 or 3 numbers, got {values!r}") from None
    if tensor.numel() not in (1, 3) or not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be 1 or 3 finite numbers (one per colour channel), got {values!r}")
    if name == "std" and bool((tensor == 0).any()):
        raise ValueError(f"std must not contain 0, got {values!r}")
    return tensor.reshape(-1)[None, :, None, None].expand(1, 3, 1, 1)


@functools.lru_cache(maxsize=64)
def _named_table(name):
    if name in colormaps.names() or (name.endswith("_r") and name[:-2] in colormaps.names()):
        return colormaps.get_table(name)
    return get_cmap(name).palette(1.0)


def colour_table(cmap, name="name"):
    """The ``(256, 3)`` uint8 table of a colour map.

    ``cmap`` is looked up in :mod:`xaifast.colormaps` first (``'jet'``, ``'viridis_r'``, ...; so
    ``'gray'``, ``'hot'`` and ``'seismic'`` are matplotlib's maps there, not the CMSL built-ins of the
    same name), then among the CMSL built-ins of :data:`xaifast.image.CMAPS`, then compiled as CMSL
    source; a :class:`~xaifast.cmap.ColorMap` gives its palette. CMSL maps use their level-1 palette.
    """
    if isinstance(cmap, ColorMap):
        return cmap.palette(1.0)
    if not isinstance(cmap, str):
        raise TypeError(f"{name} must be a colour map name, CMSL source or a ColorMap, got {type(cmap).__name__}")
    try:
        return _named_table(cmap).copy()
    except CMSLError as err:
        raise ValueError(f"{name} {cmap!r} is not a known colour map and not valid CMSL; valid names: "
                         f"{', '.join(colormaps.names())} (each optionally with '_r'), "
                         f"{', '.join(n for n in CMAPS if n not in colormaps.names())}, "
                         f"or CMSL source such as '00f,80:fff,f00'. CMSL error at position {err.position}: "
                         f"{err.reason}") from None


def to_pil(batch, scale=1.0):
    """``(N, 1 or 3, H, W)`` floats in ``[0, scale]`` -> N Pillow images (``'L'`` or ``'RGB'``) of
    ``round(clip(255 * v / scale, 0, 255))`` (``scale=255`` rounds ``v`` itself: .5 ties stay exact)."""
    if batch.dim() != 4 or batch.shape[1] not in (1, 3):
        raise ValueError(f"the pipeline must end with 1 or 3 channels per pixel (add a reduction and a colour map), "
                         f"got shape {tuple(batch.shape)}")
    values = batch if scale == 255 else batch * (255.0 / scale)
    pixels = values.clamp(0.0, 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(item[..., 0] if item.shape[-1] == 1 else item)) for item in pixels]


def continuous(t, table):
    """``t`` ``(N, 1, H, W)`` in ``[0, 1]`` -> ``(N, 3, H, W)``, blending the neighbours at ``t * (K - 1)``."""
    position = t[:, 0] * (table.shape[0] - 1)             # t = 0.5, K = 256 -> 127.5
    below = position.floor().clamp(max=table.shape[0] - 2)
    weight = (position - below).unsqueeze(-1)             # -> 0.5 * table[127] + 0.5 * table[128]
    below = below.long()
    colours = table[below] * (1 - weight) + table[below + 1] * weight
    return colours.permute(0, 3, 1, 2).contiguous()


def real(value, name):
    """``value`` as a float; TypeError naming ``name`` for bools and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)
