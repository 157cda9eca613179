#include "runtime/checkpoint/checkpoint.hpp"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>

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
      throw CheckpointError(
          fmt::format("{}: field weight_map.{}: expected a file name, got {}", source, tensor, shard.dump()));
    const std::string& file = shard.get_ref<const std::string&>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos || file.find('\0') != std::string::npos)
      throw CheckpointError(
          fmt::format("{}: field weight_map.{}: '{}' is not a plain file name in the model "
                      "directory",
                      source, tensor, file));
    tensors_by_shard[file].push_back(tensor);
  }
  if (tensors_by_shard.empty()) throw CheckpointError(fmt::format("{}: weight_map lists no tensors", source));
  return tensors_by_shard;
}

}  // namespace

std::optional<std::string> normalize_tensor_name(std::string_view file_name) {
  if (starts_with(file_name, "model.visual.") || starts_with(file_name, "mtp.") || starts_with(file_name, "model.mtp."))
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
    throw CheckpointError(
        fmt::format("{}: not a directory (expected a model directory with config.json)", model_dir.string()));

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
        throw CheckpointError(
            fmt::format("{}: shard {} listed in the index does not exist", index->string(), shard_path.string()));
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
        throw CheckpointError(
            fmt::format("{}: tensor '{}' is listed in model.safetensors.index.json for this shard "
                        "but is not in it",
                        file->path().string(), name));
    if (views.size() != only_these->size()) {
      std::set<std::string_view> listed(only_these->begin(), only_these->end());
      for (const TensorView& view : views)
        if (!listed.contains(view.name))
          throw CheckpointError(
              fmt::format("{}: tensor '{}' is in this shard but model.safetensors.index.json does "
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
    throw CheckpointError(
        fmt::format("{}: checkpoint has neither '{}.weight' nor '{}.qweight'", directory_.string(), prefix, prefix));
  }
  return module;
}

namespace {

template <typename T>
std::vector<T> copy_elements(const TensorView& view) {
  std::vector<T> out(view.bytes / sizeof(T));
  if (view.bytes) std::memcpy(out.data(), view.data, view.bytes);
  return out;
}

// The elements of `view` as a typed span: straight into the mapping when its
// bytes are aligned for T (what safetensors writers produce), else through a
// copy kept in `storage`.
template <typename T>
std::span<const T> elements_of(const TensorView& view, std::vector<T>& storage) {
  const std::size_t count = view.bytes / sizeof(T);
  if (reinterpret_cast<std::uintptr_t>(view.data) % alignof(T) == 0)
    return {reinterpret_cast<const T*>(view.data), count};
  storage = copy_elements<T>(view);
  return storage;
}

DenseSource dense_source(const TensorView& view, std::int64_t rows, std::int64_t cols) {
  if (view.dtype != DType::bf16 && view.dtype != DType::f16 && view.dtype != DType::f32)
    throw CheckpointError(fmt::format("{}: dtype {} is not supported for weights (BF16, F16 or F32)", view.describe(),
                                      dtype_name(view.dtype)));
  if (view.element_count() != rows * cols)
    throw CheckpointError(fmt::format("{}: expected {} x {} elements", view.describe(), rows, cols));
  DenseSource source;
  source.dtype = view.dtype;
  source.rows = rows;
  source.cols = cols;
  source.bytes = view.data;
  source.copy_to = [&view](void* destination) { copy_and_release(view, destination); };
  return source;
}

}  // namespace

OwnedGptqWeight view_gptq_weight(const LinearTensors& tensors, const QuantConfig& quant) {
  if (tensors.qweight->dtype != DType::i32 || tensors.qzeros->dtype != DType::i32)
    throw CheckpointError(fmt::format("{}: qweight and qzeros must be I32", tensors.prefix));
  if (tensors.scales->dtype != DType::f16 && tensors.scales->dtype != DType::bf16)
    throw CheckpointError(fmt::format("{}: scales must be F16 or BF16", tensors.prefix));
  if (tensors.g_idx && tensors.g_idx->dtype != DType::i32)
    throw CheckpointError(fmt::format("{}: g_idx must be I32", tensors.prefix));
  OwnedGptqWeight owned;
  GptqWeight& w = owned.weight;
  w.qweight = elements_of(*tensors.qweight, owned.qweight);
  w.qzeros = elements_of(*tensors.qzeros, owned.qzeros);
  w.scales = elements_of(*tensors.scales, owned.scales);
  if (tensors.g_idx) w.g_idx = elements_of(*tensors.g_idx, owned.g_idx);
  w.name = tensors.prefix;
  w.in_features = static_cast<int>(tensors.in_features);
  w.out_features = static_cast<int>(tensors.out_features);
  w.bits = quant.bits;
  w.group_size = static_cast<int>(quant.group_size);
  w.format = quant.format;
  w.sym = quant.sym;
  w.scale_format = tensors.scales->dtype == DType::bf16 ? ScaleFormat::bf16 : ScaleFormat::f16;
  try {
    w.validate();
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(e.what());
  }
  return owned;
}

bool CheckpointWeights::has_linear(std::string_view prefix) const {
  return checkpoint_.has(fmt::format("{}.weight", prefix)) || checkpoint_.has(fmt::format("{}.qweight", prefix));
}

LinearSource CheckpointWeights::linear(std::string_view prefix, std::int64_t out_features,
                                       std::int64_t in_features) const {
  const LinearTensors tensors = checkpoint_.linear(prefix);
  if (tensors.out_features != out_features || tensors.in_features != in_features)
    throw CheckpointError(fmt::format("{}: {}: shape [{}, {}], expected [{}, {}]", checkpoint_.directory().string(),
                                      prefix, tensors.out_features, tensors.in_features, out_features, in_features));
  LinearSource source;
  source.name = tensors.prefix;
  source.out_features = out_features;
  source.in_features = in_features;
  if (tensors.bias) {
    source.bias = to_float(*tensors.bias);
    if (static_cast<std::int64_t>(source.bias.size()) != out_features)
      throw CheckpointError(
          fmt::format("{}: bias has {} elements, expected {}", tensors.prefix, source.bias.size(), out_features));
    source.tensors.push_back(tensors.bias);
  }
  if (tensors.quantized) {
    if (!checkpoint_.quant_config())
      throw CheckpointError(fmt::format("{}: GPTQ tensors but no quantization config", tensors.prefix));
    auto owned = std::make_shared<OwnedGptqWeight>(view_gptq_weight(tensors, *checkpoint_.quant_config()));
    source.gptq = owned->weight;
    source.storage = owned;
    for (const TensorView* view : {tensors.qweight, tensors.qzeros, tensors.scales, tensors.g_idx})
      if (view) source.tensors.push_back(view);
  } else {
    source.dense = dense_source(*tensors.weight, out_features, in_features);
    source.tensors.push_back(tensors.weight);
  }
  return source;
}

std::vector<float> CheckpointWeights::vector(std::string_view name, std::int64_t elements) const {
  const TensorView& view = checkpoint_.tensor(name);
  if (view.element_count() != elements)
    throw CheckpointError(fmt::format("{}: expected {} elements", view.describe(), elements));
  std::vector<float> values = to_float(view);
  release_resident_pages(view);
  return values;
}

DenseSource CheckpointWeights::table(std::string_view name, std::int64_t rows, std::int64_t cols) const {
  const TensorView& view = checkpoint_.tensor(name);
  if (view.shape.size() != 2 || view.shape[0] != rows || view.shape[1] != cols)
    throw CheckpointError(fmt::format("{}: expected shape [{}, {}]", view.describe(), rows, cols));
  return dense_source(view, rows, cols);
}

void CheckpointWeights::release(const LinearSource& linear) const {
  for (const TensorView* view : linear.tensors) release_resident_pages(*view);
}

void CheckpointWeights::release_table(std::string_view name) const { release_resident_pages(checkpoint_.tensor(name)); }

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
    summary.bits_per_weight =
        static_cast<double>(summary.tensor_bytes) * 8.0 / static_cast<double>(summary.parameter_count);
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
