// CPU kernel of xaifast::area_targets: the 0/1 step TorchRay's area regulariser compares each sorted
// mask with, put back in the mask's own order, found by radix selection instead of a sort.
//
// Row r gets ones on its n - zeros[r] largest values, ties ordered as a stable ascending sort
// orders them (by index: of the values tied at the threshold, the last ones take the remaining
// ones), zeros elsewhere. NaN sorts last, as in torch.sort; -0.0 equals 0.0. The threshold, the
// (zeros + 1)-th smallest value, is selected on order-preserving integer keys 8 bits at a time,
// each pass over the keys left in the previous pass's bin (about n, n/2, then a few hundred for
// a mask in [0, 1]), then one pass writes the row. Rows run in parallel; each row's result does
// not depend on the thread count, nor on whether the AVX-512 loops ran.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/allocation.h"
#include "cpu/vector_math.h"
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>
#define XAI_AREA_AVX512 1
#endif

namespace xaifast {
namespace {

template <typename T>
using KeyOf = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

// An unsigned key with key(a) < key(b) iff a < b (NaN above everything, -0.0 == 0.0); no branches.
template <typename T>
XAI_ALWAYS_INLINE KeyOf<T> order_key(T x) {
  using U = KeyOf<T>;
  using S = std::make_signed_t<U>;
  constexpr int kTop = 8 * sizeof(U) - 1;
  U bits;
  std::memcpy(&bits, &x, sizeof(U));
  bits = x == T(0) ? U{0} : bits;
  const U flip = static_cast<U>(static_cast<S>(bits) >> kTop) | (U{1} << kTop);  // negative: all bits
  return x != x ? ~U{0} : bits ^ flip;
}

constexpr int kDigit = 8;  // bits per selection pass
constexpr int kBins = 1 << kDigit;

// Counts of digit (key >> shift) & 0xff over keys[0, n), in four interleaved tables (consecutive
// keys often share a digit; one table would serialise on its counter), summed into `total`.
template <typename U>
void digit_histogram(const U* keys, int64_t n, int shift, int64_t* total) {
  int64_t counts[4][kBins] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++counts[0][(keys[i] >> shift) & (kBins - 1)];
    ++counts[1][(keys[i + 1] >> shift) & (kBins - 1)];
    ++counts[2][(keys[i + 2] >> shift) & (kBins - 1)];
    ++counts[3][(keys[i + 3] >> shift) & (kBins - 1)];
  }
  for (; i < n; ++i) ++counts[0][(keys[i] >> shift) & (kBins - 1)];
  for (int b = 0; b < kBins; ++b) total[b] = counts[0][b] + counts[1][b] + counts[2][b] + counts[3][b];
}

// The row's step from its keys and the threshold key: ones above it (mark_above, which returns how
// many), and of the keys equal to it the last `ones - above` in index order (mark_last_ties
// below). Multiversioned: the compare-and-count loop vectorises.
template <typename T>
XAI_ALWAYS_INLINE int64_t mark_above_impl(const KeyOf<T>* keys, int64_t n, KeyOf<T> threshold, T* out) {
  int64_t above = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool is_above = keys[i] > threshold;
    out[i] = is_above ? T(1) : T(0);
    above += is_above;
  }
  return above;
}

XAI_MULTIVERSION int64_t mark_above(const uint32_t* keys, int64_t n, uint32_t threshold, float* out) {
  return mark_above_impl<float>(keys, n, threshold, out);
}
XAI_MULTIVERSION int64_t mark_above(const uint64_t* keys, int64_t n, uint64_t threshold, double* out) {
  return mark_above_impl<double>(keys, n, threshold, out);
}

template <typename T>
XAI_ALWAYS_INLINE void make_keys_impl(const T* x, int64_t n, KeyOf<T>* keys) {
  for (int64_t i = 0; i < n; ++i) keys[i] = order_key(x[i]);
}
XAI_MULTIVERSION void make_keys(const float* x, int64_t n, uint32_t* keys) { make_keys_impl(x, n, keys); }
XAI_MULTIVERSION void make_keys(const double* x, int64_t n, uint64_t* keys) { make_keys_impl(x, n, keys); }

// The keys of pool[0, size) whose digit (key >> shift) & 0xff is `bin`, in order, to dst (which
// may be pool itself: each key is read before anything is written over it); returns their count.
// The AVX-512 path stores whole vectors, at dst + kept <= dst + i for keys i .. i + 15 of pool:
// they stay within dst[0, size) and over keys already read.
template <typename U>
int64_t keep_bin(const U* pool, int64_t size, int shift, U bin, U* dst) {
  int64_t kept = 0;
  for (int64_t i = 0; i < size; ++i) {  // without branches: every key is written, the count decides
    const U key = pool[i];
    dst[kept] = key;
    kept += ((key >> shift) & (kBins - 1)) == bin;
  }
  return kept;
}

// The ties' pass of the row's step: from the end, the keys equal to threshold get 1 until `missing`
// have.
template <typename T>
void mark_last_ties(const KeyOf<T>* keys, int64_t n, int64_t missing, KeyOf<T> threshold, T* out) {
  for (int64_t i = n - 1; missing > 0; --i) {
    if (keys[i] == threshold) {
      out[i] = T(1);
      --missing;
    }
  }
}

#ifdef XAI_AREA_AVX512
// AVX-512 forms of the two (float keys): 16 keys per step, compressed in a register (a
// compressing store to memory is slow on AMD Zen 4) and stored whole; the tie scan skips 16 keys
// without a tie at a time. The same results as the scalar loops, which the other CPUs run.
__attribute__((target("avx512f"))) int64_t keep_bin_avx512(const uint32_t* pool, int64_t size, int shift,
                                                           uint32_t bin, uint32_t* dst) {
  const __m512i want = _mm512_set1_epi32(static_cast<int>(bin)), digit = _mm512_set1_epi32(kBins - 1);
  const __m512i count = _mm512_set1_epi32(shift);
  int64_t kept = 0, i = 0;
  for (; i + 16 <= size; i += 16) {
    const __m512i key = _mm512_loadu_si512(pool + i);
    const __mmask16 hit = _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_srlv_epi32(key, count), digit), want);
    _mm512_storeu_si512(dst + kept, _mm512_maskz_compress_epi32(hit, key));
    kept += __builtin_popcount(hit);
  }
  return kept + keep_bin(pool + i, size - i, shift, bin, dst + kept);
}

__attribute__((target("avx512f"))) void mark_last_ties_avx512(const uint32_t* keys, int64_t n, int64_t missing,
                                                              uint32_t threshold, float* out) {
  const __m512i tie = _mm512_set1_epi32(static_cast<int>(threshold));
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t end = n;  // keys[end, n) are done
  while (missing > 0 && end >= 16) {
    const __mmask16 hit = _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(keys + end - 16), tie);
    const int ties = __builtin_popcount(hit);
    if (ties > missing) break;  // this block holds the last of them: one by one below
    _mm512_mask_storeu_ps(out + end - 16, hit, one);
    missing -= ties;
    end -= 16;
  }
  mark_last_ties(keys, end, missing, threshold, out);
}

bool has_avx512() {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return avx512;
}
#endif

int64_t keep_bin_fast(const uint32_t* pool, int64_t size, int shift, uint32_t bin, uint32_t* dst) {
#ifdef XAI_AREA_AVX512
  if (has_avx512()) return keep_bin_avx512(pool, size, shift, bin, dst);
#endif
  return keep_bin(pool, size, shift, bin, dst);
}
int64_t keep_bin_fast(const uint64_t* pool, int64_t size, int shift, uint64_t bin, uint64_t* dst) {
  return keep_bin(pool, size, shift, bin, dst);
}
void mark_last_ties_fast(const uint32_t* keys, int64_t n, int64_t missing, uint32_t threshold, float* out) {
#ifdef XAI_AREA_AVX512
  if (has_avx512()) return mark_last_ties_avx512(keys, n, missing, threshold, out);
#endif
  mark_last_ties(keys, n, missing, threshold, out);
}
void mark_last_ties_fast(const uint64_t* keys, int64_t n, int64_t missing, uint64_t threshold, double* out) {
  mark_last_ties(keys, n, missing, threshold, out);
}

template <typename T>
void area_targets_row(const T* x, int64_t n, int64_t zeros, T* out, std::vector<KeyOf<T>>& keys,
                      std::vector<KeyOf<T>>& candidates) {
  using U = KeyOf<T>;
  const int64_t ones = n - zeros;
  if (ones <= 0 || zeros <= 0) {
    const T value = ones <= 0 ? T(0) : T(1);
    for (int64_t i = 0; i < n; ++i) out[i] = value;
    return;
  }
  keys.resize(n);
  candidates.resize(n);
  make_keys(x, n, keys.data());
  // Radix selection of the key of rank `zeros` (0-based), the most significant digit first;
  // after each pass only the keys in the chosen bin go on (copied, without branches).
  const U* pool = keys.data();
  int64_t size = n, rank = zeros;
  U threshold = 0;
  int64_t total[kBins];
  for (int shift = 8 * static_cast<int>(sizeof(U)) - kDigit; shift >= 0; shift -= kDigit) {
    digit_histogram(pool, size, shift, total);
    U bin = 0;
    while (rank >= total[bin]) rank -= total[bin++];
    threshold |= bin << shift;
    if (shift == 0) break;
    size = keep_bin_fast(pool, size, shift, bin, candidates.data());
    pool = candidates.data();  // in place from here
  }
  const int64_t above = mark_above(keys.data(), n, threshold, out);
  mark_last_ties_fast(keys.data(), n, ones - above, threshold, out);
}

at::Tensor area_targets_cpu(const at::Tensor& rows, at::IntArrayRef zeros) {
  const char* op = "xaifast::area_targets";
  TORCH_CHECK_VALUE(rows.dim() == 2, op, ": rows must be (K, n), got shape ", rows.sizes());
  TORCH_CHECK_TYPE(rows.scalar_type() == at::kFloat || rows.scalar_type() == at::kDouble, op,
                   ": rows must be float32 or float64, got ", rows.scalar_type());
  TORCH_CHECK_VALUE(rows.device().is_cpu(), op, ": CPU kernel got rows on ", rows.device());
  TORCH_CHECK_VALUE(static_cast<int64_t>(zeros.size()) == rows.size(0), op, ": zeros must have one count per row (",
                    rows.size(0), "), got ", zeros.size());
  for (const int64_t z : zeros) {
    TORCH_CHECK_VALUE(z >= 0 && z <= rows.size(1), op, ": zeros must lie in [0, ", rows.size(1), "], got ", z);
  }
  const at::Tensor x = rows.contiguous();
  at::Tensor out = cpu::empty_output(x.sizes(), x.options());
  const int64_t n = x.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "area_targets_cpu", [&] {
    const scalar_t* src = x.const_data_ptr<scalar_t>();
    scalar_t* dst = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, x.size(0), 1, [&](int64_t begin, int64_t end) {
      // Reused by each thread from call to call: an extremal-perturbation run calls this every
      // iteration with the same row length.
      thread_local std::vector<KeyOf<scalar_t>> keys, candidates;
      for (int64_t r = begin; r < end; ++r) {
        area_targets_row(src + r * n, n, zeros[r], dst + r * n, keys, candidates);
      }
    });
  });
  return out;
}

}  // namespace
}  // namespace xaifast

TORCH_LIBRARY_IMPL(xaifast, CPU, m) { m.impl("area_targets", &xaifast::area_targets_cpu); }
