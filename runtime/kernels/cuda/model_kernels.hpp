#pragma once
// The CUDA kernels of the decoder stack's ops (everything but the projections, which
// are Marlin / cuBLAS): launch functions over raw device pointers, called by
// CudaBackend (backend.hpp). Each kernel is indexing and launch around the shared
// per-element math of runtime/model/math.hpp, which the CPU backend runs too and the
// CPU test suite checks. C++17 and free of the Backend types, so nvcc compiles it
// alone; every launch is asynchronous on `stream` and throws std::runtime_error
// naming the kernel when the launch fails.
//
// Activations are fp32 [rows, cols] row-major, like the CPU backend's.
#include <cstdint>

#include <cuda_runtime_api.h>

namespace quanteval::runtime::cuda::kernels {

enum class Element { bf16, f16, f32 };

// out[r] = table[tokens[r]] widened to fp32. tokens: device int32 [rows].
void embed(const void* table, Element type, const std::int32_t* tokens, int rows, int cols, float* out,
           cudaStream_t stream);
// out = rmsnorm(x) * weight per row (x and out may alias).
void rms_norm(const float* x, const float* weight, int rows, int cols, float eps, float* out, cudaStream_t stream);
// residual += addend, then normed = rmsnorm(residual) * weight, one pass per row.
void add_rms_norm(float* residual, const float* addend, const float* weight, int rows, int cols, float eps,
                  float* normed, cudaStream_t stream);
void add(float* residual, const float* addend, std::int64_t count, cudaStream_t stream);
void swiglu(const float* gate, const float* up, float* out, std::int64_t count, cudaStream_t stream);
// fp32 -> bf16/f16 (round to nearest even), for the projections' inputs.
void to_16bit(const float* x, std::int64_t count, Element type, void* out, cudaStream_t stream);
// y [rows, cols] = widen(y16) + bias (bias may be null).
void from_16bit(const void* y16, Element type, const float* bias, int rows, int cols, float* y, cudaStream_t stream);
// y [rows, cols] += bias.
void add_bias(float* y, const float* bias, int rows, int cols, cudaStream_t stream);
// out[i] = x[rows[i]]; rows: device int64 [count].
void gather_rows(const float* x, const std::int64_t* rows, int count, int cols, float* out, cudaStream_t stream);

// Where the rows of one step live. Device arrays:
//   positions   int64 [M]  absolute position of each row
//   row_blocks  int64 [M]  offset into `blocks` of the row's sequence's block table
//   blocks      int32 [..] the concatenated block tables
struct StepRows {
  int rows = 0;  // M
  const std::int64_t* positions = nullptr;
  const std::int64_t* row_blocks = nullptr;
  const std::int32_t* blocks = nullptr;
};

// One attention layer's shapes and K/V storage ([blocks][block_tokens][kv_heads][head_dim] fp32).
struct AttentionLayer {
  int heads = 0, kv_heads = 0, head_dim = 0, rotary_dim = 0;
  std::int64_t window = 0;
  bool gated = false;
  float norm_eps = 1e-6f;
  const float* q_norm = nullptr;    // [head_dim] or null
  const float* k_norm = nullptr;    // [head_dim] or null
  const float* inv_freq = nullptr;  // [rotary_dim / 2]
  float* keys = nullptr;
  float* values = nullptr;
  int block_tokens = 16;
};

// Split-K attention: a row's causal range is cut into splits of a fixed length
// (math::attention_split_count and friends), each computed by its own block, then merged. The
// cut depends on the row alone, so attention is bitwise batch-invariant.
// How many splits row r has, and where its partial results start: split_offsets (host,
// [M]) gets each row's first split index; returns the total number of splits.
std::int64_t attention_split_offsets(const std::int64_t* positions, int rows, std::int64_t window,
                                     std::int64_t* split_offsets, int* max_splits);
// Floats of partial results: per (split, head) the softmax state and the unnormalised
// value sum, [total splits][heads][2 + head_dim].
std::int64_t attention_partial_floats(std::int64_t total_splits, int heads, int head_dim);

// q: [M, heads * head_dim (x2 gated)], k and v [M, kv_heads * head_dim] (k is
// normalized and rotated in place, as on the CPU); query: scratch [M, heads, head_dim];
// split_offsets: device int64 [M] from attention_split_offsets; partial:
// attention_partial_floats(...); out: [M, heads * head_dim].
void attention(const AttentionLayer& layer, const StepRows& step, const float* q, float* k, const float* v,
               float* query, const std::int64_t* split_offsets, int max_splits, float* partial, float* out,
               cudaStream_t stream);

// One sequence's rows and state slot, as the DeltaNet kernels see it (a device array of
// these, the same for every layer of a step).
struct DeltaNetSequence {
  std::int64_t first_row = 0;
  std::int64_t rows = 0;
  std::int64_t slot = 0;  // its state slot
};

struct DeltaNetLayer {
  int key_heads = 0, value_heads = 0, key_head_dim = 0, value_head_dim = 0, conv_kernel = 0;
  float norm_eps = 1e-6f;
  const float* conv_weight = nullptr;  // [conv_dim, conv_kernel]
  const float* conv_bias = nullptr;    // [conv_dim] or null
  const float* A_log = nullptr;        // [value_heads]
  const float* dt_bias = nullptr;      // [value_heads]
  const float* norm = nullptr;         // [value_head_dim]
  // The layer's state slots: slot s at states + s * slot_floats, [conv (kernel-1) x conv_dim |
  // delta-rule state Hv x d_k x d_v] (CpuMemory's layout).
  float* states = nullptr;
  std::int64_t slot_floats = 0;
  std::int64_t conv_floats = 0;
};

// Scratch floats the op needs for M rows: conv output [M, conv_dim], q and k
// [M, Hv, d_k], g and beta [M, Hv].
std::int64_t deltanet_scratch_floats(const DeltaNetLayer& layer, int rows);

// Everything between the projections (Backend::gated_deltanet): conv + SiLU
// continuing each sequence's conv state, q/k l2norm, gates, the delta rule token by
// token (one thread per state column; prefill runs the same recurrence, a first
// correct version, not the chunked form), gated RMSNorm. sequences: device array.
void gated_deltanet(const DeltaNetLayer& layer, const DeltaNetSequence* sequences, int sequence_count, int rows,
                    const float* qkv, const float* z, const float* b, const float* a, float* scratch, float* out,
                    cudaStream_t stream);

}  // namespace quanteval::runtime::cuda::kernels
