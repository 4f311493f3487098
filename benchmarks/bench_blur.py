"""imsmooth / separable_blur: compiled kernel vs the grouped-conv2d reference vs TorchRay.

One group per case, so one table shows the three side by side; parity is checked on the
returned values.
"""

import pytest
import torch

import xaifast.reference as reference
from xaifast.ops import gaussian_kernel, imsmooth

try:
    from torchray.utils import imsmooth as torchray_imsmooth
except Exception:  # torchray (and matplotlib, which its utils import) are optional oracles
    torchray_imsmooth = None

IMPLS = ["xaifast", "reference"] + (["torchray"] if torchray_imsmooth is not None else [])


def _smooth(impl):
    if impl == "xaifast":
        return imsmooth
    if impl == "torchray":
        return torchray_imsmooth
    return lambda x, sigma: reference.separable_blur(x, gaussian_kernel(sigma, x.device, x.dtype))


@pytest.mark.parametrize("sigma", [2, 20])
@pytest.mark.parametrize("impl", IMPLS)
def test_imsmooth_forward(record, impl, sigma):
    record.group = f"blur-imsmooth-forward-cpu-8x3x224x224-sigma{sigma}"
    torch.manual_seed(0)
    x = torch.rand(8, 3, 224, 224)
    out = record(_smooth(impl), x, sigma)
    torch.testing.assert_close(out, imsmooth(x, sigma), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sigma", [2, 20])
@pytest.mark.parametrize("impl", IMPLS)
def test_imsmooth_forward_backward(record, impl, sigma):
    record.group = f"blur-imsmooth-fwd+bwd-cpu-8x3x224x224-sigma{sigma}"
    torch.manual_seed(0)
    x = torch.rand(8, 3, 224, 224, requires_grad=True)
    weights = torch.rand(8, 3, 224, 224)
    smooth = _smooth(impl)

    def run():
        x.grad = None
        (smooth(x, sigma) * weights).sum().backward()
        return x.grad

    grad = record(run)
    expected = torch.autograd.grad((imsmooth(x, sigma) * weights).sum(), x)[0]
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)
