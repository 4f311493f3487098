"""Public op wrappers: validate the arguments, then run the compiled kernel where the input's
device has one, and the pure-PyTorch reference (:mod:`xaifast.reference`) otherwise.

Fake (meta) kernels and autograd formulas for the compiled ops are registered here, only when
the extension loaded.
"""

from . import extremal  # noqa: F401  (registers the pyramid_lookup fake kernel and autograd)
from .excitation import ebp_normalize, ebp_product
from .blur import gaussian_kernel, imsmooth, separable_blur
from .rise import LowRankAccumulator, axis_weights, rise_accumulate, rise_masks, rise_upsample

__all__ = ["LowRankAccumulator", "axis_weights", "ebp_normalize", "ebp_product", "gaussian_kernel", "imsmooth", "rise_accumulate", "rise_masks", "rise_upsample", "separable_blur"]
