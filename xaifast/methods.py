"""One entry point for every attribution method: the registry behind ``xaifast explain``/``demo``
and the evaluation (:mod:`xaifast.benchmark.evaluation`).

:data:`METHODS` maps a method name to a callable, in the order TorchRay's benchmark lists them
(plus linear approximation and the centre baseline); :func:`explain` runs one on a batch, one
target class per image, and always returns a ``(N, 1, H, W)`` float32 map at the input's
resolution, whatever the method's native output (a layer-level map, RISE's per-class maps,
extremal perturbation's masks).

Layer-level methods need layer names. They come from the ``layers`` argument, else from
``model.xaifast_layers`` (the embedded example model and TorchRay's VGG16 example carry one),
else from :func:`infer_layers`.

Example::

    from xaifast.benchmark.datasets import example_image
    from xaifast.benchmark.models import get_example_model
    from xaifast.methods import METHODS, explain

    model = get_example_model()
    x, c1, c2, _ = example_image()                       # (1, 3, 224, 224), two classes
    images = x.expand(2, -1, -1, -1)
    maps = {name: explain(name, model, images, [c1, c2]) for name in METHODS}   # each (2, 1, 224, 224)
"""

import math
import numbers
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .attribution.deconvnet import deconvnet
from .attribution.excitation_backprop import contrastive_excitation_backprop, excitation_backprop
from .attribution.extremal_perturbation import extremal_perturbation
from .attribution.grad_cam import grad_cam
from .attribution.gradient import gradient
from .attribution.guided_backprop import guided_backprop
from .attribution.linear_approx import linear_approx
from .attribution.rise import rise_class
from .attribution._targets import class_indices

__all__ = ["METHODS", "LAYER_KEYS", "explain", "infer_layers", "center_saliency"]

# The keys of a ``layers`` dict (TorchRay's benchmark names for VGG16 in brackets):
# Grad-CAM and linear approximation layer (features.29), excitation backprop's saliency layer
# (pool4), contrastive EBP's contrast layer (relu7) and the classifier whose weights it negates.
LAYER_KEYS = ("grad_cam", "saliency_layer", "contrast_layer", "classifier_layer")

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Modules that are no place for a map (they act on vectors or change nothing in eval mode).
_SKIPPED_AFTER_CONV = (nn.Dropout, nn.Dropout2d, nn.Flatten, nn.Identity)


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------

def _leaf_modules(model):
    return [(name, module) for name, module in model.named_modules()
            if name and not any(True for _ in module.children())]


def _with_following_relu(leaves, index):
    """The name of leaf ``index``, or of the ReLU right after it (where TorchRay probes VGG16)."""
    if index + 1 < len(leaves) and isinstance(leaves[index + 1][1], nn.ReLU):
        return leaves[index + 1][0]
    return leaves[index][0]


def infer_layers(model):
    """Guess the layers of ``model`` to explain, from its modules' registration order.

    The guess reads ``model.named_modules()`` as if it were the execution order (true for
    ``nn.Sequential`` stacks and VGG/AlexNet-like models; check it for others):

    * ``'grad_cam'`` (also linear approximation): the last ``nn.Conv2d``, or the ``nn.ReLU``
      that directly follows it;
    * ``'saliency_layer'`` (excitation backprop): the middle ``nn.Conv2d`` (index
      ``(num_convs - 1) // 2``), or the ``nn.ReLU`` right after it;
    * ``'contrast_layer'`` (contrastive EBP): the first leaf module after the Grad-CAM layer
      that is not a dropout, flatten, identity or the classifier (a pooling, typically), else
      the Grad-CAM layer itself;
    * ``'classifier_layer'``: the last ``nn.Linear`` or ``nn.Conv1d/2d/3d``.

    Args:
        model (torch.nn.Module): the model.

    Returns:
        dict: the four names of :data:`LAYER_KEYS`.

    Raises:
        ValueError: naming ``layers``, when ``model`` has no ``nn.Conv2d`` or no classifier.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        ...                             torch.nn.Flatten(), torch.nn.Linear(36, 5))
        >>> infer_layers(model)
        {'grad_cam': '1', 'saliency_layer': '1', 'contrast_layer': '2', 'classifier_layer': '4'}
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    leaves = _leaf_modules(model)
    convs = [i for i, (_, module) in enumerate(leaves) if isinstance(module, nn.Conv2d)]
    classifiers = [name for name, module in leaves if isinstance(module, (nn.Linear,) + _CONV_TYPES)]
    if not convs or not classifiers:
        raise ValueError("layers could not be inferred: the model has no nn.Conv2d or no nn.Linear/Conv "
                         "classifier; pass layers={'grad_cam': ..., 'saliency_layer': ..., "
                         "'contrast_layer': ..., 'classifier_layer': ...} (module names)")
    classifier = classifiers[-1]
    grad_cam_layer = _with_following_relu(leaves, convs[-1])
    grad_cam_index = [name for name, _ in leaves].index(grad_cam_layer)
    contrast_layer = grad_cam_layer
    for name, module in leaves[grad_cam_index + 1:]:
        if name == classifier:
            break
        if not isinstance(module, _SKIPPED_AFTER_CONV):
            contrast_layer = name
            break
    return {
        "grad_cam": grad_cam_layer,
        "saliency_layer": _with_following_relu(leaves, convs[(len(convs) - 1) // 2]),
        "contrast_layer": contrast_layer,
        "classifier_layer": classifier,
    }


def _resolve_layers(model, layers, needed):
    """The layer names ``needed`` by a method: from ``layers``, ``model.xaifast_layers``, or a guess."""
    if layers is None:
        layers = getattr(model, "xaifast_layers", None)
    if layers is None:
        layers = infer_layers(model)
    if not isinstance(layers, dict):
        raise TypeError(f"layers must be a dict with keys {LAYER_KEYS}, got {type(layers).__name__}")
    unknown = set(layers) - set(LAYER_KEYS)
    if unknown:
        raise ValueError(f"layers has unknown keys {sorted(unknown)}; valid keys: {list(LAYER_KEYS)}")
    names = dict(model.named_modules())
    resolved = {}
    for key in needed:
        value = layers.get(key)
        if value is None and key == "classifier_layer":
            resolved[key] = None  # contrastive EBP then picks the last Linear/Conv itself
            continue
        if value is None:
            raise ValueError(f"layers must name the {key!r} layer for this method, got {layers!r}")
        if isinstance(value, str) and value not in names:
            raise ValueError(f"layers[{key!r}] = {value!r} is not a module of the model "
                             f"(see model.named_modules())")
        if not isinstance(value, (str, nn.Module)):
            raise TypeError(f"layers[{key!r}] must be a module name or a module, got {type(value).__name__}")
        resolved[key] = value
    return resolved


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

def _check_input(x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty (N, C, H, W) batch, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}")


def _check_method(method):
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, one of {list(METHODS)}, got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    return METHODS[method]


# --------------------------------------------------------------------------------------------
# The methods: (model, x, targets, layers, progress, **options) -> map
# --------------------------------------------------------------------------------------------

def _backprop(function, needed=(), **fixed):
    def run(model, x, targets, layers, progress=False, **options):
        names = _resolve_layers(model, layers, needed) if needed else {}
        arguments = dict(fixed)
        for key, option in (("grad_cam", "saliency_layer"), ("saliency_layer", "saliency_layer"),
                            ("contrast_layer", "contrast_layer"), ("classifier_layer", "classifier_layer")):
            if key in names:
                arguments[option] = names[key]
        arguments.update(options)
        # A detached view: input-level methods leave requires_grad and .grad on their input.
        return function(model, x.detach(), targets, **arguments)
    run.__name__ = function.__name__
    return run


def _rise(model, x, targets, layers, progress=False, **options):
    return rise_class(model, x, target=targets, progress=progress, **options)


def _extremal_perturbation(model, x, targets, layers, progress=False, **options):
    options.setdefault("areas", [0.1])
    masks, _ = extremal_perturbation(model, x, targets, progress=progress, **options)
    # One mask per area for each image (rows n K .. n K + K - 1): summed, as TorchRay's benchmark does.
    return masks.reshape(x.shape[0], -1, *masks.shape[1:]).sum(1)


def center_saliency(shape, sigma=None, device=None, dtype=torch.float32):
    """The centre baseline: a Gaussian bump peaking at pixel ``(W // 2, H // 2)``.

    The peak is TorchRay's centre point ``(w / 2, h / 2)`` for even sizes (its benchmark's
    ``center`` method), so the pointing game's argmax lands there.

    Args:
        shape (tuple): ``(N, H, W)`` or ``(N, C, H, W)`` (only ``N``, ``H``, ``W`` are read).
        sigma (float, optional): standard deviation in pixels. Default: ``min(H, W) / 4``.
        device (torch.device, optional): where to make it. Default: the CPU.
        dtype (torch.dtype): Default: ``torch.float32``.

    Returns:
        Tensor: ``(N, 1, H, W)``, the same map for every image, peak 1.

    Example:
        >>> center_saliency((2, 3, 8, 8)).flatten(1).argmax(1)
        tensor([36, 36])
    """
    num_images, (height, width) = shape[0], tuple(shape[-2:])
    if sigma is None:
        sigma = min(height, width) / 4
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    rows = (torch.arange(height, device=device, dtype=torch.float64) - height // 2) ** 2
    cols = (torch.arange(width, device=device, dtype=torch.float64) - width // 2) ** 2
    bump = torch.exp(-(rows[:, None] + cols[None, :]) / (2 * float(sigma) ** 2)).to(dtype)
    return bump.expand(num_images, 1, height, width).clone()


def _center(model, x, targets, layers, progress=False, sigma=None):
    return center_saliency(x.shape, sigma=sigma, device=x.device)


METHODS = OrderedDict([
    ("gradient", _backprop(gradient)),
    ("deconvnet", _backprop(deconvnet)),
    ("guided_backprop", _backprop(guided_backprop)),
    ("grad_cam", _backprop(grad_cam, ("grad_cam",), resize=True)),
    ("linear_approx", _backprop(linear_approx, ("grad_cam",), resize=True)),
    ("excitation_backprop", _backprop(excitation_backprop, ("saliency_layer",), resize=True)),
    ("contrastive_excitation_backprop", _backprop(
        contrastive_excitation_backprop, ("saliency_layer", "contrast_layer", "classifier_layer"), resize=True)),
    ("rise", _rise),
    ("extremal_perturbation", _extremal_perturbation),
    ("center", _center),
])
"""Method name -> callable ``(model, x, targets, layers, progress=False, **options)``; use :func:`explain`."""


def explain(method, model, x, target, layers=None, progress=False, **options):
    """Saliency maps of one method for a batch, one target class per image.

    Every method returns a ``(N, 1, H, W)`` float32 map at the input's resolution; options go to
    the method and override the defaults below. The backprop methods and RISE run on the whole
    batch (each image with its own target); so does extremal perturbation.

    ======================================  ==================================================
    method                                  call (defaults)
    ======================================  ==================================================
    ``gradient``                            ``gradient(model, x, target)``: at the input
    ``deconvnet``                           ``deconvnet(model, x, target)``
    ``guided_backprop``                     ``guided_backprop(model, x, target)``
    ``grad_cam``                            ``grad_cam(..., saliency_layer=layers['grad_cam'], resize=True)``
    ``linear_approx``                       ``linear_approx(..., saliency_layer=layers['grad_cam'], resize=True)``
    ``excitation_backprop``                 ``excitation_backprop(..., saliency_layer=layers['saliency_layer'],
                                            resize=True)``
    ``contrastive_excitation_backprop``     ``contrastive_excitation_backprop(..., layers['saliency_layer'],
                                            layers['contrast_layer'], layers['classifier_layer'], resize=True)``
    ``rise``                                ``rise_class(model, x, target=target, progress=progress)``:
                                            ``seed=0``, ``num_masks=8000``, ``batch_size=32``, sigmoid scores
    ``extremal_perturbation``               ``extremal_perturbation(model, x, target, areas=[0.1],
                                            progress=progress)``: ``max_iter=800``, blur, preserve; the
                                            masks of several ``areas`` are summed per image (as TorchRay's
                                            benchmark does)
    ``center``                              :func:`center_saliency`: a Gaussian at the image centre,
                                            ``sigma=min(H, W) / 4``; the model is not run
    ======================================  ==================================================

    A map that comes back at another size (e.g. ``resize=False`` passed as an option) is
    resized bilinearly to ``(H, W)``; float64 maps are cast to float32. The result is detached.

    Args:
        method (str): a key of :data:`METHODS`.
        model (torch.nn.Module): maps ``(N, 3, H, W)`` to ``(N, C)`` class scores.
        x (Tensor): ``(N, 3, H, W)`` images (left untouched: no ``requires_grad``, no ``.grad``).
        target (int, sequence or Tensor): a class index for every image, or one per image.
        layers (dict, optional): module names for the keys of :data:`LAYER_KEYS` that the
            method needs. Default: ``model.xaifast_layers`` if the model has it, else
            :func:`infer_layers`.
        progress (bool): show a progress bar (RISE and extremal perturbation). Default: ``False``.
        **options: passed to the method (``num_masks``, ``max_iter``, ``smooth``, ...).

    Returns:
        Tensor: ``(N, 1, H, W)`` float32 saliency.

    Raises:
        ValueError: naming ``method`` (unknown, with the valid names), ``target`` (wrong count,
            negative; out of range as the method finds it) or ``layers`` (missing, unknown name,
            not inferable).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...                             torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 5))
        >>> explain("grad_cam", model, torch.rand(2, 3, 8, 8), [1, 3]).shape
        torch.Size([2, 1, 8, 8])
    """
    function = _check_method(method)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_input(x)
    targets = class_indices(target, x.shape[0])
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    saliency = function(model, x, targets, layers, progress=progress, **options)
    if isinstance(saliency, tuple):  # debug=True options return (map, probes)
        saliency = saliency[0]
    saliency = saliency.detach()
    if saliency.shape[2:] != x.shape[2:]:
        saliency = F.interpolate(saliency.float(), size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)
    return saliency.float()
