#pragma once
// Random-weight models built in memory, for benchmarks: the shapes of a real
// checkpoint without its files. Values do not affect speed; they are kept
// small enough that activations stay finite through every layer.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "runtime/model.hpp"

namespace quanteval::runtime {

struct SyntheticModelSpec {
  // Defaults: Qwen2.5-Coder-0.5B (Qwen2 with q/k/v bias, tied embeddings).
  Architecture architecture = Architecture::qwen2;
  std::int64_t vocab_size = 151936;
  std::int64_t hidden_size = 896;
  std::int64_t intermediate_size = 4864;
  std::int64_t num_hidden_layers = 24;
  std::int64_t num_attention_heads = 14;
  std::int64_t num_key_value_heads = 2;
  std::int64_t head_dim = 64;
  std::int64_t max_position_embeddings = 32768;
  double rope_theta = 1000000.0;
  bool tie_word_embeddings = true;
  bool quantized = true;        // GPTQ INT4 for attention and MLP projections (else BF16)
  int group_size = 128;         // GPTQ group (v1 symmetric, no act-order: the layout of the published INT4 checkpoints)
  std::uint64_t seed = 1;
};

// The ModelConfig a checkpoint with these shapes would have.
ModelConfig synthetic_config(const SyntheticModelSpec& spec);

// Builds the model (weights generated and packed in memory; a few seconds for 0.5B).
std::unique_ptr<Model> make_synthetic_model(const SyntheticModelSpec& spec, const LoadOptions& options);

// Writes a random-weight checkpoint (config.json + model.safetensors) for any
// architecture the tensor table knows: every expected tensor gets random
// values of a size that keeps activations finite; projections are GPTQ v1
// symmetric when `config_json` has a quantization_config (except those real
// checkpoints keep in 16 bits: Qwen3.5's in_proj_a/in_proj_b and lm_head).
// For benchmarks of architectures that only load from files (Qwen3.5).
void write_synthetic_checkpoint(const std::string& config_json, const std::filesystem::path& dir, std::uint64_t seed = 1);

}  // namespace quanteval::runtime
