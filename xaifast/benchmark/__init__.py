"""Example data and models to demonstrate and benchmark attribution methods (TorchRay's
``torchray.benchmark``), working offline.

:func:`get_example_data` gives TorchRay's example (an ImageNet VGG16 and a dog-and-cats picture)
when everything it needs is already on this machine, and otherwise xaifast's embedded example:
a small CNN trained on synthetic coloured shapes (:mod:`.models`, :mod:`.datasets`), shipped
with the package (weights of about 0.5 MB), and an image with two objects at known places.

Example::

    from xaifast.benchmark import get_example_data, plot_example
    from xaifast.attribution.grad_cam import grad_cam

    model, x, category_id_1, category_id_2 = get_example_data()
    layer = model.xaifast_layers["grad_cam"]       # 'features.9' (embedded) or 'features.29' (VGG16)
    saliency = grad_cam(model, x, category_id_1, saliency_layer=layer)
    plot_example(x, saliency, "grad-cam", category_id_1, save_path="grad_cam.png")
"""

import logging
import numbers
import os
import re

import torch

from ..utils import get_device
from ._plot import plot_example
from .datasets import *  # noqa: F401,F403
from .datasets import __all__ as _datasets_all
from .datasets import _check_size, example_image
from .models import *  # noqa: F401,F403
from .models import __all__ as _models_all
from .models import get_example_model

__all__ = ["get_example_data", "plot_example", "EXAMPLE_IMAGE_ENV", "VGG16_LAYERS",
           *_datasets_all, *_models_all]

_log = logging.getLogger(__name__)

# Path of the picture for the torchvision example (TorchRay downloads Arthur Heyer's
# "Dog and Cats" from Wikimedia; xaifast never downloads).
EXAMPLE_IMAGE_ENV = "XAIFAST_EXAMPLE_IMAGE"

# TorchRay's example categories in that picture: ImageNet 245 (French bulldog), 285 (Egyptian cat).
_IMAGENET_CATEGORIES = (245, 285)

# The layers TorchRay's examples explain on VGG16; set as ``model.xaifast_layers`` there too.
VGG16_LAYERS = {
    "grad_cam": "features.29",
    "saliency_layer": "features.9",
    "contrast_layer": "features.30",
    "classifier_layer": "classifier.6",
}

# torchvision's ImageNet classifier families, to reject a misspelt arch without torchvision.
_TORCHVISION_ARCH = re.compile(
    r"alexnet|vgg(11|13|16|19)(_bn)?|resnet(18|34|50|101|152)|resnext(50_32x4d|101_32x8d|101_64x4d)|"
    r"wide_resnet(50|101)_2|densenet(121|161|169|201)|squeezenet1_[01]|inception_v3|googlenet|"
    r"mobilenet_v2|mobilenet_v3_(large|small)|shufflenet_v2_x(0_5|1_0|1_5|2_0)|mnasnet(0_5|0_75|1_0|1_3)|"
    r"efficientnet_b[0-7]|efficientnet_v2_[sml]|regnet_[xy]_\d+(mf|gf)|convnext_(tiny|small|base|large)|"
    r"vit_[bhl]_(14|16|32)|swin_(v2_)?[tsb]|maxvit_t")


def _check_arch(arch):
    if not isinstance(arch, str):
        raise TypeError(f"arch must be a str, got {type(arch).__name__}")
    if arch == "example":
        return
    try:
        import torchvision
    except ImportError:
        known = _TORCHVISION_ARCH.fullmatch(arch) is not None
    else:
        known = arch in torchvision.models.list_models(module=torchvision.models)
    if not known:
        raise ValueError(f"arch must be 'example' or a torchvision.models classifier such as 'vgg16', "
                         f"got {arch!r}")


def _torchvision_source(arch):
    """``(weights, image_path, None)`` if the torchvision example can run offline, else ``(.., reason)``."""
    try:
        import torchvision
    except ImportError:
        return None, None, "torchvision is not installed"
    weights = torchvision.models.get_model_weights(arch)
    # TorchRay's pretrained=True meant the first ImageNet weights.
    weights = getattr(weights, "IMAGENET1K_V1", None) or weights.DEFAULT
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if not os.path.isfile(cached):
        return None, None, f"the {arch} weights are not in the torch hub cache ({cached})"
    image_path = os.environ.get(EXAMPLE_IMAGE_ENV)
    if not image_path:
        return None, None, f"{EXAMPLE_IMAGE_ENV} is not set"
    if not os.path.isfile(image_path):
        return None, None, f"{EXAMPLE_IMAGE_ENV}={image_path!r} is not a file"
    return weights, image_path, None


def _torchvision_example(arch, weights, image_path, size):
    import torchvision
    from PIL import Image

    # The weights are in the hub cache (checked): this loads them from there, nothing is downloaded.
    model = torchvision.models.get_model(arch, weights=weights)
    if arch == "vgg16":
        model.xaifast_layers = dict(VGG16_LAYERS)
    model.classes = tuple(weights.meta["categories"])
    transform = torchvision.transforms.Compose([
        torchvision.transforms.Resize(size),
        torchvision.transforms.CenterCrop(size),
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])
    with Image.open(image_path) as img:
        x = transform(img.convert("RGB")).unsqueeze(0)
    return model, x, _IMAGENET_CATEGORIES[0], _IMAGENET_CATEGORIES[1]


def get_example_data(arch="vgg16", shape=224):
    """Get example data to demonstrate visualization techniques: ``(model, x, category_id_1, category_id_2)``.

    TorchRay's example is an ImageNet-pretrained torchvision model (default VGG16) and a picture of
    a dog and cats (categories 245 and 285). xaifast never downloads; it gives that example only
    when all of it is already here:

    * torchvision is installed,
    * the model's ImageNet weights are in the torch hub cache (``torch.hub.get_dir()/checkpoints``),
    * the environment variable ``XAIFAST_EXAMPLE_IMAGE`` names the picture (TorchRay's is Arthur
      Heyer's "Dog and Cats" on Wikimedia Commons; the category ids are that picture's).

    Otherwise, and always for ``arch='example'``, it returns the **embedded example**: the small
    CNN of :func:`~xaifast.benchmark.models.get_example_model` (trained on the synthetic shapes
    of :mod:`xaifast.benchmark.datasets`) and :func:`~xaifast.benchmark.datasets.example_image`,
    a red disc (category 0) in the upper left and an orange star (category 6) in the lower
    right; the choice and its reason are logged at INFO level on ``xaifast.benchmark``. Either
    way ``model.classes`` holds the class names and, for the embedded model and VGG16,
    ``model.xaifast_layers`` the layers to explain (``'grad_cam'``, ``'saliency_layer'``,
    ``'contrast_layer'``, ``'classifier_layer'``).

    Args:
        arch (str): a torchvision.models classifier name, or ``'example'`` for the embedded
            model. Default: ``'vgg16'``.
        shape (int or tuple of int): size of the input image: the side (torchvision: resize
            the shorter side, then centre-crop) or ``(H, W)``; at least 64. Default: ``224``.

    Returns:
        tuple: ``(model, x, category_id_1, category_id_2)``: the model in eval mode with frozen
        parameters (``requires_grad=False``) on :func:`xaifast.utils.get_device`, the
        ``(1, 3, H, W)`` normalised input image on the same device, and the two category ids of
        objects in the image.

    Raises:
        ValueError: ``arch`` is neither ``'example'`` nor a torchvision classifier name, or
            ``shape`` is below 64.

    Example:
        >>> model, x, c1, c2 = get_example_data(arch='example')
        >>> x.shape, model.classes[c1], model.classes[c2]
        (torch.Size([1, 3, 224, 224]), 'red disc', 'orange star')
    """
    _check_arch(arch)
    size = _check_size(shape, "shape")
    if arch == "example":
        reason = "arch='example'"
    else:
        weights, image_path, reason = _torchvision_source(arch)
    if reason is None:
        model, x, category_id_1, category_id_2 = _torchvision_example(
            arch, weights, image_path, int(shape) if isinstance(shape, numbers.Integral) else size)
        _log.info("get_example_data: torchvision %s and %s", arch, image_path)
    else:
        _log.info("get_example_data: xaifast's embedded example model and image (%s)", reason)
        model = get_example_model()
        x, category_id_1, category_id_2, _ = example_image(size)

    # Eval mode makes the visualization deterministic; the parameters need no gradient.
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    device = get_device()
    return model.to(device), x.to(device), category_id_1, category_id_2
