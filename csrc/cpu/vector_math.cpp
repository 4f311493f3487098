#include "cpu/vector_math.h"

#include <cstring>
#include <limits>
#include <type_traits>

namespace xaifast {
namespace cpu {
namespace {

// Blocks of outputs are kept in a small accumulator so each tap streams over them once while
// they stay in registers/L1; the order of the sum over k is the same for every output.
template <typename T>
XAI_ALWAYS_INLINE void correlate_valid_impl(int64_t n, int64_t K, const T* __restrict__ f, const T* __restrict__ x,
                                            T* __restrict__ y) {
  constexpr int64_t kBlock = 64;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t len = n - start < kBlock ? n - start : kBlock;
    T acc[kBlock];
    for (int64_t i = 0; i < len; ++i) acc[i] = 0;
    for (int64_t k = 0; k < K; ++k) {
      const T w = f[k];
      const T* src = x + start + k;
      for (int64_t i = 0; i < len; ++i) acc[i] += w * src[i];
    }
    for (int64_t i = 0; i < len; ++i) y[start + i] = acc[i];
  }
}

template <typename T>
XAI_ALWAYS_INLINE void weighted_rows_impl(int64_t n, int64_t count, const T* __restrict__ w, const T* const* rows,
                                          T* __restrict__ y) {
  constexpr int64_t kBlock = 64;
  for (int64_t start = 0; start < n; start += kBlock) {
    const int64_t len = n - start < kBlock ? n - start : kBlock;
    T acc[kBlock];
    for (int64_t i = 0; i < len; ++i) acc[i] = 0;
    for (int64_t t = 0; t < count; ++t) {
      const T weight = w[t];
      const T* src = rows[t] + start;
      for (int64_t i = 0; i < len; ++i) acc[i] += weight * src[i];
    }
    for (int64_t i = 0; i < len; ++i) y[start + i] = acc[i];
  }
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
