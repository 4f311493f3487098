// CPU kernels of the excitation-backprop ops: one fused, vectorised pass each (ATen would make
// a temporary for output + eps first), split into chunks with at::parallel_for.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "cpu/allocation.h"
#include "cpu/vector_math.h"
#include "excitation.h"

namespace xaifast {
namespace {

constexpr int64_t kGrain = 1 << 15;

at::Tensor ebp_normalize_cpu(const at::Tensor& grad, const at::Tensor& output, double eps) {
  check_elementwise_pair(grad, output, "xaifast::ebp_normalize", "grad", "output");
  const auto [g, o] = same_layout(grad, output);
  at::Tensor out = cpu::empty_output_like(g);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "ebp_normalize_cpu", [&] {
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* op = o.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    const scalar_t shift = static_cast<scalar_t>(eps);
    at::parallel_for(0, g.numel(), kGrain, [&](int64_t begin, int64_t end) {
      cpu::divide_shifted(end - begin, gp + begin, op + begin, shift, dst + begin);
    });
  });
  return out;
}

at::Tensor ebp_product_cpu(const at::Tensor& input, const at::Tensor& grad) {
  check_elementwise_pair(input, grad, "xaifast::ebp_product", "input", "grad");
  const auto [a, b] = same_layout(input, grad);
  at::Tensor out = cpu::empty_output_like(a);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ebp_product_cpu", [&] {
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, a.numel(), kGrain, [&](int64_t begin, int64_t end) {
      cpu::multiply(end - begin, ap + begin, bp + begin, dst + begin);
    });
  });
  return out;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) {
  m.impl("ebp_normalize", &xaifast::ebp_normalize_cpu);
  m.impl("ebp_product", &xaifast::ebp_product_cpu);
}
