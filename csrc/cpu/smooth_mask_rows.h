// The row loops of the smooth-mask CPU kernels (multiversioned like vector_math.h).
//
// A row holds `width_pad` pixels (a multiple of kMaskLanes), processed kMaskLanes at a time.
// u[i], i < window: the zero-padded parameter row r + i upsampled along x (value of column
// x / step), read at x + j * step for window column j; w: (window^2, width_pad) weights of the
// row's phase. All sums over the window run in the order k = i * window + j.
#pragma once

#include <cstdint>

namespace xaifast {
namespace cpu {

constexpr int64_t kMaskLanes = 16;

// Forward: out[x] pooled; for softmax also row_max[x] = max_k c v_k and row_sum[x] = sum_k
// exp(c v_k - row_max[x]) (what the backward needs). scratch: window^2 * kMaskLanes values.
// pooling: 0 softmax, 1 sum, 2 sigmoid (MaskPooling).
void smooth_mask_row(int64_t width_pad, int64_t window, int64_t step, const float* const* u, const float* w,
                     float coldness, int pooling, float* out, float* row_max, float* row_sum, float* scratch);
void smooth_mask_row(int64_t width_pad, int64_t window, int64_t step, const double* const* u, const double* w,
                     double coldness, int pooling, double* out, double* row_max, double* row_sum, double* scratch);

// Backward: acc[k * width_pad + x] += g[x] d out[x] / d v_k * w_k[x], the gradient of the
// window value m_k through this pixel (g, out, row_max, row_sum as the forward wrote them).
void smooth_mask_backward_row(int64_t width_pad, int64_t window, int64_t step, const float* const* u,
                              const float* w, float coldness, int pooling, const float* g, const float* out,
                              const float* row_max, const float* row_sum, float* acc);
void smooth_mask_backward_row(int64_t width_pad, int64_t window, int64_t step, const double* const* u,
                              const double* w, double coldness, int pooling, const double* g, const double* out,
                              const double* row_max, const double* row_sum, double* acc);

// exp as the float kernels compute it (exposed for tests of its accuracy).
float mask_exp_float(float x);

}  // namespace cpu
}  // namespace xaifast
