"""Backward gradients that select the target class (re-exported by ``common``)."""

import numbers

import torch

from ._checks import check_tensor


def _class_indices(y, batch_size, name):
    """Per-image integer labels (a list of length ``batch_size``) from an int or a sequence."""
    if isinstance(y, torch.Tensor):
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
        labels = [int(v) for v in y.reshape(-1).tolist()]
    elif isinstance(y, numbers.Integral) and not isinstance(y, bool):
        labels = [int(y)]
    elif isinstance(y, (list, tuple)) and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in y):
        labels = [int(v) for v in y]
    else:
        raise TypeError(f"{name} must be an int class index or one per image, got {y!r}")
    if len(labels) == 1:
        labels = labels * batch_size
    if len(labels) != batch_size:
        raise ValueError(f"{name} must be one class index or one per image (batch size "
                         f"{batch_size}), got {len(labels)}")
    return labels


def class_indices(y, batch_size, name="target"):
    """One class index ``>= 0`` per image (a list of ``batch_size`` ints) from an int, a sequence
    or a 0-/1-D integer tensor: the targets of the method registry and the evaluations."""
    if isinstance(y, torch.Tensor) and y.dim() > 1:
        raise ValueError(f"{name} must be an int or a 1-D tensor of class indices, got shape {tuple(y.shape)}")
    labels = _class_indices(y, batch_size, name)
    if min(labels) < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {min(labels)}")
    return labels


def _check_range(labels_min, labels_max, num_classes, name):
    if labels_min < 0 or labels_max >= num_classes:
        bad = labels_min if labels_min < 0 else labels_max
        raise ValueError(f"{name} must be a class index in [0, {num_classes}) (the model output "
                         f"has {num_classes} classes), got {bad}")


def get_pointing_gradient(pred_y, y, normalize=True):
    """Backward gradient for the pointing game: ``exp`` of the target class's scores.

    For image ``n`` with label ``y_n`` the result is zero except ``[n, y_n] =
    exp(pred_y[n, y_n])``, divided by its sum over the spatial positions if ``normalize`` (for a
    2-D ``pred_y`` that makes it 1). Unlike TorchRay, which asserts a batch of one, a batch of
    ``N`` images works with ``y`` an int (same class for all) or ``N`` labels; the result does
    not track gradients; bad arguments raise ``TypeError``/``ValueError``.

    Args:
        pred_y (Tensor): model output, ``(N, C)`` or ``(N, C, H, W)``.
        y (int or sequence of int): class label(s).
        normalize (bool): make each image's entries sum to one. Default: ``True``.

    Returns:
        Tensor: same shape as ``pred_y``.

    Example:
        >>> get_pointing_gradient(torch.zeros(1, 3), 1)
        tensor([[0., 1., 0.]])
    """
    check_tensor("pred_y", pred_y)
    if pred_y.dim() not in (2, 4):
        raise ValueError(f"pred_y must be (N, C) or (N, C, H, W), got shape {tuple(pred_y.shape)}")
    labels = _class_indices(y, pred_y.shape[0], "y")
    if labels:
        _check_range(min(labels), max(labels), pred_y.shape[1], "y")
    pred_y = pred_y.detach()
    gradient = torch.zeros_like(pred_y)
    for n, label in enumerate(labels):
        scores = torch.exp(pred_y[n, label])
        if normalize:
            scores = scores / scores.sum()
        gradient[n, label] = scores
    return gradient


def get_backward_gradient(pred_y, y):
    """One-hot backward gradient selecting the target class(es) of the model output.

    If ``y`` is a tensor with the shape of ``pred_y`` it is returned itself (no copy). Otherwise
    ``y`` holds class indices: an int (every image) or one per image (list, tuple, array or
    tensor of ``N``). The result is zero except ones at channel ``y_n`` of image ``n`` (at every
    spatial position for ``(N, C, H, W)`` outputs). Unlike TorchRay, bad targets raise
    ``ValueError``/``TypeError`` that name ``target`` (out of range, wrong count, not a
    whole number: TorchRay truncates 1.5 to 1).

    Args:
        pred_y (Tensor): model output, ``(N, C)`` or ``(N, C, *spatial)``.
        y (int, sequence or Tensor): the target label(s) (``target`` of :func:`saliency`).

    Returns:
        Tensor: same shape, dtype and device as ``pred_y``.

    Example:
        >>> get_backward_gradient(torch.randn(2, 3), [2, 0])
        tensor([[0., 0., 1.],
                [1., 0., 0.]])
    """
    check_tensor("pred_y", pred_y)
    if not isinstance(y, torch.Tensor):
        try:
            values = torch.as_tensor(y)
        except (TypeError, ValueError, RuntimeError, OverflowError):
            raise TypeError(f"target must be integer class index(es) or a tensor shaped like "
                            f"the model output, got {y!r}") from None
        if values.is_floating_point() and not torch.equal(values, values.round()):
            # TorchRay would truncate 1.5 to class 1 without a word.
            raise ValueError(f"target must hold whole-number class indices, got {y!r}")
        y = values.to(device=pred_y.device, dtype=torch.long)
    if y.shape == pred_y.shape:
        return y
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices (or have the model output's shape "
                        f"{tuple(pred_y.shape)}), got dtype {y.dtype} and shape {tuple(y.shape)}")
    if pred_y.dim() < 2:
        raise ValueError(f"the model output must be (N, C, ...), got shape {tuple(pred_y.shape)}")
    batch_size, num_classes = pred_y.shape[:2]
    if y.numel() not in (1, batch_size):
        raise ValueError(f"target must be one class index or one per image (batch size "
                         f"{batch_size}), got {y.numel()}")
    y = y.to(device=pred_y.device, dtype=torch.long)
    _check_range(int(y.min()), int(y.max()), num_classes, "target")
    gradient = torch.zeros_like(pred_y)
    index = y.reshape(-1, 1, *((1,) * (pred_y.dim() - 2))).expand_as(gradient)
    return gradient.scatter_(1, index, 1.0)
