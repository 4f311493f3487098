// Launch geometry shared by the grid-stride CUDA kernels.
#pragma once

#include <cstdint>

namespace xaifast {

constexpr int kThreads = 256;

// Blocks for n elements with kThreads threads each, at least one, capped at 65535 (the kernels
// loop grid-stride over whatever the grid does not cover).
inline int blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

}  // namespace xaifast
