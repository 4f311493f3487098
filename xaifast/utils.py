"""Helpers shared by the attribution methods and by scripts: TorchRay's ``torchray.utils``.

Same names, signatures, defaults and numbers as TorchRay 1.0.0.2, minus its breakages: reading
with ``resize`` works on current Pillow, files are closed, matplotlib is optional (imported
only to draw), :func:`resample` raises no warnings, and bad arguments raise ``ValueError`` or
``TypeError`` naming the argument. :func:`imsmooth` is the compiled op of :mod:`xaifast.ops`.
"""

import copy
import json
import math
import numbers
import os

import torch

from ._image_io import im_to_numpy, imarraysc, imread, imsc, is_url, pil_to_tensor
from .ops.blur import imsmooth

__all__ = [
    "EPSILON_DOUBLE", "EPSILON_SINGLE", "SQRT_TWO_DOUBLE", "SQRT_TWO_SINGLE",
    "get_config", "get_device", "xmkdir", "is_url", "tensor_to_im", "pil_to_tensor", "im_to_numpy",
    "imread", "imsc", "imarraysc", "resample", "imsmooth",
]

# Machine epsilons of float64 and float32, as 0-d tensors of those dtypes.
EPSILON_DOUBLE = torch.tensor(2.220446049250313e-16, dtype=torch.float64)
EPSILON_SINGLE = torch.tensor(1.19209290e-07, dtype=torch.float32)
# sqrt(2). SQRT_TWO_DOUBLE is float32, not float64: TorchRay defines it that way and code that
# mixes it with float64 tensors gets float32-rounded numbers there, so it is kept for parity.
SQRT_TWO_DOUBLE = torch.tensor(math.sqrt(2), dtype=torch.float32)
SQRT_TWO_SINGLE = SQRT_TWO_DOUBLE.to(torch.float32)

# What get_config() returns when no .torchrayrc overrides it. Never modified.
_DEFAULT_CONFIG = {
    "mongo": {
        "server": "mongod",
        "hostname": "localhost",
        "port": 27017,
        "database": "./data/db",
    },
    "benchmark": {
        "voc_dir": "./data/datasets/voc",
        "coco_dir": "./data/datasets/coco",
        "coco_anno_dir": "./data/datasets/coco/annotations",
        "imagenet_dir": "./data/datasets/imagenet",
        "models_dir": "./data/models",
        "experiments_dir": "./data",
    },
}
_CONFIG_FILE = ".torchrayrc"
_config = None  # the merged configuration, read on the first get_config() call


def _merged(defaults, overrides, where, key_path=()):
    """A new dict: ``defaults`` with the values of ``overrides``; unknown keys are errors."""
    if not isinstance(defaults, dict):
        return overrides  # a leaf: the file's value replaces the default, whatever its type
    name = ".".join(key_path) or "the top level"
    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: {name} must be a JSON object, got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        key = ".".join(key_path + (str(unknown[0]),))
        raise ValueError(f"{where}: unknown config key {key!r}; known keys here: {', '.join(defaults)}")
    return {key: _merged(value, overrides[key], where, key_path + (key,)) if key in overrides
            else copy.deepcopy(value) for key, value in defaults.items()}


def _read_config():
    for folder in (os.curdir, os.path.expanduser("~")):
        path = os.path.join(folder, _CONFIG_FILE)
        if os.path.exists(path):
            with open(path, "r", encoding="utf-8") as file:
                try:
                    overrides = json.load(file)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}: not valid JSON ({exc})") from exc
            return _merged(_DEFAULT_CONFIG, overrides, path)  # only the first file found counts
    return copy.deepcopy(_DEFAULT_CONFIG)


def get_config():
    """TorchRay's configuration: data and model folders, and the MongoDB server for benchmarks.

    The first call reads the JSON file ``.torchrayrc`` from the current folder or, failing
    that, from the home folder, over the defaults: ``mongo`` (``server``, ``hostname``,
    ``port``, ``database``) and ``benchmark`` (``voc_dir``, ``coco_dir``, ``coco_anno_dir``,
    ``imagenet_dir``, ``models_dir``, ``experiments_dir``). The file may set any subset of these
    keys. Later calls return the same dict without reading the file again.

    Unlike TorchRay, an unknown key or a malformed file raises ``ValueError`` naming the key
    and the file (TorchRay asserts), and the defaults themselves are never modified.

    Returns:
        dict: ``{"mongo": {...}, "benchmark": {...}}``.

    Example:
        >>> get_config()["benchmark"]["models_dir"]  # with no .torchrayrc
        './data/models'
    """
    global _config
    if _config is None:
        _config = _read_config()
    return _config


def get_device(gpu=0):
    """The device to compute on: GPU ``gpu`` if CUDA is available, else the CPU.

    Args:
        gpu (int or None): CUDA device index; ``None`` forces the CPU. Default: ``0``.

    Returns:
        torch.device: ``cuda:<gpu>`` or ``cpu``.

    Example:
        >>> get_device(None)
        device(type='cpu')
    """
    if gpu is not None and (isinstance(gpu, bool) or not isinstance(gpu, numbers.Integral) or gpu < 0):
        raise ValueError(f"gpu must be a CUDA device index >= 0 or None, got {gpu!r}")
    if gpu is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{int(gpu)}")
    return torch.device("cpu")


def xmkdir(path):
    """Create the folder ``path`` and its parents if it does not exist yet.

    Safe when several processes create the same folder at once. ``None`` and an existing path
    (even a file) are left alone.

    Args:
        path (str, os.PathLike or None): folder to create.

    Example:
        >>> xmkdir("runs/exp1/masks")  # doctest: +SKIP
    """
    if path is not None and not os.path.exists(path):
        os.makedirs(path, exist_ok=True)


def tensor_to_im(tensor):
    """View every channel of a batch as its own single-channel image.

    Args:
        tensor (Tensor): ``(N, K, H, W)``.

    Returns:
        Tensor: ``(N * K, 1, H, W)``, image ``n * K + k`` being channel ``k`` of item ``n``.

    Example:
        >>> tensor_to_im(torch.zeros(2, 3, 5, 7)).shape
        torch.Size([6, 1, 5, 7])
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() != 4:
        raise ValueError(f"tensor must be a 4-D (N, K, H, W) tensor, got shape {tuple(tensor.shape)}")
    return tensor.reshape(-1, 1, *tensor.shape[2:])


def _check_resample_args(source, target_size, transform):
    if not isinstance(source, torch.Tensor):
        raise TypeError(f"source must be a torch.Tensor, got {type(source).__name__}")
    if source.dim() != 4 or not source.is_floating_point():
        raise ValueError(f"source must be a floating (N, C, H, W) tensor, got {source.dtype} "
                         f"of shape {tuple(source.shape)}")
    try:
        height, width = target_size
    except (TypeError, ValueError):
        raise ValueError(f"target_size must be a (H, W) pair, got {target_size!r}") from None
    for side in (height, width):
        if isinstance(side, bool) or not isinstance(side, numbers.Integral) or side <= 0:
            raise ValueError(f"target_size must be a (H, W) pair of positive ints, got {target_size!r}")
    if not isinstance(transform, torch.Tensor):
        transform = torch.as_tensor(transform)
    if transform.shape != (2, 2):
        raise ValueError(f"transform must be a 2x2 tensor [[s_u, t_u], [s_v, t_v]], "
                         f"got shape {tuple(transform.shape)}")
    if bool((transform[:, 0] == 0).any()):
        raise ValueError(f"transform scale factors s_u, s_v must be non-zero, got {transform[:, 0].tolist()}")
    return int(height), int(width), transform


def resample(source, target_size, transform):
    """Resample a batch onto a new grid with a per-axis scale and offset (bilinear, zeros outside).

    ``transform`` is ``[[s_u, t_u], [s_v, t_v]]`` (u horizontal, v vertical). Pixels are unit
    squares: pixel ``(i, j)`` of an ``H x W`` image covers ``[j, j+1) x [i, i+1)`` and its
    centre is ``(u, v) = (j + 1/2, i + 1/2)``. The target pixel centred at ``(u', v')`` takes
    the source value at ``u = (u' + t_u) / s_u``, ``v = (v' + t_v) / s_v``, bilinearly
    interpolated, 0 outside the source. So ``s = H'/H``, ``t = 0`` stretches the source onto
    the target, and a positive ``t`` moves the content left (or up) by ``t`` target pixels.
    Differentiable with respect to ``source`` and ``transform``.

    Unlike TorchRay, no ``UserWarning`` is raised: ``meshgrid`` and ``grid_sample`` get
    ``indexing='ij'`` and ``align_corners=False`` explicitly, the values TorchRay relied on.

    Args:
        source (Tensor): ``(N, C, H, W)`` floating tensor.
        target_size (tuple of int): ``(H', W')``.
        transform (Tensor): ``(2, 2)`` ``[[s_u, t_u], [s_v, t_v]]``; ``s_u``, ``s_v`` non-zero.

    Returns:
        Tensor: ``(N, C, H', W')``, the dtype and device of ``source``.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> resample(x, (16, 32), torch.tensor([[32 / 8, 0.0], [16 / 8, 0.0]])).shape
        torch.Size([1, 3, 16, 32])
    """
    target_height, target_width, transform = _check_resample_args(source, target_size, transform)
    height, width = source.shape[2:]
    centres_u = torch.arange(target_width, dtype=source.dtype, device=source.device) + 0.5
    centres_v = torch.arange(target_height, dtype=source.dtype, device=source.device) + 0.5
    # grid_sample's normalised coordinates: -1 and 1 are the outer edges of the source.
    grid_u = 2 * ((centres_u + transform[0, 1]) / transform[0, 0]) / width - 1
    grid_v = 2 * ((centres_v + transform[1, 1]) / transform[1, 0]) / height - 1
    v, u = torch.meshgrid(grid_v, grid_u, indexing="ij")
    grid = torch.stack((u, v), dim=2).unsqueeze(0).expand(len(source), -1, -1, -1)
    return torch.nn.functional.grid_sample(source, grid, mode="bilinear", padding_mode="zeros",
                                           align_corners=False)
