// The palette index of one heatmap value, shared by the CPU and CUDA kernels.
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace xaifast {

// trunc(clip((x - lo) / span * 255, 0, 255)), NaN -> 0, with span = hi - lo, computed exactly as
// numpy does for zennit's imgify: x - lo in Diff (the promotion of x's and lo's dtypes), span in
// Span (of hi's and lo's, once per map), the quotient and the scaling in the wider of the two.
// Bit-identical because every step is one IEEE operation in the same precision. Branch-free so
// the CPU loop vectorises: NaN fails both comparisons and lands on 0, +-inf clip to 255 / 0.
// x = 0.5, lo = 0, span = 2 -> 63.
template <typename Diff, typename Quotient, typename X>
XAI_HOST_DEVICE uint8_t palette_index(X x, Diff lo, Quotient span) {
  const Quotient q = static_cast<Quotient>(static_cast<Diff>(x) - lo) / span;
  Quotient scaled = q * static_cast<Quotient>(255);
  scaled = scaled > static_cast<Quotient>(0) ? scaled : static_cast<Quotient>(0);
  scaled = scaled < static_cast<Quotient>(255) ? scaled : static_cast<Quotient>(255);
  return static_cast<uint8_t>(static_cast<int32_t>(scaled));
}

}  // namespace xaifast
