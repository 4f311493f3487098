// CUDA kernels of the excitation-backprop ops: grid-stride elementwise loops, opmath arithmetic.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_strided.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/launch.h"

#include "excitation.h"

namespace xaifast {
namespace {

template <typename scalar_t>
__global__ void normalize_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ output,
                                 double eps, int64_t n, scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = static_cast<scalar_t>(static_cast<acc_t>(grad[i]) / (static_cast<acc_t>(output[i]) + static_cast<acc_t>(eps)));
}

template <typename scalar_t>
__global__ void product_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t n,
                               scalar_t* __restrict__ out) {
  using acc_t = at::opmath_type<scalar_t>;
  for (int64_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = static_cast<scalar_t>(static_cast<acc_t>(a[i]) * static_cast<acc_t>(b[i]));
}

at::Tensor ebp_normalize_cuda(const at::Tensor& grad, const at::Tensor& output, double eps) {
  check_elementwise_pair(grad, output, "xaifast::ebp_normalize", "grad", "output");
  c10::cuda::CUDAGuard guard(grad.device());
  const auto [g, o] = same_layout(grad, output);
  at::Tensor out = at::empty_strided(g.sizes(), g.strides(), g.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "ebp_normalize_cuda", [&] {
    normalize_kernel<scalar_t><<<blocks_for(g.numel()), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        g.const_data_ptr<scalar_t>(), o.const_data_ptr<scalar_t>(), eps, g.numel(), out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor ebp_product_cuda(const at::Tensor& input, const at::Tensor& grad) {
  check_elementwise_pair(input, grad, "xaifast::ebp_product", "input", "grad");
  c10::cuda::CUDAGuard guard(input.device());
  const auto [a, b] = same_layout(input, grad);
  at::Tensor out = at::empty_strided(a.sizes(), a.strides(), a.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, a.scalar_type(), "ebp_product_cuda", [&] {
    product_kernel<scalar_t><<<blocks_for(a.numel()), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), a.numel(), out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CUDA, m) {
  m.impl("ebp_normalize", &xaifast::ebp_normalize_cuda);
  m.impl("ebp_product", &xaifast::ebp_product_cuda);
}
