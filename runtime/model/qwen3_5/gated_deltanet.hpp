#pragma once
// Qwen3.5 Gated DeltaNet (the `linear_attn` token mixer) on CPU, fp32.
//
// Per token t and value head h (see docs/qwen3_5.md for the derivation):
//   [q|k|v] = silu(causal_depthwise_conv1d(in_proj_qkv(x)))      conv over the time axis, per channel
//   q, k    = l2norm(q), l2norm(k) per key head (eps 1e-6 inside the rsqrt); q *= 1/sqrt(d_k)
//   beta    = sigmoid(in_proj_b(x)),  g = -exp(A_log) * softplus(in_proj_a(x) + dt_bias),  decay = exp(g)
//   value head h reads key head h / (num_value_heads / num_key_heads)   (repeat_interleave)
//   S      *= decay;  delta = beta * (v - S^T k);  S += k delta^T;  o = S^T q     (S is [d_k, d_v])
//   out     = out_proj( rmsnorm(o) * norm_weight * silu(z) ),  z = in_proj_z(x)   (norm per value head)
//
// The delta rule has two equivalent evaluations: token by token (decode) and
// chunk by chunk (prefill; the WY / UT-transform form of the HF
// `torch_chunk_gated_delta_rule`). Both carry the same per-sequence state, so a
// sequence may be prefilled in pieces and then decoded.
//
// Projections are callbacks (LinearFn) so the model can plug in dense or INT4
// kernels; this file knows nothing about how weights are stored.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "runtime/checkpoint/model_config.hpp"

namespace quanteval::runtime {
class ThreadPool;
}

namespace quanteval::runtime::qwen3_5 {

// y = x W^T (+ b): x is [rows, in_features], y is [rows, out_features], both
// row-major fp32. The callback must not keep the pointers.
using LinearFn = std::function<void(const float* x, int rows, float* y)>;

// Dimensions of one Gated DeltaNet layer.
struct DeltaNetDims {
  int hidden_size = 0;      // residual width (input of the in_proj_*, output of out_proj)
  int num_key_heads = 0;    // query/key heads
  int num_value_heads = 0;  // value heads (a multiple of num_key_heads); also the number of recurrent states
  int key_head_dim = 0;     // d_k
  int value_head_dim = 0;   // d_v
  int conv_kernel = 0;      // taps of the causal depthwise conv1d (>= 1)

  int key_dim() const { return num_key_heads * key_head_dim; }
  int value_dim() const { return num_value_heads * value_head_dim; }
  int conv_dim() const { return 2 * key_dim() + value_dim(); }  // channels of [q; k; v]
  int value_heads_per_key_head() const { return num_value_heads / num_key_heads; }

  static DeltaNetDims from_config(const ModelConfig& config);
  void validate() const;  // throws std::invalid_argument on a non-positive or inconsistent size
};

// Everything one sequence needs to continue through one DeltaNet layer; it
// replaces the KV cache for these layers and has a fixed size.
struct DeltaNetState {
  // [conv_kernel - 1, conv_dim]: the last conv_kernel-1 pre-convolution [q;k;v]
  // rows (in_proj_qkv outputs), oldest first; zeros before the sequence starts.
  std::vector<float> conv;
  // [num_value_heads, key_head_dim, value_head_dim]: the delta-rule memory S per value head.
  std::vector<float> recurrent;
  std::int64_t tokens_seen = 0;  // tokens folded into the state so far

  static DeltaNetState zeros(const DeltaNetDims& dims);
  void reset();  // back to the empty-sequence state, keeping the sizes
};

// --- Building blocks (exposed for tests and for other backends to check against) ---

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
// heads (H = num_value_heads): q and k normalized, q scaled by 1/sqrt(d_k).
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

// --- The layer ---

// Weights of one layer. Projections are callbacks; the small tensors are fp32 copies.
struct DeltaNetWeights {
  DeltaNetDims dims;
  float norm_eps = 1e-6f;               // rms_norm_eps of the gated output norm
  LinearFn in_proj_qkv;                 // hidden -> conv_dim ([q; k; v], q and k key_dim each)
  LinearFn in_proj_z;                   // hidden -> value_dim (output gate)
  LinearFn in_proj_b;                   // hidden -> num_value_heads (beta before the sigmoid)
  LinearFn in_proj_a;                   // hidden -> num_value_heads (decay input)
  LinearFn out_proj;                    // value_dim -> hidden
  std::vector<float> conv_weight;       // [conv_dim, conv_kernel]
  std::vector<float> conv_bias;         // [conv_dim] or empty (Qwen3.5 has none)
  std::vector<float> A_log;             // [num_value_heads]
  std::vector<float> dt_bias;           // [num_value_heads]
  std::vector<float> norm_weight;       // [value_head_dim]  plain RMSNorm weight (NOT zero-centred)
};

class GatedDeltaNet {
 public:
  explicit GatedDeltaNet(DeltaNetWeights weights);  // validates every size; throws std::invalid_argument

  const DeltaNetDims& dims() const { return weights_.dims; }

  static constexpr int kDefaultChunkSize = 64;

  // Prefill (chunked delta rule) for a batch of sequences packed row after row:
  //   x       [sum(lengths), hidden]   sequence i's rows follow sequence i-1's
  //   lengths [batch]                  rows of each sequence (0 allowed)
  //   states  [batch]                  each sequence's own state, continued and updated
  //   y       [sum(lengths), hidden]
  // `pool` (optional) runs the per-token work between the projections (conv,
  // normalisation, delta rule, gated norm) in parallel over (sequence, key head)
  // pairs. Each pair is computed by one thread in the serial order, so the result
  // is bit-identical with or without a pool and for any pool size. The pool must
  // not be running a task already (it is not reentrant); the projection callbacks
  // are called outside the parallel region, so they may use the same pool.
  void prefill(const float* x, std::span<const int> lengths, std::span<DeltaNetState* const> states, float* y,
               int chunk_size = kDefaultChunkSize, ThreadPool* pool = nullptr) const;

  // One new token per sequence (recurrent delta rule): x, y [batch, hidden]; states [batch].
  void decode_step(const float* x, std::span<DeltaNetState* const> states, float* y,
                   ThreadPool* pool = nullptr) const;

  // Same as prefill but token by token (the plain recurrence); for tests and as a reference.
  void forward_recurrent(const float* x, std::span<const int> lengths, std::span<DeltaNetState* const> states,
                         float* y, ThreadPool* pool = nullptr) const;

 private:
  void run(const float* x, std::span<const int> lengths, std::span<DeltaNetState* const> states, float* y,
           int chunk_size, ThreadPool* pool) const;  // chunk_size 0 = recurrent

  DeltaNetWeights weights_;
};

}  // namespace quanteval::runtime::qwen3_5
