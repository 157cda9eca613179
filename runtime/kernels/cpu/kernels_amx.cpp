// AMX-INT8 kernel for the int16-activation INT4 product (Intel Sapphire Rapids and
// later; compiled with -mamx-tile -mamx-int8 and AVX-512, see kernels.cmake; only called
// after amx_enabled()). It computes int4_blocks_int16_scalar's arithmetic bit for bit:
//
//   every int16 activation splits exactly as x_q = 256 * hi + lo (hi = x_q >> 8 signed,
//   lo = x_q & 0xff unsigned), and every weight as the signed byte q - zero (|q - zero|
//   <= 16), so for one activation block (up to 128 rows)
//     t = sum (q - zero) x_q = 256 * sum (q - zero) hi + sum (q - zero) lo
//   -- tdpbssd gives the first sum, tdpbusd the second, both exact in int32 (|t| < 2^26),
//   equal to the spec's dot - zero * sum_b -- and the float part (fma(float(t),
//   scale_c * scale_b, acc) in block order, then + bias) is the same instructions.
//
// One tile product is 16 rows x 16 columns x 64 k (a k-step: 8 lines of one group); an
// activation block is one or two k-steps summed in the same int32 tiles, so the scales
// apply between blocks and never inside one. The activations come pre-split per k-step
// (amx_split_row); the weights of a column block are unpacked to signed bytes once per
// row chunk into a scratch that stays in L1 / L2 while every 16-row tile of the chunk
// streams through it.
// No standard-library templates are used in this file (see kernels_avx512.cpp).
#include <cstdlib>
#include <new>

#include "runtime/base/check.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"

#if defined(__AMX_TILE__) && defined(__AMX_INT8__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__linux__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace quanteval::runtime::detail {

bool amx_int8_usable() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool tile = (edx >> 24) & 1u, int8 = (edx >> 25) & 1u;
  if (!tile || !int8) return false;
  // XCR0 bits 17 / 18: the OS saves the tile config and tile data on a context switch.
  unsigned xcr0_low = 0, xcr0_high = 0;
  __asm__("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  if ((xcr0_low & 0x60000u) != 0x60000u) return false;
  // Linux (>= 5.16) hands out the 8 KB of tile state per process on request:
  // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA. Without it the first tile instruction
  // faults. The permission covers every thread of the process.
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

void amx_split_row(const int16_t* x_q, const int* group_rows, int num_groups, uint8_t* lo, int8_t* hi,
                   int64_t step_stride) {
  // Within a line x_q holds rows 0,4,1,5,2,6,3,7 (see Int4Problem); the tiles want rows
  // 0,2,4,6,1,3,5,7 (the byte order of a masked weight word, see unpack_weights):
  // the x_q slots 0,4,1,5,2,6,3,7. One vpshufb per line gathers the low bytes of those
  // slots into its lane's first 8 bytes and the high bytes into the last 8; one vpermq
  // then puts the 4 lines' low halves in the lower 32 bytes and the high halves above.
  const __m512i bytes = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 8, 2, 10, 4, 12, 6, 14, 1, 9, 3, 11, 5, 13, 7, 15));
  const __m512i halves = _mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7);
  for (int g = 0; g < num_groups; ++g) {
    for (int r0 = 0; r0 < group_rows[g]; r0 += kAmxStepLines, lo += step_stride, hi += step_stride) {
      const int lines = group_rows[g] - r0 < kAmxStepLines ? group_rows[g] - r0 : kAmxStepLines;
      for (int half = 0; half < 2; ++half) {
        // 4 lines = 32 int16 per zmm; lines past the step's end load as zeros.
        const int have = lines - 4 * half;
        const __mmask32 mask = have >= 4 ? 0xffffffffu : have <= 0 ? 0u : (1u << (8 * have)) - 1u;
        const __m512i v = _mm512_maskz_loadu_epi16(mask, x_q);
        x_q += have >= 4 ? 32 : have > 0 ? 8 * have : 0;
        const __m512i split = _mm512_permutexvar_epi64(halves, _mm512_shuffle_epi8(v, bytes));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + 32 * half), _mm512_castsi512_si256(split));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + 32 * half), _mm512_extracti64x4_epi64(split, 1));
      }
    }
  }
}

namespace {

constexpr int kTileRows = 16;
constexpr int kTileBytes = 64;  // per tile row: 64 int8 of A, 16 int32 of C, 16 x 4 int8 of B
constexpr int kStepTileBytes = kTileRows * kTileBytes;  // one tile: 16 rows x one k-step

// ldtilecfg's 64-byte operand (palette 1): bytes per row and rows of each tile register.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

// Tile registers: the activation halves of one 16-row tile for one block, the block's
// weights, and two pairs of int32 sums (even and odd blocks, see amx_tile). Macros, not constants: the tile intrinsics paste the
// register number into their asm text, so it must be a literal after expansion.
#define QE_TILE_HI 0
#define QE_TILE_LO 1
#define QE_TILE_WEIGHTS 2
#define QE_TILE_SUM_HI 3
#define QE_TILE_SUM_LO 4
#define QE_TILE_SUM_HI2 5
#define QE_TILE_SUM_LO2 6

struct AlignedBuffer {
  void* data = nullptr;
  explicit AlignedBuffer(size_t bytes) : data(std::aligned_alloc(64, (bytes + 63) / 64 * 64)) {
    if (data == nullptr) throw std::bad_alloc();
  }
  ~AlignedBuffer() { std::free(data); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

// One column block's weights as tdpb*d's B operand, per k-step (8 lines = 64 rows of one
// group): tile row 2l holds, per column, the bytes q - zero of rows 0,2,4,6 of line l (the
// low nibble of each byte of the word), tile row 2l + 1 those of rows 1,3,5,7 (the high
// nibbles); rows past a short step's lines are zero. scales[s] = the column scales of step
// s's group (fp32 [16]).
void unpack_weights(const Int4Problem& p, int64_t block, int8_t* tiles, float* scales) {
  const PackedLine* line = p.lines + block * p.lines_per_block;
  const __m512i nibbles = _mm512_set1_epi8(0x0f);
  const __m512i byte_copies = _mm512_set1_epi32(0x01010101);
  for (int g = 0; g < p.num_groups; ++g) {
    const __m512i header = _mm512_load_si512(line->words);
    const __m256i scale_bits = _mm512_castsi512_si256(header);
    const __m512 scale = p.scales_bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(scale_bits), 16))
                                       : _mm512_cvtph_ps(scale_bits);
    const __m512i zero =
        _mm512_mullo_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(header, 1)), byte_copies);
    ++line;
    for (int r0 = 0; r0 < p.group_rows[g]; r0 += kAmxStepLines, tiles += kStepTileBytes, scales += 16) {
      const int lines = p.group_rows[g] - r0 < kAmxStepLines ? p.group_rows[g] - r0 : kAmxStepLines;
      _mm512_store_ps(scales, scale);
      int l = 0;
      for (; l < lines; ++l, ++line) {
        // The stream is read once per row chunk, so at small M this loop is the DRAM stream:
        // the VNNI kernels' prefetch distances (kernels_avx512.cpp), 2 KB into L1, 8 KB into L2.
        _mm_prefetch(reinterpret_cast<const char*>(line + 32), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(line + 128), _MM_HINT_T1);
        const __m512i words = _mm512_load_si512(line->words);
        _mm512_store_si512(tiles + 2 * l * kTileBytes, _mm512_sub_epi8(_mm512_and_si512(words, nibbles), zero));
        _mm512_store_si512(tiles + (2 * l + 1) * kTileBytes,
                           _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi32(words, 4), nibbles), zero));
      }
      for (; l < kAmxStepLines; ++l) {
        _mm512_store_si512(tiles + 2 * l * kTileBytes, _mm512_setzero_si512());
        _mm512_store_si512(tiles + (2 * l + 1) * kTileBytes, _mm512_setzero_si512());
      }
    }
  }
}

// acc[r] += float(256 * sum_hi + sum_lo) * (scale_c * scale_b) for one block's int32 sums
// (sums = [hi rows 16][16], then [lo rows 16][16]); xb = the tile's row 0 scale of that block.
inline void apply_block(__m512 (&acc)[kTileRows], const int32_t* sums, const float* scales,
                        const QuantBlockScale* xb, int64_t xb_stride) {
  const __m512 scale = _mm512_load_ps(scales);
#pragma GCC unroll 16
  for (int r = 0; r < kTileRows; ++r) {
    const __m512i t = _mm512_add_epi32(_mm512_slli_epi32(_mm512_load_si512(sums + 16 * r), 8),
                                       _mm512_load_si512(sums + kTileRows * 16 + 16 * r));
    const __m512 s = _mm512_mul_ps(scale, _mm512_set1_ps(xb[r * xb_stride].scale));
    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), s, acc[r]);
  }
}

// Activation block b's products (its k-steps first_step[b] .. first_step[b + 1] - 1) into
// the tile pair (SUM_HI, SUM_LO), stored to `sums`.
#define QE_AMX_BLOCK(SUM_HI, SUM_LO, b, sums)                                     \
  do {                                                                            \
    _tile_zero(SUM_HI);                                                           \
    _tile_zero(SUM_LO);                                                           \
    for (int64_t step = first_step[b]; step < first_step[(b) + 1]; ++step) {      \
      _tile_loadd(QE_TILE_HI, hi + step * kStepTileBytes, kTileBytes);            \
      _tile_loadd(QE_TILE_LO, lo + step * kStepTileBytes, kTileBytes);            \
      _tile_loadd(QE_TILE_WEIGHTS, tiles + step * kStepTileBytes, kTileBytes);    \
      _tile_dpbssd(SUM_HI, QE_TILE_HI, QE_TILE_WEIGHTS);                          \
      _tile_dpbusd(SUM_LO, QE_TILE_LO, QE_TILE_WEIGHTS);                          \
    }                                                                             \
    _tile_stored(SUM_HI, (sums), kTileBytes);                                     \
    _tile_stored(SUM_LO, (sums) + kTileRows * 16, kTileBytes);                    \
  } while (false)

// Tile `tile` (rows 16 tile .. 16 tile + 15 of the padded activations) x one column block.
// Software-pipelined by one block: block b's products go to one of two tile pairs and
// sum buffers while block b - 1's sums are applied. A tile store reaches the vector loads
// only through memory once it retires; applying in the same block stalled each block on
// that round trip (~340 cycles a block, measured, against ~40 of work).
void amx_tile(const Int4Problem& p, int64_t block, int tile, const int8_t* tiles, const float* scales,
              const int64_t* first_step, int32_t* sums /* [2 buffers][2][16][16] */) {
  __m512 acc[kTileRows];
#pragma GCC unroll 16
  for (int r = 0; r < kTileRows; ++r) acc[r] = _mm512_setzero_ps();
  const int8_t* hi = p.a_hi + tile * p.amx_steps * kStepTileBytes;
  const uint8_t* lo = p.a_lo + tile * p.amx_steps * kStepTileBytes;
  const QuantBlockScale* xb = p.x_blocks + tile * kTileRows * p.x_blocks_stride;
  int32_t* const even = sums;
  int32_t* const odd = sums + 2 * kTileRows * 16;
  const int64_t blocks = p.quant_blocks;
  int64_t b = 0;
  QE_AMX_BLOCK(QE_TILE_SUM_HI, QE_TILE_SUM_LO, b, even);
  for (++b; b + 1 < blocks; b += 2) {
    QE_AMX_BLOCK(QE_TILE_SUM_HI2, QE_TILE_SUM_LO2, b, odd);
    apply_block(acc, even, scales + 16 * first_step[b - 1], xb + (b - 1), p.x_blocks_stride);
    QE_AMX_BLOCK(QE_TILE_SUM_HI, QE_TILE_SUM_LO, b + 1, even);
    apply_block(acc, odd, scales + 16 * first_step[b], xb + b, p.x_blocks_stride);
  }
  if (b < blocks) {
    QE_AMX_BLOCK(QE_TILE_SUM_HI2, QE_TILE_SUM_LO2, b, odd);
    apply_block(acc, even, scales + 16 * first_step[b - 1], xb + (b - 1), p.x_blocks_stride);
    apply_block(acc, odd, scales + 16 * first_step[b], xb + b, p.x_blocks_stride);
  } else {
    apply_block(acc, even, scales + 16 * first_step[b - 1], xb + (b - 1), p.x_blocks_stride);
  }
  const int64_t n0 = block * kInt4BlockColumns;
  const int valid = static_cast<int>(p.n - n0 < kInt4BlockColumns ? p.n - n0 : kInt4BlockColumns);
  const __mmask16 store_mask = static_cast<__mmask16>((1u << valid) - 1u);
  const __m512 bias = p.bias ? _mm512_maskz_loadu_ps(store_mask, p.bias + n0) : _mm512_setzero_ps();
  const int m0 = tile * kTileRows;
  const int rows = p.m - m0 < kTileRows ? p.m - m0 : kTileRows;
#pragma GCC unroll 16
  for (int r = 0; r < kTileRows; ++r) {
    if (r < rows)
      _mm512_mask_storeu_ps(p.y + (m0 + r) * static_cast<int64_t>(p.n) + n0, store_mask, _mm512_add_ps(acc[r], bias));
  }
}

#undef QE_AMX_BLOCK

}  // namespace

void int4_blocks_amx(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
  QE_CHECK(p.a_hi != nullptr && p.a_lo != nullptr && p.amx_steps > 0, "AMX kernel called without split activations");
  // Everything that can throw comes before the tile configuration, which then always ends
  // in _tile_release (so a thread never keeps the 8 KB of tile state in use).
  AlignedBuffer tiles(static_cast<size_t>(p.amx_steps) * kStepTileBytes);
  AlignedBuffer scales(static_cast<size_t>(p.amx_steps) * 16 * sizeof(float));
  // Each activation block's first k-step (a block of n lines is ceil(n / 8) steps).
  AlignedBuffer steps(static_cast<size_t>(p.quant_blocks + 1) * sizeof(int64_t));
  auto* first_step = static_cast<int64_t*>(steps.data);
  int64_t b = 0, step = 0;
  for (int g = 0; g < p.num_groups; ++g) {
    for (int r0 = 0; r0 < p.group_rows[g]; r0 += kQuantBlockLines, ++b) {
      first_step[b] = step;
      const int lines = p.group_rows[g] - r0 < kQuantBlockLines ? p.group_rows[g] - r0 : kQuantBlockLines;
      step += (lines + kAmxStepLines - 1) / kAmxStepLines;
    }
  }
  QE_CHECK(b == p.quant_blocks && step == p.amx_steps, "AMX step count out of step with the packed groups");
  first_step[b] = step;
  alignas(64) int32_t sums[2 * 2 * kTileRows * 16];
  TileConfig config;
  for (int t = QE_TILE_HI; t <= QE_TILE_SUM_LO2; ++t) {
    config.bytes_per_row[t] = kTileBytes;
    config.rows[t] = kTileRows;
  }
  _tile_loadconfig(&config);
  for (int64_t block = block_begin; block < block_end; ++block) {
    unpack_weights(p, block, static_cast<int8_t*>(tiles.data), static_cast<float*>(scales.data));
    for (int tile = 0; tile * kTileRows < p.m; ++tile)
      amx_tile(p, block, tile, static_cast<const int8_t*>(tiles.data), static_cast<const float*>(scales.data),
               first_step, sums);
  }
  _tile_release();
}

#undef QE_TILE_HI
#undef QE_TILE_LO
#undef QE_TILE_WEIGHTS
#undef QE_TILE_SUM_HI
#undef QE_TILE_SUM_LO
#undef QE_TILE_SUM_HI2
#undef QE_TILE_SUM_LO2

}  // namespace quanteval::runtime::detail

#else  // no AMX in this build (non-x86, non-Linux, or a compiler without -mamx-int8)

namespace quanteval::runtime::detail {
bool amx_int8_usable() { return false; }
void amx_split_row(const int16_t*, const int*, int, uint8_t*, int8_t*, int64_t) {
  QE_FAIL("AMX kernels were not compiled into this build");
}
void int4_blocks_amx(const Int4Problem&, int64_t, int64_t) { QE_FAIL("AMX kernels were not compiled into this build"); }
}  // namespace quanteval::runtime::detail

#endif
