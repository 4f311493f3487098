"""pyramid_lookup kernel vs reference: forward, backward, gradcheck, opcheck, compile, threads."""

import pytest
import torch

from xaifast.reference import extremal as reference
from conftest import kernel_devices, requires_ext, tolerance


def _inputs(shared, dtype, device, masks=3, levels=8, size=(19, 23), seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (levels, 3, *size) if shared else (masks, levels, 3, *size)
    pyramid = torch.rand(shape, generator=generator, dtype=dtype)
    mask = torch.rand(masks, 1, *size, generator=generator, dtype=dtype)
    mask[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 0.5, 1 / 7], dtype=dtype)  # level boundaries and ends
    return pyramid.to(device), mask.to(device)


@requires_ext
@pytest.mark.parametrize("device", kernel_devices())
@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-mask"])
@pytest.mark.parametrize("levels", [2, 8])
def test_kernel_matches_reference(device, dtype, shared, levels):
    pyramid, mask = _inputs(shared, dtype, device, levels=levels)
    a, b = mask.clone().requires_grad_(), mask.clone().requires_grad_()
    out = torch.ops.xaifast.pyramid_lookup(pyramid, a)
    expected = reference.pyramid_lookup(pyramid, b)
    torch.testing.assert_close(out, expected, **tolerance(dtype))
    grad = torch.rand(expected.shape, generator=torch.Generator().manual_seed(5), dtype=dtype).to(device)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(a.grad, b.grad, **tolerance(dtype))


@requires_ext
def test_gradcheck_opcheck_compile():
    pyramid, mask = _inputs(True, torch.float64, "cpu", size=(5, 6))
    mask = (mask * 0.9 + 0.05).requires_grad_()  # keep away from level boundaries, where floor jumps
    pyramid.requires_grad_()
    assert torch.autograd.gradcheck(lambda p, m: torch.ops.xaifast.pyramid_lookup(p, m), (pyramid, mask), atol=1e-6)
    p32, m32 = _inputs(False, torch.float32, "cpu", size=(6, 7))
    torch.library.opcheck(torch.ops.xaifast.pyramid_lookup, (p32, m32.requires_grad_()))
    torch.library.opcheck(torch.ops.xaifast._pyramid_lookup_backward, (torch.rand(3, 3, 6, 7), p32, m32.detach()))
    torch._dynamo.reset()
    compiled = torch.compile(lambda p, m: torch.ops.xaifast.pyramid_lookup(p, m) * 2, fullgraph=True,
                             backend="aot_eager")
    torch.testing.assert_close(compiled(p32, m32.detach()), 2 * reference.pyramid_lookup(p32, m32.detach()))


@requires_ext
def test_deterministic_across_thread_counts():
    pyramid, mask = _inputs(True, torch.float32, "cpu", size=(64, 61))
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            outs.append(torch.ops.xaifast._pyramid_lookup_backward(torch.ones(3, 3, 64, 61), pyramid, mask))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(o, outs[0]) for o in outs[1:])


@requires_ext
def test_kernel_checks_arguments():
    with pytest.raises(ValueError, match="mask must be \\(K, 1, H, W\\)"):
        torch.ops.xaifast.pyramid_lookup(torch.rand(4, 3, 5, 5), torch.rand(2, 2, 5, 5))
    with pytest.raises(TypeError, match="must match pyramid dtype"):
        torch.ops.xaifast.pyramid_lookup(torch.rand(4, 3, 5, 5), torch.rand(2, 1, 5, 5, dtype=torch.float64))


def _smooth_masks(masks, size, dtype, seed):
    """Masks like the mask generator's: smooth, so 16 neighbouring pixels span few levels."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(masks, 1, max(2, size[0] // 7), max(2, size[1] // 7), generator=generator, dtype=dtype)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)


@requires_ext
@pytest.mark.parametrize("levels", [2, 3, 8, 16, 17])
@pytest.mark.parametrize("width", [1, 15, 16, 17, 45])
@pytest.mark.parametrize("kind", ["noise", "smooth", "edges"])
@pytest.mark.parametrize("channels", [3, 4])
def test_kernel_same_bits_as_reference(dtype, levels, width, kind, channels):
    """The row loops (selects up to 16 levels, three channels at a time and then one by one,
    gathers above; 16-pixel vectors plus a scalar tail) give the reference's bits: noise spans
    every level, smooth masks a few, edges hit level boundaries, both ends, values outside [0, 1],
    -0, large values and a NaN (values past the int64 range are checked on their own: the
    reference's ``long()`` wraps them)."""
    size = (6, width)
    generator = torch.Generator().manual_seed(levels * 100 + width)
    pyramid = torch.rand(levels, channels, *size, generator=generator, dtype=dtype)
    if kind == "noise":
        mask = torch.rand(3, 1, *size, generator=generator, dtype=dtype)
    elif kind == "smooth":
        mask = _smooth_masks(3, size, dtype, seed=width)
    else:
        specials = torch.tensor([0.0, -0.0, 1.0, 1 / 7, 0.5, -0.25, 1.5, 3e7, -3e7, 1e15, 2.0 ** -30,
                                 1 - 2.0 ** -24, float("nan")], dtype=dtype)
        grid = torch.arange(levels, dtype=dtype) / (levels - 1)  # every boundary
        values = torch.cat([specials, grid, grid + 1e-6, grid - 1e-6])
        mask = values[torch.randint(len(values), (3, 1, *size), generator=generator)]
    out = torch.ops.xaifast.pyramid_lookup(pyramid, mask)
    expected = reference.pyramid_lookup(pyramid, mask)
    finite = ~torch.isnan(mask).expand_as(expected)  # the reference's NaN reads are undefined
    assert torch.equal(out[finite], expected[finite])
    assert torch.isnan(out[~finite]).all()
    grad = torch.rand(expected.shape, generator=generator, dtype=dtype)
    got = torch.ops.xaifast._pyramid_lookup_backward(grad, pyramid, mask)
    m = mask.clone().requires_grad_()
    reference.pyramid_lookup(pyramid, m).backward(grad)
    keep = ~torch.isnan(mask)
    torch.testing.assert_close(got[keep], m.grad[keep], rtol=0, atol=0)


@requires_ext
def test_kernel_saturates_values_past_int64(dtype):
    pyramid = torch.rand(8, 2, 1, 20, generator=torch.Generator().manual_seed(0), dtype=dtype)
    mask = torch.tensor([1e30, -1e30, float("inf"), float("-inf")], dtype=dtype).repeat(5).view(1, 1, 1, 20)
    out = torch.ops.xaifast.pyramid_lookup(pyramid, mask)
    ends = torch.where(mask > 0, pyramid[7], pyramid[0])
    finite = torch.isfinite(mask).expand_as(out)
    assert torch.equal(out[finite], ends[finite])  # frac is 0: the end level itself
    assert torch.isnan(out[~finite]).all()  # inf - floor(inf) is NaN, as in the reference's lerp


@requires_ext
def test_negative_zero_mask_and_pyramid(dtype):
    """A mask of -0 has frac +0 (level - floor(level)), as the reference: the sign of a zero output
    follows the reference's (1 - 0) * y_lo + 0 * y_hi."""
    pyramid = torch.full((8, 1, 1, 20), -0.0, dtype=dtype)
    mask = torch.full((1, 1, 1, 20), -0.0, dtype=dtype)
    out = torch.ops.xaifast.pyramid_lookup(pyramid, mask)
    expected = reference.pyramid_lookup(pyramid, mask)
    assert torch.equal(torch.signbit(out), torch.signbit(expected))
