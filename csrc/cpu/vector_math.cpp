#include "cpu/vector_math.h"

namespace xaifast {
namespace cpu {
namespace {

// Blocks of outputs are kept in a small accumulator so each tap streams over them once while
// they stay in registers/L1; the order of the sum over k is the same for every output.
template <typename T>
inline void correlate_valid_impl(int64_t n, int64_t K, const T* __restrict__ f, const T* __restrict__ x,
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
inline void weighted_rows_impl(int64_t n, int64_t count, const T* __restrict__ w, const T* const* rows,
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

}  // namespace

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
}  // namespace cpu
}  // namespace xaifast
