#pragma once
// Random weights with the shapes of a real checkpoint, for benchmarks and tests:
// a WeightSource the model builder loads exactly like a checkpoint, and a writer
// that puts the same weights on disk in a real checkpoint's layout (the seed
// model's included). Values do not affect speed; they are scaled so activations
// stay of order 1 through every layer.
//
// Every value is a pure function of (seed, tensor name, element index) -- a
// counter-based generator -- so a tensor is the same whether it is built in
// memory or streamed to disk in pieces, in any order.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/checkpoint/weight_source.hpp"

namespace quanteval::runtime {

// config.json text for a named shape:
//   qwen3.5-27b   the seed model: hidden 5120, 64 layers (48 Gated DeltaNet + 16 gated
//                 attention), 24/4 heads of 256, 16 key / 48 value linear heads of 128,
//                 intermediate 17408, vocab 248320, untied lm_head
//   qwen3.5-0.8b  hidden 1024, 24 layers (18 + 6), 8/2 heads of 256, 16/16 linear heads,
//                 intermediate 3584, vocab 248320, tied
//   qwen3.5-tiny  hidden 64, 4 layers (3 + 1), vocab 151936 (the Qwen3 tokenizer's padded
//                 size, so tests can pair it with that tokenizer), untied
//   qwen2.5-0.5b  Qwen2.5-Coder-0.5B: hidden 896, 24 layers, 14/2 heads of 64, q/k/v bias,
//                 intermediate 4864, vocab 151936, tied
// Throws std::invalid_argument naming the known shapes for any other name.
struct SyntheticShapeOptions {
  bool quantized = true;  // GPTQ v1 symmetric 4-bit
  int group_size = 128;
  bool act_order = false;   // desc_act with a non-monotonic g_idx
  bool multimodal = false;  // Qwen3.5: the published wrapper config (model_type qwen3_5, text_config, vision_config)
};
std::string synthetic_config_json(std::string_view shape, const SyntheticShapeOptions& options = {});

struct SyntheticWeightOptions {
  std::uint64_t seed = 1;
  // > 0: the output rows from this id on are padding, as in checkpoints whose
  // lm_head has more rows than the tokenizer has ids, and adversarial ones: the
  // rows of ids below it are zero and two padding rows are +v and -v, so for
  // every input some padding id has the largest logit. A sampler that does not
  // mask padding ids always picks one. Needs an untied lm_head.
  std::int64_t adversarial_padding_from = 0;
};

// One tensor as a checkpoint file stores it; fill(first, count, out) writes
// elements [first, first + count) in the file's dtype.
struct SyntheticTensor {
  std::string name;  // normalized name (model.layers.N...)
  DType dtype = DType::bf16;
  std::vector<std::int64_t> shape;
  std::function<void(std::int64_t first, std::int64_t count, void* out)> fill;
  std::int64_t elements() const;
  std::uint64_t bytes() const { return static_cast<std::uint64_t>(elements()) * dtype_size(dtype); }
};

// Random weights for `config`: projections GPTQ v1 symmetric with F16 scales when
// `quant` is set (except those real checkpoints keep in 16 bits: Qwen3.5's
// in_proj_a/in_proj_b and lm_head), act-order g_idx when quant says desc_act.
class SyntheticWeights final : public WeightSource {
 public:
  SyntheticWeights(ModelConfig config, std::optional<QuantConfig> quant, SyntheticWeightOptions options = {});
  // From config.json text (with its quantization_config, if any).
  static SyntheticWeights from_config_json(const std::string& config_json, SyntheticWeightOptions options = {});

  const ModelConfig& config() const override { return config_; }
  const std::optional<QuantConfig>& quant_config() const override { return quant_; }
  std::string describe() const override;
  bool has_linear(std::string_view prefix) const override;
  LinearSource linear(std::string_view prefix, std::int64_t out_features, std::int64_t in_features) const override;
  std::vector<float> vector(std::string_view name, std::int64_t elements) const override;
  DenseSource table(std::string_view name, std::int64_t rows, std::int64_t cols) const override;
  void release(const LinearSource&) const override {}
  void release_table(std::string_view) const override {}

  // Every tensor of the checkpoint, in tensor-table order.
  const std::vector<SyntheticTensor>& tensors() const { return tensors_; }

 private:
  const SyntheticTensor* find(std::string_view name) const;
  std::vector<std::byte> materialize(const SyntheticTensor& tensor) const;

  ModelConfig config_;
  std::optional<QuantConfig> quant_;
  SyntheticWeightOptions options_;
  std::vector<SyntheticTensor> tensors_;
};

struct SyntheticCheckpointOptions {
  SyntheticWeightOptions weights;
  // Split into shards of about this many bytes, named and indexed as Hugging Face
  // does (model-00001-of-0000N.safetensors + model.safetensors.index.json); 0 = one file.
  std::uint64_t shard_bytes = 0;
  // The Qwen3.5 multimodal wrapper as published: language-model weights under
  // model.language_model.*, plus vision-tower (model.visual.*) and MTP (mtp.*)
  // tensors the runtime must recognise and leave unread. Needs a Qwen3.5 config
  // with text_config (and optionally vision_config.hidden_size).
  bool multimodal = false;
};

// Writes config.json and the safetensors file(s) of SyntheticWeights for
// `config_json`. Values are generated while each shard is written, so memory
// stays small at any model size.
void write_synthetic_checkpoint(const std::string& config_json, const std::filesystem::path& dir,
                                const SyntheticCheckpointOptions& options = {});

}  // namespace quanteval::runtime
