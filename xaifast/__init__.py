"""xaifast: fast attribution and visualization for PyTorch vision models.

A drop-in for TorchRay (``xaifast.attribution.<method>``, ``xaifast.utils``) with compiled
kernels for the hot paths. ``xaifast.info()`` tells whether the kernels loaded.
"""

from ._extension import HAS_EXT
from ._info import info

__version__ = "0.1.0"

__all__ = ["HAS_EXT", "info", "__version__"]
