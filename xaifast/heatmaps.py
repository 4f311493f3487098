"""Heatmap pipelines in the spirit of VisionHeatmaps.jl, for PyTorch's ``(N, C, H, W)`` layout.

A pipeline is a chain of transforms composed with ``|`` (Julia's ``|>``)::

    pipe = NormReduction() | PercentileClip() | ExtremaColormap('inferno') | ResizeToImage() | AlphaOverlay()
    images = heatmap(attribution, image, pipe)          # a list of N PIL images

Every transform takes the whole batch ``(N, C, H, W)`` (and, if given, the images as
``(N, 3, H', W')`` floats in ``[0, 1]``) and returns a batch, with torch ops on the batch's
device; ranges (extrema, percentiles) are taken per item. Reductions keep the channel dim
(``(N, 1, H, W)``), colour maps turn one channel into RGB floats in ``[0, 1]``. :func:`heatmap`
converts the result to 8-bit images with ``round(255 * clip(v, 0, 1))``.

Colour maps are looked up by name in :mod:`xaifast.colormaps` (``'batlow'``, ``'berlin'``,
``'jet'``, ``'viridis'``, ... and their ``_r`` reverses; there ``'gray'``, ``'hot'`` and
``'seismic'`` are matplotlib's maps), then among the CMSL built-ins of
:data:`xaifast.image.CMAPS` (``'bwr'``, ``'coldnhot'``, ...), then compiled as CMSL source; a
:class:`~xaifast.cmap.ColorMap` works too. Like ColorSchemes.jl's ``get``, values are mapped
**continuously**: a value at relative position ``t`` in its range lies at ``t * 255`` on the
256-entry table and its colour is the linear blend of the two neighbouring entries (``t = 0.5``
is the mean of entries 127 and 128), not a lookup of the nearest entry.

Differences from VisionHeatmaps.jl: NCHW instead of WHCN, so no ``FlipImage``; ``PercentileClip``
takes percents (``0.1``, ``99.9``) instead of fractions; ``ResizeToImage`` uses
``torch.nn.functional.interpolate`` (default bilinear, not Lanczos); with an image and no pipeline,
:func:`heatmap` overlays (:data:`SENSITIVITY` followed by ``ResizeToImage() | AlphaOverlay()``)
instead of ignoring the image.
"""

import torch
import torch.nn.functional as F

from . import _heatmap_images as _images

__all__ = ["heatmap", "Transform", "Pipeline", "NormReduction", "SumReduction", "MaxAbsReduction",
           "SumAbsReduction", "AbsSumReduction", "PercentileClip", "ExtremaColormap", "CenteredColormap",
           "ResizeToImage", "AlphaOverlay", "SENSITIVITY", "ATTRIBUTION", "CAM", "PRESETS"]


class Transform:
    """Base class of the pipeline steps: subclass it and implement :meth:`apply`.

    Example:
        >>> class Square(Transform):
        ...     def apply(self, x, image=None):
        ...         return x * x
        >>> (Square() | ExtremaColormap())(torch.ones(1, 1, 2, 2)).shape
        torch.Size([1, 3, 2, 2])
    """

    def apply(self, x, image=None):
        """Transform a batch.

        Args:
            x (Tensor): ``(N, C, H, W)`` floats.
            image (Tensor): ``(N, 3, H', W')`` floats in ``[0, 1]`` on ``x``'s device, or None.

        Returns:
            Tensor: ``(N, C', H'', W'')``.
        """
        raise NotImplementedError

    def __call__(self, x, image=None):
        return self.apply(x, image)

    def __or__(self, other):
        if isinstance(other, Transform):
            return Pipeline(self, other)
        return NotImplemented

    def _params(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._params().items())})"

    def __eq__(self, other):
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self):
        return hash((type(self), repr(self)))


class Pipeline(Transform):
    """Transforms applied in order; ``t1 | t2`` builds one, nested pipelines are flattened.

    Args:
        *transforms (Transform): the steps; none gives the identity.

    Example:
        >>> Pipeline(NormReduction(), ExtremaColormap()) == NormReduction() | ExtremaColormap()
        True
    """

    def __init__(self, *transforms):
        steps = []
        for i, step in enumerate(transforms):
            if not isinstance(step, Transform):
                raise TypeError(f"transforms[{i}] must be a Transform, got {type(step).__name__}")
            steps.extend(step.transforms if isinstance(step, Pipeline) else [step])
        self.transforms = tuple(steps)

    def apply(self, x, image=None):
        for step in self.transforms:
            x = step(x, image)
        return x

    def _params(self):
        return {"transforms": self.transforms}

    def __repr__(self):
        return " | ".join(map(repr, self.transforms)) if self.transforms else "Pipeline()"


class _Reduction(Transform):
    """Reduce the channels of ``(N, C, H, W)`` to ``(N, 1, H, W)``; a 1-channel input is passed as is."""

    def apply(self, x, image=None):
        return x if x.shape[1] == 1 else self._reduce(x)


class NormReduction(_Reduction):
    """2-norm over the channels, ``sqrt(sum_c x_c^2)``: ``(N, C, H, W)`` -> ``(N, 1, H, W)``.

    Example:
        >>> NormReduction()(torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)).item()
        5.0
    """

    def _reduce(self, x):
        return torch.linalg.vector_norm(x, dim=1, keepdim=True)


class SumReduction(_Reduction):
    """Sum over the channels: ``(N, C, H, W)`` -> ``(N, 1, H, W)``.

    Example:
        >>> SumReduction()(torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)).item()
        -1.0
    """

    def _reduce(self, x):
        return x.sum(dim=1, keepdim=True)


class MaxAbsReduction(_Reduction):
    """Largest absolute value over the channels, ``max_c |x_c|``.

    Example:
        >>> MaxAbsReduction()(torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)).item()
        4.0
    """

    def _reduce(self, x):
        return x.abs().amax(dim=1, keepdim=True)


class SumAbsReduction(_Reduction):
    """Sum of absolute values over the channels, ``sum_c |x_c|``.

    Example:
        >>> SumAbsReduction()(torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)).item()
        7.0
    """

    def _reduce(self, x):
        return x.abs().sum(dim=1, keepdim=True)


class AbsSumReduction(_Reduction):
    """Absolute value of the channel sum, ``|sum_c x_c|``.

    Example:
        >>> AbsSumReduction()(torch.tensor([3.0, -4.0]).view(1, 2, 1, 1)).item()
        1.0
    """

    def _reduce(self, x):
        return x.sum(dim=1, keepdim=True).abs()


class PercentileClip(Transform):
    """Clamp each item to its ``lower`` and ``upper`` percentiles (over all its channels and pixels).

    Percentiles interpolate linearly between the sorted values (numpy's default ``'linear'``,
    Julia's ``quantile``): the ``p``-th lies at position ``p / 100 * (n - 1)`` of ``n`` sorted values.

    Args:
        lower (float): lower percentile, default 0.1. upper (float): upper percentile, default 99.9.
            ``0 <= lower < upper <= 100``.

    Example:
        >>> PercentileClip(10, 90)(torch.arange(11.0).view(1, 1, 1, 11)).flatten().tolist()[:3]
        [1.0, 1.0, 2.0]
    """

    def __init__(self, lower=0.1, upper=99.9):
        self.lower, self.upper = _images.real(lower, "lower"), _images.real(upper, "upper")
        if not 0.0 <= self.lower < self.upper <= 100.0:
            raise ValueError(f"lower and upper must satisfy 0 <= lower < upper <= 100 (percent), "
                             f"got lower={lower!r}, upper={upper!r}")

    def apply(self, x, image=None):
        flat = x.reshape(x.shape[0], -1).sort(dim=1).values
        count = flat.shape[1]
        bounds = []
        for percent in (self.lower, self.upper):
            position = percent / 100.0 * (count - 1)  # 10 % of 5 values -> 0.4 -> 0.6 * v[0] + 0.4 * v[1]
            below = min(int(position), count - 1)
            above = min(below + 1, count - 1)
            bounds.append(torch.lerp(flat[:, below], flat[:, above], position - below).view(-1, 1, 1, 1))
        return torch.clamp(x, min=bounds[0], max=bounds[1])

    def _params(self):
        return {"lower": self.lower, "upper": self.upper}


class _Colormap(Transform):
    """One channel -> RGB via a 256-entry table, continuously, over a per-item range."""

    default = None

    def __init__(self, name=None):
        self.name = self.default if name is None else name
        table = _images.colour_table(self.name, "name")
        self._table = torch.from_numpy(table).double() / 255.0

    def apply(self, x, image=None):
        if x.shape[1] != 1:
            raise ValueError(f"{type(self).__name__} needs one channel per pixel, got shape {tuple(x.shape)}; "
                             "put a reduction (e.g. NormReduction()) before it")
        low, high = self._range(x)
        # ColorSchemes.jl: a zero-width range falls back to (0, 1)
        empty = high == low
        low, high = torch.where(empty, torch.zeros_like(low), low), torch.where(empty, torch.ones_like(high), high)
        return _images.continuous(((x - low) / (high - low)).clamp(0.0, 1.0), self._table.to(x.device, x.dtype))

    def _params(self):
        return {"name": self.name}


class ExtremaColormap(_Colormap):
    """Colour each item over its own range ``[min, max]`` (min -> first colour, max -> last).

    A constant item has a zero-width range, which falls back to ``[0, 1]`` as in ColorSchemes.jl
    (an all-zero map gets the first colour).

    Args:
        name (str or ColorMap): colour map, default ``'batlow'`` (see the module docstring).

    Example:
        >>> ExtremaColormap('gray')(torch.tensor([0.0, 2.0, 4.0]).view(1, 1, 1, 3))[0, 0, 0].tolist()
        [0.0, 0.5, 1.0]
    """

    default = "batlow"

    def _range(self, x):
        return x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)


class CenteredColormap(_Colormap):
    """Colour each item over ``[-m, m]``, ``m = max |x|``: 0 gets the middle colour.

    An all-zero item has range ``[0, 0]``, which falls back to ``[0, 1]`` as in ColorSchemes.jl,
    so it gets the first colour.

    Args:
        name (str or ColorMap): colour map, default ``'berlin'`` (see the module docstring).

    Example:
        >>> CenteredColormap('gray')(torch.tensor([-2.0, 0.0, 1.0]).view(1, 1, 1, 3))[0, 0, 0].tolist()
        [0.0, 0.5, 0.75]
    """

    default = "berlin"

    def _range(self, x):
        high = x.abs().amax(dim=(1, 2, 3), keepdim=True)
        return -high, high


_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic", "area")


class ResizeToImage(Transform):
    """Resize the batch to the images' height and width with ``F.interpolate``.

    A no-op without images or when the sizes already agree. Linear modes use
    ``align_corners=False``; bicubic may overshoot (the final conversion clips to ``[0, 1]``).

    Args:
        mode (str): ``'bilinear'`` (default), ``'bicubic'``, ``'nearest'``, ``'nearest-exact'``, ``'area'``.

    Example:
        >>> ResizeToImage()(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 4, 6)).shape
        torch.Size([1, 3, 4, 6])
    """

    def __init__(self, mode="bilinear"):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
        self.mode = mode

    def apply(self, x, image=None):
        if image is None or tuple(x.shape[-2:]) == tuple(image.shape[-2:]):
            return x
        corners = False if self.mode in ("bilinear", "bicubic") else None
        return F.interpolate(x, size=tuple(image.shape[-2:]), mode=self.mode, align_corners=corners)

    def _params(self):
        return {"mode": self.mode}


class AlphaOverlay(Transform):
    """Blend the heatmap onto the images: ``image * (1 - alpha) + heatmap * alpha``.

    A no-op without images. The heatmap must already have the images' size (use
    :class:`ResizeToImage` first).

    Args:
        alpha (float): heatmap opacity in ``[0, 1]``, default 0.6.

    Example:
        >>> AlphaOverlay(0.5)(torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)).flatten().tolist()
        [0.5, 0.5, 0.5]
    """

    def __init__(self, alpha=0.6):
        self.alpha = _images.real(alpha, "alpha")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")

    def apply(self, x, image=None):
        if image is None:
            return x
        if tuple(x.shape[-2:]) != tuple(image.shape[-2:]):
            raise ValueError(f"AlphaOverlay: the heatmap is {tuple(x.shape[-2:])} (H, W) but the image is "
                             f"{tuple(image.shape[-2:])}; put ResizeToImage() before AlphaOverlay()")
        return image * (1.0 - self.alpha) + x * self.alpha

    def _params(self):
        return {"alpha": self.alpha}


#: Sensitivity maps (VisionHeatmaps' ``:sensitivity`` preset and default): norm, then batlow over the extrema.
SENSITIVITY = NormReduction() | ExtremaColormap()
#: Signed attributions (``:attribution``): norm, then berlin centred on 0 (a 1-channel map keeps its sign).
ATTRIBUTION = NormReduction() | CenteredColormap()
#: Class activation maps (``:cam``): channel sum, jet over the extrema, resized and overlaid (alpha 0.6).
CAM = SumReduction() | ExtremaColormap("jet") | ResizeToImage() | AlphaOverlay()
#: The presets by name, for ``heatmap(x, pipeline='cam')``.
PRESETS = {"sensitivity": SENSITIVITY, "attribution": ATTRIBUTION, "cam": CAM}


def heatmap(x, image=None, pipeline=None):
    """Turn a batch of attributions into heatmap images, optionally overlaid on input images.

    Call as ``heatmap(x)``, ``heatmap(x, pipeline)``, ``heatmap(x, image)`` or
    ``heatmap(x, image, pipeline)``.

    Args:
        x (Tensor or array): ``(N, C, H, W)`` attributions, finite; any device.
        image: None (default), one image applied to every item (PIL image, ``(H, W, 3)`` uint8 or
            float array in ``[0, 1]``, ``(3, H, W)`` tensor, grey ``(H, W)``) or a batch zipped with
            the items (list of N such images, or an ``(N, 3, H, W)`` tensor).
        pipeline (Transform or str): the transforms, or a key of :data:`PRESETS`. Default
            :data:`SENSITIVITY`, followed by ``ResizeToImage() | AlphaOverlay()`` when an image is given.

    Returns:
        list of PIL.Image.Image: N images, ``'RGB'`` (``'L'`` if the pipeline ends with one channel).

    Raises:
        ValueError: ``x`` is not 4-D, empty or not finite; a batch of images of the wrong length;
            float images outside ``[0, 1]``; sizes that do not match in :class:`AlphaOverlay`.
        TypeError: ``x``, ``image`` or ``pipeline`` of the wrong type.

    Example:
        >>> images = heatmap(torch.randn(2, 3, 8, 8), ATTRIBUTION)
        >>> len(images), images[0].size, images[0].mode
        (2, (8, 8), 'RGB')
    """
    if isinstance(image, (Transform, str)) and pipeline is None:
        image, pipeline = None, image
    maps = _images.as_map_batch(x, "x")
    if isinstance(pipeline, str):
        if pipeline not in PRESETS:
            raise ValueError(f"pipeline {pipeline!r} is not a preset; valid names: {', '.join(PRESETS)}")
        pipeline = PRESETS[pipeline]
    elif pipeline is None:
        pipeline = SENSITIVITY if image is None else SENSITIVITY | ResizeToImage() | AlphaOverlay()
    elif not isinstance(pipeline, Transform):
        raise TypeError(f"pipeline must be a Transform, a Pipeline or a preset name, got {type(pipeline).__name__}")
    images = None
    if image is not None:
        images, batched = _images.as_image_batch(image, "image")
        if batched and images.shape[0] != maps.shape[0]:
            raise ValueError(f"image holds {images.shape[0]} images but x holds {maps.shape[0]} items; "
                             "pass one image or one per item")
        images = images.to(maps.device, maps.dtype).expand(maps.shape[0], -1, -1, -1)
    return _images.to_pil(pipeline(maps, images))
