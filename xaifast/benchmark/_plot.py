"""``plot_example``: an image and its saliency map side by side, row by row (TorchRay's figure).

With matplotlib the figure is TorchRay's (``imsc`` of the image, ``imsc`` of the map without
interpolation, a small title over each). Without it, the same layout is composed with Pillow
and written as an image file, so examples run on a bare install.
"""

import numbers
import os
import warnings

import torch

from ..utils import imsc, xmkdir
from .datasets import CLASSES, NUM_CLASSES

__all__ = ["plot_example"]

_CAPTION = 14  # pixels of caption band above each tile in the Pillow figure


def _category_ids(category_id):
    if isinstance(category_id, numbers.Integral) and not isinstance(category_id, bool):
        return [int(category_id)]
    if isinstance(category_id, torch.Tensor) and category_id.dim() <= 1 and not category_id.is_floating_point():
        return [int(c) for c in category_id.reshape(-1).tolist()]
    if isinstance(category_id, (list, tuple)) and len(category_id) > 0 and all(
            isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in category_id):
        return [int(c) for c in category_id]
    raise TypeError(f"category_id must be an int or a non-empty sequence of ints, got {category_id!r}")


def _imagenet_classes():
    """ImageNet class names from torchvision's weight metadata (offline), or ``None``."""
    try:
        from torchvision.models import VGG16_Weights
        return tuple(VGG16_Weights.IMAGENET1K_V1.meta["categories"])
    except Exception:  # torchvision missing or too old: names become numbers
        return None


def _class_names(ids, classes):
    if classes is None:
        # The embedded model's ids are 0..NUM_CLASSES-1; TorchRay's example ids (245, 285) are ImageNet's.
        classes = CLASSES if all(0 <= c < NUM_CLASSES for c in ids) else _imagenet_classes()
    elif isinstance(classes, str) or not all(isinstance(name, str) for name in classes):
        raise TypeError("classes must be a sequence of class names (str)")
    names = []
    for c in ids:
        if classes is not None and not 0 <= c < len(classes):
            raise ValueError(f"category_id {c} is out of range for {len(classes)} classes")
        names.append(classes[c] if classes is not None else str(c))
    return names


def _check(input, saliency, method):
    for name, tensor in (("input", input), ("saliency", saliency)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dim() != 4 or tensor.shape[0] == 0 or tensor.numel() == 0:
            raise ValueError(f"{name} must be a non-empty 4-D (N, C, H, W) tensor, got shape {tuple(tensor.shape)}")
    if input.shape[1] not in (1, 3):
        raise ValueError(f"input must have 1 or 3 channels, got shape {tuple(input.shape)}")
    if saliency.shape[1] not in (1, 3):
        raise ValueError(f"saliency must have 1 (or 3) channels, got shape {tuple(saliency.shape)}")
    if saliency.shape[0] < input.shape[0]:
        raise ValueError(f"saliency must have a map per input image: {input.shape[0]} images, "
                         f"{saliency.shape[0]} maps")
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")


def _plot_matplotlib(plt, input, saliency, titles, show_plot, save_path):
    batch_size = len(input)
    plt.clf()
    for i in range(batch_size):
        plt.subplot(batch_size, 2, 1 + 2 * i)
        imsc(input[i].detach())
        plt.title("input image", fontsize=8)
        plt.subplot(batch_size, 2, 2 + 2 * i)
        imsc(saliency[i].detach(), interpolation="none")
        plt.title(titles[i], fontsize=8)
    if save_path:
        xmkdir(os.path.dirname(os.path.abspath(save_path)))
        ext = os.path.splitext(save_path)[1].strip(".") or None
        plt.savefig(save_path, format=ext, bbox_inches="tight")
    if show_plot:
        plt.show()


def _tile(image, size):
    """``(C, h, w)`` tensor -> ``(H, W, 3)`` uint8 array, rescaled to its range, nearest-upsampled."""
    scaled, _ = imsc(image.detach().float().cpu(), quiet=True)
    if scaled.shape[1:] != size:
        scaled = torch.nn.functional.interpolate(scaled[None], size=size, mode="nearest")[0]
    scaled = scaled.expand(3, *size)
    return (scaled * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _plot_pil(input, saliency, titles, show_plot, save_path):
    from PIL import Image, ImageDraw

    size = tuple(input.shape[2:])
    height, width = size[0] + _CAPTION, size[1]
    figure = Image.new("RGB", (2 * width + 4, len(input) * height), "white")
    draw = ImageDraw.Draw(figure)
    for i in range(len(input)):
        top = i * height
        for column, (tensor, title) in enumerate(((input[i], "input image"), (saliency[i], titles[i]))):
            left = column * (width + 4)
            draw.text((left + 2, top + 2), title, fill="black")
            figure.paste(Image.fromarray(_tile(tensor, size)), (left, top + _CAPTION))
    if save_path:
        xmkdir(os.path.dirname(os.path.abspath(save_path)))
        figure.save(save_path)
    if show_plot:
        warnings.warn("plot_example: matplotlib is not installed, so nothing is shown (save_path still "
                      "works); `pip install matplotlib` to show the figure", stacklevel=3)
    return figure


def plot_example(input, saliency, method, category_id, show_plot=False, save_path=None, classes=None):
    """Plot each image beside its saliency map, titled with the method and the category.

    TorchRay's ``plot_example``: row ``i`` shows ``input[i]`` and ``saliency[i]`` (both rescaled to
    their own range), the map titled ``'<method> for category <name> (<id>)'`` with
    ``category_id[i % len(category_id)]``. Drawn with matplotlib when it is installed (into the
    current figure, cleared first); otherwise the same layout is composed with Pillow and saved
    (``show_plot`` then only warns).

    Class names: ``classes`` if given (e.g. ``model.classes``); otherwise the embedded
    :data:`~xaifast.benchmark.datasets.CLASSES` when every id is below ``NUM_CLASSES``, else
    ImageNet's names (from torchvision's metadata when installed, else the bare ids).

    Args:
        input (Tensor): ``(N, 3, H, W)`` (or 1-channel) images, e.g. normalised model inputs.
        saliency (Tensor): ``(N, 1, h, w)`` saliency maps, one per image (any resolution).
        method (str): name of the saliency method, for the titles.
        category_id (int or sequence of int): the category explained, one or one per image.
        show_plot (bool): show the figure (``plt.show()``). Default: ``False``.
        save_path (str, optional): write the figure there (folders are created; the format
            follows the extension). Default: ``None``.
        classes (sequence of str, optional): class names indexed by category id. Default: ``None``.

    Returns:
        None

    Example:
        >>> from xaifast.benchmark import get_example_data
        >>> from xaifast.attribution.grad_cam import grad_cam
        >>> model, x, c1, c2 = get_example_data(arch='example')
        >>> s = grad_cam(model, x, c1, saliency_layer=model.xaifast_layers['grad_cam'])
        >>> plot_example(x, s, 'grad-cam', c1, save_path='grad_cam.png')
    """
    _check(input, saliency, method)
    if not isinstance(show_plot, bool):
        raise TypeError(f"show_plot must be a bool, got {type(show_plot).__name__}")
    if save_path is not None and not isinstance(save_path, (str, os.PathLike)):
        raise TypeError(f"save_path must be a path or None, got {type(save_path).__name__}")
    save_path = os.fspath(save_path) if save_path is not None else None
    ids = _category_ids(category_id)
    names = _class_names(ids, classes)
    titles = [f"{method} for category {names[i % len(ids)]} ({ids[i % len(ids)]})" for i in range(len(input))]
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        _plot_pil(input, saliency, titles, show_plot, save_path)
        return None
    _plot_matplotlib(plt, input, saliency, titles, show_plot, save_path)
    return None
