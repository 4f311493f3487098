// Contiguous float/double loops the CPU kernels spend their time in.
//
// The extension is built for baseline x86-64 (SSE2) so one binary runs everywhere; on GCC/Linux
// these loops are cloned for AVX-512 and AVX2+FMA and the best clone is picked when the
// library loads (ifunc), which is where most of the speed comes from.
#pragma once

#include <cstdint>

// The clones are the x86-64 ISA levels v4 (AVX-512 F/BW/CD/DQ/VL) and v3 (AVX2, FMA), which the
// resolver picks by CPU *features*. Named CPUs ("arch=skylake-avx512", "arch=haswell") would be
// picked by CPU *model* (__builtin_cpu_is): a newer model than the compiler knows (an Emerald
// Rapids Xeon under GCC 12, for one) then silently ran the SSE2 default.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define XAI_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define XAI_MULTIVERSION
#endif

// Forces the *_impl templates inline into each target_clones variant: a call to an out-of-line
// copy would run the baseline (SSE2) code whatever clone was picked.
#if defined(__GNUC__)
#define XAI_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define XAI_ALWAYS_INLINE inline
#endif

namespace xaifast {
namespace cpu {

// y[i] = sum_t w[t] * rows[t][i], i in [0, n): a weighted sum of `count` rows of length n.
void weighted_rows(int64_t n, int64_t count, const float* __restrict__ w, const float* const* rows,
                   float* __restrict__ y);
void weighted_rows(int64_t n, int64_t count, const double* __restrict__ w, const double* const* rows,
                   double* __restrict__ y);

// One step of two running sums: sum0[i] = prev0[i] + x[i], sum1[i] = prev1[i] + weight * x[i].
void running_sums(int64_t n, const float* prev0, const float* prev1, const float* __restrict__ x, float weight,
                  float* sum0, float* sum1);
void running_sums(int64_t n, const double* prev0, const double* prev1, const double* __restrict__ x, double weight,
                  double* sum0, double* sum1);

// The min and max of x[0, n); both NaN if any x is NaN (numpy's min/max semantics).
void min_max(int64_t n, const float* __restrict__ x, float* lo, float* hi);
void min_max(int64_t n, const double* __restrict__ x, double* lo, double* hi);

// out[i] = a[i] / (b[i] + eps)
void divide_shifted(int64_t n, const float* __restrict__ a, const float* __restrict__ b, float eps,
                    float* __restrict__ out);
void divide_shifted(int64_t n, const double* __restrict__ a, const double* __restrict__ b, double eps,
                    double* __restrict__ out);

// out[i] = a[i] * b[i]
void multiply(int64_t n, const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out);
void multiply(int64_t n, const double* __restrict__ a, const double* __restrict__ b, double* __restrict__ out);

// y[i] = sum_k f[k] * x[i + k], i in [0, n): a "valid" correlation of x (n + K - 1 values) with f.
void correlate_valid(int64_t n, int64_t K, const float* __restrict__ f, const float* __restrict__ x,
                     float* __restrict__ y);
void correlate_valid(int64_t n, int64_t K, const double* __restrict__ f, const double* __restrict__ x,
                     double* __restrict__ y);

// out[i] = (1 - frac[i]) * base[lo[i]] + frac[i] * base[hi[i]]: a blend of two gathered values.
void lerp_gather(int64_t n, const float* __restrict__ base, const int32_t* __restrict__ lo,
                 const int32_t* __restrict__ hi, const float* __restrict__ frac, float* __restrict__ out);
void lerp_gather(int64_t n, const double* __restrict__ base, const int32_t* __restrict__ lo,
                 const int32_t* __restrict__ hi, const double* __restrict__ frac, double* __restrict__ out);

// above[i] += g[i] * base[hi[i]], below[i] += g[i] * base[lo[i]].
void gather_products(int64_t n, const float* __restrict__ base, const int32_t* __restrict__ lo,
                     const int32_t* __restrict__ hi, const float* __restrict__ g, float* __restrict__ above,
                     float* __restrict__ below);
void gather_products(int64_t n, const double* __restrict__ base, const int32_t* __restrict__ lo,
                     const int32_t* __restrict__ hi, const double* __restrict__ g, double* __restrict__ above,
                     double* __restrict__ below);

}  // namespace cpu
}  // namespace xaifast
