// Argument checks and type dispatch of the colorize op, shared by its CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

namespace xaifast {

inline bool is_float_or_double(const at::Tensor& t) {
  return t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble;
}

inline void check_colorize_args(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                                const c10::optional<at::Tensor>& vmax, const at::Tensor& palette) {
  const char* op = "xaifast::colorize";
  TORCH_CHECK_VALUE(heatmaps.dim() == 3, op, ": heatmaps must be (N, H, W), got shape ", heatmaps.sizes());
  TORCH_CHECK_TYPE(is_float_or_double(heatmaps), op, ": heatmaps must be float32 or float64, got ",
                   heatmaps.scalar_type());
  for (const auto* bound : {&vmin, &vmax}) {
    if (!bound->has_value()) continue;
    const at::Tensor& b = **bound;
    TORCH_CHECK_TYPE(is_float_or_double(b), op, ": vmin and vmax must be float32 or float64, got ", b.scalar_type());
    TORCH_CHECK_VALUE(b.dim() == 1 && b.size(0) == heatmaps.size(0), op, ": vmin and vmax must be (N,) with N = ",
                      heatmaps.size(0), ", got ", b.sizes());
    TORCH_CHECK_VALUE(b.device() == heatmaps.device(), op, ": vmin and vmax must be on the heatmaps' device ",
                      heatmaps.device());
  }
  TORCH_CHECK_VALUE(palette.dim() == 2 && palette.size(0) == 256 && palette.size(1) == 3 &&
                        palette.scalar_type() == at::kByte,
                    op, ": palette must be a (256, 3) uint8 table, got ", palette.sizes(), " ", palette.scalar_type());
  TORCH_CHECK_VALUE(palette.device() == heatmaps.device(), op, ": palette must be on the heatmaps' device ",
                    heatmaps.device());
}

inline void check_colorize_out(const at::Tensor& heatmaps, const at::Tensor& out) {
  TORCH_CHECK_VALUE(out.scalar_type() == at::kByte && out.dim() == 4 && out.size(0) == heatmaps.size(0) &&
                        out.size(1) == heatmaps.size(1) && out.size(2) == heatmaps.size(2) && out.size(3) == 3 &&
                        out.is_contiguous() && out.device() == heatmaps.device(),
                    "xaifast::colorize: out must be a contiguous (", heatmaps.size(0), ", ", heatmaps.size(1), ", ",
                    heatmaps.size(2), ", 3) uint8 tensor on ", heatmaps.device(), ", got ", out.sizes(), " ",
                    out.scalar_type());
}

// Calls fn(X{}, Diff{}, Span{}, Quotient{}) (value tags: float or double) for the dtypes of the
// three tensors: X the data type, Diff = promote(X, vmin), Span = promote(vmax, vmin),
// Quotient = promote(Diff, Span). Use as [&](auto x, auto diff, auto span, auto quotient) {...}.
// An automatic (absent) bound has the heatmaps' dtype.
template <typename Fn>
void dispatch_colorize_types(const at::Tensor& heatmaps, const c10::optional<at::Tensor>& vmin,
                             const c10::optional<at::Tensor>& vmax, Fn&& fn) {
  const bool x_wide = heatmaps.scalar_type() == at::kDouble;
  const bool lo_wide = vmin.has_value() ? vmin->scalar_type() == at::kDouble : x_wide;
  const bool hi_wide = vmax.has_value() ? vmax->scalar_type() == at::kDouble : x_wide;
  const bool diff_wide = x_wide || lo_wide, span_wide = hi_wide || lo_wide;
  auto with_x = [&](auto x) {
    if (diff_wide && span_wide) fn(x, double{}, double{}, double{});
    else if (diff_wide) fn(x, double{}, float{}, double{});
    else if (span_wide) fn(x, float{}, double{}, double{});
    else fn(x, float{}, float{}, float{});
  };
  if (x_wide) with_x(double{});
  else with_x(float{});
}

}  // namespace xaifast
