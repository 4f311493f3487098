// CUDA kernels of xaifast::smooth_mask and its backward: the per-pixel math of
// csrc/common/smooth_mask.h (the CPU kernel's), one thread per output pixel for the forward and
// one thread per parameter for the backward, which gathers over the pixels whose window reads
// it (no atomics, so the sums run in a fixed order).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <string>

#include "common/smooth_mask.h"
#include "cuda/launch.h"
#include "smooth_mask.h"

namespace xaifast {
namespace {

template <typename T>
__device__ __forceinline__ T window_value(const T* mask, const T* weight, const SmoothMaskGeometry& g, int64_t k,
                                          int64_t y, int64_t x, int64_t i, int64_t j) {
  const long long a = mask_param_index(y / g.step, i, g.padding, g.in_h);
  const long long b = mask_param_index(x / g.step, j, g.padding, g.in_w);
  if (a < 0 || b < 0) return T(0);
  const T w = weight[((i * g.window + j) * g.weight_h + y % g.weight_h) * g.weight_w + x % g.weight_w];
  return w * mask[(k * g.in_h + a) * g.in_w + b];
}

template <typename T>
__global__ void smooth_mask_forward(const T* __restrict__ mask, const T* __restrict__ weight, SmoothMaskGeometry g,
                                    MaskPooling pooling, T coldness, T* __restrict__ out, T* __restrict__ stats) {
  const int64_t plane = g.out_h * g.out_w;
  for (int64_t index = blockIdx.x * blockDim.x + threadIdx.x; index < g.masks * plane;
       index += gridDim.x * blockDim.x) {
    const int64_t k = index / plane, y = (index % plane) / g.out_w, x = index % g.out_w;
    if (pooling == MaskPooling::Softmax) {
      T top = -INFINITY;
      for (int64_t i = 0; i < g.window; ++i)
        for (int64_t j = 0; j < g.window; ++j) top = max(top, coldness * window_value(mask, weight, g, k, y, x, i, j));
      T sum = 0, dot = 0;
      for (int64_t i = 0; i < g.window; ++i) {
        for (int64_t j = 0; j < g.window; ++j) {
          const T v = window_value(mask, weight, g, k, y, x, i, j);
          const T e = mask_exp(coldness * v - top);
          sum += e;
          dot += v * e;
        }
      }
      out[index] = dot / sum;
      stats[2 * k * plane + index % plane] = top;
      stats[(2 * k + 1) * plane + index % plane] = sum;
    } else {
      T sum = 0;
      for (int64_t i = 0; i < g.window; ++i)
        for (int64_t j = 0; j < g.window; ++j) sum += window_value(mask, weight, g, k, y, x, i, j);
      out[index] = pooling == MaskPooling::Sum ? sum : sigmoid_pool<T>(sum, coldness);
    }
  }
}

// Parameter (a, b) is window value (i, j) of cell (a + padding - i, b + padding - j).
template <typename T>
__global__ void smooth_mask_backward(const T* __restrict__ grad, const T* __restrict__ mask,
                                     const T* __restrict__ weight, const T* __restrict__ full,
                                     const T* __restrict__ stats, SmoothMaskGeometry g, MaskPooling pooling, T coldness,
                                     T* __restrict__ grad_in) {
  const int64_t params = g.in_h * g.in_w, plane = g.out_h * g.out_w;
  for (int64_t index = blockIdx.x * blockDim.x + threadIdx.x; index < g.masks * params;
       index += gridDim.x * blockDim.x) {
    const int64_t k = index / params, a = (index % params) / g.in_w, b = index % g.in_w;
    const T m = mask[index];
    T total = 0;
    for (int64_t i = 0; i < g.window; ++i) {
      const int64_t r = a + g.padding - i;
      if (r < 0 || r >= g.mid_h) continue;
      for (int64_t j = 0; j < g.window; ++j) {
        const int64_t c = b + g.padding - j;
        if (c < 0 || c >= g.mid_w) continue;
        const T* w = weight + (i * g.window + j) * g.weight_h * g.weight_w;
        const int64_t y_end = min(g.out_h, (r + 1) * g.step), x_end = min(g.out_w, (c + 1) * g.step);
        for (int64_t y = r * g.step; y < y_end; ++y) {
          for (int64_t x = c * g.step; x < x_end; ++x) {
            const int64_t pixel = y * g.out_w + x;
            const T wk = w[(y % g.weight_h) * g.weight_w + x % g.weight_w];
            const T gr = grad[k * plane + pixel], o = full[k * plane + pixel];
            if (pooling == MaskPooling::Softmax) {
              const T v = wk * m;
              T offset, slope;
              softmax_pool_grad_terms<T>(gr, o, coldness, offset, slope);
              const T share = mask_exp(coldness * v - stats[2 * k * plane + pixel]) / stats[(2 * k + 1) * plane + pixel];
              total += share * (offset + slope * v) * wk;
            } else {
              total += linear_pool_grad<T>(pooling, gr, o, coldness) * wk;
            }
          }
        }
      }
    }
    grad_in[index] = total;
  }
}

std::tuple<at::Tensor, at::Tensor> smooth_mask_cuda(const at::Tensor& mask_in, const at::Tensor& weight,
                                                    int64_t step, int64_t padding, c10::string_view pooling_method,
                                                    double coldness) {
  const SmoothMaskCall call =
      smooth_mask_call(mask_in, weight, step, padding, pooling_method, coldness, "xaifast::smooth_mask");
  c10::cuda::CUDAGuard guard(mask_in.device());
  const at::Tensor m = mask_in.contiguous(), w = weight.contiguous();
  at::Tensor out, stats;
  std::tie(out, stats) = smooth_mask_outputs(m, call);
  const int64_t n = out.numel();
  if (n == 0) return {out, stats};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "smooth_mask_cuda", [&] {
    smooth_mask_forward<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        m.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), call.g, call.pooling, static_cast<scalar_t>(coldness),
        out.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, stats};
}

at::Tensor smooth_mask_backward_cuda(const at::Tensor& grad, const at::Tensor& mask_in, const at::Tensor& weight,
                                    const at::Tensor& full, const at::Tensor& stats, int64_t step, int64_t padding,
                                    c10::string_view pooling_method, double coldness) {
  const SmoothMaskCall call = smooth_mask_backward_call(grad, mask_in, weight, full, stats, step, padding,
                                                        pooling_method, coldness, "xaifast::_smooth_mask_backward");
  c10::cuda::CUDAGuard guard(mask_in.device());
  const at::Tensor gr = grad.contiguous(), m = mask_in.contiguous(), w = weight.contiguous(), f = full.contiguous(),
                   st = stats.contiguous();
  at::Tensor grad_in = at::empty({call.g.masks, 1, call.g.in_h, call.g.in_w}, m.options());
  const int64_t n = grad_in.numel();
  if (n == 0) return grad_in;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "smooth_mask_backward_cuda", [&] {
    smooth_mask_backward<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        gr.data_ptr<scalar_t>(), m.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), f.data_ptr<scalar_t>(),
        st.data_ptr<scalar_t>(), call.g, call.pooling, static_cast<scalar_t>(coldness), grad_in.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_in;
}

}  // namespace

TORCH_LIBRARY_IMPL(xaifast, CUDA, m) {
  m.impl("smooth_mask", &smooth_mask_cuda);
  m.impl("_smooth_mask_backward", &smooth_mask_backward_cuda);
}

}  // namespace xaifast
