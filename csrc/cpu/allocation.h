// Output allocation for the CPU kernels.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <c10/util/ArrayRef.h>

namespace xaifast {
namespace cpu {

// at::empty, plus a transparent-huge-page hint (madvise MADV_HUGEPAGE, Linux) on outputs of 4 MiB
// or more before anything touches them. A fresh large CPU tensor is otherwise faulted in 4 KiB at
// a time: on the development machine first-touching a 38 MB output cost 10 ms, more than the
// kernel that fills it, and 1.8 ms with the hint. PyTorch does the same for every allocation when
// THP_MEM_ALLOC_ENABLE=1. The hint changes no value; where THP is off or the call fails, nothing
// happens.
at::Tensor empty_output(c10::IntArrayRef sizes, const c10::TensorOptions& options);

// The same with the sizes, strides and options of `like` (a channels-last input, say).
at::Tensor empty_output_like(const at::Tensor& like);

// The hint alone, for a tensor the caller has just allocated and not yet written.
void advise_huge_pages(const at::Tensor& fresh);

}  // namespace cpu
}  // namespace xaifast
