"""smooth_mask kernel (TorchRay's MaskGenerator.generate, fused) vs the literal reference.

Forward and backward over geometries (periodic weights, full weights, a mask smaller than one
cell), the three poolings, both dtypes and strided inputs; gradcheck, opcheck, compile, thread
counts and argument checks.
"""

import pytest
import torch

from xaifast.ops.extremal import mask_geometry, smooth_mask
from xaifast.reference import extremal as reference
from conftest import kernel_devices, requires_ext, tolerance

# (shape, step, sigma): TorchRay's default at 224 (periodic), odd sizes, non-integral sigma whose
# weights are not periodic (the kernel reads full planes), a single cell larger than the image.
GEOMETRIES = [((224, 224), 7, 21), ((33, 40), 3, 2.0), ((50, 37), 5, 7.3), ((20, 20), 41, 3.0), ((9, 13), 2, 1)]
POOLINGS = ["softmax", "sum", "sigmoid"]


def _params(geometry, masks, dtype, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(masks, 1, *geometry.shape_in, generator=generator, dtype=dtype).to(device)


def _assert_same_gradients(full, expected, a, b, dtype):
    """Backpropagate one random gradient through ``full`` (of ``a``) and ``expected`` (of ``b``)."""
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    full.backward(grad)
    expected.backward(grad)
    # float32: each parameter sums up to (2r+1)^2 * step^2 terms in another order than autograd.
    rtol, atol = (1e-4, 5e-5) if dtype == torch.float32 else (tolerance(dtype)["rtol"], tolerance(dtype)["atol"])
    torch.testing.assert_close(a.grad, b.grad, rtol=rtol, atol=atol * b.grad.abs().max().item())


def _kernel(params, geometry, pooling):
    weight = geometry.plane_weights(params.device, params.dtype)
    return torch.ops.xaifast.smooth_mask(params, weight, geometry.step, geometry.padding, pooling,
                                         reference.COLDNESS)


@requires_ext
@pytest.mark.parametrize("device", kernel_devices())
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("case", GEOMETRIES, ids=lambda g: f"{g[0][0]}x{g[0][1]}-{g[1]}-{g[2]}")
def test_kernel_matches_reference(device, dtype, pooling, case):
    geometry = mask_geometry(*case)
    assert geometry.regular
    masks = 1 if case[0] == (224, 224) else 3
    params = _params(geometry, masks, dtype, device)
    a, b = params.clone().requires_grad_(), params.clone().requires_grad_()
    full, stats = _kernel(a, geometry, pooling)
    expected = reference.smooth_mask_dense(b, geometry, clamp=False, pooling_method=pooling)[1]
    torch.testing.assert_close(full, expected, **tolerance(dtype))
    assert stats.shape == (masks, 2 if pooling == "softmax" else 0, *geometry.shape_out)
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=dtype).to(device)
    full.backward(grad)
    expected.backward(grad)
    # float32: each parameter sums up to (2r+1)^2 * step^2 terms in another order than autograd.
    rtol, atol = (1e-4, 5e-5) if dtype == torch.float32 else (tolerance(dtype)["rtol"], tolerance(dtype)["atol"])
    torch.testing.assert_close(a.grad, b.grad, rtol=rtol, atol=atol * b.grad.abs().max().item())


@requires_ext
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("case", GEOMETRIES[:3], ids=lambda g: f"{g[0][0]}x{g[0][1]}-{g[1]}-{g[2]}")
def test_zero_parameters(dtype, pooling, case):
    """Taps that read only zeros (the padding, parameters at 0 or -0) skip their exps in the
    kernel; results still match the reference, here with most parameters at zero."""
    geometry = mask_geometry(*case)
    params = _params(geometry, 2, dtype, "cpu", seed=3)
    params[params < 0.8] = 0.0
    params[0, 0, 0, 0] = -0.0
    params[1] = 0.0  # a mask of zeros only
    a, b = params.clone().requires_grad_(), params.clone().requires_grad_()
    full, _ = _kernel(a, geometry, pooling)
    expected = reference.smooth_mask_dense(b, geometry, clamp=False, pooling_method=pooling)[1]
    torch.testing.assert_close(full, expected, **tolerance(dtype))
    _assert_same_gradients(full, expected, a, b, dtype)


@requires_ext
@pytest.mark.parametrize("scale", [1.0, 5.0, 40.0])
def test_softmax_parameters_beyond_the_unit_interval(dtype, scale):
    """Parameters far outside [0, 1] (where the exps' arguments can fall below -87 and the kernel
    keeps its exp's lower clamp) still match the reference."""
    geometry = mask_geometry((33, 40), 3, 2.0)
    params = (_params(geometry, 2, dtype, "cpu", seed=5) * 2 - 0.5) * scale
    a, b = params.clone().requires_grad_(), params.clone().requires_grad_()
    full, _ = _kernel(a, geometry, "softmax")
    expected = reference.smooth_mask_dense(b, geometry, clamp=False, pooling_method="softmax")[1]
    torch.testing.assert_close(full, expected, **tolerance(dtype))
    _assert_same_gradients(full, expected, a, b, dtype)


@requires_ext
def test_non_finite_weight_reaches_every_pixel_it_weighs():
    """An infinite weight times a zero parameter is NaN, not 0: the zero-tap shortcut is off then."""
    geometry = mask_geometry((33, 40), 3, 2.0)
    params = torch.zeros(1, 1, *geometry.shape_in)
    weight = geometry.plane_weights(params.device, params.dtype).clone()
    weight[0] = float("inf")
    full, _ = torch.ops.xaifast.smooth_mask(params, weight, geometry.step, geometry.padding, "sum",
                                            reference.COLDNESS)
    assert torch.isnan(full).all()  # tap 0 weighs every pixel: inf * 0


@requires_ext
def test_public_op_uses_the_kernel_and_clamps():
    geometry = mask_geometry((32, 32), 3, 6)
    params = _params(geometry, 2, torch.float32, "cpu") * 3 - 1  # pooled sums outside [0, 1]
    cropped, full = smooth_mask(params, (32, 32), 3, 6, clamp=True, pooling_method="sum")
    expected_cropped, expected_full = reference.smooth_mask_dense(params, geometry, clamp=True, pooling_method="sum")
    torch.testing.assert_close(full, expected_full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cropped, expected_cropped, rtol=1e-5, atol=1e-6)
    assert full.min() == 0 and full.max() == 1
    assert torch.equal(cropped, full[:, :, 6:38, 6:38])  # the image window at round(sigma)


@requires_ext
def test_strided_input_and_batch_independence():
    geometry = mask_geometry((40, 36), 4, 7)
    params = _params(geometry, 3, torch.float32, "cpu")
    strided = torch.rand(3, 1, geometry.shape_in[1], geometry.shape_in[0]).transpose(2, 3)
    strided.copy_(params)
    assert not strided.is_contiguous()
    assert torch.equal(_kernel(strided, geometry, "softmax")[0], _kernel(params, geometry, "softmax")[0])
    together = _kernel(params, geometry, "softmax")[0]
    for k in range(3):
        assert torch.equal(together[k:k + 1], _kernel(params[k:k + 1], geometry, "softmax")[0])


@requires_ext
@pytest.mark.parametrize("pooling", POOLINGS)
def test_gradcheck(pooling):
    geometry = mask_geometry((12, 10), 3, 2.5)
    params = _params(geometry, 2, torch.float64, "cpu").requires_grad_()
    assert torch.autograd.gradcheck(lambda p: _kernel(p, geometry, pooling)[0], (params,))


@requires_ext
@pytest.mark.parametrize("pooling", POOLINGS)
def test_opcheck_and_compile(pooling):
    geometry = mask_geometry((14, 11), 3, 4)
    params = _params(geometry, 2, torch.float32, "cpu")
    weight = geometry.plane_weights("cpu", torch.float32)
    arguments = (geometry.step, geometry.padding, pooling, reference.COLDNESS)
    torch.library.opcheck(torch.ops.xaifast.smooth_mask, (params.clone().requires_grad_(), weight, *arguments))
    full, stats = torch.ops.xaifast.smooth_mask(params, weight, *arguments)
    torch.library.opcheck(torch.ops.xaifast._smooth_mask_backward,
                          (torch.rand_like(full), params, weight, full, stats, *arguments))
    torch._dynamo.reset()
    compiled = torch.compile(lambda p: torch.ops.xaifast.smooth_mask(p, weight, *arguments)[0] * 2,
                             fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(params), 2 * full)


@requires_ext
@pytest.mark.parametrize("scale", [1.0, 3.0], ids=["in-range", "out-of-range"])
def test_float_softmax_backward_paths(scale):
    """float32 softmax: parameters with 2 |c v| <= 80 take the unshifted exps and the backward by
    parameter; larger ones (here in [-1.5, 4.5]) the shifted exps and the backward by cell row."""
    geometry = mask_geometry((40, 36), 4, 7)
    params = (_params(geometry, 2, torch.float64, "cpu", seed=3) * 2 - 0.5) * scale
    a = params.float().requires_grad_()
    b = params.clone().requires_grad_()
    full = _kernel(a, geometry, "softmax")[0]
    expected = reference.smooth_mask_dense(b, geometry, clamp=False)[1]
    torch.testing.assert_close(full.double(), expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    full.backward(grad.float())
    expected.backward(grad)
    torch.testing.assert_close(a.grad.double(), b.grad, rtol=1e-4, atol=1e-5 * b.grad.abs().max().item())


@requires_ext
def test_backward_keeps_a_non_finite_gradient_to_its_pixels_parameters():
    """An infinite incoming gradient at one pixel reaches the parameters whose windows hold that
    pixel, and no other (the backward by parameter reads whole vectors past each reach)."""
    geometry = mask_geometry((40, 36), 4, 7)
    params = _params(geometry, 1, torch.float32, "cpu", seed=5)
    grad = torch.zeros(1, 1, *geometry.shape_out)
    grad[0, 0, 21, 17] = float("inf")
    finite = []
    for dtype in (torch.float32, torch.float64):
        p = params.to(dtype, copy=True).requires_grad_()
        _kernel(p, geometry, "softmax")[0].backward(grad.to(dtype))
        finite.append(torch.isfinite(p.grad))
    assert not finite[1].all() and finite[1].any()
    assert torch.equal(finite[0], finite[1])


@requires_ext
def test_deterministic_across_thread_counts():
    geometry = mask_geometry((64, 61), 4, 9)
    params = _params(geometry, 3, torch.float32, "cpu")
    grad = torch.rand(3, 1, *geometry.shape_out, generator=torch.Generator().manual_seed(2))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            p = params.clone().requires_grad_()
            full = _kernel(p, geometry, "softmax")[0]
            full.backward(grad)
            results.append((full.detach(), p.grad))
    finally:
        torch.set_num_threads(before)
    for full, grad_in in results[1:]:
        assert torch.equal(full, results[0][0]) and torch.equal(grad_in, results[0][1])


@requires_ext
def test_kernel_checks_arguments():
    geometry = mask_geometry((32, 32), 3, 6)
    weight = geometry.plane_weights("cpu", torch.float32)
    params = _params(geometry, 1, torch.float32, "cpu")
    op = torch.ops.xaifast.smooth_mask
    with pytest.raises(ValueError, match="mask_in must be \\(K, 1, H, W\\)"):
        op(params[:, :, 0], weight, 3, geometry.padding, "softmax", 20.0)
    with pytest.raises(ValueError, match="window\\^2 planes"):
        op(params, weight[:-1], 3, geometry.padding, "softmax", 20.0)
    with pytest.raises(ValueError, match="pooling_method"):
        op(params, weight, 3, geometry.padding, "max", 20.0)
    with pytest.raises(ValueError, match="coldness must be finite"):
        op(params, weight, 3, geometry.padding, "softmax", float("inf"))
    with pytest.raises(TypeError, match="must match mask_in dtype"):
        op(params.double(), weight, 3, geometry.padding, "softmax", 20.0)
    with pytest.raises(ValueError, match="larger than the padded"):
        op(params[:, :, :2, :2], weight, 3, 0, "softmax", 20.0)
    full, stats = op(params, weight, 3, geometry.padding, "softmax", 20.0)
    with pytest.raises(ValueError, match="stats must be"):
        torch.ops.xaifast._smooth_mask_backward(full, params, weight, full, stats[:, :1], 3, geometry.padding,
                                                "softmax", 20.0)


@requires_ext
def test_public_op_outputs_can_be_changed_in_place():
    """The public op always clamps, so its outputs never alias the tensor its backward saved."""
    geometry = mask_geometry((40, 36), 4, 7)
    params = _params(geometry, 2, torch.float32, "cpu").requires_grad_()
    cropped, full = smooth_mask(params, (40, 36), 4, 7, clamp=True)
    assert 0 <= full.min() and full.max() <= 1
    cropped.mul_(0.5)
    full.sum().backward()
    assert params.grad is not None and torch.isfinite(params.grad).all()
