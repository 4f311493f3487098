r"""RISE: Randomized Input Sampling for Explanation (Petsiuk, Das and Saenko, BMVC 2018).

TorchRay's ``rise`` and ``rise_class`` with the same arguments, random numbers and results, made
fast: the masks are computed pixel by pixel from their low-resolution grids by a compiled op that
writes the masked images in the same pass (no full-size upsample, no per-mask loop), and the
saliency is accumulated in the low-resolution domain (:class:`xaifast.ops.LowRankAccumulator`),
so with 1000 classes the cost no longer grows with classes x masks x pixels.

Example:
    >>> from xaifast.attribution.rise import rise, rise_class
    >>> saliency = rise(model, x, num_masks=1000)              # (N, C, H, W), every class
    >>> saliency = rise_class(model, x, target=[3, 7])         # (N, 1, H, W), one class per image
"""

import contextlib
import inspect
import math
import numbers

import torch

from .._progress import progress as _progress
from ..ops import rise_masks
from ..ops.rise import LowRankAccumulator, matmul_into
from ._checks import check_resize, check_resize_mode
from .common import resize_saliency

__all__ = ["rise", "rise_class"]


def _check_args(model, input, seed, num_masks, num_cells, filter_masks, batch_size, p):
    if not callable(model):
        raise TypeError(f"model must be callable (a torch.nn.Module), got {type(model).__name__}")
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.dim() != 4:
        raise ValueError(f"input must be a 4-D (N, C, H, W) tensor, got shape {tuple(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"input must have a floating dtype, got {input.dtype}")
    if input.shape[0] == 0:
        raise ValueError("input must hold at least one image, got an empty batch")
    for name, value, minimum in (("seed", seed, None), ("num_masks", num_masks, 1), ("num_cells", num_cells, 1),
                                 ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if minimum is not None and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    height, width = input.shape[2:]
    if num_cells > min(height, width):
        raise ValueError(f"num_cells must be at most the image's height and width ({height} x {width}), "
                         f"got {num_cells}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p < 1:
        raise ValueError(f"p must be a probability strictly between 0 and 1, got {p!r}")
    if filter_masks is not None:
        if not isinstance(filter_masks, torch.Tensor):
            raise TypeError(f"filter_masks must be a torch.Tensor, got {type(filter_masks).__name__}")
        if tuple(filter_masks.shape) != (num_masks, 1, height, width):
            raise ValueError(f"filter_masks must have shape (num_masks, 1, H, W) = ({num_masks}, 1, {height}, "
                             f"{width}), got {tuple(filter_masks.shape)}")


def _scores(model, batch):
    out = model(batch)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model must return a tensor, got {type(out).__name__}")
    if out.dim() == 4:
        if out.shape[2:] != (1, 1):
            raise ValueError(f"model returned a (N, C, H, W) output with H x W = {tuple(out.shape[2:])}; "
                             f"RISE needs one score per class (N, C) or (N, C, 1, 1)")
        out = out[:, :, 0, 0]
    if out.dim() != 2:
        raise ValueError(f"model must return (N, C) or (N, C, 1, 1) scores, got shape {tuple(out.shape)}")
    return torch.sigmoid(out.float())


def _check_classes(target, num_images, num_classes):
    if not isinstance(target, torch.Tensor):
        target = torch.as_tensor(target)
    if target.dim() == 0:
        target = target.reshape(1)
    if target.dim() != 1 or target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(f"target must be one integer class per image, got {target!r}")
    if target.numel() != num_images:
        raise ValueError(f"target must have one class per image ({num_images}), got {target.numel()}")
    target = target.tolist()
    for t in target:
        if not 0 <= t < num_classes:
            raise ValueError(f"target {t} is out of range for a model with {num_classes} classes")
    return target


def _rise(model, input, classes, seed, num_masks, num_cells, filter_masks, batch_size, p, resize, resize_mode,
          progress, autocast, channels_last):
    _check_args(model, input, seed, num_masks, num_cells, filter_masks, batch_size, p)
    check_resize("resize", resize)
    check_resize_mode("resize_mode", resize_mode, spatial_dims=2)
    num_images, _, height, width = input.shape
    device = input.device
    cell_h, cell_w = math.ceil(height / num_cells), math.ceil(width / num_cells)
    # TorchRay seeds the global generator: the grids come from the input's device, the shifts
    # from the CPU. Private generators give the same numbers and leave the caller's state alone.
    grid_generator = torch.Generator(device=device).manual_seed(seed)
    shift_generator = grid_generator if device.type == "cpu" else torch.Generator().manual_seed(seed)
    dtype = torch.promote_types(input.dtype, torch.float32)
    precision = (torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext())
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    accumulator = dense = None
    num_chunks = (num_masks + batch_size - 1) // batch_size
    with torch.no_grad():
        for chunk in _progress(range(num_chunks), desc="rise", enable=progress):
            size = min(num_masks - batch_size * chunk, batch_size)
            if filter_masks is None:
                grid = (torch.rand(size, 1, num_cells, num_cells, device=device, generator=grid_generator) < p)
                grid = grid[:, 0].to(input.dtype if input.dtype in (torch.float32, torch.float64) else dtype)
                shift_y = torch.randint(0, cell_h, (size,), generator=shift_generator)
                shift_x = torch.randint(0, cell_w, (size,), generator=shift_generator)
                shifts = torch.stack([shift_y, shift_x], 1).to(device)
            else:
                masks = filter_masks[chunk * batch_size:chunk * batch_size + size].to(device)
            chunk_scores = []
            for image in range(num_images):
                if filter_masks is None:
                    batch = rise_masks(grid, shifts, height, width, input[image].to(grid.dtype)).to(input.dtype)
                else:
                    batch = input[image:image + 1] * masks
                with precision:
                    scores = _scores(model, batch.contiguous(memory_format=memory_format))
                if classes is not None:
                    if accumulator is None and dense is None and image == 0:  # first scores: now C is known
                        classes = _check_classes(classes, num_images, scores.shape[1])
                    scores = scores[:, classes[image]:classes[image] + 1]
                chunk_scores.append(scores.to(dtype) / num_masks)  # normalised here: no pass over the result
            scores = torch.stack(chunk_scores)  # (N, b, C)
            if filter_masks is None:
                if accumulator is None:
                    accumulator = LowRankAccumulator(num_images, scores.shape[2], (num_cells, num_cells),
                                                     (height, width), dtype, device)
                accumulator.add(scores, grid.to(dtype), shifts)
            else:
                if dense is None:
                    dense = torch.zeros(num_images, scores.shape[2], height * width, dtype=dtype, device=device)
                flat = masks.reshape(size, height * width).to(dtype)
                for image in range(num_images):
                    matmul_into(dense[image], scores[image].T, flat, accumulate=True)  # in place, thread-count proof
        saliency = accumulator.result() if dense is None else dense.reshape(num_images, -1, height, width)
        return resize_saliency(input, saliency, resize, resize_mode)


def rise(model, input, target=None, seed=0, num_masks=8000, num_cells=7, filter_masks=None, batch_size=32, p=0.5,
         resize=False, resize_mode="bilinear", *, progress=False, autocast=False, channels_last=False):
    r"""RISE saliency for every class (TorchRay's ``torchray.attribution.rise.rise``).

    For ``num_masks`` random masks (a ``num_cells x num_cells`` grid whose cells are 1 with
    probability ``p``, reflect-padded, bilinearly upsampled and cropped at a random shift), the
    saliency of class ``c`` is ``sum_n sigmoid(model(x * mask_n))[c] * mask_n / num_masks``.
    Same random numbers in the same order as TorchRay for a given ``seed`` (per chunk: the grid,
    then the row shifts, then the column shifts), so the same maps. Note, as in TorchRay's code
    (its docstring says otherwise): a cell is *kept* (1) with probability ``p``, ``batch_size``
    defaults to 32, and ``target`` is unused (use :func:`rise_class`).

    Unlike TorchRay: the masks of each chunk are shared by every image of the batch and never
    materialised at full size, the accumulation is low-rank, memory is bounded by
    ``batch_size`` (not ``num_masks``), the caller's random state is untouched on every device
    (private ``torch.Generator``\ s), no extra forward pass is spent to count classes, and bad
    arguments raise ``ValueError``/``TypeError`` naming them.

    Args:
        model (callable): maps ``(b, C_in, H, W)`` to ``(b, C)`` or ``(b, C, 1, 1)`` scores.
        input (Tensor): ``(N, C_in, H, W)`` images.
        target: unused, as in TorchRay.
        seed (int): seed of the masks. Default: ``0``.
        num_masks (int): number of masks. Default: ``8000``.
        num_cells (int): grid cells per side, ``1 <= num_cells <= min(H, W)``. Default: ``7``.
        filter_masks (Tensor, optional): ``(num_masks, 1, H, W)`` masks to use instead.
        batch_size (int): masks per forward pass. Default: ``32``.
        p (float): probability that a cell is kept, in ``(0, 1)``. Default: ``0.5``.
        resize (bool or tuple): ``False``, ``True`` (input size) or ``(width, height)``.
        resize_mode (str): interpolation mode for ``resize``. Default: ``'bilinear'``.
        progress (bool): show a progress bar over the chunks (beyond TorchRay). Default: ``False``.
        autocast (bool): run the model under bfloat16 autocast (beyond TorchRay; faster on CPUs
            with bf16 support, saliency close to but not equal to float32). Default: ``False``.
        channels_last (bool): feed the model channels-last batches (beyond TorchRay; faster for
            many conv nets). Default: ``False``.

    Returns:
        Tensor: ``(N, C, H, W)`` saliency (float32, float64 for float64 input), resized if asked.

    Example:
        >>> saliency = rise(model, torch.rand(2, 3, 224, 224), num_masks=2000)
        >>> saliency.shape       # doctest: +SKIP
        torch.Size([2, 1000, 224, 224])
    """
    return _rise(model, input, None, seed, num_masks, num_cells, filter_masks, batch_size, p, resize, resize_mode,
                 progress, autocast, channels_last)


def rise_class(*args, target, **kwargs):
    """Class-specific RISE (TorchRay's ``rise_class``): ``(N, 1, H, W)``, one class per image.

    Takes every argument of :func:`rise`, plus ``target``: one class index per image (an int
    for a single image, or a list, array or tensor of ``N`` ints). Unlike TorchRay, which
    computes all classes and then picks one, only the requested classes are accumulated.

    Example:
        >>> rise_class(model, torch.rand(2, 3, 224, 224), target=[3, 7]).shape   # doctest: +SKIP
        torch.Size([2, 1, 224, 224])
    """
    bound = inspect.signature(rise).bind(*args, **kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop("target")
    if arguments["input"] is not None and isinstance(arguments["input"], torch.Tensor) and \
            arguments["input"].dim() >= 1:
        target = _check_classes(target, arguments["input"].shape[0], float("inf"))
    return _rise(classes=target, **arguments)
