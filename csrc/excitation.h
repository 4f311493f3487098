// Argument checks of the excitation-backprop ops, shared by their CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <utility>

namespace xaifast {

inline void check_elementwise_pair(const at::Tensor& a, const at::Tensor& b, const char* op, const char* a_name,
                                   const char* b_name) {
  TORCH_CHECK_VALUE(a.sizes() == b.sizes(), op, ": ", b_name, " must have the shape of ", a_name, " ", a.sizes(),
                    ", got ", b.sizes());
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), op, ": ", b_name, " dtype ", b.scalar_type(), " must match ",
                   a_name, " dtype ", a.scalar_type());
  TORCH_CHECK_VALUE(a.device() == b.device(), op, ": ", b_name, " must be on ", a_name, "'s device ", a.device());
}

// The two operands as they are when they share one dense layout (channels-last activations stay
// channels-last, with no copy either way), else both made contiguous. The output takes the
// layout of the first (at::empty_strided); the fake kernels in xaifast/ops/excitation.py choose
// the same way.
inline std::pair<at::Tensor, at::Tensor> same_layout(const at::Tensor& a, const at::Tensor& b) {
  if (a.strides() == b.strides() && a.is_non_overlapping_and_dense()) return {a, b};
  return {a.contiguous(), b.contiguous()};
}

}  // namespace xaifast
