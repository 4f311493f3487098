// CUDA kernels of xaifast::rise_masks and its backward: one thread per output pixel for the
// forward (the two grid taps per axis from csrc/common/rise.h, as on the CPU), one thread per
// grid cell for the backward (a gather over the pixels that read the cell: deterministic).
// Shifts are validated by the Python wrapper; here they are clamped so a bad one cannot read
// out of bounds.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/launch.h"

#include "common/rise.h"
#include "rise_masks.h"

namespace xaifast {
namespace {

__device__ __forceinline__ int64_t clamp_shift(int64_t shift, int64_t cell) {
  return shift < 0 ? 0 : (shift >= cell ? cell - 1 : shift);
}

template <typename T>
__global__ void masks_forward(const T* __restrict__ grid, const int64_t* __restrict__ shifts,
                              const T* __restrict__ image, int64_t channels, RiseAxis ay, RiseAxis ax,
                              int64_t n_masks, T* __restrict__ out) {
  const int64_t H = ay.size, W = ax.size, pixels = n_masks * H * W;
  for (int64_t index = blockIdx.x * blockDim.x + threadIdx.x; index < pixels; index += gridDim.x * blockDim.x) {
    const int64_t x = index % W, y = (index / W) % H, n = index / (H * W);
    int64_t r0, r1, c0, c1;
    T rw0, rw1, cw0, cw1;
    rise_taps<T>(ay, clamp_shift(shifts[2 * n], ay.cell), y, r0, r1, rw0, rw1);
    rise_taps<T>(ax, clamp_shift(shifts[2 * n + 1], ax.cell), x, c0, c1, cw0, cw1);
    const T* g = grid + n * ay.cells * ax.cells;
    const T mask = rw0 * (cw0 * g[r0 * ax.cells + c0] + cw1 * g[r0 * ax.cells + c1]) +
                   rw1 * (cw0 * g[r1 * ax.cells + c0] + cw1 * g[r1 * ax.cells + c1]);
    if (image == nullptr) {
      out[index] = mask;
    } else {
      T* dst = out + n * channels * H * W + y * W + x;
      for (int64_t c = 0; c < channels; ++c) dst[c * H * W] = image[(c * H + y) * W + x] * mask;
    }
  }
}

// grad_grid[n, i, j] = sum over pixels (y, x) of grad[n, y, x] * row_weight(y -> i) * col_weight(x -> j)
template <typename T>
__global__ void masks_backward(const T* __restrict__ grad, const int64_t* __restrict__ shifts, RiseAxis ay,
                               RiseAxis ax, int64_t n_masks, T* __restrict__ grad_grid) {
  const int64_t cells = ay.cells * ax.cells, total = n_masks * cells;
  for (int64_t index = blockIdx.x * blockDim.x + threadIdx.x; index < total; index += gridDim.x * blockDim.x) {
    const int64_t j = index % ax.cells, i = (index / ax.cells) % ay.cells, n = index / cells;
    const int64_t dy = clamp_shift(shifts[2 * n], ay.cell), dx = clamp_shift(shifts[2 * n + 1], ax.cell);
    const T* g = grad + n * ay.size * ax.size;
    T acc = 0;
    for (int64_t y = 0; y < ay.size; ++y) {
      int64_t r0, r1;
      T rw0, rw1;
      rise_taps<T>(ay, dy, y, r0, r1, rw0, rw1);
      const T row_weight = (r0 == i ? rw0 : T(0)) + (r1 == i ? rw1 : T(0));
      if (row_weight == T(0)) continue;
      T row_sum = 0;
      for (int64_t x = 0; x < ax.size; ++x) {
        int64_t c0, c1;
        T cw0, cw1;
        rise_taps<T>(ax, dx, x, c0, c1, cw0, cw1);
        const T col_weight = (c0 == j ? cw0 : T(0)) + (c1 == j ? cw1 : T(0));
        row_sum += col_weight * g[y * ax.size + x];
      }
      acc += row_weight * row_sum;
    }
    grad_grid[index] = acc;
  }
}

at::Tensor rise_masks_cuda(const at::Tensor& grid, const at::Tensor& shifts, int64_t height, int64_t width,
                           const c10::optional<at::Tensor>& input) {
  check_rise_masks_args(grid, shifts, height, width, input, "xaifast::rise_masks");
  TORCH_CHECK_VALUE(grid.is_cuda(), "xaifast::rise_masks: CUDA kernel got a grid on ", grid.device());
  c10::cuda::CUDAGuard guard(grid.device());
  const at::Tensor g = grid.contiguous(), s = shifts.contiguous();
  const RiseAxis ay = rise_axis(grid.size(1), height), ax = rise_axis(grid.size(2), width);
  const at::Tensor image = input.has_value() ? input->contiguous() : at::Tensor();
  const int64_t channels = input.has_value() ? input->size(0) : 1;
  at::Tensor out = at::empty({grid.size(0), channels, height, width}, g.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "rise_masks_cuda", [&] {
    masks_forward<scalar_t><<<blocks_for(grid.size(0) * height * width), kThreads, 0,
                              c10::cuda::getCurrentCUDAStream()>>>(
        g.const_data_ptr<scalar_t>(), s.const_data_ptr<int64_t>(),
        image.defined() ? image.const_data_ptr<scalar_t>() : nullptr, channels, ay, ax, grid.size(0),
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor rise_masks_backward_cuda(const at::Tensor& grad_masks, const at::Tensor& grid, const at::Tensor& shifts) {
  TORCH_CHECK_VALUE(grad_masks.dim() == 4 && grad_masks.size(0) == grid.size(0) && grad_masks.size(1) == 1,
                    "xaifast::_rise_masks_backward: grad_masks must be (n, 1, H, W), got shape ", grad_masks.sizes());
  check_rise_masks_args(grid, shifts, grad_masks.size(2), grad_masks.size(3), c10::nullopt,
                        "xaifast::_rise_masks_backward");
  c10::cuda::CUDAGuard guard(grid.device());
  const at::Tensor go = grad_masks.contiguous(), s = shifts.contiguous();
  const RiseAxis ay = rise_axis(grid.size(1), go.size(2)), ax = rise_axis(grid.size(2), go.size(3));
  at::Tensor grad_grid = at::empty(grid.sizes(), go.options());
  if (grad_grid.numel() == 0) return grad_grid;
  AT_DISPATCH_FLOATING_TYPES(go.scalar_type(), "rise_masks_backward_cuda", [&] {
    masks_backward<scalar_t><<<blocks_for(grad_grid.numel()), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        go.const_data_ptr<scalar_t>(), s.const_data_ptr<int64_t>(), ay, ax, grid.size(0),
        grad_grid.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_grid;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CUDA, m) {
  m.impl("rise_masks", &xaifast::rise_masks_cuda);
  m.impl("_rise_masks_backward", &xaifast::rise_masks_backward_cuda);
}
