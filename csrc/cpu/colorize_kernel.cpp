// CPU kernel of xaifast::colorize: normalisation, palette index and lookup in one pass over
// each heatmap row. A batch of at least as many maps as threads is spread by map, so each map's
// bounds and its colours are computed while it sits in cache; smaller batches are spread by row.
// The index loop is branch-free (csrc/common/colorize.h) and cloned for AVX2/AVX-512. The lookup
// is picked once by CPU features: 64 pixels per step with AVX-512 VBMI byte permutes, else 16 per
// step with AVX-512 gathers, else one 4-byte store of a padded RGB entry per pixel.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/allocation.h"
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>
#define XAI_COLORIZE_AVX512 1
#endif

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
// and float32 maps with Python-number bounds) get vectorised clones; the rest run plain. The
// float32-throughout case runs on explicit 16-lane GCC vectors: the same IEEE steps as
// palette_index (subtract, divide, scale, clamp with NaN -> 0, truncate), without the mask
// shuffles GCC emitted for the scalar form.
XAI_MULTIVERSION void index_row_fff(int64_t n, const float* x, float lo, float span, uint8_t* index) {
  typedef float V __attribute__((vector_size(64)));
  typedef int32_t I __attribute__((vector_size(64)));
  typedef uint8_t B __attribute__((vector_size(16)));
  const V low = V{} + lo, range = V{} + span, zero = V{}, top = V{} + 255.0f;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    V v;
    std::memcpy(&v, x + i, sizeof(V));
    V scaled = (v - low) / range * 255.0f;
    scaled = scaled > zero ? scaled : zero;
    scaled = scaled < top ? scaled : top;
    const B bytes = __builtin_convertvector(__builtin_convertvector(scaled, I), B);
    std::memcpy(index + i, &bytes, sizeof(B));
  }
  index_row<float, float, float>(n - i, x + i, lo, span, index + i);
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

// The palette in the two layouts the lookups read: RGB + a spare byte per entry (one 4-byte
// load or store per pixel), and one 256-byte plane per channel (byte permutes).
struct ColorTables {
  uint32_t padded[256];
  alignas(64) uint8_t planar[3][256];
};

// The lookup loops, from the plainest up; each CPU runs the best it has.
enum class LookupPath : int { kScalar = 0, kGather = 1, kVbmi = 2 };

#ifdef XAI_COLORIZE_AVX512
// GCC 12's intrinsics start from _mm512_undefined_epi32(), a deliberately uninitialised value
// that its own -Wuninitialized then reports; nothing here reads an undefined lane.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// 16 pixels per step: widen the indices, gather the RGBx entries, drop every 4th byte within each
// 128-bit lane (vpshufb), close the gaps across lanes (vpermd) and store 48 bytes under a mask.
// The row's last step loads and stores only what is left, so nothing past the row is touched.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void lookup_row_gather(int64_t n, const uint8_t* index,
                                                                              const ColorTables& tables,
                                                                              uint8_t* out) {
  const __m512i drop_spare =
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1));
  const __m512i close_gaps = _mm512_setr_epi32(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 3, 7, 11, 15);
  for (int64_t i = 0; i < n; i += 16) {
    const int64_t left = n - i < 16 ? n - i : 16;
    const __mmask16 lanes = static_cast<__mmask16>((1u << left) - 1u);
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, index + i));
    __m512i rgb = _mm512_i32gather_epi32(idx, tables.padded, 4);
    rgb = _mm512_permutexvar_epi32(close_gaps, _mm512_shuffle_epi8(rgb, drop_spare));
    const __mmask64 bytes = (__mmask64{1} << (3 * left)) - 1;
    _mm512_mask_storeu_epi8(out + 3 * i, bytes, rgb);
  }
}

// 64 pixels per step, no gathers: each channel's 256-entry table is four registers, looked up
// with two 128-entry byte permutes (vpermi2b) picked by the index's top bit; the three channel
// vectors are then interleaved into 192 RGB bytes by two more permutes per output register.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi"))) void lookup_row_vbmi(int64_t n,
                                                                                     const uint8_t* index,
                                                                                     const ColorTables& tables,
                                                                                     uint8_t* out) {
  // Output register k holds bytes [64k, 64k + 64) of the RGB run: byte j is channel (64k + j) % 3
  // of pixel (64k + j) / 3. Red and green come from one two-register permute, blue is merged in.
  struct Interleave {
    alignas(64) uint8_t from_rg[3][64];
    alignas(64) uint8_t from_b[3][64];
    uint64_t blue[3];
    Interleave() {
      for (int k = 0; k < 3; ++k) {
        blue[k] = 0;
        for (int j = 0; j < 64; ++j) {
          const int byte = 64 * k + j, pixel = byte / 3, channel = byte % 3;
          from_rg[k][j] = static_cast<uint8_t>(pixel + (channel == 1 ? 64 : 0));
          from_b[k][j] = static_cast<uint8_t>(pixel);
          if (channel == 2) blue[k] |= uint64_t{1} << j;
        }
      }
    }
  };
  static const Interleave interleave;
  __m512i table[3][4];
  for (int c = 0; c < 3; ++c)
    for (int q = 0; q < 4; ++q) table[c][q] = _mm512_load_si512(tables.planar[c] + 64 * q);
  __m512i from_rg[3], from_b[3];
  __mmask64 blue[3];
  for (int k = 0; k < 3; ++k) {
    from_rg[k] = _mm512_load_si512(interleave.from_rg[k]);
    from_b[k] = _mm512_load_si512(interleave.from_b[k]);
    blue[k] = static_cast<__mmask64>(interleave.blue[k]);
  }
  for (int64_t i = 0; i < n; i += 64) {
    const int64_t left = n - i < 64 ? n - i : 64;
    const __mmask64 lanes = left == 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
    const __m512i idx = _mm512_maskz_loadu_epi8(lanes, index + i);
    const __mmask64 upper = _mm512_movepi8_mask(idx);
    __m512i channel[3];
    for (int c = 0; c < 3; ++c) {
      const __m512i low = _mm512_permutex2var_epi8(table[c][0], idx, table[c][1]);
      const __m512i high = _mm512_permutex2var_epi8(table[c][2], idx, table[c][3]);
      channel[c] = _mm512_mask_blend_epi8(upper, low, high);
    }
    for (int k = 0; k < 3; ++k) {
      const int64_t first = 64 * k, count = 3 * left - first;
      if (count <= 0) break;
      __m512i rgb = _mm512_permutex2var_epi8(channel[0], from_rg[k], channel[1]);
      rgb = _mm512_mask_permutexvar_epi8(rgb, blue[k], from_b[k], channel[2]);
      const __mmask64 bytes = count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1;
      _mm512_mask_storeu_epi8(out + 3 * i + first, bytes, rgb);
    }
  }
}

LookupPath best_lookup_path() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  if (avx512 && __builtin_cpu_supports("avx512vbmi")) return LookupPath::kVbmi;
  if (avx512) return LookupPath::kGather;
  return LookupPath::kScalar;
}
#pragma GCC diagnostic pop
#else
LookupPath best_lookup_path() { return LookupPath::kScalar; }
#endif

// Indexed by LookupPath.
constexpr const char* kLookupNames[] = {"scalar", "gather", "vbmi"};

LookupPath best_path() {
  static const LookupPath best = best_lookup_path();
  return best;
}

std::atomic<int> forced_lookup_path{-1};  // a LookupPath, or -1: the best

LookupPath lookup_path() {
  const int forced = forced_lookup_path.load(std::memory_order_relaxed);
  return forced < 0 ? best_path() : static_cast<LookupPath>(forced);
}

// out[3i..3i+3) = the RGB entry of index[i], i in [0, n).
void lookup_row(LookupPath path, int64_t n, const uint8_t* index, const ColorTables& tables, uint8_t* out) {
#ifdef XAI_COLORIZE_AVX512
  if (path == LookupPath::kVbmi) return lookup_row_vbmi(n, index, tables, out);
  if (path == LookupPath::kGather) return lookup_row_gather(n, index, tables, out);
#endif
  (void)path;
  if (n == 0) return;
  // The last pixel is stored byte by byte: its spare byte would be the next row's, which another
  // thread may be writing.
  for (int64_t i = 0; i + 1 < n; ++i) std::memcpy(out + 3 * i, &tables.padded[index[i]], 4);
  std::memcpy(out + 3 * (n - 1), &tables.padded[index[n - 1]], 3);
}

// A map's bounds as doubles (exact for float32 and float64): given ones copied, automatic ones
// the map's min / max in its own dtype (symmetric: -max|x| / max|x|), NaN if the map has a NaN.
template <typename X>
void map_bounds(const X* map, int64_t plane, const double* vmin, const double* vmax, bool symmetric, double* lo,
                double* hi) {
  if (vmin == nullptr || vmax == nullptr) {
    X low, high;
    cpu::min_max(plane, map, &low, &high);
    if (symmetric) {
      const X top = low != low ? low : std::max(std::abs(low), std::abs(high));
      low = -top;
      high = top;
    }
    *lo = static_cast<double>(low);
    *hi = static_cast<double>(high);
  }
  if (vmin != nullptr) *lo = *vmin;
  if (vmax != nullptr) *hi = *vmax;
}

const double* bound_values(const c10::optional<at::Tensor>& bound, at::Tensor& holder) {
  if (!bound.has_value()) return nullptr;
  holder = bound->to(at::kDouble).contiguous();
  return holder.const_data_ptr<double>();
}

void colorize_into(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                   const c10::optional<at::Tensor>& vmax, const at::Tensor& palette, bool symmetric, at::Tensor& out) {
  const at::Tensor maps = heatmaps.contiguous(), table = palette.contiguous();
  const int64_t n = maps.size(0), height = maps.size(1), width = maps.size(2), plane = height * width;
  if (out.numel() == 0) return;
  ColorTables tables;
  const uint8_t* rgb = table.const_data_ptr<uint8_t>();
  for (int i = 0; i < 256; ++i) {
    uint8_t entry[4] = {rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 0};
    std::memcpy(&tables.padded[i], entry, 4);
    for (int c = 0; c < 3; ++c) tables.planar[c][i] = rgb[3 * i + c];
  }
  const LookupPath path = lookup_path();
  at::Tensor vmin_holder, vmax_holder;
  const double* given_lo = bound_values(vmin, vmin_holder);
  const double* given_hi = bound_values(vmax, vmax_holder);
  uint8_t* dst = out.mutable_data_ptr<uint8_t>();
  dispatch_colorize_types(maps, vmin, vmax, [&](auto x_tag, auto diff_tag, auto span_tag, auto quotient_tag) {
    using X = decltype(x_tag);
    using Diff = decltype(diff_tag);
    using Span = decltype(span_tag);
    using Quotient = decltype(quotient_tag);
    const X* src = maps.const_data_ptr<X>();
    auto bounds_of = [&](int64_t map, double* lo, double* hi) {
      map_bounds<X>(src + map * plane, plane, given_lo ? given_lo + map : nullptr, given_hi ? given_hi + map : nullptr,
                    symmetric, lo, hi);
    };
    // Rows [first, last) of one map, whose bounds are lo, hi.
    auto color_rows = [&](int64_t first, int64_t last, double lo, double hi, uint8_t* index) {
      const Diff low = static_cast<Diff>(lo);
      const Quotient span = static_cast<Quotient>(static_cast<Span>(hi) - static_cast<Span>(lo));
      for (int64_t row = first; row < last; ++row) {
        dispatch_index_row<X, Diff, Quotient>(width, src + row * width, low, span, index);
        lookup_row(path, width, index, tables, dst + row * width * 3);
      }
    };
    if (n >= at::get_num_threads()) {
      at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
        std::vector<uint8_t> index(width);
        for (int64_t map = begin; map < end; ++map) {
          double lo, hi;
          bounds_of(map, &lo, &hi);
          color_rows(map * height, (map + 1) * height, lo, hi, index.data());
        }
      });
      return;
    }
    std::vector<double> lo(n), hi(n);
    at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t map = begin; map < end; ++map) bounds_of(map, &lo[map], &hi[map]);
    });
    at::parallel_for(0, n * height, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width)),
                     [&](int64_t begin, int64_t end) {
      std::vector<uint8_t> index(width);
      // Split the range at map boundaries, each piece with its map's bounds.
      for (int64_t row = begin; row < end;) {
        const int64_t map = row / height, stop = std::min(end, (map + 1) * height);
        color_rows(row, stop, lo[map], hi[map], index.data());
        row = stop;
      }
    });
  });
}

at::Tensor colorize_cpu(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                        const c10::optional<at::Tensor>& vmax, const at::Tensor& palette, bool symmetric) {
  check_colorize_args(heatmaps, vmin, vmax, palette);
  TORCH_CHECK_VALUE(heatmaps.device().is_cpu(), "xaifast::colorize: CPU kernel got ", heatmaps.device());
  at::Tensor out = cpu::empty_output({heatmaps.size(0), heatmaps.size(1), heatmaps.size(2), 3},
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

namespace cpu {
// Declared in csrc/xaifast.cpp, which exposes them as build facts and a test switch.
std::string colorize_lookup_path() { return kLookupNames[static_cast<int>(lookup_path())]; }

std::string force_colorize_lookup_path(const std::string& name) {
  int forced = -1;
  for (int path = 0; path < 3; ++path) {
    if (name == kLookupNames[path]) forced = path;
  }
  TORCH_CHECK_VALUE(forced >= 0 || name == "auto", "colorize lookup path must be auto, scalar, gather or vbmi, got ",
                    name);
  TORCH_CHECK_VALUE(forced <= static_cast<int>(best_path()), "this CPU cannot run the ", name, " colorize lookup");
  const int previous = forced_lookup_path.exchange(forced);
  return previous < 0 ? "auto" : kLookupNames[previous];
}
}  // namespace cpu
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) {
  m.impl("colorize", &xaifast::colorize_cpu);
  m.impl("colorize_into", &xaifast::colorize_into_op_cpu);
}
