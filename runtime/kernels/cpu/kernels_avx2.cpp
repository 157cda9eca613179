// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c, see
// cpu_kernels.cmake; only called after cpu_supports(CpuIsa::avx2)). Same packed
// layout and arithmetic as the AVX-512 kernels, a 16-column block as two ymm halves.
// No standard-library templates are used in this file: an inline function
// instantiated here would carry SIMD instructions the linker might pick for
// baseline callers.
#include <stdexcept>

#include "runtime/base/check.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/model/exp_float_coefficients.hpp"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

namespace quanteval::runtime::detail {

bool avx2_kernels_compiled() { return true; }

namespace {

// Rows of X per pass over a weight block: 2 halves x 4 rows = 8 accumulators,
// leaving 8 of the 16 ymm registers for the words, scales and zeros.
constexpr int kInt4MaxTile = 4;

template <bool kBf16>
__m256 load_scales(__m128i bits) {
  if constexpr (kBf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  return _mm256_cvtph_ps(bits);
}

// Independent accumulator chains per X row so the FMA latency is hidden at small
// tiles (the two halves already give two chains; see the AVX-512 kernel).
template <int kTile>
constexpr int chains_for_tile() {
  return kTile >= 2 ? 1 : 2;
}

template <int kTile, bool kBf16>
void int4_tile(const Int4Problem& p, int64_t block, int m0) {
  constexpr int kChains = chains_for_tile<kTile>();
  __m256 acc_lo[kChains][kTile], acc_hi[kChains][kTile];
  for (int c = 0; c < kChains; ++c)
    for (int i = 0; i < kTile; ++i) acc_lo[c][i] = acc_hi[c][i] = _mm256_setzero_ps();
  const PackedLine* line = p.lines + block * p.lines_per_block;
  const float* x = p.x + m0 * p.x_stride;
  const __m256i low_nibble = _mm256_set1_epi32(0xf);
  for (int g = 0; g < p.num_groups; ++g) {
    const __m128i* header = reinterpret_cast<const __m128i*>(line->words);
    const __m256 scale_lo = load_scales<kBf16>(_mm_load_si128(header + 0));
    const __m256 scale_hi = load_scales<kBf16>(_mm_load_si128(header + 1));
    // zero * scale is exact, so fmsub gives exactly scale * (q - zero) (see the AVX-512 kernel).
    const __m256 zs_lo = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_load_si128(header + 2))), scale_lo);
    const __m256 zs_hi = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_load_si128(header + 3))), scale_hi);
    ++line;
    const int rows = p.group_rows[g];
    for (int r = 0; r < rows; ++r, ++line, x += 8) {
      __m256i words_lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(line->words));
      __m256i words_hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(line->words + 8));
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        const __m256 w_lo =
            _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_and_si256(words_lo, low_nibble)), scale_lo, zs_lo);
        const __m256 w_hi =
            _mm256_fmsub_ps(_mm256_cvtepi32_ps(_mm256_and_si256(words_hi, low_nibble)), scale_hi, zs_hi);
        words_lo = _mm256_srli_epi32(words_lo, 4);
        words_hi = _mm256_srli_epi32(words_hi, 4);
        for (int i = 0; i < kTile; ++i) {
          const __m256 xv = _mm256_broadcast_ss(x + i * p.x_stride + j);
          acc_lo[j % kChains][i] = _mm256_fmadd_ps(xv, w_lo, acc_lo[j % kChains][i]);
          acc_hi[j % kChains][i] = _mm256_fmadd_ps(xv, w_hi, acc_hi[j % kChains][i]);
        }
      }
    }
  }
  const int64_t n0 = block * kInt4BlockColumns;
  const bool full_block = n0 + kInt4BlockColumns <= p.n;  // else only the low 8 columns exist (N % 8 == 0)
  for (int i = 0; i < kTile; ++i) {
    float* y = p.y + (m0 + i) * static_cast<int64_t>(p.n) + n0;
    __m256 lo = acc_lo[0][i], hi = acc_hi[0][i];
    for (int c = 1; c < kChains; ++c) lo = _mm256_add_ps(lo, acc_lo[c][i]), hi = _mm256_add_ps(hi, acc_hi[c][i]);
    if (p.bias) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(p.bias + n0));
      if (full_block) hi = _mm256_add_ps(hi, _mm256_loadu_ps(p.bias + n0 + 8));
    }
    _mm256_storeu_ps(y, lo);
    if (full_block) _mm256_storeu_ps(y + 8, hi);
  }
}

template <bool kBf16>
void int4_block(const Int4Problem& p, int64_t block) {
  int m0 = 0;
  for (; m0 + kInt4MaxTile <= p.m; m0 += kInt4MaxTile) int4_tile<kInt4MaxTile, kBf16>(p, block, m0);
  switch (p.m - m0) {
    case 3: int4_tile<3, kBf16>(p, block, m0); break;
    case 2: int4_tile<2, kBf16>(p, block, m0); break;
    case 1: int4_tile<1, kBf16>(p, block, m0); break;
    default: break;
  }
}

constexpr int kDenseMaxTile = 4;  // 2 k-chains x 4 rows = 8 ymm accumulators

template <DenseType kType>
__m256 load_dense(const void* w, int64_t index) {
  if constexpr (kType == DenseType::f32) return _mm256_loadu_ps(static_cast<const float*>(w) + index);
  const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + index));
  if constexpr (kType == DenseType::bf16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  return _mm256_cvtph_ps(bits);
}

template <DenseType kType>
float dense_scalar_weight(const void* w, int64_t index) {
  if constexpr (kType == DenseType::f32) return static_cast<const float*>(w)[index];
  const uint16_t bits = static_cast<const uint16_t*>(w)[index];
  if constexpr (kType == DenseType::bf16)
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(bits) << 16)));
  return _cvtsh_ss(bits);
}

float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

template <int kTile, DenseType kType>
void dense_tile(const DenseProblem& p, int64_t row, int m0) {
  __m256 even[kTile], odd[kTile];
  for (int i = 0; i < kTile; ++i) even[i] = odd[i] = _mm256_setzero_ps();
  const int64_t base = row * p.k;
  const float* x = p.x + static_cast<int64_t>(m0) * p.k;
  int k = 0;
  for (; k + 16 <= p.k; k += 16) {
    const __m256 w0 = load_dense<kType>(p.w, base + k);
    const __m256 w1 = load_dense<kType>(p.w, base + k + 8);
    for (int i = 0; i < kTile; ++i) {
      even[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * p.k + k), w0, even[i]);
      odd[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * p.k + k + 8), w1, odd[i]);
    }
  }
  for (; k + 8 <= p.k; k += 8) {
    const __m256 w = load_dense<kType>(p.w, base + k);
    for (int i = 0; i < kTile; ++i) even[i] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * p.k + k), w, even[i]);
  }
  for (int i = 0; i < kTile; ++i) {
    float sum = horizontal_sum(_mm256_add_ps(even[i], odd[i]));
    for (int kk = k; kk < p.k; ++kk) sum += x[i * p.k + kk] * dense_scalar_weight<kType>(p.w, base + kk);
    p.y[static_cast<int64_t>(m0 + i) * p.n + row] = sum + (p.bias ? p.bias[row] : 0.0f);
  }
}

// Weight rows per chunk: within a chunk the X tiles are the outer loop, so one tile
// (4 rows x K floats: 14 KB at K = 896) stays in L1 while the chunk's weight rows (32 x
// 1.8 KB, in L2) pass under it. Row by row with every X tile inside, all M rows of X
// (57 KB at M = 16, more than L1) were re-read from L2 for each weight row: the lm_head
// of batched decode ran at ~3 multiply-adds per cycle. The order of the FMAs of each
// output is unchanged (dense_tile's sums per X row do not depend on the tile size), so
// the results are the same bits as before and do not depend on M or the thread split.
constexpr int64_t kDenseRowChunk = 32;

template <DenseType kType>
void dense_rows(const DenseProblem& p, int64_t row_begin, int64_t row_end) {
  for (int64_t chunk = row_begin; chunk < row_end; chunk += kDenseRowChunk) {
    const int64_t chunk_end = chunk + kDenseRowChunk < row_end ? chunk + kDenseRowChunk : row_end;
    int m0 = 0;
    for (; m0 + kDenseMaxTile <= p.m; m0 += kDenseMaxTile)
      for (int64_t row = chunk; row < chunk_end; ++row) dense_tile<kDenseMaxTile, kType>(p, row, m0);
    for (int64_t row = chunk; row < chunk_end; ++row) {
      switch (p.m - m0) {
        case 3: dense_tile<3, kType>(p, row, m0); break;
        case 2: dense_tile<2, kType>(p, row, m0); break;
        case 1: dense_tile<1, kType>(p, row, m0); break;
        default: break;
      }
    }
  }
}

// ---- bf16 weights: the split kernel, every M ------------------------------------------------
// The AVX-512 split kernel's scheme on 8 lanes: one 256-bit load = 16 bf16 weights = 8
// (even k, odd k) pairs; shifting left 16 gives the even-k weights as fp32, masking the
// high half the odd-k ones (exact), against x split by k parity (DenseProblem::x_split).
// 16 weights cost 1 load + 2 instructions instead of 2 x (load + widen + shift), and
// each X vector feeds kRows FMAs. Tiles: 2 weight rows x 4 X rows (8 accumulators) for
// M >= 2, 4 weight rows x 1 for M = 1 (4 independent chains keep the GEMV memory-bound).
// Each output is one chain: acc += w_even x_even, acc += w_odd x_odd per 16 k in k order,
// then one fixed horizontal sum, whatever kRows, kTile, M or the thread split: a
// sequence's logits are the same bits alone (M = 1) as in a batch (tested).
// Weight rows are taken in chunks (kDenseRowChunk) with the X tiles outside, so an X
// tile stays in L1 while the chunk's rows pass under it.
// Prefetch: a tile's kRows rows are one contiguous run of memory, read as kRows streams
// 2 K apart; each step prefetches the kRows * 32 bytes that lie kSplitPrefetchBytes past
// what the step reads *in that run's linear order*, i.e. one stream running 8 KB ahead.
// Measured at M = 1 on the Zen 3 CI machine (151936 x 896 lm_head, 2 MiB pages): 26.0 GB/s
// against 22.8 for the previous scheme (each row's own line 8 rows ahead) and 22.9 / 24.9
// / 24.5 for 2 / 4 / 16 KB ahead.
constexpr int64_t kSplitPrefetchBytes = 8192;

template <int kRows, int kTile>
void dense_bf16_split_tile(const DenseProblem& p, int64_t row0, int m0) {
  __m256 acc[kRows][kTile];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < kTile; ++i) acc[r][i] = _mm256_setzero_ps();
  const uint16_t* w = static_cast<const uint16_t*>(p.w) + row0 * p.k;
  const float* x = p.x_split + static_cast<int64_t>(m0) * 2 * p.x_split_half;
  const __m256i high_half = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  const int64_t whole = p.k / 16 * 16;
  const char* ahead = reinterpret_cast<const char*>(w) + kSplitPrefetchBytes;
  for (int64_t k = 0; k < p.k; k += 16, ahead += kRows * 32) {
    // Never faults, even past the end of the matrix.
#pragma GCC unroll 4
    for (int line = 0; line < (kRows + 1) / 2; ++line) _mm_prefetch(ahead + 64 * line, _MM_HINT_T0);
    __m256 w_even[kRows], w_odd[kRows];
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const uint16_t* row = w + r * p.k + k;
      __m256i bits;
      if (k < whole) {
        bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
      } else {
        uint16_t tail[16] = {};  // zeros past K (x is zero there too, but a weight could be inf)
        __builtin_memcpy(tail, row, static_cast<size_t>(p.k - k) * sizeof(uint16_t));
        bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tail));
      }
      w_even[r] = _mm256_castsi256_ps(_mm256_slli_epi32(bits, 16));
      w_odd[r] = _mm256_castsi256_ps(_mm256_and_si256(bits, high_half));
    }
    const int64_t pair = k / 2;  // x is zero-padded past K / 2, so whole vectors are safe
#pragma GCC unroll 4
    for (int i = 0; i < kTile; ++i) {
      const float* xi = x + i * 2 * p.x_split_half;
      const __m256 x_even = _mm256_loadu_ps(xi + pair);
      const __m256 x_odd = _mm256_loadu_ps(xi + p.x_split_half + pair);
#pragma GCC unroll 4
      for (int r = 0; r < kRows; ++r) {
        acc[r][i] = _mm256_fmadd_ps(w_even[r], x_even, acc[r][i]);
        acc[r][i] = _mm256_fmadd_ps(w_odd[r], x_odd, acc[r][i]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
    const float bias = p.bias ? p.bias[row0 + r] : 0.0f;
#pragma GCC unroll 4
    for (int i = 0; i < kTile; ++i)
      p.y[static_cast<int64_t>(m0 + i) * p.n + row0 + r] = horizontal_sum(acc[r][i]) + bias;
  }
}

template <int kTile>
void dense_bf16_split_chunk(const DenseProblem& p, int64_t row, int64_t row_end, int m0) {
  constexpr int kRows = kTile == 1 ? 4 : 2;
  for (; row + kRows <= row_end; row += kRows) dense_bf16_split_tile<kRows, kTile>(p, row, m0);
  for (; row < row_end; ++row) dense_bf16_split_tile<1, kTile>(p, row, m0);
}

void dense_bf16_split_rows(const DenseProblem& p, int64_t row_begin, int64_t row_end) {
  for (int64_t chunk = row_begin; chunk < row_end; chunk += kDenseRowChunk) {
    const int64_t chunk_end = chunk + kDenseRowChunk < row_end ? chunk + kDenseRowChunk : row_end;
    int m0 = 0;
    for (; m0 + 4 <= p.m; m0 += 4) dense_bf16_split_chunk<4>(p, chunk, chunk_end, m0);
    switch (p.m - m0) {
      case 3: dense_bf16_split_chunk<3>(p, chunk, chunk_end, m0); break;
      case 2: dense_bf16_split_chunk<2>(p, chunk, chunk_end, m0); break;
      case 1: dense_bf16_split_chunk<1>(p, chunk, chunk_end, m0); break;
      default: break;
    }
  }
}

// ---- int16 activations (no VNNI needed) ----------------------------------------------------
// Same unpacking as the AVX-512 VNNI kernel (shift by 4j, mask 0x000f000f -> int16
// pairs (row j, row j + 4) per column dword), with vpmaddwd + vpaddd standing in for
// vpdpwssd. Also the path for AVX-512 CPUs without VNNI. Matches
// int4_blocks_int16_scalar bit for bit.

// 2 halves x 2 X rows x 2 chains of int32 sums + 2 x 2 float accumulators + the
// operands fill the 16 ymm registers.
constexpr int kInt16MaxTile = 2;

inline __m256i broadcast_pair(const int16_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

// acc + (the two int16 products of each dword summed), exact in int32: AVX-VNNI's VEX
// vpdpwssd where the CPU has it (Intel since Alder Lake / Sapphire Rapids), else vpmaddwd +
// vpaddd. The VNNI form is inline assembly so that this file needs no -mavxvnni: with the
// flag GCC could emit VNNI instructions anywhere in it, also on the paths AVX2-only CPUs run.
template <bool kVnni>
inline __m256i add_pair_products(__m256i acc, __m256i a, __m256i b) {
  if constexpr (kVnni) {
    __asm__("%{vex%} vpdpwssd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(b));
    return acc;
  } else {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
  }
}

// The four nibble pairs of a line half: pair j = bits 4j..4j+3 of each 16-bit half of a
// column's dword = the int16 pair (row j, row j + 4). The top pair needs no mask: a 16-bit
// shift by 12 leaves only it (7 -> 6 ALU ops a half).
inline void nibble_pairs(__m256i words, __m256i pairs[4]) {
  const __m256i mask = _mm256_set1_epi32(0x000f000f);
  pairs[0] = _mm256_and_si256(words, mask);
  pairs[1] = _mm256_and_si256(_mm256_srli_epi16(words, 4), mask);
  pairs[2] = _mm256_and_si256(_mm256_srli_epi16(words, 8), mask);
  pairs[3] = _mm256_srli_epi16(words, 12);
}

// A group's header line as two 8-column halves: the scales (fp16 or bf16 bits widened to
// fp32) and the zero points (u16 widened to int32).
struct GroupHeader {
  __m256 scale_lo, scale_hi;
  __m256i zero_lo, zero_hi;
};
template <bool kBf16>
inline GroupHeader load_group_header(const PackedLine* line) {
  const __m128i* header = reinterpret_cast<const __m128i*>(line->words);
  return {load_scales<kBf16>(_mm_load_si128(header + 0)), load_scales<kBf16>(_mm_load_si128(header + 1)),
          _mm256_cvtepu16_epi32(_mm_load_si128(header + 2)), _mm256_cvtepu16_epi32(_mm_load_si128(header + 3))};
}

// An activation block's per-row step, the spec's float arithmetic: t = sum q x_q - z sum x_q
// (exact in int32), acc = fma(float(t), scale_col * scale_block, acc).
inline void apply_block(__m256i dot, __m256i zero, __m256 scale, QuantBlockScale b, __m256& acc) {
  const __m256 t = _mm256_cvtepi32_ps(_mm256_sub_epi32(dot, _mm256_mullo_epi32(zero, _mm256_set1_epi32(b.sum))));
  acc = _mm256_fmadd_ps(t, _mm256_mul_ps(scale, _mm256_set1_ps(b.scale)), acc);
}

template <int kTile, bool kBf16, bool kVnni>
void int16_tile(const Int4Problem& p, int64_t block, int m0) {
  __m256 acc_lo[kTile], acc_hi[kTile];
  for (int i = 0; i < kTile; ++i) acc_lo[i] = acc_hi[i] = _mm256_setzero_ps();
  const PackedLine* line = p.lines + block * p.lines_per_block;
  const int16_t* xq = p.x_q + 8 * m0;
  const QuantBlockScale* xb = p.x_blocks + m0 * p.x_blocks_stride;
  for (int g = 0; g < p.num_groups; ++g) {
    const auto [scale_lo, scale_hi, zero_lo, zero_hi] = load_group_header<kBf16>(line++);
    const int rows = p.group_rows[g];
    for (int r0 = 0; r0 < rows; r0 += kQuantBlockLines, ++xb) {
      const int lines = rows - r0 < kQuantBlockLines ? rows - r0 : kQuantBlockLines;
      __m256i dot_lo[kTile], dot_hi[kTile];
      for (int i = 0; i < kTile; ++i) dot_lo[i] = dot_hi[i] = _mm256_setzero_si256();
      for (int r = 0; r < lines; ++r, ++line, xq += p.x_q_line_stride) {
        // As in the AVX-512 kernel: into L1 2 KB ahead, into L2 8 KB ahead (on Zen 4 neither
        // in a one-row tile, only the L1 one in wider tiles; Int4Problem::software_prefetch).
        if (kTile > 1 || p.software_prefetch) _mm_prefetch(reinterpret_cast<const char*>(line + 32), _MM_HINT_T0);
        if (p.software_prefetch) _mm_prefetch(reinterpret_cast<const char*>(line + 128), _MM_HINT_T1);
        __m256i q_lo[4], q_hi[4];
        nibble_pairs(_mm256_load_si256(reinterpret_cast<const __m256i*>(line->words)), q_lo);
        nibble_pairs(_mm256_load_si256(reinterpret_cast<const __m256i*>(line->words + 8)), q_hi);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          for (int i = 0; i < kTile; ++i) {
            const __m256i x = broadcast_pair(xq + 8 * i + 2 * j);
            dot_lo[i] = add_pair_products<kVnni>(dot_lo[i], q_lo[j], x);
            dot_hi[i] = add_pair_products<kVnni>(dot_hi[i], q_hi[j], x);
          }
        }
      }
      for (int i = 0; i < kTile; ++i) {
        apply_block(dot_lo[i], zero_lo, scale_lo, xb[i * p.x_blocks_stride], acc_lo[i]);
        apply_block(dot_hi[i], zero_hi, scale_hi, xb[i * p.x_blocks_stride], acc_hi[i]);
      }
    }
  }
  const int64_t n0 = block * kInt4BlockColumns;
  const bool full_block = n0 + kInt4BlockColumns <= p.n;  // else only the low 8 columns exist (N % 8 == 0)
  const __m256 bias_lo = p.bias ? _mm256_loadu_ps(p.bias + n0) : _mm256_setzero_ps();
  const __m256 bias_hi = p.bias && full_block ? _mm256_loadu_ps(p.bias + n0 + 8) : _mm256_setzero_ps();
  for (int i = 0; i < kTile; ++i) {
    float* y = p.y + (m0 + i) * static_cast<int64_t>(p.n) + n0;
    _mm256_storeu_ps(y, _mm256_add_ps(acc_lo[i], bias_lo));
    if (full_block) _mm256_storeu_ps(y + 8, _mm256_add_ps(acc_hi[i], bias_hi));
  }
}

// ---- int16 activations with AVX-VNNI, several rows: each activation block unpacked once ----
// int16_tile unpacks a line's nibble pairs in registers again for every pass of 2 rows (the
// 16 ymm hold no more rows): per line and row 8 products (one vpdpwssd per half and pair)
// against 6 unpacking ops. From kUnpackedMinRows rows, each activation block (<= 16 lines) is
// unpacked once into a 4 KB buffer that stays in L1, and every 4-row tile of the chunk reads
// it with loads, which do not compete for the vector ALU ports. The same integer sums and the
// same float steps in the same order: the same bits as int16_tile.
constexpr int kUnpackedTile = 4;  // 4 rows x 2 halves of int32 sums + 2 weight vectors + a broadcast: 11 ymm
constexpr int kUnpackedMinRows = 4;
constexpr int kUnpackedPassRows = 32;  // rows whose float accumulators one pass keeps (Int4Linear's row chunk)

// One tile of rows over one activation block: `pairs` [lines][lo, hi][4] nibble-pair vectors,
// xq the tile's first row in the block's first line, acc [kTile][16] the rows' running sums.
template <int kTile, bool kVnni>
inline void unpacked_tile(const __m256i* pairs, int lines, const int16_t* xq, int64_t line_stride, __m256i zero_lo,
                          __m256i zero_hi, __m256 scale_lo, __m256 scale_hi, const QuantBlockScale* xb,
                          int64_t xb_stride, float* acc) {
  __m256i dot_lo[kTile], dot_hi[kTile];
#pragma GCC unroll 4
  for (int i = 0; i < kTile; ++i) dot_lo[i] = dot_hi[i] = _mm256_setzero_si256();
  for (int r = 0; r < lines; ++r, pairs += 8, xq += line_stride) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256i q_lo = _mm256_load_si256(pairs + j);
      const __m256i q_hi = _mm256_load_si256(pairs + 4 + j);
#pragma GCC unroll 4
      for (int i = 0; i < kTile; ++i) {
        const __m256i x = broadcast_pair(xq + 8 * i + 2 * j);
        dot_lo[i] = add_pair_products<kVnni>(dot_lo[i], q_lo, x);
        dot_hi[i] = add_pair_products<kVnni>(dot_hi[i], q_hi, x);
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < kTile; ++i) {
    float* row = acc + 16 * i;
    __m256 lo = _mm256_load_ps(row), hi = _mm256_load_ps(row + 8);
    apply_block(dot_lo[i], zero_lo, scale_lo, xb[i * xb_stride], lo);
    apply_block(dot_hi[i], zero_hi, scale_hi, xb[i * xb_stride], hi);
    _mm256_store_ps(row, lo);
    _mm256_store_ps(row + 8, hi);
  }
}

template <bool kBf16, bool kVnni>
void int16_unpacked_block(const Int4Problem& p, int64_t block) {
  alignas(32) __m256i pairs[kQuantBlockLines * 8];
  alignas(32) float acc[kUnpackedPassRows * 16];
  const int64_t n0 = block * kInt4BlockColumns;
  const bool full_block = n0 + kInt4BlockColumns <= p.n;  // else only the low 8 columns exist (N % 8 == 0)
  for (int pass = 0; pass < p.m; pass += kUnpackedPassRows) {
    const int rows = p.m - pass < kUnpackedPassRows ? p.m - pass : kUnpackedPassRows;
    for (int i = 0; i < rows * 16; ++i) acc[i] = 0.0f;
    const PackedLine* line = p.lines + block * p.lines_per_block;
    const int16_t* xq = p.x_q + 8 * pass;
    const QuantBlockScale* xb = p.x_blocks + pass * p.x_blocks_stride;
    for (int g = 0; g < p.num_groups; ++g) {
      const auto [scale_lo, scale_hi, zero_lo, zero_hi] = load_group_header<kBf16>(line++);
      const int group_lines = p.group_rows[g];
      for (int r0 = 0; r0 < group_lines; r0 += kQuantBlockLines, ++xb) {
        const int lines = group_lines - r0 < kQuantBlockLines ? group_lines - r0 : kQuantBlockLines;
        for (int r = 0; r < lines; ++r, ++line) {
          _mm_prefetch(reinterpret_cast<const char*>(line + 32), _MM_HINT_T0);
          nibble_pairs(_mm256_load_si256(reinterpret_cast<const __m256i*>(line->words)), pairs + 8 * r);
          nibble_pairs(_mm256_load_si256(reinterpret_cast<const __m256i*>(line->words + 8)), pairs + 8 * r + 4);
        }
        // Whole 4-row tiles, then a tile of 2 and one of 1 for the rest (rows are independent).
        const int64_t stride = p.x_blocks_stride;
        int i = 0;
        for (; i + kUnpackedTile <= rows; i += kUnpackedTile)
          unpacked_tile<kUnpackedTile, kVnni>(pairs, lines, xq + 8 * i, p.x_q_line_stride, zero_lo, zero_hi, scale_lo,
                                              scale_hi, xb + i * stride, stride, acc + 16 * i);
        if (rows - i >= 2) {
          unpacked_tile<2, kVnni>(pairs, lines, xq + 8 * i, p.x_q_line_stride, zero_lo, zero_hi, scale_lo, scale_hi,
                                  xb + i * stride, stride, acc + 16 * i);
          i += 2;
        }
        if (rows - i == 1)
          unpacked_tile<1, kVnni>(pairs, lines, xq + 8 * i, p.x_q_line_stride, zero_lo, zero_hi, scale_lo, scale_hi,
                                  xb + i * stride, stride, acc + 16 * i);
        xq += lines * p.x_q_line_stride;
      }
    }
    const __m256 bias_lo = p.bias ? _mm256_loadu_ps(p.bias + n0) : _mm256_setzero_ps();
    const __m256 bias_hi = p.bias && full_block ? _mm256_loadu_ps(p.bias + n0 + 8) : _mm256_setzero_ps();
    for (int i = 0; i < rows; ++i) {
      float* y = p.y + (pass + i) * static_cast<int64_t>(p.n) + n0;
      _mm256_storeu_ps(y, _mm256_add_ps(_mm256_load_ps(acc + 16 * i), bias_lo));
      if (full_block) _mm256_storeu_ps(y + 8, _mm256_add_ps(_mm256_load_ps(acc + 16 * i + 8), bias_hi));
    }
  }
}

template <bool kBf16, bool kVnni>
void int16_block(const Int4Problem& p, int64_t block) {
  // Plain AVX2 is bound by vpmaddwd's throughput either way (at most ~1 a cycle measured on the
  // Intel VM: the unpacked kernel ran no faster at M = 16-512 and 13% slower at M = 4), so only
  // the VNNI kernels, whose products take one instruction, gain from unpacking once.
  if (kVnni && p.m >= kUnpackedMinRows) return int16_unpacked_block<kBf16, kVnni>(p, block);
  int m0 = 0;
  for (; m0 + kInt16MaxTile <= p.m; m0 += kInt16MaxTile) int16_tile<kInt16MaxTile, kBf16, kVnni>(p, block, m0);
  if (p.m - m0 == 1) int16_tile<1, kBf16, kVnni>(p, block, m0);
}

template <bool kVnni>
void int16_blocks(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
  for (int64_t block = block_begin; block < block_end; ++block) {
    if (p.scales_bf16)
      int16_block<true, kVnni>(p, block);
    else
      int16_block<false, kVnni>(p, block);
  }
}

}  // namespace

void int4_blocks_avx2(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
  if (p.x_q != nullptr) return int16_blocks<false>(p, block_begin, block_end);
  for (int64_t block = block_begin; block < block_end; ++block) {
    if (p.scales_bf16)
      int4_block<true>(p, block);
    else
      int4_block<false>(p, block);
  }
}

void int4_blocks_avx2_vnni(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
  int16_blocks<true>(p, block_begin, block_end);
}

bool avx_vnni_supported() { return __builtin_cpu_supports("avxvnni"); }

void dense_rows_avx2(const DenseProblem& p, int64_t row_begin, int64_t row_end) {
  if (p.x_split != nullptr) return dense_bf16_split_rows(p, row_begin, row_end);
  switch (p.type) {
    case DenseType::bf16: dense_rows<DenseType::bf16>(p, row_begin, row_end); break;
    case DenseType::f16: dense_rows<DenseType::f16>(p, row_begin, row_end); break;
    case DenseType::f32: dense_rows<DenseType::f32>(p, row_begin, row_end); break;
  }
}

// quantize_block_scalar, 8 values (one line) per step as two 4-double halves; the same
// rounding as the AVX-512 version (one double product, then round to nearest even).
// Replaced the scalar quantizer on AVX2 CPUs: ~4% of a prefill's samples at AVX2.
void quantize_block_avx2(const float* values, int rows, int16_t* out, int64_t line_stride, QuantBlockScale* block) {
  __m256i amax_bits = _mm256_setzero_si256();
  const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
  for (int j = 0; j < rows; j += 8)
    amax_bits =
        _mm256_max_epu32(amax_bits, _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(values + j)), abs_mask));
  __m128i m4 = _mm_max_epu32(_mm256_castsi256_si128(amax_bits), _mm256_extracti128_si256(amax_bits, 1));
  m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0x4e));
  m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0xb1));
  const uint32_t bits = static_cast<uint32_t>(_mm_cvtsi128_si32(m4));
  if (bits >= 0x7f800000u) {  // inf or NaN somewhere
    for (int l = 0; l < rows / 8; ++l)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + l * line_stride), _mm_setzero_si128());
    *block = {__builtin_nanf(""), 0};
    return;
  }
  float amax;
  __builtin_memcpy(&amax, &bits, sizeof amax);
  const float scale = amax / 32767.0f;
  const double inverse = scale > 0.0f ? 1.0 / static_cast<double>(scale) : 0.0;
  const __m256d inv = _mm256_set1_pd(inverse), hi = _mm256_set1_pd(32767.0), lo = _mm256_set1_pd(-32767.0);
  __m128i sum = _mm_setzero_si128();
  for (int l = 0; l < rows / 8; ++l) {
    __m128i q[2];
    for (int h = 0; h < 2; ++h) {
      const __m256d scaled = _mm256_round_pd(_mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(values + 8 * l + 4 * h)), inv),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q[h] = _mm256_cvtpd_epi32(_mm256_min_pd(_mm256_max_pd(scaled, lo), hi));  // integral: exact
    }
    sum = _mm_add_epi32(sum, _mm_add_epi32(q[0], q[1]));
    // Rows 0..3 and 4..7 interleaved: 0,4,1,5 | 2,6,3,7, then to int16 (in range: exact).
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + l * line_stride),
                     _mm_packs_epi32(_mm_unpacklo_epi32(q[0], q[1]), _mm_unpackhi_epi32(q[0], q[1])));
  }
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4e));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xb1));
  *block = {scale, _mm_cvtsi128_si32(sum)};
}

// Unaligned loads (the buffer need not be 32-byte aligned); 4 ymm = 2 cache lines per step.
uint64_t read_stream_avx2(const void* data, size_t bytes, size_t prefetch_bytes) {
  const char* p = static_cast<const char*>(data);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 128 <= bytes; i += 128) {
    if (prefetch_bytes != 0) {  // never faults, even past the end
      _mm_prefetch(p + i + prefetch_bytes, _MM_HINT_T0);
      _mm_prefetch(p + i + prefetch_bytes + 64, _MM_HINT_T0);
    }
    a0 = _mm256_xor_si256(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i all = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  const __m128i half = _mm_xor_si128(_mm256_castsi256_si128(all), _mm256_extracti128_si256(all, 1));
  uint64_t out = static_cast<uint64_t>(_mm_cvtsi128_si64(half)) ^ static_cast<uint64_t>(_mm_extract_epi64(half, 1));
  for (; i + 8 <= bytes; i += 8) {
    uint64_t word;
    __builtin_memcpy(&word, p + i, sizeof word);
    out ^= word;
  }
  return out;
}

namespace {

// Scores of 8 consecutive positions for one query head: 8 accumulators (one per position)
// of 8 lanes each, reduced together. The reduction is math::attention_score's pairing, done
// for all 8 at once: permute2f128 + add gives each position's (l + l+4) sums, two hadd
// rounds give ((0+4)+(1+5)) + ((2+6)+(3+7)), in the lane order 0 2 4 6 1 3 5 7. One
// horizontal reduction per score (5 instructions) was ~40% of the scores' time at head_dim 64.
inline __m256 scores_of_8(const float* q, const float* keys, int64_t key_stride, int head_dim, __m256 scale) {
  __m256 acc[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
  for (int d = 0; d < head_dim; d += 8) {
    const __m256 qv = _mm256_loadu_ps(q + d);
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(qv, _mm256_loadu_ps(keys + i * key_stride + d)));
  }
  auto halves = [](__m256 a, __m256 b) {  // [a0+a4 .. a3+a7 | b0+b4 .. b3+b7]
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  };
  const __m256 low = _mm256_hadd_ps(halves(acc[0], acc[1]), halves(acc[2], acc[3]));
  const __m256 high = _mm256_hadd_ps(halves(acc[4], acc[5]), halves(acc[6], acc[7]));
  const __m256 dots = _mm256_permutevar8x32_ps(_mm256_hadd_ps(low, high), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  return _mm256_mul_ps(dots, scale);
}

// One score, the same pairing (positions left over after the runs of 8).
inline float score_of_1(const float* q, const float* key, int head_dim, float scale) {
  __m256 lanes = _mm256_setzero_ps();
  for (int d = 0; d < head_dim; d += 8)
    lanes = _mm256_add_ps(lanes, _mm256_mul_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(key + d)));
  const __m128 pairs = _mm_add_ps(_mm256_castps256_ps128(lanes), _mm256_extractf128_ps(lanes, 1));
  const __m128 sums = _mm_hadd_ps(pairs, pairs);
  return _mm_cvtss_f32(_mm_hadd_ps(sums, sums)) * scale;
}

}  // namespace

void attention_scores_avx2(const float* queries, int heads, int head_dim, const float* keys, int64_t key_stride,
                           int count, float scale, float* scores, int64_t score_stride) {
  const __m256 scale8 = _mm256_set1_ps(scale);
  int j = 0;
  // Heads inside the run of 8: its 8 key rows stay in L1 for every head of the group.
  for (; j + 8 <= count; j += 8)
    for (int h = 0; h < heads; ++h)
      _mm256_storeu_ps(scores + h * score_stride + j, scores_of_8(queries + static_cast<int64_t>(h) * head_dim,
                                                                  keys + j * key_stride, key_stride, head_dim, scale8));
  for (; j < count; ++j)
    for (int h = 0; h < heads; ++h)
      scores[h * score_stride + j] =
          score_of_1(queries + static_cast<int64_t>(h) * head_dim, keys + j * key_stride, head_dim, scale);
}

namespace {

// kRows rows x kVectors ymm of C in registers over the whole inner loop: per x, kVectors
// loads of B's row and kRows broadcasts of A serve kRows x kVectors fused multiply-adds.
// 4 x 2 = 8 accumulators (two FMA ports x 4 cycles of latency: 8 chains keep both busy)
// + 2 B vectors + a broadcast fit the 16 ymm.
template <int kRows, int kVectors, bool kSubtract>
void multiply_accumulate_tile(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
                              int inner) {
  __m256 acc[kRows][kVectors];
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) acc[i][v] = _mm256_loadu_ps(c + i * ldc + 8 * v);
  for (int x = 0; x < inner; ++x) {
    __m256 row[kVectors];
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) row[v] = _mm256_loadu_ps(b + x * ldb + 8 * v);
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m256 scalar = _mm256_broadcast_ss(a + i * lda + x);
#pragma GCC unroll 2
      for (int v = 0; v < kVectors; ++v)
        acc[i][v] = kSubtract ? _mm256_fnmadd_ps(scalar, row[v], acc[i][v]) : _mm256_fmadd_ps(scalar, row[v], acc[i][v]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kVectors; ++v) _mm256_storeu_ps(c + i * ldc + 8 * v, acc[i][v]);
}

template <bool kSubtract>
void multiply_accumulate_rows(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int rows,
                              int cols, int inner) {
  for (int c0 = 0; c0 < cols; c0 += 16) {
    const bool pair = cols - c0 >= 16;
    int i = 0;
    for (; i + 4 <= rows; i += 4) {
      if (pair)
        multiply_accumulate_tile<4, 2, kSubtract>(c + i * ldc + c0, ldc, a + i * lda, lda, b + c0, ldb, inner);
      else
        multiply_accumulate_tile<4, 1, kSubtract>(c + i * ldc + c0, ldc, a + i * lda, lda, b + c0, ldb, inner);
    }
    // The last 1-3 rows in one pass over B, as in the AVX-512 loop.
    float* ci = c + i * ldc + c0;
    const float* ai = a + i * lda;
    switch ((rows - i) * 2 + (pair ? 1 : 0)) {
      case 7: multiply_accumulate_tile<3, 2, kSubtract>(ci, ldc, ai, lda, b + c0, ldb, inner); break;
      case 6: multiply_accumulate_tile<3, 1, kSubtract>(ci, ldc, ai, lda, b + c0, ldb, inner); break;
      case 5: multiply_accumulate_tile<2, 2, kSubtract>(ci, ldc, ai, lda, b + c0, ldb, inner); break;
      case 4: multiply_accumulate_tile<2, 1, kSubtract>(ci, ldc, ai, lda, b + c0, ldb, inner); break;
      case 3: multiply_accumulate_tile<1, 2, kSubtract>(ci, ldc, ai, lda, b + c0, ldb, inner); break;
      case 2: multiply_accumulate_tile<1, 1, kSubtract>(ci, ldc, ai, lda, b + c0, ldb, inner); break;
      default: break;
    }
  }
}

}  // namespace

namespace {

// kVectors x 8 columns of the state through math::delta_rule_column's steps, lane c doing
// exactly column c's operations in the same order (mul, then add; no FMA).
template <int kVectors>
void delta_rule_column_group(float* state, int64_t stride, const float* q, const float* k, int key_dim,
                             const float* v, float decay, float beta, float* out) {
  const __m256 decay8 = _mm256_set1_ps(decay);
  __m256 recalled[kVectors];
#pragma GCC unroll 4
  for (int j = 0; j < kVectors; ++j) recalled[j] = _mm256_setzero_ps();
  for (int a = 0; a < key_dim; ++a) {
    float* row = state + a * stride;
    const __m256 k_a = _mm256_set1_ps(k[a]);
#pragma GCC unroll 4
    for (int j = 0; j < kVectors; ++j) {
      const __m256 s = _mm256_mul_ps(_mm256_loadu_ps(row + 8 * j), decay8);
      _mm256_storeu_ps(row + 8 * j, s);
      recalled[j] = _mm256_add_ps(recalled[j], _mm256_mul_ps(s, k_a));
    }
  }
  __m256 delta[kVectors], result[kVectors];
#pragma GCC unroll 4
  for (int j = 0; j < kVectors; ++j) {
    delta[j] = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(v + 8 * j), recalled[j]), _mm256_set1_ps(beta));
    result[j] = _mm256_setzero_ps();
  }
  for (int a = 0; a < key_dim; ++a) {
    float* row = state + a * stride;
    const __m256 k_a = _mm256_set1_ps(k[a]), q_a = _mm256_set1_ps(q[a]);
#pragma GCC unroll 4
    for (int j = 0; j < kVectors; ++j) {
      const __m256 s = _mm256_add_ps(_mm256_loadu_ps(row + 8 * j), _mm256_mul_ps(k_a, delta[j]));
      _mm256_storeu_ps(row + 8 * j, s);
      result[j] = _mm256_add_ps(result[j], _mm256_mul_ps(s, q_a));
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < kVectors; ++j) _mm256_storeu_ps(out + 8 * j, result[j]);
}

}  // namespace

void delta_rule_columns_avx2(float* state, int64_t stride, const float* q, const float* k, int key_dim,
                             const float* v, int value_dim, float decay, float beta, float* out) {
  int c = 0;
  for (; c + 32 <= value_dim; c += 32)
    delta_rule_column_group<4>(state + c, stride, q, k, key_dim, v + c, decay, beta, out + c);
  for (; c < value_dim; c += 8)
    delta_rule_column_group<1>(state + c, stride, q, k, key_dim, v + c, decay, beta, out + c);
}

namespace {

// math::exp_float, 8 lanes, op for op (see runtime/model/math.hpp): the same bits.
inline __m256 exp_float8(__m256 x) {
  using namespace math::exp_coefficients;
  const __m256 top = _mm256_set1_ps(kOverflowAbove), bottom = _mm256_set1_ps(kUnderflowBelow);
  const __m256 in_range = _mm256_cmp_ps(x, top, _CMP_LE_OQ);  // false for NaN
  const __m256 is_nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 underflow = _mm256_cmp_ps(x, bottom, _CMP_LT_OQ);
  // Out-of-range lanes are replaced below; clamping them keeps the integer step defined.
  const __m256 xc = _mm256_max_ps(_mm256_min_ps(x, top), bottom);
  const __m256 magic = _mm256_set1_ps(kRoundMagic);
  const __m256 n = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(xc, _mm256_set1_ps(kLog2e)), magic), magic);
  const __m256 r = _mm256_sub_ps(_mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(kLn2High))),
                                 _mm256_mul_ps(n, _mm256_set1_ps(kLn2Low)));
  __m256 p = _mm256_set1_ps(kC7);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC6));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC5));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC4));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC3));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC2));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC1));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kC0));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 out = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
  out = _mm256_blendv_ps(out, _mm256_setzero_ps(), underflow);
  out = _mm256_blendv_ps(_mm256_set1_ps(__builtin_huge_valf()), out, in_range);
  return _mm256_blendv_ps(out, x, is_nan);
}

// Lanes [0, left) of an 8-float access (maskload / maskstore: the others are neither read nor written).
inline __m256i tail_lanes(size_t left) {
  const int have = left >= 8 ? 8 : static_cast<int>(left);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(have), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// math::silu, 8 lanes: x / (1 + exp_float(-x)).
inline __m256 silu8(__m256 x) {
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_float8(_mm256_xor_ps(x, _mm256_set1_ps(-0.0f)))));
}

}  // namespace

void exp_shifted_avx2(float* values, size_t count, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  for (size_t i = 0; i < count; i += 8) {
    const __m256i lanes = tail_lanes(count - i);
    const __m256 v = _mm256_maskload_ps(values + i, lanes);
    _mm256_maskstore_ps(values + i, lanes, exp_float8(_mm256_sub_ps(v, s)));
  }
}

float max_value_avx2(const float* values, size_t count) {
  __m256 best = _mm256_set1_ps(values[0]);  // lanes past the end load values[0]: a no-op for the max
  for (size_t i = 0; i < count; i += 8) {
    const __m256i lanes = tail_lanes(count - i);
    best =
        _mm256_max_ps(best, _mm256_blendv_ps(best, _mm256_maskload_ps(values + i, lanes), _mm256_castsi256_ps(lanes)));
  }
  const __m128 four = _mm_max_ps(_mm256_castps256_ps128(best), _mm256_extractf128_ps(best, 1));
  const __m128 two = _mm_max_ps(four, _mm_movehl_ps(four, four));
  return _mm_cvtss_f32(_mm_max_ss(two, _mm_shuffle_ps(two, two, 1)));
}

void divide_avx2(float* values, size_t count, float divisor) {
  const __m256 d = _mm256_set1_ps(divisor);
  for (size_t i = 0; i < count; i += 8) {
    const __m256i lanes = tail_lanes(count - i);
    _mm256_maskstore_ps(values + i, lanes, _mm256_div_ps(_mm256_maskload_ps(values + i, lanes), d));
  }
}

void swiglu_avx2(const float* gate, const float* up, float* out, size_t count) {
  for (size_t i = 0; i < count; i += 8) {
    const __m256i lanes = tail_lanes(count - i);
    const __m256 g = _mm256_maskload_ps(gate + i, lanes), u = _mm256_maskload_ps(up + i, lanes);
    _mm256_maskstore_ps(out + i, lanes, _mm256_mul_ps(silu8(g), u));
  }
}

void gated_rms_row_avx2(float* o, float inverse_rms, const float* weight, const float* z, int count) {
  const __m256 inv = _mm256_set1_ps(inverse_rms);
  for (int i = 0; i < count; i += 8) {
    const __m256i lanes = tail_lanes(static_cast<size_t>(count - i));
    const __m256 scaled = _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(o + i, lanes), inv),
                                        _mm256_maskload_ps(weight + i, lanes));
    _mm256_maskstore_ps(o + i, lanes, _mm256_mul_ps(scaled, silu8(_mm256_maskload_ps(z + i, lanes))));
  }
}

void conv1d_silu_row_avx2(const float* const* window, int kernel, const float* taps, int64_t tap_stride,
                          const float* bias, int count, float* out) {
  for (int i = 0; i < count; i += 8) {
    const __m256i lanes = tail_lanes(static_cast<size_t>(count - i));
    __m256 acc = bias ? _mm256_maskload_ps(bias + i, lanes) : _mm256_setzero_ps();
    for (int j = 0; j < kernel; ++j)
      acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_maskload_ps(taps + j * tap_stride + i, lanes),
                                             _mm256_maskload_ps(window[j] + i, lanes)));
    _mm256_maskstore_ps(out + i, lanes, silu8(acc));
  }
}

void multiply_accumulate_avx2(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int rows,
                              int cols, int inner, bool subtract) {
  if (subtract)
    multiply_accumulate_rows<true>(c, ldc, a, lda, b, ldb, rows, cols, inner);
  else
    multiply_accumulate_rows<false>(c, ldc, a, lda, b, ldb, rows, cols, inner);
}

void f16_to_float_avx2(const uint16_t* in, float* out, size_t count) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  }
  for (; i < count; ++i) out[i] = _cvtsh_ss(in[i]);
}

}  // namespace quanteval::runtime::detail

#else  // built without AVX2 support

namespace quanteval::runtime::detail {
bool avx2_kernels_compiled() { return false; }
void int4_blocks_avx2(const Int4Problem&, int64_t, int64_t) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
void int4_blocks_avx2_vnni(const Int4Problem&, int64_t, int64_t) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
bool avx_vnni_supported() { return false; }
void dense_rows_avx2(const DenseProblem&, int64_t, int64_t) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
void f16_to_float_avx2(const uint16_t*, float*, size_t) { QE_FAIL("AVX2 kernels were not compiled into this build"); }
void quantize_block_avx2(const float*, int, int16_t*, int64_t, QuantBlockScale*) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
uint64_t read_stream_avx2(const void*, size_t, size_t) { QE_FAIL("AVX2 kernels were not compiled into this build"); }
void attention_scores_avx2(const float*, int, int, const float*, int64_t, int, float, float*, int64_t) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
void multiply_accumulate_avx2(float*, int64_t, const float*, int64_t, const float*, int64_t, int, int, int, bool) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
void delta_rule_columns_avx2(float*, int64_t, const float*, const float*, int, const float*, int, float, float, float*) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
float max_value_avx2(const float*, size_t) { QE_FAIL("AVX2 kernels were not compiled into this build"); }
void divide_avx2(float*, size_t, float) { QE_FAIL("AVX2 kernels were not compiled into this build"); }
void exp_shifted_avx2(float*, size_t, float) { QE_FAIL("AVX2 kernels were not compiled into this build"); }
void swiglu_avx2(const float*, const float*, float*, size_t) { QE_FAIL("AVX2 kernels were not compiled into this build"); }
void conv1d_silu_row_avx2(const float* const*, int, const float*, int64_t, const float*, int, float*) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
void gated_rms_row_avx2(float*, float, const float*, const float*, int) {
  QE_FAIL("AVX2 kernels were not compiled into this build");
}
}  // namespace quanteval::runtime::detail

#endif
