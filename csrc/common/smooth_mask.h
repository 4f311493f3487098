// Per-pixel math of the smooth mask (TorchRay's MaskGenerator.generate), shared by the CPU and
// CUDA kernels. A pixel of cell (r, c) pools the window values v_k = w_k * m_k, k = (i, j) in
// [0, window)^2, with m_k the zero-padded parameter at (r + i - padding, c + j - padding):
//   softmax: out = sum_k v_k softmax(coldness * v)_k   (kept as max(c v), sum exp(c v - max))
//   sum:     out = sum_k v_k
//   sigmoid: out = sigmoid(coldness * sum_k v_k - 3)
#pragma once

#include <cmath>

#include "common/host_device.h"

namespace xaifast {

enum class MaskPooling : int { Softmax = 0, Sum = 1, Sigmoid = 2 };

// The parameter read at window row i of cell row r (or column), or -1 in the zero padding.
XAI_HOST_DEVICE long long mask_param_index(long long cell, long long offset, long long padding, long long size) {
  const long long index = cell + offset - padding;
  return index >= 0 && index < size ? index : -1;
}

// d out / d v_k times the incoming gradient g, for softmax pooling: with p_k = e_k / sum,
// g p_k (1 + c (v_k - out)) = p_k (g (1 - c out) + g c v_k) = p_k (offset + slope v_k).
template <typename T>
XAI_HOST_DEVICE void softmax_pool_grad_terms(T g, T out, T coldness, T& offset, T& slope) {
  offset = g * (T(1) - coldness * out);
  slope = g * coldness;
}

// d out / d v_k times g for sum (g) and sigmoid (g c out (1 - out)) pooling: the same for every k.
template <typename T>
XAI_HOST_DEVICE T linear_pool_grad(MaskPooling pooling, T g, T out, T coldness) {
  return pooling == MaskPooling::Sum ? g : g * coldness * out * (T(1) - out);
}

template <typename T>
XAI_HOST_DEVICE T mask_exp(T x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return std::exp(x);
#endif
}

template <typename T>
XAI_HOST_DEVICE T sigmoid_pool(T sum, T coldness) {
  const T z = coldness * sum - T(3);
  return T(1) / (T(1) + mask_exp(-z));
}

}  // namespace xaifast
