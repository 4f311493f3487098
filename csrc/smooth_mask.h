// Argument checks and geometry of the smooth_mask op, shared by its CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/string_view.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "common/smooth_mask.h"

namespace xaifast {

// TorchRay's MaskGenerator layout for parameters (K, 1, in_h, in_w), a window of `window` cells
// and `padding` zero cells around them: shape_mid = in + 2 padding - window + 1 cells of `step`
// pixels, of which the full mask keeps shape_out = step * shape_mid - step + 1 (pixel y reads
// cell y / step: the regular case; other geometries run the reference).
struct SmoothMaskGeometry {
  int64_t masks, in_h, in_w, window, padding, step, mid_h, mid_w, out_h, out_w;
  int64_t weight_h, weight_w;  // weight (window^2, weight_h, weight_w), read at (y % weight_h, x % weight_w)
};

inline MaskPooling parse_mask_pooling(const std::string& name, const char* op) {
  if (name == "softmax") return MaskPooling::Softmax;
  if (name == "sum") return MaskPooling::Sum;
  if (name == "sigmoid") return MaskPooling::Sigmoid;
  TORCH_CHECK_VALUE(false, op, ": pooling_method must be 'softmax', 'sum' or 'sigmoid', got '", name, "'");
}

inline SmoothMaskGeometry smooth_mask_geometry(const at::Tensor& mask_in, const at::Tensor& weight, int64_t step,
                                               int64_t padding, double coldness, const char* op) {
  TORCH_CHECK_VALUE(mask_in.dim() == 4 && mask_in.size(1) == 1, op, ": mask_in must be (K, 1, H, W), got shape ",
                    mask_in.sizes());
  TORCH_CHECK_VALUE(weight.dim() == 3, op, ": weight must be (window^2, h, w), got shape ", weight.sizes());
  TORCH_CHECK_TYPE(weight.scalar_type() == mask_in.scalar_type(), op, ": weight dtype ", weight.scalar_type(),
                   " must match mask_in dtype ", mask_in.scalar_type());
  TORCH_CHECK_VALUE(weight.device() == mask_in.device(), op, ": weight must be on mask_in's device ",
                    mask_in.device());
  TORCH_CHECK_VALUE(step >= 1, op, ": step must be >= 1, got ", step);
  TORCH_CHECK_VALUE(padding >= 0, op, ": padding must be >= 0, got ", padding);
  TORCH_CHECK_VALUE(std::isfinite(coldness), op, ": coldness must be finite, got ", coldness);
  SmoothMaskGeometry g;
  g.masks = mask_in.size(0);
  g.in_h = mask_in.size(2);
  g.in_w = mask_in.size(3);
  g.window = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(weight.size(0)))));
  TORCH_CHECK_VALUE(g.window >= 1 && g.window * g.window == weight.size(0), op,
                    ": weight must hold window^2 planes, got ", weight.size(0));
  g.padding = padding;
  g.step = step;
  g.mid_h = g.in_h + 2 * padding - g.window + 1;
  g.mid_w = g.in_w + 2 * padding - g.window + 1;
  TORCH_CHECK_VALUE(g.mid_h >= 1 && g.mid_w >= 1, op, ": the window (", g.window, ") is larger than the padded ",
                    "parameters (", g.in_h + 2 * padding, " x ", g.in_w + 2 * padding, ")");
  g.out_h = step * g.mid_h - step + 1;
  g.out_w = step * g.mid_w - step + 1;
  g.weight_h = weight.size(1);
  g.weight_w = weight.size(2);
  TORCH_CHECK_VALUE(g.weight_h >= 1 && g.weight_w >= 1, op, ": weight planes must not be empty, got ",
                    weight.sizes());
  return g;
}

// The backward's grad and full (K, 1, out_h, out_w) and stats (the forward's second output).
inline void check_smooth_mask_backward_args(const at::Tensor& grad, const at::Tensor& mask_in, const at::Tensor& full,
                                            const at::Tensor& stats, const SmoothMaskGeometry& g, MaskPooling pooling,
                                            const char* op) {
  const std::vector<int64_t> out_shape{g.masks, 1, g.out_h, g.out_w};
  TORCH_CHECK_VALUE(grad.sizes() == out_shape && full.sizes() == out_shape, op, ": grad and full must be (K, 1, ",
                    g.out_h, ", ", g.out_w, "), got ", grad.sizes(), " and ", full.sizes());
  TORCH_CHECK_VALUE(stats.dim() == 4 && stats.size(0) == g.masks &&
                        stats.size(1) == (pooling == MaskPooling::Softmax ? 2 : 0) && stats.size(2) == g.out_h &&
                        stats.size(3) == g.out_w,
                    op, ": stats must be the forward's second output, got shape ", stats.sizes());
  TORCH_CHECK_TYPE(grad.scalar_type() == mask_in.scalar_type() && full.scalar_type() == mask_in.scalar_type() &&
                       stats.scalar_type() == mask_in.scalar_type(),
                   op, ": grad, full and stats must have mask_in's dtype ", mask_in.scalar_type());
  TORCH_CHECK_VALUE(grad.device() == mask_in.device() && full.device() == mask_in.device() &&
                        stats.device() == mask_in.device(),
                    op, ": grad, full and stats must be on mask_in's device ", mask_in.device());
}

// Checks shared by both kernels' forward: the geometry and the pooling of one call.
struct SmoothMaskCall {
  SmoothMaskGeometry g;
  MaskPooling pooling;
};

inline SmoothMaskCall smooth_mask_call(const at::Tensor& mask_in, const at::Tensor& weight, int64_t step,
                                       int64_t padding, c10::string_view pooling_method, double coldness,
                                       const char* op) {
  return {smooth_mask_geometry(mask_in, weight, step, padding, coldness, op),
          parse_mask_pooling(std::string(pooling_method), op)};
}

// The same for the backward, with its gradient, output and stats checked too.
inline SmoothMaskCall smooth_mask_backward_call(const at::Tensor& grad, const at::Tensor& mask_in,
                                                const at::Tensor& weight, const at::Tensor& full,
                                                const at::Tensor& stats, int64_t step, int64_t padding,
                                                c10::string_view pooling_method, double coldness, const char* op) {
  SmoothMaskCall call = smooth_mask_call(mask_in, weight, step, padding, pooling_method, coldness, op);
  check_smooth_mask_backward_args(grad, mask_in, full, stats, call.g, call.pooling, op);
  return call;
}

// The forward's outputs: the pooled full mask (K, 1, H, W) and the softmax stats (K, 2 or 0, H, W).
inline std::tuple<at::Tensor, at::Tensor> smooth_mask_outputs(const at::Tensor& mask_in, const SmoothMaskCall& call) {
  const SmoothMaskGeometry& g = call.g;
  const int64_t stats = call.pooling == MaskPooling::Softmax ? 2 : 0;
  return {at::empty({g.masks, 1, g.out_h, g.out_w}, mask_in.options()),
          at::empty({g.masks, stats, g.out_h, g.out_w}, mask_in.options())};
}

}  // namespace xaifast
