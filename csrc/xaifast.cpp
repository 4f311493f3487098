// Every op schema of xaifast, in one TORCH_LIBRARY, and the _C Python module itself: a small
// pybind11 module with build facts. Importing xaifast._C runs the registrations; the ops are
// reached through the dispatcher (torch.ops.xaifast.<op>), never through pybind11.
#include <torch/library.h>
#include <torch/extension.h>

#include <string>
#include <vector>

TORCH_LIBRARY(xaifast, m) {
  // Blur every channel with a 1-D kernel along H, then W (TorchRay's imsmooth engine).
  // weight: (2R + 1) taps in the input's dtype; the input is padded by R + padding.
  m.def("separable_blur(Tensor input, Tensor weight, int stride, int padding, str padding_mode, "
        "float padding_value) -> Tensor");
  m.def("_separable_blur_backward(Tensor grad, Tensor weight, SymInt[] input_size, int stride, int padding, "
        "str padding_mode) -> Tensor");

  // RISE masks computed pixel by pixel from their low-resolution grids (n, gh, gw) and integer
  // shifts (n, 2) = (dy, dx): (n, 1, H, W), or the masked images (n, C, H, W) when `input`
  // (C, H, W) is given. Backward: the gradient with respect to the grids of a (n, 1, H, W) grad.
  m.def("rise_masks(Tensor grid, Tensor shifts, SymInt height, SymInt width, Tensor? input) -> Tensor");
  m.def("_rise_masks_backward(Tensor grad_masks, Tensor grid, Tensor shifts) -> Tensor");
  // The last step of the low-rank RISE accumulation: partial (cell_h, C, gh, W) holds, per row
  // shift dy, the per-class sums of column-interpolated grids; returns (C, H, W) =
  // sum_dy A_dy @ partial[dy, c] with A_dy the bilinear row weights at that shift.
  m.def("rise_upsample(Tensor partial, SymInt height) -> Tensor");
  // out (M, N) = [out +] a (M, K) @ b (K, N), each element summed in an order fixed by the shapes
  // alone (CPU; BLAS's own threading splits sums by thread count). RISE's accumulation uses it.
  m.def("matmul_into(Tensor(a!) out, Tensor a, Tensor b, bool accumulate) -> ()");

  // Excitation backprop: grad / (output + eps), and input * grad, elementwise in one pass.
  m.def("ebp_normalize(Tensor grad, Tensor output, float eps) -> Tensor");
  m.def("ebp_product(Tensor input, Tensor grad) -> Tensor");

  // Extremal perturbation's area regulariser: per row of rows (K, n), ones on the n - zeros[r]
  // largest values (ties as a stable ascending sort orders them; NaN last), zeros elsewhere; the
  // loss is mean((rows - targets)^2). CPU kernel; other devices run the reference (a selection).
  m.def("area_targets(Tensor rows, int[] zeros) -> Tensor");

  // Heatmaps (N, H, W) -> RGB (N, H, W, 3) uint8: per map, index = trunc(clip((x - vmin[n]) /
  // (vmax[n] - vmin[n]) * 255, 0, 255)) (NaN -> 0) in numpy's promoted dtypes, then palette[index].
  // A bound left None is the map's min / max (symmetric: -max|x| / max|x|), NaN if it has a NaN.
  // colorize_into writes into a caller's (N, H, W, 3) uint8 buffer (no fresh allocation). It is
  // its own op, not an .out overload, because opcheck tests only operators without overloads.
  m.def("colorize(Tensor heatmaps, Tensor? vmin, Tensor? vmax, Tensor palette, bool symmetric) -> Tensor");
  // Extremal perturbation: each pixel of each mask (K, 1, H, W) reads the pyramid (L, C, H, W),
  // shared, or (K, L, C, H, W), one per mask, between levels lo and hi at fraction frac of
  // level = mask * (L - 1); the split is computed once per pixel for all channels. Backward:
  // the gradient with respect to the mask.
  m.def("pyramid_lookup(Tensor pyramid, Tensor mask) -> Tensor");
  m.def("_pyramid_lookup_backward(Tensor grad, Tensor pyramid, Tensor mask) -> Tensor");
  // Extremal perturbation's smooth mask (TorchRay's MaskGenerator.generate) in one pass: each
  // pixel pools its window of weighted parameters (see csrc/common/smooth_mask.h); mask_in
  // (K, 1, h, w), weight (window^2, wh, ww) read at (y % wh, x % ww). Returns the unclamped full
  // mask (K, 1, H, W) and, for softmax pooling, the per-pixel (shift, sum) of the exps that the
  // backward reuses (K, 2, H, W; K x 0 x H x W otherwise). The shift is the pixel's max(c v), or 0
  // where the kernel can prove the unshifted exps stay in range (the CPU kernel's float32 path).
  m.def("smooth_mask(Tensor mask_in, Tensor weight, int step, int padding, str pooling_method, "
        "float coldness) -> (Tensor, Tensor)");
  m.def("_smooth_mask_backward(Tensor grad, Tensor mask_in, Tensor weight, Tensor full, Tensor stats, int step, "
        "int padding, str pooling_method, float coldness) -> Tensor");
  m.def("colorize_into(Tensor heatmaps, Tensor? vmin, Tensor? vmax, Tensor palette, bool symmetric, "
        "Tensor(a!) out) -> ()");
}

namespace {

bool cuda_built() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

bool openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// Instruction sets this translation unit was compiled for; hot loops also carry
// target_clones for AVX2/AVX-512, chosen at load time (see csrc/cpu/vector_math.h).
std::vector<std::string> simd() {
  std::vector<std::string> flags;
#ifdef __SSE2__
  flags.push_back("sse2");
#endif
#ifdef __AVX2__
  flags.push_back("avx2");
#endif
#ifdef __AVX512F__
  flags.push_back("avx512f");
#endif
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
  flags.push_back("target_clones(x86-64-v4,x86-64-v3)");
#endif
  return flags;
}

std::string compiler() {
#if defined(__clang__)
  return std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  return "gcc " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
         std::to_string(__GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

// The multiversioned loops' clone this CPU runs (the resolver's choice, by CPU features).
std::string cpu_dispatch() {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
  if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
  return "baseline";
#else
  return "baseline";
#endif
}

}  // namespace

namespace xaifast {
namespace cpu {  // csrc/cpu/colorize_kernel.cpp
std::string colorize_lookup_path();
std::string force_colorize_lookup_path(const std::string& name);
}  // namespace cpu
}  // namespace xaifast

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "xaifast compiled kernels (ops live under torch.ops.xaifast) and build facts";
  m.def("cuda_built", &cuda_built, "whether the CUDA kernels were compiled in");
  m.def("openmp", &openmp, "whether the CPU kernels were compiled with OpenMP");
  m.def("simd", &simd, "instruction sets the CPU kernels were compiled for");
  m.def("compiler", &compiler, "the C++ compiler that built the extension");
  m.def("cpu_dispatch", &cpu_dispatch, "the clone of the multiversioned CPU loops this CPU runs");
  m.def("colorize_lookup", &xaifast::cpu::colorize_lookup_path,
        "the palette lookup loop colorize runs on this CPU: vbmi, gather or scalar");
  m.def("_force_colorize_lookup", &xaifast::cpu::force_colorize_lookup_path,
        "tests only: run a plainer colorize lookup (auto, scalar, gather, vbmi); returns the previous setting");
}
