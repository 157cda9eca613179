#include "runtime/checkpoint/checkpoint.hpp"

#include <fmt/format.h>

#include <map>
#include <set>
#include <nlohmann/json.hpp>

namespace quanteval::runtime {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }
bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::optional<fs::path> if_exists(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  return std::nullopt;
}

// The shard names of an index, checked: each must be a plain file name in the
// model directory (an untrusted index must not point at /etc/passwd or ../x).
std::map<std::string, std::vector<std::string>> read_index(const fs::path& index_path) {
  const std::string source = index_path.string();
  const json root = parse_untrusted_json(read_text_file(index_path), source, "safetensors index");
  if (!root.is_object() || !root.contains("weight_map") || !root["weight_map"].is_object())
    throw CheckpointError(fmt::format("{}: field weight_map: missing or not an object", source));
  std::map<std::string, std::vector<std::string>> tensors_by_shard;
  for (const auto& [tensor, shard] : root["weight_map"].items()) {
    if (!shard.is_string())
      throw CheckpointError(fmt::format("{}: field weight_map.{}: expected a file name, got {}", source, tensor,
                                        shard.dump()));
    const std::string& file = shard.get_ref<const std::string&>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos || file.find('\0') != std::string::npos)
      throw CheckpointError(fmt::format("{}: field weight_map.{}: '{}' is not a plain file name in the model "
                                        "directory",
                                        source, tensor, file));
    tensors_by_shard[file].push_back(tensor);
  }
  if (tensors_by_shard.empty()) throw CheckpointError(fmt::format("{}: weight_map lists no tensors", source));
  return tensors_by_shard;
}

}  // namespace

std::optional<std::string> normalize_tensor_name(std::string_view file_name) {
  if (starts_with(file_name, "model.visual.") || starts_with(file_name, "mtp.") ||
      starts_with(file_name, "model.mtp."))
    return std::nullopt;
  constexpr std::string_view wrapped = "model.language_model.";
  if (starts_with(file_name, wrapped)) return "model." + std::string(file_name.substr(wrapped.size()));
  return std::string(file_name);
}

Checkpoint Checkpoint::open(const fs::path& model_dir) {
  std::error_code ec;
  if (!fs::exists(model_dir, ec))
    throw CheckpointError(fmt::format("{}: model directory does not exist", model_dir.string()));
  if (!fs::is_directory(model_dir, ec))
    throw CheckpointError(fmt::format("{}: not a directory (expected a model directory with config.json)",
                                      model_dir.string()));

  Checkpoint checkpoint;
  checkpoint.directory_ = model_dir;
  CheckpointFiles& files = checkpoint.files_;
  files.config_json = model_dir / "config.json";
  if (!if_exists(files.config_json))
    throw CheckpointError(fmt::format("{}: missing (not a Hugging Face model directory?)", files.config_json.string()));
  files.generation_config_json = if_exists(model_dir / "generation_config.json");
  files.quantize_config_json = if_exists(model_dir / "quantize_config.json");
  if (!files.quantize_config_json) files.quantize_config_json = if_exists(model_dir / "quant_config.json");
  files.tokenizer_json = if_exists(model_dir / "tokenizer.json");
  files.tokenizer_config_json = if_exists(model_dir / "tokenizer_config.json");
  files.chat_template_jinja = if_exists(model_dir / "chat_template.jinja");

  checkpoint.config_ = load_model_config(model_dir);
  checkpoint.quant_ = load_quant_config(model_dir);

  // Which weight files: model.safetensors, else the index's shards, else the
  // directory's only *.safetensors (older AutoGPTQ exports name it freely).
  if (auto single = if_exists(model_dir / "model.safetensors")) {
    files.safetensors.push_back(*single);
    checkpoint.add_file(std::make_unique<SafetensorsFile>(*single), nullptr);
  } else if (auto index = if_exists(model_dir / "model.safetensors.index.json")) {
    files.safetensors_index = index;
    for (const auto& [shard, names] : read_index(*index)) {
      const fs::path shard_path = model_dir / shard;
      if (!if_exists(shard_path))
        throw CheckpointError(fmt::format("{}: shard {} listed in the index does not exist", index->string(),
                                          shard_path.string()));
      files.safetensors.push_back(shard_path);
      checkpoint.add_file(std::make_unique<SafetensorsFile>(shard_path), &names);
    }
  } else {
    std::vector<fs::path> candidates;
    for (const auto& entry : fs::directory_iterator(model_dir, ec))
      if (entry.is_regular_file() && entry.path().extension() == ".safetensors") candidates.push_back(entry.path());
    if (candidates.size() != 1)
      throw CheckpointError(fmt::format("{}: no model.safetensors or model.safetensors.index.json{}",
                                        model_dir.string(),
                                        candidates.empty() ? std::string()
                                                           : fmt::format(", and {} other .safetensors files make "
                                                                         "the choice ambiguous",
                                                                         candidates.size())));
    files.safetensors.push_back(candidates.front());
    checkpoint.add_file(std::make_unique<SafetensorsFile>(candidates.front()), nullptr);
  }
  return checkpoint;
}

void Checkpoint::add_file(std::unique_ptr<SafetensorsFile> file, const std::vector<std::string>* only_these) {
  std::vector<TensorView> views = file->tensors();
  if (only_these) {
    // The index and the shard must agree both ways: a name the index promises
    // but the shard lacks, and a tensor the index does not list, are both errors.
    for (const std::string& name : *only_these)
      if (!file->contains(name))
        throw CheckpointError(fmt::format("{}: tensor '{}' is listed in model.safetensors.index.json for this shard "
                                          "but is not in it",
                                          file->path().string(), name));
    if (views.size() != only_these->size()) {
      std::set<std::string_view> listed(only_these->begin(), only_these->end());
      for (const TensorView& view : views)
        if (!listed.contains(view.name))
          throw CheckpointError(fmt::format("{}: tensor '{}' is in this shard but model.safetensors.index.json does "
                                            "not list it here",
                                            file->path().string(), view.name));
    }
  }
  for (TensorView& view : views) {
    const std::optional<std::string> name = normalize_tensor_name(view.name);
    if (!name) {
      ignored_.push_back(view.name);
      continue;
    }
    if (const auto existing = tensors_.find(*name); existing != tensors_.end())
      throw CheckpointError(fmt::format("{}: tensor '{}' (normalized to '{}') is also provided by '{}' in {}",
                                        file->path().string(), view.name, *name, existing->second.name,
                                        existing->second.file.string()));
    tensors_.emplace(*name, std::move(view));
  }
  shards_.push_back(std::move(file));
}

const TensorView& Checkpoint::tensor(std::string_view name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw CheckpointError(fmt::format("{}: checkpoint has no tensor '{}'", directory_.string(), name));
  return it->second;
}

LinearTensors Checkpoint::linear(std::string_view prefix) const {
  auto find = [&](std::string_view suffix) -> const TensorView* {
    const auto it = tensors_.find(fmt::format("{}{}", prefix, suffix));
    return it == tensors_.end() ? nullptr : &it->second;
  };
  LinearTensors module;
  module.prefix = std::string(prefix);
  module.bias = find(".bias");
  if ((module.qweight = find(".qweight"))) {
    module.quantized = true;
    module.qzeros = find(".qzeros");
    module.scales = find(".scales");
    module.g_idx = find(".g_idx");
    if (!module.qzeros || !module.scales || module.qweight->shape.size() != 2)
      throw CheckpointError(fmt::format("{}: GPTQ module '{}' is incomplete (needs qweight [K/8, N], qzeros, scales)",
                                        directory_.string(), prefix));
    module.in_features = module.qweight->shape[0] * 8;  // 8 four-bit weights per int32 along K
    module.out_features = module.qweight->shape[1];
  } else if ((module.weight = find(".weight"))) {
    if (module.weight->shape.size() != 2)
      throw CheckpointError(fmt::format("{}: '{}.weight' is not a matrix", directory_.string(), prefix));
    module.out_features = module.weight->shape[0];
    module.in_features = module.weight->shape[1];
  } else {
    throw CheckpointError(fmt::format("{}: checkpoint has neither '{}.weight' nor '{}.qweight'", directory_.string(),
                                      prefix, prefix));
  }
  return module;
}

ValidationReport Checkpoint::check() const { return check_tensors(config_, quant_, tensors_); }

void Checkpoint::validate() const {
  const ValidationReport report = check();
  if (report.ok()) return;
  throw CheckpointError(fmt::format("{}: {} tensor problem(s) for a {} model:\n  {}", directory_.string(),
                                    report.errors.size(), architecture_name(config_.architecture),
                                    fmt::join(report.errors, "\n  ")));
}

CheckpointSummary Checkpoint::summary() const {
  CheckpointSummary summary;
  for (const auto& [name, tensor] : tensors_) {
    summary.tensor_bytes += tensor.bytes;
    if (ends_with(name, ".qweight") && tensor.shape.size() == 2) {
      const std::int64_t logical = tensor.shape[0] * 8 * tensor.shape[1];  // K x N; bounded by the file size
      summary.parameter_count += logical;
      summary.quantized_parameter_count += logical;
      summary.quantized_bytes += tensor.bytes;
      ++summary.quantized_module_count;
    } else if (ends_with(name, ".qzeros") || ends_with(name, ".scales") || ends_with(name, ".g_idx")) {
      summary.quantized_bytes += tensor.bytes;  // quantization metadata, not parameters
    } else {
      summary.parameter_count += tensor.element_count();
    }
  }
  if (summary.parameter_count > 0)
    summary.bits_per_weight = static_cast<double>(summary.tensor_bytes) * 8.0 / static_cast<double>(summary.parameter_count);
  if (summary.quantized_parameter_count > 0)
    summary.quantized_bits_per_weight =
        static_cast<double>(summary.quantized_bytes) * 8.0 / static_cast<double>(summary.quantized_parameter_count);
  for (const auto& shard : shards_) summary.size_on_disk += shard->file_size();
  summary.tensor_count = tensors_.size();
  summary.ignored_tensor_count = ignored_.size();
  summary.shard_count = shards_.size();
  return summary;
}

}  // namespace quanteval::runtime
