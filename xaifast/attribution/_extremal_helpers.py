"""Pieces of :mod:`xaifast.attribution.extremal_perturbation`: argument checks, the batch the model
sees, per-image rewards, and the ``print_iter``/``debug`` diagnostics."""

import numbers

import torch

from ..ops.extremal import check_areas, pyramid_lookup
from ._checks import check_callable, check_module, check_nonnegative_real, check_resize, check_resize_mode

PERTURBATIONS = ("blur", "fade")
VARIANTS = ("preserve", "delete", "dual")


def check_int_arg(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_step(step):
    """TorchRay asserts ``int(step) == step``: an integral float is accepted (as an int)."""
    if isinstance(step, numbers.Real) and not isinstance(step, (bool, numbers.Integral)) and float(step).is_integer():
        step = int(step)
    return check_int_arg("step", step, 1)


def check_sigma(sigma):
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a number, got {type(sigma).__name__}")
    if not sigma > 0 or sigma == float("inf"):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    return sigma


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_input(input):
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.dim() != 4:
        raise ValueError(f"input must be a 4-D (N, C, H, W) tensor, got shape {tuple(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"input must have a floating dtype, got {input.dtype}")
    if input.numel() == 0:
        raise ValueError(f"input must hold at least one non-empty image, got shape {tuple(input.shape)}")
    return input


def check_targets(target, num_images):
    """One Python int per image: an int (for every image) or a sequence/tensor of ``N`` ints."""
    if isinstance(target, torch.Tensor):
        if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
            raise ValueError(f"target must hold integer class indices, got a {target.dtype} tensor")
        target = target.reshape(-1).tolist()
        if len(target) == 1:
            target = target[0]
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        targets = [int(target)] * num_images
    elif isinstance(target, (list, tuple)):
        if len(target) != num_images:
            raise ValueError(f"target must be one class index per image ({num_images}), got {len(target)}")
        targets = []
        for value in target:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"target must hold integer class indices, got {value!r}")
            targets.append(int(value))
    else:
        raise ValueError(f"target must be an int class index or one per image, got {type(target).__name__}")
    for value in targets:
        if value < 0:
            raise ValueError(f"target must be a class index >= 0, got {value}")
    return targets


def check_target_range(targets, output):
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"model must return a tensor, got {type(output).__name__}")
    if output.dim() < 2:
        raise ValueError(f"model must return (N, C, ...) activations, got shape {tuple(output.shape)}")
    for value in targets:
        if value >= output.shape[1]:
            raise ValueError(f"target {value} is out of range for a model with {output.shape[1]} output channels")


def check_arguments(model, input, areas, perturbation, max_iter, num_levels, step, sigma, variant, print_iter,
                    reward_func, resize, resize_mode, smooth):
    """All of :func:`extremal_perturbation`'s checks, before anything runs. Returns the cleaned values."""
    check_module("model", model)
    check_input(input)
    areas = check_areas(areas, "areas")
    check_choice("perturbation", perturbation, PERTURBATIONS)
    check_choice("variant", variant, VARIANTS)
    max_iter = check_int_arg("max_iter", max_iter, 1)
    num_levels = check_int_arg("num_levels", num_levels, 2)
    step = check_step(step)
    check_sigma(sigma)
    if print_iter is not None:
        print_iter = check_int_arg("print_iter", print_iter, 1)
    check_callable("reward_func", reward_func)
    check_resize("resize", resize)
    check_resize_mode("resize_mode", resize_mode, spatial_dims=2)
    smooth = check_nonnegative_real("smooth", smooth)
    return areas, max_iter, num_levels, step, print_iter, smooth


def image_rewards(reward_func, output, targets, variant, num_areas):
    """``reward_func`` on each image's block of outputs, averaged per area: ``(N * K,)``.

    Each image's block (``K`` rows, ``2K`` for the dual variant: masks then complements) goes to
    ``reward_func`` alone with its target, exactly as TorchRay calls it for one image; so a
    reward that mixes rows (``contrastive_reward``'s broadcasting) mixes them within an image only.
    """
    rows = output.shape[0] // len(targets)
    rewards = []
    for index, target in enumerate(targets):
        block = output if len(targets) == 1 else output[index * rows:(index + 1) * rows]
        reward = reward_func(block, target, variant=variant)
        rewards.append(reward.reshape(num_areas, -1).mean(dim=1))
    return rewards[0] if len(rewards) == 1 else torch.cat(rewards)


def print_header(target, areas, variant, max_iter, step, sigma, input, reward_func, perturbation, pmask):
    name = getattr(reward_func, "__name__", type(reward_func).__name__)
    print(f"extremal_perturbation:\n"
          f"- target: {target}\n"
          f"- areas: {areas}\n"
          f"- variant: {variant}\n"
          f"- max_iter: {max_iter}\n"
          f"- step/sigma: {step}, {sigma}\n"
          f"- image size: {list(input.shape)}\n"
          f"- reward function: {name}")
    print("- " + "\n  ".join(str(perturbation).split("\n")))
    print(f"- mask resolution:\n  {pmask.shape}")


def print_losses(t, max_iter, areas, hist):
    line = "[{:04d}/{:04d}]".format(t + 1, max_iter)
    values = hist[:, :, t].tolist()  # one device-to-host copy
    for index, (reward, regul) in enumerate(values):
        line += " [area:{:.2f} loss:{:.2f} reg:{:.2f}]".format(areas[index % len(areas)], reward, regul)
    print(line)


def plot_masks(hist, t, areas, full, x, variant, rows_per_image):
    """TorchRay's debug figures (energy curves, full mask, perturbed image); needs matplotlib."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    from .._image_io import imsc

    num_areas = len(areas)
    curves = hist[:, :, :t + 1].cpu()
    for index in range(full.shape[0]):
        image, area = divmod(index, num_areas)
        row = image * rows_per_image + area
        plt.figure(index, figsize=(20, 6))
        plt.clf()
        ncols = 4 if variant == "dual" else 3
        plt.subplot(1, ncols, 1)
        plt.plot(curves[index, 0].numpy())
        plt.plot(curves[index, 1].numpy())
        plt.plot(curves[index].sum(dim=0).numpy())
        plt.legend(("energy", "regul", "both"))
        plt.title(f"target area:{areas[area]:.2f}")
        plt.subplot(1, ncols, 2)
        mask = full[index].detach()
        imsc(mask, lim=[0, 1])
        plt.title(f"min:{mask.min().item():.2f} max:{mask.max().item():.2f} area:{mask.sum() / mask.numel():.2f}")
        plt.subplot(1, ncols, 3)
        imsc(x[row].detach())
        if variant == "dual":
            plt.subplot(1, ncols, 4)
            imsc(x[row + num_areas].detach())
        plt.pause(0.001)


def check_reward_args(activation, target, variant):
    if not isinstance(activation, torch.Tensor):
        raise TypeError(f"activation must be a torch.Tensor, got {type(activation).__name__}")
    if not 2 <= activation.dim() <= 4:
        raise ValueError(f"activation must be 2-D to 4-D (N, C, ...), got shape {tuple(activation.shape)}")
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise TypeError(f"target must be an int channel index, got {type(target).__name__}")
    if not 0 <= target < activation.shape[1]:
        raise ValueError(f"target {target} is out of range for {activation.shape[1]} channels")
    check_choice("variant", variant, VARIANTS)
    if variant == "dual" and activation.shape[0] % 2:
        raise ValueError(f"the dual variant needs an even batch (masks, then complements), got {activation.shape[0]}")


class AssignedWeight:
    """A geometry whose weights are the ones a user assigned to ``MaskGenerator.weight``."""

    def __init__(self, geometry, weight):
        self._geometry = geometry
        self._weight = weight

    def __getattr__(self, name):
        return getattr(self._geometry, name)

    def full_weight(self, device, dtype):
        return self._weight.reshape(-1, *self._weight.shape[-2:]).to(device=device, dtype=dtype)


def lookups(pyramids, mask, variant, num_images, num_areas):
    """The lookups that make the model's batch, in its order: per image, ``(pyramid, masks,
    complement)`` for its masked images and then, for dual, ``complement=True`` for its
    complements (looked up as ``1 - masks``).

    ``pyramids`` is :attr:`Perturbation.pyramid`: ``(L, C, H, W)`` for one image, ``(N, L, C, H, W)``
    for a batch.
    """
    complements = {"preserve": (False,), "delete": (True,), "dual": (False, True)}[variant]
    for image in range(num_images):
        pyramid = pyramids if num_images == 1 else pyramids[image]
        masks = mask if num_images == 1 else mask[image * num_areas:(image + 1) * num_areas]
        for complement in complements:
            yield image, pyramid, masks, complement


def perturbed(pyramids, mask, variant, num_images, num_areas):
    """The batch the model sees: per image, its masked images (then, for dual, the complements)."""
    blocks = [pyramid_lookup(pyramid, 1 - masks if complement else masks)
              for _, pyramid, masks, complement in lookups(pyramids, mask, variant, num_images, num_areas)]
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks)
