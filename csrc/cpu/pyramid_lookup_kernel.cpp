// CPU kernels of xaifast::pyramid_lookup and its backward (gradient with respect to the mask).
// Per mask row: the level split of every pixel once, then each channel blends its two levels.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "common/pyramid.h"
#include "pyramid_lookup.h"

namespace xaifast {
namespace {

struct LookupShape {
  int64_t masks, levels, channels, height, width;
  bool shared;  // one pyramid for every mask
  int64_t pyramid_stride() const { return shared ? 0 : levels * channels * height * width; }
};

LookupShape lookup_shape(const at::Tensor& pyramid, const at::Tensor& mask) {
  LookupShape s;
  s.shared = pyramid.dim() == 4;
  s.masks = mask.size(0);
  s.levels = pyramid.size(-4);
  s.channels = pyramid.size(-3);
  s.height = mask.size(2);
  s.width = mask.size(3);
  return s;
}

template <typename T>
void lookup_forward(const T* pyramid, const T* mask, const LookupShape& s, T* out) {
  const int64_t plane = s.height * s.width, level_size = s.channels * plane;
  at::parallel_for(0, s.masks * s.height, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.width * s.channels)),
                   [&](int64_t begin, int64_t end) {
    std::vector<int64_t> lo(s.width), hi(s.width);
    std::vector<T> frac(s.width);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t k = row / s.height, y = row % s.height;
      const T* m = mask + k * plane + y * s.width;
      for (int64_t x = 0; x < s.width; ++x) level_split<T>(m[x], s.levels, lo[x], hi[x], frac[x]);
      const T* base = pyramid + k * s.pyramid_stride() + y * s.width;
      for (int64_t c = 0; c < s.channels; ++c) {
        const T* channel = base + c * plane;
        T* o = out + (k * s.channels + c) * plane + y * s.width;
        for (int64_t x = 0; x < s.width; ++x) {
          const T below = channel[lo[x] * level_size + x], above = channel[hi[x] * level_size + x];
          o[x] = (T(1) - frac[x]) * below + frac[x] * above;
        }
      }
    }
  });
}

// grad_mask = (L - 1) * (sum_c grad[c] pyramid[hi, c] - sum_c grad[c] pyramid[lo, c]): the two
// sums kept apart, in channel order, as autograd forms them through the reference's lerp.
template <typename T>
void lookup_backward(const T* grad, const T* pyramid, const T* mask, const LookupShape& s, T* grad_mask) {
  const int64_t plane = s.height * s.width, level_size = s.channels * plane;
  const T scale = static_cast<T>(s.levels - 1);
  at::parallel_for(0, s.masks * s.height, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.width * s.channels)),
                   [&](int64_t begin, int64_t end) {
    std::vector<int64_t> lo(s.width), hi(s.width);
    std::vector<T> frac(s.width), above(s.width), below(s.width);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t k = row / s.height, y = row % s.height;
      const T* m = mask + k * plane + y * s.width;
      for (int64_t x = 0; x < s.width; ++x) level_split<T>(m[x], s.levels, lo[x], hi[x], frac[x]);
      std::fill(above.begin(), above.end(), T(0));
      std::fill(below.begin(), below.end(), T(0));
      const T* base = pyramid + k * s.pyramid_stride() + y * s.width;
      for (int64_t c = 0; c < s.channels; ++c) {
        const T* channel = base + c * plane;
        const T* g = grad + (k * s.channels + c) * plane + y * s.width;
        for (int64_t x = 0; x < s.width; ++x) {
          above[x] += g[x] * channel[hi[x] * level_size + x];
          below[x] += g[x] * channel[lo[x] * level_size + x];
        }
      }
      T* o = grad_mask + k * plane + y * s.width;
      for (int64_t x = 0; x < s.width; ++x) o[x] = (above[x] - below[x]) * scale;
    }
  });
}

at::Tensor pyramid_lookup_cpu(const at::Tensor& pyramid, const at::Tensor& mask) {
  check_pyramid_lookup_args(pyramid, mask, "xaifast::pyramid_lookup");
  TORCH_CHECK_VALUE(pyramid.device().is_cpu(), "xaifast::pyramid_lookup: CPU kernel got ", pyramid.device());
  const at::Tensor p = pyramid.contiguous(), m = mask.contiguous();
  const LookupShape s = lookup_shape(p, m);
  at::Tensor out = at::empty({s.masks, s.channels, s.height, s.width}, p.options());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "pyramid_lookup_cpu", [&] {
    lookup_forward<scalar_t>(p.const_data_ptr<scalar_t>(), m.const_data_ptr<scalar_t>(), s,
                             out.mutable_data_ptr<scalar_t>());
  });
  return out;
}

at::Tensor pyramid_lookup_backward_cpu(const at::Tensor& grad, const at::Tensor& pyramid, const at::Tensor& mask) {
  check_pyramid_lookup_args(pyramid, mask, "xaifast::_pyramid_lookup_backward");
  const at::Tensor p = pyramid.contiguous(), m = mask.contiguous(), g = grad.contiguous();
  const LookupShape s = lookup_shape(p, m);
  TORCH_CHECK_VALUE(g.dim() == 4 && g.size(0) == s.masks && g.size(1) == s.channels && g.size(2) == s.height &&
                        g.size(3) == s.width && g.scalar_type() == p.scalar_type(),
                    "xaifast::_pyramid_lookup_backward: grad must be (K, C, H, W) like the output, got ", g.sizes());
  at::Tensor grad_mask = at::empty(m.sizes(), m.options());
  if (grad_mask.numel() == 0) return grad_mask;
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "pyramid_lookup_backward_cpu", [&] {
    lookup_backward<scalar_t>(g.const_data_ptr<scalar_t>(), p.const_data_ptr<scalar_t>(),
                              m.const_data_ptr<scalar_t>(), s, grad_mask.mutable_data_ptr<scalar_t>());
  });
  return grad_mask;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) {
  m.impl("pyramid_lookup", &xaifast::pyramid_lookup_cpu);
  m.impl("_pyramid_lookup_backward", &xaifast::pyramid_lookup_backward_cpu);
}
