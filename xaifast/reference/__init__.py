"""Pure-PyTorch references: one differentiable function per compiled op, same signature.

Each function here is the specification of its op: the kernels are tested against it, and the
public wrappers in :mod:`xaifast.ops` fall back to it on devices without a kernel or when
``XAIFAST_DISABLE_EXT=1``.
"""

from .blur import separable_blur
from .colorize import colorize
from .excitation import ebp_normalize, ebp_product
from .rise import rise_accumulate, rise_masks, rise_upsample

__all__ = ["colorize", "ebp_normalize", "ebp_product", "rise_accumulate", "rise_masks", "rise_upsample", "separable_blur"]
