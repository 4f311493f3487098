// CPU kernel of xaifast::colorize: normalisation, palette index and lookup in one pass over
// each heatmap row; rows are spread over threads with at::parallel_for. The index loop is
// branch-free (csrc/common/colorize.h) and cloned for AVX2/AVX-512; the lookup writes each pixel
// as one 4-byte store of a padded RGB table entry (the 4th byte is overwritten by the next pixel).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "colorize.h"
#include "common/colorize.h"
#include "cpu/vector_math.h"

namespace xaifast {
namespace {

template <typename X, typename Diff, typename Quotient>
inline void index_row(int64_t n, const X* __restrict__ x, Diff lo, Quotient span, uint8_t* __restrict__ index) {
  for (int64_t i = 0; i < n; ++i) index[i] = palette_index<Diff, Quotient>(x[i], lo, span);
}

// The three dtype combinations met in practice (automatic bounds of float32 or float64 maps,
// and float32 maps with Python-number bounds) get vectorised clones; the rest run plain.
XAI_MULTIVERSION void index_row_fff(int64_t n, const float* x, float lo, float span, uint8_t* index) {
  index_row<float, float, float>(n, x, lo, span, index);
}
XAI_MULTIVERSION void index_row_fdd(int64_t n, const float* x, double lo, double span, uint8_t* index) {
  index_row<float, double, double>(n, x, lo, span, index);
}
XAI_MULTIVERSION void index_row_ddd(int64_t n, const double* x, double lo, double span, uint8_t* index) {
  index_row<double, double, double>(n, x, lo, span, index);
}

template <typename X, typename Diff, typename Quotient>
void dispatch_index_row(int64_t n, const X* x, Diff lo, Quotient span, uint8_t* index) {
  if constexpr (std::is_same_v<X, float> && std::is_same_v<Diff, float> && std::is_same_v<Quotient, float>) {
    index_row_fff(n, x, lo, span, index);
  } else if constexpr (std::is_same_v<X, float> && std::is_same_v<Diff, double> &&
                       std::is_same_v<Quotient, double>) {
    index_row_fdd(n, x, lo, span, index);
  } else if constexpr (std::is_same_v<X, double> && std::is_same_v<Diff, double>) {
    index_row_ddd(n, x, lo, span, index);
  } else {
    index_row<X, Diff, Quotient>(n, x, lo, span, index);
  }
}

// Per-map bounds as doubles (exact for float32 and float64): given ones copied, automatic ones
// the map's min / max in its own dtype (symmetric: -max|x| / max|x|), NaN if the map has a NaN.
template <typename X>
void map_bounds(const X* maps, int64_t n, int64_t plane, const c10::optional<at::Tensor>& vmin,
                const c10::optional<at::Tensor>& vmax, bool symmetric, std::vector<double>& lo,
                std::vector<double>& hi) {
  if (!vmin.has_value() || !vmax.has_value()) {
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t map = begin; map < end; ++map) {
        X low, high;
        cpu::min_max(plane, maps + map * plane, &low, &high);
        if (symmetric) {
          const X top = low != low ? low : std::max(std::abs(low), std::abs(high));
          low = -top;
          high = top;
        }
        lo[map] = static_cast<double>(low);
        hi[map] = static_cast<double>(high);
      }
    });
  }
  for (auto [bound, values] : {std::make_pair(&vmin, &lo), std::make_pair(&vmax, &hi)}) {
    if (!bound->has_value()) continue;
    const at::Tensor given = (*bound)->to(at::kDouble).contiguous();
    std::copy(given.const_data_ptr<double>(), given.const_data_ptr<double>() + n, values->begin());
  }
}

void colorize_into(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                   const c10::optional<at::Tensor>& vmax, const at::Tensor& palette, bool symmetric, at::Tensor& out) {
  const at::Tensor maps = heatmaps.contiguous(), table = palette.contiguous();
  const int64_t n = maps.size(0), height = maps.size(1), width = maps.size(2);
  if (out.numel() == 0) return;
  uint32_t padded[256];  // RGB + a spare byte, for one 4-byte store per pixel
  const uint8_t* rgb = table.const_data_ptr<uint8_t>();
  for (int i = 0; i < 256; ++i) {
    uint8_t entry[4] = {rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 0};
    std::memcpy(&padded[i], entry, 4);
  }
  uint8_t* dst = out.mutable_data_ptr<uint8_t>();
  dispatch_colorize_types(maps, vmin, vmax, [&](auto x_tag, auto diff_tag, auto span_tag, auto quotient_tag) {
    using X = decltype(x_tag);
    using Diff = decltype(diff_tag);
    using Span = decltype(span_tag);
    using Quotient = decltype(quotient_tag);
    const X* src = maps.const_data_ptr<X>();
    std::vector<double> lo(n), hi(n);
    map_bounds<X>(src, n, height * width, vmin, vmax, symmetric, lo, hi);
    at::parallel_for(0, n * height, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width)),
                     [&](int64_t begin, int64_t end) {
      std::vector<uint8_t> index(width);
      for (int64_t row = begin; row < end; ++row) {
        const int64_t map = row / height;
        const Diff low = static_cast<Diff>(lo[map]);
        const Quotient span = static_cast<Quotient>(static_cast<Span>(hi[map]) - static_cast<Span>(lo[map]));
        dispatch_index_row<X, Diff, Quotient>(width, src + row * width, low, span, index.data());
        uint8_t* o = dst + row * width * 3;
        // A row's last pixel is stored byte by byte: its spare byte would be the next row's, which
        // another thread may be writing.
        for (int64_t i = 0; i + 1 < width; ++i) std::memcpy(o + 3 * i, &padded[index[i]], 4);
        std::memcpy(o + 3 * (width - 1), &padded[index[width - 1]], 3);
      }
    });
  });
}

at::Tensor colorize_cpu(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                        const c10::optional<at::Tensor>& vmax, const at::Tensor& palette, bool symmetric) {
  check_colorize_args(heatmaps, vmin, vmax, palette);
  TORCH_CHECK_VALUE(heatmaps.device().is_cpu(), "xaifast::colorize: CPU kernel got ", heatmaps.device());
  at::Tensor out = at::empty({heatmaps.size(0), heatmaps.size(1), heatmaps.size(2), 3},
                             heatmaps.options().dtype(at::kByte));
  colorize_into(heatmaps, vmin, vmax, palette, symmetric, out);
  return out;
}

void colorize_into_op_cpu(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                             const c10::optional<at::Tensor>& vmax, const at::Tensor& palette, bool symmetric,
                             at::Tensor out) {
  check_colorize_args(heatmaps, vmin, vmax, palette);
  TORCH_CHECK_VALUE(heatmaps.device().is_cpu(), "xaifast::colorize: CPU kernel got ", heatmaps.device());
  check_colorize_out(heatmaps, out);
  colorize_into(heatmaps, vmin, vmax, palette, symmetric, out);
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) {
  m.impl("colorize", &xaifast::colorize_cpu);
  m.impl("colorize_into", &xaifast::colorize_into_op_cpu);
}
