// The row loops of the pyramid-lookup CPU kernels (multiversioned like vector_math.h).
//
// The level split is computed kLookupLanes pixels at a time, and each channel picks a pixel's two
// levels by per-lane selects over the rows of the levels those pixels use (two or three for a
// smooth mask; all of them for noise), three channels at a time sharing each level's compares,
// not by gathers: AVX-512 gathers made the lookup of four 224 x 224 masks 2.3x slower for smooth
// masks on an AMD EPYC (Zen 4), and no faster for noise.
// Arithmetic as the reference: out = (1 - frac) * y_lo + frac * y_hi, no fused multiply-adds,
// so the results are the same bits.
#pragma once

#include <cstdint>

namespace xaifast {
namespace cpu {

constexpr int64_t kLookupLanes = 16;
// Up to this many levels the select loops run; more levels use the gathers of vector_math.h.
constexpr int64_t kMaxSelectLevels = 16;

// One pixel row of one mask: out[c * out_stride + x] = the lookup of mask[x] in the rows
// base[l * level_stride + c * channel_stride + x], x < width, c < channels, l < levels.
void lookup_row(int64_t width, int64_t levels, int64_t channels, const float* mask, const float* base,
                int64_t level_stride, int64_t channel_stride, float* out, int64_t out_stride);
void lookup_row(int64_t width, int64_t levels, int64_t channels, const double* mask, const double* base,
                int64_t level_stride, int64_t channel_stride, double* out, int64_t out_stride);

// Its gradient with respect to the mask row: grad_mask[x] = (levels - 1) * (sum_c g_c y_hi,c -
// sum_c g_c y_lo,c), both sums in channel order, g_c = grad[c * grad_stride + x].
void lookup_backward_row(int64_t width, int64_t levels, int64_t channels, const float* mask, const float* base,
                         int64_t level_stride, int64_t channel_stride, const float* grad, int64_t grad_stride,
                         float* grad_mask);
void lookup_backward_row(int64_t width, int64_t levels, int64_t channels, const double* mask, const double* base,
                         int64_t level_stride, int64_t channel_stride, const double* grad, int64_t grad_stride,
                         double* grad_mask);

}  // namespace cpu
}  // namespace xaifast
