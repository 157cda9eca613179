// AVX-512 kernels (compiled with -mavx512f -mavx512bw -mavx512vl, see cpu_kernels.cmake;
// only called after cpu_supports(CpuIsa::avx512)). VNNI is not used on purpose:
// activations stay fp32 and weights are dequantized exactly, so results match
// the reference to fp32 rounding instead of carrying int8 activation error.
// No standard-library templates are used in this file: an inline function
// instantiated here would carry SIMD instructions the linker might pick for
// baseline callers.
#include <stdexcept>

#include "runtime/cpu_kernel_detail.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>

namespace quanteval::runtime::detail {

bool avx512_kernels_compiled() { return true; }

namespace {

// Rows of X per pass over a weight block: 8 accumulators + weights + scale/zero
// fit in the 32 zmm registers with room to spare, and M <= 8 reads W once.
constexpr int kInt4MaxTile = 8;

template <bool kBf16>
__m512 load_scales(__m256i bits) {
  if constexpr (kBf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  return _mm512_cvtph_ps(bits);
}

// Independent accumulator chains per X row: one chain would serialize the 8 FMAs
// of a line on the FMA latency (4 cycles each), which made the GEMV latency-bound;
// kTile * kChains >= 4 keeps enough FMAs in flight.
template <int kTile>
constexpr int chains_for_tile() {
  return kTile >= 4 ? 1 : kTile >= 2 ? 2 : 4;
}

template <int kTile, bool kBf16>
void int4_tile(const Int4Problem& p, int64_t block, int m0) {
  constexpr int kChains = chains_for_tile<kTile>();
  __m512 acc[kChains][kTile];
  for (int c = 0; c < kChains; ++c)
    for (int i = 0; i < kTile; ++i) acc[c][i] = _mm512_setzero_ps();
  const PackedLine* line = p.lines + block * p.lines_per_block;
  const float* x = p.x + m0 * p.x_stride;
  const __m512i low_nibble = _mm512_set1_epi32(0xf);
  for (int g = 0; g < p.num_groups; ++g) {
    const __m512i header = _mm512_load_si512(line->words);
    const __m512 scale = load_scales<kBf16>(_mm512_castsi512_si256(header));
    const __m512 zero = _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(header, 1)));
    // zero * scale is exact (zero <= 16 has 5 significant bits, the scale <= 11), so
    // fmsub(q, scale, zero*scale) rounds once to the exact scale * (q - zero).
    const __m512 zero_scaled = _mm512_mul_ps(zero, scale);
    ++line;
    const int rows = p.group_rows[g];
    for (int r = 0; r < rows; ++r, ++line, x += 8) {
      __m512i words = _mm512_load_si512(line->words);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m512 q = _mm512_cvtepi32_ps(_mm512_and_si512(words, low_nibble));
        const __m512 w = _mm512_fmsub_ps(q, scale, zero_scaled);
        words = _mm512_srli_epi32(words, 4);  // next row's nibble; an immediate shift keeps -O0 builds legal
        for (int i = 0; i < kTile; ++i) {
          acc[j % kChains][i] = _mm512_fmadd_ps(_mm512_set1_ps(x[i * p.x_stride + j]), w, acc[j % kChains][i]);
        }
      }
    }
  }
  const int64_t n0 = block * kInt4BlockColumns;
  const int valid = static_cast<int>(p.n - n0 < kInt4BlockColumns ? p.n - n0 : kInt4BlockColumns);
  const __mmask16 store_mask = static_cast<__mmask16>((1u << valid) - 1u);
  const __m512 bias = p.bias ? _mm512_maskz_loadu_ps(store_mask, p.bias + n0) : _mm512_setzero_ps();
  for (int i = 0; i < kTile; ++i) {
    __m512 sum = acc[0][i];
    for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c][i]);
    _mm512_mask_storeu_ps(p.y + (m0 + i) * static_cast<int64_t>(p.n) + n0, store_mask, _mm512_add_ps(sum, bias));
  }
}

template <bool kBf16>
void int4_block(const Int4Problem& p, int64_t block) {
  int m0 = 0;
  for (; m0 + kInt4MaxTile <= p.m; m0 += kInt4MaxTile) int4_tile<kInt4MaxTile, kBf16>(p, block, m0);
  switch (p.m - m0) {
    case 7: int4_tile<7, kBf16>(p, block, m0); break;
    case 6: int4_tile<6, kBf16>(p, block, m0); break;
    case 5: int4_tile<5, kBf16>(p, block, m0); break;
    case 4: int4_tile<4, kBf16>(p, block, m0); break;
    case 3: int4_tile<3, kBf16>(p, block, m0); break;
    case 2: int4_tile<2, kBf16>(p, block, m0); break;
    case 1: int4_tile<1, kBf16>(p, block, m0); break;
    default: break;
  }
}

// Rows of X per pass over one weight row (2 k-chains each: 8 accumulators).
constexpr int kDenseMaxTile = 4;

template <DenseType kType>
__m512 load_dense(const void* w, int64_t index, __mmask16 mask) {
  if constexpr (kType == DenseType::f32) return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(w) + index);
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(w) + index);
  if constexpr (kType == DenseType::bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  return _mm512_cvtph_ps(bits);
}

template <DenseType kType>
__m512 load_dense(const void* w, int64_t index) {
  if constexpr (kType == DenseType::f32) return _mm512_loadu_ps(static_cast<const float*>(w) + index);
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + index));
  if constexpr (kType == DenseType::bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  return _mm512_cvtph_ps(bits);
}

template <int kTile, DenseType kType>
void dense_tile(const DenseProblem& p, int64_t row, int m0) {
  // Two independent accumulators per X row hide the FMA latency when kTile is 1 (GEMV).
  __m512 even[kTile], odd[kTile];
  for (int i = 0; i < kTile; ++i) even[i] = odd[i] = _mm512_setzero_ps();
  const int64_t base = row * p.k;
  const float* x = p.x + static_cast<int64_t>(m0) * p.k;
  int k = 0;
  for (; k + 32 <= p.k; k += 32) {
    const __m512 w0 = load_dense<kType>(p.w, base + k);
    const __m512 w1 = load_dense<kType>(p.w, base + k + 16);
    for (int i = 0; i < kTile; ++i) {
      even[i] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i * p.k + k), w0, even[i]);
      odd[i] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i * p.k + k + 16), w1, odd[i]);
    }
  }
  for (; k < p.k; k += 16) {
    const int left = p.k - k < 16 ? p.k - k : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << left) - 1u);
    const __m512 w = load_dense<kType>(p.w, base + k, mask);
    for (int i = 0; i < kTile; ++i) even[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + i * p.k + k), w, even[i]);
  }
  for (int i = 0; i < kTile; ++i) {
    p.y[static_cast<int64_t>(m0 + i) * p.n + row] =
        _mm512_reduce_add_ps(_mm512_add_ps(even[i], odd[i])) + (p.bias ? p.bias[row] : 0.0f);
  }
}

template <DenseType kType>
void dense_rows(const DenseProblem& p, int64_t row_begin, int64_t row_end) {
  for (int64_t row = row_begin; row < row_end; ++row) {
    int m0 = 0;
    for (; m0 + kDenseMaxTile <= p.m; m0 += kDenseMaxTile) dense_tile<kDenseMaxTile, kType>(p, row, m0);
    switch (p.m - m0) {
      case 3: dense_tile<3, kType>(p, row, m0); break;
      case 2: dense_tile<2, kType>(p, row, m0); break;
      case 1: dense_tile<1, kType>(p, row, m0); break;
      default: break;
    }
  }
}

}  // namespace

void int4_blocks_avx512(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
  for (int64_t block = block_begin; block < block_end; ++block) {
    if (p.scales_bf16) int4_block<true>(p, block);
    else int4_block<false>(p, block);
  }
}

void dense_rows_avx512(const DenseProblem& p, int64_t row_begin, int64_t row_end) {
  switch (p.type) {
    case DenseType::bf16: dense_rows<DenseType::bf16>(p, row_begin, row_end); break;
    case DenseType::f16: dense_rows<DenseType::f16>(p, row_begin, row_end); break;
    case DenseType::f32: dense_rows<DenseType::f32>(p, row_begin, row_end); break;
  }
}

}  // namespace quanteval::runtime::detail

#else  // built without AVX-512 support (non-x86 or a compiler without the flags)

namespace quanteval::runtime::detail {
bool avx512_kernels_compiled() { return false; }
void int4_blocks_avx512(const Int4Problem&, int64_t, int64_t) {
  throw std::logic_error("AVX-512 kernels were not compiled into this build");
}
void dense_rows_avx512(const DenseProblem&, int64_t, int64_t) {
  throw std::logic_error("AVX-512 kernels were not compiled into this build");
}
}  // namespace quanteval::runtime::detail

#endif
