"""xaifast: fast attribution and visualization for PyTorch vision models.

A drop-in for TorchRay (``xaifast.attribution.<method>``, ``xaifast.utils``) with compiled
kernels for the hot paths. ``xaifast.info()`` tells whether the kernels loaded.
"""

from ._extension import HAS_EXT
from ._info import info
from . import ops, _colorize  # noqa: F401,E402  (register the compiled ops' fake kernels and autograd)

__version__ = "0.1.0"

__all__ = ["HAS_EXT", "info", "__version__"]
