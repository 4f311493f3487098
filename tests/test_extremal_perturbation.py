"""xaifast.attribution.extremal_perturbation: TorchRay's numbers, batches, side effects, bad input.

About the TorchRay comparisons. TorchRay's area regulariser sorts each mask, and the mask has
large groups of equal values (the parameters start at 1 and the mask weights repeat every
``step`` pixels); which of the equal values at the area threshold are compared with 1 decides
their gradient. torch's default CPU sort orders equal values arbitrarily, so the oracle here
is TorchRay with a stable sort, the order xaifast follows (and a CUDA sort's). For the same
reason, the run is chaotic: one-ulp differences in the mask (a different summation order in
the fused mask op; or TorchRay itself on a CPU without AVX) flip which nearly equal values
fall above the threshold, and grow to ~1e-3 after 20 iterations at 224 x 224. So:

* ``test_loop_matches_torchray`` runs TorchRay's loop with xaifast's mask op in its
  ``MaskGenerator`` (everything else TorchRay's: pyramid, lookup, jitter, rewards, regulariser,
  SGD, clamping, history, resizing, smoothing) and must agree to 1e-5 over 20 iterations;
* ``test_short_run_matches_torchray`` runs TorchRay as it is (stable sort) for 3 iterations;
* tests/test_extremal_ops.py compares the mask op itself with TorchRay's, forward and backward.
"""

import sys
import warnings

import pytest
import torch
import torch.nn as nn

from xaifast.attribution import extremal_perturbation as ep
from xaifast.ops.extremal import smooth_mask

_SORT = torch.Tensor.sort


def _stable_sort(self, dim=-1, descending=False, stable=True):
    return _SORT(self, dim=dim, descending=descending, stable=True)


@pytest.fixture
def torchray_ep(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = pytest.importorskip("torchray.attribution.extremal_perturbation")
    monkeypatch.setattr(torch.Tensor, "sort", _stable_sort)
    return module


@pytest.fixture
def same_mask_op(torchray_ep, monkeypatch):
    def generate(self, mask_in):
        return smooth_mask(mask_in, tuple(self.shape), self.step, self.sigma, self.clamp, self.pooling_method)

    monkeypatch.setattr(torchray_ep.MaskGenerator, "generate", generate)
    return torchray_ep


class _Model(nn.Module):
    """A tiny seeded classifier: 5 scores, or 5 score maps with ``spatial``."""

    def __init__(self, spatial=False):
        super().__init__()
        torch.manual_seed(0)
        self.spatial = spatial
        self.features = nn.Conv2d(3, 4, 5, stride=2)
        self.classifier = nn.Linear(4, 5)
        self.score_maps = nn.Conv2d(4, 5, 3, stride=3)

    def forward(self, x):
        h = torch.relu(self.features(x))
        return self.score_maps(h) if self.spatial else self.classifier(h.mean((2, 3)))


def _image(size=32, batch=1, seed=1, dtype=torch.float32):
    height, width = size if isinstance(size, tuple) else (size, size)
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _run_both(torchray_ep, config, max_iter):
    config = dict(config)
    size = config.pop("size", 32)
    spatial = config.pop("spatial", False)
    reward = config.pop("reward", "simple_reward")
    config.setdefault("step", 3)
    config.setdefault("sigma", 6)
    x = _image(size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = torchray_ep.extremal_perturbation(_Model(spatial), x, 2, max_iter=max_iter,
                                                     reward_func=getattr(torchray_ep, reward), **config)
    out = ep.extremal_perturbation(_Model(spatial), x, 2, max_iter=max_iter, reward_func=getattr(ep, reward), **config)
    return out, expected


LOOP_CONFIGS = [
    dict(variant="preserve", perturbation="blur", areas=[0.1, 0.3]),
    dict(variant="delete", perturbation="blur", areas=[0.2], jitter=False),
    dict(variant="dual", perturbation="blur", areas=[0.05, 0.5]),
    dict(variant="preserve", perturbation="fade", areas=0.25),
    dict(variant="delete", perturbation="fade", areas=[0.1, 0.6, 0.9]),
    dict(variant="dual", perturbation="fade", areas=[0.3], jitter=False),
    dict(reward="contrastive_reward", areas=[0.1, 0.4]),  # its broadcasting shows in hist
    dict(reward="contrastive_reward", variant="dual", areas=[0.2, 0.3], spatial=True),
    dict(spatial=True, variant="delete", areas=[0.1, 0.2]),
    dict(resize=True, smooth=0.02, areas=[0.15]),
    dict(resize=(20, 16), areas=[0.1]),
    dict(size=48, num_levels=4, step=4, sigma=8, areas=[0.2]),
    dict(size=45, step=3, sigma=4.2, areas=[0.3]),  # non-integral sigma: weights not periodic
    dict(size=(36, 27), variant="dual", spatial=True, areas=[0.2, 0.45]),
]


@pytest.mark.parametrize("config", LOOP_CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_loop_matches_torchray(same_mask_op, config):
    (masks, hist), (expected_masks, expected_hist) = _run_both(same_mask_op, config, max_iter=20)
    assert masks.shape == expected_masks.shape and hist.shape == expected_hist.shape
    assert hist.device.type == "cpu" and hist.dtype == expected_hist.dtype
    torch.testing.assert_close(masks, expected_masks, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(hist, expected_hist, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("config", [
    dict(variant="preserve", perturbation="blur", areas=[0.1, 0.3]),
    dict(variant="delete", perturbation="fade", areas=[0.2]),
    dict(variant="dual", perturbation="blur", areas=[0.4], size=48, step=4, sigma=8),
    dict(reward="contrastive_reward", spatial=True, areas=[0.1, 0.2]),
], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_short_run_matches_torchray(torchray_ep, config):
    # One iteration against unmodified TorchRay. Past the first, Adam's normalised steps turn
    # float32 rounding (a last-bit change of TorchRay's own weights does it) into 2e-3 mask
    # differences by the second iteration: longer runs are compared with the same mask op
    # (test_loop_matches_torchray), whose outputs match TorchRay's generator to rounding.
    (masks, hist), (expected_masks, expected_hist) = _run_both(torchray_ep, config, max_iter=1)
    torch.testing.assert_close(masks, expected_masks, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(hist, expected_hist, rtol=1e-4, atol=1e-4)


def test_default_geometry_one_iteration_matches_torchray(torchray_ep):
    # 224 x 224 with TorchRay's step 7 and sigma 21: the mask returned is the first forward's.
    model = _Model()
    x = _image(224)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, expected_hist = torchray_ep.extremal_perturbation(model, x, 3, areas=[0.05, 0.2], max_iter=1)
    masks, hist = ep.extremal_perturbation(model, x, 3, areas=[0.05, 0.2], max_iter=1)
    torch.testing.assert_close(masks, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(hist, expected_hist, rtol=1e-6, atol=1e-4)


# ---------------------------------------------------------------- Perturbation, MaskGenerator, rewards

@pytest.mark.parametrize("type", ["blur", "fade"])
def test_perturbation_matches_torchray(torchray_ep, type):
    x = _image(24)
    expected = torchray_ep.Perturbation(x, num_levels=5, max_blur=7, type=type)
    ours = ep.Perturbation(x, num_levels=5, max_blur=7, type=type)
    assert (ours.type, ours.num_levels) == (expected.type, expected.num_levels)
    assert str(ours) == str(expected)
    torch.testing.assert_close(ours.pyramid, expected.pyramid, rtol=1e-6, atol=1e-7)
    mask = torch.rand(3, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    a, b = mask.clone().requires_grad_(), mask.clone().requires_grad_()
    out, reference = ours.apply(a), expected.apply(b)
    torch.testing.assert_close(out, reference, rtol=1e-6, atol=1e-7)
    out.sum().backward()
    reference.sum().backward()
    # Float32 rounding of the level differences: both are ~1.6e-6 from a float64 run where the
    # largest gradient is 5.4, so the absolute tolerance scales with the gradient.
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6 * float(b.grad.abs().max()))
    assert ours.to("meta").pyramid.device.type == "meta"  # really moved (TorchRay's to() is a no-op)


def test_perturbation_of_a_batch():
    x = _image(20, batch=2)
    batch = ep.Perturbation(x, num_levels=4)
    assert batch.pyramid.shape == (2, 4, 3, 20, 20)
    masks = torch.rand(6, 1, 20, 20, generator=torch.Generator().manual_seed(3))
    out = batch.apply(masks)  # 3 masks per image
    for i in range(2):
        single = ep.Perturbation(x[i:i + 1], num_levels=4)
        torch.testing.assert_close(out[3 * i:3 * i + 3], single.apply(masks[3 * i:3 * i + 3]))
    with pytest.raises(ValueError, match="mask"):
        batch.apply(masks[:5])


@pytest.mark.parametrize("kwargs,match", [
    (dict(num_levels=1), "num_levels"),
    (dict(max_blur=-1), "max_blur"),
    (dict(type="noise"), "type"),
    (dict(input=torch.rand(3, 8, 8)), "input"),
])
def test_perturbation_bad_arguments(kwargs, match):
    arguments = dict(input=torch.rand(1, 3, 8, 8))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ep.Perturbation(**arguments)


@pytest.mark.parametrize("pooling_method", ["softmax", "sum", "sigmoid"])
def test_mask_generator_matches_torchray(torchray_ep, pooling_method):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = torchray_ep.MaskGenerator((30, 26), 3, 5.5, pooling_method=pooling_method)
    ours = ep.MaskGenerator((30, 26), 3, 5.5, pooling_method=pooling_method)
    for name in ("shape", "step", "sigma", "coldness", "clamp", "pooling_method", "margin", "padding", "radius",
                 "shape_in", "shape_mid", "shape_up", "shape_out"):
        assert getattr(ours, name) == getattr(expected, name), name
    torch.testing.assert_close(ours.weight, expected.weight, rtol=1e-6, atol=0)
    z = torch.linspace(0, 3, 13)
    torch.testing.assert_close(ours.kernel(z), expected.kernel(z))
    params = torch.rand(2, 1, *ours.shape_in, generator=torch.Generator().manual_seed(4))
    for got, want in zip(ours.generate(params), expected.generate(params)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    # A changed coldness (TorchRay's inf branches included) and an assigned weight are honoured.
    for coldness in (5, float("inf")):
        ours.coldness = expected.coldness = coldness
        torch.testing.assert_close(ours.generate(params)[1], expected.generate(params)[1], rtol=1e-6, atol=1e-6)
    ours.coldness = expected.coldness = 20
    ours.weight = expected.weight = expected.weight * 0.5
    torch.testing.assert_close(ours.generate(params)[1], expected.generate(params)[1], rtol=1e-6, atol=1e-6)
    assert ours.to("cpu") is ours


def test_mask_generator_bad_arguments():
    with pytest.raises(ValueError, match="pooling_method"):
        ep.MaskGenerator((8, 8), 2, 2, pooling_method="max")
    with pytest.raises(ValueError, match="sigma"):
        ep.MaskGenerator((8, 8), 2, 0)
    with pytest.raises(ValueError, match="step"):
        ep.MaskGenerator((8, 8), 0, 2)
    with pytest.raises(ValueError, match="shape"):
        ep.MaskGenerator((8,), 2, 2)


@pytest.mark.parametrize("variant", ["preserve", "delete", "dual"])
@pytest.mark.parametrize("reward", ["simple_reward", "contrastive_reward"])
@pytest.mark.parametrize("shape", [(4, 6), (4, 6, 3, 2)], ids=["2d", "4d"])
def test_rewards_match_torchray(torchray_ep, variant, reward, shape):
    activation = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    expected = getattr(torchray_ep, reward)(activation, 2, variant)
    out = getattr(ep, reward)(activation, 2, variant)
    assert out.shape == expected.shape  # (N, N, ...) for contrastive_reward, as TorchRay
    torch.testing.assert_close(out, expected)


def test_reward_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        ep.simple_reward(torch.rand(2, 3), 1, "keep")
    with pytest.raises(ValueError, match="target"):
        ep.contrastive_reward(torch.rand(2, 3), 3, "preserve")
    with pytest.raises(ValueError, match="activation"):
        ep.simple_reward(torch.rand(2), 0, "preserve")


def test_constants_and_names():
    assert (ep.BLUR_PERTURBATION, ep.FADE_PERTURBATION) == ("blur", "fade")
    assert (ep.PRESERVE_VARIANT, ep.DELETE_VARIANT, ep.DUAL_VARIANT) == ("preserve", "delete", "dual")
    assert set(ep.__all__) == {"extremal_perturbation", "Perturbation", "simple_reward", "contrastive_reward",
                               "BLUR_PERTURBATION", "FADE_PERTURBATION", "PRESERVE_VARIANT", "DELETE_VARIANT",
                               "DUAL_VARIANT"}


# ---------------------------------------------------------------- batches, side effects, options

@pytest.mark.parametrize("variant", ["preserve", "dual"])
def test_batch_equals_separate_runs(variant):
    model = _Model()
    x = _image(32, batch=2)
    kwargs = dict(areas=[0.1, 0.3], max_iter=15, step=3, sigma=6, variant=variant)
    masks, hist = ep.extremal_perturbation(model, x, [2, 4], **kwargs)
    first, first_hist = ep.extremal_perturbation(model, x[:1], 2, **kwargs)
    second, second_hist = ep.extremal_perturbation(model, x[1:], torch.tensor([4]), **kwargs)
    assert masks.shape == (4, 1, 32, 32) and hist.shape == (4, 2, 15)
    torch.testing.assert_close(masks, torch.cat([first, second]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hist, torch.cat([first_hist, second_hist]), rtol=1e-5, atol=1e-5)


def test_requires_grad_restored_and_rng_untouched():
    model = _Model()
    model.features.bias.requires_grad_(False)
    model.train()
    before = [p.requires_grad for p in model.parameters()]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    ep.extremal_perturbation(model, _image(32), 1, max_iter=2, step=3, sigma=6)
    assert torch.equal(torch.get_rng_state(), state)
    assert [p.requires_grad for p in model.parameters()] == before
    assert model.training  # the mode is left alone, as TorchRay does
    with pytest.raises(ValueError, match="target"):  # raised after the first forward pass
        ep.extremal_perturbation(model, _image(32), 9, max_iter=2, step=3, sigma=6)
    assert [p.requires_grad for p in model.parameters()] == before


def test_returned_mask_is_the_last_forward():
    model = _Model()
    masks, _ = ep.extremal_perturbation(model, _image(32), 1, areas=[0.2, 0.4], max_iter=1, step=3, sigma=6)
    expected = smooth_mask(torch.ones(2, 1, 11, 11), (32, 32), 3, 6)[0]
    assert torch.equal(masks, expected) and not masks.requires_grad


def test_float64_input():
    masks, hist = ep.extremal_perturbation(_Model().double(), _image(32, dtype=torch.float64), 1, max_iter=3,
                                           step=3, sigma=6)
    assert masks.dtype == torch.float64 and hist.dtype == torch.float64


def test_print_iter_and_debug_print_as_torchray(same_mask_op, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kwargs = dict(areas=[0.1, 0.2], max_iter=4, step=3, sigma=6, print_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same_mask_op.extremal_perturbation(_Model(), _image(32), 2, **kwargs)
        expected = capsys.readouterr().out
        ep.extremal_perturbation(_Model(), _image(32), 2, **kwargs)
        assert capsys.readouterr().out == expected
        assert expected.count("[area:0.10 loss:") == 2
        plt.close("all")
        same_mask_op.extremal_perturbation(_Model(), _image(32), 2, debug=True, variant="dual", **kwargs)
        expected = capsys.readouterr().out
        ep.extremal_perturbation(_Model(), _image(32), 2, debug=True, variant="dual", **kwargs)
        assert capsys.readouterr().out == expected
        assert plt.get_fignums() == [0, 1]
        plt.close("all")
        # Without matplotlib, debug still prints and skips the figures.
        monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
        ep.extremal_perturbation(_Model(), _image(32), 2, debug=True, **kwargs)
    printed = capsys.readouterr().out
    assert printed.startswith("extremal_perturbation:") and printed.count("[0004/0004]") == 1
    assert plt.get_fignums() == []


def test_progress_bar(capsys):
    ep.extremal_perturbation(_Model(), _image(32), 2, max_iter=3, step=3, sigma=6, progress=True)
    assert "3/3" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs,match", [
    (dict(input=torch.rand(3, 32, 32)), "input"),
    (dict(input=torch.rand(1, 1, 3, 32, 32)), "input"),
    (dict(areas=[0.0]), "areas"),
    (dict(areas=1.0), "areas"),
    (dict(areas=[0.2, 1.5]), "areas"),
    (dict(areas=[]), "areas"),
    (dict(variant="keep"), "variant"),
    (dict(perturbation="noise"), "perturbation"),
    (dict(target=5), "target"),
    (dict(target=-1), "target"),
    (dict(target=[1, 2]), "target"),
    (dict(target=1.5), "target"),
    (dict(max_iter=0), "max_iter"),
    (dict(num_levels=1), "num_levels"),
    (dict(step=4, sigma=5.5, input=torch.rand(1, 3, 36, 36)), "step"),
    (dict(sigma=-1), "sigma"),
    (dict(smooth=-0.1), "smooth"),
    (dict(resize_mode="cubic"), "resize_mode"),
])
def test_bad_arguments(kwargs, match):
    arguments = dict(model=_Model(), input=_image(32), target=1, max_iter=2, step=3, sigma=6)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ep.extremal_perturbation(**arguments)


def test_momentum_step_is_torch_sgd(monkeypatch):
    """The loop's own momentum step gives the same bits as TorchRay's optim.SGD."""
    x, model = _image(32), _Model(False)
    run = dict(areas=[0.1, 0.3], max_iter=25, step=3, sigma=6)
    masks, hist = ep.extremal_perturbation(model, x, 2, **run)

    class TorchSGD:
        def __init__(self, parameter):
            self.sgd = torch.optim.SGD([parameter], lr=0.01, momentum=0.9, dampening=0.9)

        def step(self):
            self.sgd.step()

    monkeypatch.setattr(ep, "_MomentumStep", TorchSGD)
    expected_masks, expected_hist = ep.extremal_perturbation(model, x, 2, **run)
    assert torch.equal(masks, expected_masks)
    assert torch.equal(hist, expected_hist)


@pytest.mark.parametrize("config", [
    dict(variant="preserve", areas=[0.1, 0.3]),
    dict(variant="delete", perturbation="fade", areas=[0.2], jitter=False),
    dict(variant="dual", areas=[0.05, 0.5]),
    dict(reward="contrastive_reward", variant="dual", areas=[0.2, 0.3], spatial=True),
    dict(batch=2, variant="dual", areas=[0.2, 0.4]),
    dict(batch=3, areas=[0.3]),
    dict(size=45, step=3, sigma=4.2, areas=[0.3]),  # weights not periodic (full planes)
    dict(size=(37, 23), step=4, sigma=8, variant="delete", batch=3, areas=[0.2]),
    dict(dtype=torch.float64, areas=[0.25]),
], ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_direct_gradients_equal_autograd(monkeypatch, config):
    """The loop's direct gradient (mask generator, clamp, crop, flip, lookup and area loss
    differentiated by their backward ops) gives autograd's bits over 30 iterations."""
    config = dict(config)
    x = _image(config.pop("size", 32), batch=config.pop("batch", 1), dtype=config.pop("dtype", torch.float32))
    model = _Model(config.pop("spatial", False)).to(x.dtype)
    reward = getattr(ep, config.pop("reward", "simple_reward"))
    run = dict(max_iter=30, step=config.pop("step", 3), sigma=config.pop("sigma", 6), reward_func=reward, **config)
    targets = [2, 4, 1][:x.shape[0]]
    masks, hist = ep.extremal_perturbation(model, x, targets, **run)
    monkeypatch.setattr(ep, "_DIRECT_GRADIENTS", False)
    expected_masks, expected_hist = ep.extremal_perturbation(model, x, targets, **run)
    assert torch.equal(masks, expected_masks)
    assert torch.equal(hist, expected_hist)


class _InPlaceModel(_Model):
    """Normalises its input in place, as some preprocessing wrappers do."""

    def forward(self, x):
        return super().forward(x.sub_(0.5).div_(0.25))


class _DetachedModel(_Model):
    def forward(self, x):
        return super().forward(x).detach()


@pytest.mark.parametrize("model_class", [_InPlaceModel, _DetachedModel])
def test_direct_gradients_with_unusual_models(monkeypatch, model_class):
    """A model that changes its input in place, or whose output carries no gradient, runs as in
    the autograd loop (and TorchRay), with the same results."""
    x = _image(32)
    run = dict(areas=[0.2], max_iter=6, step=3, sigma=6)
    masks, hist = ep.extremal_perturbation(model_class(False), x, 2, **run)
    monkeypatch.setattr(ep, "_DIRECT_GRADIENTS", False)
    expected_masks, expected_hist = ep.extremal_perturbation(model_class(False), x, 2, **run)
    assert torch.equal(masks, expected_masks) and torch.equal(hist, expected_hist)


@pytest.mark.parametrize("variant", ["preserve", "dual"])
@pytest.mark.parametrize("flip", [False, True])
def test_direct_gradient_through_the_clamp(variant, flip):
    """Parameters outside [0, 1] give masks outside it: the clamp runs, and its gradient (zero where
    the mask was clamped) matches autograd through the public ops."""
    from xaifast.attribution import _extremal_direct as direct_module
    from xaifast.attribution import _extremal_helpers as helpers
    from xaifast.ops.extremal import area_loss, blur_pyramid, mask_geometry, smooth_mask

    shape, step, sigma, areas = (32, 32), 3, 6, [0.1, 0.3]
    geometry = mask_geometry(shape, step, sigma)
    image = _image(32)
    pyramid = blur_pyramid(image, 8, 20)[0]
    flipped = torch.flip(pyramid, dims=(-1,))
    params = torch.rand(2, 1, *geometry.shape_in, generator=torch.Generator().manual_seed(3)) * 3 - 1
    model = _Model(False)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    direct = direct_module.DirectStep(geometry, pyramid, flipped, variant, 1, 2, areas, torch.float32)
    cropped, full = direct.masks(params)
    assert direct.clamped
    reward = model(direct.perturbed(cropped, flip))[:, 2]
    reward = reward[:2] - reward[2:] if variant == "dual" else reward
    direct.regulariser()
    got = direct.gradient(reward, 300.0)

    leaf = params.clone().requires_grad_()
    cropped2, full2 = smooth_mask(leaf, shape, step, sigma)
    mask = torch.flip(cropped2, dims=(3,)) if flip else cropped2
    reward2 = model(helpers.perturbed(flipped if flip else pyramid, mask, variant, 1, 2))[:, 2]
    reward2 = reward2[:2] - reward2[2:] if variant == "dual" else reward2
    energy = (reward2 + -area_loss(full2, areas) * 300.0).sum()  # as the loop forms it
    (-energy).backward()
    assert torch.equal(full, full2.detach())
    assert torch.equal(got, leaf.grad)
