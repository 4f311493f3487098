// CPU kernel of xaifast::rise_upsample: out[c, y] = sum_dy sum_i A_dy[y, i] * partial[dy, c, i].
//
// Row y at shift dy reads upsampled position t = y + dy. Over dy in [0, cell) the positions t
// span at most two bilinear segments (cell <= cell_up), and inside a segment the weight of the
// upper grid row is affine in dy: lambda(t) = lambda(t_0) + (t - t_0) / cell_up. So each output
// row needs, per segment, only the sums S0 = sum partial[dy] and S1 = sum (offset) * partial[dy]
// over the segment's shifts: prefix sums for the first segment (anchored at dy = 0), suffix sums
// for the second (anchored at dy = cell - 1), so no sum is a difference of two large ones.
// That is 8 rows of W per output row instead of the 2 * cell of the direct sum (64 at 224 px):
// ~400 M multiply-adds for 1000 classes at 224 x 224 instead of 11 G for the dense product.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "cpu/allocation.h"
#include "common/rise.h"
#include "cpu/vector_math.h"

namespace xaifast {
namespace {

// Per output row y: where the shift range splits, and the bilinear taps at both ends.
template <typename T>
struct RowPlan {
  int64_t split;                 // shifts [0, split) in the first segment, [split, cell) in the second
  int64_t first0, first1;        // grid rows of the first segment (lower, upper tap)
  int64_t second0, second1;      // grid rows of the second segment
  T lambda_start, lambda_end;    // upper-tap weight at dy = 0 and at dy = cell - 1
};

template <typename T>
std::vector<RowPlan<T>> plan_rows(const RiseAxis& axis) {
  std::vector<RowPlan<T>> plans(axis.size);
  for (int64_t y = 0; y < axis.size; ++y) {
    RowPlan<T>& plan = plans[y];
    int64_t c0, c1;
    T w0, w1;
    rise_taps<T>(axis, 0, y, c0, c1, w0, w1);
    plan.first0 = c0; plan.first1 = c1; plan.lambda_start = w1;
    rise_taps<T>(axis, 0, y + axis.cell - 1, c0, c1, w0, w1);
    plan.second0 = c0; plan.second1 = c1; plan.lambda_end = w1;
    // The segment of t = y + dy is floor(src(t)); find the first dy in the end's segment.
    plan.split = axis.cell;
    const int64_t in_len = axis.cells + 2;
    const T scale = static_cast<T>(in_len) / static_cast<T>(axis.cell_up * in_len);
    auto segment = [&](int64_t t) {
      const T src = scale * (static_cast<T>(axis.cell_up + t) + T(0.5)) - T(0.5);
      return static_cast<int64_t>(src < 0 ? T(0) : src);
    };
    const int64_t last_segment = segment(y + axis.cell - 1);
    for (int64_t dy = 0; dy < axis.cell; ++dy) {
      if (segment(y + dy) == last_segment) { plan.split = dy; break; }
    }
  }
  return plans;
}

template <typename T>
void upsample(const T* partial, const RiseAxis& axis, int64_t classes, int64_t width, T* out) {
  const int64_t cell = axis.cell, gh = axis.cells, H = axis.size;
  const int64_t plane = gh * width;                // one shift's rows for one class
  const T alpha = T(1) / static_cast<T>(axis.cell_up);  // d lambda / d dy inside a segment
  const std::vector<RowPlan<T>> plans = plan_rows<T>(axis);
  at::parallel_for(0, classes, 1, [&](int64_t begin, int64_t end) {
    // prefix0[k] = sum_{dy<k} P[dy], prefix1[k] = sum_{dy<k} dy P[dy],
    // suffix0[k] = sum_{dy>=k} P[dy], suffix1[k] = sum_{dy>=k} (cell-1-dy) P[dy]; each (cell+1, gh, W)
    std::vector<T> prefix0((cell + 1) * plane), prefix1((cell + 1) * plane), suffix0((cell + 1) * plane),
        suffix1((cell + 1) * plane);
    T weights[8];
    const T* rows[8];
    for (int64_t c = begin; c < end; ++c) {
      std::fill(prefix0.begin(), prefix0.begin() + plane, T(0));
      std::fill(prefix1.begin(), prefix1.begin() + plane, T(0));
      std::fill(suffix0.begin() + cell * plane, suffix0.end(), T(0));
      std::fill(suffix1.begin() + cell * plane, suffix1.end(), T(0));
      for (int64_t dy = 0; dy < cell; ++dy) {
        cpu::running_sums(plane, prefix0.data() + dy * plane, prefix1.data() + dy * plane,
                          partial + (dy * classes + c) * plane, static_cast<T>(dy), prefix0.data() + (dy + 1) * plane,
                          prefix1.data() + (dy + 1) * plane);
      }
      for (int64_t dy = cell - 1; dy >= 0; --dy) {
        cpu::running_sums(plane, suffix0.data() + (dy + 1) * plane, suffix1.data() + (dy + 1) * plane,
                          partial + (dy * classes + c) * plane, static_cast<T>(cell - 1 - dy),
                          suffix0.data() + dy * plane, suffix1.data() + dy * plane);
      }
      for (int64_t y = 0; y < H; ++y) {
        const RowPlan<T>& plan = plans[y];
        int count = 0;
        const int64_t k = plan.split;
        if (k > 0) {  // first segment, dy in [0, k): lambda = lambda_start + alpha * dy
          const T* s0 = prefix0.data() + k * plane;
          const T* s1 = prefix1.data() + k * plane;
          weights[count] = T(1) - plan.lambda_start; rows[count++] = s0 + plan.first0 * width;
          weights[count] = -alpha;                   rows[count++] = s1 + plan.first0 * width;
          weights[count] = plan.lambda_start;        rows[count++] = s0 + plan.first1 * width;
          weights[count] = alpha;                    rows[count++] = s1 + plan.first1 * width;
        }
        if (k < cell) {  // second segment, dy in [k, cell): lambda = lambda_end - alpha * (cell - 1 - dy)
          const T* s0 = suffix0.data() + k * plane;
          const T* s1 = suffix1.data() + k * plane;
          weights[count] = T(1) - plan.lambda_end;   rows[count++] = s0 + plan.second0 * width;
          weights[count] = alpha;                    rows[count++] = s1 + plan.second0 * width;
          weights[count] = plan.lambda_end;          rows[count++] = s0 + plan.second1 * width;
          weights[count] = -alpha;                   rows[count++] = s1 + plan.second1 * width;
        }
        cpu::weighted_rows(width, count, weights, rows, out + (c * H + y) * width);
      }
    }
  });
}

at::Tensor rise_upsample_cpu(const at::Tensor& partial, int64_t height) {
  TORCH_CHECK_VALUE(partial.dim() == 4, "xaifast::rise_upsample: partial must be (cell, C, gh, W), got shape ",
                    partial.sizes());
  TORCH_CHECK_VALUE(partial.device().is_cpu(), "xaifast::rise_upsample: CPU kernel got ", partial.device());
  const int64_t cells = partial.size(2);
  TORCH_CHECK_VALUE(cells >= 1 && height >= cells, "xaifast::rise_upsample: height ", height,
                    " must be at least the grid's ", cells, " rows");
  const RiseAxis axis = rise_axis(cells, height);
  TORCH_CHECK_VALUE(partial.size(0) == axis.cell, "xaifast::rise_upsample: partial must hold ceil(H / gh) = ",
                    axis.cell, " row shifts, got ", partial.size(0));
  const at::Tensor p = partial.contiguous();
  at::Tensor out = cpu::empty_output({partial.size(1), height, partial.size(3)}, p.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "rise_upsample_cpu", [&] {
    upsample<scalar_t>(p.const_data_ptr<scalar_t>(), axis, partial.size(1), partial.size(3),
                       out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) {
  m.impl("rise_upsample", &xaifast::rise_upsample_cpu);
}
