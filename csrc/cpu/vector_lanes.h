// N values in one GCC vector, for the multiversioned row loops: each target_clones variant lowers
// a vector to its own registers (one zmm, two ymm, four xmm for 16 floats), so loops written on
// them are vectorised whatever the clone. Include in .cpp files only.
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/vector_math.h"

// The helpers are always inlined: the ABI note about passing 64-byte vectors does not apply.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace xaifast {
namespace cpu {

// type: N values of T; ints: N signed integers of T's width (comparison results, conversions).
template <typename T, int64_t N>
struct VectorLanes;
template <int64_t N>
struct VectorLanes<float, N> {
  typedef float type __attribute__((vector_size(sizeof(float) * N)));
  typedef int32_t ints __attribute__((vector_size(sizeof(int32_t) * N)));
};
template <int64_t N>
struct VectorLanes<double, N> {
  typedef double type __attribute__((vector_size(sizeof(double) * N)));
  typedef int64_t ints __attribute__((vector_size(sizeof(int64_t) * N)));
};

// Unaligned loads and stores of whole vectors.
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

}  // namespace cpu
}  // namespace xaifast
