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
#include "cpu/vector_lanes.h"
#include "cpu/vector_math.h"

namespace xaifast {
namespace cpu {
namespace {

constexpr int64_t L = kMaskLanes;

template <typename T>
struct Lanes : VectorLanes<T, kMaskLanes> {};

// expf without branches on whole vectors: x = n ln 2 + r with |r| <= ln 2 / 2 (n rounded to
// nearest by the 1.5 * 2^23 trick, ln 2 split in two for an exact product), a degree-6 polynomial
// for e^r (fitted to relative error; Cephes' degree 7 is no more accurate in float: 0.89 ulp at
// most over [-87, 0.3] with FMA, 1.18 without, for either), and 2^n from the exponent bits.
// Arguments below -87.3 give ~1e-38 instead of 0.
// kBounded = false drops the upper clamp, for the softmax windows' arguments c v - max(c v), which
// are at most a rounding error above 0.
// kFloor = false drops the lower clamp too, for arguments known to be above -87 (the callers'
// kInRange; a compare and a blend per exp).
template <bool kBounded = true, bool kFloor = true>
XAI_ALWAYS_INLINE Lanes<float>::type fast_exp(Lanes<float>::type x) {
  typedef Lanes<float>::type V;
  const V lo = V{} - 87.33654f, hi = V{} + 88.3762626647949f;
  if (kFloor) x = lo > x ? lo : x;
  if (kBounded) x = hi < x ? hi : x;
  // t = 1.5 * 2^23 + n: the integer n sits in t's low mantissa bits, so 2^n's exponent field is
  // read off t's bits (no float-to-int conversion); n itself is t - 1.5 * 2^23, exactly.
  const float magic = 12582912.0f;
  const V t = x * 1.44269504088896341f + magic;
  const V n = t - magic;
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = V{} + 1.3906148893e-3f;
  p = p * r + 8.3670646698e-3f;
  p = p * r + 4.1666782659e-2f;
  p = p * r + 1.6666536278e-1f;
  p = p * r + 4.9999999692e-1f;
  p = (p * r + 1.0f) * r + 1.0f;  // 1 + r (1 + r p): two multiply-adds (fused in the FMA clones)
  const Lanes<float>::ints e = ((Lanes<float>::ints)t + (127 - 0x4B400000)) << 23;
  return p * (V)e;  // a same-size vector cast reinterprets the bits
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

// kInRange (softmax): every window value v satisfies 2 |coldness v| <= 80 (the caller checks the
// parameters and weights once per call), and `shift` holds each lane's shift for the exps, any
// value in [-40, 40]: the arguments c v - shift stay in [-80, 80], so the exps need no clamp, and
// the pass over the window that finds max(c v) is skipped. The caller passes the exact max of a
// nearby pixel row: the dominant terms' arguments stay near 0, where they round finely.
template <typename T, bool kInRange>
XAI_ALWAYS_INLINE void forward_row_impl(int64_t width_pad, int64_t window, int64_t step, const T* const* u,
                                        const int32_t* const* nz, const T* shift, const T* w, T coldness,
                                        int pooling, T* __restrict__ out, T* __restrict__ row_max,
                                        T* __restrict__ row_sum, T* __restrict__ values) {
  typedef typename Lanes<T>::type V;
  for (int64_t x0 = 0; x0 < width_pad; x0 += L) {
    if (pooling == static_cast<int>(MaskPooling::Softmax)) {
      V top = V{} - std::numeric_limits<T>::infinity();
      bool zeros = false;
      if (kInRange) {
        top = load<V>(shift + x0);
        zeros = true;  // (if there is none, e_zero goes unused)
      } else {
        for (int64_t i = 0; i < window; ++i) {
          for (int64_t j = 0; j < window; ++j) {
            if (zero_tap(nz, i, x0 + j * step)) {
              zeros = true;
              continue;
            }
            const int64_t k = i * window + j;
            const V v = load<V>(w + k * width_pad + x0) * load<V>(u[i] + x0 + j * step);
            store(values + k * L, v);
            const V cv = coldness * v;
            top = cv > top ? cv : top;
          }
        }
        if (zeros) top = top < 0 ? V{} : top;  // the zero taps' coldness * v
      }
      // A zero tap's term: v = 0, so e = exp(-top) and v e = 0 (dot is unchanged).
      const V e_zero = zeros ? fast_exp<false>(coldness * V{} - top) : V{};
      V sum = V{}, dot = V{};
      for (int64_t i = 0; i < window; ++i) {
        for (int64_t j = 0; j < window; ++j) {
          if (zero_tap(nz, i, x0 + j * step)) {
            sum += e_zero;
            continue;
          }
          const int64_t k = i * window + j;
          const V v = kInRange ? load<V>(w + k * width_pad + x0) * load<V>(u[i] + x0 + j * step)
                               : load<V>(values + k * L);
          const V e = fast_exp<false, !kInRange>(coldness * v - top);
          sum += e;
          dot += v * e;
        }
      }
      store(out + x0, dot / sum);
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
template <typename T, bool kInRange>
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
        // g d out / d v_k = p_k (offset + slope v_k) with p_k = e_k / sum: see
        // softmax_pool_grad_terms. The 1 / sum is folded into offset and slope once per pixel.
        const V inv_sum = T(1) / load<V>(row_sum[y] + x0), top = load<V>(row_max[y] + x0);
        const V offset = gv * (T(1) - coldness * ov) * inv_sum;
        store(offsets + y * L, offset);
        store(slopes + y * L, gv * coldness * inv_sum);
        store(tops + y * L, top);
        // A zero tap (v = 0): e = exp(-top) and offset + slope v = offset, for every such tap.
        store(zero_terms + y * L, nz != nullptr ? fast_exp<false>(coldness * V{} - top) * offset : V{});
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
            const V v = wk * m;
            const V e = fast_exp<false, !kInRange>(coldness * v - load<V>(tops + y * L));
            sum += e * (load<V>(offsets + y * L) + load<V>(slopes + y * L) * v) * wk;
          }
        }
        store(acc + wk_offset, sum);
      }
    }
  }
}

}  // namespace

#define XAI_SMOOTH_MASK_ROWS(T)                                                                                 \
  XAI_MULTIVERSION void smooth_mask_row(int64_t width_pad, int64_t window, int64_t step, const T* const* u,      \
                                        const int32_t* const* nz, const T* shift, const T* w, T coldness,       \
                                        int pooling, T* out, T* row_max, T* row_sum, T* scratch) {              \
    if (shift != nullptr) {                                                                                     \
      forward_row_impl<T, true>(width_pad, window, step, u, nz, shift, w, coldness, pooling, out, row_max,      \
                                row_sum, scratch);                                                              \
    } else {                                                                                                    \
      forward_row_impl<T, false>(width_pad, window, step, u, nz, shift, w, coldness, pooling, out, row_max,     \
                                 row_sum, scratch);                                                             \
    }                                                                                                           \
  }                                                                                                             \
  XAI_MULTIVERSION void smooth_mask_backward_rows(                                                              \
      int64_t width_pad, int64_t window, int64_t step, const T* const* u, const int32_t* const* nz,            \
      int64_t rows, const T* const* w, T coldness, int pooling, bool in_range, const T* const* g,              \
      const T* const* out, const T* const* row_max, const T* const* row_sum, T* acc, T* scratch) {             \
    if (in_range) {                                                                                             \
      backward_rows_impl<T, true>(width_pad, window, step, u, nz, rows, w, coldness, pooling, g, out, row_max,  \
                                  row_sum, acc, scratch);                                                       \
    } else {                                                                                                    \
      backward_rows_impl<T, false>(width_pad, window, step, u, nz, rows, w, coldness, pooling, g, out, row_max, \
                                   row_sum, acc, scratch);                                                      \
    }                                                                                                           \
  }

XAI_SMOOTH_MASK_ROWS(float)
XAI_SMOOTH_MASK_ROWS(double)

#undef XAI_SMOOTH_MASK_ROWS

}  // namespace cpu
}  // namespace xaifast
