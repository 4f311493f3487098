"""Tiny seeded models for the excitation-backprop tests, and TorchRay's module as an oracle.

The ResNet classes have torchvision's structure (attribute names and forward) so that
``update_resnet`` recognises them, and they double as the ``torchvision.models.resnet``
stand-in TorchRay's module imports.
"""

import contextlib
import importlib
import sys
import types
import warnings

import pytest
import torch
import torch.nn as nn


def _randomise_batch_norms(model, generator):
    """Non-trivial running statistics and affine parameters for every batch norm."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                size = module.num_features
                module.running_mean.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(size, generator=generator) * 0.2 - 0.1)
    return model


def tiny_vgg(seed=0, inplace=False):
    """(N, 3, 16, 16) -> (N, 5): conv, batch norm, ReLU, max/avg/adaptive-avg pools, linear.

    Names: '0' conv, '1' bn, '2' relu, '3' maxpool, '4' conv, '5' relu, '6' avgpool,
    '7' conv, '8' relu, '9' adaptive avgpool, '10' flatten, '11' linear, '12' relu, '13' linear.
    """
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.AvgPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=inplace), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(32, 16), nn.ReLU(inplace=inplace), nn.Linear(16, 5),
    )
    return _randomise_batch_norms(model, torch.Generator().manual_seed(seed)).eval()


def tiny_1d(seed=0):
    """(N, 2, 16) -> (N, 5) with Conv1d, AvgPool1d, AdaptiveAvgPool1d and Linear."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.AvgPool1d(2),
        nn.Conv1d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(3),
        nn.Flatten(), nn.Linear(12, 5),
    ).eval()


def tiny_3d(seed=0):
    """(N, 2, 6, 6, 6) -> (N, 5) with Conv3d, BatchNorm3d, AvgPool3d, AdaptiveAvgPool3d, Linear."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv3d(2, 3, 3, padding=1), nn.BatchNorm3d(3), nn.ReLU(), nn.AvgPool3d(2),
        nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
        nn.Flatten(), nn.Linear(4, 5),
    )
    return _randomise_batch_norms(model, torch.Generator().manual_seed(seed)).eval()


class BasicBlock(nn.Module):
    """torchvision's BasicBlock layout (attribute names and forward)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck layout (attribute names and forward)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """(N, 3, 16, 16) -> (N, 5): a stem, two BasicBlocks, one Bottleneck with downsampling."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        downsample = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.layer2 = nn.Sequential(Bottleneck(8, 4, stride=2, downsample=downsample))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_resnet(seed=0):
    torch.manual_seed(seed)
    return _randomise_batch_norms(ResNet(), torch.Generator().manual_seed(seed)).eval()


def set_inplace(model, inplace):
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = inplace
    return model


@contextlib.contextmanager
def torchray_excitation_backprop():
    """Import TorchRay's excitation_backprop with a stand-in ``torchvision`` (or skip).

    The stand-in's ``torchvision.models.resnet`` holds this file's ResNet, BasicBlock and
    Bottleneck. Everything put into ``sys.modules`` is taken out again afterwards.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pytest.importorskip("torchray.attribution.common")
    resnet = types.ModuleType("torchvision.models.resnet")
    resnet.ResNet, resnet.BasicBlock, resnet.Bottleneck = ResNet, BasicBlock, Bottleneck
    models = types.ModuleType("torchvision.models")
    models.resnet = resnet
    torchvision = types.ModuleType("torchvision")
    torchvision.models = models
    name = "torchray.attribution.excitation_backprop"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "torchvision", torchvision)
        patch.setitem(sys.modules, "torchvision.models", models)
        patch.setitem(sys.modules, "torchvision.models.resnet", resnet)
        patch.delitem(sys.modules, name, raising=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(name)
        try:
            yield module
        finally:
            package = sys.modules.get("torchray.attribution")
            if package is not None and getattr(package, "excitation_backprop", None) is module:
                delattr(package, "excitation_backprop")
