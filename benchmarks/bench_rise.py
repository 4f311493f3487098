"""RISE: the mask and upsample ops vs their references, and whole runs vs the reference path (TorchRay's algorithm).

The end-to-end cases use a model whose forward costs almost nothing (a linear layer on a 7 x 7
sample of the pixels), so what is measured is RISE's own overhead: masks and accumulation.
"""

import pytest
import torch
import torch.nn as nn

import xaifast.reference as reference
import xaifast.reference.rise as reference_rise
from xaifast.attribution.rise import rise, rise_class
from xaifast.ops import rise_masks, rise_upsample

try:
    import torchray.attribution.rise as torchray_rise
except Exception:  # optional oracle
    torchray_rise = None


class _CheapModel(nn.Module):
    """A model whose forward costs almost nothing: a linear layer on a 7 x 7 sample of pixels."""

    def __init__(self, classes):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 7 * 7, classes)

    def forward(self, x):
        return self.linear(x[:, :, ::32, ::32].flatten(1))


def _cheap_model(classes):
    return _CheapModel(classes).eval()


def _masks_args(n=32, size=224, cells=7):
    generator = torch.Generator().manual_seed(0)
    grid = (torch.rand(n, cells, cells, generator=generator) < 0.5).float()
    shifts = torch.randint(0, -(-size // cells), (n, 2), generator=generator)
    return grid, shifts, torch.rand(3, size, size, generator=generator)


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_mask(record, impl):
    record.group = "rise-masks-forward-cpu-32x224x224"
    grid, shifts, _ = _masks_args()
    fn = rise_masks if impl == "kernel" else reference.rise_masks
    out = record(fn, grid, shifts, 224, 224)
    torch.testing.assert_close(out, reference.rise_masks(grid, shifts, 224, 224))
    if record.stats is not None:  # None under --benchmark-disable
        record.extra_info["us_per_mask"] = record.stats.stats.median / 32 * 1e6


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_masked_batch(record, impl):
    record.group = "rise-masks-input-forward-cpu-32x3x224x224"
    grid, shifts, image = _masks_args()
    if impl == "kernel":
        out = record(rise_masks, grid, shifts, 224, 224, image)
    else:
        out = record(lambda: image[None] * reference.rise_masks(grid, shifts, 224, 224))
    torch.testing.assert_close(out, image[None] * reference.rise_masks(grid, shifts, 224, 224))


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_mask_forward_backward(record, impl):
    record.group = "rise-masks-fwd+bwd-cpu-32x224x224"
    grid, shifts, _ = _masks_args()
    weights = torch.rand(32, 1, 224, 224, generator=torch.Generator().manual_seed(3))
    fn = rise_masks if impl == "kernel" else reference.rise_masks

    def run(fn=fn, grid=grid.clone().requires_grad_(True)):
        grid.grad = None
        fn(grid, shifts, 224, 224).backward(weights)
        return grid.grad

    grad = record(run)
    torch.testing.assert_close(grad, run(reference.rise_masks), rtol=1e-5, atol=1e-4)


def _upsample_args(classes=100, size=224, cells=7):
    generator = torch.Generator().manual_seed(5)
    cell_h = -(-size // cells)
    return (torch.rand(cell_h, classes, cells, size, generator=generator),
            torch.rand(classes, size, size, generator=generator))


UPSAMPLE_SHAPE = "32x100x7x224-to-100x224x224"


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_upsample(record, impl):
    record.group = f"rise-upsample-forward-cpu-{UPSAMPLE_SHAPE}"
    partial, _ = _upsample_args()
    out = record(rise_upsample if impl == "kernel" else reference.rise_upsample, partial, 224)
    torch.testing.assert_close(out, reference.rise_upsample(partial, 224), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_upsample_forward_backward(record, impl):
    record.group = f"rise-upsample-fwd+bwd-cpu-{UPSAMPLE_SHAPE}"
    partial, weights = _upsample_args()
    fn = rise_upsample if impl == "kernel" else reference.rise_upsample

    def run(fn=fn, partial=partial.clone().requires_grad_(True)):
        partial.grad = None
        fn(partial, 224).backward(weights)
        return partial.grad

    grad = record(run)
    torch.testing.assert_close(grad, run(reference.rise_upsample), rtol=1e-5, atol=1e-4)


CASES = {"C1000-N1024": (1000, 1024), "C10-N1024": (10, 1024)}
IMPLS = ["xaifast", "reference"] + (["torchray"] if torchray_rise is not None else [])


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("impl", IMPLS)
def test_rise_end_to_end(record, impl, case):
    classes, masks = CASES[case]
    record.group = f"rise-e2e-cpu-224-{case}"
    model = _cheap_model(classes)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    fn = {"xaifast": rise, "reference": reference_rise.rise,
          "torchray": torchray_rise.rise if torchray_rise else None}[impl]
    out = record.pedantic(fn, args=(model, x), kwargs=dict(num_masks=masks), rounds=5, iterations=1, warmup_rounds=1)
    if impl != "reference":
        expected = reference_rise.rise(model, x, num_masks=64)
        check = fn(model, x, num_masks=64)
        torch.testing.assert_close(check, expected, rtol=1e-5, atol=1e-6)
    assert out.shape == (1, classes, 224, 224)


@pytest.mark.parametrize("impl", IMPLS)
def test_rise_class_end_to_end(record, impl):
    record.group = "rise-class-e2e-cpu-224-C1000-N1024"
    model = _cheap_model(1000)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    if impl == "xaifast":
        fn = lambda: rise_class(model, x, target=[7], num_masks=1024)  # noqa: E731
    elif impl == "torchray":
        fn = lambda: torchray_rise.rise_class(model, x, target=[7], num_masks=1024)  # noqa: E731
    else:
        fn = lambda: reference_rise.rise(model, x, num_masks=1024)[:, 7:8]  # noqa: E731
    out = record.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
    assert out.shape == (1, 1, 224, 224)


def _small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(128, 100)).eval()


@pytest.mark.parametrize("impl", ["float32", "channels_last", "bf16-autocast"])
def test_rise_precision_options(record, impl):
    record.group = "rise-options-cpu-smallcnn-224-C100-N256"
    model = _small_cnn()
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    kwargs = dict(num_masks=256, channels_last=impl == "channels_last", autocast=impl == "bf16-autocast")
    out = record.pedantic(rise, args=(model, x), kwargs=kwargs, rounds=5, iterations=1, warmup_rounds=1)
    base = rise(model, x, num_masks=256)
    record.extra_info["correlation_with_float32"] = float(torch.corrcoef(torch.stack([out.flatten(),
                                                                                      base.flatten()]))[0, 1])
