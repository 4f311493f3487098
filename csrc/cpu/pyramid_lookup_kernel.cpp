// CPU kernels of xaifast::pyramid_lookup and its backward (gradient with respect to the mask).
// Per mask row: the level split of every pixel once, then each channel blends its two levels.
// Up to kMaxSelectLevels levels, the row loops of pyramid_lookup_rows.cpp pick the levels by
// selects; more levels gather them (vector_math.h). The work runs image row by image row, all
// masks of a row together, so a shared pyramid's row is read from memory once per call.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <vector>

#include "cpu/allocation.h"
#include "cpu/pyramid_lookup_rows.h"
#include "common/pyramid.h"
#include "cpu/vector_math.h"
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

// Per mask row: the level split of every pixel once, as int32 offsets into the channel's
// pyramid (level * C * H * W + x), then each channel blends its two gathered levels (the gathers
// vectorise in the AVX2/AVX-512 clones of csrc/cpu/vector_math.h).
template <typename T>
struct RowSplit {
  std::vector<int32_t> lo, hi;
  std::vector<T> frac;
  explicit RowSplit(int64_t width) : lo(width), hi(width), frac(width) {}

  void compute(const T* mask, const LookupShape& s) {
    const int64_t level_size = s.channels * s.height * s.width;
    for (int64_t x = 0; x < s.width; ++x) {
      int64_t below, above;
      level_split<T>(mask[x], s.levels, below, above, frac[x]);
      lo[x] = static_cast<int32_t>(below * level_size + x);
      hi[x] = static_cast<int32_t>(above * level_size + x);
    }
  }
};

int64_t row_grain(const LookupShape& s) {
  return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.width * s.channels));
}

bool use_selects(const LookupShape& s) { return s.levels <= cpu::kMaxSelectLevels; }

template <typename T>
void lookup_forward(const T* pyramid, const T* mask, const LookupShape& s, T* out) {
  const int64_t plane = s.height * s.width, level_size = s.channels * plane;
  // index = y * masks + k: consecutive work items share the pyramid row y.
  at::parallel_for(0, s.height * s.masks, row_grain(s), [&](int64_t begin, int64_t end) {
    RowSplit<T> split(use_selects(s) ? 0 : s.width);
    for (int64_t index = begin; index < end; ++index) {
      const int64_t y = index / s.masks, k = index % s.masks;
      const T* mask_row = mask + k * plane + y * s.width;
      const T* base = pyramid + k * s.pyramid_stride() + y * s.width;
      T* out_row = out + k * s.channels * plane + y * s.width;
      if (use_selects(s)) {
        cpu::lookup_row(s.width, s.levels, s.channels, mask_row, base, level_size, plane, out_row, plane);
        continue;
      }
      split.compute(mask_row, s);
      for (int64_t c = 0; c < s.channels; ++c) {
        cpu::lerp_gather(s.width, base + c * plane, split.lo.data(), split.hi.data(), split.frac.data(),
                         out_row + c * plane);
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
  at::parallel_for(0, s.height * s.masks, row_grain(s), [&](int64_t begin, int64_t end) {
    const int64_t width = use_selects(s) ? 0 : s.width;
    RowSplit<T> split(width);
    std::vector<T> above(width), below(width);
    for (int64_t index = begin; index < end; ++index) {
      const int64_t y = index / s.masks, k = index % s.masks;
      const T* mask_row = mask + k * plane + y * s.width;
      const T* base = pyramid + k * s.pyramid_stride() + y * s.width;
      const T* grad_row = grad + k * s.channels * plane + y * s.width;
      T* o = grad_mask + k * plane + y * s.width;
      if (use_selects(s)) {
        cpu::lookup_backward_row(s.width, s.levels, s.channels, mask_row, base, level_size, plane, grad_row, plane,
                                 o);
        continue;
      }
      split.compute(mask_row, s);
      std::fill(above.begin(), above.end(), T(0));
      std::fill(below.begin(), below.end(), T(0));
      for (int64_t c = 0; c < s.channels; ++c) {
        cpu::gather_products(s.width, base + c * plane, split.lo.data(), split.hi.data(), grad_row + c * plane,
                             above.data(), below.data());
      }
      for (int64_t x = 0; x < s.width; ++x) o[x] = (above[x] - below[x]) * scale;
    }
  });
}

// The offsets are int32: one image's pyramid (L * C * H * W values) must stay below 2^31.
void check_offsets(const LookupShape& s, const char* op) {
  TORCH_CHECK_VALUE(s.levels * s.channels * s.height * s.width < (int64_t(1) << 31), op,
                    ": one pyramid must hold fewer than 2^31 values, got ", s.levels, " x ", s.channels, " x ",
                    s.height, " x ", s.width);
}

at::Tensor pyramid_lookup_cpu(const at::Tensor& pyramid, const at::Tensor& mask) {
  check_pyramid_lookup_args(pyramid, mask, "xaifast::pyramid_lookup");
  TORCH_CHECK_VALUE(pyramid.device().is_cpu(), "xaifast::pyramid_lookup: CPU kernel got ", pyramid.device());
  const at::Tensor p = pyramid.contiguous(), m = mask.contiguous();
  const LookupShape s = lookup_shape(p, m);
  check_offsets(s, "xaifast::pyramid_lookup");
  at::Tensor out = cpu::empty_output({s.masks, s.channels, s.height, s.width}, p.options());
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
  check_offsets(s, "xaifast::_pyramid_lookup_backward");
  TORCH_CHECK_VALUE(g.dim() == 4 && g.size(0) == s.masks && g.size(1) == s.channels && g.size(2) == s.height &&
                        g.size(3) == s.width && g.scalar_type() == p.scalar_type(),
                    "xaifast::_pyramid_lookup_backward: grad must be (K, C, H, W) like the output, got ", g.sizes());
  at::Tensor grad_mask = cpu::empty_output(m.sizes(), m.options());
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
