"""Tiny seeded models and helpers shared by the attribution tests."""

import copy
import importlib
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F


def _in_place(fn):
    """Call an in-place form and ignore its return value: the change must be visible anyway."""
    def call(h):
        fn(h)
        return h
    return call


# Every way a model can call ReLU: name -> f(h) returning the rectified tensor.
RELU_FORMS = {
    "nn.ReLU": lambda h: nn.ReLU()(h),
    "nn.ReLU(inplace)": _in_place(nn.ReLU(inplace=True)),
    "F.relu": lambda h: F.relu(h),
    "F.relu(inplace)": _in_place(lambda h: F.relu(h, inplace=True)),
    "F.relu(h, True)": _in_place(lambda h: F.relu(h, True)),
    "F.relu_": _in_place(F.relu_),
    "torch.relu": torch.relu,
    "torch.relu_": _in_place(torch.relu_),
    "Tensor.relu": lambda h: h.relu(),
    "Tensor.relu_": _in_place(lambda h: h.relu_()),
}


def tiny_cnn(seed=0, inplace=False, dtype=torch.float32):
    """Conv-ReLU-pool x2, then a linear classifier: (N, 3, 16, 16) -> (N, 5).

    Layer names: '0' conv, '1' ReLU, '2' pool, '3' conv, '4' ReLU, '5' pool, '6' flatten,
    '7' linear.
    """
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 5),
    )
    return model.to(dtype).eval()


class FormNet(nn.Module):
    """The layers of :func:`tiny_cnn`, with its ReLUs called in the form ``form``."""

    def __init__(self, form, seed=0):
        super().__init__()
        reference = tiny_cnn(seed)
        self.conv1, self.conv2, self.fc = reference[0], reference[3], reference[7]
        self.relu = RELU_FORMS[form]

    def forward(self, x):
        x = F.max_pool2d(self.relu(self.conv1(x)), 2)
        x = F.max_pool2d(self.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def form_net_as_sequential(net):
    """The :func:`tiny_cnn` (with ``nn.ReLU``) holding the weights of a :class:`FormNet`."""
    model = tiny_cnn()
    model[0], model[3], model[7] = (copy.deepcopy(m) for m in (net.conv1, net.conv2, net.fc))
    return model


def torchray(name):
    """Import ``torchray.<name>`` (its import-time warnings silenced) or skip the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("torchray.attribution.common")
        return importlib.import_module(f"torchray.{name}")


def quietly(fn, *args, **kwargs):
    """Run a TorchRay function with its own warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def seeded_input(*shape, seed=1, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype)
