// CPU kernels of xaifast::smooth_mask (TorchRay's MaskGenerator.generate, fused) and its backward.
//
// Forward, per cell row (its step pixel rows read the same parameter rows): the window values
// v_k = w_k * m_k of 16 pixels at a time are pooled and dropped; the (K, window^2, H, W) tensor of
// the reference never exists.
// The parameters are first upsampled along x (one row of `step`-wide runs per padded parameter
// row), so a window column is a contiguous load; the weights of each row phase are tiled along x.
// Backward by parameter (float softmax in the extremal loop's range, weights periodic by cell):
// each parameter's gradient summed over the pixels it reaches, the reach rows with equal weights
// sharing their exps (see smooth_mask_rows.h). Otherwise by cell row: the gradient of every window
// value, d out / d v_k * w_k * g, summed over the cell's pixels (the gradient of TorchRay's
// unfolded parameters), then folded back onto the parameters. Every sum runs in a fixed order, so
// any thread count gives the same bits.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <string>
#include <vector>

#include "cpu/allocation.h"
#include "cpu/smooth_mask_rows.h"
#include "smooth_mask.h"

namespace xaifast {
namespace {

using cpu::kMaskLanes;

struct Layout {
  SmoothMaskGeometry g;
  int64_t width_pad;  // out_w rounded up to whole lanes
  int64_t u_rows, u_width;
};

Layout make_layout(const SmoothMaskGeometry& g) {
  Layout s;
  s.g = g;
  s.width_pad = (g.out_w + kMaskLanes - 1) / kMaskLanes * kMaskLanes;
  s.u_rows = g.in_h + 2 * g.padding;
  s.u_width = s.width_pad + (g.window - 1) * g.step;
  return s;
}

// u[k][a][x] = padded parameter (a, x / step) of mask k: zero outside the parameters.
template <typename T>
std::vector<T> upsampled_rows(const T* mask, const Layout& s) {
  const SmoothMaskGeometry& g = s.g;
  std::vector<T> u(static_cast<size_t>(g.masks * s.u_rows * s.u_width));
  at::parallel_for(0, g.masks * s.u_rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t k = row / s.u_rows, a = row % s.u_rows - g.padding;
      T* dst = u.data() + row * s.u_width;
      for (int64_t x0 = 0; x0 < s.u_width; x0 += g.step) {  // runs of `step` copies, no division per value
        const int64_t b = x0 / g.step - g.padding;
        const T value = (a >= 0 && a < g.in_h && b >= 0 && b < g.in_w) ? mask[(k * g.in_h + a) * g.in_w + b] : T(0);
        std::fill(dst + x0, dst + std::min(s.u_width, x0 + g.step), value);
      }
    }
  });
  return u;
}

// The largest |value| of x[0, n), or -1 if one is NaN.
template <typename T>
T max_abs(const T* x, int64_t n) {
  T top = T(0);
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    const T a = std::abs(x[i]);
    nan = nan || a != a;
    top = a > top ? a : top;
  }
  return nan ? T(-1) : top;
}

// What the kernels need to know of the weights, from one pass over them per call (a non-periodic
// geometry's weights are full planes): whether all are finite, and the largest magnitude.
template <typename T>
struct WeightFacts {
  bool finite;
  T max_abs;
  WeightFacts(const T* weight, const Layout& s) {
    const SmoothMaskGeometry& g = s.g;
    const T top = xaifast::max_abs(weight, g.window * g.window * g.weight_h * g.weight_w);
    finite = top >= 0 && top <= std::numeric_limits<T>::max();
    max_abs = top;
  }
};

// nz[k][a][x] = how many of u[k][a][0, x) are not zero (x <= u_width): the row loops skip the
// exps of window taps that read only zeros (see smooth_mask_rows.h). Empty when a weight is not
// finite, where w * 0 is not 0.
template <typename T>
std::vector<int32_t> nonzero_counts(const std::vector<T>& u, const WeightFacts<T>& weights, const Layout& s) {
  if (!weights.finite) return {};
  const SmoothMaskGeometry& g = s.g;
  const int64_t rows = g.masks * s.u_rows, stride = s.u_width + 1;
  std::vector<int32_t> nz(static_cast<size_t>(rows * stride));
  at::parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* src = u.data() + row * s.u_width;
      int32_t* dst = nz.data() + row * stride;
      dst[0] = 0;
      for (int64_t x = 0; x < s.u_width; ++x) dst[x + 1] = dst[x] + (src[x] != T(0));
    }
  });
  return nz;
}

// Whether every window value has 2 |c v| <= 80 (see smooth_mask_rows.h): |c v| is at most
// |c| max|mask| max|weight|. Then the softmax exps can take c v unshifted. False for a NaN or an
// infinity.
template <typename T>
bool softmax_exp_in_range(const T* mask, const WeightFacts<T>& weights, const Layout& s, T coldness) {
  const SmoothMaskGeometry& g = s.g;
  const T mask_max = max_abs(mask, g.masks * g.in_h * g.in_w);
  if (mask_max < 0 || !weights.finite) return false;
  const double bound = 2.0 * std::abs(static_cast<double>(coldness)) * static_cast<double>(mask_max) *
                       static_cast<double>(weights.max_abs);
  return bound <= 80.0;  // false for an infinity (or a NaN coldness)
}

// tiled[phase][t][x] = scale * weight[t][phase][x % weight_w], phase < weight_h, x < width_pad.
template <typename T>
std::vector<T> tiled_weights(const T* weight, const Layout& s, T scale) {
  const SmoothMaskGeometry& g = s.g;
  const int64_t taps = g.window * g.window;
  std::vector<T> tiled(static_cast<size_t>(g.weight_h * taps * s.width_pad));
  at::parallel_for(0, g.weight_h * taps, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t phase = row / taps, t = row % taps;
      const T* src = weight + (t * g.weight_h + phase) * g.weight_w;
      T* dst = tiled.data() + row * s.width_pad;
      for (int64_t x = 0; x < std::min(g.weight_w, s.width_pad); ++x) dst[x] = scale * src[x];
      for (int64_t x0 = g.weight_w; x0 < s.width_pad; x0 += g.weight_w) {  // copies, not a modulo per value
        std::copy(dst, dst + std::min(g.weight_w, s.width_pad - x0), dst + x0);
      }
    }
  });
  return tiled;
}

// How a call's exps run, from one pass over the weights and parameters: whether the (tiled)
// weights are scaled by the coldness (float softmax, 1e-6 <= |coldness| <= 1e6 and finite weights:
// the scaled weights and the per-pixel 1 / (sum c) then stay far from over- and underflow) and
// whether the exps take c v unshifted (float softmax and softmax_exp_in_range).
template <typename T>
struct Facts {
  WeightFacts<T> weights;
  bool scaled, unshifted;
  Facts(const T* mask, const T* weight, const Layout& s, MaskPooling pooling, T coldness)
      : weights(weight, s),
        scaled(std::is_same<T, float>::value && pooling == MaskPooling::Softmax && weights.finite &&
               std::abs(coldness) >= T(1e-6) && std::abs(coldness) <= T(1e6) &&
               static_cast<double>(weights.max_abs) * std::abs(static_cast<double>(coldness)) <= 1e30),
        unshifted(std::is_same<T, float>::value && pooling == MaskPooling::Softmax &&
                  softmax_exp_in_range(mask, weights, s, coldness)) {}
};

// What the row loops of the forward and the backward by cell row read, built per call.
template <typename T>
struct Prepared : Facts<T> {
  std::vector<T> u;         // upsampled_rows
  std::vector<int32_t> nz;  // nonzero_counts (empty: no zero-tap shortcut)
  std::vector<T> tiled;     // tiled_weights, times coldness if scaled
  Prepared(const Facts<T>& facts, const T* mask, const T* weight, const Layout& s, T coldness)
      : Facts<T>(facts),
        u(upsampled_rows(mask, s)),
        nz(nonzero_counts(u, facts.weights, s)),
        tiled(tiled_weights(weight, s, facts.scaled ? coldness : T(1))) {}
};

// The window's parameter rows of cell row `cell` of mask k, and their nonzero counts.
template <typename T>
void set_rows(const std::vector<T>& u, const std::vector<int32_t>& nz, const Layout& s, int64_t k, int64_t cell,
              std::vector<const T*>& rows, std::vector<const int32_t*>& nz_rows) {
  for (int64_t i = 0; i < s.g.window; ++i) {
    const int64_t row = k * s.u_rows + cell + i;
    rows[i] = u.data() + row * s.u_width;
    if (!nz.empty()) nz_rows[i] = nz.data() + row * (s.u_width + 1);
  }
}

// Work items are cell rows (whose pixel rows read the same parameter rows). Each pixel's sums run
// in a fixed order, so the results do not depend on the thread count.
template <typename T>
void forward(const T* mask, const T* weight, const Layout& s, MaskPooling pooling, T coldness, T* out, T* stats) {
  const SmoothMaskGeometry& g = s.g;
  const Prepared<T> p(Facts<T>(mask, weight, s, pooling, coldness), mask, weight, s, coldness);
  const std::vector<T>& u = p.u;
  const std::vector<int32_t>& nz = p.nz;
  const std::vector<T>& tiled = p.tiled;
  const bool softmax = pooling == MaskPooling::Softmax;
  const int64_t taps = g.window * g.window, plane = g.out_h * g.out_w;
  at::parallel_for(0, g.masks * g.mid_h, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(static_cast<size_t>(taps * kMaskLanes)), row(static_cast<size_t>(3 * s.width_pad));
    std::vector<const T*> rows(static_cast<size_t>(g.window));
    std::vector<const int32_t*> nz_rows(static_cast<size_t>(g.window));
    T* pooled = row.data();
    T* top = pooled + s.width_pad;
    T* sum = top + s.width_pad;
    for (int64_t index = begin; index < end; ++index) {
      const int64_t k = index / g.mid_h, cell = index % g.mid_h;
      set_rows(u, nz, s, k, cell, rows, nz_rows);
      const int64_t y_begin = cell * g.step, y_end = std::min(g.out_h, y_begin + g.step);
      for (int64_t y = y_begin; y < y_end; ++y) {
        const T* w = tiled.data() + (y % g.weight_h) * taps * s.width_pad;
        cpu::smooth_mask_row(s.width_pad, g.window, g.step, rows.data(), nz.empty() ? nullptr : nz_rows.data(),
                             p.unshifted, w, p.scaled, coldness, static_cast<int>(pooling), pooled, top, sum,
                             scratch.data());
        std::copy(pooled, pooled + g.out_w, out + k * plane + y * g.out_w);
        if (softmax) {
          std::copy(top, top + g.out_w, stats + 2 * k * plane + y * g.out_w);
          std::copy(sum, sum + g.out_w, stats + (2 * k + 1) * plane + y * g.out_w);
        }
      }
    }
  });
}

// Whether the backward can run by parameter (see smooth_mask_rows.h): float softmax with
// unshifted exps and scaled weights, the weights periodic by cell.
bool by_parameter(const Facts<float>& facts, const Layout& s) {
  return facts.unshifted && facts.scaled && s.g.weight_h == s.g.step && s.g.weight_w == s.g.step;
}

// The backward by parameter: per pixel its offset and slope (zero-padded rows, so that every
// parameter's reach is read in place), then each parameter's gradient from its reach alone. A
// parameter's sum runs in a fixed order on one thread: any thread count gives the same bits.
void backward_by_parameter(const float* grad, const float* mask, const float* weight, const float* full,
                           const float* stats, const Layout& s, float coldness, float* grad_in) {
  const SmoothMaskGeometry& g = s.g;
  const int64_t step = g.step, window = g.window;
  // The reach is square: `rows` rows (row r = i * step + py: window row i, pixel row py of its cell)
  // of `reach` pixels.
  const int64_t reach = window * step, rows = reach;
  const int64_t stride = (reach + cpu::kReachChunk - 1) / cpu::kReachChunk * cpu::kReachChunk;
  // pw[r][q]: the scaled weight of reach pixel q of row r (coldness * weight, as tiled_weights
  // scales them for the forward). Pixel q lies in the reach's cell q / step, whose window holds the
  // parameter at column j = window - 1 - q / step; its phase is q % step.
  std::vector<float> by_row(static_cast<size_t>(rows * stride), 0.0f);
  for (int64_t i = 0; i < window; ++i) {
    for (int64_t py = 0; py < step; ++py) {
      float* dst = by_row.data() + (i * step + py) * stride;
      for (int64_t q = 0; q < reach; ++q) {
        const int64_t t = i * window + (window - 1 - q / step);
        dst[q] = coldness * weight[(t * step + py) * step + q % step];
      }
    }
  }
  // Rows with the same weights form a class; order[] lists the rows class by class (class c:
  // order[class_rows[c] .. class_rows[c + 1])), and pw holds each class's weights.
  std::vector<int32_t> row_class(static_cast<size_t>(rows));
  std::vector<float> pw;
  int64_t classes = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = by_row.data() + r * stride;
    int64_t c = 0;
    while (c < classes && std::memcmp(pw.data() + c * stride, row, stride * sizeof(float)) != 0) ++c;
    if (c == classes) {
      pw.insert(pw.end(), row, row + stride);
      ++classes;
    }
    row_class[r] = static_cast<int32_t>(c);
  }
  std::vector<int32_t> order, class_rows(1, 0);
  for (int64_t c = 0; c < classes; ++c) {
    for (int64_t r = 0; r < rows; ++r) {
      if (row_class[r] == c) order.push_back(static_cast<int32_t>(r));
    }
    class_rows.push_back(static_cast<int32_t>(order.size()));
  }
  // Pixel factors, rows of width `left + out_w + stride`: a reach starts at most `left` pixels left
  // of the mask and ends at most `stride` past it; the margins are zeros. Written, margins and all,
  // by the threads (a fresh buffer's pages are first touched there).
  const int64_t left = (window - 1) * step, width = left + g.out_w + stride, plane = g.out_h * g.out_w;
  const int64_t factor_rows = g.masks * g.out_h;
  std::unique_ptr<float[]> offsets(new float[static_cast<size_t>(factor_rows * width)]);
  std::unique_ptr<float[]> slopes(new float[static_cast<size_t>(factor_rows * width)]);
  at::parallel_for(0, factor_rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t k = row / g.out_h, y = row % g.out_h, at = k * plane + y * g.out_w;
      for (float* f : {offsets.get() + row * width, slopes.get() + row * width}) {
        std::fill(f, f + left, 0.0f);
        std::fill(f + left + g.out_w, f + width, 0.0f);
      }
      cpu::smooth_mask_pixel_factors(g.out_w, grad + at, full + at, stats + (2 * k + 1) * plane + y * g.out_w,
                                     coldness, offsets.get() + row * width + left, slopes.get() + row * width + left);
    }
  });
  at::parallel_for(0, g.masks * g.in_h, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(2 * classes * stride));
    // The reach rows' pixel factors at the mask's column 0, class by class (null: outside the mask).
    std::vector<const float*> offset_rows(static_cast<size_t>(rows)), slope_rows(static_cast<size_t>(rows));
    for (int64_t index = begin; index < end; ++index) {
      const int64_t k = index / g.in_h, a = index % g.in_h;
      for (int64_t n = 0; n < rows; ++n) {
        const int64_t i = order[n] / step, py = order[n] % step;
        const int64_t cell = a + g.padding - i;  // the cell row whose window row i holds parameter row a
        const int64_t y = cell * step + py;
        const bool inside = cell >= 0 && cell < g.mid_h && y < g.out_h;
        offset_rows[n] = inside ? offsets.get() + (k * g.out_h + y) * width + left : nullptr;
        slope_rows[n] = inside ? slopes.get() + (k * g.out_h + y) * width + left : nullptr;
      }
      for (int64_t b = 0; b < g.in_w; ++b) {
        const int64_t x0 = (b + g.padding - window + 1) * step;  // the reach's first pixel (>= -left)
        grad_in[index * g.in_w + b] =
            cpu::smooth_mask_parameter_gradient(reach, classes, class_rows.data(), pw.data(), offset_rows.data(),
                                                slope_rows.data(), x0, mask[index * g.in_w + b], scratch.data());
      }
    }
  });
}

template <typename T>
void backward(const T* grad, const T* mask, const T* weight, const T* full, const T* stats, const Layout& s,
              MaskPooling pooling, T coldness, T* grad_in) {
  const SmoothMaskGeometry& g = s.g;
  const Facts<T> facts(mask, weight, s, pooling, coldness);
  if constexpr (std::is_same<T, float>::value) {
    if (by_parameter(facts, s)) {
      backward_by_parameter(grad, mask, weight, full, stats, s, coldness, grad_in);
      return;
    }
  }
  const Prepared<T> p(facts, mask, weight, s, coldness);
  const std::vector<T>& u = p.u;
  const std::vector<int32_t>& nz = p.nz;
  const std::vector<T>& tiled = p.tiled;
  const int64_t taps = g.window * g.window, plane = g.out_h * g.out_w, cells = g.mid_h * g.mid_w;
  const bool softmax = pooling == MaskPooling::Softmax;
  // cell_grad[k][t][r][c]: gradient of the window value t of cell (r, c) (TorchRay's unfolded parameter).
  std::vector<T> cell_grad(static_cast<size_t>(g.masks * taps * cells));
  at::parallel_for(0, g.masks * g.mid_h, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(static_cast<size_t>(taps * s.width_pad)), scratch(static_cast<size_t>(4 * g.step * kMaskLanes));
    // The row loops read width_pad values per pixel row; lanes past out_w are never summed (the
    // cell sums below stop at out_w), so rows are read in place, where that stays inside the
    // tensor, and otherwise copied into padded rows (g = 0, sum = 1 past out_w).
    std::vector<T> padded(static_cast<size_t>(4 * g.step * s.width_pad), T(0));
    std::vector<const T*> rows(static_cast<size_t>(g.window));
    std::vector<const int32_t*> nz_rows(static_cast<size_t>(g.window));
    std::vector<const T*> w_rows(g.step), g_rows(g.step), out_rows(g.step), top_rows(g.step), sum_rows(g.step);
    for (int64_t y = 0; y < g.step; ++y) {
      T* sum_pad = padded.data() + (4 * y + 3) * s.width_pad;
      std::fill(sum_pad, sum_pad + s.width_pad, T(1));
    }
    const auto row_of = [&](const T* base, int64_t offset, int64_t total, int64_t r, int64_t which) -> const T* {
      if (offset + s.width_pad <= total) return base + offset;
      T* pad = padded.data() + (4 * r + which) * s.width_pad;
      std::copy(base + offset, base + offset + g.out_w, pad);
      return pad;
    };
    for (int64_t index = begin; index < end; ++index) {
      const int64_t k = index / g.mid_h, cell = index % g.mid_h;
      set_rows(u, nz, s, k, cell, rows, nz_rows);
      const int64_t y_begin = cell * g.step, count = std::min(g.out_h, y_begin + g.step) - y_begin;
      for (int64_t r = 0; r < count; ++r) {
        const int64_t y = y_begin + r, offset = k * plane + y * g.out_w;
        g_rows[r] = row_of(grad, offset, g.masks * plane, r, 0);
        out_rows[r] = row_of(full, offset, g.masks * plane, r, 1);
        if (softmax) {
          top_rows[r] = row_of(stats, 2 * k * plane + y * g.out_w, 2 * g.masks * plane, r, 2);
          sum_rows[r] = row_of(stats, (2 * k + 1) * plane + y * g.out_w, 2 * g.masks * plane, r, 3);
        } else {
          top_rows[r] = sum_rows[r] = padded.data() + (4 * r + 3) * s.width_pad;  // unread
        }
        w_rows[r] = tiled.data() + (y % g.weight_h) * taps * s.width_pad;
      }
      cpu::smooth_mask_backward_rows(s.width_pad, g.window, g.step, rows.data(),
                                     nz.empty() ? nullptr : nz_rows.data(), count, w_rows.data(), p.scaled, coldness,
                                     static_cast<int>(pooling), p.unshifted, g_rows.data(), out_rows.data(),
                                     top_rows.data(), sum_rows.data(), acc.data(), scratch.data());
      for (int64_t t = 0; t < taps; ++t) {
        const T* a = acc.data() + t * s.width_pad;
        T* dst = cell_grad.data() + ((k * taps + t) * g.mid_h + cell) * g.mid_w;
        for (int64_t c = 0; c < g.mid_w; ++c) {
          const int64_t x_end = std::min(g.out_w, (c + 1) * g.step);
          T total = T(0);
          for (int64_t x = c * g.step; x < x_end; ++x) total += a[x];
          dst[c] = total;
        }
      }
    }
  });
  // Fold: parameter (a, b) receives window value (i, j) of cell (a + padding - i, b + padding - j).
  at::parallel_for(0, g.masks * g.in_h, 1, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t k = index / g.in_h, a = index % g.in_h;
      for (int64_t b = 0; b < g.in_w; ++b) {
        T total = T(0);
        for (int64_t i = 0; i < g.window; ++i) {
          const int64_t r = a + g.padding - i;
          if (r < 0 || r >= g.mid_h) continue;
          for (int64_t j = 0; j < g.window; ++j) {
            const int64_t c = b + g.padding - j;
            if (c < 0 || c >= g.mid_w) continue;
            total += cell_grad[((k * taps + i * g.window + j) * g.mid_h + r) * g.mid_w + c];
          }
        }
        grad_in[(k * g.in_h + a) * g.in_w + b] = total;
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> smooth_mask_cpu(const at::Tensor& mask_in, const at::Tensor& weight,
                                                   int64_t step, int64_t padding, c10::string_view pooling_method,
                                                   double coldness) {
  const SmoothMaskCall call =
      smooth_mask_call(mask_in, weight, step, padding, pooling_method, coldness, "xaifast::smooth_mask");
  const Layout s = make_layout(call.g);
  const at::Tensor m = mask_in.contiguous(), w = weight.contiguous();
  at::Tensor out, stats;
  std::tie(out, stats) = smooth_mask_outputs(m, call);
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "smooth_mask_cpu", [&] {
    forward<scalar_t>(m.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), s, call.pooling,
                      static_cast<scalar_t>(coldness), out.data_ptr<scalar_t>(), stats.data_ptr<scalar_t>());
  });
  return {out, stats};
}

at::Tensor smooth_mask_backward_cpu(const at::Tensor& grad, const at::Tensor& mask_in, const at::Tensor& weight,
                                   const at::Tensor& full, const at::Tensor& stats, int64_t step, int64_t padding,
                                   c10::string_view pooling_method, double coldness) {
  const SmoothMaskCall call = smooth_mask_backward_call(grad, mask_in, weight, full, stats, step, padding,
                                                        pooling_method, coldness, "xaifast::_smooth_mask_backward");
  const Layout s = make_layout(call.g);
  const at::Tensor gr = grad.contiguous(), m = mask_in.contiguous(), w = weight.contiguous(), f = full.contiguous(),
                   st = stats.contiguous();
  at::Tensor grad_in = cpu::empty_output({call.g.masks, 1, call.g.in_h, call.g.in_w}, m.options());
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "smooth_mask_backward_cpu", [&] {
    backward<scalar_t>(gr.data_ptr<scalar_t>(), m.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                       f.data_ptr<scalar_t>(), st.data_ptr<scalar_t>(), s, call.pooling,
                       static_cast<scalar_t>(coldness), grad_in.data_ptr<scalar_t>());
  });
  return grad_in;
}

}  // namespace

TORCH_LIBRARY_IMPL(xaifast, CPU, m) {
  m.impl("smooth_mask", &smooth_mask_cpu);
  m.impl("_smooth_mask_backward", &smooth_mask_backward_cpu);
}

}  // namespace xaifast
