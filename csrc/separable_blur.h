// Argument checks and geometry of the separable_blur op, shared by its CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

#include "common/padding.h"

namespace xaifast {

inline int parse_pad_mode(c10::string_view mode) {
  if (mode == "constant") return kPadConstant;
  if (mode == "reflect") return kPadReflect;
  if (mode == "replicate") return kPadReplicate;
  if (mode == "circular") return kPadCircular;
  TORCH_CHECK_VALUE(false, "xaifast::separable_blur: padding_mode must be 'constant', 'reflect', 'replicate' or "
                    "'circular', got '", std::string(mode), "'");
}

struct BlurGeometry {
  int64_t planes, height, width;     // input: planes = N * C
  int64_t out_height, out_width;
  int64_t taps, pad, stride;         // pad = (taps - 1) / 2 + padding
  int mode;
};

inline BlurGeometry blur_geometry(at::IntArrayRef input_size, const at::Tensor& weight, int64_t stride,
                                  int64_t padding, c10::string_view padding_mode) {
  TORCH_CHECK_VALUE(input_size.size() == 4, "xaifast::separable_blur: input must be 4-D (N, C, H, W), got ",
                    input_size.size(), "-D");
  TORCH_CHECK_VALUE(weight.dim() == 1 && weight.size(0) % 2 == 1,
                    "xaifast::separable_blur: weight must be 1-D with an odd number of taps, got shape ",
                    weight.sizes());
  TORCH_CHECK_VALUE(stride >= 1, "xaifast::separable_blur: stride must be >= 1, got ", stride);
  TORCH_CHECK_VALUE(padding >= 0, "xaifast::separable_blur: padding must be >= 0, got ", padding);
  BlurGeometry g;
  g.planes = input_size[0] * input_size[1];
  g.height = input_size[2];
  g.width = input_size[3];
  TORCH_CHECK_VALUE(g.height > 0 && g.width > 0, "xaifast::separable_blur: input height and width must be > 0");
  g.taps = weight.size(0);
  g.pad = (g.taps - 1) / 2 + padding;
  g.stride = stride;
  g.mode = parse_pad_mode(padding_mode);
  const int64_t shortest = std::min(g.height, g.width);
  TORCH_CHECK_VALUE(g.mode != kPadReflect || g.pad < shortest, "xaifast::separable_blur: reflect padding ", g.pad,
                    " must be smaller than the input's height and width");
  TORCH_CHECK_VALUE(g.mode != kPadCircular || g.pad <= shortest, "xaifast::separable_blur: circular padding ",
                    g.pad, " must not exceed the input's height and width");
  g.out_height = filtered_size(g.height, g.pad, g.taps, stride);
  g.out_width = filtered_size(g.width, g.pad, g.taps, stride);
  return g;
}

// The dtype rule of both ops and the grad shape of the backward, for the CPU and CUDA kernels.
inline void check_blur_dtypes(const at::Tensor& data, const at::Tensor& weight, const char* op, const char* name) {
  TORCH_CHECK_TYPE(data.scalar_type() == weight.scalar_type(), op, ": weight dtype ", weight.scalar_type(),
                   " must match ", name, " dtype ", data.scalar_type());
}

inline void check_blur_grad(const at::Tensor& grad, const BlurGeometry& g, at::IntArrayRef input_size) {
  TORCH_CHECK_VALUE(grad.dim() == 4 && grad.size(0) * grad.size(1) == g.planes && grad.size(2) == g.out_height &&
                        grad.size(3) == g.out_width,
                    "xaifast::_separable_blur_backward: grad has shape ", grad.sizes(), ", expected (",
                    input_size[0], ", ", input_size[1], ", ", g.out_height, ", ", g.out_width, ")");
}

}  // namespace xaifast
