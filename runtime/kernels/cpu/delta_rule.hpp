#pragma once
// Qwen3.5's Gated DeltaNet on the CPU, fp32: the causal conv1d, the gated delta
// rule (token by token, and chunk by chunk for prefill), and the whole op between
// the projections (Backend::gated_deltanet). model/qwen3_5/gated_deltanet.hpp
// states the math; docs/qwen3_5.md derives the chunked form.
//
// The delta rule has two equivalent evaluations: token by token (decode) and
// chunk by chunk (prefill; the WY / UT-transform form of the HF
// `torch_chunk_gated_delta_rule`). Both carry the same per-sequence state, so a
// sequence may be prefilled in pieces and then decoded.
#include <cstdint>
#include <span>

#include "runtime/model/backend.hpp"

namespace quanteval::runtime {

class ThreadPool;

// Causal depthwise conv1d followed by SiLU, continuing from `conv_state`.
//   input      [rows, channels]        time-major
//   weight     [channels, kernel]      (the checkpoint's [channels, 1, kernel])
//   bias       [channels] or empty
//   conv_state [kernel - 1, channels]  previous inputs, oldest first; updated to the last kernel-1 inputs
//   output     [rows, channels]
// output[t, c] = silu(bias[c] + sum_j weight[c, j] * x[t - (kernel-1) + j, c]), x before t from the state.
void causal_conv1d_silu(const float* input, int rows, int channels, std::span<const float> weight, int kernel,
                        std::span<const float> bias, std::span<float> conv_state, float* output);

// Inputs of the gated delta rule for one sequence, already expanded to value
// heads (H = value heads): q and k normalized, q scaled by 1/sqrt(d_k).
struct DeltaRuleInputs {
  const float* q = nullptr;     // [T, H, d_k]
  const float* k = nullptr;     // [T, H, d_k]
  const float* v = nullptr;     // [T, H, d_v]
  const float* g = nullptr;     // [T, H]  log decay (<= 0)
  const float* beta = nullptr;  // [T, H]  write strength in (0, 1)
  int tokens = 0;               // T
  int heads = 0;                // H
  int key_head_dim = 0;         // d_k
  int value_head_dim = 0;       // d_v
};

// Token-by-token recurrence. state [H, d_k, d_v] is read and updated; out [T, H, d_v].
void gated_delta_rule_recurrent(const DeltaRuleInputs& in, float* state, float* out);

// The same result computed chunk by chunk (chunk_size tokens; the last chunk may be shorter).
void gated_delta_rule_chunked(const DeltaRuleInputs& in, float* state, float* out, int chunk_size = 64);

// One sequence's rows of a step and its state.
struct DeltaNetRun {
  std::int64_t first_row = 0;  // its rows are [first_row, first_row + rows) of the step
  std::int64_t rows = 0;
  float* conv_state = nullptr;       // [conv_kernel - 1, conv_dim], continued and updated
  float* recurrent_state = nullptr;  // [value_heads, d_k, d_v], continued and updated
};

struct DeltaNetCpuWeights {
  const float* conv_weight = nullptr;  // [conv_dim, conv_kernel]
  const float* conv_bias = nullptr;    // [conv_dim] or null
  const float* A_log = nullptr;        // [value_heads]
  const float* dt_bias = nullptr;      // [value_heads]
  const float* norm = nullptr;         // [value_head_dim]
};

inline constexpr int kDeltaNetChunk = 64;  // prefill chunk: a 64 x 64 triangular solve per chunk and head

// Everything between the projections: conv + SiLU, q/k l2norm, gates, the delta
// rule (chunked with chunk_size > 0 for runs of more than one row, else token by token:
// same result within fp32 rounding; a run's form depends only on its own length, so a
// sequence's bits never depend on the other sequences of its step), and the gated RMSNorm. qkv [M, conv_dim], z [M,
// value_dim], b and a [M, value_heads]; out [M, value_dim]. `pool` (optional) runs the work in parallel over (sequence,
// key head) pairs, each computed by one thread in the serial order, so the result is bit-identical with or without a
// pool and for any pool size. The pool must not be running a task already. `workspace` holds the
// op's temporaries: gated_deltanet_workspace_floats(spec, M) floats it may overwrite, or null to
// allocate them here (a backend passes scratch it reuses: ~25 MB at M = 512 on Qwen3.5-0.8B).
void gated_deltanet_cpu(const DeltaNetSpec& spec, const DeltaNetCpuWeights& weights, std::span<const DeltaNetRun> runs,
                        const float* qkv, const float* z, const float* b, const float* a, float* out, int chunk_size,
                        ThreadPool* pool, float* workspace = nullptr);
std::int64_t gated_deltanet_workspace_floats(const DeltaNetSpec& spec, std::int64_t rows);

}  // namespace quanteval::runtime
