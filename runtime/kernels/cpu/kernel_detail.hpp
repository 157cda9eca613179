#pragma once
// Internal to the CPU kernels: the repacked INT4 layout and the per-ISA entry
// points. Each ISA's kernels live in their own translation unit compiled with
// that ISA's flags (runtime/cpu_kernels.cmake); nothing here is public API.
#include <cstddef>
#include <cstdint>

namespace quanteval::runtime::detail {

// Output columns per INT4 block: 16 x 32-bit words = one 64-byte cache line per
// row of 8 k, which is one AVX-512 register or two AVX2 registers.
inline constexpr int kInt4BlockColumns = 16;

// One cache line of the packed INT4 stream (aligned so a row never straddles lines).
struct alignas(64) PackedLine {
  uint32_t words[kInt4BlockColumns];
};

// int16 activations: within each packed group, runs of up to kQuantBlockLines lines
// (128 rows) share one activation scale. Capped rather than the whole group, so the
// quantization step stays local even for group_size = -1 (one group = all K), where one
// outlier activation would otherwise coarsen the whole row; and a whole number of lines,
// so a block never splits a 64-byte weight line. 128 rather than 64 (until issue 18):
// half the per-block int32 -> fp32 steps, the AMX kernel's floor, for a quantization step
// that is at most the larger block's max / 32767 (error still ~1.5e-5 of max|x|).
inline constexpr int kQuantBlockLines = 16;

// The AMX kernel's k-step: 8 lines = 64 rows = one tile product's K (an activation block
// is one or two k-steps).
inline constexpr int kAmxStepLines = 8;

// Per (activation row, block): x ~= scale * x_q with x_q in [-32767, 32767]; `sum` =
// sum of the block's x_q (|sum| <= 32767 * 128 < 2^31), used to apply the weight zero
// point once per block: sum (q - z) x_q = sum q x_q - z sum x_q, all exact in int32.
struct QuantBlockScale {
  float scale;
  int32_t sum;
};

// Quantizes one activation block: `values` = its rows (a multiple of 8, <= 128) in packed
// order; writes line l's 8 int16 at out + l * line_stride in the order rows
// 0,4,1,5,2,6,3,7, and *block. scale = max|x| / 32767 in fp32 (NaN if any value is inf or
// NaN, then x_q = 0), x_q = round-half-even(double(x) * (1.0 / double(scale))) clamped to
// +-32767. All versions give identical bits (tested).
void quantize_block_scalar(const float* values, int rows, int16_t* out, int64_t line_stride, QuantBlockScale* block);
void quantize_block_avx2(const float* values, int rows, int16_t* out, int64_t line_stride, QuantBlockScale* block);
void quantize_block_avx512(const float* values, int rows, int16_t* out, int64_t line_stride, QuantBlockScale* block);

// Repacked INT4 weight (built by Int4Linear::from_gptq). Columns are cut into
// blocks of 16; each block is one contiguous run of lines, so a thread streams
// its blocks sequentially:
//   for each group g (in ascending group order, empty groups omitted):
//     1 header line: u16 scale bits[16] (fp16 or bf16, as in the checkpoint), then u16 zero[16]
//     group_rows[g] lines: word c = 8 nibbles of column c for 8 consecutive permuted rows
//                          (row j of the 8 at bits 4j, the GPTQ qweight convention)
// Scales stay 16-bit and zeros are small integers so the stream adds 4 bytes per
// (group, column) instead of 8 for float scale + float scale*zero.
struct Int4Problem {
  const PackedLine* lines = nullptr;
  int64_t lines_per_block = 0;
  const int* group_rows = nullptr;  // [num_groups] lines of 8 rows per group
  int num_groups = 0;
  bool scales_bf16 = false;
  const float* x = nullptr;  // [m, x_stride] activations in packed (permuted, padded) K order
  int64_t x_stride = 0;
  int m = 0;
  float* y = nullptr;  // [m, n]
  int n = 0;
  const float* bias = nullptr;  // [n] or null
  // The int16 kernels' software prefetch (AVX-512 and AVX2, see int4_software_prefetch()):
  // true = into L1 2 KB and into L2 8 KB ahead, false = none at M = 1, the L1 one in wider tiles.
  bool software_prefetch = true;
  // int16-activation mode (x_q != null; x is then unused). See Int4Linear::quantize_activations.
  // [packed K / 8 lines][m rows][8]: row i's 8 values of line l at x_q + l * x_q_line_stride
  // + 8 i, in the order rows 0,4,1,5,2,6,3,7. Rows interleaved per line so that a tile's
  // activations for one weight line are one 16 * tile-byte run: the kernels address
  // them as one pointer + constant offsets instead of one pointer register per X row.
  const int16_t* x_q = nullptr;
  int64_t x_q_line_stride = 0;                // = 8 * m
  // M = 1 on the AVX-512 VNNI kernels only (x_bytes != null; x_q unused): the row's int16
  // activations as byte halves, per line 16 bytes: the low bytes (unsigned) of rows
  // 0,2,4,6,1,3,5,7, then their high bytes (signed) in the same order. See
  // int16_to_byte_halves_avx512.
  const uint8_t* x_bytes = nullptr;
  const QuantBlockScale* x_blocks = nullptr;  // [m, x_blocks_stride]: one per activation block, in stream order
  int64_t x_blocks_stride = 0;
  // AMX mode (int4_blocks_amx; x_q is then unused, x_blocks still gives the scales): m is
  // the real row count, the activations are padded to whole 16-row tiles (padded rows: zero
  // bytes, zero block scales) and laid out tile by tile: [m / 16 tiles][amx_steps][16 rows]
  // [64 bytes], so one tile load reads 1 KB in order (see amx_split_row).
  const int8_t* a_hi = nullptr;
  const uint8_t* a_lo = nullptr;
  int64_t quant_blocks = 0;  // activation blocks per row
  int64_t amx_steps = 0;     // k-steps per row: sum over groups of ceil(lines / kAmxStepLines)
};

void int4_blocks_scalar(const Int4Problem& problem, int64_t block_begin, int64_t block_end);
void int4_blocks_avx2(const Int4Problem& problem, int64_t block_begin, int64_t block_end);
void int4_blocks_avx512(const Int4Problem& problem, int64_t block_begin, int64_t block_end);
// AVX-512 int16-activation kernels with VNNI (vpdpwssd); only when the CPU reports avx512_vnni.
void int4_blocks_avx512_vnni(const Int4Problem& problem, int64_t block_begin, int64_t block_end);
bool avx512_vnni_supported();
// One row's x_q (line stride 8) -> the x_bytes layout above, `lines` lines.
void int16_to_byte_halves_avx512(const int16_t* x_q, int64_t lines, uint8_t* out);
// The AVX2 int16-activation kernels with AVX-VNNI's VEX vpdpwssd for vpmaddwd + vpaddd (same
// bits: exact int32 sums); only when the CPU reports avxvnni and the ISA is not capped.
void int4_blocks_avx2_vnni(const Int4Problem& problem, int64_t block_begin, int64_t block_end);
bool avx_vnni_supported();
// The int16-activation product on AMX-INT8 tiles (kernels_amx.cpp): the same bits as the
// others. Needs the a_hi / a_lo layout above; only when amx_enabled() (isa.hpp).
void int4_blocks_amx(const Int4Problem& problem, int64_t block_begin, int64_t block_end);
// One row's int16 activations in x_q's layout with line stride 8 (a row quantized alone:
// [packed K / 8][8]) into its AMX slots: per k-step (8 lines of a group) 64 bytes of
// lo = x_q & 0xff and of hi = x_q >> 8, in the row order 0,2,4,6,1,3,5,7 per line, zero past
// a short step; step s at lo / hi + s * step_stride.
void amx_split_row(const int16_t* x_q, const int* group_rows, int num_groups, uint8_t* lo, int8_t* hi,
                   int64_t step_stride);
// The CPU reports AMX-TILE and AMX-INT8, the OS saves tile state, and Linux granted this
// process the tile data (arch_prctl ARCH_REQ_XCOMP_PERM; done by this call).
bool amx_int8_usable();

enum class DenseType { f32, bf16, f16 };

// Dense weight [n, k] row-major (the Hugging Face layout), y = x W^T (+ bias).
struct DenseProblem {
  const void* w = nullptr;
  DenseType type = DenseType::f32;
  int n = 0;
  int k = 0;
  const float* x = nullptr;  // [m, k]
  int m = 0;
  float* y = nullptr;  // [m, n]
  const float* bias = nullptr;
  // Only for bf16 weights on AVX2 / AVX-512 (else null): each row of x split by k parity,
  // [even k's | odd k's], each half x_split_half floats, zero-padded to a multiple of 16.
  const float* x_split = nullptr;
  int64_t x_split_half = 0;
  // The AVX-512 bf16 kernel's prefetch scheme (dense_bf16_split_tile): each row's own lines
  // ahead (true) or one stream in address order (false); see dense_row_prefetch().
  bool row_prefetch = false;
};

void dense_rows_scalar(const DenseProblem& problem, int64_t row_begin, int64_t row_end);
void dense_rows_avx2(const DenseProblem& problem, int64_t row_begin, int64_t row_end);
void dense_rows_avx512(const DenseProblem& problem, int64_t row_begin, int64_t row_end);

// Whether the ISA-specific translation units were built with their SIMD flags.
bool avx2_kernels_compiled();
bool avx512_kernels_compiled();

// XOR of the 64-bit words of data[0, bytes) (bytes a multiple of 8; see read_stream in
// bandwidth.hpp): 4 registers per step into 4 independent accumulators, each line
// software-prefetched `prefetch_bytes` ahead (0: none).
uint64_t read_stream_avx2(const void* data, size_t bytes, size_t prefetch_bytes);
uint64_t read_stream_avx512(const void* data, size_t bytes, size_t prefetch_bytes);

// Attention's scores over a run of `count` consecutive cached positions of one K/V head
// (key rows key_stride floats apart: one block of the KV memory), for `heads` query heads
// sharing it; head_dim a multiple of 8. Each score is math::attention_score's arithmetic,
// so the portable loop and this give identical bits (tested):
//   scores[h * score_stride + j] = attention_score(queries + h * head_dim, keys + j * key_stride, head_dim, scale)
// (The weighted value sum is multiply_accumulate below: rows = heads, inner = positions.)
void attention_scores_avx2(const float* queries, int heads, int head_dim, const float* keys, int64_t key_stride,
                           int count, float scale, float* scores, int64_t score_stride);
// The same on AVX-512: two query heads per zmm (see kernels_avx512.cpp); an odd last head
// and positions past the last run of 8 go to the AVX2 loop.
void attention_scores_avx512(const float* queries, int heads, int head_dim, const float* keys, int64_t key_stride,
                             int count, float scale, float* scores, int64_t score_stride);
// The widest of the above this CPU runs (head_dim a multiple of 8), else the portable loop
// (any head_dim): the same bits.
void attention_scores(const float* queries, int heads, int head_dim, const float* keys, int64_t key_stride, int count,
                      float scale, float* scores, int64_t score_stride);
// C[i][c] += A[i][x] * B[x][c] summed over x = 0 .. inner-1 (or -= with `subtract`), for
// i < rows, c < cols; rows lda / ldb / ldc floats apart. Each element of C takes its
// products in x order, one fused multiply-add each (c + a b or c - a b rounded once) -- the plain triple loop's
// arithmetic, whatever the vector width or the blocking -- so these give the portable
// loop's bits (tested). The dense products of the chunked delta rule and attention's weighted value sum. cols a
// multiple of 8 (AVX2) or 16 (AVX-512).
void multiply_accumulate_avx2(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int rows,
                              int cols, int inner, bool subtract);
void multiply_accumulate_avx512(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
                                int rows, int cols, int inner, bool subtract);
// The recurrent delta rule's step for one token and head, on all value_dim columns (a multiple of 8) of
// the [key_dim, value_dim] state (rows `stride` floats apart): out[c] = math::delta_rule_column(state + c,
// stride, q, k, key_dim, v[c], decay, beta), 8 columns a vector with the same operations per column, so
// the same bits (tested). The column function walks a column 512 bytes a step with one serial sum: a
// fifth of a Qwen3.5-0.8B decode step.
void delta_rule_columns_avx2(float* state, int64_t stride, const float* q, const float* k, int key_dim,
                             const float* v, int value_dim, float decay, float beta, float* out);
// The same through the widest of those the CPU has (and cols allow), else the plain loop
// (kernels_scalar.cpp). All give the same bits.
void multiply_accumulate(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int rows,
                         int cols, int inner, bool subtract);

// values[i] = math::exp_float(values[i] - shift) (softmax's exponentials), and
// out[i] = math::swiglu(gate[i], up[i]) (= gate / (1 + exp_float(-gate)) * up), 8 / 16 at a
// time with the portable function's bits (tested); out may alias gate or up. The dispatchers
// take the widest the CPU has, else the portable loop (kernels_scalar.cpp).
void exp_shifted_avx2(float* values, size_t count, float shift);
void exp_shifted_avx512(float* values, size_t count, float shift);
void exp_shifted(float* values, size_t count, float shift);
void swiglu_avx2(const float* gate, const float* up, float* out, size_t count);
void swiglu_avx512(const float* gate, const float* up, float* out, size_t count);
void swiglu(const float* gate, const float* up, float* out, size_t count);
// Softmax of values[0, count) in place, count > 0: the largest value m (any of equal
// maxima: exp(x - m) does not see the sign of a zero m), exp_shifted by m, the total in
// math::lane_sum's order, then each value divided by it -- the arithmetic attention's
// weights always had; the max and the division run 8 / 16 lanes a step (exact, so every
// ISA gives the same bits: tested). The serial max had been most of the time attention
// spent outside its scores and value sums at long contexts.
float max_value_avx2(const float* values, size_t count);
float max_value_avx512(const float* values, size_t count);
void divide_avx2(float* values, size_t count, float divisor);
void divide_avx512(float* values, size_t count, float divisor);
void softmax(float* values, size_t count);
// One row of the Gated DeltaNet's causal conv1d + SiLU over `count` channels:
//   out[i] = math::silu(bias[i] + taps[0][i] * window[0][i] + ... + taps[kernel-1][i] * window[kernel-1][i])
// each product rounded and then added, in tap order: math::conv1d_silu's arithmetic, so the
// same bits (tested). taps: [kernel][tap_stride] (transposed from the checkpoint's [channel][kernel]);
// window[j]: the input row tap j reads; bias null = 0.
void conv1d_silu_row_avx2(const float* const* window, int kernel, const float* taps, int64_t tap_stride,
                          const float* bias, int count, float* out);
void conv1d_silu_row_avx512(const float* const* window, int kernel, const float* taps, int64_t tap_stride,
                            const float* bias, int count, float* out);
void conv1d_silu_row(const float* const* window, int kernel, const float* taps, int64_t tap_stride, const float* bias,
                     int count, float* out);
// One head's row of Qwen3.5's gated RMSNorm once its inverse RMS is known, in place:
// o[i] = math::gated_rms_scaled(o[i], inverse_rms, weight[i], z[i]) (= o * inv * weight *
// silu(z), left to right), the same bits (tested).
void gated_rms_row_avx2(float* o, float inverse_rms, const float* weight, const float* z, int count);
void gated_rms_row_avx512(float* o, float inverse_rms, const float* weight, const float* z, int count);
void gated_rms_row(float* o, float inverse_rms, const float* weight, const float* z, int count);

// Bulk f16 -> float with F16C (exactness tested against numeric.hpp on all 65536 values).
void f16_to_float_avx2(const uint16_t* in, float* out, size_t count);

}  // namespace quanteval::runtime::detail
