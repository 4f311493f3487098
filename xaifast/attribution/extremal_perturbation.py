r"""Extremal perturbations (Fong, Patrick and Vedaldi, ICCV 2019).

TorchRay's ``torchray.attribution.extremal_perturbation`` with the same names, arguments and
numbers: the smooth masks that, at a given area, keep (or delete) the evidence for a class.
What TorchRay spends each iteration on is done without its big temporaries: the mask is
pooled a band at a time with a hand-written backward (TorchRay holds ``K x 81 x 260 x 260``
values and their softmax), the area regulariser selects one order statistic instead of
sorting every mask, and the perturbed images are read from the pyramid with one level split
per pixel. Several images, one target each, are optimised together.

Example:
    >>> from xaifast.attribution.extremal_perturbation import extremal_perturbation, contrastive_reward
    >>> masks, hist = extremal_perturbation(model, x, target=3, areas=[0.05, 0.1],
    ...                                     reward_func=contrastive_reward)   # doctest: +SKIP
    >>> masks.shape                                                            # doctest: +SKIP
    torch.Size([2, 1, 224, 224])
"""

import numbers

import torch

from .._progress import progress as _progress
from ..ops.blur import imsmooth
from ..ops.extremal import area_loss, blur_pyramid, mask_geometry, pyramid_lookup, smooth_mask
from ..reference.extremal import COLDNESS, smooth_mask_dense
from . import _extremal_direct as _direct
from . import _extremal_helpers as helpers
from .common import _resize

__all__ = [
    "extremal_perturbation",
    "Perturbation",
    "simple_reward",
    "contrastive_reward",
    "BLUR_PERTURBATION",
    "FADE_PERTURBATION",
    "PRESERVE_VARIANT",
    "DELETE_VARIANT",
    "DUAL_VARIANT",
]

BLUR_PERTURBATION = "blur"
"""Gaussian blur perturbation (:class:`Perturbation`)."""

FADE_PERTURBATION = "fade"
"""Fade-to-black perturbation (:class:`Perturbation`)."""

PRESERVE_VARIANT = "preserve"
"""Keep the masked region: the reward of the image perturbed outside the mask."""

DELETE_VARIANT = "delete"
"""Delete the masked region: minus the reward of the image perturbed inside the mask."""

DUAL_VARIANT = "dual"
"""Both: the preserve reward minus the reward with the mask's complement kept."""

_MOMENTUM = 0.9
# The loop differentiates the method's own ops directly where it can (_extremal_direct); False
# keeps autograd throughout (the tests compare the two).
_DIRECT_GRADIENTS = True
_LEARNING_RATE = 0.01
_REGUL_WEIGHT = 300
_REGUL_GROWTH = 1.0035
_MAX_BLUR = 20


class Perturbation:
    r"""A perturbation pyramid and the lookup that turns a mask into a perturbed image.

    The pyramid holds ``L`` versions of the input, level 0 the most perturbed and level
    ``L - 1`` the input itself: blurred with ``sigma_l = (1 - l / (L - 1)) * max_blur``
    (``'blur'``) or scaled by ``l / (L - 1)`` (``'fade'``). It is built by the compiled blur,
    one call per level for the whole batch. :meth:`apply` reads, per pixel, the level
    ``mask * (L - 1)``, interpolating linearly between the two nearest levels.

    Unlike TorchRay: the input may hold several images (one pyramid each; masks are then given
    image by image, ``K`` per image), :meth:`to` really moves the pyramid (TorchRay's discards
    the moved copy), and bad arguments raise ``ValueError`` naming them.

    Args:
        input (Tensor): ``(N, C, H, W)`` images (TorchRay: ``N = 1``).
        num_levels (int): ``L >= 2``. Default: ``8``.
        max_blur (float): blur of level 0, ``> 0``. Default: ``20``.
        type (str): :data:`BLUR_PERTURBATION` or :data:`FADE_PERTURBATION`. Default: blur.

    Attributes:
        type (str), num_levels (int), max_blur (float): the arguments.
        pyramid (Tensor): ``(L, C, H, W)`` for one image (as TorchRay), ``(N, L, C, H, W)`` for ``N > 1``.

    Example:
        >>> perturbation = Perturbation(torch.rand(1, 3, 64, 64), num_levels=4)
        >>> perturbation.apply(torch.full((2, 1, 64, 64), 0.5)).shape
        torch.Size([2, 3, 64, 64])
    """

    def __init__(self, input, num_levels=8, max_blur=20, type=BLUR_PERTURBATION):
        helpers.check_input(input)
        helpers.check_int_arg("num_levels", num_levels, 2)
        if isinstance(max_blur, bool) or not isinstance(max_blur, numbers.Real) or not 0 < max_blur < float("inf"):
            raise ValueError(f"max_blur must be a finite number > 0, got {max_blur!r}")
        helpers.check_choice("type", type, helpers.PERTURBATIONS)
        self.type = type
        self.num_levels = int(num_levels)
        self.max_blur = max_blur
        with torch.no_grad():
            pyramid = blur_pyramid(input.detach(), self.num_levels, max_blur, type)
        self.pyramid = pyramid[0] if pyramid.shape[0] == 1 else pyramid

    def apply(self, mask):
        r"""Perturbed images from masks: ``(K, 1, H, W)`` -> ``(K, C, H, W)``.

        A mask value of 1 keeps the input, 0 gives the most perturbed level; in between, the two
        nearest levels are mixed linearly. With ``N`` images, ``K`` must be a multiple of ``N``:
        the first ``K / N`` masks go with image 0, and so on.

        Args:
            mask (Tensor): ``(K, 1, H, W)`` masks in ``[0, 1]``.

        Returns:
            Tensor: ``(K, C, H, W)``, differentiable with respect to ``mask``.
        """
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        mask = mask.to(self.pyramid.dtype)
        if self.pyramid.dim() == 4:
            return pyramid_lookup(self.pyramid, mask)
        num_images = self.pyramid.shape[0]
        if mask.dim() != 4 or mask.shape[0] % num_images:
            raise ValueError(f"mask must be (K, 1, H, W) with K a multiple of the {num_images} images, "
                             f"got shape {tuple(mask.shape)}")
        per_image = mask.shape[0] // num_images
        return torch.cat([pyramid_lookup(self.pyramid[i], mask[i * per_image:(i + 1) * per_image])
                          for i in range(num_images)])

    def to(self, dev):
        """Move the pyramid to ``dev``; returns ``self``."""
        self.pyramid = self.pyramid.to(dev)
        return self

    def __str__(self):
        return (f"Perturbation:\n"
                f"- type: {self.type}\n"
                f"- num_levels: {self.num_levels}\n"
                f"- pyramid shape: {list(self.pyramid.shape)}")


def simple_reward(activation, target, variant):
    r"""The ``target`` channel of the activation, as a reward.

    ``preserve``: ``a[:, target]``; ``delete``: ``-a[:, target]``; ``dual``: the first half of
    the batch (masked images) minus the second half (complements), ``a[:N/2, t] - a[N/2:, t]``.

    Args:
        activation (Tensor): ``(N, C)``, ``(N, C, H)`` or ``(N, C, H, W)``.
        target (int): channel.
        variant (str): :data:`PRESERVE_VARIANT`, :data:`DELETE_VARIANT` or :data:`DUAL_VARIANT`.

    Returns:
        Tensor: ``(N, ...)`` (``(N / 2, ...)`` for dual), the channel dimension dropped.

    Example:
        >>> simple_reward(torch.tensor([[1.0, 2.0], [3.0, 5.0]]), 1, 'dual')
        tensor([-3.])
    """
    helpers.check_reward_args(activation, target, variant)
    if variant == PRESERVE_VARIANT:
        return activation[:, target]
    if variant == DELETE_VARIANT:
        return -activation[:, target]
    half = activation.shape[0] // 2
    return activation[:half, target] - activation[half:, target]


def _margin(activation, target):
    # As TorchRay: the other channels' max keeps its channel dimension, so the difference
    # broadcasts to (N, N, ...) instead of (N, ...).
    others = activation.clone()
    others[:, target] = -100
    return activation[:, target] - others.max(dim=1, keepdim=True)[0]


def contrastive_reward(activation, target, variant):
    r"""The ``target`` channel minus the largest other channel, as a reward.

    Variants as :func:`simple_reward`. Kept from TorchRay, on purpose: the largest other
    channel keeps its channel dimension, so the result broadcasts to ``(N, N)`` for ``(N, C)``
    activations (``(N, N, H, W)`` for 4-D ones). With several areas, each area's reward in
    ``hist`` is then its target score minus the mean over areas of the runner-up score; the
    summed energy, hence the gradient and the masks, are as intended.

    Args:
        activation (Tensor): ``(N, C)``, ``(N, C, H)`` or ``(N, C, H, W)``.
        target (int): channel.
        variant (str): :data:`PRESERVE_VARIANT`, :data:`DELETE_VARIANT` or :data:`DUAL_VARIANT`.

    Returns:
        Tensor: the reward, broadcast as described.

    Example:
        >>> contrastive_reward(torch.tensor([[1.0, 3.0, 2.0]]), 1, 'preserve')
        tensor([[1.]])
    """
    helpers.check_reward_args(activation, target, variant)
    if variant == PRESERVE_VARIANT:
        return _margin(activation, target)
    if variant == DELETE_VARIANT:
        return -_margin(activation, target)
    half = activation.shape[0] // 2
    return _margin(activation[:half], target) - _margin(activation[half:], target)


class MaskGenerator:
    r"""Smooth masks from a low-resolution parameter grid (TorchRay's ``MaskGenerator``).

    Each parameter spreads over its ``step x step`` cell and its neighbours through a bump of
    radius ``sigma``; each pixel pools its ``(2r + 1)^2`` weighted neighbours (softmax: a smooth
    max; sum; or sigmoid of the sum). :meth:`generate` runs the ``smooth_mask`` op, which never
    holds the ``K x (2r+1)^2 x H x W`` values TorchRay builds.

    Unlike TorchRay: ``weight`` is computed when first read (same numbers); ``generate``
    follows a changed ``coldness`` or an assigned ``weight`` through the literal TorchRay
    formulation; bad arguments raise ``ValueError`` naming them.

    Args:
        shape (tuple): ``(H, W)`` of the masks.
        step (int): pixels per parameter.
        sigma (float): bump radius, ``> 0``.
        clamp (bool): clamp masks to ``[0, 1]``. Default: ``True``.
        pooling_method (str): ``'softmax'``, ``'sum'`` or ``'sigmoid'``. Default: ``'softmax'``.

    Attributes:
        shape, step, sigma, clamp, pooling_method: the arguments; ``coldness`` (20); ``kernel``
        (the bump, ``exp(-2 max(z - 1/2, 0)^2)``); ``margin`` (``sigma``); ``padding``; ``radius``;
        ``shape_in`` (parameter grid), ``shape_mid``, ``shape_up``, ``shape_out`` (full mask);
        ``weight`` (``1 x (2r+1)^2 x shape_out``).

    Example:
        >>> generator = MaskGenerator((224, 224), 7, 21)
        >>> generator.shape_in, generator.shape_out
        ([32, 32], [260, 260])
        >>> cropped, full = generator.generate(torch.ones(1, 1, 32, 32))
    """

    def __init__(self, shape, step, sigma, clamp=True, pooling_method="softmax"):
        if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2:
            raise ValueError(f"shape must be a (height, width) pair, got {shape!r}")
        self._geometry = mask_geometry(tuple(shape), helpers.check_step(step), helpers.check_sigma(sigma))
        if not isinstance(clamp, bool):
            raise TypeError(f"clamp must be a bool, got {type(clamp).__name__}")
        helpers.check_choice("pooling_method", pooling_method, ("softmax", "sum", "sigmoid"))
        self.shape = shape
        self.step = self._geometry.step
        self.sigma = sigma
        self.coldness = COLDNESS
        self.clamp = clamp
        self.pooling_method = pooling_method
        self.kernel = lambda z: torch.exp(-2 * ((z - .5).clamp(min=0) ** 2))
        self.margin = self._geometry.margin
        self.padding = self._geometry.padding
        self.radius = self._geometry.radius
        self.shape_in = list(self._geometry.shape_in)
        self.shape_mid = list(self._geometry.shape_mid)
        self.shape_up = list(self._geometry.shape_up)
        self.shape_out = list(self._geometry.shape_out)
        self._device = torch.device("cpu")
        self._weight = None
        self._weight_assigned = False

    @property
    def weight(self):
        if self._weight is None:
            self._weight = self._geometry.full_weight(self._device, torch.float32).unsqueeze(0)
        return self._weight

    @weight.setter
    def weight(self, value):
        self._weight = value
        self._weight_assigned = True

    def generate(self, mask_in):
        r"""Masks from parameters: ``(K, 1, *shape_in)`` -> ``(cropped, full)``.

        Args:
            mask_in (Tensor): ``(K, 1, *shape_in)`` parameters (usually in ``[0, 1]``).

        Returns:
            tuple: ``cropped`` ``(K, 1, *shape)`` and ``full`` ``(K, 1, *shape_out)`` (with a
            margin of ``round(sigma)`` pixels); ``cropped`` is a view of ``full``.
        """
        if self.coldness == COLDNESS and not self._weight_assigned:
            return smooth_mask(mask_in, self._geometry.shape, self.step, self.sigma, self.clamp, self.pooling_method)
        helpers.check_choice("pooling_method", self.pooling_method, ("softmax", "sum", "sigmoid"))
        geometry = helpers.AssignedWeight(self._geometry, self.weight) if self._weight_assigned else self._geometry
        return smooth_mask_dense(mask_in, geometry, self.clamp, self.pooling_method, self.coldness)

    def to(self, dev):
        """Move :attr:`weight` to ``dev`` (masks are made on the parameters' device); returns ``self``."""
        self._device = torch.device(dev)
        if self._weight is not None:
            self._weight = self._weight.to(dev)
        return self


def extremal_perturbation(model, input, target, areas=[0.1], perturbation=BLUR_PERTURBATION, max_iter=800,
                          num_levels=8, step=7, sigma=21, jitter=True, variant=PRESERVE_VARIANT, print_iter=None,
                          debug=False, reward_func=simple_reward, resize=False, resize_mode="bilinear", smooth=0,
                          *, progress=False):
    r"""Extremal perturbations: for each area, the smooth mask of that area that best keeps (or
    deletes) the evidence for ``target`` (TorchRay's ``extremal_perturbation``).

    The masks are parameterised on a grid of ``step``-pixel cells (:class:`MaskGenerator`);
    the perturbed images are read from a :class:`Perturbation` pyramid of ``num_levels``
    levels (blur up to ``sigma = 20``, or fade). Each iteration maximises the reward
    (``reward_func`` of ``model``'s output, averaged over space) minus
    ``regul_weight * area_loss`` (the squared distance of the sorted mask to a step with the
    requested area; the weight starts at 300 and grows by 0.35% per iteration), by SGD with
    learning rate 0.01, momentum 0.9 and dampening 0.9, the parameters clamped to ``[0, 1]``.
    With ``jitter``, the perturbed images are flipped left-right on even iterations
    (deterministic, as TorchRay does, whatever its docstring says). The masks returned are
    those of the last iteration's forward pass (before its update), as TorchRay returns them.

    Beyond TorchRay: several images are optimised together, one target each (the masks of
    image ``n`` are rows ``n K .. n K + K - 1`` of the result and of ``hist``; each image's
    model outputs reach ``reward_func`` on their own, so results equal separate runs);
    the area loss uses selection instead of a sort (same value and gradient, see
    :func:`xaifast.ops.extremal.area_loss` for ties); nothing is copied to the host per
    iteration unless ``print_iter`` or ``debug`` asks; the model's parameters get their
    ``requires_grad`` back on exit (TorchRay leaves them ``False``); ``debug`` plots only if
    matplotlib is installed; ``progress`` shows a progress bar; float64 images are optimised
    in float64; bad arguments raise ``ValueError``/``TypeError`` naming them (including a
    ``step``/``sigma`` whose masks do not cover the image, where TorchRay fails in ``apply``).

    On agreement with TorchRay: the optimisation is sensitive to the last bits. The area loss
    decides per pixel whether it is compared with 0 or 1, and the mask has large groups of
    nearly or exactly equal values at the threshold (the parameters start at 1 and the weights
    repeat every ``step`` pixels); a one-ulp change can move a pixel across, and momentum keeps
    the difference. With the same mask arithmetic, xaifast follows TorchRay to ~1e-6 over
    hundreds of iterations; with the fused mask op (same values up to summation order) to
    ~1e-6 for the first iterations, drifting to ~1e-3 after 20 iterations at 224 x 224 -- as
    much as TorchRay drifts from itself between a CPU with AVX and one without. Equal values
    are ordered as by a stable sort (torch's default CPU sort, which TorchRay uses, leaves
    their order arbitrary).

    Args:
        model (torch.nn.Module): maps ``(b, C, H, W)`` to ``(b, classes, ...)`` activations.
        input (Tensor): ``(N, C, H, W)`` images (TorchRay: ``N = 1``).
        target (int or sequence): class (channel) index, for every image or one per image.
        areas (float or list): mask areas, fractions in ``(0, 1)``. Default: ``[0.1]``.
        perturbation (str): ``'blur'`` or ``'fade'``. Default: ``'blur'``.
        max_iter (int): iterations, ``>= 1``. Default: ``800``.
        num_levels (int): pyramid levels. Default: ``8``.
        step (int): mask cell size in pixels. Default: ``7``.
        sigma (float): mask smoothness in pixels. Default: ``21``.
        jitter (bool): flip the perturbed images on even iterations. Default: ``True``.
        variant (str): ``'preserve'``, ``'delete'`` or ``'dual'``. Default: ``'preserve'``.
        print_iter (int, optional): print the losses every ``print_iter`` iterations.
        debug (bool): print a summary and draw TorchRay's diagnostic figures. Default: ``False``.
        reward_func (callable): ``(activation, target, variant=...)`` -> reward;
            :func:`simple_reward` or :func:`contrastive_reward`. Default: :func:`simple_reward`.
        resize (bool or tuple): resize the masks to the input's size (``True``) or to
            ``(width, height)``. Default: ``False``.
        resize_mode (str): ``F.interpolate`` mode for ``resize``. Default: ``'bilinear'``.
        smooth (float): blur the masks with ``sigma = smooth * min(H, W)`` (zero padding);
            ``0`` disables. Default: ``0``.
        progress (bool): show a progress bar over the iterations. Default: ``False``.

    Returns:
        tuple: ``(masks, hist)``: ``(N K, 1, H, W)`` masks, detached, and the ``(N K, 2, max_iter)``
        CPU history of each mask's reward and regulariser (``K`` the number of areas).

    Example:
        >>> masks, hist = extremal_perturbation(model, x, 3, areas=[0.05, 0.1], max_iter=300)  # doctest: +SKIP
        >>> masks.shape, hist.shape                                                            # doctest: +SKIP
        (torch.Size([2, 1, 224, 224]), torch.Size([2, 2, 300]))
    """
    areas, max_iter, num_levels, step, print_iter, smooth = helpers.check_arguments(
        model, input, areas, perturbation, max_iter, num_levels, step, sigma, variant, print_iter, reward_func,
        resize, resize_mode, smooth)
    targets = helpers.check_targets(target, input.shape[0])
    parameters = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for parameter, _ in parameters:
            parameter.requires_grad_(False)
        masks, hist = _optimise(model, input, targets, areas, perturbation, max_iter, num_levels, step, sigma,
                                jitter, variant, print_iter, debug, reward_func, progress)
    finally:
        for parameter, requires_grad in parameters:
            parameter.requires_grad_(requires_grad)
    masks = _resize(input, masks, resize, resize_mode, "resize", "resize_mode")
    if smooth > 0:
        masks = imsmooth(masks, sigma=smooth * min(masks.shape[2:]), padding_mode="constant")
    return masks, hist


class _MomentumStep:
    """TorchRay's ``optim.SGD([p], lr=0.01, momentum=0.9, dampening=0.9)`` step on its one tensor,
    the arithmetic of torch's single-tensor SGD (the same bits) without its per-step bookkeeping
    (about 0.1 ms of a 3 ms iteration)."""

    def __init__(self, parameter):
        self.parameter = parameter
        self.buffer = None

    @torch.no_grad()
    def step(self):
        grad = self.parameter.grad
        if grad is None:  # as SGD: a parameter without a gradient is left alone
            return
        if self.buffer is None:
            self.buffer = grad.detach().clone()
        else:
            self.buffer.mul_(_MOMENTUM).add_(grad, alpha=1 - _MOMENTUM)
        self.parameter.add_(self.buffer, alpha=-_LEARNING_RATE)


def _optimise(model, input, targets, areas, perturbation_type, max_iter, num_levels, step, sigma, jitter, variant,
              print_iter, debug, reward_func, progress):
    num_images, num_areas = input.shape[0], len(areas)
    dtype = input.dtype if input.dtype in (torch.float32, torch.float64) else torch.float32
    regul_weight = _REGUL_WEIGHT
    regul_weight_last = max(regul_weight / 2, 1)
    shape = tuple(input.shape[2:])
    geometry = mask_geometry(shape, step, sigma)
    covered = [min(z - geometry.crop, size) for z, size in zip(geometry.shape_out, shape)]
    if covered != list(shape):
        raise ValueError(f"step={step} and sigma={sigma} give masks of {covered[0]} x {covered[1]} pixels, smaller "
                         f"than the {shape[0]} x {shape[1]} image (TorchRay fails here too); change step or sigma")
    perturbation = Perturbation(input.detach().to(dtype), num_levels=num_levels, type=perturbation_type)
    pmask = torch.ones(num_images * num_areas, 1, *geometry.shape_in, dtype=dtype, device=input.device)
    if debug:
        helpers.print_header(targets[0] if num_images == 1 else targets, areas, variant, max_iter, step, sigma,
                             input, reward_func, perturbation, pmask)
    mask_areas = areas * num_images
    optimizer = _MomentumStep(pmask)
    hist = None
    rows_per_image = 2 * num_areas if variant == DUAL_VARIANT else num_areas
    pmask.requires_grad_(True)
    # Jitter flips the perturbed images left-right on even iterations. The lookup is per pixel, so
    # flipping its output equals looking the flipped mask up in a flipped pyramid, made once here:
    # the same numbers, with a flip of K masks per iteration (and its backward) instead of K images.
    flipped_pyramid = torch.flip(perturbation.pyramid, dims=(-1,)) if jitter and max_iter > 0 else None
    direct = None
    if _DIRECT_GRADIENTS and _direct.available(input.device, dtype, geometry):
        direct = _direct.DirectStep(geometry, perturbation.pyramid, flipped_pyramid, variant, num_images, num_areas,
                                    mask_areas, dtype)
    for t in _progress(range(max_iter), total=max_iter, desc="extremal_perturbation", enable=progress):
        flip = jitter and t % 2 == 0
        if direct is not None:  # the same numbers as the autograd branch below, sooner
            cropped, full = direct.masks(pmask)
            x = direct.perturbed(cropped, flip)
        else:
            cropped, full = smooth_mask(pmask, shape, step, sigma)
            if flip:
                x = helpers.perturbed(flipped_pyramid, torch.flip(cropped, dims=(3,)), variant, num_images,
                                      num_areas)
            else:
                x = helpers.perturbed(perturbation.pyramid, cropped, variant, num_images, num_areas)
        y = model(x.to(input.dtype))
        if t == 0:
            helpers.check_target_range(targets, y)
        reward = helpers.image_rewards(reward_func, y, targets, variant, num_areas)
        pmask.grad = None
        if direct is not None:
            regul = -direct.regulariser() * regul_weight
            pmask.grad = direct.gradient(reward, regul_weight)
        else:
            regul = -area_loss(full, mask_areas) * regul_weight
            energy = (reward + regul).sum()
            (-energy).backward()
        optimizer.step()
        with torch.no_grad():
            pmask.clamp_(0, 1)
        if hist is None:
            hist_dtype = torch.promote_types(torch.float32, reward.dtype)
            hist = torch.zeros(pmask.shape[0], 2, max_iter, dtype=hist_dtype, device=reward.device)
        hist[:, 0, t] = reward.detach()
        hist[:, 1, t] = regul.detach()
        regul_weight *= _REGUL_GROWTH
        debug_this_iter = debug and (t in (0, max_iter - 1) or regul_weight / regul_weight_last >= 2)
        if (print_iter is not None and t % print_iter == 0) or debug_this_iter:
            helpers.print_losses(t, max_iter, areas, hist)
        if debug_this_iter:
            regul_weight_last = regul_weight
            helpers.plot_masks(hist, t, areas, full, x, variant, rows_per_image)
    return cropped.detach(), hist.cpu()
