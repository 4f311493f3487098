// Multiply-adds may fuse here (setup.py turns contraction off elsewhere): the exp polynomial and
// the window sums are the whole cost of the op, and fusing them takes 30% off it. So the FMA
// clones (AVX2, AVX-512) may round differently from the baseline clone in the last bits; on one
// machine the results stay the same for any thread count.
#pragma GCC optimize("fp-contract=fast")

#include "cpu/smooth_mask_rows.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "common/smooth_mask.h"
#include "cpu/vector_math.h"

// The vector helpers below are always inlined: the ABI note about passing 64-byte vectors does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace xaifast {
namespace cpu {
namespace {

constexpr int64_t L = kMaskLanes;

// kMaskLanes values in one GCC vector: each target_clones variant lowers it to its own registers
// (one zmm, two ymm, four xmm), so the loops below are vectorised whatever the clone.
template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  typedef float type __attribute__((vector_size(sizeof(float) * kMaskLanes)));
  typedef int32_t bits __attribute__((vector_size(sizeof(int32_t) * kMaskLanes)));
};
template <>
struct Lanes<double> {
  typedef double type __attribute__((vector_size(sizeof(double) * kMaskLanes)));
};

template <typename V>
XAI_ALWAYS_INLINE V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V>
XAI_ALWAYS_INLINE void store(void* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// expf without branches on whole vectors: x = n ln 2 + r with |r| <= ln 2 / 2 (n rounded to
// nearest by the 1.5 * 2^23 trick, ln 2 split in two for an exact product), a degree-6 polynomial
// for e^r (Cephes' coefficients, about 1 ulp), and 2^n from the exponent bits. Arguments below
// -87.3 give ~1e-38 instead of 0.
// kBounded = false drops the upper clamp, for the softmax windows' arguments c v - max(c v), which
// are at most a rounding error above 0.
template <bool kBounded = true>
XAI_ALWAYS_INLINE Lanes<float>::type fast_exp(Lanes<float>::type x) {
  typedef Lanes<float>::type V;
  const V lo = V{} - 87.33654f, hi = V{} + 88.3762626647949f;
  x = x < lo ? lo : x;
  if (kBounded) x = x > hi ? hi : x;
  // t = 1.5 * 2^23 + n: the integer n sits in t's low mantissa bits, so 2^n's exponent field is
  // read off t's bits (no float-to-int conversion); n itself is t - 1.5 * 2^23, exactly.
  const float magic = 12582912.0f;
  const V t = x * 1.44269504088896341f + magic;
  const V n = t - magic;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = (p * r + 1.0f) * r + 1.0f;  // 1 + r (1 + r p): two fused multiply-adds
  const Lanes<float>::bits e = ((Lanes<float>::bits)t + (127 - 0x4B400000)) << 23;
  return p * (V)e;  // a same-size vector cast reinterprets the bits
}

template <bool kBounded = true>
XAI_ALWAYS_INLINE Lanes<double>::type fast_exp(Lanes<double>::type x) {
  for (int64_t l = 0; l < L; ++l) x[l] = std::exp(x[l]);
  return x;
}

template <typename T>
XAI_ALWAYS_INLINE typename Lanes<T>::type sigmoid_lanes(typename Lanes<T>::type sum, T coldness) {
  for (int64_t l = 0; l < L; ++l) sum[l] = sigmoid_pool<T>(sum[l], coldness);
  return sum;
}

template <typename T>
XAI_ALWAYS_INLINE void forward_row_impl(int64_t width_pad, int64_t window, int64_t step, const T* const* u,
                                        const T* w, T coldness, int pooling, T* __restrict__ out,
                                        T* __restrict__ row_max, T* __restrict__ row_sum, T* __restrict__ values) {
  typedef typename Lanes<T>::type V;
  const int64_t taps = window * window;
  for (int64_t x0 = 0; x0 < width_pad; x0 += L) {
    if (pooling == static_cast<int>(MaskPooling::Softmax)) {
      V top = V{} - std::numeric_limits<T>::infinity();
      for (int64_t i = 0; i < window; ++i) {
        for (int64_t j = 0; j < window; ++j) {
          const int64_t k = i * window + j;
          const V v = load<V>(w + k * width_pad + x0) * load<V>(u[i] + x0 + j * step);
          store(values + k * L, v);
          const V cv = coldness * v;
          top = cv > top ? cv : top;
        }
      }
      V sum = V{}, dot = V{};
      for (int64_t k = 0; k < taps; ++k) {
        const V v = load<V>(values + k * L);
        const V e = fast_exp<false>(coldness * v - top);
        sum += e;
        dot += v * e;
      }
      store(out + x0, dot / sum);
      store(row_max + x0, top);
      store(row_sum + x0, sum);
    } else {
      V sum = V{};
      for (int64_t i = 0; i < window; ++i) {
        for (int64_t j = 0; j < window; ++j) {
          sum += load<V>(w + (i * window + j) * width_pad + x0) * load<V>(u[i] + x0 + j * step);
        }
      }
      store(out + x0, pooling == static_cast<int>(MaskPooling::Sum) ? sum : sigmoid_lanes<T>(sum, coldness));
    }
  }
}

// The pixel rows of one cell row share their parameter rows u; per 16-pixel chunk, the window's
// gradients are accumulated over those rows in registers/L1 (acc_k below), then stored once.
template <typename T>
XAI_ALWAYS_INLINE void backward_rows_impl(int64_t width_pad, int64_t window, int64_t step, const T* const* u,
                                          int64_t rows, const T* const* w, T coldness, int pooling,
                                          const T* const* g, const T* const* out, const T* const* row_max,
                                          const T* const* row_sum, T* __restrict__ acc, T* __restrict__ scratch) {
  typedef typename Lanes<T>::type V;
  const int64_t taps = window * window;
  for (int64_t x0 = 0; x0 < width_pad; x0 += L) {
    for (int64_t k = 0; k < taps; ++k) store(scratch + k * L, V{});
    for (int64_t y = 0; y < rows; ++y) {
      const V gv = load<V>(g[y] + x0), ov = load<V>(out[y] + x0);
      const T* wy = w[y];
      if (pooling == static_cast<int>(MaskPooling::Softmax)) {
        // g d out / d v_k = p_k (offset + slope v_k) with p_k = e_k / sum: see
        // softmax_pool_grad_terms. The 1 / sum is folded into offset and slope once per pixel.
        const V inv_sum = T(1) / load<V>(row_sum[y] + x0), top = load<V>(row_max[y] + x0);
        const V offset = gv * (T(1) - coldness * ov) * inv_sum, slope = gv * coldness * inv_sum;
        for (int64_t i = 0; i < window; ++i) {
          for (int64_t j = 0; j < window; ++j) {
            const int64_t k = i * window + j;
            const V wk = load<V>(wy + k * width_pad + x0);
            const V v = wk * load<V>(u[i] + x0 + j * step);
            const V e = fast_exp<false>(coldness * v - top);
            store(scratch + k * L, load<V>(scratch + k * L) + e * (offset + slope * v) * wk);
          }
        }
      } else {
        V d;
        for (int64_t l = 0; l < L; ++l) {
          d[l] = linear_pool_grad<T>(static_cast<MaskPooling>(pooling), gv[l], ov[l], coldness);
        }
        for (int64_t k = 0; k < taps; ++k) {
          store(scratch + k * L, load<V>(scratch + k * L) + d * load<V>(wy + k * width_pad + x0));
        }
      }
    }
    for (int64_t k = 0; k < taps; ++k) store(acc + k * width_pad + x0, load<V>(scratch + k * L));
  }
}

}  // namespace

XAI_MULTIVERSION void smooth_mask_row(int64_t width_pad, int64_t window, int64_t step, const float* const* u,
                                      const float* w, float coldness, int pooling, float* out, float* row_max,
                                      float* row_sum, float* scratch) {
  forward_row_impl(width_pad, window, step, u, w, coldness, pooling, out, row_max, row_sum, scratch);
}

XAI_MULTIVERSION void smooth_mask_row(int64_t width_pad, int64_t window, int64_t step, const double* const* u,
                                      const double* w, double coldness, int pooling, double* out, double* row_max,
                                      double* row_sum, double* scratch) {
  forward_row_impl(width_pad, window, step, u, w, coldness, pooling, out, row_max, row_sum, scratch);
}

XAI_MULTIVERSION void smooth_mask_backward_rows(int64_t width_pad, int64_t window, int64_t step,
                                                const float* const* u, int64_t rows, const float* const* w,
                                                float coldness, int pooling, const float* const* g,
                                                const float* const* out, const float* const* row_max,
                                                const float* const* row_sum, float* acc, float* scratch) {
  backward_rows_impl(width_pad, window, step, u, rows, w, coldness, pooling, g, out, row_max, row_sum, acc, scratch);
}

XAI_MULTIVERSION void smooth_mask_backward_rows(int64_t width_pad, int64_t window, int64_t step,
                                                const double* const* u, int64_t rows, const double* const* w,
                                                double coldness, int pooling, const double* const* g,
                                                const double* const* out, const double* const* row_max,
                                                const double* const* row_sum, double* acc, double* scratch) {
  backward_rows_impl(width_pad, window, step, u, rows, w, coldness, pooling, g, out, row_max, row_sum, acc, scratch);
}

}  // namespace cpu
}  // namespace xaifast
