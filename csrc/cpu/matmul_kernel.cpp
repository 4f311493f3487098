// CPU kernel of xaifast::matmul_into: out (M, N) = [out +] a (M, K) @ b (K, N), the same bits on
// any thread count.
//
// MKL's sgemm splits its work by the thread count, and for a few rows (RISE's C = 10 classes, say)
// it splits the K sum too: on an AMD EPYC, 10 x 30 @ 30 x 1024 differed in the last bit between 1
// and 2 threads, and so did RISE's saliency. Here the output is cut into blocks whose size depends
// on the shapes alone, and always at least two of them: at::parallel_for hands whole blocks to
// threads, and each block is one BLAS call made inside the parallel region, where BLAS runs on the
// calling thread only (one thread: BLAS is set to one thread anyway). A lone block would run
// outside any region, on all of BLAS's threads, so an output too small to split (at most 64 x 16)
// is summed by a plain loop instead. Every element is then summed by the same single-threaded code
// in the same order, whoever computes it.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/TensorAccessor.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include <algorithm>

namespace xaifast {
namespace {

constexpr int64_t kBlockRows = 64;    // out rows per block
constexpr int64_t kBlockCols = 1024;  // out columns per block (multiples of 16: blocks stay 64-byte aligned)

// out[i, j] (+)= sum_k a[i, k] * b[k, j], k ascending: for outputs of at most 64 x 16.
template <typename T>
void small_matmul(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate) {
  auto o = out.accessor<T, 2>();
  const auto x = a.accessor<const T, 2>(), y = b.accessor<const T, 2>();
  for (int64_t i = 0; i < out.size(0); ++i) {
    for (int64_t j = 0; j < out.size(1); ++j) {
      T sum = 0;
      for (int64_t k = 0; k < a.size(1); ++k) sum += x[i][k] * y[k][j];
      o[i][j] = accumulate ? o[i][j] + sum : sum;
    }
  }
}

void matmul_into_cpu(at::Tensor out, const at::Tensor& a, const at::Tensor& b, bool accumulate) {
  const char* op = "xaifast::matmul_into";
  TORCH_CHECK_VALUE(a.dim() == 2 && b.dim() == 2 && out.dim() == 2, op, ": a, b and out must be 2-D, got ",
                    a.sizes(), ", ", b.sizes(), " and ", out.sizes());
  TORCH_CHECK_VALUE(a.size(1) == b.size(0) && out.size(0) == a.size(0) && out.size(1) == b.size(1), op,
                    ": shapes do not chain: out ", out.sizes(), " = a ", a.sizes(), " @ b ", b.sizes());
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type() && a.scalar_type() == out.scalar_type() &&
                       (a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble),
                   op, ": a, b and out must all be float32 or all float64, got ", a.scalar_type(), ", ",
                   b.scalar_type(), " and ", out.scalar_type());
  TORCH_CHECK_VALUE(a.device().is_cpu() && b.device().is_cpu() && out.device().is_cpu(), op,
                    ": CPU kernel got tensors on ", a.device(), ", ", b.device(), " and ", out.device());
  const int64_t rows = out.size(0), cols = out.size(1);
  if (rows == 0 || cols == 0) return;
  if (a.size(1) == 0) {
    if (!accumulate) out.zero_();
    return;
  }
  const int64_t row_blocks = (rows + kBlockRows - 1) / kBlockRows;
  int64_t block_cols = kBlockCols;
  if (row_blocks == 1 && cols <= kBlockCols) block_cols = std::max<int64_t>(16, ((cols + 1) / 2 + 15) / 16 * 16);
  if (row_blocks == 1 && cols <= block_cols) {
    AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "matmul_into_cpu", [&] {
      small_matmul<scalar_t>(out, a, b, accumulate);
    });
    return;
  }
  const int64_t col_blocks = (cols + block_cols - 1) / block_cols;
  at::parallel_for(0, row_blocks * col_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      const int64_t r0 = block / col_blocks * kBlockRows, c0 = block % col_blocks * block_cols;
      const int64_t nr = std::min(kBlockRows, rows - r0), nc = std::min(block_cols, cols - c0);
      at::Tensor target = out.narrow(0, r0, nr).narrow(1, c0, nc);
      const at::Tensor lhs = a.narrow(0, r0, nr), rhs = b.narrow(1, c0, nc);
      if (accumulate) at::addmm_out(target, target, lhs, rhs);
      else at::mm_out(target, lhs, rhs);
    }
  });
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) { m.impl("matmul_into", &xaifast::matmul_into_cpu); }
