"""xaifast.attribution.rise: TorchRay's numbers, batches, RNG hygiene, options, bad input."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from xaifast.attribution.rise import rise, rise_class


def _model(classes=10, seed=0, spatial_output=False):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(3, 6, 5, stride=3), nn.ReLU(), nn.AdaptiveAvgPool2d(1)]
    if not spatial_output:
        layers += [nn.Flatten(), nn.Linear(6, classes)]
    else:
        layers += [nn.Conv2d(6, classes, 1)]
    return nn.Sequential(*layers).eval()


def _torchray():
    return pytest.importorskip("torchray.attribution.rise")


@pytest.mark.parametrize("shape,kwargs", [
    ((1, 3, 40, 40), dict(num_masks=50, num_cells=5, batch_size=16)),
    ((2, 3, 45, 37), dict(num_masks=70, num_cells=7, batch_size=32, p=0.3, seed=5)),
    ((3, 3, 30, 30), dict(num_masks=33, num_cells=2, batch_size=8, seed=11)),
    ((1, 3, 24, 40), dict(num_masks=20, num_cells=3, batch_size=20, resize=(20, 12))),
])
def test_rise_matches_torchray(shape, kwargs):
    torchray_rise = _torchray()
    model = _model()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    expected = torchray_rise.rise(model, x, **kwargs)
    out = rise(model, x, **kwargs)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_rise_class_matches_torchray_and_rise():
    torchray_rise = _torchray()
    model = _model(classes=7)
    x = torch.rand(3, 3, 36, 36, generator=torch.Generator().manual_seed(2))
    target = [6, 0, 3]
    expected = torchray_rise.rise_class(model, x, target=target, num_masks=40, num_cells=4)
    out = rise_class(model, x, target=target, num_masks=40, num_cells=4)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    full = rise(model, x, num_masks=40, num_cells=4)
    torch.testing.assert_close(out, full[torch.arange(3), target][:, None], rtol=1e-5, atol=1e-6)


def test_spatial_scores_and_filter_masks_match_torchray():
    torchray_rise = _torchray()
    model = _model(spatial_output=True)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    masks = torch.rand(24, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    for kwargs in (dict(num_masks=24, num_cells=4, batch_size=10), dict(num_masks=24, filter_masks=masks, batch_size=10)):
        torch.testing.assert_close(rise(model, x, **kwargs), torchray_rise.rise(model, x, **kwargs), rtol=1e-5,
                                   atol=1e-6)


def test_sigmoid_scores_by_hand():
    # A model whose score is the mean of the masked image: with an all-ones image, the saliency
    # of a pixel is sum_n sigmoid(mean(mask_n)) * mask_n / N; check against that sum directly.
    class MeanModel(nn.Module):
        def forward(self, x):
            return x.mean((1, 2, 3))[:, None]

    from xaifast.reference import rise_masks as reference_masks
    x = torch.ones(1, 1, 12, 12)
    out = rise(MeanModel(), x, num_masks=9, num_cells=3, batch_size=4, seed=7)
    generator = torch.Generator().manual_seed(7)
    total = torch.zeros(12, 12)
    for size in (4, 4, 1):
        grid = (torch.rand(size, 1, 3, 3, generator=generator) < 0.5).float()[:, 0]
        shifts = torch.stack([torch.randint(0, 4, (size,), generator=generator),
                              torch.randint(0, 4, (size,), generator=generator)], 1)
        masks = reference_masks(grid, shifts, 12, 12)[:, 0]
        total += (torch.sigmoid(masks.mean((1, 2)))[:, None, None] * masks).sum(0)
    torch.testing.assert_close(out[0, 0], total / 9)


def test_batch_equals_single_images():
    model = _model()
    x = torch.rand(3, 3, 33, 29, generator=torch.Generator().manual_seed(5))
    batch = rise(model, x, num_masks=40, num_cells=4)
    for i in range(3):
        torch.testing.assert_close(batch[i:i + 1], rise(model, x[i:i + 1], num_masks=40, num_cells=4))


def test_global_rng_untouched_and_deterministic_across_threads():
    model = _model()
    x = torch.rand(1, 3, 32, 32)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(rise(model, x, num_masks=30, num_cells=4, seed=9))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(results[0], results[1])
    assert not torch.equal(results[0], rise(model, x, num_masks=30, num_cells=4, seed=10))


def test_float64_input():
    model = _model().double()
    x = torch.rand(1, 3, 30, 30, dtype=torch.float64)
    out = rise(model, x, num_masks=20, num_cells=3)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), rise(model.float(), x.float(), num_masks=20, num_cells=3), rtol=1e-4,
                               atol=1e-5)


def test_options_progress_autocast_channels_last(capsys):
    model = _model()
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(6))
    base = rise(model, x, num_masks=64, num_cells=5)
    torch.testing.assert_close(rise(model, x, num_masks=64, num_cells=5, channels_last=True), base)
    fast = rise(model, x, num_masks=64, num_cells=5, autocast=True)
    correlation = torch.corrcoef(torch.stack([fast.flatten(), base.flatten()]))[0, 1]
    assert correlation > 0.99
    out = rise(model, x, num_masks=64, num_cells=5, progress=True)
    torch.testing.assert_close(out, base)
    assert "rise" in capsys.readouterr().err


def test_reference_path_when_extension_disabled():
    code = ("import torch, torch.nn as nn\n"
            "from xaifast.attribution.rise import rise\n"
            "torch.manual_seed(0)\n"
            "model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()\n"
            "x = torch.rand(1, 3, 20, 20)\n"
            "torch.save(rise(model, x, num_masks=16, num_cells=4), sys.argv[1])\n")
    env = dict(os.environ, XAIFAST_DISABLE_EXT="1")
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "out.pt")
        subprocess.run([sys.executable, "-c", "import sys\n" + code, path], check=True, env=env)
        without = torch.load(path)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    x = torch.rand(1, 3, 20, 20)
    torch.testing.assert_close(rise(model, x, num_masks=16, num_cells=4), without, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(input=torch.rand(3, 20, 20)), ValueError, "input must be a 4-D"),
    (dict(input=[1.0]), TypeError, "input must be a torch.Tensor"),
    (dict(num_masks=0), ValueError, "num_masks must be >= 1"),
    (dict(num_masks=2.5), TypeError, "num_masks must be an int"),
    (dict(p=0.0), ValueError, "p must be a probability"),
    (dict(p=1.5), ValueError, "p must be a probability"),
    (dict(num_cells=0), ValueError, "num_cells must be >= 1"),
    (dict(num_cells=21), ValueError, "num_cells must be at most"),
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(filter_masks=torch.rand(5, 1, 20, 20)), ValueError, "filter_masks must have shape"),
    (dict(resize_mode="cubic"), ValueError, "resize_mode must be one of"),
])
def test_rise_bad_input(kwargs, error, match):
    args = dict(model=_model(), input=torch.rand(1, 3, 20, 20), num_masks=8)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        rise(**args)


def test_rise_class_bad_target_and_model_output():
    model = _model(classes=4)
    x = torch.rand(2, 3, 20, 20)
    with pytest.raises(ValueError, match="target 4 is out of range"):
        rise_class(model, x, target=[1, 4], num_masks=8)
    with pytest.raises(ValueError, match="target must have one class per image"):
        rise_class(model, x, target=[1, 2, 3], num_masks=8)
    spatial = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="one score per class"):
        rise(spatial, x, num_masks=8)


@pytest.mark.parametrize("num_cells,batch_size", [(5, 16), (7, 7), (1, 10)])
def test_rise_matches_reference_path(num_cells, batch_size):
    # Runs without TorchRay: the reference path is TorchRay's algorithm step for step.
    from xaifast.reference.rise import rise as reference_rise
    model = _model()
    x = torch.rand(2, 3, 42, 38, generator=torch.Generator().manual_seed(8))
    expected = reference_rise(model, x, num_masks=45, num_cells=num_cells, batch_size=batch_size)
    torch.testing.assert_close(rise(model, x, num_masks=45, num_cells=num_cells, batch_size=batch_size), expected,
                               rtol=1e-5, atol=1e-6)


def test_reference_path_matches_torchray():
    torchray_rise = _torchray()
    from xaifast.reference.rise import rise as reference_rise
    model = _model()
    x = torch.rand(1, 3, 35, 35, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(reference_rise(model, x, num_masks=40, num_cells=6, batch_size=16),
                               torchray_rise.rise(model, x, num_masks=40, num_cells=6, batch_size=16))
