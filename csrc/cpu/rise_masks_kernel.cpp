// CPU kernels of xaifast::rise_masks and its backward.
//
// Per mask: the grid is interpolated along x once into `gh` rows of W values (the column taps
// depend only on the mask's dx); each mask row is then a two-row blend of those, written
// straight into the output, multiplied into every channel of the image when one is given. No
// full-size upsample, no per-mask crop: the masked batch is written once.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <vector>

#include "cpu/allocation.h"
#include "common/rise.h"
#include "rise_masks.h"

namespace xaifast {
namespace {

template <typename T>
struct ColumnTaps {
  std::vector<int64_t> cell0, cell1;
  std::vector<T> weight0, weight1;
  void compute(const RiseAxis& axis, int64_t shift) {
    cell0.resize(axis.size); cell1.resize(axis.size); weight0.resize(axis.size); weight1.resize(axis.size);
    for (int64_t x = 0; x < axis.size; ++x) rise_taps<T>(axis, shift, x, cell0[x], cell1[x], weight0[x], weight1[x]);
  }
};

void check_shifts_cpu(const at::Tensor& shifts, const RiseAxis& ay, const RiseAxis& ax) {
  const int64_t* s = shifts.const_data_ptr<int64_t>();
  for (int64_t n = 0; n < shifts.size(0); ++n) {
    TORCH_CHECK_VALUE(s[2 * n] >= 0 && s[2 * n] < ay.cell && s[2 * n + 1] >= 0 && s[2 * n + 1] < ax.cell,
                      "xaifast::rise_masks: shift ", n, " = (", s[2 * n], ", ", s[2 * n + 1], ") must lie in [0, ",
                      ay.cell, ") x [0, ", ax.cell, ")");
  }
}

template <typename T>
void masks_forward(const T* grid, const int64_t* shifts, const T* image, int64_t channels, const RiseAxis& ay,
                   const RiseAxis& ax, int64_t n_masks, T* out) {
  const int64_t H = ay.size, W = ax.size, gh = ay.cells, gw = ax.cells;
  at::parallel_for(0, n_masks, 1, [&](int64_t begin, int64_t end) {
    ColumnTaps<T> cols;
    std::vector<T> rows(gh * W), row(W);
    for (int64_t n = begin; n < end; ++n) {
      const T* g = grid + n * gh * gw;
      cols.compute(ax, shifts[2 * n + 1]);
      for (int64_t i = 0; i < gh; ++i) {
        const T* cells = g + i * gw;
        T* r = rows.data() + i * W;
        for (int64_t x = 0; x < W; ++x)
          r[x] = cols.weight0[x] * cells[cols.cell0[x]] + cols.weight1[x] * cells[cols.cell1[x]];
      }
      T* mask_out = out + n * channels * H * W;
      for (int64_t y = 0; y < H; ++y) {
        int64_t r0, r1;
        T w0, w1;
        rise_taps<T>(ay, shifts[2 * n], y, r0, r1, w0, w1);
        const T* a = rows.data() + r0 * W;
        const T* b = rows.data() + r1 * W;
        if (image == nullptr) {
          T* dst = mask_out + y * W;
          for (int64_t x = 0; x < W; ++x) dst[x] = w0 * a[x] + w1 * b[x];
        } else {
          for (int64_t x = 0; x < W; ++x) row[x] = w0 * a[x] + w1 * b[x];
          for (int64_t c = 0; c < channels; ++c) {
            const T* src = image + (c * H + y) * W;
            T* dst = mask_out + (c * H + y) * W;
            for (int64_t x = 0; x < W; ++x) dst[x] = src[x] * row[x];
          }
        }
      }
    }
  });
}

template <typename T>
void masks_backward(const T* grad, const int64_t* shifts, const RiseAxis& ay, const RiseAxis& ax,
                    int64_t n_masks, T* grad_grid) {
  const int64_t H = ay.size, W = ax.size, gh = ay.cells, gw = ax.cells;
  at::parallel_for(0, n_masks, 1, [&](int64_t begin, int64_t end) {
    ColumnTaps<T> cols;
    std::vector<T> rows(gh * W);
    for (int64_t n = begin; n < end; ++n) {
      std::fill(rows.begin(), rows.end(), T(0));
      const T* g = grad + n * H * W;
      for (int64_t y = 0; y < H; ++y) {  // adjoint of the row blend
        int64_t r0, r1;
        T w0, w1;
        rise_taps<T>(ay, shifts[2 * n], y, r0, r1, w0, w1);
        T* a = rows.data() + r0 * W;
        T* b = rows.data() + r1 * W;
        const T* src = g + y * W;
        for (int64_t x = 0; x < W; ++x) a[x] += w0 * src[x];
        for (int64_t x = 0; x < W; ++x) b[x] += w1 * src[x];
      }
      cols.compute(ax, shifts[2 * n + 1]);
      T* out = grad_grid + n * gh * gw;
      for (int64_t i = 0; i < gh * gw; ++i) out[i] = 0;
      for (int64_t i = 0; i < gh; ++i) {  // adjoint of the column interpolation
        const T* r = rows.data() + i * W;
        T* cells = out + i * gw;
        for (int64_t x = 0; x < W; ++x) {
          cells[cols.cell0[x]] += cols.weight0[x] * r[x];
          cells[cols.cell1[x]] += cols.weight1[x] * r[x];
        }
      }
    }
  });
}

at::Tensor rise_masks_cpu(const at::Tensor& grid, const at::Tensor& shifts, int64_t height, int64_t width,
                          const c10::optional<at::Tensor>& input) {
  check_rise_masks_args(grid, shifts, height, width, input, "xaifast::rise_masks");
  TORCH_CHECK_VALUE(grid.device().is_cpu(), "xaifast::rise_masks: CPU kernel got a grid on ", grid.device());
  const at::Tensor g = grid.contiguous(), s = shifts.contiguous();
  const RiseAxis ay = rise_axis(grid.size(1), height), ax = rise_axis(grid.size(2), width);
  check_shifts_cpu(s, ay, ax);
  const at::Tensor image = input.has_value() ? input->contiguous() : at::Tensor();
  const int64_t channels = input.has_value() ? input->size(0) : 1;
  at::Tensor out = cpu::empty_output({grid.size(0), channels, height, width}, g.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "rise_masks_cpu", [&] {
    masks_forward<scalar_t>(g.const_data_ptr<scalar_t>(), s.const_data_ptr<int64_t>(),
                            image.defined() ? image.const_data_ptr<scalar_t>() : nullptr, channels, ay, ax,
                            grid.size(0), out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor rise_masks_backward_cpu(const at::Tensor& grad_masks, const at::Tensor& grid, const at::Tensor& shifts) {
  TORCH_CHECK_VALUE(grad_masks.dim() == 4 && grad_masks.size(0) == grid.size(0) && grad_masks.size(1) == 1,
                    "xaifast::_rise_masks_backward: grad_masks must be (n, 1, H, W), got shape ", grad_masks.sizes());
  check_rise_masks_args(grid, shifts, grad_masks.size(2), grad_masks.size(3), c10::nullopt,
                        "xaifast::_rise_masks_backward");
  TORCH_CHECK_TYPE(grad_masks.scalar_type() == grid.scalar_type(), "xaifast::_rise_masks_backward: grad dtype ",
                   grad_masks.scalar_type(), " must match grid dtype ", grid.scalar_type());
  const at::Tensor go = grad_masks.contiguous(), s = shifts.contiguous();
  const RiseAxis ay = rise_axis(grid.size(1), go.size(2)), ax = rise_axis(grid.size(2), go.size(3));
  check_shifts_cpu(s, ay, ax);
  at::Tensor grad_grid = cpu::empty_output(grid.sizes(), go.options());
  if (grad_grid.numel() == 0) return grad_grid;
  AT_DISPATCH_FLOATING_TYPES(go.scalar_type(), "rise_masks_backward_cpu", [&] {
    masks_backward<scalar_t>(go.const_data_ptr<scalar_t>(), s.const_data_ptr<int64_t>(), ay, ax,
                             grid.size(0), grad_grid.mutable_data_ptr<scalar_t>());
  });
  return grad_grid;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) {
  m.impl("rise_masks", &xaifast::rise_masks_cpu);
  m.impl("_rise_masks_backward", &xaifast::rise_masks_backward_cpu);
}
