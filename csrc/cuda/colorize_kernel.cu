// CUDA kernel of xaifast::colorize: one thread per pixel, the index math of
// csrc/common/colorize.h (the CPU kernel's), then the palette lookup.
#include <ATen/core/Tensor.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/maximum.h>

#include <tuple>
#include <utility>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/launch.h"

#include "colorize.h"
#include "common/colorize.h"

namespace xaifast {
namespace {

template <typename X, typename Diff, typename Span, typename Quotient>
__global__ void colorize_kernel(const X* __restrict__ maps, const double* __restrict__ lo,
                                const double* __restrict__ hi, const uint8_t* __restrict__ palette, int64_t pixels,
                                int64_t plane, uint8_t* __restrict__ out) {
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < pixels; i += gridDim.x * blockDim.x) {
    const int64_t map = i / plane;
    const Quotient span = static_cast<Quotient>(static_cast<Span>(hi[map]) - static_cast<Span>(lo[map]));
    const uint8_t index = palette_index<Diff, Quotient>(maps[i], static_cast<Diff>(lo[map]), span);
    out[3 * i] = palette[3 * index];
    out[3 * i + 1] = palette[3 * index + 1];
    out[3 * i + 2] = palette[3 * index + 2];
  }
}

// Automatic bounds with ATen's NaN-propagating reductions, in the heatmaps' dtype.
std::pair<at::Tensor, at::Tensor> bounds_cuda(const at::Tensor& maps, const c10::optional<at::Tensor>& vmin,
                                              const c10::optional<at::Tensor>& vmax, bool symmetric) {
  at::Tensor lo, hi;
  if (!vmin.has_value() || !vmax.has_value()) {
    std::tie(lo, hi) = at::aminmax(maps.reshape({maps.size(0), -1}), 1);
    if (symmetric) {
      hi = at::maximum(lo.abs(), hi.abs());
      lo = -hi;
    }
  }
  if (vmin.has_value()) lo = *vmin;
  if (vmax.has_value()) hi = *vmax;
  return {lo.to(at::kDouble).contiguous(), hi.to(at::kDouble).contiguous()};
}

void colorize_into_cuda(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                        const c10::optional<at::Tensor>& vmax, const at::Tensor& palette, bool symmetric,
                        at::Tensor& out) {
  c10::cuda::CUDAGuard guard(heatmaps.device());
  const at::Tensor maps = heatmaps.contiguous(), table = palette.contiguous();
  if (out.numel() == 0) return;
  const auto [lo, hi] = bounds_cuda(maps, vmin, vmax, symmetric);
  const int64_t plane = maps.size(1) * maps.size(2), pixels = maps.size(0) * plane;
  const int blocks = blocks_for(pixels);
  dispatch_colorize_types(maps, vmin, vmax, [&](auto x_tag, auto diff_tag, auto span_tag, auto quotient_tag) {
    using X = decltype(x_tag);
    colorize_kernel<X, decltype(diff_tag), decltype(span_tag), decltype(quotient_tag)>
        <<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            maps.const_data_ptr<X>(), lo.const_data_ptr<double>(), hi.const_data_ptr<double>(),
            table.const_data_ptr<uint8_t>(), pixels, plane, out.mutable_data_ptr<uint8_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

at::Tensor colorize_cuda(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                         const c10::optional<at::Tensor>& vmax, const at::Tensor& palette, bool symmetric) {
  check_colorize_args(heatmaps, vmin, vmax, palette);
  at::Tensor out = at::empty({heatmaps.size(0), heatmaps.size(1), heatmaps.size(2), 3},
                             heatmaps.options().dtype(at::kByte));
  colorize_into_cuda(heatmaps, vmin, vmax, palette, symmetric, out);
  return out;
}

void colorize_into_op_cuda(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                              const c10::optional<at::Tensor>& vmax, const at::Tensor& palette, bool symmetric,
                              at::Tensor out) {
  check_colorize_args(heatmaps, vmin, vmax, palette);
  check_colorize_out(heatmaps, out);
  colorize_into_cuda(heatmaps, vmin, vmax, palette, symmetric, out);
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CUDA, m) {
  m.impl("colorize", &xaifast::colorize_cuda);
  m.impl("colorize_into", &xaifast::colorize_into_op_cuda);
}
