// The row loops of the smooth-mask CPU kernels (multiversioned like vector_math.h).
//
// A row holds `width_pad` pixels (a multiple of kMaskLanes), processed kMaskLanes at a time.
// u[i], i < window: the zero-padded parameter row r + i upsampled along x (value of column
// x / step), read at x + j * step for window column j; w: (window^2, width_pad) weights of the
// row's phase. All sums over the window run in the order k = i * window + j.
//
// nz (may be null): nz[i][x] = how many of u[i][0, x) are not zero. A window tap whose 16 values
// are all zero (the zero padding around the parameters -- 30% of the taps at 224 x 224, step 7,
// sigma 21 -- and parameters at 0) has v = 0 for every lane: its exp is exp(-max), the same for
// all such taps of a pixel, so it is computed once. Sums keep their order: the same bits as
// without nz. Callers pass null when a weight is not finite (0 * inf is not 0).
#pragma once

#include <cstdint>

namespace xaifast {
namespace cpu {

constexpr int64_t kMaskLanes = 16;

// Forward: out[x] pooled; for softmax also row_max[x], the shift of the pixel's exps, and
// row_sum[x] = sum_k exp(c v_k - row_max[x]) (what the backward needs). scratch: window^2 *
// kMaskLanes values. pooling: 0 softmax, 1 sum, 2 sigmoid (MaskPooling).
// in_range (softmax, float only; ignored for double): every window value has 2 |c v| <= 80, so
// the exps take c v unshifted and row_max[x] = 0; otherwise row_max[x] = max_k c v_k.
// scaled (softmax, float only; ignored for double): w holds coldness * weight, which
// saves a multiplication per window value; out, row_max and row_sum mean the same either way.
void smooth_mask_row(int64_t width_pad, int64_t window, int64_t step, const float* const* u,
                     const int32_t* const* nz, bool in_range, const float* w, bool scaled, float coldness,
                     int pooling, float* out, float* row_max, float* row_sum, float* scratch);
void smooth_mask_row(int64_t width_pad, int64_t window, int64_t step, const double* const* u,
                     const int32_t* const* nz, bool in_range, const double* w, bool scaled, double coldness,
                     int pooling, double* out, double* row_max, double* row_sum, double* scratch);

// Backward over the `rows` pixel rows of one cell row (which all read the parameter rows u):
// acc[k * width_pad + x] = sum over those rows of g d out / d v_k * w_k at column x, the gradient
// of the window value m_k through these pixels (per row y: its weights w[y], and g, out, row_max,
// row_sum as the forward wrote them). scratch: 4 * rows * kMaskLanes values. in_range and scaled:
// as the forward was called (in_range: the exps are unshifted, row_max is not read).
void smooth_mask_backward_rows(int64_t width_pad, int64_t window, int64_t step, const float* const* u,
                               const int32_t* const* nz, int64_t rows, const float* const* w, bool scaled,
                               float coldness, int pooling, bool in_range, const float* const* g,
                               const float* const* out, const float* const* row_max, const float* const* row_sum,
                               float* acc, float* scratch);
void smooth_mask_backward_rows(int64_t width_pad, int64_t window, int64_t step, const double* const* u,
                               const int32_t* const* nz, int64_t rows, const double* const* w, bool scaled,
                               double coldness, int pooling, bool in_range, const double* const* g,
                               const double* const* out, const double* const* row_max,
                               const double* const* row_sum, double* acc, double* scratch);

// The backward by parameter (float softmax with unshifted exps and weights scaled by c, weights
// periodic by cell): a parameter m reaches the pixels whose window holds it, `rows` = window * step
// pixel rows of `reach` = window * step pixels, and its gradient is the sum over them of
// e (offset + slope c v) (c w), with c v = (c w) m and e = exp(c v). The weights c w of a reach
// row, as a function of the pixel's place in the reach, are the same for every parameter; rows
// with the same weights (for TorchRay's radial bump, the rows at the same distance above or below
// the parameter's centre: 35 classes of 63 rows at step 7, sigma 21) share their exps.
//
// offset and slope of n pixels (g, out, sum: the incoming gradient, the forward's output and its
// row_sum), with the arithmetic of smooth_mask_backward_rows.
void smooth_mask_pixel_factors(int64_t n, const float* g, const float* out, const float* sum, float coldness,
                               float* offset, float* slope);

// One parameter's gradient. pw: `classes` rows of round_up(reach, kReachChunk) scaled weights;
// class c holds the reach rows class_rows[c] .. class_rows[c + 1] - 1 (in the order the caller
// lists them), row r's pixels having their offsets and slopes from offsets[r] + x0 and
// slopes[r] + x0 on (null: the row is outside the mask; reads run round_up(reach, kReachChunk)
// values, the lanes past reach are not summed). scratch: 2 * classes * round_up(reach,
// kReachChunk) values. The sum runs in a fixed order.
constexpr int64_t kReachChunk = 4 * kMaskLanes;
float smooth_mask_parameter_gradient(int64_t reach, int64_t classes, const int32_t* class_rows, const float* pw,
                                     const float* const* offsets, const float* const* slopes, int64_t x0, float m,
                                     float* scratch);

}  // namespace cpu
}  // namespace xaifast
