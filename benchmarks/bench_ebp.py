"""Excitation backprop: whole runs on a small VGG-like CNN (batch 4 at 224 x 224), xaifast vs
TorchRay, and the two compiled ops (``ebp_normalize``, ``ebp_product``) vs their references.

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

import xaifast.reference as reference
from xaifast.attribution.excitation_backprop import contrastive_excitation_backprop, excitation_backprop
from xaifast.ops import ebp_normalize, ebp_product


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


def _inputs(layout="nchw"):
    x = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    if layout == "nhwc":  # a channels-last batch: every layer, both methods' included, keeps that layout
        x = x.contiguous(memory_format=torch.channels_last)
    return x, [3, 17, 42, 99]


LAYOUTS = ["nchw", "nhwc"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_excitation_backprop(record, impl, layout):
    record.group = "ebp-e2e-cpu-vgglike-4x3x224x224" + ("" if layout == "nchw" else "-channels-last")
    model, (x, target) = _vgg_like(), _inputs(layout)
    fn = excitation_backprop if impl == "xaifast" else TORCHRAY.excitation_backprop
    out = record.pedantic(fn, args=(model, x, target), kwargs=dict(saliency_layer="3"), rounds=5, iterations=1)
    if TORCHRAY is not None:
        expected = TORCHRAY.excitation_backprop(model, x, target, saliency_layer="3")
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("impl", IMPLS)
def test_contrastive_excitation_backprop(record, impl, layout):
    record.group = "ebp-contrastive-e2e-cpu-vgglike-4x3x224x224" + ("" if layout == "nchw" else "-channels-last")
    model, (x, target) = _vgg_like(), _inputs(layout)
    fn = contrastive_excitation_backprop if impl == "xaifast" else TORCHRAY.contrastive_excitation_backprop
    kwargs = dict(saliency_layer="3", contrast_layer="13")
    out = record.pedantic(fn, args=(model, x, target), kwargs=kwargs, rounds=5, iterations=1)
    if TORCHRAY is not None:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        expected = TORCHRAY.contrastive_excitation_backprop(model, x, target, **kwargs)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-8)


# Op level: the fused elementwise kernels vs their references (xaifast.reference.excitation), on
# an activation the size of a VGG block's (4 x 64 x 112 x 112, 3.2 M values).
OP_SHAPE = (4, 64, 112, 112)
OP_SIZE = "x".join(map(str, OP_SHAPE))
OPS = {"normalize": (ebp_normalize, reference.ebp_normalize), "product": (ebp_product, reference.ebp_product)}


def _op_inputs():
    generator = torch.Generator().manual_seed(4)
    first = torch.rand(OP_SHAPE, generator=generator)
    second = torch.rand(OP_SHAPE, generator=generator) + 0.1  # a positive response, as W+ gives
    return first, second, torch.rand(OP_SHAPE, generator=generator)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_op_forward(record, impl, op):
    record.group = f"ebp-{op}-forward-cpu-{OP_SIZE}"
    kernel, spec = OPS[op]
    first, second, _ = _op_inputs()
    out = record(kernel if impl == "kernel" else spec, first, second)
    torch.testing.assert_close(out, spec(first, second), rtol=1e-6, atol=0)


def _op_forward_backward(fn, first, second, weights):
    first, second = first.clone().requires_grad_(True), second.clone().requires_grad_(True)

    def run():
        first.grad = second.grad = None
        fn(first, second).backward(weights)
        return first.grad, second.grad

    return run


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_op_forward_backward(record, impl, op):
    record.group = f"ebp-{op}-fwd+bwd-cpu-{OP_SIZE}"
    kernel, spec = OPS[op]
    first, second, weights = _op_inputs()
    grads = record(_op_forward_backward(kernel if impl == "kernel" else spec, first, second, weights))
    expected = _op_forward_backward(spec, first, second, weights)()
    for got, wanted in zip(grads, expected):
        torch.testing.assert_close(got, wanted, rtol=1e-5, atol=1e-6)
