#include "cpu/pyramid_lookup_rows.h"

#include <cstring>

#include "common/pyramid.h"
#include "cpu/vector_lanes.h"
#include "cpu/vector_math.h"

namespace xaifast {
namespace cpu {
namespace {

constexpr int64_t L = kLookupLanes;

// kLookupLanes values, and the largest magnitude below which values may be fractional.
template <typename T>
struct Lanes : VectorLanes<T, kLookupLanes> {
  static constexpr T kIntegral = sizeof(T) == 4 ? T(8388608.0) : T(4503599627370496.0);  // 2^23, 2^52
};

// level_split (common/pyramid.h) on whole vectors, the levels as exact floating-point values:
// floor by truncation below 2^23 (2^52) in magnitude, where larger values are integers already;
// NaN keeps frac = NaN and reads level 0, as the scalar split.
template <typename T>
struct Split {
  typedef typename Lanes<T>::type V;
  V lo, hi, frac;

  XAI_ALWAYS_INLINE Split(V mask, int64_t levels) {
    const V level = mask * static_cast<T>(levels - 1);
    const V magnitude = level < 0 ? -level : level;
    const auto fractional = magnitude < Lanes<T>::kIntegral;  // false for NaN and large values
    const V safe = fractional ? level : V{};
    const V truncated = __builtin_convertvector(__builtin_convertvector(safe, typename Lanes<T>::ints), V);
    V down = truncated > safe ? truncated - 1 : truncated;
    down = fractional ? down : level;
    frac = (level - down) + V{};  // + 0: frac of -0 is +0, as the reference's level - floor(level)
    const V top = V{} + static_cast<T>(levels - 1), up = down + 1;
    lo = down >= 0 ? down : V{};  // NaN compares false: level 0
    lo = lo > top ? top : lo;
    hi = up >= 0 ? up : V{};
    hi = hi > top ? top : hi;
  }
};

// The levels the lanes use, first..last: a smooth mask's 16 pixels use two or three of them, so
// most levels' rows are never read (a lookup is bound by reading the pyramid: 0.16 ms for four
// smooth 224 x 224 masks, 0.36 ms for four of uniform noise, at 2 threads on an AMD EPYC).
template <typename T>
XAI_ALWAYS_INLINE void level_range(const Split<T>& split, int64_t& first, int64_t& last) {
  typedef typename Lanes<T>::type V;
  static_assert(L == 16, "the reduction below folds 16 lanes");
  V lo = split.lo, hi = split.hi, a, b;
  a = __builtin_shufflevector(lo, lo, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  b = __builtin_shufflevector(hi, hi, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  lo = a < lo ? a : lo;
  hi = b > hi ? b : hi;
  a = __builtin_shufflevector(lo, lo, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  b = __builtin_shufflevector(hi, hi, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
  lo = a < lo ? a : lo;
  hi = b > hi ? b : hi;
  a = __builtin_shufflevector(lo, lo, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  b = __builtin_shufflevector(hi, hi, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
  lo = a < lo ? a : lo;
  hi = b > hi ? b : hi;
  first = static_cast<int64_t>(lo[0] < lo[1] ? lo[0] : lo[1]);
  last = static_cast<int64_t>(hi[0] > hi[1] ? hi[0] : hi[1]);
}

// The rows of levels lo and hi of channels c .. c + kGroup - 1 (`at`: channel 0's row at level 0),
// by selects over the levels first..last. The lanes' compares with each level are made once for
// the group: three channels (images) take 3 loads, 2 compares and 6 selects per level instead of
// 3 loads, 6 compares and 6 selects.
template <typename T, int kGroup>
XAI_ALWAYS_INLINE void select_range(const Split<T>& split, int64_t first, int64_t last, const T* at, int64_t c,
                                    int64_t channel_stride, int64_t level_stride, typename Lanes<T>::type* below,
                                    typename Lanes<T>::type* above) {
  typedef typename Lanes<T>::type V;
  const T* rows[kGroup];
  for (int g = 0; g < kGroup; ++g) rows[g] = at + (c + g) * channel_stride;
  for (int g = 0; g < kGroup; ++g) below[g] = above[g] = load<V>(rows[g] + first * level_stride);
  V index = V{} + static_cast<T>(first);
  for (int64_t l = first + 1; l <= last; ++l) {
    index += 1;
    const auto is_lo = split.lo == index, is_hi = split.hi == index;
    for (int g = 0; g < kGroup; ++g) {
      const V value = load<V>(rows[g] + l * level_stride);
      below[g] = is_lo ? value : below[g];
      above[g] = is_hi ? value : above[g];
    }
  }
}

template <typename T>
XAI_ALWAYS_INLINE void lookup_row_impl(int64_t width, int64_t levels, int64_t channels, const T* mask, const T* base,
                                       int64_t level_stride, int64_t channel_stride, T* out, int64_t out_stride) {
  typedef typename Lanes<T>::type V;
  int64_t x0 = 0;
  for (; x0 + L <= width; x0 += L) {
    const Split<T> split(load<V>(mask + x0), levels);
    int64_t first, last;
    level_range(split, first, last);
    const V keep = 1 - split.frac;
    int64_t c = 0;
    for (; c + 3 <= channels; c += 3) {
      V below[3], above[3];
      select_range<T, 3>(split, first, last, base + x0, c, channel_stride, level_stride, below, above);
      for (int g = 0; g < 3; ++g) store(out + (c + g) * out_stride + x0, keep * below[g] + split.frac * above[g]);
    }
    for (; c < channels; ++c) {
      V below, above;
      select_range<T, 1>(split, first, last, base + x0, c, channel_stride, level_stride, &below, &above);
      store(out + c * out_stride + x0, keep * below + split.frac * above);
    }
  }
  for (int64_t x = x0; x < width; ++x) {
    int64_t lo, hi;
    T frac;
    level_split<T>(mask[x], levels, lo, hi, frac);
    for (int64_t c = 0; c < channels; ++c) {
      const T* row = base + c * channel_stride + x;
      out[c * out_stride + x] = (T(1) - frac) * row[lo * level_stride] + frac * row[hi * level_stride];
    }
  }
}

template <typename T>
XAI_ALWAYS_INLINE void lookup_backward_row_impl(int64_t width, int64_t levels, int64_t channels, const T* mask,
                                                const T* base, int64_t level_stride, int64_t channel_stride,
                                                const T* grad, int64_t grad_stride, T* grad_mask) {
  typedef typename Lanes<T>::type V;
  const T scale = static_cast<T>(levels - 1);
  int64_t x0 = 0;
  for (; x0 + L <= width; x0 += L) {
    const Split<T> split(load<V>(mask + x0), levels);
    int64_t first, last;
    level_range(split, first, last);
    V above_sum = V{}, below_sum = V{};
    int64_t c = 0;
    for (; c + 3 <= channels; c += 3) {
      V below[3], above[3];
      select_range<T, 3>(split, first, last, base + x0, c, channel_stride, level_stride, below, above);
      for (int g = 0; g < 3; ++g) {  // in channel order
        const V gv = load<V>(grad + (c + g) * grad_stride + x0);
        above_sum += gv * above[g];
        below_sum += gv * below[g];
      }
    }
    for (; c < channels; ++c) {
      V below, above;
      select_range<T, 1>(split, first, last, base + x0, c, channel_stride, level_stride, &below, &above);
      const V g = load<V>(grad + c * grad_stride + x0);
      above_sum += g * above;
      below_sum += g * below;
    }
    store(grad_mask + x0, (above_sum - below_sum) * scale);
  }
  for (int64_t x = x0; x < width; ++x) {
    int64_t lo, hi;
    T frac;
    level_split<T>(mask[x], levels, lo, hi, frac);
    T above_sum = T(0), below_sum = T(0);
    for (int64_t c = 0; c < channels; ++c) {
      const T* row = base + c * channel_stride + x;
      const T g = grad[c * grad_stride + x];
      above_sum += g * row[hi * level_stride];
      below_sum += g * row[lo * level_stride];
    }
    grad_mask[x] = (above_sum - below_sum) * scale;
  }
}

}  // namespace

XAI_MULTIVERSION void lookup_row(int64_t width, int64_t levels, int64_t channels, const float* mask,
                                 const float* base, int64_t level_stride, int64_t channel_stride, float* out,
                                 int64_t out_stride) {
  lookup_row_impl(width, levels, channels, mask, base, level_stride, channel_stride, out, out_stride);
}
XAI_MULTIVERSION void lookup_row(int64_t width, int64_t levels, int64_t channels, const double* mask,
                                 const double* base, int64_t level_stride, int64_t channel_stride, double* out,
                                 int64_t out_stride) {
  lookup_row_impl(width, levels, channels, mask, base, level_stride, channel_stride, out, out_stride);
}
XAI_MULTIVERSION void lookup_backward_row(int64_t width, int64_t levels, int64_t channels, const float* mask,
                                          const float* base, int64_t level_stride, int64_t channel_stride,
                                          const float* grad, int64_t grad_stride, float* grad_mask) {
  lookup_backward_row_impl(width, levels, channels, mask, base, level_stride, channel_stride, grad, grad_stride,
                           grad_mask);
}
XAI_MULTIVERSION void lookup_backward_row(int64_t width, int64_t levels, int64_t channels, const double* mask,
                                          const double* base, int64_t level_stride, int64_t channel_stride,
                                          const double* grad, int64_t grad_stride, double* grad_mask) {
  lookup_backward_row_impl(width, levels, channels, mask, base, level_stride, channel_stride, grad, grad_stride,
                           grad_mask);
}

}  // namespace cpu
}  // namespace xaifast
