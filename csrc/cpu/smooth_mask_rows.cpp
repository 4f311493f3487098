// Multiply-adds may fuse here (setup.py turns contraction off elsewhere): the exp polynomial and
// the window sums are the whole cost of the op, and fusing them takes 30% off it. So the FMA
// clones (AVX2, AVX-512) may round differently from the baseline clone in the last bits; on one
// machine the results stay the same for any thread count.
#pragma GCC optimize("fp-contract=fast")

#include "cpu/smooth_mask_rows.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common/smooth_mask.h"
#include "cpu/vector_lanes.h"
#include "cpu/vector_math.h"

namespace xaifast {
namespace cpu {
namespace {

constexpr int64_t L = kMaskLanes;

template <typename T>
struct Lanes : VectorLanes<T, kMaskLanes> {};

// expf without branches on whole vectors: x = (n / 16) ln 2 + r with |r| <= ln 2 / 32 (n rounded
// to nearest by the 1.5 * 2^23 trick, ln 2 / 16 split in two for an exact product), so
// e^x = 2^(n >> 4) 2^((n & 15) / 16) e^r: 2^((n & 15) / 16) from a 16-entry table (one permute of
// a register), e^r - 1 from a degree-3 polynomial (its truncation error, r^4 / 24 < 1e-8, is far
// below a float's rounding), and 2^(n >> 4) added to the table value's exponent bits. At most 1.06
// ulp with FMA, 1.08 without, over [-85, 40] (the unshifted softmax's arguments lie in [-40, 40]);
// up to 1.27 ulp without FMA just above -87, where the scale is near the smallest normal. It
// replaced a degree-6 polynomial over |r| <= ln 2 / 2 (0.90 ulp with FMA, 1.17 without), which took
// 3 more multiply-adds per exp: the window exps are the op's whole cost.
// Arguments below -87.3 give ~1e-38 instead of 0.
// kBounded = false drops the upper clamp, for the softmax windows' arguments c v - max(c v), which
// are at most a rounding error above 0.
// kFloor = false drops the lower clamp too, for arguments known to be above -87 (the callers'
// kInRange; a compare and a blend per exp).
template <bool kBounded = true, bool kFloor = true>
XAI_ALWAYS_INLINE Lanes<float>::type fast_exp(Lanes<float>::type x) {
  typedef Lanes<float>::type V;
  typedef Lanes<float>::ints I;
  static_assert(L == 16, "the table of 2^(j / 16) fills one 16-lane vector");
  // 2^(j / 16), j = 0 .. 15, rounded to nearest.
  const V table = {1.000000000000f, 1.044273782427f, 1.090507732665f, 1.138788634757f,
                   1.189207115003f, 1.241857812073f, 1.296839554651f, 1.354255546937f,
                   1.414213562373f, 1.476826145939f, 1.542210825408f, 1.610490331949f,
                   1.681792830507f, 1.756252160373f, 1.834008086409f, 1.915206561397f};
  const V lo = V{} - 87.33654f, hi = V{} + 88.3762626647949f;
  if (kFloor) x = lo > x ? lo : x;
  if (kBounded) x = hi < x ? hi : x;
  // t = 1.5 * 2^23 + n: the integer n = round(16 x / ln 2) sits in t's low mantissa bits, read off
  // t's bits (no float-to-int conversion); n itself is t - 1.5 * 2^23, exactly.
  const float magic = 12582912.0f;
  const V t = x * 23.0831206542234f + magic;
  const V n = t - magic;
  V r = x - n * 0.0433349609375f;    // ln 2 / 16, its first 12 bits: n times it is exact
  r = r - n * -1.32621525e-5f;       // the rest of ln 2 / 16
  V p = V{} + 0.166666672f;
  p = p * r + 0.5f;
  p = (p * r + 1.0f) * r;            // e^r - 1
  // t's bits are 0x4B400000 + n, and 0x4B400000 is a multiple of 2^22: the shuffle reads n & 15
  // from their low 4 bits (indices are taken modulo 16), and (bits >> 4) << 23 is (n >> 4) << 23
  // (mod 2^32), the exponent of 2^(n >> 4).
  const I bits = (I)t;  // a same-size vector cast reinterprets the bits
  const V scale = (V)((I)__builtin_shuffle(table, bits) + ((bits >> 4) << 23));
  return scale + scale * p;
}

template <bool kBounded = true, bool kFloor = true>
XAI_ALWAYS_INLINE Lanes<double>::type fast_exp(Lanes<double>::type x) {
  for (int64_t l = 0; l < L; ++l) x[l] = std::exp(x[l]);
  return x;
}

template <typename T>
XAI_ALWAYS_INLINE typename Lanes<T>::type sigmoid_lanes(typename Lanes<T>::type sum, T coldness) {
  for (int64_t l = 0; l < L; ++l) sum[l] = sigmoid_pool<T>(sum[l], coldness);
  return sum;
}

// Whether window tap (i, j) reads only zeros at lanes x0 .. x0 + L - 1 (see nz in the header).
XAI_ALWAYS_INLINE bool zero_tap(const int32_t* const* nz, int64_t i, int64_t x) {
  return nz != nullptr && nz[i][x + L] == nz[i][x];
}

// A softmax pixel's backward factors (X: one value or a vector): g d out / d v_k = p_k (offset +
// slope v_k) with p_k = e_k / sum (see softmax_pool_grad_terms), the 1 / sum folded into offset
// and slope once per pixel. kScaled: the taps' w u are c w_k m_k, so e_k (offset + slope v_k) w_k
// is e_k (offset / c + slope / c^2 (c v_k)) (c w_k): the 1 / c folds into inv_sum too.
template <typename T, bool kScaled, typename X>
XAI_ALWAYS_INLINE void softmax_pixel_factors(X g, X out, X sum, T coldness, X& offset, X& slope) {
  const X inv_sum = kScaled ? T(1) / (sum * coldness) : T(1) / sum;
  offset = g * (T(1) - coldness * out) * inv_sum;
  slope = kScaled ? g * inv_sum : g * coldness * inv_sum;
}

// kScaled (softmax): w holds coldness * weight, so a tap's c v = w u takes one multiplication and
// the pixel's sum_k v_k e_k is (sum_k c v_k e_k) / c; rounded once more per pixel than with plain
// weights, as close to float64 (the tests measure it).
// kInRange (softmax, float): every window value v satisfies 2 |coldness v| <= 80 (the caller checks
// the parameters and weights once per call), so the exps take c v itself, unshifted: e^(c v) is in
// [e^-40, e^40], and sums of 81 such terms (times |c v| <= 40) are far from a float's range. The
// pass over the window that finds max(c v) is skipped, and row_max is 0. As accurate as the
// shifted form: there c v - max(c v) is exact for the dominant terms, here nothing is subtracted,
// and the softmax's ratios do not depend on a common factor e^-max.
template <typename T, bool kInRange, bool kScaled>
XAI_ALWAYS_INLINE void forward_row_impl(int64_t width_pad, int64_t window, int64_t step, const T* const* u,
                                        const int32_t* const* nz, const T* w, T coldness,
                                        int pooling, T* __restrict__ out, T* __restrict__ row_max,
                                        T* __restrict__ row_sum, T* __restrict__ values) {
  typedef typename Lanes<T>::type V;
  for (int64_t x0 = 0; x0 < width_pad; x0 += L) {
    if (pooling == static_cast<int>(MaskPooling::Softmax)) {
      V top = V{} - std::numeric_limits<T>::infinity();
      bool zeros = false;
      if (kInRange) {
        top = V{};
        zeros = true;  // (if there is none, e_zero goes unused)
      } else {
        for (int64_t i = 0; i < window; ++i) {
          for (int64_t j = 0; j < window; ++j) {
            if (zero_tap(nz, i, x0 + j * step)) {
              zeros = true;
              continue;
            }
            const int64_t k = i * window + j;
            const V wu = load<V>(w + k * width_pad + x0) * load<V>(u[i] + x0 + j * step);
            const V cv = kScaled ? wu : coldness * wu;
            store(values + k * L, wu);
            top = cv > top ? cv : top;
          }
        }
        if (zeros) top = top < 0 ? V{} : top;  // the zero taps' coldness * v
      }
      // A zero tap's term: v = 0, so e = exp(-top) and v e = 0 (dot is unchanged).
      const V e_zero = zeros ? fast_exp<false>((kScaled ? V{} : coldness * V{}) - top) : V{};
      V sum = V{}, dot = V{};
      for (int64_t i = 0; i < window; ++i) {
        for (int64_t j = 0; j < window; ++j) {
          if (zero_tap(nz, i, x0 + j * step)) {
            sum += e_zero;
            continue;
          }
          const int64_t k = i * window + j;
          // v, or c v if kScaled
          const V wu = kInRange ? load<V>(w + k * width_pad + x0) * load<V>(u[i] + x0 + j * step)
                                : load<V>(values + k * L);
          const V cv = kScaled ? wu : coldness * wu;
          const V e = kInRange ? fast_exp<false, false>(cv) : fast_exp<false>(cv - top);
          sum += e;
          dot += wu * e;
        }
      }
      store(out + x0, kScaled ? dot / (sum * coldness) : dot / sum);
      store(row_max + x0, top);
      store(row_sum + x0, sum);
    } else {
      V sum = V{};
      for (int64_t i = 0; i < window; ++i) {
        for (int64_t j = 0; j < window; ++j) {
          if (zero_tap(nz, i, x0 + j * step)) continue;  // adds w * 0
          sum += load<V>(w + (i * window + j) * width_pad + x0) * load<V>(u[i] + x0 + j * step);
        }
      }
      store(out + x0, pooling == static_cast<int>(MaskPooling::Sum) ? sum : sigmoid_lanes<T>(sum, coldness));
    }
  }
}

// The pixel rows of one cell row share their parameter rows u; per 16-pixel chunk, each window
// tap's gradient is summed over those rows in a register (u's values loaded once), with the
// rows' per-pixel constants computed first into `scratch`. Each sum runs over the rows in order.
template <typename T, bool kInRange, bool kScaled>
XAI_ALWAYS_INLINE void backward_rows_impl(int64_t width_pad, int64_t window, int64_t step, const T* const* u,
                                          const int32_t* const* nz, int64_t rows, const T* const* w, T coldness,
                                          int pooling, const T* const* g, const T* const* out,
                                          const T* const* row_max, const T* const* row_sum, T* __restrict__ acc,
                                          T* __restrict__ scratch) {
  typedef typename Lanes<T>::type V;
  const bool softmax = pooling == static_cast<int>(MaskPooling::Softmax);
  // Per row y: offset, slope, top and the zero taps' term (softmax), or d (the linear poolings).
  T* const offsets = scratch;
  T* const slopes = scratch + rows * L;
  T* const tops = scratch + 2 * rows * L;
  T* const zero_terms = scratch + 3 * rows * L;
  for (int64_t x0 = 0; x0 < width_pad; x0 += L) {
    for (int64_t y = 0; y < rows; ++y) {
      const V gv = load<V>(g[y] + x0), ov = load<V>(out[y] + x0);
      if (softmax) {
        const V top = kInRange ? V{} : load<V>(row_max[y] + x0);  // in range: unshifted, row_max unread
        V offset, slope;
        softmax_pixel_factors<T, kScaled>(gv, ov, load<V>(row_sum[y] + x0), coldness, offset, slope);
        store(offsets + y * L, offset);
        store(slopes + y * L, slope);
        if (!kInRange) store(tops + y * L, top);
        // A zero tap (v = 0): e = exp(-top) and offset + slope v = offset, for every such tap.
        store(zero_terms + y * L,
              nz != nullptr ? fast_exp<false>((kScaled ? V{} : coldness * V{}) - top) * offset : V{});
      } else {
        V d;
        for (int64_t l = 0; l < L; ++l) {
          d[l] = linear_pool_grad<T>(static_cast<MaskPooling>(pooling), gv[l], ov[l], coldness);
        }
        store(offsets + y * L, d);
      }
    }
    for (int64_t i = 0; i < window; ++i) {
      for (int64_t j = 0; j < window; ++j) {
        const int64_t k = i * window + j, wk_offset = k * width_pad + x0;
        V sum = V{};
        if (!softmax) {
          for (int64_t y = 0; y < rows; ++y) sum += load<V>(offsets + y * L) * load<V>(w[y] + wk_offset);
        } else if (zero_tap(nz, i, x0 + j * step)) {
          for (int64_t y = 0; y < rows; ++y) sum += load<V>(zero_terms + y * L) * load<V>(w[y] + wk_offset);
        } else {
          const V m = load<V>(u[i] + x0 + j * step);
          for (int64_t y = 0; y < rows; ++y) {
            const V wk = load<V>(w[y] + wk_offset);
            const V v = wk * m;  // c v if kScaled
            const V cv = kScaled ? v : coldness * v;
            const V e = kInRange ? fast_exp<false, false>(cv) : fast_exp<false>(cv - load<V>(tops + y * L));
            sum += e * (load<V>(offsets + y * L) + load<V>(slopes + y * L) * v) * wk;
          }
        }
        store(acc + wk_offset, sum);
      }
    }
  }
}

// The pixel factors of the backward by parameter (weights scaled by c, unshifted exps):
// softmax_pixel_factors, as backward_rows_impl<float, true, true> computes them.
XAI_ALWAYS_INLINE void pixel_factors_impl(int64_t n, const float* g, const float* out, const float* sum,
                                          float coldness, float* __restrict__ offset, float* __restrict__ slope) {
  typedef Lanes<float>::type V;
  int64_t x = 0;
  for (; x + L <= n; x += L) {
    V o, s;
    softmax_pixel_factors<float, true>(load<V>(g + x), load<V>(out + x), load<V>(sum + x), coldness, o, s);
    store(offset + x, o);
    store(slope + x, s);
  }
  for (; x < n; ++x) {  // the same expressions on one value (fused the same way in the FMA clones)
    softmax_pixel_factors<float, true>(g[x], out[x], sum[x], coldness, offset[x], slope[x]);
  }
}

XAI_ALWAYS_INLINE float parameter_gradient_impl(int64_t reach, int64_t classes, const int32_t* class_rows,
                                                const float* pw, const float* const* offsets,
                                                const float* const* slopes, int64_t x0, float m,
                                                float* __restrict__ scratch) {
  typedef Lanes<float>::type V;
  typedef Lanes<float>::ints I;
  constexpr int64_t kChunk = kReachChunk;
  static_assert(kChunk == 4 * L, "a chunk is four vectors");
  const int64_t stride = (reach + kChunk - 1) / kChunk * kChunk;
  I lane;
  for (int64_t l = 0; l < L; ++l) lane[l] = static_cast<int32_t>(l);
  // Per class: a = e (c w) and b = e (c w) (c v), so that a pixel's term e (offset + slope c v) (c w)
  // is a offset + b slope (zero past reach, where pw is zero).
  float* const a_rows = scratch;
  float* const b_rows = scratch + classes * stride;
  for (int64_t c = 0; c < classes; ++c) {
    for (int64_t q = 0; q < stride; q += L) {
      const V w = load<V>(pw + c * stride + q);
      const V cv = w * m;
      const V e = m == 0.0f ? V{} + 1.0f : fast_exp<false, false>(cv);  // exp(+-0) is 1 there too
      const V ew = e * w;
      store(a_rows + c * stride + q, ew);
      store(b_rows + c * stride + q, ew * cv);
    }
  }
  // Per chunk of 4 vectors and class: the class's rows are added up first (they share a and b),
  // then multiplied into eight accumulators (offsets' and slopes' terms of each vector), which are
  // added up last, all in a fixed order. Lanes past reach read other pixels' factors: they are
  // dropped before the products (a zero a or b would turn an infinite factor into a NaN).
  V acc0 = V{}, acc1 = V{}, acc2 = V{}, acc3 = V{}, acc4 = V{}, acc5 = V{}, acc6 = V{}, acc7 = V{};
  for (int64_t q = 0; q < stride; q += kChunk) {
    const int32_t left = static_cast<int32_t>(reach - q), width = static_cast<int32_t>(L);  // lanes in reach
    const auto in0 = lane < left, in1 = lane < left - width, in2 = lane < left - 2 * width;
    const auto in3 = lane < left - 3 * width;
    for (int64_t c = 0; c < classes; ++c) {
      const int32_t last = class_rows[c + 1];
      int32_t r = class_rows[c];
      while (r < last && offsets[r] == nullptr) ++r;
      if (r == last) continue;
      const float* o = offsets[r] + x0 + q;
      const float* s = slopes[r] + x0 + q;
      V o0 = load<V>(o), o1 = load<V>(o + L), o2 = load<V>(o + 2 * L), o3 = load<V>(o + 3 * L);
      V s0 = load<V>(s), s1 = load<V>(s + L), s2 = load<V>(s + 2 * L), s3 = load<V>(s + 3 * L);
      for (++r; r < last; ++r) {
        if (offsets[r] == nullptr) continue;
        o = offsets[r] + x0 + q;
        s = slopes[r] + x0 + q;
        o0 += load<V>(o), o1 += load<V>(o + L), o2 += load<V>(o + 2 * L), o3 += load<V>(o + 3 * L);
        s0 += load<V>(s), s1 += load<V>(s + L), s2 += load<V>(s + 2 * L), s3 += load<V>(s + 3 * L);
      }
      o0 = in0 ? o0 : V{}, o1 = in1 ? o1 : V{}, o2 = in2 ? o2 : V{}, o3 = in3 ? o3 : V{};
      s0 = in0 ? s0 : V{}, s1 = in1 ? s1 : V{}, s2 = in2 ? s2 : V{}, s3 = in3 ? s3 : V{};
      const float* a = a_rows + c * stride + q;
      const float* b = b_rows + c * stride + q;
      acc0 += load<V>(a) * o0, acc1 += load<V>(a + L) * o1, acc2 += load<V>(a + 2 * L) * o2;
      acc3 += load<V>(a + 3 * L) * o3;
      acc4 += load<V>(b) * s0, acc5 += load<V>(b + L) * s1, acc6 += load<V>(b + 2 * L) * s2;
      acc7 += load<V>(b + 3 * L) * s3;
    }
  }
  const V sum = ((acc0 + acc4) + (acc1 + acc5)) + ((acc2 + acc6) + (acc3 + acc7));
  float total = 0.0f;
  for (int64_t l = 0; l < L; ++l) total += sum[l];
  return total;
}

}  // namespace

// Each entry point picks its loop's variant once per call. kScaled and kInRange are float only:
// the double kernels keep the weights and shifts as they are (they are the float ones' oracle in
// the tests).
#define XAI_SMOOTH_MASK_ROWS(T)                                                                                        \
  XAI_MULTIVERSION void smooth_mask_row(int64_t width_pad, int64_t window, int64_t step, const T* const* u,            \
                                        const int32_t* const* nz, bool in_range, const T* w, bool scaled,              \
                                        T coldness, int pooling, T* out, T* row_max, T* row_sum, T* scratch) {         \
    constexpr bool kFloat = std::is_same<T, float>::value;                                                             \
    if (kFloat && in_range && scaled) {                                                                                \
      forward_row_impl<T, kFloat, kFloat>(width_pad, window, step, u, nz, w, coldness, pooling, out, row_max,          \
                                          row_sum, scratch);                                                           \
    } else if (kFloat && scaled) {                                                                                     \
      forward_row_impl<T, false, kFloat>(width_pad, window, step, u, nz, w, coldness, pooling, out, row_max,           \
                                         row_sum, scratch);                                                            \
    } else if (kFloat && in_range) {                                                                                   \
      forward_row_impl<T, kFloat, false>(width_pad, window, step, u, nz, w, coldness, pooling, out, row_max,           \
                                         row_sum, scratch);                                                            \
    } else {                                                                                                           \
      forward_row_impl<T, false, false>(width_pad, window, step, u, nz, w, coldness, pooling, out, row_max,            \
                                        row_sum, scratch);                                                             \
    }                                                                                                                  \
  }                                                                                                                    \
  XAI_MULTIVERSION void smooth_mask_backward_rows(                                                                     \
      int64_t width_pad, int64_t window, int64_t step, const T* const* u, const int32_t* const* nz,                    \
      int64_t rows, const T* const* w, bool scaled, T coldness, int pooling, bool in_range, const T* const* g,         \
      const T* const* out, const T* const* row_max, const T* const* row_sum, T* acc, T* scratch) {                     \
    constexpr bool kFloat = std::is_same<T, float>::value;                                                             \
    if (kFloat && in_range && scaled) {                                                                                \
      backward_rows_impl<T, kFloat, kFloat>(width_pad, window, step, u, nz, rows, w, coldness, pooling, g, out,        \
                                            row_max, row_sum, acc, scratch);                                           \
    } else if (kFloat && scaled) {                                                                                     \
      backward_rows_impl<T, false, kFloat>(width_pad, window, step, u, nz, rows, w, coldness, pooling, g, out,         \
                                           row_max, row_sum, acc, scratch);                                            \
    } else if (kFloat && in_range) {                                                                                   \
      backward_rows_impl<T, kFloat, false>(width_pad, window, step, u, nz, rows, w, coldness, pooling, g, out,         \
                                           row_max, row_sum, acc, scratch);                                            \
    } else {                                                                                                           \
      backward_rows_impl<T, false, false>(width_pad, window, step, u, nz, rows, w, coldness, pooling, g, out,          \
                                          row_max, row_sum, acc, scratch);                                             \
    }                                                                                                                  \
  }

XAI_SMOOTH_MASK_ROWS(float)
XAI_SMOOTH_MASK_ROWS(double)

#undef XAI_SMOOTH_MASK_ROWS

XAI_MULTIVERSION void smooth_mask_pixel_factors(int64_t n, const float* g, const float* out, const float* sum,
                                                float coldness, float* offset, float* slope) {
  pixel_factors_impl(n, g, out, sum, coldness, offset, slope);
}

XAI_MULTIVERSION float smooth_mask_parameter_gradient(int64_t reach, int64_t classes, const int32_t* class_rows,
                                                      const float* pw, const float* const* offsets,
                                                      const float* const* slopes, int64_t x0, float m,
                                                      float* scratch) {
  return parameter_gradient_impl(reach, classes, class_rows, pw, offsets, slopes, x0, m, scratch);
}

}  // namespace cpu
}  // namespace xaifast
