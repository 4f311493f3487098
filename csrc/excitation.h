// Argument checks of the excitation-backprop ops, shared by their CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace xaifast {

inline void check_elementwise_pair(const at::Tensor& a, const at::Tensor& b, const char* op, const char* a_name,
                                   const char* b_name) {
  TORCH_CHECK_VALUE(a.sizes() == b.sizes(), op, ": ", b_name, " must have the shape of ", a_name, " ", a.sizes(),
                    ", got ", b.sizes());
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), op, ": ", b_name, " dtype ", b.scalar_type(), " must match ",
                   a_name, " dtype ", a.scalar_type());
  TORCH_CHECK_VALUE(a.device() == b.device(), op, ": ", b_name, " must be on ", a_name, "'s device ", a.device());
}

}  // namespace xaifast
