"""ebp_normalize / ebp_product: kernel vs reference, autograd, opcheck, compile, bad input."""

import pytest
import torch

import xaifast.reference as reference
from xaifast.ops import ebp_normalize, ebp_product
from conftest import kernel_devices, requires_ext, tolerance

SHAPES = [(1,), (7, 5), (2, 3, 17, 23), (2, 4, 3, 5, 6)]


def _pair(shape, dtype, device, contiguous=True):
    generator = torch.Generator().manual_seed(len(shape))
    a = torch.randn(shape, generator=generator, dtype=dtype)
    b = torch.rand(shape, generator=generator, dtype=dtype) + 0.1
    if not contiguous and len(shape) > 1:
        a, b = a.transpose(0, -1).contiguous().transpose(0, -1), b.transpose(0, -1).contiguous().transpose(0, -1)
    return a.to(device), b.to(device)


@requires_ext
@pytest.mark.parametrize("device", kernel_devices())
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize("op", ["ebp_normalize", "ebp_product"])
def test_kernel_matches_reference(device, dtype, shape, contiguous, op):
    a, b = _pair(shape, dtype, device, contiguous)
    extra = (1e-6,) if op == "ebp_normalize" else ()
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    out = getattr(torch.ops.xaifast, op)(a1, b1, *extra)
    expected = getattr(reference, op)(a2, b2, *extra)
    torch.testing.assert_close(out, expected, **tolerance(dtype))
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(9), dtype=dtype).to(device)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(a1.grad, a2.grad, **tolerance(dtype))
    torch.testing.assert_close(b1.grad, b2.grad, **tolerance(dtype))


@requires_ext
@pytest.mark.parametrize("device", kernel_devices())
@pytest.mark.parametrize("op", ["ebp_normalize", "ebp_product"])
def test_layouts_kept_or_made_contiguous(device, op):
    extra = (1e-6,) if op == "ebp_normalize" else ()
    a, b = _pair((2, 5, 4, 3), torch.float32, device)
    a_last, b_last = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    cases = [  # operands, expected output strides
        ((a_last, b_last), a_last.stride()),                          # one dense layout: kept
        ((a_last, b), a.stride()),                                    # layouts differ: contiguous
        ((a[:, :, ::2], b[:, :, ::2]), a[:, :, ::2].contiguous().stride()),  # same strides, not dense
    ]
    for (x, y), strides in cases:
        out = getattr(torch.ops.xaifast, op)(x, y, *extra)
        assert out.stride() == strides
        torch.testing.assert_close(out, getattr(reference, op)(x, y, *extra))
        torch.library.opcheck(getattr(torch.ops.xaifast, op), (x, y, *extra))  # the fake kernel agrees


@requires_ext
def test_gradcheck_opcheck_compile():
    a, b = _pair((3, 4, 5), torch.float64, "cpu")
    a.requires_grad_()
    b.requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: torch.ops.xaifast.ebp_normalize(x, y, 1e-3), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: torch.ops.xaifast.ebp_product(x, y), (a, b))
    a32, b32 = _pair((4, 6), torch.float32, "cpu")
    torch.library.opcheck(torch.ops.xaifast.ebp_normalize, (a32.requires_grad_(), b32, 1e-20))
    torch.library.opcheck(torch.ops.xaifast.ebp_product, (a32, b32.requires_grad_()))
    torch._dynamo.reset()
    fn = torch.compile(lambda x, y: ebp_product(x, ebp_normalize(x, y)), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(fn(a32.detach(), b32.detach()), a32 * (a32 / (b32 + 1e-20)))


def test_eps_default_is_torchrays():
    torch.testing.assert_close(ebp_normalize(torch.ones(2), torch.zeros(2)), torch.full((2,), 1e20))


def test_reduced_precision_falls_back_to_reference():
    a, b = _pair((5, 5), torch.float32, "cpu")
    torch.testing.assert_close(ebp_product(a.bfloat16(), b.bfloat16()).float(), a * b, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("call,error,match", [
    (lambda: ebp_normalize(torch.ones(2), torch.ones(3)), ValueError, "output must have the shape of grad"),
    (lambda: ebp_normalize([1.0], torch.ones(1)), TypeError, "grad must be a torch.Tensor"),
    (lambda: ebp_normalize(torch.ones(2), torch.ones(2), eps=float("nan")), ValueError, "eps must be finite"),
    (lambda: ebp_product(torch.ones(2), torch.ones(2, 1)), ValueError, "grad must have the shape of input"),
    (lambda: ebp_product(torch.ones(2), torch.ones(2, device="meta")), ValueError, "grad must be on input's device"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
