// CUDA kernels of xaifast::pyramid_lookup and its backward: one thread per mask pixel, the level
// split of csrc/common/pyramid.h (the CPU kernel's) computed once and used for every channel.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/pyramid.h"
#include "cuda/launch.h"
#include "pyramid_lookup.h"

namespace xaifast {
namespace {

template <typename T>
__global__ void lookup_forward(const T* __restrict__ pyramid, const T* __restrict__ mask, int64_t masks,
                               int64_t levels, int64_t channels, int64_t plane, int64_t pyramid_stride,
                               T* __restrict__ out) {
  const int64_t level_size = channels * plane;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < masks * plane; i += gridDim.x * blockDim.x) {
    const int64_t k = i / plane, pixel = i % plane;
    int64_t lo, hi;
    T frac;
    level_split<T>(mask[i], levels, lo, hi, frac);
    const T* base = pyramid + k * pyramid_stride + pixel;
    for (int64_t c = 0; c < channels; ++c) {
      const T below = base[lo * level_size + c * plane], above = base[hi * level_size + c * plane];
      out[(k * channels + c) * plane + pixel] = (T(1) - frac) * below + frac * above;
    }
  }
}

template <typename T>
__global__ void lookup_backward(const T* __restrict__ grad, const T* __restrict__ pyramid,
                                const T* __restrict__ mask, int64_t masks, int64_t levels, int64_t channels,
                                int64_t plane, int64_t pyramid_stride, T* __restrict__ grad_mask) {
  const int64_t level_size = channels * plane;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < masks * plane; i += gridDim.x * blockDim.x) {
    const int64_t k = i / plane, pixel = i % plane;
    int64_t lo, hi;
    T frac;
    level_split<T>(mask[i], levels, lo, hi, frac);
    const T* base = pyramid + k * pyramid_stride + pixel;
    T above = 0, below = 0;  // kept apart, as autograd forms them through the reference's lerp
    for (int64_t c = 0; c < channels; ++c) {
      const T g = grad[(k * channels + c) * plane + pixel];
      above += g * base[hi * level_size + c * plane];
      below += g * base[lo * level_size + c * plane];
    }
    grad_mask[i] = (above - below) * static_cast<T>(levels - 1);
  }
}

at::Tensor pyramid_lookup_cuda(const at::Tensor& pyramid, const at::Tensor& mask) {
  check_pyramid_lookup_args(pyramid, mask, "xaifast::pyramid_lookup");
  c10::cuda::CUDAGuard guard(pyramid.device());
  const at::Tensor p = pyramid.contiguous(), m = mask.contiguous();
  const int64_t masks = m.size(0), levels = p.size(-4), channels = p.size(-3), plane = m.size(2) * m.size(3);
  const int64_t stride = p.dim() == 4 ? 0 : levels * channels * plane;
  at::Tensor out = at::empty({masks, channels, m.size(2), m.size(3)}, p.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "pyramid_lookup_cuda", [&] {
    lookup_forward<scalar_t><<<blocks_for(masks * plane), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        p.const_data_ptr<scalar_t>(), m.const_data_ptr<scalar_t>(), masks, levels, channels, plane, stride,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor pyramid_lookup_backward_cuda(const at::Tensor& grad, const at::Tensor& pyramid, const at::Tensor& mask) {
  check_pyramid_lookup_args(pyramid, mask, "xaifast::_pyramid_lookup_backward");
  c10::cuda::CUDAGuard guard(pyramid.device());
  const at::Tensor p = pyramid.contiguous(), m = mask.contiguous(), g = grad.contiguous();
  const int64_t masks = m.size(0), levels = p.size(-4), channels = p.size(-3), plane = m.size(2) * m.size(3);
  TORCH_CHECK_VALUE(g.dim() == 4 && g.size(0) == masks && g.size(1) == channels && g.size(2) == m.size(2) &&
                        g.size(3) == m.size(3) && g.scalar_type() == p.scalar_type(),
                    "xaifast::_pyramid_lookup_backward: grad must be (K, C, H, W) like the output, got ", g.sizes());
  const int64_t stride = p.dim() == 4 ? 0 : levels * channels * plane;
  at::Tensor grad_mask = at::empty(m.sizes(), m.options());
  if (grad_mask.numel() == 0) return grad_mask;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "pyramid_lookup_backward_cuda", [&] {
    lookup_backward<scalar_t><<<blocks_for(masks * plane), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        g.const_data_ptr<scalar_t>(), p.const_data_ptr<scalar_t>(), m.const_data_ptr<scalar_t>(), masks, levels,
        channels, plane, stride, grad_mask.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_mask;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CUDA, m) {
  m.impl("pyramid_lookup", &xaifast::pyramid_lookup_cuda);
  m.impl("_pyramid_lookup_backward", &xaifast::pyramid_lookup_backward_cuda);
}
