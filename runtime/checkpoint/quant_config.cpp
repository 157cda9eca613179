#include "runtime/checkpoint/quant_config.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "runtime/checkpoint/model_config.hpp"  // parse_untrusted_json, read_text_file, CheckpointError

namespace quanteval::runtime {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

CheckpointError field_error(std::string_view source, std::string_view field, std::string_view why) {
  return CheckpointError(fmt::format("{}: field {}: {}", source, field, why));
}

// The first present, non-null spelling among `names`; two spellings with
// different values are an error rather than a silent preference.
const json* one_of(const json& object, std::initializer_list<std::string_view> names, std::string_view source) {
  const json* found = nullptr;
  std::string_view found_name;
  for (const std::string_view name : names) {
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) continue;
    if (found && *found != *it)
      throw field_error(source, name, fmt::format("{} disagrees with {} {}", it->dump(), found_name, found->dump()));
    if (!found) {
      found = &*it;
      found_name = name;
    }
  }
  return found;
}

std::string string_field(const json& value, std::string_view source, std::string_view field) {
  if (!value.is_string()) throw field_error(source, field, fmt::format("expected a string, got {}", value.dump()));
  return value.get<std::string>();
}

bool bool_field(const json& object, std::string_view name, bool fallback, std::string_view source) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw field_error(source, name, fmt::format("expected true or false, got {}", it->dump()));
  return it->get<bool>();
}

}  // namespace

std::string_view gptq_format_name(GptqFormat format) { return format == GptqFormat::v1 ? "gptq" : "gptq_v2"; }

std::string QuantConfig::describe() const {
  return fmt::format("GPTQ {}-bit, group {}, {}, {}, format {} ({})", bits,
                     group_size < 0 ? std::string("-1 (per channel)") : std::to_string(group_size),
                     sym ? "sym" : "asym", desc_act ? "desc_act" : "no desc_act", gptq_format_name(format),
                     format == GptqFormat::v1 ? "v1" : "v2");
}

bool QuantConfig::operator==(const QuantConfig& other) const {
  return method == other.method && bits == other.bits && group_size == other.group_size && sym == other.sym &&
         desc_act == other.desc_act && format == other.format && lm_head_quantized == other.lm_head_quantized;
}

QuantConfig parse_quant_config(const json& object, std::string_view source) {
  if (!object.is_object()) throw CheckpointError(fmt::format("{}: quantization config is not a JSON object", source));
  QuantConfig config;
  config.source = std::string(source);

  if (const json* method = one_of(object, {"quant_method", "method"}, source)) {
    config.method = string_field(*method, source, "quant_method");
    if (config.method != "gptq")
      throw field_error(
          source, "quant_method",
          fmt::format("unsupported quantization method '{}' (only GPTQ checkpoints are supported)", config.method));
  }

  const json* bits = object.contains("bits") ? &object["bits"] : nullptr;
  if (!bits || !bits->is_number_integer())
    throw field_error(source, "bits", bits ? fmt::format("expected an integer, got {}", bits->dump()) : "missing");
  if (bits->get<std::int64_t>() != 4)
    throw field_error(source, "bits", fmt::format("{}-bit GPTQ is not supported (only 4-bit)", bits->dump()));
  config.bits = 4;

  const json* group = object.contains("group_size") ? &object["group_size"] : nullptr;
  if (!group || !group->is_number_integer())
    throw field_error(source, "group_size",
                      group ? fmt::format("expected an integer, got {}", group->dump()) : "missing");
  config.group_size = group->get<std::int64_t>();
  if (config.group_size != 32 && config.group_size != 64 && config.group_size != 128 && config.group_size != -1)
    throw field_error(
        source, "group_size",
        fmt::format("{} is not supported (32, 64, 128 or -1, the sizes the INT4 kernels implement)", group->dump()));

  config.sym = bool_field(object, "sym", true, source);
  config.desc_act = bool_field(object, "desc_act", false, source);
  config.lm_head_quantized = bool_field(object, "lm_head", false, source);

  if (const json* format = one_of(object, {"checkpoint_format", "format"}, source)) {
    const std::string name = string_field(*format, source, "checkpoint_format");
    if (name == "gptq")
      config.format = GptqFormat::v1;
    else if (name == "gptq_v2")
      config.format = GptqFormat::v2;
    else
      throw field_error(source, "checkpoint_format",
                        fmt::format("unsupported format '{}' (gptq or gptq_v2; repacked formats such as marlin "
                                    "use a different layout)",
                                    name));
  }

  if (const auto pack = object.find("pack_dtype"); pack != object.end() && !pack->is_null()) {
    const std::string name = string_field(*pack, source, "pack_dtype");
    if (name != "int32" && name != "torch.int32")
      throw field_error(source, "pack_dtype", fmt::format("unsupported packing '{}' (only int32)", name));
  }
  if (const auto dynamic = object.find("dynamic");
      dynamic != object.end() && !dynamic->is_null() && !(dynamic->is_object() && dynamic->empty()))
    throw field_error(source, "dynamic", "per-module quantization overrides are not supported");

  if (!config.sym && config.format == GptqFormat::v1)
    throw field_error(source, "sym",
                      "asymmetric GPTQ v1 is not supported: v1 stores zero-1 in 4 bits, so a zero of 0 is "
                      "unrepresentable and stored zeros are ambiguous; use a gptq_v2 checkpoint");
  return config;
}

QuantConfig parse_quant_config_text(std::string_view json_text, std::string_view source) {
  return parse_quant_config(parse_untrusted_json(json_text, source, "quantization config"), source);
}

std::optional<QuantConfig> quant_config_in_model_config(std::string_view config_json_text, std::string_view source) {
  const json root = parse_untrusted_json(config_json_text, source, "config");
  if (!root.is_object()) throw CheckpointError(fmt::format("{}: config is not a JSON object", source));
  const auto it = root.find("quantization_config");
  if (it == root.end() || it->is_null()) return std::nullopt;
  return parse_quant_config(*it, fmt::format("{} (quantization_config)", source));
}

std::optional<QuantConfig> load_quant_config(const fs::path& model_dir) {
  std::vector<QuantConfig> found;
  const fs::path config_path = model_dir / "config.json";
  if (auto embedded = quant_config_in_model_config(read_text_file(config_path), config_path.string()))
    found.push_back(std::move(*embedded));
  for (const char* name : {"quantize_config.json", "quant_config.json"}) {
    const fs::path path = model_dir / name;
    if (fs::exists(path)) found.push_back(parse_quant_config_text(read_text_file(path), path.string()));
  }
  if (found.empty()) return std::nullopt;
  for (std::size_t i = 1; i < found.size(); ++i)
    if (!(found[i] == found[0]))
      throw CheckpointError(fmt::format("{} ({}) disagrees with {} ({})", found[i].source, found[i].describe(),
                                        found[0].source, found[0].describe()));
  return found.front();
}

}  // namespace quanteval::runtime
