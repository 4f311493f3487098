"""rise_masks kernel vs reference, autograd, opcheck, compile; the low-rank accumulation."""

import itertools
import math

import pytest
import torch

import xaifast.reference as reference
from xaifast import ops
from xaifast.ops import LowRankAccumulator, axis_weights, rise_accumulate, rise_masks
from conftest import kernel_devices, requires_ext, tolerance

GEOMETRIES = [(224, 224, 7, 7), (37, 29, 5, 3), (10, 10, 1, 1), (50, 64, 8, 8), (9, 13, 9, 2)]


def _sample(n, height, width, gh, gw, dtype, device, seed=0):
    generator = torch.Generator().manual_seed(seed)
    grid = (torch.rand(n, gh, gw, generator=generator) < 0.5).to(dtype)
    shifts = torch.stack([torch.randint(0, math.ceil(height / gh), (n,), generator=generator),
                          torch.randint(0, math.ceil(width / gw), (n,), generator=generator)], 1)
    image = torch.randn(3, height, width, generator=generator, dtype=dtype)
    return grid.to(device), shifts.to(device), image.to(device)


@requires_ext
@pytest.mark.parametrize("device", kernel_devices())
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
@pytest.mark.parametrize("with_input", [False, True], ids=["masks", "masked"])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
def test_kernel_matches_reference(device, dtype, geometry, with_input, contiguous):
    height, width, gh, gw = geometry
    grid, shifts, image = _sample(5, height, width, gh, gw, dtype, device)
    if not contiguous:
        grid = grid.transpose(1, 2).contiguous().transpose(1, 2)
        image = image.transpose(1, 2).contiguous().transpose(1, 2)
    a_grid, b_grid = grid.clone().requires_grad_(), grid.clone().requires_grad_()
    a_img, b_img = image.clone().requires_grad_(), image.clone().requires_grad_()
    out = torch.ops.xaifast.rise_masks(a_grid, shifts, height, width, a_img if with_input else None)
    expected = reference.rise_masks(b_grid, shifts, height, width, b_img if with_input else None)
    torch.testing.assert_close(out, expected, **tolerance(dtype))
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1), dtype=dtype).to(device)
    out.backward(grad)
    expected.backward(grad)
    # A grid cell's gradient sums ~(H / gh) x (W / gw) pixels: float32 summation order shows.
    grid_tolerance = tolerance(dtype) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a_grid.grad, b_grid.grad, **grid_tolerance)
    if with_input:  # sums of n products: allow float32 rounding of small sums
        torch.testing.assert_close(a_img.grad, b_img.grad, **(grid_tolerance if dtype == torch.float32 else
                                                              tolerance(dtype)))


def test_reference_equals_torchray_crop_loop():
    rise_module = pytest.importorskip("torchray.attribution.rise")
    grid, shifts, _ = _sample(6, 224, 200, 7, 7, torch.float32, "cpu", seed=3)
    cell = (32, 29)
    upsampled = rise_module._upsample_reflect(grid[:, None], (224 + cell[0], 200 + cell[1]))
    expected = torch.stack([upsampled[i, :, dy:dy + 224, dx:dx + 200] for i, (dy, dx) in enumerate(shifts.tolist())])
    assert torch.equal(reference.rise_masks(grid, shifts, 224, 200), expected)


@requires_ext
def test_gradcheck_float64():
    grid, shifts, image = _sample(3, 13, 11, 5, 4, torch.float64, "cpu")
    grid.requires_grad_()
    image.requires_grad_()
    assert torch.autograd.gradcheck(lambda g, i: torch.ops.xaifast.rise_masks(g, shifts, 13, 11, i), (grid, image))
    assert torch.autograd.gradgradcheck(lambda g: torch.ops.xaifast.rise_masks(g, shifts, 13, 11, None), (grid,))


@requires_ext
@pytest.mark.parametrize("with_input", [False, True])
def test_opcheck(with_input):
    grid, shifts, image = _sample(4, 20, 18, 4, 3, torch.float32, "cpu")
    grid.requires_grad_()
    torch.library.opcheck(torch.ops.xaifast.rise_masks, (grid, shifts, 20, 18, image if with_input else None))
    torch.library.opcheck(torch.ops.xaifast._rise_masks_backward, (torch.randn(4, 1, 20, 18), grid.detach(), shifts))


@requires_ext
def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    grid, shifts, image = _sample(4, 32, 32, 4, 4, torch.float32, "cpu")

    @torch.compile(fullgraph=True, backend="aot_eager")
    def masked(g, i):
        return torch.ops.xaifast.rise_masks(g, shifts, 32, 32, i) * 2

    torch.testing.assert_close(masked(grid, image), 2 * reference.rise_masks(grid, shifts, 32, 32, image))


@requires_ext
def test_deterministic_across_thread_counts():
    grid, shifts, image = _sample(9, 64, 60, 7, 7, torch.float32, "cpu")
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            outs.append(rise_masks(grid, shifts, 64, 60, image))
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(o, outs[0]) for o in outs[1:])


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
def test_axis_weights_rebuild_the_masks(geometry):
    height, width, gh, gw = geometry
    grid, shifts, _ = _sample(4, height, width, gh, gw, torch.float64, "cpu")
    rows, cols = axis_weights(gh, height, torch.float64), axis_weights(gw, width, torch.float64)
    torch.testing.assert_close(rows.sum(1), torch.ones(rows.shape[0], dtype=torch.float64))
    masks = reference.rise_masks(grid, shifts, height, width)
    for n, (dy, dx) in enumerate(shifts.tolist()):
        torch.testing.assert_close(rows[dy:dy + height] @ grid[n] @ cols[dx:dx + width].T, masks[n, 0])


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(map(str, g)))
def test_low_rank_accumulation_matches_dense(geometry):
    height, width, gh, gw = geometry
    grid, shifts, _ = _sample(40, height, width, gh, gw, torch.float64, "cpu", seed=1)
    scores = torch.rand(40, 6, dtype=torch.float64)
    expected = reference.rise_accumulate(scores, grid, shifts, height, width)
    torch.testing.assert_close(rise_accumulate(scores, grid, shifts, height, width), expected)
    # several images, several chunks, flushes in between: the same sums
    accumulator = LowRankAccumulator(2, 6, (gh, gw), (height, width), torch.float64, flush_every=7)
    for start in range(0, 40, 8):
        part = slice(start, start + 8)
        accumulator.add(torch.stack([scores[part], 2 * scores[part]]), grid[part], shifts[part])
    result = accumulator.result()
    torch.testing.assert_close(result[0], expected)
    torch.testing.assert_close(result[1], 2 * expected)


@pytest.mark.parametrize("call,error,match", [
    (lambda g, s: rise_masks(g[0], s, 32, 32), ValueError, "grid must be a 3-D"),
    (lambda g, s: rise_masks(g.long(), s, 32, 32), TypeError, "grid must have a floating dtype"),
    (lambda g, s: rise_masks(g, s.float(), 32, 32), TypeError, "shifts must be an int64"),
    (lambda g, s: rise_masks(g, s[:2], 32, 32), ValueError, "shifts must have shape"),
    (lambda g, s: rise_masks(g, s + 100, 32, 32), ValueError, "shifts must lie in"),
    (lambda g, s: rise_masks(g, s, 3, 32), ValueError, "height must be >= 4"),
    (lambda g, s: rise_masks(g, s, 32, 32, torch.rand(3, 31, 32)), ValueError, "input must be"),
    (lambda g, s: rise_accumulate(torch.rand(3, 5), g, s, 32, 32), ValueError, "scores must have one row per mask"),
])
def test_bad_input(call, error, match):
    grid, shifts, _ = _sample(4, 32, 32, 4, 4, torch.float32, "cpu")
    with pytest.raises(error, match=match):
        call(grid, shifts)


@requires_ext
@pytest.mark.parametrize("geometry", [(224, 7, 224), (37, 5, 29), (10, 1, 10), (50, 8, 64), (13, 9, 5), (224, 3, 20)],
                         ids=lambda g: "x".join(map(str, g)))
def test_upsample_kernel_matches_reference(dtype, geometry):
    height, gh, width = geometry
    cell = math.ceil(height / gh)
    partial = torch.rand(cell, 4, gh, width, dtype=dtype, generator=torch.Generator().manual_seed(2))
    a, b = partial.clone().requires_grad_(), partial.clone().requires_grad_()
    out = torch.ops.xaifast.rise_upsample(a, height)
    expected = reference.rise_upsample(b, height)
    torch.testing.assert_close(out, expected, **(tolerance(dtype) if dtype == torch.float64 else
                                                 dict(rtol=1e-5, atol=1e-5)))
    grad = torch.rand(expected.shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(a.grad, b.grad, **tolerance(dtype))


@requires_ext
def test_upsample_gradcheck_opcheck_compile():
    partial = torch.rand(4, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: torch.ops.xaifast.rise_upsample(p, 17), (partial,))
    torch.library.opcheck(torch.ops.xaifast.rise_upsample, (torch.rand(4, 3, 5, 6, requires_grad=True), 17))
    torch._dynamo.reset()
    compiled = torch.compile(lambda p: torch.ops.xaifast.rise_upsample(p, 17) + 1, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(partial.detach()), reference.rise_upsample(partial.detach(), 17) + 1)


def test_upsample_bad_input():
    from xaifast.ops import rise_upsample
    with pytest.raises(ValueError, match="partial must be a 4-D"):
        rise_upsample(torch.rand(4, 5, 6), 17)
    with pytest.raises(ValueError, match="partial must hold ceil"):
        rise_upsample(torch.rand(3, 2, 5, 6), 17)


@requires_ext
@pytest.mark.parametrize("shape", [(10, 30, 1024), (10, 30, 12), (1, 146, 1568), (64, 500, 16), (65, 100, 16),
                                   (130, 40, 2100), (3, 0, 5)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_matmul_into_is_the_product_on_every_thread_count(shape, dtype):
    rows, inner, cols = shape
    generator = torch.Generator().manual_seed(rows * cols)
    a = torch.rand(inner, rows, generator=generator, dtype=dtype).T  # a transposed view, as RISE passes it
    b = torch.rand(inner, cols, generator=generator, dtype=dtype)
    start = torch.rand(rows, cols, generator=generator, dtype=dtype)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            out = start.clone()
            results.append((ops.rise.matmul_into(out, a, b, accumulate=True).clone(),
                            ops.rise.matmul_into(torch.empty(rows, cols, dtype=dtype), a, b)))
    finally:
        torch.set_num_threads(before)
    for accumulated, product in results[1:]:
        assert torch.equal(accumulated, results[0][0]) and torch.equal(product, results[0][1])
    tolerance = dict(rtol=1e-5, atol=1e-5 * max(inner, 1)) if dtype == torch.float32 else {}
    torch.testing.assert_close(results[0][0], start + a @ b, **tolerance)
    torch.testing.assert_close(results[0][1], a @ b, **tolerance)


@requires_ext
def test_matmul_into_opcheck_and_bad_input():
    out, a, b = torch.zeros(70, 40), torch.rand(70, 9), torch.rand(9, 40)
    torch.library.opcheck(torch.ops.xaifast.matmul_into, (out, a, b, True))
    with pytest.raises(ValueError, match="shapes do not chain"):
        torch.ops.xaifast.matmul_into(out, a, torch.rand(8, 40), False)
    with pytest.raises(TypeError, match="all be float32 or all float64"):
        torch.ops.xaifast.matmul_into(out, a.double(), b, False)
    with pytest.raises(ValueError, match="must be 2-D"):
        torch.ops.xaifast.matmul_into(out, a[None], b, False)
    with pytest.raises(TypeError, match="b must be a torch.Tensor"):
        ops.rise.matmul_into(out, a, b.tolist())
    with pytest.raises(ValueError, match="a must be a 2-D tensor"):
        ops.rise.matmul_into(out, a[None], b)
