// Padding arithmetic for separable filters, shared by the CPU and CUDA kernels.
//
// A 1-D signal of length n is padded by P on each side; "signal coordinates" a run over
// [-P, n - 1 + P], "padded coordinates" q = a + P over [0, n + 2P). A filter of K taps with
// stride s reads, for output o, the padded positions q = o * s + k, k in [0, K).
#pragma once

#include <cstdint>

#include "common/host_device.h"

namespace xaifast {

enum PadMode : int { kPadConstant = 0, kPadReflect = 1, kPadReplicate = 2, kPadCircular = 3 };

// The input index a padded position reads, or -1 for the constant padding value.
// Reflect assumes P < n, circular P <= n (checked at the op's entry).
// n = 5: reflect a = -2 -> 2, a = 6 -> 2; replicate a = -2 -> 0; circular a = -2 -> 3.
XAI_HOST_DEVICE int64_t pad_source(int64_t a, int64_t n, int mode) {
  if (a >= 0 && a < n) return a;
  switch (mode) {
    case kPadReflect:
      return a < 0 ? -a : 2 * (n - 1) - a;
    case kPadReplicate:
      return a < 0 ? 0 : n - 1;
    case kPadCircular:
      return a < 0 ? a + n : a - n;
    default:
      return -1;
  }
}

// The signal coordinates that read input index r, as at most three closed ranges [lo, hi]:
// the adjoint of pad_source, used to gather gradients without atomics.
// n = 5, P = 2: reflect r = 1 -> {1}, {-1}; replicate r = 0 -> {-2..0}; circular r = 4 -> {4}, {-1}.
XAI_HOST_DEVICE int pad_preimages(int64_t r, int64_t n, int64_t P, int mode, int64_t lo[3], int64_t hi[3]) {
  int count = 0;
  switch (mode) {
    case kPadReplicate:
      lo[0] = r == 0 ? -P : r;
      hi[0] = r == n - 1 ? n - 1 + P : r;
      return 1;
    case kPadReflect:
      lo[count] = hi[count] = r; ++count;
      if (r >= 1 && r <= P) { lo[count] = hi[count] = -r; ++count; }
      if (r <= n - 2 && r >= n - 1 - P) { lo[count] = hi[count] = 2 * (n - 1) - r; ++count; }
      return count;
    case kPadCircular:
      lo[count] = hi[count] = r; ++count;
      if (r - n >= -P) { lo[count] = hi[count] = r - n; ++count; }
      if (r + n <= n - 1 + P) { lo[count] = hi[count] = r + n; ++count; }
      return count;
    default:
      lo[0] = hi[0] = r;
      return 1;
  }
}

// Outputs o in [lo, hi] whose window of K taps with stride s covers padded position q
// (tap k = q - o * s); empty when lo > hi. q = 7, K = 5, s = 2, 10 outputs -> o in [2, 3].
XAI_HOST_DEVICE void covering_outputs(int64_t q, int64_t K, int64_t s, int64_t n_out, int64_t& lo, int64_t& hi) {
  const int64_t first = q - K + 1;
  lo = first <= 0 ? 0 : (first + s - 1) / s;
  hi = q / s;
  if (hi > n_out - 1) hi = n_out - 1;
}

// Output length of a K-tap filter with stride s over a signal of length n padded by P.
XAI_HOST_DEVICE int64_t filtered_size(int64_t n, int64_t P, int64_t K, int64_t s) {
  return (n + 2 * P - K) / s + 1;
}

}  // namespace xaifast
