// CUDA kernels of xaifast::separable_blur and its backward: one thread per output element,
// grid-stride loops, the per-element padding math from csrc/common/padding.h (the same code the
// CPU kernels run). Forward: vertical pass into an opmath buffer, then horizontal pass.
// Backward: two gathers (horizontal adjoint, then vertical adjoint), deterministic, no atomics.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/launch.h"

#include "common/padding.h"
#include "separable_blur.h"

namespace xaifast {
namespace {

// columns[plane, yo, x] = sum_k taps[k] * padded_input[yo * s + k, x]
template <typename scalar_t, typename acc_t>
__global__ void vertical_forward(const scalar_t* __restrict__ input, const acc_t* __restrict__ taps, acc_t value,
                                 BlurGeometry g, acc_t* __restrict__ columns) {
  const int64_t n = g.planes * g.out_height * g.width;
  for (int64_t index = blockIdx.x * blockDim.x + threadIdx.x; index < n; index += gridDim.x * blockDim.x) {
    const int64_t x = index % g.width;
    const int64_t yo = (index / g.width) % g.out_height;
    const int64_t plane = index / (g.width * g.out_height);
    const scalar_t* image = input + plane * g.height * g.width;
    acc_t acc = 0;
    for (int64_t k = 0; k < g.taps; ++k) {
      const int64_t src = pad_source(yo * g.stride + k - g.pad, g.height, g.mode);
      acc += taps[k] * (src < 0 ? value : static_cast<acc_t>(image[src * g.width + x]));
    }
    columns[index] = acc;
  }
}

// out[plane, yo, xo] = sum_k taps[k] * padded_columns[yo, xo * s + k]
template <typename scalar_t, typename acc_t>
__global__ void horizontal_forward(const acc_t* __restrict__ columns, const acc_t* __restrict__ taps,
                                   acc_t value, BlurGeometry g, scalar_t* __restrict__ out) {
  // A constant column stays constant under the vertical pass: value * sum(taps). Summed here
  // rather than on the host to avoid a device-to-host sync per call.
  acc_t padded_column = 0;
  if (value != acc_t(0)) {
    for (int64_t k = 0; k < g.taps; ++k) padded_column += taps[k];
    padded_column *= value;
  }
  const int64_t n = g.planes * g.out_height * g.out_width;
  for (int64_t index = blockIdx.x * blockDim.x + threadIdx.x; index < n; index += gridDim.x * blockDim.x) {
    const int64_t xo = index % g.out_width;
    const int64_t row = index / g.out_width;
    const acc_t* source = columns + row * g.width;
    acc_t acc = 0;
    for (int64_t k = 0; k < g.taps; ++k) {
      const int64_t src = pad_source(xo * g.stride + k - g.pad, g.width, g.mode);
      acc += taps[k] * (src < 0 ? padded_column : source[src]);
    }
    out[index] = static_cast<scalar_t>(acc);
  }
}

// grad_columns[plane, yo, c] = sum over padded columns q reading c, outputs xo covering q.
template <typename scalar_t, typename acc_t>
__global__ void horizontal_backward(const scalar_t* __restrict__ grad, const acc_t* __restrict__ taps,
                                    BlurGeometry g, acc_t* __restrict__ grad_columns) {
  const int64_t n = g.planes * g.out_height * g.width;
  for (int64_t index = blockIdx.x * blockDim.x + threadIdx.x; index < n; index += gridDim.x * blockDim.x) {
    const int64_t c = index % g.width;
    const scalar_t* grad_row = grad + (index / g.width) * g.out_width;
    int64_t lo[3], hi[3];
    const int ranges = pad_preimages(c, g.width, g.pad, g.mode, lo, hi);
    acc_t acc = 0;
    for (int range = 0; range < ranges; ++range) {
      for (int64_t a = lo[range]; a <= hi[range]; ++a) {
        const int64_t q = a + g.pad;
        int64_t xo_lo, xo_hi;
        covering_outputs(q, g.taps, g.stride, g.out_width, xo_lo, xo_hi);
        for (int64_t xo = xo_lo; xo <= xo_hi; ++xo) acc += taps[q - xo * g.stride] * static_cast<acc_t>(grad_row[xo]);
      }
    }
    grad_columns[index] = acc;
  }
}

// grad_input[plane, r, x] = sum over padded rows q reading r, outputs yo covering q.
template <typename scalar_t, typename acc_t>
__global__ void vertical_backward(const acc_t* __restrict__ grad_columns, const acc_t* __restrict__ taps,
                                  BlurGeometry g, scalar_t* __restrict__ grad_input) {
  const int64_t n = g.planes * g.height * g.width;
  for (int64_t index = blockIdx.x * blockDim.x + threadIdx.x; index < n; index += gridDim.x * blockDim.x) {
    const int64_t x = index % g.width;
    const int64_t r = (index / g.width) % g.height;
    const int64_t plane = index / (g.width * g.height);
    const acc_t* plane_columns = grad_columns + plane * g.out_height * g.width;
    int64_t lo[3], hi[3];
    const int ranges = pad_preimages(r, g.height, g.pad, g.mode, lo, hi);
    acc_t acc = 0;
    for (int range = 0; range < ranges; ++range) {
      for (int64_t a = lo[range]; a <= hi[range]; ++a) {
        const int64_t q = a + g.pad;
        int64_t yo_lo, yo_hi;
        covering_outputs(q, g.taps, g.stride, g.out_height, yo_lo, yo_hi);
        for (int64_t yo = yo_lo; yo <= yo_hi; ++yo) acc += taps[q - yo * g.stride] * plane_columns[yo * g.width + x];
      }
    }
    grad_input[index] = static_cast<scalar_t>(acc);
  }
}

at::Tensor separable_blur_cuda(const at::Tensor& input, const at::Tensor& weight, int64_t stride, int64_t padding,
                               c10::string_view padding_mode, double padding_value) {
  TORCH_CHECK_VALUE(input.is_cuda() && weight.device() == input.device(),
                    "xaifast::separable_blur: CUDA kernel needs input and weight on one CUDA device, got ",
                    input.device(), " and ", weight.device());
  check_blur_dtypes(input, weight, "xaifast::separable_blur", "input");
  const BlurGeometry g = blur_geometry(input.sizes(), weight, stride, padding, padding_mode);
  c10::cuda::CUDAGuard guard(input.device());
  const at::Tensor x = input.contiguous();
  at::Tensor out = at::empty({input.size(0), input.size(1), g.out_height, g.out_width}, x.options());
  if (out.numel() == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "separable_blur_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor taps = weight.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    at::Tensor columns = at::empty({g.planes, g.out_height, g.width}, taps.options());
    const acc_t value = static_cast<acc_t>(padding_value);
    vertical_forward<scalar_t, acc_t><<<blocks_for(columns.numel()), kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), taps.const_data_ptr<acc_t>(), value, g, columns.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    horizontal_forward<scalar_t, acc_t><<<blocks_for(out.numel()), kThreads, 0, stream>>>(
        columns.const_data_ptr<acc_t>(), taps.const_data_ptr<acc_t>(), value, g,
        out.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor separable_blur_backward_cuda(const at::Tensor& grad, const at::Tensor& weight, at::IntArrayRef input_size,
                                        int64_t stride, int64_t padding, c10::string_view padding_mode) {
  TORCH_CHECK_VALUE(grad.is_cuda() && weight.device() == grad.device(),
                    "xaifast::_separable_blur_backward: CUDA kernel needs grad and weight on one CUDA device");
  check_blur_dtypes(grad, weight, "xaifast::_separable_blur_backward", "grad");
  const BlurGeometry g = blur_geometry(input_size, weight, stride, padding, padding_mode);
  check_blur_grad(grad, g, input_size);
  c10::cuda::CUDAGuard guard(grad.device());
  const at::Tensor go = grad.contiguous();
  at::Tensor grad_input = at::empty(input_size, go.options());
  if (grad_input.numel() == 0) return grad_input;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, go.scalar_type(), "separable_blur_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor taps = weight.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    at::Tensor grad_columns = at::empty({g.planes, g.out_height, g.width}, taps.options());
    horizontal_backward<scalar_t, acc_t><<<blocks_for(grad_columns.numel()), kThreads, 0, stream>>>(
        go.const_data_ptr<scalar_t>(), taps.const_data_ptr<acc_t>(), g, grad_columns.mutable_data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    vertical_backward<scalar_t, acc_t><<<blocks_for(grad_input.numel()), kThreads, 0, stream>>>(
        grad_columns.const_data_ptr<acc_t>(), taps.const_data_ptr<acc_t>(), g,
        grad_input.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_input;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CUDA, m) {
  m.impl("separable_blur", &xaifast::separable_blur_cuda);
  m.impl("_separable_blur_backward", &xaifast::separable_blur_backward_cuda);
}
