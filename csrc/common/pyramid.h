// The level split of a perturbation-pyramid lookup, shared by the CPU and CUDA kernels.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/host_device.h"

namespace xaifast {

// level = mask * (L - 1); lo = floor(level); frac = level - lo (before clamping, as the
// reference); hi = clamp(lo + 1, 0, L - 1) and lo = clamp(lo, 0, L - 1), both from the unclamped
// floor, so a mask outside [0, 1] saturates at an end level with zero gradient (NaN reads 0).
// mask 0.3, 8 levels -> level 2.1: lo 2, hi 3, frac 0.1; mask -0.1 -> lo 0, hi 0.
template <typename T>
XAI_HOST_DEVICE void level_split(T mask, int64_t levels, int64_t& lo, int64_t& hi, T& frac) {
  const T level = mask * static_cast<T>(levels - 1);
  const T down = static_cast<T>(floor(static_cast<double>(level)));  // exact for float and double
  frac = level - down;
  if (!(down == down)) {  // NaN
    lo = hi = 0;
    return;
  }
  const T top = static_cast<T>(levels - 1);
  lo = down < 0 ? 0 : (down > top ? levels - 1 : static_cast<int64_t>(down));
  hi = down + 1 < 0 ? 0 : (down + 1 > top ? levels - 1 : static_cast<int64_t>(down) + 1);
}

}  // namespace xaifast
