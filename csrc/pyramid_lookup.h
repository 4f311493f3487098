// Argument checks of the pyramid_lookup op, shared by its CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace xaifast {

// Pyramid (L, C, H, W) shared, or (K, L, C, H, W) per mask; mask (K, 1, H, W).
inline void check_pyramid_lookup_args(const at::Tensor& pyramid, const at::Tensor& mask, const char* op) {
  TORCH_CHECK_VALUE(pyramid.dim() == 4 || pyramid.dim() == 5, op, ": pyramid must be (L, C, H, W) or "
                    "(K, L, C, H, W), got shape ", pyramid.sizes());
  TORCH_CHECK_VALUE(mask.dim() == 4 && mask.size(1) == 1, op, ": mask must be (K, 1, H, W), got shape ", mask.sizes());
  TORCH_CHECK_VALUE(pyramid.size(-1) == mask.size(3) && pyramid.size(-2) == mask.size(2), op,
                    ": mask must have the pyramid's height and width");
  TORCH_CHECK_VALUE(pyramid.dim() == 4 || pyramid.size(0) == mask.size(0), op, ": pyramid must hold one pyramid "
                    "per mask (", mask.size(0), "), got ", pyramid.size(0));
  TORCH_CHECK_TYPE(pyramid.scalar_type() == mask.scalar_type(), op, ": mask dtype ", mask.scalar_type(),
                   " must match pyramid dtype ", pyramid.scalar_type());
  TORCH_CHECK_VALUE(pyramid.device() == mask.device(), op, ": mask must be on the pyramid's device ",
                    pyramid.device());
}

}  // namespace xaifast
