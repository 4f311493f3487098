"""Deletion and insertion, the causal metrics of RISE (Petsiuk, Das and Saenko, BMVC 2018), batched.

A saliency map ranks the pixels. *Deletion* replaces them, most salient first, by a substrate
(zeros, i.e. the mean colour of ImageNet-normalised images) and follows the target's
probability as the fraction of replaced pixels grows from 0 to 1: a good map makes it drop
fast, so a **low** area under the curve is better. *Insertion* starts from a blurred copy of
the image and puts the original pixels back in the same order: a good map makes the
probability rise fast, so a **high** area is better.

Here the curve has ``steps + 1`` points at the fractions ``0, 1/steps, ..., 1`` (step ``k``
changes the ``round(k H W / steps)`` top-ranked pixels; the paper changed 224 pixels per step at
224 x 224, i.e. ``steps=224``) and its area is the trapezoid rule over ``[0, 1]``. Equal
saliency values are ranked in row-major order (stable sort), so the result is deterministic.

All images of all steps of all maps go through the model in chunks of ``batch_size``, built on
the fly from one rank map per image: memory stays at ``batch_size`` images.

Example::

    from xaifast.benchmark.evaluation import deletion_insertion
    result = deletion_insertion(model, images, saliency, targets, mode="deletion", score="sigmoid")
    result["auc"]          # (N,) lower is better for deletion
"""

import numbers

import torch

from ..attribution._targets import class_indices
from ..ops._checks import check_int
from ..ops.blur import imsmooth

__all__ = ["deletion_insertion", "auc", "SCORES", "MODES"]

MODES = ("deletion", "insertion")
SCORES = ("softmax", "sigmoid", "logit")

def auc(curve):
    """Area under curves sampled at equally spaced fractions of ``[0, 1]`` (trapezoid rule).

    Args:
        curve (Tensor): ``(..., K + 1)`` values at ``0, 1/K, ..., 1``, ``K >= 1``.

    Returns:
        Tensor: ``(...)`` areas.

    Example:
        >>> auc(torch.tensor([1.0, 0.5, 0.0]))
        tensor(0.5000)
    """
    if not isinstance(curve, torch.Tensor):
        raise TypeError(f"curve must be a torch.Tensor, got {type(curve).__name__}")
    if curve.dim() == 0 or curve.shape[-1] < 2:
        raise ValueError(f"curve must have at least 2 points in its last dimension, got shape {tuple(curve.shape)}")
    return (curve.sum(-1) - (curve[..., 0] + curve[..., -1]) / 2) / (curve.shape[-1] - 1)


def _substrate(images, mode, substrate, blur_sigma):
    """The images every pixel is taken from (deletion) or starts as (insertion)."""
    if substrate is None:
        substrate = "zeros" if mode == "deletion" else "blur"
    if isinstance(substrate, torch.Tensor):
        try:
            return torch.broadcast_to(substrate.to(images), images.shape)
        except RuntimeError:
            raise ValueError(f"substrate must broadcast to the images' shape {tuple(images.shape)}, got "
                             f"{tuple(substrate.shape)}") from None
    if substrate == "zeros":
        return torch.zeros_like(images)
    if substrate == "blur":
        return imsmooth(images, sigma=blur_sigma, padding_mode="replicate")
    if callable(substrate):
        out = substrate(images)
        if not isinstance(out, torch.Tensor) or out.shape != images.shape:
            raise ValueError(f"substrate must return a tensor of the images' shape {tuple(images.shape)}")
        return out.to(images)
    raise ValueError(f"substrate must be 'zeros', 'blur', a tensor or a callable, got {substrate!r}")


def _scores(output, targets, score):
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"model must return a tensor, got {type(output).__name__}")
    if output.dim() > 2:  # (b, C, h, w) score maps: one score per class, averaged over space
        output = output.flatten(2).mean(2)
    if output.dim() != 2:
        raise ValueError(f"model must return (N, C) or (N, C, ...) scores, got shape {tuple(output.shape)}")
    if int(targets.max()) >= output.shape[1]:
        raise ValueError(f"target {int(targets.max())} is out of range for a model with {output.shape[1]} classes")
    output = output.double()
    if score == "softmax":
        output = torch.softmax(output, 1)
    elif score == "sigmoid":
        output = torch.sigmoid(output)
    return output.gather(1, targets[:, None].to(output.device))[:, 0]


def deletion_insertion(model, images, saliency, target, mode="deletion", steps=None, substrate=None,
                       score="softmax", batch_size=64, return_curves=False, blur_sigma=5.0):
    r"""RISE's deletion or insertion metric for a batch of maps: per-image areas under the curve.

    For image ``n`` the pixels are ranked by ``saliency[n]`` (descending, ties in row-major
    order) and step ``k = 0..steps`` builds

    * deletion: ``image`` with its ``round(k H W / steps)`` top-ranked pixels (all channels) taken
      from the substrate;
    * insertion: the substrate with those pixels taken from ``image``;

    the curve is the target's score of each step image, and the area its trapezoid rule over the
    fractions ``0, 1/steps, ..., 1``. The model runs in eval mode under ``torch.no_grad()``, on
    chunks of ``batch_size`` step images (any chunking gives the same numbers).

    Args:
        model (callable): maps ``(b, 3, H, W)`` to ``(b, C)`` scores (``(b, C, ...)`` are averaged
            over space). Put it in eval mode yourself if it is not a ``torch.nn.Module``.
        images (Tensor): ``(N, 3, H, W)`` images.
        saliency (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)`` maps at the images' resolution.
        target (int, sequence or Tensor): class explained by each map (one for all, or ``N``).
        mode (str): ``'deletion'`` or ``'insertion'``. Default: ``'deletion'``.
        steps (int, optional): steps from nothing to all pixels, ``1 <= steps <= H W``.
            Default: ``min(100, H W)``.
        substrate (str, Tensor or callable, optional): ``'zeros'``, ``'blur'`` (a Gaussian of
            ``blur_sigma`` px, replicate padding), a tensor broadcastable to ``images``, or a function
            ``images -> tensor``. Default: ``'zeros'`` for deletion, ``'blur'`` for insertion (the
            paper's choices; zero is the mean colour of normalised images).
        score (str): ``'softmax'`` (class probability, the paper's, for single-label
            classifiers), ``'sigmoid'`` (per-class probability: use it for multi-label models such
            as the embedded example model) or ``'logit'`` (raw score). Default: ``'softmax'``.
        batch_size (int): step images per forward pass. Default: ``64``.
        return_curves (bool): also return the curves. Default: ``False``.
        blur_sigma (float): standard deviation of the ``'blur'`` substrate in pixels. Default:
            ``5`` (the paper's code, for 224 x 224 ImageNet images; raise it when the blurred images
            still hold the class, as big uniform shapes do).

    Returns:
        dict: ``'auc'``: ``(N,)`` float64 areas (in ``[0, 1]`` for probabilities); with
        ``return_curves``, ``'curves'``: ``(N, steps + 1)`` float64 scores and ``'fractions'``:
        ``(steps + 1,)`` fractions of changed pixels.

    Raises:
        ValueError/TypeError: naming the bad argument (shapes, mode, score, steps, target, NaN
            saliency).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> images, saliency = torch.randn(2, 3, 8, 8), torch.rand(2, 1, 8, 8)
        >>> deletion_insertion(model, images, saliency, [0, 3], steps=16)["auc"].shape
        torch.Size([2])
    """
    if not callable(model):
        raise TypeError(f"model must be callable, got {type(model).__name__}")
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[0] == 0 or images.shape[2] * images.shape[3] == 0:
        raise ValueError(f"images must be a non-empty (N, C, H, W) batch, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point, got dtype {images.dtype}")
    if not isinstance(saliency, torch.Tensor):
        raise TypeError(f"saliency must be a torch.Tensor, got {type(saliency).__name__}")
    num_images, _, height, width = images.shape
    if saliency.dim() == 3:
        saliency = saliency[:, None]
    if saliency.shape != (num_images, 1, height, width):
        raise ValueError(f"saliency must be (N, 1, H, W) = {(num_images, 1, height, width)} like the images, "
                         f"got {tuple(saliency.shape)}")
    if torch.isnan(saliency).any():
        raise ValueError("saliency must not contain NaN")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    num_pixels = height * width
    steps = min(100, num_pixels) if steps is None else check_int("steps", steps, 1)
    if steps > num_pixels:
        raise ValueError(f"steps must be <= H W = {num_pixels}, got {steps}")
    batch_size = check_int("batch_size", batch_size, 1)
    if not isinstance(return_curves, bool):
        raise TypeError(f"return_curves must be a bool, got {type(return_curves).__name__}")
    targets = torch.tensor(class_indices(target, num_images), dtype=torch.long)
    images = images.detach()
    if isinstance(blur_sigma, bool) or not isinstance(blur_sigma, numbers.Real) or not blur_sigma >= 0:
        raise ValueError(f"blur_sigma must be a number >= 0, got {blur_sigma!r}")
    substrate = _substrate(images, mode, substrate, float(blur_sigma)).detach()
    # Deletion moves pixels from the image to the substrate; insertion the other way round.
    start, end = (images, substrate) if mode == "deletion" else (substrate, images)

    # rank[n, p]: position of pixel p in image n's order (0 = most salient).
    order = torch.sort(saliency.detach().reshape(num_images, -1).float(), dim=1, descending=True, stable=True)[1]
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(num_pixels, device=order.device).expand(num_images, -1))
    rank = rank.reshape(num_images, 1, height, width).to(images.device)
    # round(k H W / steps) in exact integer arithmetic: k H W / steps rounded half up.
    counts = (2 * torch.arange(steps + 1, dtype=torch.long) * num_pixels + steps) // (2 * steps)

    # Eval mode for the run; each submodule's own train/eval flag is given back afterwards.
    modes = [(m, m.training) for m in model.modules()] if isinstance(model, torch.nn.Module) else []
    if isinstance(model, torch.nn.Module):
        model.eval()
    curves = torch.empty(num_images * (steps + 1), dtype=torch.float64)
    try:
        with torch.no_grad():
            total = num_images * (steps + 1)
            counts_here = counts.to(images.device).reshape(-1, 1, 1, 1)
            for begin in range(0, total, batch_size):
                stop = min(begin + batch_size, total)
                batch = images.new_empty((stop - begin,) + tuple(images.shape[1:]))
                # The chunk's items, image by image: steps k0..k1 of image n are one slice, built
                # by broadcasting that image against its step masks (no per-item copies).
                item = begin
                while item < stop:
                    n, k0 = divmod(item, steps + 1)
                    k1 = min(steps + 1, k0 + stop - item)
                    changed = rank[n] < counts_here[k0:k1]
                    torch.where(changed, end[n], start[n], out=batch[item - begin:item - begin + k1 - k0])
                    item += k1 - k0
                image = torch.arange(begin, stop) // (steps + 1)
                curves[begin:stop] = _scores(model(batch), targets[image], score).cpu()
    finally:
        for module, training in modes:
            module.train(training)
    curves = curves.reshape(num_images, steps + 1)
    result = {"auc": auc(curves)}
    if return_curves:
        result["curves"] = curves
        result["fractions"] = counts.double() / num_pixels
    return result
