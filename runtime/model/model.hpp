#pragma once
// The decoder-only transformer of Qwen2/Qwen2.5 and Qwen3 on the CPU: the fast
// path (threaded SIMD linears from cpu_linear, paged KV cache, batched steps).
// The plain reference path it is tested against lives in model_reference.hpp.
//
// One forward step takes any number of sequences, each with any number of new
// tokens (a whole prompt for prefill, one token for decode, or a mix): their
// rows are concatenated into one activation matrix [M, hidden] so every linear
// runs once with m = M, while attention is done row by row against that row's
// own sequence cache.
//
//   hidden = embed(tokens)                                   [M, hidden]
//   for each layer:  hidden += mixer(rmsnorm(hidden))        (attention, or another LayerKind)
//                    hidden += mlp(rmsnorm(hidden))          (SwiGLU)
//   logits = lm_head(rmsnorm(hidden[rows that want logits])) [R, vocab]
//
// Extending with a layer kind (Qwen3.5 linear attention): implement TokenMixer
// (forward + make_state for per-sequence state) and construct it in
// build_token_mixer() (model.cpp) for that LayerKind. See docs/runtime.md.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/platform/device.hpp"
#include "runtime/model/kv_cache.hpp"
#include "runtime/model/linear.hpp"
#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/quant_config.hpp"
#include "runtime/text/tokenizer.hpp"  // TokenId

namespace quanteval::runtime {

// A request the model cannot serve (bad ids, too long, cache too small).
struct ModelInputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct LoadOptions {
  Device device = Device::cpu;
  int threads = 0;                   // 0 = std::thread::hardware_concurrency()
  std::uint64_t kv_cache_bytes = 0;  // 0 = auto: 25% of physical RAM, at most 4 GiB
  int kv_block_tokens = 16;          // positions per KV cache block
};

// Per-sequence state of one layer kind that keeps more than K/V (e.g. the
// DeltaNet conv + recurrent state). Attention layers use the shared paged
// KvCache instead and have none.
class LayerState {
 public:
  virtual ~LayerState() = default;
};

// Everything the model remembers about one sequence between steps. Created by
// Model::open_sequence (which reserves its KV cache blocks), released on destruction.
class SequenceState {
 public:
  ~SequenceState();
  SequenceState(const SequenceState&) = delete;
  SequenceState& operator=(const SequenceState&) = delete;

  std::int64_t length() const { return length_; }      // positions already processed (in the cache)
  std::int64_t capacity() const { return capacity_; }  // positions reserved
  const std::vector<std::int32_t>& blocks() const { return blocks_; }  // KV block table: position p in blocks_[p / block]
  LayerState* layer_state(std::size_t layer) const { return layer_states_[layer].get(); }

 private:
  friend class Model;
  SequenceState() = default;
  KvCache* cache_ = nullptr;
  std::int64_t length_ = 0;
  std::int64_t capacity_ = 0;
  std::vector<std::int32_t> blocks_;
  std::vector<std::unique_ptr<LayerState>> layer_states_;  // [layers]; null where the layer keeps none
};

// The rows of one forward step: row r is token `tokens[r]` of sequence
// `states[sequence[r]]` at absolute position `position[r]`.
struct StepRows {
  std::vector<TokenId> tokens;          // [M]
  std::vector<int> sequence;            // [M] index into states
  std::vector<std::int64_t> position;   // [M]
  std::vector<SequenceState*> states;   // [sequences in the step]
  std::int64_t size() const { return static_cast<std::int64_t>(tokens.size()); }
};

// What a token mixer may use besides its own weights.
struct MixerContext {
  ThreadPool& pool;
  KvCache& cache;
  std::size_t layer_index;  // decoder layer number, for SequenceState::layer_state
};

// The part of a decoder layer that mixes information across positions.
class TokenMixer {
 public:
  virtual ~TokenMixer() = default;
  // normed: [M, hidden] (the input-normed residual), out: [M, hidden], every
  // element written. Appends what it needs from these rows to the sequences' state.
  virtual void forward(const StepRows& rows, const float* normed, float* out, MixerContext& context) const = 0;
  // Fresh per-sequence state for this layer (null: none needed).
  virtual std::unique_ptr<LayerState> make_state() const { return nullptr; }
  virtual std::uint64_t weight_bytes() const = 0;
};

// Softmax attention (full, or sliding when window > 0) with RoPE, GQA, optional
// q/k/v bias (Qwen2) and per-head q/k RMSNorm (Qwen3).
struct AttentionWeights {
  Linear q_proj;                 // [heads * head_dim, hidden]
  Linear k_proj;                 // [kv_heads * head_dim, hidden]
  Linear v_proj;                 // [kv_heads * head_dim, hidden]
  Linear o_proj;                 // [hidden, heads * head_dim]
  std::vector<float> q_norm;     // [head_dim] or empty (no q/k norm)
  std::vector<float> k_norm;     // [head_dim] or empty
};

struct AttentionShape {
  int heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int rotary_dim = 0;            // leading dims of each head that RoPE rotates (== head_dim unless partial)
  float norm_eps = 1e-6f;
  std::int64_t window = 0;       // sliding window in positions; 0 = full attention
};

class Attention final : public TokenMixer {
 public:
  Attention(AttentionWeights weights, AttentionShape shape, std::vector<float> inv_freq, int cache_slot);
  void forward(const StepRows& rows, const float* normed, float* out, MixerContext& context) const override;
  std::uint64_t weight_bytes() const override;

 private:
  AttentionWeights weights_;
  AttentionShape shape_;
  std::vector<float> inv_freq_;  // [rotary_dim / 2] RoPE frequencies theta^(-2i / rotary_dim)
  int cache_slot_;               // which KV cache layer this layer writes
};

struct MlpWeights {
  Linear gate_proj;  // [intermediate, hidden]
  Linear up_proj;    // [intermediate, hidden]
  Linear down_proj;  // [hidden, intermediate]
};

struct DecoderLayer {
  LayerKind kind = LayerKind::full_attention;
  std::vector<float> input_norm;           // [hidden] RMSNorm weight (already 1 + w for zero-centred norms)
  std::unique_ptr<TokenMixer> mixer;
  std::vector<float> post_attention_norm;  // [hidden]
  MlpWeights mlp;
};

// Token embedding table, kept in its stored 16-bit format (or fp32).
struct Embedding {
  std::int64_t vocab = 0;
  std::int64_t width = 0;
  bool bf16 = true;                      // when bits16 is used: bf16 (else fp16)
  // [vocab, width] raw bf16/fp16, or null; shared with a tied lm_head.
  std::shared_ptr<const std::vector<std::uint16_t>> bits16;
  std::vector<float> floats;             // [vocab, width] when stored as fp32
  void row(TokenId id, float* out) const;  // out: [width]
};

struct ModelWeights {
  Embedding embed_tokens;                // [vocab, hidden]
  std::vector<DecoderLayer> layers;      // [num_hidden_layers]
  std::vector<float> final_norm;         // [hidden]
  Linear lm_head;                        // [vocab, hidden] (sharing embed_tokens' storage when tied)
  bool lm_head_shares_embedding = false; // lm_head reads embed_tokens' 16-bit table (tied, no copy)
};

// Per-layer hidden states of a forward step, for debugging and tests.
struct ForwardTrace {
  std::int64_t rows = 0;                 // M
  std::int64_t width = 0;                // hidden
  // [layers + 1, M, hidden]: embedding output, each layer's output except the
  // last, and the last entry after the final norm (as transformers reports them).
  std::vector<float> hidden_states;
};

class Model {
 public:
  // Opens, validates and loads a checkpoint directory (weights copied into the
  // kernels' layouts, so the files are not kept open). Throws CheckpointError for
  // bad checkpoints, std::runtime_error for unsupported architectures or devices.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir, const LoadOptions& options = {});
  // A model from weights built in memory (synthetic benchmarks, tests).
  Model(ModelConfig config, ModelWeights weights, const LoadOptions& options);
  ~Model();

  const ModelConfig& config() const { return config_; }
  const std::filesystem::path& directory() const { return directory_; }
  ThreadPool& pool() const { return *pool_; }
  KvCache& kv_cache() const { return *cache_; }
  std::uint64_t weight_bytes() const;        // bytes streamed per forward step (all linears + embedding row)
  std::uint64_t resident_weight_bytes() const;  // bytes of every weight held in memory (embedding table included)
  std::uint64_t lm_head_bytes() const { return weights_.lm_head.weight_bytes(); }
  const ModelWeights& weights() const { return weights_; }  // for benchmarks and debugging

  // Longest sequence (prompt + new tokens) this model accepts: the smaller of
  // max_position_embeddings and the KV cache capacity.
  std::int64_t max_sequence_tokens() const;
  // Throws ModelInputError when `ids` is empty or holds an id outside [0, vocab).
  void check_tokens(std::span<const TokenId> ids) const;

  // A sequence with room for `max_tokens` positions, or null when the KV cache
  // has too few free blocks right now (other sequences hold them). Throws
  // ModelInputError when `max_tokens` can never fit (context or cache capacity).
  std::unique_ptr<SequenceState> try_open_sequence(std::int64_t max_tokens);
  // Same, but throws when the cache is currently full.
  std::unique_ptr<SequenceState> open_sequence(std::int64_t max_tokens);

  // One step: appends `tokens[i]` to `states[i]` for every i (all in one batch)
  // and returns logits [R, vocab] row-major: the last new token of each
  // sequence, or every new token of sequence i when all_logits is set.
  struct Step {
    SequenceState* state = nullptr;
    std::span<const TokenId> tokens;
    bool all_logits = false;
  };
  std::vector<float> forward(std::span<const Step> steps, ForwardTrace* trace = nullptr);

  // Debugging/testing conveniences on a fresh sequence: logits [T, vocab] for
  // every position of `ids`, and the per-layer hidden states.
  std::vector<float> logits_for(std::span<const TokenId> ids);
  ForwardTrace hidden_states_for(std::span<const TokenId> ids);

 private:
  ModelConfig config_;
  std::filesystem::path directory_;
  ModelWeights weights_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<KvCache> cache_;
};

// Builds the model's token mixer for a layer; the extension point for new LayerKinds.
std::unique_ptr<TokenMixer> build_attention_mixer(const ModelConfig& config, LayerKind kind, AttentionWeights weights,
                                                  int cache_slot);
// RoPE inverse frequencies [rotary_dim / 2], computed as transformers does
// (base^(-2i/dim) in fp32 from an fp32 exponent), rounded to the model's dtype
// ("bfloat16", "float16"; anything else keeps fp32) like transformers' buffer.
std::vector<float> rope_inverse_frequencies(double theta, int rotary_dim, std::string_view model_dtype);
// The auto KV cache budget: 25% of physical RAM, at most 4 GiB (256 MiB when RAM is unknown).
std::uint64_t default_kv_cache_bytes();

}  // namespace quanteval::runtime
