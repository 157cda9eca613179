#pragma once
// The decoder stack of every architecture the runtime serves -- Qwen2/Qwen2.5,
// Qwen3 and the Qwen3.5 hybrid -- written once over a backend's ops
// (backend.hpp). Architectures differ only in a layer's token mixer (softmax
// attention with their options, or the Gated DeltaNet) and in what the config
// says; norms, MLP, embedding, lm_head and memory are shared.
//
//   hidden = embed(tokens)                                      [M, hidden]
//   for each layer:  hidden += mixer(rmsnorm(hidden))           attention | Gated DeltaNet
//                    hidden += mlp(rmsnorm(hidden))             SwiGLU
//   logits = lm_head(rmsnorm(hidden[rows that want logits]))    [R, vocab]
//
// One forward step takes any number of sequences with any number of new tokens
// each (a prompt, one decode token, or a mix): their rows form one [M, hidden]
// matrix, so every projection runs once with m = M.
//
// The plain reference path (reference.hpp) is kept apart on purpose, as llm.c
// keeps train_gpt2.c beside train_gpt2.cu: one readable statement of the math
// that shares nothing with this fast path but the weights, so a bug here cannot
// hide by being repeated there.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/weight_source.hpp"
#include "runtime/model/backend.hpp"
#include "runtime/model/memory.hpp"
#include "runtime/platform/device.hpp"

namespace quanteval::runtime {

// A request the model cannot serve (bad ids, too long, memory too small).
struct ModelInputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Which projection kernels the CPU backend builds.
enum class LinearKernels {
  fast,       // INT4 repacked (int16 activations) and 16-bit dense SIMD kernels
  reference,  // fp32 weights (GPTQ dequantized exactly) and plain loops: slow, for checking the fast ones
};

struct LoadOptions {
  Device device = Device::cpu;
  int threads = 0;  // 0 = std::thread::hardware_concurrency()
  // Memory for K/V blocks and recurrent state slots together (HybridMemory);
  // 0 = auto: 25% of physical RAM, at most 4 GiB.
  std::uint64_t kv_cache_bytes = 0;
  int kv_block_tokens = 16;  // positions per K/V block
  int max_sequences = 16;    // sequences that may run at once: one recurrent state slot each
  // On a GPU with kv_cache_bytes = 0: the fraction of the device's memory the process may use;
  // the model memory gets what the weights, the context and kGpuScratchReserve leave of it.
  double gpu_memory_utilization = 0.9;
  LinearKernels linears = LinearKernels::fast;
};

// The part of a decoder layer that mixes information across positions.
class TokenMixer {
 public:
  virtual ~TokenMixer() = default;
  // normed, out: [M, hidden]; every element of out written. Appends what it
  // needs from these rows to the sequences' memory.
  virtual void forward(Backend& backend, const StepBatch& batch, Tensor normed, Tensor out) const = 0;
  virtual std::uint64_t weight_bytes() const = 0;
};

struct Mlp {
  std::unique_ptr<LinearWeight> gate_proj;  // [intermediate, hidden]
  std::unique_ptr<LinearWeight> up_proj;    // [intermediate, hidden]
  std::unique_ptr<LinearWeight> down_proj;  // [hidden, intermediate]
};

struct DecoderLayer {
  LayerKind kind = LayerKind::full_attention;
  std::unique_ptr<VectorWeight> input_norm;  // [hidden] (1 + w already for zero-centred norms)
  std::unique_ptr<TokenMixer> mixer;
  std::unique_ptr<VectorWeight> post_attention_norm;  // [hidden]
  Mlp mlp;
};

struct ModelWeights {
  std::unique_ptr<TableWeight> embed_tokens;  // [vocab, hidden]
  std::vector<DecoderLayer> layers;           // [num_hidden_layers]
  std::unique_ptr<VectorWeight> final_norm;   // [hidden]
  std::unique_ptr<LinearWeight> lm_head;      // [vocab, hidden]; reads embed_tokens' table when tied
  bool lm_head_shares_embedding = false;
};

// Per-layer hidden states of a forward step, for debugging and tests.
struct ForwardTrace {
  std::int64_t rows = 0;   // M
  std::int64_t width = 0;  // hidden
  // [layers + 1, M, hidden]: embedding output, each layer's output except the
  // last, and the last entry after the final norm (as transformers reports them).
  std::vector<float> hidden_states;
};

class Model {
 public:
  // Opens, validates and loads a checkpoint directory (weights copied into the
  // backend's layouts, so the files are not kept open). Throws CheckpointError for
  // bad checkpoints, std::runtime_error for unsupported architectures or devices.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir, const LoadOptions& options = {});
  // A model from any weight source (SyntheticWeights for benchmarks and tests),
  // built by the same code as load().
  static std::unique_ptr<Model> build(const WeightSource& weights, const LoadOptions& options = {});
  // The same on a backend the caller made (options.device and options.linears are then
  // the backend's business): tests run a backend under test, or one with a planted fault.
  static std::unique_ptr<Model> load(const std::filesystem::path& dir, const LoadOptions& options,
                                     std::unique_ptr<Backend> backend);
  static std::unique_ptr<Model> build(const WeightSource& weights, const LoadOptions& options,
                                      std::unique_ptr<Backend> backend);
  ~Model();

  const ModelConfig& config() const { return config_; }
  const std::filesystem::path& directory() const { return directory_; }
  Backend& backend() const { return *backend_; }
  HybridMemory& memory() const { return *memory_; }
  const ModelWeights& weights() const { return weights_; }  // for benchmarks and debugging

  std::uint64_t weight_bytes() const;  // bytes streamed per forward step (all projections + norms)
  std::uint64_t lm_head_bytes() const { return weights_.lm_head->weight_bytes(); }
  std::uint64_t resident_weight_bytes() const;  // bytes of every weight held (embedding table included)

  // Longest sequence (prompt + new tokens) this model accepts: the smaller of
  // max_position_embeddings and the memory's K/V capacity.
  std::int64_t max_sequence_tokens() const;
  // Throws ModelInputError when `ids` is empty or holds an id outside [0, vocab).
  void check_tokens(std::span<const TokenId> ids) const;

  // A sequence with room for `max_tokens` positions, or null when the memory has
  // too few free blocks or no free state slot right now (other sequences hold
  // them). Throws ModelInputError when `max_tokens` can never fit.
  std::unique_ptr<SequenceState> try_open_sequence(std::int64_t max_tokens);
  // Same, but throws when the memory is currently full.
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
  // Decoder layer `layer` alone applied to `hidden` [tokens, hidden] at positions
  // 0..tokens-1 of a fresh sequence: isolates one layer when results diverge.
  std::vector<float> layer_for(int layer, std::span<const float> hidden);

 private:
  // The activations of one step: residual [M, hidden] (the residual stream), normed
  // and branch [M, hidden], gate and up [M, intermediate].
  struct StepTensors {
    Tensor residual, normed, branch, gate, up;
  };
  Model() = default;
  StepBatch make_batch(std::span<const Step> steps, std::vector<std::int64_t>& logit_rows) const;
  StepTensors step_tensors(std::int64_t rows) const;
  void run_layer(const DecoderLayer& layer, const StepBatch& batch, const StepTensors& t,
                 const VectorWeight* next_input_norm) const;

  ModelConfig config_;
  std::filesystem::path directory_;
  std::unique_ptr<Backend> backend_;  // declared before the weights and memory it owns the storage of
  ModelWeights weights_;
  std::unique_ptr<HybridMemory> memory_;
};

// RoPE inverse frequencies [rotary_dim / 2], computed as transformers does
// (base^(-2i/dim) in fp32 from an fp32 exponent), rounded to the model's dtype
// ("bfloat16", "float16"; anything else keeps fp32) like transformers' buffer.
std::vector<float> rope_inverse_frequencies(double theta, int rotary_dim, std::string_view model_dtype);
// The auto memory budget: 25% of physical RAM, at most 4 GiB (256 MiB when RAM is unknown).
std::uint64_t default_kv_cache_bytes();
// GPU memory kept out of the model memory's budget for one step's scratch tensors (activations
// of a 4096-row prefill of the 27B shape take about 1 GiB, attention partials and logits the rest).
inline constexpr std::uint64_t kGpuScratchReserve = std::uint64_t{2} << 30;

}  // namespace quanteval::runtime
