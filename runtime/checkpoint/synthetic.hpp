#pragma once
// Random-weight models built in memory, for benchmarks: the shapes of a real
// checkpoint without its files. Values do not affect speed; they are kept
// small enough that activations stay finite through every layer.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "runtime/model/model.hpp"

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

// config.json text for a named shape, for write_synthetic_checkpoint:
//   qwen3.5-27b   the seed model: hidden 5120, 64 layers (48 Gated DeltaNet + 16 gated
//                 attention), 24/4 heads of 256, 16 key / 48 value linear heads of 128,
//                 intermediate 17408, vocab 248320, untied lm_head
//   qwen3.5-0.8b  hidden 1024, 24 layers (18 + 6), 8/2 heads of 256, 16/16 linear heads,
//                 intermediate 3584, vocab 248320, tied
//   qwen3.5-tiny  hidden 64, 4 layers (3 + 1), vocab 151936 (the Qwen3 tokenizer's padded
//                 size, so tests can pair it with that tokenizer), untied
// Throws std::invalid_argument naming the known shapes for any other name.
struct SyntheticShapeOptions {
  bool quantized = true;   // GPTQ v1 symmetric 4-bit
  int group_size = 128;
  bool act_order = false;  // desc_act with a non-monotonic g_idx
  bool multimodal = false; // the published wrapper config: model_type qwen3_5, text_config, vision_config
};
std::string synthetic_config_json(std::string_view shape, const SyntheticShapeOptions& options = {});

struct SyntheticCheckpointOptions {
  std::uint64_t seed = 1;
  // Split into shards of about this many bytes, named and indexed as Hugging Face
  // does (model-00001-of-0000N.safetensors + model.safetensors.index.json); 0 = one file.
  std::uint64_t shard_bytes = 0;
  // The Qwen3.5 multimodal wrapper as published: language-model weights under
  // model.language_model.*, plus vision-tower (model.visual.*) and MTP (mtp.*)
  // tensors the runtime must recognise and leave unread. Needs a Qwen3.5 config
  // with text_config (and optionally vision_config.hidden_size).
  bool multimodal = false;
  // > 0: the output rows from this id on are padding, as in checkpoints whose
  // lm_head has more rows than the tokenizer has ids, and adversarial ones: the
  // rows of ids below it are zero and two padding rows are +v and -v, so for
  // every input some padding id has the largest logit. A sampler that does not
  // mask padding ids always picks one. Needs an untied lm_head.
  std::int64_t adversarial_padding_from = 0;
};

// Writes a random-weight checkpoint (config.json + safetensors) for any
// architecture the tensor table knows: every expected tensor gets random
// values of a size that keeps activations finite; projections are GPTQ v1
// symmetric with F16 scales when `config_json` has a quantization_config (except
// those real checkpoints keep in 16 bits: Qwen3.5's in_proj_a/in_proj_b and
// lm_head), with act-order g_idx when it says desc_act. Values are generated
// while each shard is written, so memory stays small at any model size.
void write_synthetic_checkpoint(const std::string& config_json, const std::filesystem::path& dir,
                                const SyntheticCheckpointOptions& options = {});

}  // namespace quanteval::runtime
