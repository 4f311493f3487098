"""Excitation backprop on a small VGG-like CNN, batch 4 at 224 x 224: xaifast vs TorchRay.

TorchRay's module is the reference path (its algorithm, run as it is); it imports torchvision
only for ``update_resnet``'s isinstance checks, so a stand-in torchvision module is installed
for the import. Parity of the saliency maps is checked on every case.
"""

import importlib
import sys
import types

import pytest
import torch
import torch.nn as nn

from xaifast.attribution.excitation_backprop import contrastive_excitation_backprop, excitation_backprop


def _torchray_ebp():
    try:
        importlib.import_module("torchray.attribution.common")
    except Exception:
        return None
    resnet = types.ModuleType("torchvision.models.resnet")
    resnet.ResNet = resnet.BasicBlock = resnet.Bottleneck = type("Stand_in", (nn.Module,), {})
    models = types.ModuleType("torchvision.models")
    models.resnet = resnet
    vision = types.ModuleType("torchvision")
    vision.models = models
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.models", "torchvision.models.resnet")}
    sys.modules.update({"torchvision": vision, "torchvision.models": models, "torchvision.models.resnet": resnet})
    try:
        return importlib.import_module("torchray.attribution.excitation_backprop")
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


TORCHRAY = _torchray_ebp()
IMPLS = ["xaifast"] + (["torchray"] if TORCHRAY is not None else [])


def _vgg_like():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 100),
    ).eval()


def _inputs():
    return torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(1)), [3, 17, 42, 99]


@pytest.mark.parametrize("impl", IMPLS)
def test_excitation_backprop(record, impl):
    record.group = "ebp-cpu-vgglike-4x3x224x224"
    model, (x, target) = _vgg_like(), _inputs()
    fn = excitation_backprop if impl == "xaifast" else TORCHRAY.excitation_backprop
    out = record.pedantic(fn, args=(model, x, target), kwargs=dict(saliency_layer="3"), rounds=5, iterations=1)
    if TORCHRAY is not None:
        expected = TORCHRAY.excitation_backprop(model, x, target, saliency_layer="3")
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("impl", IMPLS)
def test_contrastive_excitation_backprop(record, impl):
    record.group = "ebp-contrastive-cpu-vgglike-4x3x224x224"
    model, (x, target) = _vgg_like(), _inputs()
    fn = contrastive_excitation_backprop if impl == "xaifast" else TORCHRAY.contrastive_excitation_backprop
    kwargs = dict(saliency_layer="3", contrast_layer="13")
    out = record.pedantic(fn, args=(model, x, target), kwargs=kwargs, rounds=5, iterations=1)
    if TORCHRAY is not None:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        expected = TORCHRAY.contrastive_excitation_backprop(model, x, target, **kwargs)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-8)
