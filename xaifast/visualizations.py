"""TruLens-compatible visualizers (``trulens.visualizations``, trulens_explain 0.13.4) for image
attributions: :class:`Visualizer`, :class:`HeatmapVisualizer`, :class:`MaskVisualizer`,
:class:`ChannelMaskVisualizer` and :class:`Tiler`.

Same class names, constructor and call signatures, defaults and returned arrays as TruLens.
Unlike TruLens:

* Inputs are numpy arrays or torch tensors (any device, ``requires_grad`` allowed), 4-D, channels
  first ``(N, C, H, W)`` or last ``(N, H, W, C)``. ``dim_order=None`` (keyword of every
  constructor) takes the side whose size is 1, 3 or 4 when only one is, else channels first
  (TruLens' PyTorch backend); pass ``'channels_first'``/``'channels_last'`` to decide. Untiled
  results come back in the input's order, as numpy arrays.
* matplotlib is imported only to display (``imshow=True``, the TruLens default, or a ``fig``).
  ``output_file`` is written with Pillow: the picture itself, one pixel per value, not a
  matplotlib figure. Colour maps come from :mod:`xaifast.colormaps` by name (``cmap=None`` in
  :class:`Visualizer` is ``'hotcold'``, TruLens' default, which TruLens itself can no longer build:
  ``matplotlib.cm.get_cmap`` is gone); an ``(K, 3)`` table or a callable such as a matplotlib
  ``Colormap`` also works. 2-D data are scaled to their min..max before the lookup, as
  matplotlib's ``imshow`` does. One-channel images under a mask or heatmap are shown gray
  (TruLens: through matplotlib's default map); ``fig`` is honoured by every visualizer.
* Where TruLens' code contradicts its docs, xaifast does what the docs say: ``'magnitude_sum'``
  and ``'signed_sum'`` normalise each channel separately and the other types each item over all
  its channels (TruLens' code does the reverse); :class:`MaskVisualizer` honours its
  ``use_attr_as_opacity`` and ``positive_only`` defaults (TruLens drops them) and saves
  ``output_file`` also when ``imshow=False``; :class:`ChannelMaskVisualizer` passes its arguments
  by name (TruLens passes them positionally into the wrong slots); :class:`Tiler` squeezes only a
  single colour channel, not every size-1 axis. An unknown ``normalization_type`` raises
  ``ValueError`` (TruLens: ``AttributeError`` from a typo in its message).
* ``blur`` is a Gaussian of sigma ``blur`` pixels over height and width only, like
  ``scipy.ndimage.gaussian_filter`` ('reflect' borders, radius ``int(4 sigma + 0.5)``); TruLens
  also blurred across the channel axis, and in place (it modified the caller's array).
"""

import numpy as np
import torch  # noqa: F401  (the examples use it)

from . import _visualization_utils as vu

__all__ = ["Tiler", "Visualizer", "HeatmapVisualizer", "MaskVisualizer", "ChannelMaskVisualizer"]


def _emit(picture, output_file, imshow, fig):
    if output_file:
        vu.save(picture, output_file)
    vu.display(picture, imshow, fig)


class Tiler:
    """Tiles a batch of images into one grid that is as square as possible.

    ``rows = int(sqrt(N))``, ``cols = ceil(N / rows)`` (wide: 3 -> 1x3, 5 -> 2x3, 10 -> 3x4),
    row-major, empty cells 0.

    Args:
        dim_order (str or None): ``'channels_first'``, ``'channels_last'`` or ``None`` (guess,
            see the module docstring). Default ``None``.

    Example:
        >>> Tiler().tile(np.ones((5, 3, 4, 6))).shape
        (8, 18, 3)
    """

    def __init__(self, dim_order=None):
        self.dim_order = vu.check_dim_order(dim_order)

    def tile(self, a):
        """Tile ``a``.

        Args:
            a (numpy.ndarray or Tensor): ``(N, C, H, W)`` or ``(N, H, W, C)``, ``N >= 1``.

        Returns:
            numpy.ndarray: float64 ``(rows * H, cols * W, C)``, or ``(rows * H, cols * W)`` when
            ``C == 1`` (unlike TruLens' ``np.squeeze``, a size-1 H or W is kept).
        """
        a = vu.to_batch("a", a)
        return vu.tile(vu.to_nchw(a, vu.resolve_dim_order(self.dim_order, a)).transpose(0, 2, 3, 1))


class Visualizer:
    """Shows attributions directly as an image (1 channel through ``cmap``, 3 as RGB, 4 as RGBA).

    Pipeline: optional channel mean, optional blur, normalisation, tiling. The constructor's
    arguments are the defaults of :meth:`__call__`.

    Args:
        combine_channels (bool): average over channels first (for internal layers). Default False.
        normalization_type (str or None): per item (over its channels, height and width), with
            1e-20 added to every denominator: ``'unsigned_max'``: ``c / max|c|`` in [-1, 1];
            ``'unsigned_max_positive_centered'``: that ``/ 2 + 0.5``, in [0, 1]; ``'magnitude_max'``:
            ``|c| / max|c|``; ``'signed_max'``: positives over ``max(c)``, negatives over
            ``max(-c)``; ``'signed_max_positive_centered'``: that ``/ 2 + 0.5``; ``'01'``:
            ``(c - min c) / max(c - min c)``; ``'unnormalized'``. Per item *and channel*:
            ``'magnitude_sum'``: ``|c| / sum|c|``; ``'signed_sum'``: positives over their sum,
            negatives over the sum of their magnitudes. ``None``: ``'unsigned_max'`` for one
            channel (or ``combine_channels``), else ``'unsigned_max_positive_centered'``.
            Default ``None``.
        blur (float): Gaussian sigma in pixels, 0 for none. Default 0.
        cmap (str, table, callable or None): colour map for 1-channel data. Default ``'hotcold'``.
        dim_order (str or None): keyword only; see the module docstring.

    Example:
        >>> viz = Visualizer(normalization_type="magnitude_max")
        >>> viz(np.array([[[[1.0, -2.0], [0.5, 4.0]]]]), imshow=False).ravel().tolist()
        [0.25, 0.5, 0.125, 1.0]
    """

    def __init__(self, combine_channels=False, normalization_type=None, blur=0.0, cmap=None, *, dim_order=None):
        self.default_combine_channels = bool(combine_channels)
        self.default_normalization_type = vu.check_normalization_type(normalization_type)
        self.default_blur = vu.check_blur(blur)
        self.default_cmap = "hotcold" if cmap is None else vu.check_cmap(cmap)
        self.dim_order = vu.check_dim_order(dim_order)
        self.tiler = Tiler(dim_order)

    def _check_args(self, attributions, combine_channels, normalization_type, blur, cmap):
        """Fill in the defaults for an ``(N, C, H, W)`` batch and check the arguments."""
        combine_channels = self.default_combine_channels if combine_channels is None else bool(combine_channels)
        channels = attributions.shape[1]
        if channels not in vu.COLOUR_CHANNELS and not combine_channels:
            raise ValueError(f"attributions must have 1, 3 or 4 channels to be shown, got {channels}; for an "
                             f"internal layer set combine_channels=True")
        normalization_type = vu.check_normalization_type(normalization_type) or self.default_normalization_type
        if normalization_type is None:
            normalization_type = ("unsigned_max" if combine_channels or channels == 1
                                  else "unsigned_max_positive_centered")
        blur = self.default_blur if blur is None else vu.check_blur(blur)
        cmap = self.default_cmap if cmap is None else vu.check_cmap(cmap)
        return combine_channels, normalization_type, blur, cmap

    def _prepare(self, attributions, combine_channels, normalization_type, blur):
        if combine_channels:
            attributions = attributions.mean(axis=1, keepdims=True)
        if blur:
            attributions = vu.gaussian_blur(attributions, blur)
        return vu.normalize(attributions, normalization_type)

    def __call__(self, attributions, output_file=None, imshow=True, fig=None, return_tiled=False,
                 combine_channels=None, normalization_type=None, blur=None, cmap=None):
        """Normalise, tile and show (or save) ``attributions``.

        Args:
            attributions (numpy.ndarray or Tensor): ``(N, C, H, W)`` or ``(N, H, W, C)``.
            output_file (str or path or None): write the picture there with Pillow (format from
                the extension). Default ``None``.
            imshow (bool): display with matplotlib. Default True.
            fig (matplotlib Figure or None): draw into this figure. Default ``None``.
            return_tiled (bool): return the tiled grid instead of the batch. Default False.
            combine_channels, normalization_type, blur, cmap: override the constructor's.

        Returns:
            numpy.ndarray: the normalised attributions, shaped like the input (``C = 1`` after
            ``combine_channels``), or tiled: ``(rows * H, cols * W[, C])`` float64.
        """
        attributions = vu.to_batch("attributions", attributions)
        dim_order = vu.resolve_dim_order(self.dim_order, attributions)
        values = vu.to_nchw(attributions, dim_order)
        combine_channels, normalization_type, blur, cmap = self._check_args(
            values, combine_channels, normalization_type, blur, cmap)
        values = self._prepare(values, combine_channels, normalization_type, blur)
        tiled = vu.tile(values.transpose(0, 2, 3, 1))
        if output_file or imshow or fig is not None:
            _emit(vu.render(tiled, cmap), output_file, imshow, fig)
        return tiled if return_tiled else vu.from_nchw(values, dim_order)


class HeatmapVisualizer(Visualizer):
    """Overlays a colour-mapped attribution heatmap on the images, GradCAM style.

    Attributions are averaged over channels, blurred and normalised; the images are normalised
    with ``'01'`` per item; the picture is ``(1 - overlay_opacity) * image + overlay_opacity *
    cmap(heatmap scaled to its min..max)`` (gray images shown gray; RGBA drops alpha).

    Args:
        overlay_opacity (float): in [0, 1]. Default 0.5.
        normalization_type (str or None): as in :class:`Visualizer`; ``None`` is ``'unsigned_max'``.
        blur (float): Gaussian sigma in pixels. Default 10.
        cmap (str, table or callable): Default ``'jet'``.
        dim_order (str or None): keyword only; see the module docstring.

    Example:
        >>> x = np.random.rand(2, 3, 16, 16)
        >>> HeatmapVisualizer(blur=2)(x - 0.5, x, imshow=False, return_tiled=True).shape
        (16, 32)
    """

    def __init__(self, overlay_opacity=0.5, normalization_type=None, blur=10.0, cmap="jet", *, dim_order=None):
        super().__init__(combine_channels=True, normalization_type=normalization_type, blur=blur,
                         cmap="jet" if cmap is None else cmap, dim_order=dim_order)
        self.default_overlay_opacity = vu.check_fraction("overlay_opacity", overlay_opacity)

    def __call__(self, attributions, x, output_file=None, imshow=True, fig=None, return_tiled=False,
                 overlay_opacity=None, normalization_type=None, blur=None, cmap=None):
        """Normalise the heatmap and show (or save) it over ``x``.

        Args:
            attributions (numpy.ndarray or Tensor): ``(N, C, H, W)`` or ``(N, H, W, C)``, any C.
            x (numpy.ndarray or Tensor): the images, ``(N, C', H, W)`` in the same order, C' in 1, 3, 4.
            output_file, imshow, fig, return_tiled: as in :meth:`Visualizer.__call__`.
            overlay_opacity, normalization_type, blur, cmap: override the constructor's.

        Returns:
            numpy.ndarray: the normalised heatmap ``(N, 1, H, W)`` (input order), or tiled
            ``(rows * H, cols * W)`` float64.
        """
        attributions, x = vu.to_batch("attributions", attributions), vu.to_batch("x", x)
        dim_order = vu.resolve_dim_order(self.dim_order, attributions, x)
        values, images = vu.to_nchw(attributions, dim_order), vu.to_nchw(x, dim_order)
        if images.shape[0] != values.shape[0] or images.shape[2:] != values.shape[2:]:
            raise ValueError(f"x must hold the images of attributions (same N, H, W), got x of shape {x.shape} "
                             f"for attributions of shape {attributions.shape}")
        if images.shape[1] not in vu.COLOUR_CHANNELS:
            raise ValueError(f"x must have 1, 3 or 4 colour channels, got {images.shape[1]}")
        _, normalization_type, blur, cmap = self._check_args(values, True, normalization_type, blur, cmap)
        opacity = (self.default_overlay_opacity if overlay_opacity is None
                   else vu.check_fraction("overlay_opacity", overlay_opacity))
        values = self._prepare(values, True, normalization_type, blur)
        tiled = vu.tile(values.transpose(0, 2, 3, 1))
        if output_file or imshow or fig is not None:
            tiled_x = vu.tile(vu.normalize(images, "01").transpose(0, 2, 3, 1))
            background = vu.render(tiled_x)[..., :3].astype(np.float64)
            heat = vu.colourize(vu.autoscaled(tiled), cmap).astype(np.float64)
            picture = np.round((1.0 - opacity) * background + opacity * heat).astype(np.uint8)
            _emit(picture, output_file, imshow, fig)
        return tiled if return_tiled else vu.from_nchw(values, dim_order)


class MaskVisualizer:
    """Masks the images to show the regions whose attribution is above a percentile.

    Per item: optional channel mean, blur, ``max(a, 0)`` if ``positive_only``, then ``a`` and
    ``x`` each scaled to [0, 1] (``(v - min) / max(v - min)``, 0 if that max is 0). The mask is
    ``max(a > percentile(a, 100 * threshold), masked_opacity)``, or ``a`` itself when
    ``use_attr_as_opacity`` (or ``threshold`` is None); the result is ``mask * x``.

    Args:
        blur (float or None): Gaussian sigma in pixels; None or 0 for none. Default 5.
        threshold (float or None): in [0, 1]. Default 0.5.
        masked_opacity (float): opacity of masked pixels, in [0, 1]. Default 0.2.
        combine_channels (bool): average attributions over channels. Default True.
        use_attr_as_opacity (bool): use the [0, 1] attribution as opacity. Default False.
        positive_only (bool): only positive attributions can unmask. Default True.
        dim_order (str or None): keyword only; see the module docstring.

    Example:
        >>> x = np.random.rand(1, 3, 8, 8)
        >>> MaskVisualizer(blur=0)(x[:, :1] - 0.5, x, imshow=False).shape
        (8, 8, 3)
    """

    def __init__(self, blur=5.0, threshold=0.5, masked_opacity=0.2, combine_channels=True,
                 use_attr_as_opacity=False, positive_only=True, *, dim_order=None):
        self.default_blur = vu.check_blur(blur)
        self.default_thresh = vu.check_fraction("threshold", threshold, allow_none=True)
        self.default_masked_opacity = vu.check_fraction("masked_opacity", 0.2 if masked_opacity is None
                                                        else masked_opacity)
        self.default_combine_channels = True if combine_channels is None else bool(combine_channels)
        self.default_use_attr_as_opacity = bool(use_attr_as_opacity)
        self.default_positive_only = True if positive_only is None else bool(positive_only)
        self.dim_order = vu.check_dim_order(dim_order)
        self.tiler = Tiler(dim_order)

    def __call__(self, attributions, x, output_file=None, imshow=True, fig=None, return_tiled=True, blur=None,
                 threshold=None, masked_opacity=None, combine_channels=None, use_attr_as_opacity=None,
                 positive_only=None):
        """Mask ``x`` by ``attributions`` and show (or save) the result.

        Args:
            attributions (numpy.ndarray or Tensor): ``(N, C, H, W)`` or ``(N, H, W, C)``; C equal
                to x's or 1.
            x (numpy.ndarray or Tensor): the images, same order, 1, 3 or 4 channels.
            output_file, imshow, fig: as in :meth:`Visualizer.__call__` (1 channel shown gray).
            return_tiled (bool): return the tiled grid. Default True.
            blur, threshold, masked_opacity, combine_channels, use_attr_as_opacity, positive_only:
                override the constructor's (None: the constructor's).

        Returns:
            numpy.ndarray: the masked images ``(N, C', H, W)`` (input order), or tiled
            ``(rows * H, cols * W[, C'])`` float64.
        """
        attributions, x = vu.to_batch("attributions", attributions), vu.to_batch("x", x)
        dim_order = vu.resolve_dim_order(self.dim_order, attributions, x)
        values, images = vu.to_nchw(attributions, dim_order), vu.to_nchw(x, dim_order)
        if (values.shape[0], *values.shape[2:]) != (images.shape[0], *images.shape[2:]) or \
                values.shape[1] not in (1, images.shape[1]):
            raise ValueError(f"Shape of attributions {attributions.shape} must match shape of x {x.shape} "
                             f"(or have one channel)")
        if images.shape[1] not in vu.COLOUR_CHANNELS:
            raise ValueError(f"x must have 1, 3 or 4 colour channels, got {images.shape[1]}")
        blur = self.default_blur if blur is None else vu.check_blur(blur)
        threshold = self.default_thresh if threshold is None else vu.check_fraction("threshold", threshold)
        masked_opacity = (self.default_masked_opacity if masked_opacity is None
                          else vu.check_fraction("masked_opacity", masked_opacity))
        combine = self.default_combine_channels if combine_channels is None else bool(combine_channels)
        as_opacity = self.default_use_attr_as_opacity if use_attr_as_opacity is None else bool(use_attr_as_opacity)
        positive = self.default_positive_only if positive_only is None else bool(positive_only)

        if combine:
            values = values.mean(axis=1, keepdims=True)
        if blur:
            values = vu.gaussian_blur(values, blur)
        if positive:
            values = np.maximum(values, 0)
        values, images = self._unit_range(values), self._unit_range(images)
        if as_opacity or threshold is None:
            masks = values
        else:
            cut = np.percentile(values.reshape(len(values), -1), 100 * threshold, axis=1)
            masks = np.maximum(values > cut[:, None, None, None], masked_opacity)
        masked = masks * images
        tiled = vu.tile(masked.transpose(0, 2, 3, 1))
        if output_file or imshow or fig is not None:
            _emit(vu.render(tiled), output_file, imshow, fig)
        return tiled if return_tiled else vu.from_nchw(masked, dim_order)

    @staticmethod
    def _unit_range(batch):
        """Per item ``(v - min) / max(v - min)``; all 0 where that max is 0."""
        shifted = batch - batch.min(axis=(1, 2, 3), keepdims=True)
        top = shifted.max(axis=(1, 2, 3), keepdims=True)
        return np.divide(shifted, top, out=np.zeros_like(shifted), where=top != 0)


class ChannelMaskVisualizer:
    """Masks the images by the input pixels' influence on one internal channel (or neuron).

    The influence is TruLens' ``InternalInfluence`` from the input to ``layer`` with an
    ``InternalChannelQoI``, in plain PyTorch: a forward hook on ``layer`` takes its output ``y``
    (and stops the forward pass there); the quantity per item is the sum over ``channel`` of
    ``agg_fn(y.select(channel_axis, c))`` (default: the sum of the channel's activations; for a
    2-D ``(N, K)`` output, ``y[:, c]``); its gradient w.r.t. the input, times the input, is the
    attribution. ``doi='linear'`` averages the gradient over the 10 inputs ``(1 - i/9) * x`` first
    (integrated gradients from a zero baseline, TruLens' ``LinearDoi``). The model is used as is
    (call ``model.eval()`` yourself); a layer called several times counts its first call. The
    attributions then go through a :class:`MaskVisualizer` built from the remaining arguments.

    Args:
        model (torch.nn.Module): the model (a TruLens wrapper's ``_model`` is unwrapped).
        layer (torch.nn.Module, str or int): a submodule, its name in ``model.named_modules()``, or
            its index in that list without the model itself.
        channel (int or list of int): channel(s) to explain; several are summed.
        channel_axis (int or None): channel axis of a 3-D or more layer output; negative counts from
            the end (TruLens replaced a negative axis by 1). Default ``None`` (1).
        agg_fn (callable or None): ``(N, ...) -> (N,)`` aggregation of one channel. Default sum.
        doi (str or None): ``None``/``'point'`` or ``'linear'`` (TruLens' ``DoI`` objects are not
            accepted). Default ``None``.
        blur, threshold, masked_opacity, combine_channels, use_attr_as_opacity, positive_only:
            the :class:`MaskVisualizer` defaults (``blur=None``: no blur; ``None`` for the last
            two: False and True).
        dim_order (str or None): keyword only; order of ``x``, see the module docstring.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
        >>> viz = ChannelMaskVisualizer(net, "0", channel=2)
        >>> viz(torch.rand(2, 3, 8, 8), imshow=False).shape
        (8, 16, 3)
    """

    def __init__(self, model, layer, channel, channel_axis=None, agg_fn=None, doi=None, blur=None, threshold=0.5,
                 masked_opacity=0.2, combine_channels=True, use_attr_as_opacity=None, positive_only=None, *,
                 dim_order=None):
        self.model, self.channels, self.channel_axis, self.doi = vu.check_channel_args(
            model, channel, channel_axis, agg_fn, doi)
        self.layer = vu.resolve_layer(self.model, layer)
        self.agg_fn = agg_fn
        self.mask_visualizer = MaskVisualizer(blur=blur, threshold=threshold, masked_opacity=masked_opacity,
                                              combine_channels=combine_channels,
                                              use_attr_as_opacity=use_attr_as_opacity,
                                              positive_only=positive_only, dim_order=dim_order)

    def attributions(self, x):
        """The input attributions towards the channel (see the class docstring).

        Args:
            x (numpy.ndarray or Tensor): floating model input ``(N, ...)``, moved to the device
                and dtype of the model's first floating parameter (if any).

        Returns:
            numpy.ndarray: same shape as ``x``.
        """
        inputs = vu.model_input(self.model, x)
        influence = vu.internal_influence(self.model, self.layer, self.channels, self.channel_axis, self.agg_fn,
                                          self.doi, inputs)
        return influence.detach().cpu().numpy()

    def __call__(self, x, x_preprocessed=None, output_file=None, blur=None, threshold=None, masked_opacity=None,
                 combine_channels=None, *, imshow=True, fig=None, return_tiled=True, use_attr_as_opacity=None,
                 positive_only=None):
        """Compute the channel's input attributions and mask ``x`` with them.

        Args:
            x (numpy.ndarray or Tensor): the images ``(N, C, H, W)`` (or channels last).
            x_preprocessed (numpy.ndarray or Tensor or None): what the model gets instead of ``x``
                (e.g. mean-subtracted), same shape. Default ``None``.
            output_file, blur, threshold, masked_opacity, combine_channels: as in
                :meth:`MaskVisualizer.__call__` (None: the constructor's).
            imshow, fig, return_tiled, use_attr_as_opacity, positive_only: keyword only, as in
                :meth:`MaskVisualizer.__call__` (TruLens has no way to pass them).

        Returns:
            numpy.ndarray: as :meth:`MaskVisualizer.__call__`.
        """
        model_input = x if x_preprocessed is None else x_preprocessed
        if x_preprocessed is not None and tuple(np.shape(x_preprocessed)) != tuple(np.shape(x)):
            raise ValueError(f"x_preprocessed must have the shape of x {tuple(np.shape(x))}, "
                             f"got {tuple(np.shape(x_preprocessed))}")
        return self.mask_visualizer(self.attributions(model_input), x, output_file=output_file, imshow=imshow,
                                    fig=fig, return_tiled=return_tiled, blur=blur, threshold=threshold,
                                    masked_opacity=masked_opacity, combine_channels=combine_channels,
                                    use_attr_as_opacity=use_attr_as_opacity, positive_only=positive_only)
