"""The pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016),
with TorchRay's definitions, and a batched version of it.

A saliency map *points* at its maximum; the point is a *hit* when some pixel of the object's
mask lies strictly closer than ``tolerance`` pixels (15 by default) to it, else a *miss*. The
score is the mean over classes of each class's accuracy ``hits / (hits + misses)``.

:class:`PointingGame` keeps TorchRay's ``torchray.benchmark.pointing_game.PointingGame``
(counters per class, ``evaluate``/``aggregate``/``reset``). :func:`pointing_hits` and
:func:`pointing_game` do the same for a whole batch at once, from the maps.

Example::

    from xaifast.benchmark.pointing_game import pointing_game
    accuracy, per_class = pointing_game(saliency, masks, class_ids, num_classes=8)
"""

import torch

from ..ops._checks import check_int

__all__ = ["PointingGame", "saliency_to_point", "pointing_hits", "pointing_game"]


class PointingGame:
    r"""Pointing game counters (TorchRay's ``PointingGame``).

    Args:
        num_classes (int): number of classes, ``>= 1``.
        tolerance (int): a point hits when an object pixel is at a distance ``< tolerance``.
            Default: ``15``.

    Attributes:
        hits (Tensor): ``(num_classes,)`` float64 hit counts.
        misses (Tensor): ``(num_classes,)`` float64 miss counts.

    Unlike TorchRay: bad arguments raise ``TypeError``/``ValueError`` naming them (TorchRay
    asserts), and the module imports without torchvision.

    Example:
        >>> game = PointingGame(2, tolerance=2)
        >>> mask = torch.zeros(5, 5, dtype=torch.bool); mask[0, 0] = True
        >>> game.aggregate(game.evaluate(mask, (1, 1)), 0)   # (u, v) = (column, row)
        >>> game.aggregate(game.evaluate(mask, (4, 4)), 0)
        >>> game.class_accuracies
        tensor([0.5000, 0.0000], dtype=torch.float64)
    """

    def __init__(self, num_classes, tolerance=15):
        self.num_classes = check_int("num_classes", num_classes, 1)
        self.tolerance = check_int("tolerance", tolerance, 0)
        self.hits = torch.zeros((self.num_classes,), dtype=torch.float64)
        self.misses = torch.zeros((self.num_classes,), dtype=torch.float64)

    def evaluate(self, mask, point):
        r"""Whether ``point`` is within ``tolerance`` of the object ``mask``.

        Args:
            mask (Tensor): ``(H, W)`` bool (or 0/1) occupancy of the object.
            point (tuple): ``(u, v)``: column and row of the predicted point (may be fractional).

        Returns:
            int: ``+1`` for a hit (some mask pixel ``(y, x)`` with
            ``(x - u)^2 + (y - v)^2 < tolerance^2``), else ``-1``.
        """
        if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
            raise ValueError(f"mask must be an (H, W) tensor, got "
                             f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}")
        try:
            u, v = (float(c) for c in point)
        except (TypeError, ValueError):
            raise ValueError(f"point must be a (u, v) pair of numbers, got {point!r}") from None
        rows = (torch.arange(mask.shape[0], dtype=torch.float32) - v) ** 2
        cols = (torch.arange(mask.shape[1], dtype=torch.float32) - u) ** 2
        accept = (rows[:, None] + cols[None, :]) < self.tolerance ** 2
        return +1 if bool((mask.bool().cpu() & accept).any()) else -1

    def aggregate(self, hit, class_id):
        """Count one result: ``hit`` is ``+1`` (hit), ``-1`` (miss) or ``0`` (skipped)."""
        if hit not in (-1, 0, 1) or isinstance(hit, bool):
            raise ValueError(f"hit must be +1, -1 or 0, got {hit!r}")
        class_id = check_int("class_id", class_id, 0)
        if class_id >= self.num_classes:
            raise ValueError(f"class_id must be < num_classes ({self.num_classes}), got {class_id}")
        if hit == 1:
            self.hits[class_id] += 1
        elif hit == -1:
            self.misses[class_id] += 1

    def reset(self):
        """Set every counter back to zero."""
        self.hits = torch.zeros_like(self.hits)
        self.misses = torch.zeros_like(self.misses)

    @property
    def class_accuracies(self):
        """Tensor: ``(num_classes,)`` ``hits / max(hits + misses, 1)`` (0 for unseen classes)."""
        return self.hits / (self.hits + self.misses).clamp(min=1)

    @property
    def accuracy(self):
        """Tensor: the mean of :attr:`class_accuracies` (over all ``num_classes``, as TorchRay)."""
        return self.class_accuracies.mean()

    def __str__(self):
        accuracies = self.class_accuracies
        per_class = " ".join(f"{c}:{100 * a:4.1f}%" for c, a in enumerate(accuracies.tolist()))
        return f"{100 * float(accuracies.mean()):4.1f}% [{per_class}]"


def _check_saliency(saliency):
    if not isinstance(saliency, torch.Tensor):
        raise TypeError(f"saliency must be a torch.Tensor, got {type(saliency).__name__}")
    if saliency.dim() == 4:
        if saliency.shape[1] != 1:
            raise ValueError(f"saliency must be (N, 1, H, W) or (N, H, W), got shape {tuple(saliency.shape)}")
        saliency = saliency[:, 0]
    if saliency.dim() != 3 or saliency.numel() == 0:
        raise ValueError(f"saliency must be a non-empty (N, 1, H, W) or (N, H, W) tensor, got shape "
                         f"{tuple(saliency.shape)}")
    if not saliency.is_floating_point():
        saliency = saliency.float()
    if torch.isnan(saliency).any():
        raise ValueError("saliency must not contain NaN")
    return saliency


def saliency_to_point(saliency):
    """The point of each map: its maximum, as ``(u, v)`` = (column, row), TorchRay's benchmark rule.

    Ties go to the first maximum in row-major order (``torch.argmax`` of the flattened map).

    Args:
        saliency (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)``.

    Returns:
        Tensor: ``(N, 2)`` int64 ``(u, v)``.

    Example:
        >>> s = torch.zeros(1, 1, 4, 5); s[0, 0, 2, 3] = 1
        >>> saliency_to_point(s)
        tensor([[3, 2]])
    """
    saliency = _check_saliency(saliency)
    width = saliency.shape[2]
    index = saliency.reshape(saliency.shape[0], -1).argmax(1)
    return torch.stack((index % width, index // width), 1)


def pointing_hits(saliency, masks, tolerance=15):
    """Pointing-game hits of a batch of maps, all at once.

    Equals ``[PointingGame(_, tolerance).evaluate(masks[n], point_n) == 1 for n]`` with
    ``point_n`` the first maximum of ``saliency[n]`` (:func:`saliency_to_point`): a hit when
    some pixel of ``masks[n]`` is strictly closer than ``tolerance`` to the point.

    Args:
        saliency (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)`` maps at the masks' resolution.
        masks (Tensor): ``(N, H, W)`` bool (or 0/1) object masks, one per map.
        tolerance (int): in pixels. Default: ``15``.

    Returns:
        Tensor: ``(N,)`` bool, ``True`` for a hit.

    Example:
        >>> s = torch.zeros(2, 1, 40, 40); s[0, 0, 5, 5] = 1; s[1, 0, 35, 35] = 1
        >>> m = torch.zeros(2, 40, 40, dtype=torch.bool); m[:, 10:15, 10:15] = True
        >>> pointing_hits(s, m)
        tensor([ True, False])
    """
    saliency = _check_saliency(saliency)
    tolerance = check_int("tolerance", tolerance, 0)
    if not isinstance(masks, torch.Tensor):
        raise TypeError(f"masks must be a torch.Tensor, got {type(masks).__name__}")
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.shape != saliency.shape:
        raise ValueError(f"masks must be (N, H, W) like the saliency {tuple(saliency.shape)}, got "
                         f"{tuple(masks.shape)}")
    point = saliency_to_point(saliency).to(masks.device)
    height, width = saliency.shape[1:]
    # Integer squared distances: exact, so the `< tolerance^2` boundary matches TorchRay's float32 test.
    rows = (torch.arange(height, device=masks.device)[None, :] - point[:, 1:2]) ** 2   # (N, H)
    cols = (torch.arange(width, device=masks.device)[None, :] - point[:, 0:1]) ** 2    # (N, W)
    accept = (rows[:, :, None] + cols[:, None, :]) < tolerance ** 2
    return (accept & masks.bool()).flatten(1).any(1)


def pointing_game(saliency, masks, class_ids, num_classes, tolerance=15):
    """Pointing-game accuracy of a batch: the mean of the per-class accuracies.

    One entry per ``(map, mask, class)`` triple: the map explains class ``class_ids[n]`` and
    ``masks[n]`` is where that class's objects are. Same numbers as feeding every triple to a
    :class:`PointingGame` (``aggregate(evaluate(mask, point), class_id)``): the accuracy is
    averaged over all ``num_classes`` classes, a class without entries counting as 0, as in
    TorchRay.

    Args:
        saliency (Tensor): ``(N, 1, H, W)`` or ``(N, H, W)`` maps.
        masks (Tensor): ``(N, H, W)`` bool object masks.
        class_ids (sequence or Tensor): ``N`` class indices in ``[0, num_classes)``.
        num_classes (int): number of classes.
        tolerance (int): in pixels. Default: ``15``.

    Returns:
        tuple: ``(accuracy, class_accuracies)``: a 0-d float64 tensor and the ``(num_classes,)``
        float64 per-class accuracies.

    Example:
        >>> s = torch.zeros(2, 1, 40, 40); s[0, 0, 5, 5] = 1; s[1, 0, 35, 35] = 1
        >>> m = torch.zeros(2, 40, 40, dtype=torch.bool); m[:, 10:15, 10:15] = True
        >>> pointing_game(s, m, [0, 1], num_classes=2)
        (tensor(0.5000, dtype=torch.float64), tensor([1., 0.], dtype=torch.float64))
    """
    num_classes = check_int("num_classes", num_classes, 1)
    hits = pointing_hits(saliency, masks, tolerance).cpu()
    class_ids = torch.as_tensor(class_ids).reshape(-1).cpu()
    if class_ids.is_floating_point() or class_ids.dtype == torch.bool:
        raise TypeError(f"class_ids must hold integer class indices, got dtype {class_ids.dtype}")
    if class_ids.numel() != hits.numel():
        raise ValueError(f"class_ids must have one class per map ({hits.numel()}), got {class_ids.numel()}")
    if class_ids.numel() and (int(class_ids.min()) < 0 or int(class_ids.max()) >= num_classes):
        raise ValueError(f"class_ids must be in [0, {num_classes}), got {class_ids.tolist()}")
    class_ids = class_ids.long()
    hit_counts = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, class_ids, hits.double())
    totals = torch.zeros(num_classes, dtype=torch.float64).index_add_(
        0, class_ids, torch.ones(class_ids.numel(), dtype=torch.float64))
    class_accuracies = hit_counts / totals.clamp(min=1)
    return class_accuracies.mean(), class_accuracies
