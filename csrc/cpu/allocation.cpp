#include "cpu/allocation.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_strided.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace xaifast {
namespace cpu {

void advise_huge_pages(const at::Tensor& fresh) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kMinBytes = uintptr_t{4} << 20;
  if (!fresh.defined() || !fresh.device().is_cpu()) return;
  const uintptr_t bytes = static_cast<uintptr_t>(fresh.nbytes());
  if (bytes < kMinBytes) return;
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  // Only whole pages inside the tensor: the neighbours of its allocation are not ours to advise.
  const uintptr_t begin = reinterpret_cast<uintptr_t>(fresh.const_data_ptr());
  const uintptr_t first = (begin + page - 1) / page * page, last = (begin + bytes) / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)fresh;
#endif
}

at::Tensor empty_output(c10::IntArrayRef sizes, const c10::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  advise_huge_pages(out);
  return out;
}

at::Tensor empty_output_like(const at::Tensor& like) {
  at::Tensor out = at::empty_strided(like.sizes(), like.strides(), like.options());
  advise_huge_pages(out);
  return out;
}

}  // namespace cpu
}  // namespace xaifast
