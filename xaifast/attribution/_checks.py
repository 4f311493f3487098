"""Argument checks of the attribution entry points.

Each raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong value)
with a message that starts with the name of the argument as the caller spelled it.
"""

import math
import numbers

import torch
import torch.nn.functional as F

# Modes of F.interpolate and the number of spatial dimensions each accepts (None: any).
_RESIZE_MODES = {
    "nearest": None,
    "nearest-exact": None,
    "area": None,
    "linear": 1,
    "bilinear": 2,
    "bicubic": 2,
    "trilinear": 3,
}
# Only these take `align_corners`; F.interpolate rejects it for the others.
INTERPOLATING_MODES = ("linear", "bilinear", "bicubic", "trilinear")


def check_tensor(name, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_module(name, value):
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(value).__name__}")
    return value


def check_callable(name, value):
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def check_nonnegative_real(name, value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_resize(name, value):
    """Check a ``resize`` value: ``True``, ``False`` or a ``(width, height)`` tuple or list."""
    if value is True or value is False:
        return value
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be True, False or a (width, height) tuple or list, "
                        f"got {type(value).__name__}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral) or item < 1:
            raise ValueError(f"{name} must hold positive integer sizes (width, height), got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{name} must be a non-empty (width, height) tuple or list, got {value!r}")
    return value


def check_resize_mode(name, value, spatial_dims=None):
    """Check an ``F.interpolate`` mode (and, if given, that it fits ``spatial_dims``)."""
    if not isinstance(value, str) or value not in _RESIZE_MODES:
        choices = ", ".join(repr(mode) for mode in _RESIZE_MODES)
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    needed = _RESIZE_MODES[value]
    if spatial_dims is not None and needed is not None and needed != spatial_dims:
        raise ValueError(f"{name}={value!r} resizes {needed}-D maps, but the saliency map has "
                         f"{spatial_dims} spatial dimension(s)")
    return value


def interpolate(saliency, size, mode):
    """``F.interpolate`` passing ``align_corners=False`` only to the modes that take it."""
    if mode in INTERPOLATING_MODES:
        return F.interpolate(saliency, size, mode=mode, align_corners=False)
    return F.interpolate(saliency, size, mode=mode)
