#pragma once
// A Hugging Face model directory opened for the runtime:
//   config.json                      architecture (ModelConfig)
//   quantization_config / quantize_config.json / quant_config.json   GPTQ settings (QuantConfig)
//   model.safetensors, or shards listed in model.safetensors.index.json   tensors (memory-mapped)
//   generation_config.json           extra eos/bos ids (optional)
//   tokenizer.json, tokenizer_config.json, chat_template.jinja   located here, read by the tokenizer
//
// Tensor names are normalized so model code sees one spelling: the Qwen3.5
// multimodal wrapper's `model.language_model.X` becomes `model.X`; the vision
// tower (`model.visual.*`) and multi-token-prediction head (`mtp.*`) are set
// aside as ignored tensors.
//
// Usage:
//   auto checkpoint = Checkpoint::open(dir);  // parses configs, maps files, checks every header
//   checkpoint.validate();                    // every expected tensor present with the right shape
//   const TensorView& norm = checkpoint.tensor("model.norm.weight");
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/quant_config.hpp"
#include "runtime/checkpoint/safetensors.hpp"
#include "runtime/checkpoint/tensor_table.hpp"
#include "runtime/checkpoint/weight_source.hpp"

namespace quanteval::runtime {

// The files of a model directory that the runtime knows about.
struct CheckpointFiles {
  std::filesystem::path config_json;
  std::vector<std::filesystem::path> safetensors;          // one file, or every shard of the index (each once)
  std::optional<std::filesystem::path> safetensors_index;  // model.safetensors.index.json when sharded
  std::optional<std::filesystem::path> generation_config_json;
  std::optional<std::filesystem::path> quantize_config_json;  // quantize_config.json or quant_config.json
  std::optional<std::filesystem::path> tokenizer_json;
  std::optional<std::filesystem::path> tokenizer_config_json;
  std::optional<std::filesystem::path> chat_template_jinja;
};

// The tensors of one projection y = x W^T + b. Exactly one of `weight`
// (dense) or the GPTQ group (`qweight`, `qzeros`, `scales`, optional `g_idx`)
// is set. Pointers refer into the Checkpoint and live as long as it does.
struct LinearTensors {
  std::string prefix;  // e.g. "model.layers.0.mlp.down_proj"
  bool quantized = false;
  std::int64_t out_features = 0;        // N
  std::int64_t in_features = 0;         // K
  const TensorView* weight = nullptr;   // dense: [N, K] BF16/F16/F32
  const TensorView* qweight = nullptr;  // GPTQ: I32 [K/8, N]
  const TensorView* qzeros = nullptr;   // GPTQ: I32 [groups, N/8]
  const TensorView* scales = nullptr;   // GPTQ: F16/BF16 [groups, N]
  const TensorView* g_idx = nullptr;    // GPTQ: I32 [K], may be null without desc_act
  const TensorView* bias = nullptr;     // [N] or null
};

// What `quanteval inspect` reports about the weights.
struct CheckpointSummary {
  std::int64_t parameter_count = 0;            // dense elements + K x N for each quantized module
  std::int64_t quantized_parameter_count = 0;  // K x N summed over quantized modules
  std::int64_t quantized_module_count = 0;
  std::uint64_t tensor_bytes = 0;        // bytes of all used tensors (ignored ones excluded)
  std::uint64_t quantized_bytes = 0;     // qweight + qzeros + scales + g_idx bytes
  double bits_per_weight = 0;            // tensor_bytes x 8 / parameter_count
  double quantized_bits_per_weight = 0;  // quantized_bytes x 8 / quantized_parameter_count (0 if none)
  std::uint64_t size_on_disk = 0;        // bytes of the safetensors files, headers and ignored tensors included
  std::size_t tensor_count = 0;          // used tensors
  std::size_t ignored_tensor_count = 0;  // vision tower / MTP tensors set aside
  std::size_t shard_count = 0;
};

class Checkpoint {
 public:
  // Opens and checks everything except the tensor table (see validate()).
  // Throws CheckpointError naming the directory, file, field or tensor.
  static Checkpoint open(const std::filesystem::path& model_dir);

  const std::filesystem::path& directory() const { return directory_; }
  const ModelConfig& config() const { return config_; }
  const std::optional<QuantConfig>& quant_config() const { return quant_; }
  const CheckpointFiles& files() const { return files_; }

  const TensorMap& tensors() const { return tensors_; }  // by normalized name
  bool has(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }
  const TensorView& tensor(std::string_view name) const;  // throws CheckpointError naming the tensor
  LinearTensors linear(std::string_view prefix) const;    // throws when neither .weight nor .qweight exists
  const std::vector<std::string>& ignored_tensors() const { return ignored_; }  // names as in the file

  ValidationReport check() const;  // the table check, all problems collected
  void validate() const;           // check(), throwing one CheckpointError that lists every error
  CheckpointSummary summary() const;

 private:
  Checkpoint() = default;
  void add_file(std::unique_ptr<SafetensorsFile> file, const std::vector<std::string>* only_these);

  std::filesystem::path directory_;
  ModelConfig config_;
  std::optional<QuantConfig> quant_;
  CheckpointFiles files_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;  // own the mappings the views point into
  TensorMap tensors_;
  std::vector<std::string> ignored_;
};

// The GPTQ tensors of `tensors` as a GptqWeight: typed spans straight into the
// checkpoint's mapping where the bytes are aligned for their type (the usual
// case), copies held by the returned object where not (safetensors does not
// promise alignment). Valid while the checkpoint is open. Throws
// CheckpointError when the dtypes or the tensors are inconsistent.
OwnedGptqWeight view_gptq_weight(const LinearTensors& tensors, const QuantConfig& quant);

// A checkpoint as the model builder's weight source. The checkpoint must outlive it.
class CheckpointWeights final : public WeightSource {
 public:
  explicit CheckpointWeights(const Checkpoint& checkpoint) : checkpoint_(checkpoint) {}
  const ModelConfig& config() const override { return checkpoint_.config(); }
  const std::optional<QuantConfig>& quant_config() const override { return checkpoint_.quant_config(); }
  std::string describe() const override { return checkpoint_.directory().string(); }
  bool has_linear(std::string_view prefix) const override;
  LinearSource linear(std::string_view prefix, std::int64_t out_features, std::int64_t in_features) const override;
  std::vector<float> vector(std::string_view name, std::int64_t elements) const override;
  DenseSource table(std::string_view name, std::int64_t rows, std::int64_t cols) const override;
  void release(const LinearSource& linear) const override;
  void release_table(std::string_view name) const override;

 private:
  const Checkpoint& checkpoint_;
};

// The normalized name for a tensor as spelled in a file, or nullopt when the
// runtime ignores it (vision tower, MTP head).
std::optional<std::string> normalize_tensor_name(std::string_view file_name);

}  // namespace quanteval::runtime
