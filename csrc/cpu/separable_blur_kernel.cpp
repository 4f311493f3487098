// CPU kernels of xaifast::separable_blur and its backward.
//
// Forward, per output row (plane, yo), fused so no intermediate image is stored:
//   1. vertical: the K input rows under the window (padding resolved by pad_source) are summed
//      with the taps into one row of W values;
//   2. that row is padded (W + 2P) and correlated horizontally with the taps.
// Backward, the adjoint in two gathers (deterministic, no atomics):
//   A. per (plane, yo): the horizontal adjoint of grad's row, folded back onto W columns;
//   B. per (plane, r): each input row gathers the rows of A whose windows read it
//      (pad_preimages + covering_outputs), tap weights summed per row first.
// Float16/bfloat16 run through float32 and are rounded once at the end.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "cpu/allocation.h"
#include "cpu/vector_math.h"
#include "separable_blur.h"

namespace xaifast {
namespace {

// Rows of the output (or input) handled per task: enough multiply-adds to amortise scheduling.
inline int64_t grain_for(int64_t work_per_row) {
  constexpr int64_t kWorkPerTask = 1 << 16;
  return std::max<int64_t>(1, kWorkPerTask / std::max<int64_t>(1, work_per_row));
}

template <typename T>
void blur_forward(const T* input, const T* taps, T value, const BlurGeometry& g, T* out) {
  const int64_t W = g.width, K = g.taps, P = g.pad, s = g.stride;
  const int64_t padded_width = W + 2 * P;
  T tap_sum = 0;
  for (int64_t k = 0; k < K; ++k) tap_sum += taps[k];
  const T padded_column = value * tap_sum;  // a constant column stays constant under the vertical pass

  at::parallel_for(0, g.planes * g.out_height, grain_for(K * (W + g.out_width)), [&](int64_t begin, int64_t end) {
    std::vector<T> row(W), padded(padded_width), weights(K);
    std::vector<const T*> sources(K);
    for (int64_t index = begin; index < end; ++index) {
      const int64_t plane = index / g.out_height, yo = index % g.out_height;
      const T* image = input + plane * g.height * W;
      int64_t count = 0;
      T constant_weight = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t src = pad_source(yo * s + k - P, g.height, g.mode);
        if (src < 0) {
          constant_weight += taps[k];
        } else {
          weights[count] = taps[k];
          sources[count++] = image + src * W;
        }
      }
      cpu::weighted_rows(W, count, weights.data(), sources.data(), padded.data() + P);
      if (constant_weight != 0) {
        for (int64_t x = 0; x < W; ++x) padded[P + x] += constant_weight * value;
      }
      for (int64_t b = 0; b < P; ++b) {  // left and right padding columns
        const int64_t left = pad_source(b - P, W, g.mode), right = pad_source(W + b, W, g.mode);
        padded[b] = left < 0 ? padded_column : padded[P + left];
        padded[P + W + b] = right < 0 ? padded_column : padded[P + right];
      }
      T* out_row = out + index * g.out_width;
      if (s == 1) {
        cpu::correlate_valid(g.out_width, K, taps, padded.data(), out_row);
      } else {
        for (int64_t xo = 0; xo < g.out_width; ++xo) {
          T acc = 0;
          for (int64_t k = 0; k < K; ++k) acc += taps[k] * padded[xo * s + k];
          out_row[xo] = acc;
        }
      }
    }
  });
}

template <typename T>
void blur_backward(const T* grad, const T* taps, const BlurGeometry& g, T* grad_input) {
  const int64_t W = g.width, H = g.height, K = g.taps, P = g.pad, s = g.stride;
  const int64_t Ho = g.out_height, Wo = g.out_width;
  std::vector<T> columns(g.planes * Ho * W);  // stage A: grad of the vertical pass's output

  // With stride 1 the horizontal adjoint is a correlation of the zero-extended grad row with the
  // reversed taps, which runs through the same blocked loop as the forward pass.
  std::vector<T> reversed(taps, taps + K);
  std::reverse(reversed.begin(), reversed.end());

  at::parallel_for(0, g.planes * Ho, grain_for(K * (W + Wo)), [&](int64_t begin, int64_t end) {
    std::vector<T> padded(W + 2 * P), extended(s == 1 ? Wo + 2 * (K - 1) : 0);
    for (int64_t index = begin; index < end; ++index) {
      const T* grad_row = grad + index * Wo;
      if (s == 1) {
        std::copy(grad_row, grad_row + Wo, extended.begin() + (K - 1));
        cpu::correlate_valid(W + 2 * P, K, reversed.data(), extended.data(), padded.data());
      } else {
        std::fill(padded.begin(), padded.end(), T(0));
        for (int64_t xo = 0; xo < Wo; ++xo)
          for (int64_t k = 0; k < K; ++k) padded[xo * s + k] += taps[k] * grad_row[xo];
      }
      T* column_row = columns.data() + index * W;
      for (int64_t x = 0; x < W; ++x) column_row[x] = padded[P + x];
      for (int64_t b = 0; b < P; ++b) {  // fold the padding back onto the columns it copied
        const int64_t left = pad_source(b - P, W, g.mode), right = pad_source(W + b, W, g.mode);
        if (left >= 0) column_row[left] += padded[b];
        if (right >= 0) column_row[right] += padded[P + W + b];
      }
    }
  });

  at::parallel_for(0, g.planes * H, grain_for(K * W), [&](int64_t begin, int64_t end) {
    std::vector<T> row_weight(Ho);
    std::vector<T> weights;
    std::vector<const T*> sources;
    for (int64_t index = begin; index < end; ++index) {
      const int64_t plane = index / H, r = index % H;
      int64_t lo[3], hi[3];
      const int ranges = pad_preimages(r, H, P, g.mode, lo, hi);
      // Output rows whose windows read input row r, over every padded position that maps to r.
      int64_t first = Ho, last = -1;
      for (int range = 0; range < ranges; ++range) {
        for (int64_t a = lo[range]; a <= hi[range]; ++a) {
          int64_t yo_lo, yo_hi;
          covering_outputs(a + P, K, s, Ho, yo_lo, yo_hi);
          if (yo_lo > yo_hi) continue;
          first = std::min(first, yo_lo);
          last = std::max(last, yo_hi);
        }
      }
      for (int64_t yo = first; yo <= last; ++yo) row_weight[yo] = 0;
      for (int range = 0; range < ranges; ++range) {
        for (int64_t a = lo[range]; a <= hi[range]; ++a) {
          int64_t yo_lo, yo_hi;
          covering_outputs(a + P, K, s, Ho, yo_lo, yo_hi);
          for (int64_t yo = yo_lo; yo <= yo_hi; ++yo) row_weight[yo] += taps[a + P - yo * s];
        }
      }
      weights.clear();
      sources.clear();
      const T* plane_columns = columns.data() + plane * Ho * W;
      for (int64_t yo = first; yo <= last; ++yo) {
        weights.push_back(row_weight[yo]);
        sources.push_back(plane_columns + yo * W);
      }
      cpu::weighted_rows(W, static_cast<int64_t>(weights.size()), weights.data(), sources.data(),
                         grad_input + index * W);
    }
  });
}

at::Tensor separable_blur_cpu(const at::Tensor& input, const at::Tensor& weight, int64_t stride, int64_t padding,
                              c10::string_view padding_mode, double padding_value) {
  TORCH_CHECK_VALUE(input.device().is_cpu() && weight.device().is_cpu(),
                    "xaifast::separable_blur: CPU kernel got tensors on ", input.device(), " and ", weight.device());
  check_blur_dtypes(input, weight, "xaifast::separable_blur", "input");
  const BlurGeometry g = blur_geometry(input.sizes(), weight, stride, padding, padding_mode);
  const bool reduced = input.scalar_type() == at::kHalf || input.scalar_type() == at::kBFloat16;
  const at::Tensor x = (reduced ? input.to(at::kFloat) : input).contiguous();
  const at::Tensor w = (reduced ? weight.to(at::kFloat) : weight).contiguous();
  at::Tensor out = cpu::empty_output({input.size(0), input.size(1), g.out_height, g.out_width}, x.options());
  if (out.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "separable_blur_cpu", [&] {
      blur_forward<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                             static_cast<scalar_t>(padding_value), g, out.mutable_data_ptr<scalar_t>());
    });
  }
  return reduced ? out.to(input.scalar_type()) : out;
}

at::Tensor separable_blur_backward_cpu(const at::Tensor& grad, const at::Tensor& weight, at::IntArrayRef input_size,
                                       int64_t stride, int64_t padding, c10::string_view padding_mode) {
  TORCH_CHECK_VALUE(grad.device().is_cpu() && weight.device().is_cpu(),
                    "xaifast::_separable_blur_backward: CPU kernel got tensors on ", grad.device(), " and ",
                    weight.device());
  check_blur_dtypes(grad, weight, "xaifast::_separable_blur_backward", "grad");
  const BlurGeometry g = blur_geometry(input_size, weight, stride, padding, padding_mode);
  check_blur_grad(grad, g, input_size);
  const bool reduced = grad.scalar_type() == at::kHalf || grad.scalar_type() == at::kBFloat16;
  const at::Tensor go = (reduced ? grad.to(at::kFloat) : grad).contiguous();
  const at::Tensor w = (reduced ? weight.to(at::kFloat) : weight).contiguous();
  at::Tensor grad_input = cpu::empty_output(input_size, go.options());
  if (grad_input.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(go.scalar_type(), "separable_blur_backward_cpu", [&] {
      blur_backward<scalar_t>(go.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), g,
                              grad_input.mutable_data_ptr<scalar_t>());
    });
  }
  return reduced ? grad_input.to(grad.scalar_type()) : grad_input;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) {
  m.impl("separable_blur", &xaifast::separable_blur_cpu);
  m.impl("_separable_blur_backward", &xaifast::separable_blur_backward_cpu);
}
