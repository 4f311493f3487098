#include "cpu/vector_math.h"

#include "cpu/vector_lanes.h"

#include <cstring>
#include <limits>
#include <type_traits>

namespace xaifast {
namespace cpu {
namespace {

// y[start + i] = sum_t weight(t) * source(t)[i] for the outputs of one block of 128: eight
// 16-lane accumulators in registers (an accumulator array in memory made every tap a store and a
// reload: 4x slower), each output summed over t in order from 0, as the scalar tail does.
template <typename T>
struct Block {
  typedef typename VectorLanes<T, 16>::type V;
  static constexpr int64_t kSize = 128;

  template <typename Weight, typename Source>
  static XAI_ALWAYS_INLINE void sum(int64_t count, Weight weight, Source source, T* __restrict__ y) {
    V a0 = {}, a1 = {}, a2 = {}, a3 = {}, a4 = {}, a5 = {}, a6 = {}, a7 = {};
    for (int64_t t = 0; t < count; ++t) {
      const V w = V{} + weight(t);
      const T* src = source(t);
      a0 += w * load<V>(src);
      a1 += w * load<V>(src + 16);
      a2 += w * load<V>(src + 32);
      a3 += w * load<V>(src + 48);
      a4 += w * load<V>(src + 64);
      a5 += w * load<V>(src + 80);
      a6 += w * load<V>(src + 96);
      a7 += w * load<V>(src + 112);
    }
    store(y, a0);
    store(y + 16, a1);
    store(y + 32, a2);
    store(y + 48, a3);
    store(y + 64, a4);
    store(y + 80, a5);
    store(y + 96, a6);
    store(y + 112, a7);
  }
};

// The outputs past the last whole block: 16 at a time in one accumulator, then the last few;
// each output summed over t in order from 0, as in the blocks.
template <typename T, typename Weight, typename Source>
XAI_ALWAYS_INLINE void sum_tail(int64_t begin, int64_t n, int64_t count, Weight weight, Source source,
                                T* __restrict__ y) {
  typedef typename Block<T>::V V;
  int64_t start = begin;
  for (; start + 16 <= n; start += 16) {
    V acc = {};
    for (int64_t t = 0; t < count; ++t) acc += (V{} + weight(t)) * load<V>(source(t) + start);
    store(y + start, acc);
  }
  const int64_t rest = n - start;
  if (rest == 0) return;
  T acc[16] = {};
  for (int64_t t = 0; t < count; ++t) {
    const T w = weight(t);
    const T* src = source(t) + start;
    for (int64_t i = 0; i < rest; ++i) acc[i] += w * src[i];
  }
  for (int64_t i = 0; i < rest; ++i) y[start + i] = acc[i];
}

template <typename T>
XAI_ALWAYS_INLINE void correlate_valid_impl(int64_t n, int64_t K, const T* __restrict__ f, const T* __restrict__ x,
                                            T* __restrict__ y) {
  const auto weight = [f](int64_t k) { return f[k]; };
  int64_t start = 0;
  for (; start + Block<T>::kSize <= n; start += Block<T>::kSize) {
    Block<T>::sum(K, weight, [x, start](int64_t k) { return x + start + k; }, y + start);
  }
  sum_tail(start, n, K, weight, [x](int64_t k) { return x + k; }, y);
}

template <typename T>
XAI_ALWAYS_INLINE void weighted_rows_impl(int64_t n, int64_t count, const T* __restrict__ w, const T* const* rows,
                                          T* __restrict__ y) {
  const auto weight = [w](int64_t t) { return w[t]; };
  int64_t start = 0;
  for (; start + Block<T>::kSize <= n; start += Block<T>::kSize) {
    Block<T>::sum(count, weight, [rows, start](int64_t t) { return rows[t] + start; }, y + start);
  }
  sum_tail(start, n, count, weight, [rows](int64_t t) { return rows[t]; }, y);
}

template <typename T>
XAI_ALWAYS_INLINE void running_sums_impl(int64_t n, const T* __restrict__ prev0, const T* __restrict__ prev1,
                                         const T* __restrict__ x, T weight, T* __restrict__ sum0, T* __restrict__ sum1) {
  for (int64_t i = 0; i < n; ++i) {
    sum0[i] = prev0[i] + x[i];
    sum1[i] = prev1[i] + weight * x[i];
  }
}

// Two 64-byte vectors of lanes (GCC vector types: the compiler neither vectorises a
// floating-point min/max reduction nor the lane-array form of it, which ran scalar), combined at
// the end. Order does not matter: min and max of non-NaN values are exact, and any NaN makes both
// bounds NaN. A lane's comparison never lets a NaN in, so NaNs are tracked in their own mask.
template <typename T>
XAI_ALWAYS_INLINE void min_max_impl(int64_t n, const T* __restrict__ x, T* lo, T* hi) {
  typedef T Vec __attribute__((vector_size(64)));
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> Bits;
  typedef Bits Mask __attribute__((vector_size(64)));
  constexpr int64_t kLanes = 64 / sizeof(T);
  Vec low0 = Vec{} + x[0], high0 = low0, low1 = low0, high1 = low0;
  Mask nan0 = {}, nan1 = {};
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    Vec a, b;
    std::memcpy(&a, x + i, sizeof(Vec));
    std::memcpy(&b, x + i + kLanes, sizeof(Vec));
    low0 = a < low0 ? a : low0;
    high0 = a > high0 ? a : high0;
    nan0 |= a != a;
    low1 = b < low1 ? b : low1;
    high1 = b > high1 ? b : high1;
    nan1 |= b != b;
  }
  low0 = low1 < low0 ? low1 : low0;
  high0 = high1 > high0 ? high1 : high0;
  nan0 |= nan1;
  T l = low0[0], h = high0[0];
  Bits any_nan = 0;
  for (int64_t j = 0; j < kLanes; ++j) {
    l = low0[j] < l ? low0[j] : l;
    h = high0[j] > h ? high0[j] : h;
    any_nan |= nan0[j];
  }
  for (; i < n; ++i) {
    l = x[i] < l ? x[i] : l;
    h = x[i] > h ? x[i] : h;
    any_nan |= static_cast<Bits>(x[i] != x[i]);
  }
  if (any_nan != 0 || l != l) {
    l = h = std::numeric_limits<T>::quiet_NaN();
  }
  *lo = l;
  *hi = h;
}

template <typename T>
XAI_ALWAYS_INLINE void lerp_gather_impl(int64_t n, const T* __restrict__ base, const int32_t* __restrict__ lo,
                                        const int32_t* __restrict__ hi, const T* __restrict__ frac,
                                        T* __restrict__ out) {
  for (int64_t i = 0; i < n; ++i) out[i] = (T(1) - frac[i]) * base[lo[i]] + frac[i] * base[hi[i]];
}

template <typename T>
XAI_ALWAYS_INLINE void gather_products_impl(int64_t n, const T* __restrict__ base, const int32_t* __restrict__ lo,
                                            const int32_t* __restrict__ hi, const T* __restrict__ g,
                                            T* __restrict__ above, T* __restrict__ below) {
  for (int64_t i = 0; i < n; ++i) {
    above[i] += g[i] * base[hi[i]];
    below[i] += g[i] * base[lo[i]];
  }
}

}  // namespace

XAI_MULTIVERSION void lerp_gather(int64_t n, const float* __restrict__ base, const int32_t* __restrict__ lo,
                                  const int32_t* __restrict__ hi, const float* __restrict__ frac,
                                  float* __restrict__ out) {
  lerp_gather_impl(n, base, lo, hi, frac, out);
}
XAI_MULTIVERSION void lerp_gather(int64_t n, const double* __restrict__ base, const int32_t* __restrict__ lo,
                                  const int32_t* __restrict__ hi, const double* __restrict__ frac,
                                  double* __restrict__ out) {
  lerp_gather_impl(n, base, lo, hi, frac, out);
}
XAI_MULTIVERSION void gather_products(int64_t n, const float* __restrict__ base, const int32_t* __restrict__ lo,
                                      const int32_t* __restrict__ hi, const float* __restrict__ g,
                                      float* __restrict__ above, float* __restrict__ below) {
  gather_products_impl(n, base, lo, hi, g, above, below);
}
XAI_MULTIVERSION void gather_products(int64_t n, const double* __restrict__ base, const int32_t* __restrict__ lo,
                                      const int32_t* __restrict__ hi, const double* __restrict__ g,
                                      double* __restrict__ above, double* __restrict__ below) {
  gather_products_impl(n, base, lo, hi, g, above, below);
}

XAI_MULTIVERSION void min_max(int64_t n, const float* __restrict__ x, float* lo, float* hi) {
  min_max_impl(n, x, lo, hi);
}
XAI_MULTIVERSION void min_max(int64_t n, const double* __restrict__ x, double* lo, double* hi) {
  min_max_impl(n, x, lo, hi);
}
XAI_MULTIVERSION void running_sums(int64_t n, const float* prev0, const float* prev1, const float* __restrict__ x,
                                   float weight, float* sum0, float* sum1) {
  running_sums_impl(n, prev0, prev1, x, weight, sum0, sum1);
}
XAI_MULTIVERSION void running_sums(int64_t n, const double* prev0, const double* prev1, const double* __restrict__ x,
                                   double weight, double* sum0, double* sum1) {
  running_sums_impl(n, prev0, prev1, x, weight, sum0, sum1);
}
XAI_MULTIVERSION void weighted_rows(int64_t n, int64_t count, const float* __restrict__ w,
                                    const float* const* rows, float* __restrict__ y) {
  weighted_rows_impl(n, count, w, rows, y);
}
XAI_MULTIVERSION void weighted_rows(int64_t n, int64_t count, const double* __restrict__ w,
                                    const double* const* rows, double* __restrict__ y) {
  weighted_rows_impl(n, count, w, rows, y);
}
XAI_MULTIVERSION void correlate_valid(int64_t n, int64_t K, const float* __restrict__ f,
                                      const float* __restrict__ x, float* __restrict__ y) {
  correlate_valid_impl(n, K, f, x, y);
}
XAI_MULTIVERSION void correlate_valid(int64_t n, int64_t K, const double* __restrict__ f,
                                      const double* __restrict__ x, double* __restrict__ y) {
  correlate_valid_impl(n, K, f, x, y);
}
XAI_MULTIVERSION void divide_shifted(int64_t n, const float* __restrict__ a, const float* __restrict__ b, float eps,
                                     float* __restrict__ out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] / (b[i] + eps);
}
XAI_MULTIVERSION void divide_shifted(int64_t n, const double* __restrict__ a, const double* __restrict__ b,
                                     double eps, double* __restrict__ out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] / (b[i] + eps);
}
XAI_MULTIVERSION void multiply(int64_t n, const float* __restrict__ a, const float* __restrict__ b,
                               float* __restrict__ out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}
XAI_MULTIVERSION void multiply(int64_t n, const double* __restrict__ a, const double* __restrict__ b,
                               double* __restrict__ out) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

}  // namespace cpu
}  // namespace xaifast
