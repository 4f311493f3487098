"""The Grad-CAM overlay of Captum's LayerGradCam tutorial, in one call.

The tutorial upsamples a layer attribution to the input size
(``LayerAttribution.interpolate(attr, (H, W), 'bicubic')``, i.e. ``F.interpolate`` with
``align_corners=False``), normalises it to 8-bit grey (``x -= x.min(); x /= x.max() + eps;
uint8(x * 255)``, truncating), colours it with OpenCV's jet and blends it with the image by
``cv2.addWeighted(image, 0.5, heatmap, 0.5, 0)`` (rounded to uint8). :func:`overlay` does the same,
batched in torch:

* the colour map is a 256-entry table of :mod:`xaifast.colormaps` (``'jet'`` is matplotlib's jet,
  which differs from OpenCV's ``COLORMAP_JET`` by a few levels; CMSL names/sources work too) indexed
  by ``trunc(255 * t)``, ``t`` the min-max normalised map;
* the normalisation divides by the exact range, so the maximum always gets the last colour; a
  constant map (zero range) is defined as all zeros: the first colour everywhere;
* the blend ``image_weight * image + (1 - image_weight) * heatmap`` is computed in floats on the
  0..255 scale (uint8 images stay exact integers, float images are not quantised first) and rounded
  half to even, as ``cv2.addWeighted`` does: with a uint8 image and matplotlib's jet in place of
  OpenCV's, the result equals the tutorial's pixel for pixel (checked in tests/test_overlay.py).

Relation to pytorch-grad-cam's ``show_cam_on_image(img, mask, use_rgb=True, image_weight=w)``:
same blend formula, but that function expects a mask already in ``[0, 1]`` (its ``scale_cam_image``
does the min-max step), uses OpenCV's jet, and then divides the blend by its own maximum
(``cam / np.max(cam)``) before truncating to uint8, which brightens dark images and changes the
image's colours. That re-normalisation is offered as ``renormalize=True`` (off by default, matching
the Captum recipe; the final step rounds where grad-cam truncates); results then agree with
``show_cam_on_image`` up to the jet table and that rounding.
"""

import torch
import torch.nn.functional as F

from . import _heatmap_images as _images

__all__ = ["overlay"]

_MODES = ("bilinear", "bicubic", "nearest", "nearest-exact", "area")


def _saliency_batch(saliency):
    """``(h, w)``, ``(1, h, w)`` or ``(N, 1, h, w)`` -> ``((N, 1, h, w) floats, batched)``."""
    tensor = _images.as_tensor(saliency, "saliency")
    if tensor.dim() == 2:
        return _images.as_map_batch(tensor[None, None], "saliency"), False
    if tensor.dim() == 3:
        if tensor.shape[0] != 1:
            raise ValueError(f"saliency must be (h, w), (1, h, w) or (N, 1, h, w), got shape {tuple(tensor.shape)}; "
                             "a 3-D saliency needs 1 channel first")
        return _images.as_map_batch(tensor[None], "saliency"), False
    if tensor.dim() == 4:
        return _images.as_map_batch(tensor, "saliency", channels=(1,)), True
    raise ValueError(f"saliency must be (h, w), (1, h, w) or (N, 1, h, w), got shape {tuple(tensor.shape)}")


def overlay(saliency, image, mode="bilinear", cmap="jet", image_weight=0.5, mean=None, std=None,
            renormalize=False):
    """Upsample layer saliency maps, colour them and blend them with their images (Captum's Grad-CAM recipe).

    Args:
        saliency (Tensor or array): ``(h, w)`` or ``(1, h, w)`` for one map, ``(N, 1, h, w)`` for a
            batch (e.g. ``LayerGradCam`` output); finite.
        image: PIL image, ``(H, W, 3)`` array (uint8, or float in ``[0, 1]``), ``(3, H, W)`` tensor,
            ``(N, 3, H, W)`` tensor or a list of N images; a single image is used for every map.
            Grey images (1 channel) are repeated to RGB.
        mode (str): upsampling of ``F.interpolate``: ``'bilinear'`` (default), ``'bicubic'`` (the
            tutorial's), ``'nearest'``, ``'nearest-exact'``, ``'area'``.
        cmap (str or ColorMap): colour map name of :mod:`xaifast.colormaps` (default ``'jet'``),
            CMSL built-in name or source.
        image_weight (float): weight of the image in ``[0, 1]``, default 0.5; the heatmap gets
            ``1 - image_weight``.
        mean, std (float or sequence of 3 floats): if given, a floating ``image`` is a normalised
            model input: it becomes ``image * std + mean``, clipped to ``[0, 1]``. Default None
            (floating images must then lie in ``[0, 1]``).
        renormalize (bool): divide each blend by its maximum before quantising, as pytorch-grad-cam's
            ``show_cam_on_image`` does; default False.

    Returns:
        PIL.Image.Image or list of PIL.Image.Image: one ``'RGB'`` image of the image's size for a
        single map and image, else a list of N.

    Raises:
        ValueError: wrong shapes or sizes, batch lengths that differ, out-of-range arguments or float
            images, unknown colour map. TypeError: arguments of the wrong type.

    Example:
        >>> import numpy as np
        >>> picture = overlay(torch.rand(7, 7), np.zeros((224, 224, 3), np.uint8))
        >>> picture.size, picture.mode
        ((224, 224), 'RGB')
    """
    maps, batched = _saliency_batch(saliency)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
    weight = _images.real(image_weight, "image_weight")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"image_weight must be in [0, 1], got {image_weight!r}")
    table = torch.from_numpy(_images.colour_table(cmap, "cmap")).to(maps.device)
    images, images_batched = _images.as_image_batch(  # in 0..255: uint8 stays exact, so .5 ties are exact
        image, "image", hint="; pass mean= and std= to un-normalise a model input", mean=mean, std=std, scale=255)
    if images_batched:
        if not batched:
            raise ValueError(f"image holds a batch of {images.shape[0]} images but saliency is one map; "
                             "pass saliency of shape (N, 1, h, w)")
        if images.shape[0] != maps.shape[0]:
            raise ValueError(f"image holds {images.shape[0]} images but saliency holds {maps.shape[0]} maps")
    count, size = maps.shape[0], tuple(images.shape[-2:])
    images = images.to(maps.device, maps.dtype).expand(count, -1, -1, -1)

    # constant maps are recognised before upsampling, which can add rounding noise to a flat map
    varies = (maps.amax(dim=(1, 2, 3), keepdim=True) > maps.amin(dim=(1, 2, 3), keepdim=True))
    if tuple(maps.shape[-2:]) != size:
        corners = False if mode in ("bilinear", "bicubic") else None
        maps = F.interpolate(maps, size=size, mode=mode, align_corners=corners)
    low = maps.amin(dim=(1, 2, 3), keepdim=True)
    extent = maps.amax(dim=(1, 2, 3), keepdim=True) - low
    varies = varies & (extent > 0)
    # a constant map is 0 everywhere (the tutorial's x / (0 + eps) gives the same)
    scaled = torch.where(varies, (maps - low) / torch.where(varies, extent, 1.0), 0.0)
    index = (scaled[:, 0] * 255.0).clamp(0, 255).long()            # trunc, as uint8(x * 255): 0.999 -> 254
    colours = table[index].permute(0, 3, 1, 2).to(maps.dtype)      # 0..255
    blend = weight * images + (1.0 - weight) * colours
    if renormalize:
        peak = blend.amax(dim=(1, 2, 3), keepdim=True)
        blend = blend * (255.0 / torch.where(peak > 0, peak, 1.0))
    pictures = _images.to_pil(blend, scale=255.0)
    return pictures if batched else pictures[0]
