#pragma once
// Qwen3.5 decoder-layer building blocks on CPU, fp32, besides the Gated
// DeltaNet (gated_deltanet.hpp):
//   zero-centred RMSNorm   y = x / rms(x) * (1 + w)            input / post-attention / final / q / k norms
//   SwiGLU MLP             down(silu(gate(x)) * up(x))
//   gated full attention   q_proj -> per head [query | gate]; zero-centred q/k norm; partial RoPE
//                          (rotate-half over the first rotary_dim dims); causal GQA softmax attention;
//                          output * sigmoid(gate) -> o_proj
//   decoder layer          h = x + mixer(norm1(x));  out = h + mlp(norm2(h))
// plus loaders that fill the weight structs from a Checkpoint, with the
// projections built by a caller-supplied factory (the model's dense/INT4
// kernels) or by `reference_linear` (fp32, dequantized GPTQ; for tests).
// See docs/qwen3_5.md.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/model/qwen3_5/gated_deltanet.hpp"
#include "runtime/checkpoint/model_config.hpp"

namespace quanteval::runtime::qwen3_5 {

// y = x / sqrt(mean(x^2) + eps) * (1 + weight), per row. x, y [rows, width] (may alias);
// weight [width] as stored (Qwen3.5 stores w - 1).
void rms_norm_zero_centered(const float* x, int rows, int width, std::span<const float> weight, float eps, float* y);

// --- MLP ---

struct MlpWeights {
  int hidden_size = 0;
  int intermediate_size = 0;
  LinearFn gate_proj;  // hidden -> intermediate
  LinearFn up_proj;    // hidden -> intermediate
  LinearFn down_proj;  // intermediate -> hidden
};

// y = down_proj(silu(gate_proj(x)) * up_proj(x)); x, y [rows, hidden].
void swiglu_mlp(const MlpWeights& weights, const float* x, int rows, float* y);

// --- Gated full attention ---

struct AttentionDims {
  int hidden_size = 0;
  int num_heads = 0;     // query heads
  int num_kv_heads = 0;  // key/value heads; divides num_heads (query head h reads kv head h / (num_heads / num_kv_heads))
  int head_dim = 0;
  int rotary_dim = 0;    // leading dims of each q/k head that RoPE rotates (even, <= head_dim)
  double rope_theta = 10000.0;
  // Round the RoPE inverse frequencies to bf16 before use. transformers holds
  // the `inv_freq` buffer in the model's dtype, so a bf16 model (and the
  // fixtures, made from bf16 models upcast to fp32) rotates by bf16-rounded
  // frequencies; with exact fp32 frequencies the fixture's attention layer
  // differs by ~6e-5 relative L2 instead of ~3e-7. from_config sets it when
  // torch_dtype is bfloat16.
  bool bf16_inv_freq = false;

  static AttentionDims from_config(const ModelConfig& config);
  void validate() const;  // throws std::invalid_argument
};

// One sequence's keys and values for one attention layer, grown token by token.
struct AttentionKvCache {
  std::vector<float> keys;    // [length, num_kv_heads, head_dim]  after k_norm and RoPE
  std::vector<float> values;  // [length, num_kv_heads, head_dim]
  std::int64_t length = 0;    // tokens cached (= position of the next token)

  void reset() { keys.clear(); values.clear(); length = 0; }
};

struct GatedAttentionWeights {
  AttentionDims dims;
  float norm_eps = 1e-6f;
  LinearFn q_proj;             // hidden -> num_heads * 2 * head_dim, per head [query (head_dim) | gate (head_dim)]
  LinearFn k_proj;             // hidden -> num_kv_heads * head_dim
  LinearFn v_proj;             // hidden -> num_kv_heads * head_dim
  LinearFn o_proj;             // num_heads * head_dim -> hidden
  std::vector<float> q_norm;   // [head_dim] stored w (applied as 1 + w)
  std::vector<float> k_norm;   // [head_dim] stored w (applied as 1 + w)
};

class GatedAttention {
 public:
  explicit GatedAttention(GatedAttentionWeights weights);  // validates sizes; throws std::invalid_argument

  const AttentionDims& dims() const { return weights_.dims; }

  // Sequences packed row after row (x, y [sum(lengths), hidden]); each continues
  // its own cache, its first new token at position caches[i]->length.
  // `pool` (optional) runs the softmax attention in parallel over (sequence, query
  // head) pairs, each computed by one thread in the serial order: the result is
  // bit-identical with or without a pool. The projections run outside the parallel
  // region, so their callbacks may use the same (non-reentrant) pool.
  void forward(const float* x, std::span<const int> lengths, std::span<AttentionKvCache* const> caches, float* y,
               ThreadPool* pool = nullptr) const;
  // One token per sequence: x, y [batch, hidden].
  void decode_step(const float* x, std::span<AttentionKvCache* const> caches, float* y,
                   ThreadPool* pool = nullptr) const;

 private:
  GatedAttentionWeights weights_;
  std::vector<float> inv_freq_;  // [rotary_dim / 2]  theta^(-2i / rotary_dim)
};

// --- Decoder layer ---

// Per-sequence, per-layer state: a DeltaNet layer uses `deltanet`, an attention layer `kv`.
struct LayerState {
  DeltaNetState deltanet;
  AttentionKvCache kv;
};

struct DecoderLayerWeights {
  LayerKind kind = LayerKind::linear_attention;
  int hidden_size = 0;
  float norm_eps = 1e-6f;
  std::vector<float> input_norm;           // [hidden] stored w (applied as 1 + w)
  std::vector<float> post_attention_norm;  // [hidden] stored w (applied as 1 + w)
  std::optional<DeltaNetWeights> linear_attn;     // when kind == linear_attention
  std::optional<GatedAttentionWeights> self_attn; // when kind == full_attention
  MlpWeights mlp;
};

class DecoderLayer {
 public:
  explicit DecoderLayer(DecoderLayerWeights weights);

  LayerKind kind() const { return kind_; }
  LayerState make_state() const;  // zero DeltaNet state or empty KV cache

  // Prefill (chunked delta rule) of packed sequences: x, y [sum(lengths), hidden].
  void prefill(const float* x, std::span<const int> lengths, std::span<LayerState* const> states, float* y) const;
  // One token per sequence (recurrent delta rule): x, y [batch, hidden].
  void decode_step(const float* x, std::span<LayerState* const> states, float* y) const;

 private:
  void run(const float* x, std::span<const int> lengths, std::span<LayerState* const> states, float* y,
           bool decode) const;

  LayerKind kind_;
  int hidden_size_;
  float norm_eps_;
  std::vector<float> input_norm_, post_attention_norm_;
  std::optional<GatedDeltaNet> linear_attn_;
  std::optional<GatedAttention> self_attn_;
  MlpWeights mlp_;
};

// --- Loading from a checkpoint ---

// Builds the projection for one checkpoint linear (dense or GPTQ). The
// returned callback may keep references into the Checkpoint.
using LinearFactory = std::function<LinearFn(const LinearTensors&)>;

// fp32 reference projection: the weight converted (or GPTQ-dequantized with
// dequantize_reference) to [N, K] floats once, then plain loops. Slow; for
// tests and for checking faster kernels.
LinearFn reference_linear(const Checkpoint& checkpoint, const LinearTensors& tensors);

// A checkpoint tensor as fp32 (BF16/F16/F32), checked against `expected_elements`.
std::vector<float> load_float_tensor(const Checkpoint& checkpoint, const std::string& name,
                                     std::int64_t expected_elements);

DeltaNetWeights load_deltanet_weights(const Checkpoint& checkpoint, int layer, const LinearFactory& make_linear);
GatedAttentionWeights load_attention_weights(const Checkpoint& checkpoint, int layer,
                                             const LinearFactory& make_linear);
MlpWeights load_mlp_weights(const Checkpoint& checkpoint, int layer, const LinearFactory& make_linear);
DecoderLayerWeights load_decoder_layer_weights(const Checkpoint& checkpoint, int layer,
                                               const LinearFactory& make_linear);

}  // namespace quanteval::runtime::qwen3_5
