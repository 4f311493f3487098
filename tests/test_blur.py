"""separable_blur kernel vs reference, autograd, opcheck, compile, and imsmooth vs TorchRay."""

import itertools
import os
import subprocess
import sys

import pytest
import torch

import xaifast.reference as reference
from xaifast.ops import gaussian_kernel, imsmooth, separable_blur
from conftest import kernel_devices, requires_ext, tolerance

MODES = ["constant", "reflect", "replicate", "circular"]
SHAPES = [(1, 1, 1, 1), (1, 1, 7, 5), (2, 3, 17, 23), (3, 2, 32, 31)]
SIGMAS = [0.0, 0.7, 2.0]


def _valid(shape, weight, padding, mode):
    pad = (weight.numel() - 1) // 2 + padding
    shortest = min(shape[2:])
    return not ((mode == "reflect" and pad >= shortest) or (mode == "circular" and pad > shortest))


def _cases(dtype, device):
    for shape, sigma in itertools.product(SHAPES, SIGMAS):
        torch.manual_seed(hash((shape, sigma)) % 2**31)
        yield torch.randn(shape, dtype=dtype, device=device), gaussian_kernel(sigma, device, dtype)


def _non_contiguous(x):
    # channels_last memory, then a strided view: exercises the kernel's contiguous() at entry.
    wide = torch.randn(x.shape[0], x.shape[1], x.shape[2], 2 * x.shape[3], dtype=x.dtype, device=x.device)
    view = wide[..., ::2]
    view.copy_(x)
    return view.contiguous(memory_format=torch.channels_last)[..., :] if x.shape[-1] > 1 else view


@requires_ext
@pytest.mark.parametrize("device", kernel_devices())
@pytest.mark.parametrize("mode,stride,padding", list(itertools.product(MODES, [1, 2, 3], [0, 1])))
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
def test_kernel_matches_reference(device, dtype, mode, stride, padding, contiguous):
    values = [0.0, 0.5] if mode == "constant" else [0.0]
    tested = 0
    for x, weight in _cases(dtype, device):
        if not _valid(x.shape, weight, padding, mode):
            continue
        for value in values:
            source = x if contiguous else _non_contiguous(x)
            a = source.clone().requires_grad_()
            b = x.clone().requires_grad_()
            out = torch.ops.xaifast.separable_blur(a, weight, stride, padding, mode, value)
            expected = reference.separable_blur(b, weight, stride, padding, mode, value)
            torch.testing.assert_close(out, expected, **tolerance(dtype))
            grad = torch.randn_like(expected)
            out.backward(grad)
            expected.backward(grad)
            torch.testing.assert_close(a.grad, b.grad, **tolerance(dtype))
            tested += 1
    assert tested > 0


@requires_ext
@pytest.mark.parametrize("device", kernel_devices())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_reduced_precision_matches_float32(device, dtype):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 20, 21, device=device)
    weight = gaussian_kernel(1.5, device)
    out = separable_blur(x.to(dtype), weight.to(dtype), 1, 0, "replicate")
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), reference.separable_blur(x, weight, 1, 0, "replicate"),
                               **tolerance(dtype))


@requires_ext
@pytest.mark.parametrize("mode,stride", [("constant", 1), ("constant", 2), ("reflect", 1), ("replicate", 2),
                                         ("circular", 1)])
def test_gradcheck_float64(mode, stride):
    torch.manual_seed(1)
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    weight = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)  # asymmetric: catches a flipped adjoint
    fn = lambda t: torch.ops.xaifast.separable_blur(t, weight, stride, 1, mode, 0.0)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@requires_ext
@pytest.mark.parametrize("mode", MODES)
def test_opcheck(mode):
    torch.manual_seed(2)
    x = torch.randn(2, 3, 9, 8, requires_grad=True)
    weight = gaussian_kernel(1.0)
    torch.library.opcheck(torch.ops.xaifast.separable_blur, (x, weight, 2, 1, mode, 0.0))
    grad = torch.randn(2, 3, 6, 5)  # (9 + 2 - 1) // 2 + 1, (8 + 2 - 1) // 2 + 1
    torch.library.opcheck(torch.ops.xaifast._separable_blur_backward, (grad, weight, [2, 3, 9, 8], 2, 1, mode))


@requires_ext
def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)

    @torch.compile(fullgraph=True, backend="aot_eager")
    def smooth(t):
        return imsmooth(t, 1.5, padding_mode="replicate") * 2

    out = smooth(x)
    expected = reference.separable_blur(x, gaussian_kernel(1.5), 1, 0, "replicate") * 2
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


@requires_ext
def test_deterministic_across_thread_counts():
    x = torch.rand(3, 3, 64, 57)
    weight = gaussian_kernel(4.0)
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            a = x.clone().requires_grad_()
            out = separable_blur(a, weight, 1, 0, "replicate")
            out.backward(torch.ones_like(out))
            results.append((out, a.grad))
    finally:
        torch.set_num_threads(before)
    for out, grad in results[1:]:
        assert torch.equal(out, results[0][0]) and torch.equal(grad, results[0][1])


def test_reference_fallback_on_device_without_kernel():
    x = torch.empty(2, 3, 10, 12, device="meta")
    out = separable_blur(x, gaussian_kernel(1.0, device="meta"), 2)
    assert out.shape == (2, 3, 5, 6) and out.device.type == "meta"


def test_disable_ext_forces_reference():
    code = ("import torch, xaifast\n"
            "from xaifast.utils import imsmooth\n"
            "assert not xaifast.info()['extension_loaded'], xaifast.info()\n"
            "assert 'XAIFAST_DISABLE_EXT' in xaifast.info()['load_error']\n"
            "x = torch.zeros(1, 1, 9, 9); x[..., 4, 4] = 1\n"
            "assert abs(float(imsmooth(x, 1.0).sum()) - 1) < 1e-5\n")
    env = dict(os.environ, XAIFAST_DISABLE_EXT="1")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_imsmooth_values_by_hand():
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[..., 4, 4] = 1
    out = imsmooth(x, 1.0)
    taps = gaussian_kernel(1.0, dtype=torch.float64)
    assert taps.numel() == 9 and abs(float(taps.sum()) - 1) < 1e-6
    torch.testing.assert_close(out[0, 0], torch.outer(taps, taps))  # impulse response = outer product
    assert torch.equal(imsmooth(x, 0), x)  # sigma 0: a one-tap identity kernel


@pytest.mark.parametrize("sigma", [0, 0.5, 2, 7.5])
@pytest.mark.parametrize("padding_mode,padding_value", [("constant", 0), ("constant", 0.3), ("reflect", 0),
                                                        ("replicate", 0)])
@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 0), (1, 2), (3, 1)])
def test_imsmooth_matches_torchray(sigma, padding_mode, padding_value, stride, padding):
    torchray_utils = pytest.importorskip("torchray.utils")
    torch.manual_seed(3)
    x = torch.rand(2, 3, 40, 45)
    if padding_mode == "reflect" and 4 * sigma + padding >= 40:
        pytest.skip("TorchRay's F.pad rejects a reflect padding this large")
    expected = torchray_utils.imsmooth(x, sigma, stride, padding, padding_mode, padding_value)
    out = imsmooth(x, sigma, stride, padding, padding_mode, padding_value)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_imsmooth_float64_works():
    x = torch.rand(1, 2, 12, 12, dtype=torch.float64)
    out = imsmooth(x, 1.0)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, imsmooth(x.float(), 1.0).double(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(tensor=[1.0]), TypeError, "tensor must be a torch.Tensor"),
    (dict(tensor=torch.rand(3, 8, 8)), ValueError, "tensor must be a 4-D"),
    (dict(tensor=torch.ones(1, 1, 8, 8, dtype=torch.int64)), TypeError, "tensor must have a floating dtype"),
    (dict(tensor=torch.rand(1, 1, 0, 8)), ValueError, "tensor must have a non-empty height"),
    (dict(sigma=-1), ValueError, "sigma must be >= 0"),
    (dict(sigma=float("nan")), ValueError, "sigma must be finite"),
    (dict(sigma="2"), TypeError, "sigma must be a real number"),
    (dict(stride=0), ValueError, "stride must be >= 1"),
    (dict(stride=1.5), TypeError, "stride must be an int"),
    (dict(padding=-1), ValueError, "padding must be >= 0"),
    (dict(padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (dict(padding_mode="reflect", sigma=3), ValueError, "padding_mode='reflect' needs a padding"),
    (dict(padding_mode="replicate", padding_value=1), ValueError, "padding_value is only used"),
    (dict(padding_value=float("inf")), ValueError, "padding_value must be finite"),
])
def test_imsmooth_bad_input(kwargs, error, match):
    args = dict(tensor=torch.rand(1, 2, 8, 8), sigma=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        imsmooth(**args)


def test_separable_blur_bad_weight():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="weight must have an odd number of taps"):
        separable_blur(x, torch.ones(4))
    with pytest.raises(ValueError, match="weight must be a 1-D"):
        separable_blur(x, torch.ones(3, 3))
    with pytest.raises(ValueError, match="weight must not require grad"):
        separable_blur(x, torch.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match="weight must be on the input's device"):
        separable_blur(x, torch.ones(3, device="meta"))


@requires_ext
def test_op_checks_arguments_without_crashing():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="padding_mode must be"):
        torch.ops.xaifast.separable_blur(x, torch.ones(3), 1, 0, "mirror", 0.0)
    with pytest.raises(ValueError, match="reflect padding"):
        torch.ops.xaifast.separable_blur(x, torch.ones(19), 1, 0, "reflect", 0.0)
    with pytest.raises(TypeError, match="must match input dtype"):
        torch.ops.xaifast.separable_blur(x, torch.ones(3, dtype=torch.float64), 1, 0, "constant", 0.0)
