"""Loads the compiled extension ``xaifast._C`` once.

Everything that wants to know whether kernels are available imports from here:

* ``HAS_EXT``: the extension imported and registered its ops under ``torch.ops.xaifast``.
* ``LOAD_ERROR``: why it did not (a string), or ``None``.
* ``KERNEL_DEVICES``: the device types (``"cpu"``, ``"cuda"``) that have compiled kernels.

Setting the environment variable ``XAIFAST_DISABLE_EXT=1`` skips the import, so every op
runs its pure-PyTorch reference: the way to bisect a suspected kernel bug.
"""

import os

HAS_EXT = False
LOAD_ERROR = None
KERNEL_DEVICES = frozenset()
_C = None

if os.environ.get("XAIFAST_DISABLE_EXT", "0") not in ("", "0"):
    LOAD_ERROR = "disabled by XAIFAST_DISABLE_EXT=1"
else:
    try:
        import torch  # noqa: F401  (the extension links against libtorch)

        from . import _C  # noqa: F811  (importing runs the TORCH_LIBRARY registrations)

        HAS_EXT = True
        KERNEL_DEVICES = frozenset(["cpu"] + (["cuda"] if _C.cuda_built() else []))
    except ImportError as exc:  # not built (XAIFAST_BUILD_EXT=0) or built against another torch
        LOAD_ERROR = f"{type(exc).__name__}: {exc}"
        _C = None


def has_kernel(device):
    """Whether the op wrappers should use a compiled kernel for ``device``.

    Args:
        device (torch.device or str): the device the op's inputs live on.

    Returns:
        bool: ``True`` if the extension is loaded and was built for that device type.
    """
    device_type = device.type if hasattr(device, "type") else str(device).split(":")[0]
    return device_type in KERNEL_DEVICES
