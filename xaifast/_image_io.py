"""Images in and out: reading files and URLs, PIL <-> tensor, rescaling for display, mosaics.

The public names are re-exported by :mod:`xaifast.utils` (TorchRay's ``torchray.utils``); this
module only exists to keep that file short. matplotlib is optional and imported only when
something is actually drawn.
"""

import io
import math
import numbers
import os
import urllib.request
import warnings
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image

# Sent with URL requests: some image hosts refuse urllib's default user agent.
_URL_HEADERS = {"User-Agent": "Mozilla/5.0 (compatible; xaifast image reader)"}


def is_url(obj):
    """Tell whether ``obj`` is a URL string with a scheme, a host and a path.

    Args:
        obj (object): anything; objects ``urllib.parse.urlparse`` cannot parse give ``False``.

    Returns:
        bool: ``True`` if ``obj`` parses with a non-empty scheme, network location and path.

    Example:
        >>> is_url("https://example.com/cat.jpg"), is_url("cat.jpg")
        (True, False)
    """
    try:
        parts = urlparse(obj)
    except (TypeError, ValueError, AttributeError):
        return False
    return bool(parts.scheme and parts.netloc and parts.path)


def pil_to_tensor(pil_image):
    """Turn a PIL image into a float32 ``(C, H, W)`` tensor divided by 255.

    Args:
        pil_image (PIL.Image.Image or numpy.ndarray): an image, or an ``(H, W)`` or
            ``(H, W, C)`` array. Single-band images (``'L'``, ``'P'``, ...) give ``C = 1``.

    Returns:
        Tensor: ``(C, H, W)`` float32; 8-bit images land in ``[0, 1]``.

    Example:
        >>> pil_to_tensor(Image.new("RGB", (4, 2), (255, 0, 0))).shape
        torch.Size([3, 2, 4])
    """
    if not isinstance(pil_image, (Image.Image, np.ndarray)):
        raise TypeError(f"pil_image must be a PIL.Image.Image or a numpy array, got {type(pil_image).__name__}")
    pixels = np.array(pil_image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3:
        raise ValueError(f"pil_image must be (H, W) or (H, W, C), got shape {pixels.shape}")
    return torch.from_numpy(pixels).permute(2, 0, 1) / 255


def im_to_numpy(tensor):
    """Turn a ``(C, H, W)`` image tensor into an ``(H, W, 3)`` numpy array.

    A single channel is repeated three times (grayscale to RGB). The array is a view of the
    (detached, CPU) tensor: copy it before writing into it.

    Args:
        tensor (Tensor): ``(1, H, W)`` or ``(3, H, W)`` image.

    Returns:
        numpy.ndarray: ``(H, W, 3)`` array with the tensor's dtype.

    Example:
        >>> im_to_numpy(torch.zeros(1, 2, 5)).shape
        (2, 5, 3)
    """
    _check_image_tensor("tensor", tensor)
    return tensor.expand(3, *tensor.shape[1:]).permute(1, 2, 0).detach().cpu().numpy()


def _check_image_tensor(name, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 3 or value.shape[0] not in (1, 3):
        raise ValueError(f"{name} must be a (1, H, W) or (3, H, W) image tensor, got shape {tuple(value.shape)}")


def _open_bytes(file):
    """The image file's bytes in memory, so no file or connection outlives the call."""
    if isinstance(file, os.PathLike):
        file = os.fspath(file)
    if isinstance(file, str) and is_url(file):
        request = urllib.request.Request(file, headers=_URL_HEADERS)
        with urllib.request.urlopen(request) as response:
            return io.BytesIO(response.read())
    if isinstance(file, (str, bytes)):
        with open(file, "rb") as handle:
            return io.BytesIO(handle.read())
    if hasattr(file, "read"):
        return file  # a file object: the caller opened it and closes it
    raise TypeError(f"file must be a path, a URL or a binary file object, got {type(file).__name__}")


def _target_size(resize, size):
    """(W, H) to resize an image of ``size`` (W, H) to; ``resize`` as :func:`imread` takes it."""
    if isinstance(resize, (tuple, list)):
        if len(resize) != 2 or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
                                       for s in resize):
            raise ValueError(f"resize must be a (W, H) pair of positive ints, got {resize!r}")
        return tuple(int(s) for s in resize)
    if isinstance(resize, bool) or not isinstance(resize, numbers.Real):
        raise TypeError(f"resize must be an int (shorter side) or a (W, H) tuple, got {type(resize).__name__}")
    if not resize > 0 or not math.isfinite(resize):
        raise ValueError(f"resize must be positive, got {resize}")
    # Shorter side to `resize`, the other side scaled alike: 300 on a 640x480 image -> 400x300.
    scale = float(resize) / float(min(size))
    return tuple(round(scale * side) for side in size)


def imread(file, as_pil=False, resize=None, to_rgb=False):
    """Read an image from a path, a URL or a file object.

    Unlike TorchRay, resizing works on current Pillow (it uses ``Image.Resampling.LANCZOS``,
    the filter TorchRay's ``Image.ANTIALIAS`` named), and no file or connection is left open:
    the bytes are read into memory first.

    Args:
        file (str, os.PathLike or file object): path, ``http(s)://`` URL or binary file object.
        as_pil (bool): return the PIL image instead of a tensor. Default: ``False``.
        resize (int, float, tuple or list, optional): a number sets the shorter side to that
            length keeping the aspect ratio; a ``(W, H)`` pair sets both sides.
            Default: ``None`` (keep the size).
        to_rgb (bool): convert the image to RGB (before resizing). Default: ``False``.

    Returns:
        Tensor or PIL.Image.Image: ``(C, H, W)`` float32 tensor in ``[0, 1]`` for 8-bit images
        (see :func:`pil_to_tensor`), or the PIL image if ``as_pil``.

    Example:
        >>> x = imread("cat.jpg", resize=224, to_rgb=True)  # doctest: +SKIP
        >>> x.shape  # doctest: +SKIP
        torch.Size([3, 224, 298])
    """
    img = Image.open(_open_bytes(file))
    img.load()
    if to_rgb:
        img = img.convert("RGB")
    if resize is not None:
        size = _target_size(resize, img.size)
        if size != img.size:
            img = img.resize(size, Image.Resampling.LANCZOS)
    if as_pil:
        return img
    return pil_to_tensor(img)


def _draw(img, caller, args, interpolation, kwargs):
    """``imshow`` of a rescaled (1 or 3, H, W) image as RGB, or ``None`` without matplotlib."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        # stacklevel 3: the warning points at the user's call of imsc / imarraysc.
        warnings.warn(f"{caller}: matplotlib is not installed, so nothing is drawn and the handle is None; "
                      f"pass quiet=True to silence this, or `pip install matplotlib`", stacklevel=3)
        return None
    bitmap = img.expand(3, *img.shape[1:]).permute(1, 2, 0)
    if bitmap.dtype not in (torch.float32, torch.float64):
        bitmap = bitmap.float()  # numpy has no bfloat16
    handle = plt.imshow(bitmap.cpu().numpy(), *args, interpolation=interpolation, **kwargs)
    plt.gca().axis("off")
    return handle


def _rescale(img, lim):
    low, high = (img.min(), img.max()) if lim is None or len(lim) == 0 else (lim[0], lim[1])
    if bool(high == low):
        # The limit of the ramp below as high -> low: a step at `low`.
        return (img > low).to(img.dtype)
    shifted = img - low  # a new tensor: the caller's image is never written to
    shifted.mul_(1 / (high - low))
    return torch.clamp(shifted, min=0, max=1)


def imsc(img, *args, quiet=False, lim=None, interpolation="lanczos", **kwargs):
    """Rescale an image to ``[0, 1]`` and, unless ``quiet``, show it with matplotlib.

    The values map linearly from ``[lim[0], lim[1]]`` (default: the image's min and max) to
    ``[0, 1]`` and are clamped there. A ``(1, H, W)`` image is shown as gray.

    Unlike TorchRay, matplotlib is optional: it is imported only to draw, and without it the
    rescaled image comes back with a ``None`` handle and a warning. A constant image (or
    ``lim[0] == lim[1]``) gives a step (0 at and below ``lim[0]``, 1 above) instead of NaN or
    ``ZeroDivisionError``, and integer tensors are rescaled as float32.

    Args:
        img (Tensor or PIL.Image.Image): image, ``(C, H, W)`` to be shown with ``C`` 1 or 3.
        *args: passed to :func:`matplotlib.pyplot.imshow`.
        quiet (bool): only rescale, do not draw. Default: ``False``.
        lim (sequence of 2 numbers or 0-d tensors, optional): the values mapped to 0 and 1.
            Default: ``None`` (min and max of ``img``).
        interpolation (str): ``imshow`` interpolation. Default: ``'lanczos'``.
        **kwargs: passed to :func:`matplotlib.pyplot.imshow`.

    Returns:
        tuple: the rescaled image (a new tensor, no grad) and the ``AxesImage`` handle, or
        ``None`` if nothing was drawn.

    Example:
        >>> scaled, handle = imsc(torch.tensor([[[2.0, 4.0, 6.0]]]), quiet=True)
        >>> scaled, handle
        (tensor([[[0.0000, 0.5000, 1.0000]]]), None)
    """
    if isinstance(img, Image.Image):
        img = pil_to_tensor(img)
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"img must be a torch.Tensor or a PIL image, got {type(img).__name__}")
    if not img.is_floating_point():
        img = img.to(torch.float32)
    if lim is not None and len(lim) not in (0, 2):
        raise ValueError(f"lim must be (low, high), got {len(lim)} values")
    if not quiet:
        _check_image_tensor("img", img)
    with torch.no_grad():
        img = _rescale(img, lim)
    handle = None if quiet else _draw(img, "imsc", args, interpolation, kwargs)
    return img, handle


def imarraysc(tiles, spacing=0, quiet=False, lim=None, interpolation="lanczos"):
    """Lay out a batch of images as a grid, each rescaled on its own, and optionally show it.

    ``K`` tiles go into ``ceil(sqrt(K))`` columns and as many rows as needed, row by row, with
    ``spacing`` zero pixels between neighbours; missing tiles stay zero. Each tile is rescaled
    with :func:`imsc` (with ``lim``), then the mosaic is rescaled again by its own min and max.

    Unlike TorchRay, ``tiles`` may also be a list of ``(C, H, W)`` tensors, and the mosaic keeps
    the tiles' device and floating dtype (TorchRay builds a CPU float32 one).

    Args:
        tiles (Tensor or list of Tensor): ``(K, C, H, W)`` batch, or ``K`` tensors ``(C, H, W)``.
        spacing (int): zero pixels between tiles. Default: ``0``.
        quiet (bool): only build the mosaic, do not draw it. Default: ``False``.
        lim (sequence of 2 numbers, optional): per-tile rescaling limits, as in :func:`imsc`.
            Default: ``None`` (each tile's min and max).
        interpolation (str): ``imshow`` interpolation. Default: ``'lanczos'``.

    Returns:
        tuple: the ``(C, rows * (H + spacing) - spacing, cols * (W + spacing) - spacing)``
        mosaic in ``[0, 1]`` and the matplotlib handle (``None`` if nothing was drawn).

    Example:
        >>> mosaic, _ = imarraysc(torch.rand(5, 3, 8, 8), spacing=1, quiet=True)
        >>> mosaic.shape  # 3 columns, 2 rows
        torch.Size([3, 17, 26])
    """
    if isinstance(tiles, (list, tuple)):
        if len(tiles) == 0:
            raise ValueError("tiles must not be empty")
        tiles = torch.stack(list(tiles))
    if not isinstance(tiles, torch.Tensor):
        raise TypeError(f"tiles must be a (K, C, H, W) tensor or a list of (C, H, W) tensors, "
                        f"got {type(tiles).__name__}")
    if tiles.dim() != 4 or tiles.shape[0] == 0:
        raise ValueError(f"tiles must be a non-empty (K, C, H, W) tensor, got shape {tuple(tiles.shape)}")
    if isinstance(spacing, bool) or not isinstance(spacing, numbers.Integral) or spacing < 0:
        raise ValueError(f"spacing must be an int >= 0, got {spacing!r}")
    count, channels, height, width = tiles.shape
    if not quiet and channels not in (1, 3):
        raise ValueError(f"tiles must have 1 or 3 channels to be drawn (or pass quiet=True), got {channels}")
    cols = math.ceil(math.sqrt(count))
    rows = -(-count // cols)
    dtype = tiles.dtype if tiles.is_floating_point() else torch.float32
    mosaic = torch.zeros(channels, rows * (height + spacing) - spacing, cols * (width + spacing) - spacing,
                         dtype=dtype, device=tiles.device)
    for index in range(count):
        top = (index // cols) * (height + spacing)
        left = (index % cols) * (width + spacing)
        mosaic[:, top:top + height, left:left + width] = imsc(tiles[index], quiet=True, lim=lim)[0]
    mosaic, _ = imsc(mosaic, quiet=True)
    handle = None if quiet else _draw(mosaic, "imarraysc", (), interpolation, {})
    return mosaic, handle
