"""Private helpers of :mod:`xaifast.visualizations`: input checks, layouts, normalisation, blur,
tiling, rendering to RGB, saving, display, and the internal influence of a channel.

Everything works on numpy arrays in ``(N, C, H, W)`` order; the public classes convert their
inputs (numpy or torch, channels first or last) once on entry and back on return.
"""

import numbers

import numpy as np
import torch
from PIL import Image

from . import colormaps

DIM_ORDERS = ("channels_first", "channels_last")
COLOUR_CHANNELS = (1, 3, 4)
NORMALIZATION_TYPES = ("unsigned_max", "unsigned_max_positive_centered", "magnitude_max", "magnitude_sum",
                       "signed_max", "signed_max_positive_centered", "signed_sum", "01", "unnormalized")


# ----------------------------------------------------------------------------- arguments
def check_dim_order(dim_order):
    if dim_order is not None and dim_order not in DIM_ORDERS:
        raise ValueError(f"dim_order must be None, 'channels_first' or 'channels_last', got {dim_order!r}")
    return dim_order


def check_fraction(name, value, allow_none=False):
    """A number in [0, 1] (or None when allowed), as float."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]{' or None' if allow_none else ''}, got {value!r}")
    return float(value)


def check_blur(value):
    """A Gaussian sigma >= 0 (None and 0 mean no blur)."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value) >= 0.0:
        raise ValueError(f"blur must be a number >= 0 (the Gaussian sigma in pixels) or None, got {value!r}")
    return float(value)


def check_normalization_type(value):
    if value is not None and value not in NORMALIZATION_TYPES:
        raise ValueError(f"normalization_type must be None or one of {', '.join(map(repr, NORMALIZATION_TYPES))}, "
                         f"got {value!r}")
    return value


def check_cmap(cmap):
    """A colour map name, an ``(K, 3|4)`` table, or a callable (e.g. a matplotlib Colormap)."""
    if cmap is None or callable(cmap):
        return cmap
    if isinstance(cmap, str):
        try:
            colormaps.get_table(cmap)
        except ValueError:
            raise ValueError(f"cmap {cmap!r} is not a known colour map; valid names: "
                             f"{', '.join(colormaps.names())} (optionally with '_r')") from None
        return cmap
    if isinstance(cmap, (np.ndarray, torch.Tensor, list, tuple)):
        table = np.asarray(cmap.cpu() if isinstance(cmap, torch.Tensor) else cmap)
        if table.ndim != 2 or table.shape[1] not in (3, 4) or len(table) == 0 or table.dtype.kind not in "fiu":
            raise ValueError(f"cmap as a table must be a numeric (K, 3) or (K, 4) array, got shape {table.shape}")
        if table.dtype.kind == "f":
            table = np.round(np.clip(table, 0.0, 1.0) * 255.0)
        return np.clip(table[:, :3], 0, 255).astype(np.uint8)
    raise TypeError(f"cmap must be a colour map name, a (K, 3) table or a callable, got {type(cmap).__name__}")


def to_batch(name, value):
    """A 4-D floating numpy array from a numpy array, a tensor or nested lists."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()
        value = value.numpy()
    else:
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}") from exc
    if value.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    if value.dtype.kind in "iu":
        value = value.astype(np.float64)
    elif value.dtype == np.float16:
        value = value.astype(np.float32)  # eps = 1e-20 underflows in float16
    if value.ndim != 4:
        raise ValueError(f"{name} must be a 4-D image batch, (N, C, H, W) or (N, H, W, C), "
                         f"got {value.ndim}-D shape {value.shape}")
    if value.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {value.shape}")
    return value


def resolve_dim_order(dim_order, *batches):
    """Explicit ``dim_order``, else the only side whose axis is 1, 3 or 4, else channels first."""
    if dim_order is not None:
        return dim_order
    for batch in batches:
        first, last = batch.shape[1] in COLOUR_CHANNELS, batch.shape[3] in COLOUR_CHANNELS
        if first != last:
            return "channels_first" if first else "channels_last"
    return "channels_first"


def to_nchw(batch, dim_order):
    return batch if dim_order == "channels_first" else batch.transpose(0, 3, 1, 2)


def from_nchw(batch, dim_order):
    return batch if dim_order == "channels_first" else batch.transpose(0, 2, 3, 1)


# ----------------------------------------------------------------------------- numbers
def normalize(batch, normalization_type, eps=1e-20):
    """TruLens' normalisations of an ``(N, C, H, W)`` batch; ``*_sum`` per channel, others per item."""
    if normalization_type == "unnormalized":
        return batch.copy()
    axes = (2, 3) if normalization_type.endswith("sum") else (1, 2, 3)

    def reduce(fn, values):
        return fn(values, axis=axes, keepdims=True)

    if normalization_type == "magnitude_max":
        return np.abs(batch) / (reduce(np.max, np.abs(batch)) + eps)
    if normalization_type == "magnitude_sum":
        return np.abs(batch) / (reduce(np.sum, np.abs(batch)) + eps)
    if normalization_type == "signed_sum":
        scale = np.where(batch >= 0, reduce(np.sum, np.maximum(batch, 0)), reduce(np.sum, np.maximum(-batch, 0)))
        return batch / (scale + eps)
    if normalization_type == "01":
        shifted = batch - reduce(np.min, batch)
        return shifted / (reduce(np.max, shifted) + eps)
    if normalization_type.startswith("signed_max"):
        # positives over the largest positive, negatives over the largest magnitude negative
        out = batch / (np.where(batch >= 0, reduce(np.max, batch), reduce(np.max, -batch)) + eps)
    else:  # unsigned_max*
        out = batch / (reduce(np.max, np.abs(batch)) + eps)
    return out / 2 + 0.5 if normalization_type.endswith("positive_centered") else out


def _reflect_indices(size, radius):
    """Indices of a row padded by ``radius`` with scipy's 'reflect' (d c b a | a b c d | d c b a)."""
    index = np.mod(np.arange(-radius, size + radius), 2 * size)
    return torch.from_numpy(np.where(index < size, index, 2 * size - 1 - index))


def gaussian_blur(batch, sigma):
    """Blur H and W of an ``(N, C, H, W)`` batch like ``scipy.ndimage.gaussian_filter`` (sigma, 0, 0)
    per image: taps ``exp(-k^2 / (2 sigma^2))`` normalised, radius ``int(4 sigma + 0.5)``, 'reflect'
    borders; computed in float64, returned in the input dtype. The channel axis is not blurred."""
    if sigma <= 1e-15:
        return batch.copy()
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 / (sigma * sigma) * np.arange(-radius, radius + 1, dtype=np.float64) ** 2)
    weight = torch.from_numpy(taps / taps.sum()).view(1, 1, -1)
    values = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float64))
    n, c, h, w = values.shape
    for axis, size in ((3, w), (2, h)):
        rows = values.movedim(axis, -1)
        padded = rows.index_select(-1, _reflect_indices(size, radius)).reshape(-1, 1, size + 2 * radius)
        blurred = torch.nn.functional.conv1d(padded, weight).reshape(rows.shape)
        values = blurred.movedim(-1, axis)
    return values.numpy().astype(batch.dtype, copy=False)


def tile(batch_nhwc):
    """Images in a grid as square as possible, row-major: ``rows = int(sqrt(n))``,
    ``cols = ceil(n / rows)``; empty cells are 0; float64; the channel axis dropped if it is 1."""
    n, h, w, c = batch_nhwc.shape
    rows = int(np.sqrt(n))
    cols = -(-n // rows)
    grid = np.zeros((rows * h, cols * w, c))
    for i, image in enumerate(batch_nhwc):
        row, col = divmod(i, cols)
        grid[row * h:(row + 1) * h, col * w:(col + 1) * w] = image
    return grid[..., 0] if c == 1 else grid


# ----------------------------------------------------------------------------- pictures
def float_to_uint8(values):
    """Floats in [0, 1] to uint8, clipped, rounded to nearest; NaN gives 0."""
    with np.errstate(invalid="ignore"):
        return np.round(np.nan_to_num(np.clip(values, 0.0, 1.0), nan=0.0) * 255.0).astype(np.uint8)


def colourize(values, cmap):
    """``(H, W)`` values in [0, 1] through a checked ``cmap`` -> ``(H, W, 3)`` uint8."""
    if isinstance(cmap, str):
        return colormaps.apply(values, cmap)
    if isinstance(cmap, np.ndarray):  # a table from check_cmap: index floor(x * K), like ListedColormap
        with np.errstate(invalid="ignore"):
            index = np.nan_to_num(np.floor(values * len(cmap)), nan=0.0, posinf=len(cmap), neginf=0.0)
        out = cmap[np.clip(index, 0, len(cmap) - 1).astype(np.intp)]
        out[np.isnan(values)] = 0
        return out
    rgba = np.asarray(cmap(values), dtype=np.float64)  # e.g. a matplotlib Colormap: floats in [0, 1]
    if rgba.shape[:values.ndim] != values.shape or rgba.ndim != values.ndim + 1 or rgba.shape[-1] not in (3, 4):
        raise ValueError(f"cmap must map an (H, W) array to (H, W, 3) or (H, W, 4) colours, got {rgba.shape}")
    return float_to_uint8(rgba[..., :3])


def autoscaled(values):
    """``(values - min) / (max - min)`` over the finite values, as matplotlib's imshow does; 0 if flat."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.max() == finite.min():
        return np.where(np.isnan(values), np.nan, 0.0)
    low, high = finite.min(), finite.max()
    return (values - low) / (high - low)


def render(tiled, cmap=None):
    """A tiled result as a uint8 picture: 2-D through ``cmap`` (autoscaled) or gray (as is,
    clipped to [0, 1]) when ``cmap`` is None; ``(H, W, 3)`` RGB and ``(H, W, 4)`` RGBA clipped."""
    if tiled.ndim == 2:
        if cmap is None:
            return float_to_uint8(np.repeat(tiled[..., None], 3, axis=2))
        return colourize(autoscaled(tiled), cmap)
    return float_to_uint8(tiled)


def save(picture, output_file):
    """Write a uint8 ``(H, W, 3|4)`` picture with Pillow; the format comes from the file name."""
    try:
        Image.fromarray(np.ascontiguousarray(picture)).save(output_file)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"output_file {output_file!r} could not be written: {exc}") from exc


def display(picture, imshow, fig):
    """Draw ``picture`` with matplotlib (imported only here) into ``fig`` or a new figure."""
    if not imshow and fig is None:
        return
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("imshow=True (or a fig) needs matplotlib; install it, or pass imshow=False "
                          "and use output_file or the returned array") from exc
    figure = plt.figure() if fig is None else fig
    axes = figure.gca()
    axes.axis("off")
    axes.imshow(picture)
    if imshow:
        plt.show()


# ----------------------------------------------------------------------------- influence
class _LayerReached(Exception):
    """Raised by the forward hook to stop the model once the layer's output is known."""


def resolve_layer(model, layer):
    """The submodule named by ``layer``: a module of ``model``, a name, or an index into the
    named submodules (``model.named_modules()`` without the model itself)."""
    named = list(model.named_modules())[1:]
    if isinstance(layer, torch.nn.Module):
        if not any(module is layer for module in model.modules()):
            raise ValueError("layer must be a submodule of model; the module given is not part of it")
        return layer
    if isinstance(layer, str):
        for name, module in named:
            if name == layer:
                return module
        raise ValueError(f"layer {layer!r} is not a submodule name of model; names: "
                         f"{', '.join(name for name, _ in named[:20])}{', ...' if len(named) > 20 else ''}")
    if isinstance(layer, numbers.Integral) and not isinstance(layer, bool):
        if not -len(named) <= layer < len(named):
            raise ValueError(f"layer index {layer} is out of range for the {len(named)} submodules of model")
        return named[layer][1]
    raise TypeError(f"layer must be a submodule, its name or its index, got {type(layer).__name__}")


def check_channel_args(model, channel, channel_axis, agg_fn, doi):
    """ChannelMaskVisualizer's arguments -> (module, list of channels, channel axis, doi)."""
    if not isinstance(model, torch.nn.Module) and isinstance(getattr(model, "_model", None), torch.nn.Module):
        model = model._model  # a TruLens-style wrapper
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    channels = list(channel) if isinstance(channel, (list, tuple)) else [channel]
    if not channels or any(isinstance(c, bool) or not isinstance(c, numbers.Integral) for c in channels):
        raise TypeError(f"channel must be an int or a non-empty list of ints, got {channel!r}")
    if channel_axis is not None and (isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral)):
        raise TypeError(f"channel_axis must be an int or None, got {channel_axis!r}")
    if agg_fn is not None and not callable(agg_fn):
        raise TypeError(f"agg_fn must be callable or None, got {type(agg_fn).__name__}")
    if doi not in (None, "point", "linear"):
        raise ValueError(f"doi must be None, 'point' or 'linear', got {doi!r}")
    return model, [int(c) for c in channels], 1 if channel_axis is None else int(channel_axis), doi or "point"


def model_input(model, x):
    """``x`` as a detached tensor with the device and dtype of the model's first floating
    parameter (numpy input without one: float32)."""
    parameter = next((p for p in model.parameters() if p.is_floating_point()), None)
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x), dtype=parameter.dtype if parameter is not None else torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"x must be a numpy array or a torch tensor, got {type(x).__name__}") from exc
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating point input, got {x.dtype}")
    if parameter is None:
        return x.detach()
    return x.detach().to(device=parameter.device, dtype=parameter.dtype)


def _channel_quantity(output, channels, channel_axis, agg_fn):
    """Per-item sum over ``channels`` of the channel's aggregated activation: shape ``(N,)``."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"layer must output a single tensor, got {type(output).__name__}")
    if output.dim() < 2:
        raise ValueError(f"layer output must be at least 2-D (N, channels, ...), got shape {tuple(output.shape)}")
    axis = 1 if output.dim() == 2 else channel_axis
    if not -output.dim() < axis < output.dim() or axis % output.dim() == 0:
        raise ValueError(f"channel_axis {channel_axis} is not a non-batch axis of the layer output "
                         f"of shape {tuple(output.shape)}")
    total = 0
    for channel in channels:
        if not -output.shape[axis] <= channel < output.shape[axis]:
            raise ValueError(f"channel {channel} is out of range for the {output.shape[axis]} channels of the "
                             f"layer output of shape {tuple(output.shape)}")
        activation = output.select(axis, channel)
        if activation.dim() == 1:
            total = total + activation
        elif agg_fn is None:
            total = total + activation.sum(dim=tuple(range(1, activation.dim())))
        else:
            total = total + agg_fn(activation)
    return total


def internal_influence(model, layer, channels, channel_axis, agg_fn, doi, inputs):
    """Gradient of the channel quantity w.r.t. ``inputs``, averaged over the distribution of
    interest, times ``inputs`` (gradient x input for ``'point'``, integrated gradients with a
    zero baseline and 10 points ``(1 - i/9) * x`` for ``'linear'``)."""
    resolution = 1 if doi == "point" else 10
    gradients = torch.zeros_like(inputs)
    for i in range(resolution):
        point = ((1.0 - i / max(resolution - 1, 1)) * inputs).detach().requires_grad_(True)
        captured = []

        def hook(module, args, output):
            captured.append(output)
            raise _LayerReached

        handle = layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                model(point)
        except _LayerReached:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ValueError("layer was not called during model's forward pass")
        quantity = _channel_quantity(captured[0], channels, channel_axis, agg_fn)
        if not isinstance(quantity, torch.Tensor) or not quantity.requires_grad:
            continue  # the quantity does not depend on the input: zero influence
        (gradient,) = torch.autograd.grad(quantity.sum(), point, allow_unused=True)
        if gradient is not None:
            gradients += gradient
    return gradients / resolution * inputs
