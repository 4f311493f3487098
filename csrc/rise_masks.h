// Argument checks of the rise_masks op, shared by its CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include "common/rise.h"

namespace xaifast {

inline void check_rise_masks_args(const at::Tensor& grid, const at::Tensor& shifts, int64_t height, int64_t width,
                                  const c10::optional<at::Tensor>& input, const char* op) {
  TORCH_CHECK_VALUE(grid.dim() == 3, op, ": grid must be (n, gh, gw), got shape ", grid.sizes());
  TORCH_CHECK_VALUE(grid.size(1) >= 1 && grid.size(2) >= 1, op, ": grid must have at least one cell");
  TORCH_CHECK_VALUE(shifts.dim() == 2 && shifts.size(0) == grid.size(0) && shifts.size(1) == 2, op,
                    ": shifts must be (n, 2) with n = ", grid.size(0), ", got shape ", shifts.sizes());
  TORCH_CHECK_TYPE(shifts.scalar_type() == at::kLong, op, ": shifts must be int64, got ", shifts.scalar_type());
  TORCH_CHECK_VALUE(shifts.device() == grid.device(), op, ": shifts must be on the grid's device ", grid.device());
  TORCH_CHECK_VALUE(height >= grid.size(1) && width >= grid.size(2), op, ": the mask (", height, " x ", width,
                    ") must be at least as large as the grid (", grid.size(1), " x ", grid.size(2), ")");
  if (input.has_value()) {
    const at::Tensor& image = *input;
    TORCH_CHECK_VALUE(image.dim() == 3 && image.size(1) == height && image.size(2) == width, op,
                      ": input must be (C, ", height, ", ", width, "), got shape ", image.sizes());
    TORCH_CHECK_TYPE(image.scalar_type() == grid.scalar_type(), op, ": input dtype ", image.scalar_type(),
                     " must match grid dtype ", grid.scalar_type());
    TORCH_CHECK_VALUE(image.device() == grid.device(), op, ": input must be on the grid's device ", grid.device());
  }
}

}  // namespace xaifast
