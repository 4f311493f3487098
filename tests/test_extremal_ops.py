"""Extremal-perturbation ops: blur_pyramid, pyramid_lookup, smooth_mask, area_loss.

Each op against TorchRay's own arithmetic (where TorchRay is installed), against the literal
reference formulation, and for gradients, batches and bad arguments.
"""

import warnings

import pytest
import torch

import xaifast.reference.extremal as reference
from xaifast.ops.extremal import area_loss, blur_pyramid, mask_geometry, pyramid_lookup, smooth_mask
from conftest import requires_ext

# (shape, step, sigma): regular and periodic; non-integral sigma (periodic or not); a step
# whose float32 cell index is not u // step (the literal formulation runs); a tiny image.
GEOMETRIES = [
    ((32, 32), 3, 6),
    ((48, 40), 4, 8.5),
    ((45, 45), 3, 4.2),
    ((80, 80), 41, 3),
    ((9, 13), 2, 1),
]


def _torchray():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("torchray.attribution.extremal_perturbation")


def _generator(torchray_ep, shape, step, sigma, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.meshgrid without indexing=
        return torchray_ep.MaskGenerator(shape, step, sigma, **kwargs)


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------- blur_pyramid

@pytest.mark.parametrize("type", ["blur", "fade"])
@pytest.mark.parametrize("num_levels,max_blur", [(8, 20), (3, 5.5), (2, 1)])
def test_pyramid_matches_torchray(type, num_levels, max_blur):
    torchray_ep = _torchray()
    image = _rand(1, 3, 30, 26)
    expected = torchray_ep.Perturbation(image, num_levels=num_levels, max_blur=max_blur, type=type).pyramid
    out = blur_pyramid(image, num_levels, max_blur, type)
    assert out.shape == (1, num_levels, 3, 30, 26)
    torch.testing.assert_close(out[0], expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(out, reference.blur_pyramid(image, num_levels, max_blur, type), rtol=1e-6, atol=1e-7)


def test_pyramid_levels_and_batch():
    images = _rand(3, 2, 20, 20, dtype=torch.float64)
    pyramid = blur_pyramid(images, 4, 6.0, "blur")
    assert pyramid.shape == (3, 4, 2, 20, 20) and pyramid.dtype == torch.float64
    torch.testing.assert_close(pyramid[:, -1], images)  # the last level is the image
    torch.testing.assert_close(pyramid[1:2], blur_pyramid(images[1:2], 4, 6.0, "blur"))
    assert reference.level_sigmas(8, 20)[0] == 20 and reference.level_sigmas(8, 20)[-1] == 0
    fade = blur_pyramid(images, 5, 20, "fade")
    torch.testing.assert_close(fade[:, 2], images * 0.5)
    torch.testing.assert_close(fade[:, 0], torch.zeros_like(images))


@pytest.mark.parametrize("kwargs,match", [
    (dict(input=torch.rand(3, 8, 8)), "input"),
    (dict(num_levels=1), "num_levels"),
    (dict(max_blur=0), "max_blur"),
    (dict(type="noise"), "type"),
])
def test_pyramid_bad_arguments(kwargs, match):
    arguments = dict(input=torch.rand(1, 3, 8, 8), num_levels=4, max_blur=5, type="blur")
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        blur_pyramid(**arguments)


# ---------------------------------------------------------------- pyramid_lookup

@pytest.mark.parametrize("num_levels", [8, 2, 5])
def test_lookup_matches_torchray(num_levels):
    torchray_ep = _torchray()
    perturbation = torchray_ep.Perturbation(_rand(1, 3, 17, 19), num_levels=num_levels)
    mask = _rand(4, 1, 17, 19, seed=1)
    mask[0, 0, :3] = 1.0  # the top level (hi clamped to L - 1)
    mask[1, 0, :3] = 0.0
    mask[2, 0, :3] = torch.arange(3).clamp(max=num_levels - 1)[:, None] / (num_levels - 1)  # level boundaries
    a, b = mask.clone().requires_grad_(), mask.clone().requires_grad_()
    expected = perturbation.apply(a)
    out = pyramid_lookup(perturbation.pyramid, b)
    assert torch.equal(out, expected)
    grad = _rand(*out.shape, seed=2)
    expected.backward(grad)
    out.backward(grad)
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-6, atol=1e-7)


def test_lookup_per_mask_pyramid_and_saturation():
    pyramids = blur_pyramid(_rand(2, 3, 10, 12), 6, 4.0, "blur")  # (2, L, C, H, W)
    mask = _rand(2, 1, 10, 12, seed=3)
    out = pyramid_lookup(pyramids, mask)
    for k in range(2):
        torch.testing.assert_close(out[k:k + 1], pyramid_lookup(pyramids[k], mask[k:k + 1]))
    # Out of [0, 1]: the end levels, with zero gradient.
    outside = torch.tensor([-0.5, 1.5]).reshape(2, 1, 1, 1).expand(2, 1, 10, 12).clone().requires_grad_()
    result = pyramid_lookup(pyramids[0], outside)
    torch.testing.assert_close(result[0], pyramids[0, 0])
    torch.testing.assert_close(result[1], pyramids[0, -1])
    result.sum().backward()
    assert torch.count_nonzero(outside.grad) == 0


def test_lookup_gradcheck():
    pyramid = torch.randn(4, 2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # Away from level boundaries (where floor jumps) the lookup is smooth in the mask.
    mask = (torch.rand(3, 1, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.2
            + torch.tensor([0.05, 0.4, 0.72], dtype=torch.float64).reshape(3, 1, 1, 1)).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: pyramid_lookup(pyramid, m), (mask,))


@pytest.mark.parametrize("pyramid,mask,match", [
    (torch.rand(4, 3, 8, 8), torch.rand(2, 2, 8, 8), "mask"),
    (torch.rand(4, 3, 8, 8), torch.rand(2, 1, 8, 9), "mask"),
    (torch.rand(3, 8, 8), torch.rand(2, 1, 8, 8), "pyramid"),
    (torch.rand(3, 4, 3, 8, 8), torch.rand(2, 1, 8, 8), "pyramid"),
    (torch.rand(4, 3, 8, 8), torch.rand(2, 1, 8, 8, dtype=torch.float64), "mask"),
])
def test_lookup_bad_arguments(pyramid, mask, match):
    with pytest.raises(ValueError, match=match):
        pyramid_lookup(pyramid, mask)


# ---------------------------------------------------------------- smooth_mask

@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0][0]}x{g[0][1]}-{g[1]}-{g[2]}")
@pytest.mark.parametrize("pooling_method", ["softmax", "sum", "sigmoid"])
def test_smooth_mask_matches_torchray(geometry, pooling_method):
    torchray_ep = _torchray()
    shape, step, sigma = geometry
    generator = _generator(torchray_ep, shape, step, sigma, pooling_method=pooling_method)
    ours = mask_geometry(shape, step, sigma)
    for name in ("padding", "radius", "shape_in", "shape_mid", "shape_up", "shape_out"):
        assert getattr(ours, name) == getattr(generator, name), name
    torch.testing.assert_close(ours.full_weight("cpu", torch.float32), generator.weight[0], rtol=1e-6, atol=0)
    params = _rand(3, 1, *generator.shape_in, seed=4)
    a, b = params.clone().requires_grad_(), params.clone().requires_grad_()
    expected_cropped, expected_full = generator.generate(a)
    cropped, full = smooth_mask(b, shape, step, sigma, True, pooling_method)
    assert cropped.shape == expected_cropped.shape and full.shape == expected_full.shape
    # Both are ~4e-6 from float64 (test_smooth_mask_as_accurate_as_float32_reference); the
    # kernel's exps are unshifted and its weights scaled by the coldness, so their roundings differ.
    torch.testing.assert_close(full, expected_full, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cropped, expected_cropped, rtol=1e-5, atol=1e-5)
    grad = torch.randn(full.shape, generator=torch.Generator().manual_seed(5))
    (expected_full * grad).sum().backward()
    (full * grad).sum().backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-5 * a.grad.abs().max().item())


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0][0]}x{g[0][1]}-{g[1]}-{g[2]}")
def test_smooth_mask_as_accurate_as_float32_reference(geometry):
    """The float32 op, forward and backward, is as close to float64 arithmetic as the float32
    reference (TorchRay's algorithm) is: its unshifted exps, its table exp and its weights scaled
    by the coldness cost no accuracy."""
    shape, step, sigma = geometry
    params = _rand(3, 1, *mask_geometry(shape, step, sigma).shape_in, seed=4)
    grad = torch.randn(3, 1, *mask_geometry(shape, step, sigma).shape_out, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(5))
    results = {}
    for name, dtype, run in [
        ("exact", torch.float64, lambda p: smooth_mask(p, shape, step, sigma, False)[1]),
        ("op", torch.float32, lambda p: smooth_mask(p, shape, step, sigma, False)[1]),
        ("literal", torch.float32,
         lambda p: reference.smooth_mask_dense(p, mask_geometry(shape, step, sigma), clamp=False)[1]),
    ]:
        leaf = params.to(dtype).requires_grad_()
        full = run(leaf)
        full.backward(grad.to(dtype))
        results[name] = (full.detach().double(), leaf.grad.double())
    for index, floor in ((0, 1e-6), (1, 1e-6 * results["exact"][1].abs().max().item())):
        error = (results["op"][index] - results["exact"][index]).abs().max().item()
        literal_error = (results["literal"][index] - results["exact"][index]).abs().max().item()
        assert error <= max(1.5 * literal_error, floor), ("forward", "backward")[index]


def test_smooth_mask_unclamped_matches_torchray():
    torchray_ep = _torchray()
    generator = _generator(torchray_ep, (24, 24), 3, 5, clamp=False, pooling_method="sum")
    params = _rand(2, 1, 8, 8, seed=6) * 3
    expected = generator.generate(params)[1]
    out = smooth_mask(params, (24, 24), 3, 5, False, "sum")[1]
    assert out.max() > 1
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pooling_method", ["softmax", "sum", "sigmoid"])
@pytest.mark.parametrize("geometry", [((12, 10), 3, 2.5), ((11, 11), 4, 3)])
def test_smooth_mask_gradcheck(pooling_method, geometry):
    shape, step, sigma = geometry
    params = _rand(2, 1, *mask_geometry(shape, step, sigma).shape_in, seed=7, dtype=torch.float64)
    params.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: smooth_mask(p, shape, step, sigma, False, pooling_method)[1],
                                    (params,))


@pytest.mark.parametrize("pooling_method", ["softmax", "sum", "sigmoid"])
def test_banded_equals_literal_formulation(pooling_method, monkeypatch):
    shape, step, sigma = (40, 36), 4, 7
    geometry = mask_geometry(shape, step, sigma)
    params = _rand(2, 1, *geometry.shape_in, seed=8, dtype=torch.float64)
    # Small bands: several per mask, so the band bookkeeping is exercised.
    monkeypatch.setattr(reference, "_CHUNK_VALUES", 1 << 13)
    assert reference._band_rows(geometry) < geometry.shape_mid[0]
    a, b = params.clone().requires_grad_(), params.clone().requires_grad_()
    banded = reference.smooth_mask(a, shape, step, sigma, True, pooling_method)[1]
    literal = reference.smooth_mask_dense(b, geometry, True, pooling_method)[1]
    torch.testing.assert_close(banded, literal, rtol=1e-12, atol=1e-12)
    grad = torch.randn(banded.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    (banded * grad).sum().backward()
    (literal * grad).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10)


def test_smooth_mask_does_not_depend_on_the_batch():
    params = _rand(3, 1, 11, 11, seed=10)
    together = smooth_mask(params, (32, 32), 3, 6)[1]
    for k in range(3):
        assert torch.equal(together[k:k + 1], smooth_mask(params[k:k + 1], (32, 32), 3, 6)[1])


def test_mask_geometry_layout():
    geometry = mask_geometry((224, 224), 7, 21)
    assert geometry.shape_in == [32, 32] and geometry.shape_mid == [38, 38]
    assert geometry.shape_up == [266, 266] and geometry.shape_out == [260, 260]
    assert geometry.regular and geometry.periodic and geometry.crop == 21
    assert not mask_geometry((80, 80), 41, 3).regular  # float32 1/41 puts pixel 41 in cell 0
    assert not mask_geometry((45, 45), 3, 4.2).periodic


@pytest.mark.parametrize("kwargs,match", [
    (dict(mask_in=torch.rand(1, 1, 10, 11)), "mask_in"),
    (dict(mask_in=torch.rand(1, 2, 11, 11)), "mask_in"),
    (dict(shape=(32,)), "shape"),
    (dict(step=0), "step"),
    (dict(sigma=0), "sigma"),
    (dict(pooling_method="max"), "pooling_method"),
])
def test_smooth_mask_bad_arguments(kwargs, match):
    arguments = dict(mask_in=torch.rand(1, 1, 11, 11), shape=(32, 32), step=3, sigma=6)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        smooth_mask(**arguments)


# ---------------------------------------------------------------- area_loss

def _sorted_loss(mask, areas):
    """TorchRay's regulariser, with a stable sort (see area_loss's docstring on ties)."""
    rows = mask.reshape(mask.shape[0], -1)
    reference_rows = torch.ones_like(rows)
    for i, area in enumerate(areas):
        reference_rows[i, :int(rows.shape[1] * (1 - area))] = 0
    return ((torch.sort(rows, dim=1, stable=True)[0] - reference_rows) ** 2).mean(dim=1)


@pytest.mark.parametrize("case", ["random", "ties", "quantised", "constant"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_area_loss_equals_sort(case, dtype):
    generator = torch.Generator().manual_seed(11)
    mask = torch.rand(5, 1, 23, 29, generator=generator, dtype=dtype)
    if case == "ties":  # exact 0s and 1s, as the clamped masks have
        mask = mask.mul(1.6).sub(0.3).clamp(0, 1)
    elif case == "quantised":  # big tie groups at every threshold
        mask = (mask * 4).floor() / 4
    elif case == "constant":
        mask = torch.full_like(mask, 0.5)
    areas = [0.1, 0.5, 0.3, 0.999, 1e-4]
    a, b = mask.clone().requires_grad_(), mask.clone().requires_grad_()
    expected = _sorted_loss(a, areas)
    out = area_loss(b, areas)
    torch.testing.assert_close(out, expected, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)
    grad = torch.rand(5, generator=generator, dtype=dtype)
    expected.backward(grad)
    out.backward(grad)
    assert torch.equal(b.grad, a.grad)  # elementwise 2 (x - reference) / n: the same assignment


def test_area_loss_one_area_for_all_and_extremes():
    mask = _rand(3, 1, 10, 10, seed=12)
    torch.testing.assert_close(area_loss(mask, 0.2), _sorted_loss(mask, [0.2] * 3))
    torch.testing.assert_close(area_loss(mask, [0.2]), _sorted_loss(mask, [0.2] * 3))
    # An area so small that every value is compared with 0 (n (1 - area) rounds to n), and so
    # large that none is.
    torch.testing.assert_close(area_loss(mask, 1e-17), (mask.reshape(3, -1) ** 2).mean(1))
    torch.testing.assert_close(area_loss(mask, 1 - 1e-9), ((mask.reshape(3, -1) - 1) ** 2).mean(1))


@pytest.mark.parametrize("mask,area,match", [
    (torch.rand(2, 1, 4, 4), 0.0, "area"),
    (torch.rand(2, 1, 4, 4), 1.0, "area"),
    (torch.rand(2, 1, 4, 4), [0.1, 0.2, 0.3], "area"),
    (torch.rand(2, 1, 4, 4), [], "area"),
    (torch.rand(4), 0.1, "mask"),
])
def test_area_loss_bad_arguments(mask, area, match):
    with pytest.raises(ValueError, match=match):
        area_loss(mask, area)


@requires_ext
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("levels", [None, 5, 2], ids=["distinct", "5-levels", "2-levels"])
def test_area_targets_kernel_equals_reference(dtype, levels):
    generator = torch.Generator().manual_seed(7)
    rows = torch.rand(5, 997, generator=generator, dtype=dtype) * 2 - 0.5
    if levels is not None:  # many ties at the threshold
        rows = (rows * levels).round() / levels
    rows[1, :40] = 0.0
    rows[1, 40:80] = -0.0  # equal to 0.0, as in any sort
    rows[2, ::3] = float("inf")
    rows[3, ::5] = -float("inf")
    for zeros in ([0, 1, 498, 996, 997], [997, 500, 3, 0, 250], [10, 10, 10, 10, 10]):
        before = torch.get_num_threads()
        try:
            results = []
            for threads in (1, 2, 3):
                torch.set_num_threads(threads)
                results.append(torch.ops.xaifast.area_targets(rows, zeros))
        finally:
            torch.set_num_threads(before)
        expected = reference.area_targets(rows, zeros)
        for got in results:
            assert got.dtype == dtype and torch.equal(got, expected)


@requires_ext
def test_area_targets_nan_sorts_last_and_opcheck():
    rows = torch.tensor([[0.5, float("nan"), 0.1, float("nan"), 0.9]])
    # Stable ascending order: 0.1, 0.5, 0.9, nan (index 1), nan (index 3).
    assert torch.ops.xaifast.area_targets(rows, [3]).tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]]
    assert torch.ops.xaifast.area_targets(rows, [2]).tolist() == [[0.0, 1.0, 0.0, 1.0, 1.0]]
    torch.library.opcheck(torch.ops.xaifast.area_targets, (torch.rand(3, 50), [10, 0, 50]))
    with pytest.raises(ValueError, match="zeros must have one count per row"):
        torch.ops.xaifast.area_targets(torch.rand(3, 50), [1, 2])
    with pytest.raises(ValueError, match=r"zeros must lie in \[0, 50\]"):
        torch.ops.xaifast.area_targets(torch.rand(1, 50), [51])
    with pytest.raises(TypeError, match="float32 or float64"):
        torch.ops.xaifast.area_targets(torch.rand(1, 50).half(), [5])
