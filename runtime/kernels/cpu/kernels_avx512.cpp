// AVX-512 kernels (compiled with -mavx512f -mavx512bw -mavx512vl, see cpu_kernels.cmake;
// only called after cpu_supports(CpuIsa::avx512)). The INT4 fp32 path dequantizes
// weights exactly and uses fp32 activations; the int16-activation path uses VNNI
// (vpdpwssd, behind a target attribute and a run-time avx512vnni check) on int16
// activations, whose error is bounded in tests/cpu_kernels/test_helpers.hpp. int8
// activations (vpdpbusd) were tried and rejected for accuracy (docs/cpu-kernels.md).
// No standard-library templates are used in this file: an inline function
// instantiated here would carry SIMD instructions the linker might pick for
// baseline callers.
#include <stdexcept>

#include "runtime/base/check.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/model/exp_float_coefficients.hpp"

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

// ---- int16 activations, VNNI ---------------------------------------------------------------
// One 64-byte line holds, per column (dword), 8 nibbles = rows 0..7 of 8 k. Shifting
// by 4j and masking with 0x000f000f leaves, in each dword, the int16 pair
// (row j, row j + 4): exactly vpdpwssd's operand (two int16 products summed into the
// int32 lane). The activations are stored in the same pair order (x_q: per line
// 0,4,1,5,2,6,3,7), so each pair is one broadcast dword and one vpdpwssd does 32
// multiply-adds: 4 per line per X row, plus 7 shared unpack instructions, versus 8
// dequantizations (4 instructions each) + 8 FMAs in the fp32 kernel. Zero points and
// scales are applied once per 128-row block (int4_blocks_int16_scalar is the spec this
// matches bit for bit).

// Rows of X per pass: 8 int32 accumulators + 8 float accumulators + 4 unpacked weight
// vectors fit the 32 zmm registers. Batches of 16 (batched decode) run as one 16-row
// pass instead: its float accumulators spill, but they are touched once per 128-row block,
// while the 11-instruction line unpack is then shared by 16 rows (measured 5-14% faster
// at M = 16 than two 8-row passes).
constexpr int kInt16MaxTile = 8;

// Software prefetch distance in 64-byte lines (2 KB). At M = 1 this kernel consumes a
// line every ~2 ns, faster than the L2 streamer ramps up at the start of each claimed
// run of blocks and each call; prefetching 32 lines ahead took the DRAM-resident GEMV
// stream (bench_decode) from ~63% to ~88% of the measured read bandwidth (8 lines: ~72%,
// 64 / 128: no better). It may run past the block's end into the next block or off the
// array: prefetches never fault.
constexpr int kPrefetchLines = 32;
// Plus a prefetch into L2 only, 128 lines (8 KB) ahead. An L1 prefetch holds one of the
// core's few L1 miss buffers until its line arrives, which caps the misses in flight at a
// DRAM latency; an L2 prefetch waits in the larger L2 queue, so the stream can run further
// ahead. Intel Xeon VM, 6 alternating runs: all MLP projections at M = 1 21.4 -> 24.2 GB/s
// (medians), decode 50.1 -> 52.2 tok/s; T1 alone at 64 lines, or T0 + T1 at 64 / 256
// lines, were in between. On an AMD Zen 5 VM it is worth as much or a little more (the
// byte-halves kernel, DRAM-resident 896 x 4864, calls with and without it interleaved:
// without / with 0.87-0.98 in medians). On Zen 4 both hurt at M = 1 and the L2 one
// everywhere, so there Int4Problem::software_prefetch is false (int4_software_prefetch()):
// one-row tiles issue none, wider ones only the L1 prefetch.
constexpr int kL2PrefetchLines = 128;

// vpdpwssd has a 5-cycle latency: a 1-row tile needs 4 independent chains (one per
// nibble pair) to keep one in flight per cycle, a 4-row tile 2.
template <int kTile>
constexpr int int16_chains() {
  return kTile >= 8 ? 1 : kTile >= 4 ? 2 : 4;
}

inline __m512i broadcast_pair(const int16_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// A group's header line: the 16 columns' scales as fp32 and zero points as int32.
struct GroupHeader {
  __m512 scale;
  __m512i zero;
};

template <bool kBf16>
inline GroupHeader load_group_header(const PackedLine* line) {
  const __m512i header = _mm512_load_si512(line->words);
  return {load_scales<kBf16>(_mm512_castsi512_si256(header)),
          _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(header, 1))};
}

// The spec's per-block step: acc + float(sum q x_q - z sum x_q) * (scale_col * scale_block).
// The int32 difference is exact; the conversion rounds to nearest-even like the scalar spec.
inline __m512 apply_block(__m512 acc, __m512i sum, const GroupHeader& group, QuantBlockScale block) {
  const __m512 t = _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, _mm512_mullo_epi32(group.zero, _mm512_set1_epi32(block.sum))));
  return _mm512_fmadd_ps(t, _mm512_mul_ps(group.scale, _mm512_set1_ps(block.scale)), acc);
}

template <int kTile, bool kBf16>
__attribute__((target("avx512vnni"))) void int16_tile(const Int4Problem& p, int64_t block, int m0) {
  constexpr int kChains = int16_chains<kTile>();
  // Every loop over the tile's rows / chains is fully unrolled (pragmas): one left rolled
  // would index the accumulator arrays at run time and make GCC keep them in memory,
  // storing every accumulator to the stack on each line.
  __m512 acc[kTile];
#pragma GCC unroll 16
  for (int i = 0; i < kTile; ++i) acc[i] = _mm512_setzero_ps();
  const PackedLine* line = p.lines + block * p.lines_per_block;
  const int16_t* xq = p.x_q + 8 * m0;
  const QuantBlockScale* xb = p.x_blocks + m0 * p.x_blocks_stride;
  const __m512i pair_mask = _mm512_set1_epi32(0x000f000f);
  for (int g = 0; g < p.num_groups; ++g) {
    const GroupHeader group = load_group_header<kBf16>(line);
    ++line;
    const int rows = p.group_rows[g];
    for (int r0 = 0; r0 < rows; r0 += kQuantBlockLines, ++xb) {
      const int lines = rows - r0 < kQuantBlockLines ? rows - r0 : kQuantBlockLines;
      __m512i dot[kChains][kTile];
#pragma GCC unroll 16
      for (int c = 0; c < kChains; ++c)
#pragma GCC unroll 16
        for (int i = 0; i < kTile; ++i) dot[c][i] = _mm512_setzero_si512();
      for (int r = 0; r < lines; ++r, ++line, xq += p.x_q_line_stride) {
        if (kTile > 1 || p.software_prefetch)
          _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchLines), _MM_HINT_T0);
        if (p.software_prefetch) _mm_prefetch(reinterpret_cast<const char*>(line + kL2PrefetchLines), _MM_HINT_T1);
        const __m512i words = _mm512_load_si512(line->words);
        const __m512i q[4] = {_mm512_and_si512(words, pair_mask),
                              _mm512_and_si512(_mm512_srli_epi32(words, 4), pair_mask),
                              _mm512_and_si512(_mm512_srli_epi32(words, 8), pair_mask),
                              _mm512_and_si512(_mm512_srli_epi32(words, 12), pair_mask)};
#pragma GCC unroll 16
        for (int j = 0; j < 4; ++j) {
#pragma GCC unroll 16
          for (int i = 0; i < kTile; ++i) {
            dot[j % kChains][i] = _mm512_dpwssd_epi32(dot[j % kChains][i], q[j], broadcast_pair(xq + 8 * i + 2 * j));
          }
        }
      }
#pragma GCC unroll 16
      for (int i = 0; i < kTile; ++i) {
        const QuantBlockScale b = xb[i * p.x_blocks_stride];
        __m512i sum = dot[0][i];
#pragma GCC unroll 16
        for (int c = 1; c < kChains; ++c) sum = _mm512_add_epi32(sum, dot[c][i]);
        acc[i] = apply_block(acc[i], sum, group, b);
      }
    }
  }
  const int64_t n0 = block * kInt4BlockColumns;
  const int valid = static_cast<int>(p.n - n0 < kInt4BlockColumns ? p.n - n0 : kInt4BlockColumns);
  const __mmask16 store_mask = static_cast<__mmask16>((1u << valid) - 1u);
  const __m512 bias = p.bias ? _mm512_maskz_loadu_ps(store_mask, p.bias + n0) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int i = 0; i < kTile; ++i) {
    _mm512_mask_storeu_ps(p.y + (m0 + i) * static_cast<int64_t>(p.n) + n0, store_mask, _mm512_add_ps(acc[i], bias));
  }
}

template <bool kBf16>
__attribute__((target("avx512vnni"))) void int16_block(const Int4Problem& p, int64_t block) {
  int m0 = 0;
  for (; m0 + 16 <= p.m; m0 += 16) int16_tile<16, kBf16>(p, block, m0);
  for (; m0 + kInt16MaxTile <= p.m; m0 += kInt16MaxTile) int16_tile<kInt16MaxTile, kBf16>(p, block, m0);
  switch (p.m - m0) {
    case 7: int16_tile<7, kBf16>(p, block, m0); break;
    case 6: int16_tile<6, kBf16>(p, block, m0); break;
    case 5: int16_tile<5, kBf16>(p, block, m0); break;
    case 4: int16_tile<4, kBf16>(p, block, m0); break;
    case 3: int16_tile<3, kBf16>(p, block, m0); break;
    case 2: int16_tile<2, kBf16>(p, block, m0); break;
    case 1: int16_tile<1, kBf16>(p, block, m0); break;
    default: break;
  }
}

// ---- int16 activations at M = 1: byte halves on vpdpbusd --------------------------------------
// At M = 1 the word kernel above spends 11 vector instructions a 64-byte line (3 shifts and
// 4 masks to unpack, 4 vpdpwssd), which on two vector ports ran it hot at only ~1.5x the DRAM
// stream, and compute and stream do not fully overlap. Here each activation is split exactly
// as x_q = 256 hi + lo (hi = x_q >> 8 signed, lo = x_q & 0xff unsigned, as on the AMX tiles)
// and the weights become bytes: masking a line with 0x0f gives rows 0,2,4,6 of each column's
// dword, shifting by 4 first rows 1,3,5,7, the byte order vpdpbusd sums in one lane. So a
// line costs 3 unpack instructions and 4 vpdpbusd (lo x q: unsigned x signed; q x hi:
// unsigned x signed), and the int32 sums 256 sum(q hi) + sum(q lo) = sum(q x_q) are exact
// (|sum q hi| <= 128 rows x 15 x 128, x 256 < 2^26): the word kernel's bits. Measured on an
// Intel Xeon VM, 24 x 3 DRAM-resident MLP matrices at 2 threads: hot 60 -> 80 GB/s, from
// DRAM 76% -> 80% of the read floor.
template <bool kBf16>
__attribute__((target("avx512vnni"))) void int16_bytes_block(const Int4Problem& p, int64_t block) {
  __m512 acc = _mm512_setzero_ps();
  const PackedLine* line = p.lines + block * p.lines_per_block;
  const uint8_t* xa = p.x_bytes;
  const QuantBlockScale* xb = p.x_blocks;
  const __m512i low_nibbles = _mm512_set1_epi8(0x0f);
  for (int g = 0; g < p.num_groups; ++g) {
    const GroupHeader group = load_group_header<kBf16>(line);
    ++line;
    const int rows = p.group_rows[g];
    for (int r0 = 0; r0 < rows; r0 += kQuantBlockLines, ++xb) {
      const int lines = rows - r0 < kQuantBlockLines ? rows - r0 : kQuantBlockLines;
      // Four chains (lo / hi x even / odd rows): vpdpbusd's latency is 5 cycles.
      __m512i lo_even = _mm512_setzero_si512(), lo_odd = lo_even, hi_even = lo_even, hi_odd = lo_even;
      for (int r = 0; r < lines; ++r, ++line, xa += 16) {
        if (p.software_prefetch) {
          _mm_prefetch(reinterpret_cast<const char*>(line + kPrefetchLines), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(line + kL2PrefetchLines), _MM_HINT_T1);
        }
        const __m512i words = _mm512_load_si512(line->words);
        const __m512i q_even = _mm512_and_si512(words, low_nibbles);
        const __m512i q_odd = _mm512_and_si512(_mm512_srli_epi32(words, 4), low_nibbles);
        lo_even = _mm512_dpbusd_epi32(lo_even, broadcast_pair(reinterpret_cast<const int16_t*>(xa)), q_even);
        lo_odd = _mm512_dpbusd_epi32(lo_odd, broadcast_pair(reinterpret_cast<const int16_t*>(xa + 4)), q_odd);
        hi_even = _mm512_dpbusd_epi32(hi_even, q_even, broadcast_pair(reinterpret_cast<const int16_t*>(xa + 8)));
        hi_odd = _mm512_dpbusd_epi32(hi_odd, q_odd, broadcast_pair(reinterpret_cast<const int16_t*>(xa + 12)));
      }
      const __m512i sum = _mm512_add_epi32(_mm512_slli_epi32(_mm512_add_epi32(hi_even, hi_odd), 8),
                                           _mm512_add_epi32(lo_even, lo_odd));
      acc = apply_block(acc, sum, group, *xb);
    }
  }
  const int64_t n0 = block * kInt4BlockColumns;
  const int valid = static_cast<int>(p.n - n0 < kInt4BlockColumns ? p.n - n0 : kInt4BlockColumns);
  const __mmask16 store_mask = static_cast<__mmask16>((1u << valid) - 1u);
  const __m512 bias = p.bias ? _mm512_maskz_loadu_ps(store_mask, p.bias + n0) : _mm512_setzero_ps();
  _mm512_mask_storeu_ps(p.y + n0, store_mask, _mm512_add_ps(acc, bias));
}

// Rows of X per pass over one weight row (2 k-chains each: 8 accumulators).
constexpr int kDenseMaxTile = 4;

template <DenseType kType>
__m512 load_dense(const void* w, int64_t index, __mmask16 mask) {
  if constexpr (kType == DenseType::f32) return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(w) + index);
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(w) + index);
  if constexpr (kType == DenseType::bf16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  return _mm512_cvtph_ps(bits);
}

template <DenseType kType>
__m512 load_dense(const void* w, int64_t index) {
  if constexpr (kType == DenseType::f32) return _mm512_loadu_ps(static_cast<const float*>(w) + index);
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + index));
  if constexpr (kType == DenseType::bf16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
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

// ---- bf16 weights x several X rows (the lm_head in batched decode) ---------------------------
// The plain kernel reached ~1/4 of the FMA peak at M = 16: 10 loads and 4 conversion
// instructions per 8 FMAs, a horizontal reduction per (weight row, X row) every 4 X
// rows, and stalls on the weight stream. Here:
//  * a bf16 pair in a dword becomes two fp32 vectors with one instruction each (shift
//    left 16 = the even-k weights, mask the low half = the odd-k weights), so 32 weights
//    cost 1 load + 2 instructions; X comes split by k parity (DenseProblem::x_split) to
//    match, and the even and odd products go into the same accumulator;
//  * 4 weight rows x 4 X rows per pass: 16 accumulators, each weight vector feeds 4 FMAs
//    and each X vector 4, so 12 loads per 32 FMAs;
//  * software prefetch (the 4 X tiles re-read the same 4 rows from L1, so the hardware
//    prefetcher alone falls behind on the DRAM stream: 14 GB/s on a Zen 5 VM where a read
//    loop streamed 38-41), one of two schemes (DenseProblem::row_prefetch, chosen by
//    dense_row_prefetch() per CPU family):
//    - rows (Intel): each weight row's line 8 rows ahead into L1 and 32 rows ahead into L2
//      only. The L2 prefetch (Intel Xeon VM, 2 threads): lm_head GEMV 90% -> 93-96% of the
//      read floor, decode 75-76% -> 78-80%. The linear scheme streamed better there with the
//      caches flushed between calls but worse in decode (73-76%).
//    - linear (AMD and others): the AVX2 kernel's scheme, one prefetch into L1 per line the
//      step reads, kSplitLinearPrefetchBytes past it in the tile's address order (its kRows
//      rows are one contiguous run). Zen 5 VM, 2 threads, 151936 x 896, calls of the two
//      schemes interleaved, medians of the paired ratios linear / rows: 1.10-1.19 at M = 1
//      (three runs, p10 >= 1.06), 1.28 at M = 16 (two runs, p10 >= 1.24); the row scheme
//      without its T1 prefetch was no better.
// Standalone, 1 core, 68 MB of weights, M = 16: 298 ns per weight row vs 585-820 for the
// plain kernel. The math is the same: exact bf16 -> fp32 weights, fp32 FMAs; only the
// summation order differs. Each output's FMA sequence does not depend on kRows (rows
// left over at a range's end run with 1 row per pass), so results do not depend on the
// thread split.
constexpr int kSplitRows = 4;
constexpr int kSplitTile = 4;
constexpr int64_t kSplitPrefetchRows = 8;
constexpr int64_t kSplitL2PrefetchRows = 32;
constexpr int64_t kSplitLinearPrefetchBytes = 8192;  // 4 KB: worse, 16 KB: no better (Zen 5 VM)

template <int kRows, int kTile>
void dense_bf16_split_tile(const DenseProblem& p, int64_t row0, int m0) {
  __m512 acc[kRows][kTile];
  for (int r = 0; r < kRows; ++r)
    for (int i = 0; i < kTile; ++i) acc[r][i] = _mm512_setzero_ps();
  const uint16_t* w = static_cast<const uint16_t*>(p.w) + row0 * p.k;
  const float* x = p.x_split + static_cast<int64_t>(m0) * 2 * p.x_split_half;
  const uintptr_t prefetch_base = reinterpret_cast<uintptr_t>(w + kSplitPrefetchRows * p.k);
  const uintptr_t l2_prefetch_base = reinterpret_cast<uintptr_t>(w + kSplitL2PrefetchRows * p.k);
  const char* linear_ahead = reinterpret_cast<const char*>(w) + kSplitLinearPrefetchBytes;
  const bool row_prefetch = p.row_prefetch;
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (int64_t k = 0; k < p.k; k += 32, linear_ahead += 64 * kRows) {
    const int64_t left = p.k - k;
    const __mmask32 mask = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1ull << left) - 1u);
    __m512 w_even[kRows], w_odd[kRows];
    for (int r = 0; r < kRows; ++r) {
      // Never faults, even past the end of the matrix.
      if (row_prefetch) {
        _mm_prefetch(reinterpret_cast<const char*>(prefetch_base + 2 * static_cast<uintptr_t>(r * p.k + k)),
                     _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(l2_prefetch_base + 2 * static_cast<uintptr_t>(r * p.k + k)),
                     _MM_HINT_T1);
      } else {
        _mm_prefetch(linear_ahead + 64 * r, _MM_HINT_T0);
      }
      const __m512i bits = _mm512_maskz_loadu_epi16(mask, w + r * p.k + k);  // zeros past K
      w_even[r] = _mm512_castsi512_ps(_mm512_slli_epi32(bits, 16));
      w_odd[r] = _mm512_castsi512_ps(_mm512_and_si512(bits, high_half));
    }
    const int64_t pair = k / 2;  // x is zero-padded past K / 2, so whole vectors are safe
    for (int i = 0; i < kTile; ++i) {
      const float* xi = x + i * 2 * p.x_split_half;
      const __m512 x_even = _mm512_loadu_ps(xi + pair);
      const __m512 x_odd = _mm512_loadu_ps(xi + p.x_split_half + pair);
      for (int r = 0; r < kRows; ++r) {
        acc[r][i] = _mm512_fmadd_ps(w_even[r], x_even, acc[r][i]);
        acc[r][i] = _mm512_fmadd_ps(w_odd[r], x_odd, acc[r][i]);
      }
    }
  }
  // Fully unrolled like the loops above: a loop left rolled here would index acc[][] at
  // run time, forcing GCC to keep the whole array in memory and store all 16
  // accumulators to the stack on every k step (that cost ~30%).
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
    const float bias = p.bias ? p.bias[row0 + r] : 0.0f;
#pragma GCC unroll 4
    for (int i = 0; i < kTile; ++i)
      p.y[static_cast<int64_t>(m0 + i) * p.n + row0 + r] = _mm512_reduce_add_ps(acc[r][i]) + bias;
  }
}

template <int kRows>
void dense_bf16_split_group(const DenseProblem& p, int64_t row0) {
  int m0 = 0;
  for (; m0 + kSplitTile <= p.m; m0 += kSplitTile) dense_bf16_split_tile<kRows, kSplitTile>(p, row0, m0);
  switch (p.m - m0) {
    case 3: dense_bf16_split_tile<kRows, 3>(p, row0, m0); break;
    case 2: dense_bf16_split_tile<kRows, 2>(p, row0, m0); break;
    case 1: dense_bf16_split_tile<kRows, 1>(p, row0, m0); break;
    default: break;
  }
}

void dense_bf16_split_rows(const DenseProblem& p, int64_t row_begin, int64_t row_end) {
  int64_t row = row_begin;
  for (; row + kSplitRows <= row_end; row += kSplitRows) dense_bf16_split_group<kSplitRows>(p, row);
  for (; row < row_end; ++row) dense_bf16_split_group<1>(p, row);
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
  // int16 activations without VNNI: the AVX2 vpmaddwd kernel (same results bit for bit).
  if (p.x_q != nullptr) return int4_blocks_avx2(p, block_begin, block_end);
  for (int64_t block = block_begin; block < block_end; ++block) {
    if (p.scales_bf16)
      int4_block<true>(p, block);
    else
      int4_block<false>(p, block);
  }
}

bool avx512_vnni_supported() { return __builtin_cpu_supports("avx512vnni"); }

// x_q's line order (rows 0,4,1,5,2,6,3,7 as int16) -> per line the 8 low bytes in the row
// order 0,2,4,6,1,3,5,7, then the 8 high bytes: one byte shuffle per 128-bit lane.
void int16_to_byte_halves_avx512(const int16_t* x_q, int64_t lines, uint8_t* out) {
  const __m512i order = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 8, 2, 10, 4, 12, 6, 14, 1, 9, 3, 11, 5, 13, 7, 15));
  for (int64_t l = 0; l < lines; l += 4) {
    const int64_t left = lines - l < 4 ? lines - l : 4;
    const __mmask64 mask = left == 4 ? ~__mmask64{0} : (__mmask64{1} << (16 * left)) - 1;
    const __m512i v = _mm512_maskz_loadu_epi8(mask, x_q + 8 * l);
    _mm512_mask_storeu_epi8(out + 16 * l, mask, _mm512_shuffle_epi8(v, order));
  }
}

// quantize_block_scalar, 8 values (one line) per step. The rounding is the same: the
// double product rounds once, then roundscale rounds it to the nearest even integer
// (the scalar code's +-1.5 * 2^52 does exactly that); no add follows the multiply, so
// there is nothing for the compiler to contract into an FMA.
void quantize_block_avx512(const float* values, int rows, int16_t* out, int64_t line_stride, QuantBlockScale* block) {
  __m512i amax_bits = _mm512_setzero_si512();
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  int j = 0;
  for (; j + 16 <= rows; j += 16)
    amax_bits =
        _mm512_max_epu32(amax_bits, _mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(values + j)), abs_mask));
  for (; j < rows; j += 8)
    amax_bits = _mm512_max_epu32(
        amax_bits, _mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(0xff, values + j)), abs_mask));
  const uint32_t bits = static_cast<uint32_t>(_mm512_reduce_max_epu32(amax_bits));
  const bool finite = bits < 0x7f800000u;
  float amax;
  __builtin_memcpy(&amax, &bits, sizeof amax);
  if (!finite) {
    for (int l = 0; l < rows / 8; ++l)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + l * line_stride), _mm_setzero_si128());
    *block = {__builtin_nanf(""), 0};
    return;
  }
  const float scale = amax / 32767.0f;
  const double inverse = scale > 0.0f ? 1.0 / static_cast<double>(scale) : 0.0;
  const __m512d inv = _mm512_set1_pd(inverse), hi = _mm512_set1_pd(32767.0), lo = _mm512_set1_pd(-32767.0);
  const __m256i line_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);  // source of each output slot
  __m256i sum = _mm256_setzero_si256();
  for (int l = 0; l < rows / 8; ++l) {
    const __m512d scaled = _mm512_roundscale_pd(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(values + 8 * l)), inv),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256i q = _mm512_cvtpd_epi32(_mm512_min_pd(_mm512_max_pd(scaled, lo), hi));  // integral: exact
    sum = _mm256_add_epi32(sum, q);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + l * line_stride),
                     _mm256_cvtepi32_epi16(_mm256_permutevar8x32_epi32(q, line_order)));
  }
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
  *block = {scale, _mm_cvtsi128_si32(s4)};
}

void int4_blocks_avx512_vnni(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
  for (int64_t block = block_begin; block < block_end; ++block) {
    if (p.x_bytes != nullptr && p.scales_bf16)
      int16_bytes_block<true>(p, block);
    else if (p.x_bytes != nullptr)
      int16_bytes_block<false>(p, block);
    else if (p.scales_bf16)
      int16_block<true>(p, block);
    else
      int16_block<false>(p, block);
  }
}

// 4 zmm = 4 cache lines per step, into 4 independent registers.
uint64_t read_stream_avx512(const void* data, size_t bytes, size_t prefetch_bytes) {
  const char* p = static_cast<const char*>(data);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  size_t i = 0;
  for (; i + 256 <= bytes; i += 256) {
    if (prefetch_bytes != 0) {  // never faults, even past the end
      for (int line = 0; line < 4; ++line) _mm_prefetch(p + i + prefetch_bytes + 64 * line, _MM_HINT_T0);
    }
    a0 = _mm512_xor_si512(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_loadu_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_loadu_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_loadu_si512(p + i + 192));
  }
  const __m512i all = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  const __m256i h8 = _mm256_xor_si256(_mm512_castsi512_si256(all), _mm512_extracti64x4_epi64(all, 1));
  const __m128i h4 = _mm_xor_si128(_mm256_castsi256_si128(h8), _mm256_extracti128_si256(h8, 1));
  uint64_t out = static_cast<uint64_t>(_mm_cvtsi128_si64(h4)) ^ static_cast<uint64_t>(_mm_extract_epi64(h4, 1));
  for (; i + 8 <= bytes; i += 8) {
    uint64_t word;
    __builtin_memcpy(&word, p + i, sizeof word);
    out ^= word;
  }
  return out;
}

namespace {

// math::exp_float, 16 lanes, op for op (see runtime/model/math.hpp): the same bits.
inline __m512 exp_float16(__m512 x) {
  using namespace math::exp_coefficients;
  const __m512 top = _mm512_set1_ps(kOverflowAbove), bottom = _mm512_set1_ps(kUnderflowBelow);
  const __mmask16 in_range = _mm512_cmp_ps_mask(x, top, _CMP_LE_OQ);  // false for NaN
  const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __mmask16 underflow = _mm512_cmp_ps_mask(x, bottom, _CMP_LT_OQ);
  // Out-of-range lanes are replaced below; clamping them keeps the integer step defined.
  const __m512 xc = _mm512_max_ps(_mm512_min_ps(x, top), bottom);
  const __m512 magic = _mm512_set1_ps(kRoundMagic);
  const __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(kLog2e)), magic), magic);
  const __m512 r = _mm512_sub_ps(_mm512_sub_ps(xc, _mm512_mul_ps(n, _mm512_set1_ps(kLn2High))),
                                 _mm512_mul_ps(n, _mm512_set1_ps(kLn2Low)));
  __m512 p = _mm512_set1_ps(kC7);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kC6));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kC5));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kC4));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kC3));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kC2));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kC1));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kC0));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  __m512 out = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
  out = _mm512_mask_blend_ps(underflow, out, _mm512_setzero_ps());
  out = _mm512_mask_blend_ps(static_cast<__mmask16>(~in_range), out, _mm512_set1_ps(__builtin_huge_valf()));
  return _mm512_mask_blend_ps(is_nan, out, x);
}

inline __mmask16 tail_mask(size_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << left) - 1u);
}

// math::silu, 16 lanes: x / (1 + exp_float(-x)).
inline __m512 silu16(__m512 x) {
  const __m512 minus_x =
      _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_float16(minus_x)));
}

}  // namespace

void exp_shifted_avx512(float* values, size_t count, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 mask = tail_mask(count - i);
    const __m512 v = _mm512_maskz_loadu_ps(mask, values + i);
    _mm512_mask_storeu_ps(values + i, mask, exp_float16(_mm512_sub_ps(v, s)));
  }
}

float max_value_avx512(const float* values, size_t count) {
  __m512 best = _mm512_set1_ps(values[0]);
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 mask = tail_mask(count - i);  // lanes past the end keep best
    best = _mm512_mask_max_ps(best, mask, best, _mm512_maskz_loadu_ps(mask, values + i));
  }
  return _mm512_reduce_max_ps(best);
}

void divide_avx512(float* values, size_t count, float divisor) {
  const __m512 d = _mm512_set1_ps(divisor);
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 mask = tail_mask(count - i);
    _mm512_mask_storeu_ps(values + i, mask, _mm512_div_ps(_mm512_maskz_loadu_ps(mask, values + i), d));
  }
}

void swiglu_avx512(const float* gate, const float* up, float* out, size_t count) {
  for (size_t i = 0; i < count; i += 16) {
    const __mmask16 mask = tail_mask(count - i);
    const __m512 g = _mm512_maskz_loadu_ps(mask, gate + i), u = _mm512_maskz_loadu_ps(mask, up + i);
    _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(silu16(g), u));
  }
}

void gated_rms_row_avx512(float* o, float inverse_rms, const float* weight, const float* z, int count) {
  const __m512 inv = _mm512_set1_ps(inverse_rms);
  for (int i = 0; i < count; i += 16) {
    const __mmask16 mask = tail_mask(static_cast<size_t>(count - i));
    const __m512 scaled = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, o + i), inv),
                                        _mm512_maskz_loadu_ps(mask, weight + i));
    _mm512_mask_storeu_ps(o + i, mask, _mm512_mul_ps(scaled, silu16(_mm512_maskz_loadu_ps(mask, z + i))));
  }
}

void conv1d_silu_row_avx512(const float* const* window, int kernel, const float* taps, int64_t tap_stride,
                            const float* bias, int count, float* out) {
  for (int i = 0; i < count; i += 16) {
    const __mmask16 mask = tail_mask(static_cast<size_t>(count - i));
    __m512 acc = bias ? _mm512_maskz_loadu_ps(mask, bias + i) : _mm512_setzero_ps();
    for (int j = 0; j < kernel; ++j)
      acc = _mm512_add_ps(acc, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, taps + j * tap_stride + i),
                                             _mm512_maskz_loadu_ps(mask, window[j] + i)));
    _mm512_mask_storeu_ps(out + i, mask, silu16(acc));
  }
}

void dense_rows_avx512(const DenseProblem& p, int64_t row_begin, int64_t row_end) {
  if (p.x_split != nullptr) return dense_bf16_split_rows(p, row_begin, row_end);
  switch (p.type) {
    case DenseType::bf16: dense_rows<DenseType::bf16>(p, row_begin, row_end); break;
    case DenseType::f16: dense_rows<DenseType::f16>(p, row_begin, row_end); break;
    case DenseType::f32: dense_rows<DenseType::f32>(p, row_begin, row_end); break;
  }
}

namespace {

// ---- attention scores: two query heads per zmm ---------------------------------------------
// The spec (math::lane_dot) sums each score in 8 lanes, lane l over dims d = l mod 8 in d
// order, then ((0+4)+(1+5)) + ((2+6)+(3+7)). Two keys (or two dim-halves of a key) in one
// zmm would reorder that; two query heads of the GQA group do not: lanes 0-7 are head a's
// 8 lanes, lanes 8-15 head b's, for the same key, whose 8 floats are one broadcast load.
// Per key and 8 dims that is 1 load, 1 multiply and 1 add for two heads, where the AVX2
// loop spends a load, a multiply and an add per head (mul then add, never fused: the
// spec rounds the product). Zen 5 VM, 4096 keys in runs of 256, 1 thread: 1.15x the AVX2
// loop at 7 heads of 64 (Qwen2.5-0.5B: the 7th head stays on AVX2), 1.29-1.36x at 4 or 6
// heads of 256 (Qwen3.5).
//
// 8 keys per pass (8 accumulators), then the spec's reduction for all 16 scores at once on
// 128-bit quarters -- acc[i] = [a lo | a hi | b lo | b hi] for key i:
//   1. halves: quarter 0 + 1 and 2 + 3 of each accumulator (lane l + lane l+4), pairing
//      keys (0,1), (2,3), ...: [a_k | b_k | a_k+1 | b_k+1] per pair;
//   2. and 3. two within-quarter pair sums (shuffle + add: AVX-512 has no hadd) give
//      ((0+4)+(1+5)) and ((2+6)+(3+7)), then their sum, per key and head;
//   4. the scale (one multiply, as in the spec) and a permutation to [a's 8 | b's 8].
inline __m512 halves_of_pair(__m512 first, __m512 second) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(first, second, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(first, second, _MM_SHUFFLE(3, 1, 3, 1)));
}
inline __m512 pair_sums(__m512 x, __m512 y) {  // per quarter [x0+x1, x2+x3, y0+y1, y2+y3]
  return _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
}

void scores_of_8_for_2_heads(const float* query_a, const float* query_b, const float* keys, int64_t key_stride,
                             int head_dim, __m512 scale, float* scores_a, float* scores_b) {
  __m512 acc[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_ps();
  for (int d = 0; d < head_dim; d += 8) {
    const __m512 q = _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(reinterpret_cast<const double*>(query_a + d))),
                           _mm256_loadu_pd(reinterpret_cast<const double*>(query_b + d)), 1));
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      // 256-bit moves as f64x4 (AVX-512F; the f32x8 forms need DQ): the same bits.
      const __m512 key = _mm512_castpd_ps(
          _mm512_broadcast_f64x4(_mm256_loadu_pd(reinterpret_cast<const double*>(keys + i * key_stride + d))));
      acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(q, key));
    }
  }
  // After step 1 the quarters are [a_k, b_k, a_k+1, b_k+1]; step 2 pairs keys (k, k+2),
  // step 3 keys (k, k+4): quarter 0 of the result holds a's scores of keys 0 2 4 6, quarter
  // 1 b's of 0 2 4 6, quarter 2 a's of 1 3 5 7, quarter 3 b's of 1 3 5 7.
  const __m512 low = pair_sums(halves_of_pair(acc[0], acc[1]), halves_of_pair(acc[2], acc[3]));
  const __m512 high = pair_sums(halves_of_pair(acc[4], acc[5]), halves_of_pair(acc[6], acc[7]));
  const __m512 dots = _mm512_mul_ps(pair_sums(low, high), scale);
  const __m512 ordered =
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15), dots);
  _mm256_storeu_ps(scores_a, _mm512_castps512_ps256(ordered));
  _mm256_storeu_ps(scores_b, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(ordered), 1)));
}

// multiply_accumulate_avx2's tiles with zmm: 4 rows x 4 zmm (64 columns) = 16 accumulators
// + 4 B vectors + a broadcast + a product of the 32 registers.
template <int kRows, int kVectors, bool kSubtract>
void multiply_accumulate_tile(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
                              int inner) {
  __m512 acc[kRows][kVectors];
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) acc[i][v] = _mm512_loadu_ps(c + i * ldc + 16 * v);
  for (int x = 0; x < inner; ++x) {
    __m512 row[kVectors];
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) row[v] = _mm512_loadu_ps(b + x * ldb + 16 * v);
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m512 scalar = _mm512_set1_ps(a[i * lda + x]);
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v)
        acc[i][v] = kSubtract ? _mm512_fnmadd_ps(scalar, row[v], acc[i][v]) : _mm512_fmadd_ps(scalar, row[v], acc[i][v]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) _mm512_storeu_ps(c + i * ldc + 16 * v, acc[i][v]);
}

template <int kVectors, bool kSubtract>
void multiply_accumulate_columns(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
                                 int rows, int inner) {
  int i = 0;
  for (; i + 4 <= rows; i += 4)
    multiply_accumulate_tile<4, kVectors, kSubtract>(c + i * ldc, ldc, a + i * lda, lda, b, ldb, inner);
  // The last 1-3 rows in one pass over B: one row at a time, attention's 7 query heads a
  // K/V head on Qwen2.5 re-read the values 3 more times. Zen 5 VM, 4096 positions: 1.45x
  // at 7 rows x 64 columns, 1.49x at 6 x 256, 1.55x at 3 x 128 (AVX2 loop: 1.74-1.86x).
  switch (rows - i) {
    case 3: multiply_accumulate_tile<3, kVectors, kSubtract>(c + i * ldc, ldc, a + i * lda, lda, b, ldb, inner); break;
    case 2: multiply_accumulate_tile<2, kVectors, kSubtract>(c + i * ldc, ldc, a + i * lda, lda, b, ldb, inner); break;
    case 1: multiply_accumulate_tile<1, kVectors, kSubtract>(c + i * ldc, ldc, a + i * lda, lda, b, ldb, inner); break;
    default: break;
  }
}

template <bool kSubtract>
void multiply_accumulate_rows(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int rows,
                              int cols, int inner) {
  for (int c0 = 0; c0 < cols; c0 += 64) {
    switch ((cols - c0 < 64 ? cols - c0 : 64) / 16) {
      case 4: multiply_accumulate_columns<4, kSubtract>(c + c0, ldc, a, lda, b + c0, ldb, rows, inner); break;
      case 3: multiply_accumulate_columns<3, kSubtract>(c + c0, ldc, a, lda, b + c0, ldb, rows, inner); break;
      case 2: multiply_accumulate_columns<2, kSubtract>(c + c0, ldc, a, lda, b + c0, ldb, rows, inner); break;
      default: multiply_accumulate_columns<1, kSubtract>(c + c0, ldc, a, lda, b + c0, ldb, rows, inner); break;
    }
  }
}

}  // namespace

void attention_scores_avx512(const float* queries, int heads, int head_dim, const float* keys, int64_t key_stride,
                             int count, float scale, float* scores, int64_t score_stride) {
  const __m512 scale16 = _mm512_set1_ps(scale);
  const int whole = count / 8 * 8;
  // Head pairs inside the run of 8 keys, as in the AVX2 loop: the 8 key rows stay in L1.
  for (int j = 0; j < whole; j += 8)
    for (int h = 0; h + 2 <= heads; h += 2)
      scores_of_8_for_2_heads(queries + static_cast<int64_t>(h) * head_dim,
                              queries + static_cast<int64_t>(h + 1) * head_dim, keys + j * key_stride, key_stride,
                              head_dim, scale16, scores + h * score_stride + j, scores + (h + 1) * score_stride + j);
  if (heads % 2 == 1) {
    const int h = heads - 1;
    attention_scores_avx2(queries + static_cast<int64_t>(h) * head_dim, 1, head_dim, keys, key_stride, whole, scale,
                          scores + h * score_stride, score_stride);
  }
  if (whole < count)
    attention_scores_avx2(queries, heads, head_dim, keys + whole * key_stride, key_stride, count - whole, scale,
                          scores + whole, score_stride);
}

// cols a multiple of 16 (the caller checks).
void multiply_accumulate_avx512(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
                                int rows, int cols, int inner, bool subtract) {
  if (subtract)
    multiply_accumulate_rows<true>(c, ldc, a, lda, b, ldb, rows, cols, inner);
  else
    multiply_accumulate_rows<false>(c, ldc, a, lda, b, ldb, rows, cols, inner);
}

}  // namespace quanteval::runtime::detail

#else  // built without AVX-512 support (non-x86 or a compiler without the flags)

namespace quanteval::runtime::detail {
bool avx512_kernels_compiled() { return false; }
bool avx512_vnni_supported() { return false; }
void quantize_block_avx512(const float*, int, int16_t*, int64_t, QuantBlockScale*) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
void int16_to_byte_halves_avx512(const int16_t*, int64_t, uint8_t*) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
void int4_blocks_avx512_vnni(const Int4Problem&, int64_t, int64_t) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
void int4_blocks_avx512(const Int4Problem&, int64_t, int64_t) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
void dense_rows_avx512(const DenseProblem&, int64_t, int64_t) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
uint64_t read_stream_avx512(const void*, size_t, size_t) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
void attention_scores_avx512(const float*, int, int, const float*, int64_t, int, float, float*, int64_t) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
void multiply_accumulate_avx512(float*, int64_t, const float*, int64_t, const float*, int64_t, int, int, int, bool) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
float max_value_avx512(const float*, size_t) { QE_FAIL("AVX-512 kernels were not compiled into this build"); }
void divide_avx512(float*, size_t, float) { QE_FAIL("AVX-512 kernels were not compiled into this build"); }
void exp_shifted_avx512(float*, size_t, float) { QE_FAIL("AVX-512 kernels were not compiled into this build"); }
void swiglu_avx512(const float*, const float*, float*, size_t) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
void conv1d_silu_row_avx512(const float* const*, int, const float*, int64_t, const float*, int, float*) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
void gated_rms_row_avx512(float*, float, const float*, const float*, int) {
  QE_FAIL("AVX-512 kernels were not compiled into this build");
}
}  // namespace quanteval::runtime::detail

#endif
