#include "runtime/checkpoint/model_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace quanteval::runtime {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::int64_t kMaxDimension = std::int64_t{1} << 24;  // bounds every dimension so products fit in 64 bits
constexpr std::int64_t kMaxLayers = 4096;
constexpr std::int64_t kMaxTokenId = (std::int64_t{1} << 31) - 1;
constexpr int kMaxJsonDepth = 64;

// Typed access to one JSON object with messages that say where a field lives:
// "<source>: field text_config.hidden_size: expected an integer in [1, 16777216], got \"x\"".
class FieldReader {
 public:
  FieldReader(const json& object, std::string_view source, std::string prefix)
      : object_(object), source_(source), prefix_(std::move(prefix)) {}

  bool has(std::string_view name) const { return find(name) != nullptr; }

  CheckpointError error(std::string_view name, std::string_view why) const {
    return CheckpointError(fmt::format("{}: field {}{}: {}", source_, prefix_, name, why));
  }

  std::optional<std::int64_t> integer(std::string_view name, std::int64_t min, std::int64_t max) const {
    const json* value = find(name);
    if (!value) return std::nullopt;
    if (!value->is_number_integer() ||
        (value->is_number_unsigned() && value->get<std::uint64_t>() > static_cast<std::uint64_t>(max)) ||
        value->get<std::int64_t>() < min || value->get<std::int64_t>() > max)
      throw error(name, fmt::format("expected an integer in [{}, {}], got {}", min, max, value->dump()));
    return value->get<std::int64_t>();
  }

  std::int64_t required_integer(std::string_view name, std::int64_t min, std::int64_t max) const {
    const auto value = integer(name, min, max);
    if (!value) throw error(name, "missing");
    return *value;
  }

  std::optional<double> number(std::string_view name, double min, double max) const {
    const json* value = find(name);
    if (!value) return std::nullopt;
    if (!value->is_number() || !(value->get<double>() >= min && value->get<double>() <= max))
      throw error(name, fmt::format("expected a number in [{}, {}], got {}", min, max, value->dump()));
    return value->get<double>();
  }

  std::optional<bool> boolean(std::string_view name) const {
    const json* value = find(name);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) throw error(name, fmt::format("expected true or false, got {}", value->dump()));
    return value->get<bool>();
  }

  std::optional<std::string> string(std::string_view name) const {
    const json* value = find(name);
    if (!value) return std::nullopt;
    if (!value->is_string()) throw error(name, fmt::format("expected a string, got {}", value->dump()));
    return value->get<std::string>();
  }

  // A nested object, or nullptr when absent or null.
  const json* object(std::string_view name) const {
    const json* value = find(name);
    if (value && !value->is_object()) throw error(name, fmt::format("expected an object, got {}", value->dump()));
    return value;
  }

  // An int, a list of ints, or absent/null (an empty list).
  std::vector<std::int64_t> token_ids(std::string_view name) const {
    const json* value = find(name);
    std::vector<std::int64_t> ids;
    if (!value) return ids;
    auto read_one = [&](const json& item) {
      if (!item.is_number_integer() || item.get<std::int64_t>() < 0 || item.get<std::int64_t>() > kMaxTokenId)
        throw error(name, fmt::format("expected a token id or a list of token ids, got {}", value->dump()));
      ids.push_back(item.get<std::int64_t>());
    };
    if (value->is_array()) {
      for (const auto& item : *value) read_one(item);
    } else {
      read_one(*value);
    }
    return ids;
  }

  // A reader for an object nested under `name`, whose messages spell the full path.
  FieldReader nested(const json& object, std::string_view name) const {
    return FieldReader(object, source_, fmt::format("{}{}.", prefix_, name));
  }

 private:
  // Absent and JSON null mean the same: transformers writes null for unset fields.
  const json* find(std::string_view name) const {
    const auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  const json& object_;
  std::string_view source_;
  std::string prefix_;
};

Architecture architecture_of(std::string_view model_type, const FieldReader& fields) {
  if (model_type == "qwen2") return Architecture::qwen2;
  if (model_type == "qwen3") return Architecture::qwen3;
  if (model_type == "qwen3_5" || model_type == "qwen3_5_text") return Architecture::qwen3_5;
  throw fields.error("model_type", fmt::format("unsupported model_type '{}' (supported: qwen2, qwen3, qwen3_5_text, "
                                               "qwen3_5)",
                                               model_type));
}

LayerKind layer_kind_of(const std::string& text, const FieldReader& fields) {
  if (text == "full_attention") return LayerKind::full_attention;
  if (text == "sliding_attention") return LayerKind::sliding_attention;
  if (text == "linear_attention") return LayerKind::linear_attention;
  throw fields.error("layer_types", fmt::format("unknown layer type '{}'", text));
}

void read_rope(ModelConfig& config, const FieldReader& text) {
  // transformers 5 nests RoPE settings in rope_parameters; older configs keep
  // rope_theta / partial_rotary_factor at the top and variants in rope_scaling.
  std::optional<double> theta = text.number("rope_theta", 1.0, 1e12);
  std::optional<double> partial = text.number("partial_rotary_factor", 0.0, 1.0);
  std::optional<std::string> rope_type;
  if (const json* parameters = text.object("rope_parameters")) {
    const FieldReader nested = text.nested(*parameters, "rope_parameters");
    if (auto value = nested.number("rope_theta", 1.0, 1e12)) theta = value;
    if (auto value = nested.number("partial_rotary_factor", 0.0, 1.0)) partial = value;
    rope_type = nested.string("rope_type");
  }
  if (const json* scaling = text.object("rope_scaling")) {
    const auto type = scaling->contains("rope_type") ? scaling->at("rope_type") : scaling->value("type", json());
    if (!type.is_null()) rope_type = type.is_string() ? type.get<std::string>() : type.dump();
  }
  config.rope_type = rope_type.value_or("default");
  if (config.rope_type != "default")
    throw text.error("rope_parameters.rope_type",
                     fmt::format("unsupported RoPE type '{}' (only 'default')", config.rope_type));
  config.rope_theta = theta.value_or(10000.0);
  config.partial_rotary_factor = partial.value_or(1.0);
  config.rotary_dim =
      static_cast<std::int64_t>(std::floor(static_cast<double>(config.head_dim) * config.partial_rotary_factor));
  config.rotary_dim -= config.rotary_dim % 2;  // rotation works on pairs of channels
  if (config.rotary_dim <= 0)
    throw text.error("partial_rotary_factor", fmt::format("{} x head_dim {} leaves no channel to rotate",
                                                          config.partial_rotary_factor, config.head_dim));
}

}  // namespace

std::string_view architecture_name(Architecture architecture) {
  switch (architecture) {
    case Architecture::qwen2: return "qwen2";
    case Architecture::qwen3: return "qwen3";
    case Architecture::qwen3_5: return "qwen3_5";
  }
  return "?";
}

std::string_view layer_kind_name(LayerKind kind) {
  switch (kind) {
    case LayerKind::full_attention: return "full_attention";
    case LayerKind::sliding_attention: return "sliding_attention";
    case LayerKind::linear_attention: return "linear_attention";
  }
  return "?";
}

std::int64_t ModelConfig::num_linear_attention_layers() const {
  return std::count(layer_types.begin(), layer_types.end(), LayerKind::linear_attention);
}

std::int64_t ModelConfig::num_full_attention_layers() const {
  return static_cast<std::int64_t>(layer_types.size()) - num_linear_attention_layers();
}

json parse_untrusted_json(std::string_view text, std::string_view source, std::string_view what) {
  // One set of keys per open object, to catch duplicates the DOM would hide.
  std::vector<std::set<std::string>> open_objects;
  const json::parser_callback_t guard = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth)
          throw CheckpointError(fmt::format("{}: {} nests deeper than {} levels", source, what, kMaxJsonDepth));
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second)
          throw CheckpointError(fmt::format("{}: {} has the key '{}' twice", source, what, parsed.get<std::string>()));
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      default: break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), guard);
  } catch (const json::exception& e) {
    throw CheckpointError(fmt::format("{}: {} is not valid JSON: {}", source, what, e.what()));
  }
}

std::string read_text_file(const fs::path& path, std::uint64_t max_bytes) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw CheckpointError(fmt::format("{}: not found or not a regular file", path.string()));
  const auto size = fs::file_size(path, ec);
  if (ec) throw CheckpointError(fmt::format("{}: cannot read size: {}", path.string(), ec.message()));
  if (size > max_bytes)
    throw CheckpointError(fmt::format("{}: {} bytes is larger than the {} byte limit", path.string(), size, max_bytes));
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) throw CheckpointError(fmt::format("{}: read failed", path.string()));
  return text.str();
}

ModelConfig parse_model_config(std::string_view json_text, std::string_view source) {
  const json root = parse_untrusted_json(json_text, source, "config");
  if (!root.is_object()) throw CheckpointError(fmt::format("{}: config is not a JSON object", source));
  const FieldReader top(root, source, "");

  ModelConfig config;
  config.model_type = top.string("model_type").value_or("");
  if (config.model_type.empty()) throw top.error("model_type", "missing");
  config.architecture = architecture_of(config.model_type, top);

  // The multimodal wrapper keeps the language model's settings in text_config;
  // token ids and tie_word_embeddings may sit at either level.
  const json* text_object = &root;
  std::string text_prefix;
  if (config.model_type == "qwen3_5") {
    text_object = top.object("text_config");
    if (!text_object) throw top.error("text_config", "missing (model_type qwen3_5 is the multimodal wrapper)");
    config.multimodal_wrapper = true;
    text_prefix = "text_config.";
  }
  const FieldReader text(*text_object, source, text_prefix);
  if (config.multimodal_wrapper) {
    if (auto inner_type = text.string("model_type"); inner_type && *inner_type != "qwen3_5_text")
      throw text.error("model_type",
                       fmt::format("expected 'qwen3_5_text' inside the qwen3_5 wrapper, got '{}'", *inner_type));
  }

  config.torch_dtype = text.string("torch_dtype")
                           .value_or(text.string("dtype").value_or(
                               top.string("torch_dtype").value_or(top.string("dtype").value_or(""))));
  config.vocab_size = text.required_integer("vocab_size", 1, kMaxDimension);
  config.hidden_size = text.required_integer("hidden_size", 1, kMaxDimension);
  config.intermediate_size = text.required_integer("intermediate_size", 1, kMaxDimension);
  config.num_hidden_layers = text.required_integer("num_hidden_layers", 1, kMaxLayers);
  config.num_attention_heads = text.required_integer("num_attention_heads", 1, kMaxDimension);
  config.num_key_value_heads =
      text.integer("num_key_value_heads", 1, kMaxDimension).value_or(config.num_attention_heads);
  if (config.num_attention_heads % config.num_key_value_heads != 0)
    throw text.error("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}",
                                                        config.num_key_value_heads, config.num_attention_heads));
  if (auto head_dim = text.integer("head_dim", 1, kMaxDimension)) {
    config.head_dim = *head_dim;
  } else {
    if (config.hidden_size % config.num_attention_heads != 0)
      throw text.error("head_dim", fmt::format("absent, and hidden_size {} is not a multiple of num_attention_heads {}",
                                               config.hidden_size, config.num_attention_heads));
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  if (config.num_attention_heads * config.head_dim > 2 * kMaxDimension)
    throw text.error("head_dim", "num_attention_heads x head_dim is implausibly large");
  config.hidden_act = text.string("hidden_act").value_or("silu");
  if (config.hidden_act != "silu")
    throw text.error("hidden_act", fmt::format("unsupported activation '{}' (only silu)", config.hidden_act));
  config.rms_norm_eps = text.number("rms_norm_eps", 0.0, 1.0).value_or(1e-6);
  config.max_position_embeddings = text.integer("max_position_embeddings", 1, kMaxTokenId).value_or(32768);
  config.tie_word_embeddings =
      text.boolean("tie_word_embeddings").value_or(top.boolean("tie_word_embeddings").value_or(false));

  switch (config.architecture) {
    case Architecture::qwen2:
      // Qwen2 hard-codes bias on q/k/v and none on o_proj; its config has no switch.
      config.attention_bias = true;
      break;
    case Architecture::qwen3:
      config.qk_norm = true;
      config.attention_bias = config.attention_output_bias = text.boolean("attention_bias").value_or(false);
      break;
    case Architecture::qwen3_5:
      config.qk_norm = true;
      config.gated_attention = true;
      config.zero_centered_norms = true;
      config.attention_bias = config.attention_output_bias = text.boolean("attention_bias").value_or(false);
      break;
  }

  read_rope(config, text);

  // Sliding window: Qwen2-style use_sliding_window + sliding_window + max_window_layers.
  const bool use_sliding = text.boolean("use_sliding_window").value_or(false);
  if (use_sliding) config.sliding_window = text.integer("sliding_window", 1, kMaxTokenId);

  // Layer kinds: the explicit list, else derived the way transformers derives it.
  if (text.has("layer_types")) {
    const json& list = text_object->at("layer_types");
    if (!list.is_array() || static_cast<std::int64_t>(list.size()) != config.num_hidden_layers)
      throw text.error("layer_types",
                       fmt::format("expected a list of {} layer types, got {}", config.num_hidden_layers,
                                   list.is_array() ? fmt::format("{} entries", list.size()) : list.dump()));
    for (const auto& item : list) {
      if (!item.is_string()) throw text.error("layer_types", fmt::format("entry {} is not a string", item.dump()));
      config.layer_types.push_back(layer_kind_of(item.get<std::string>(), text));
    }
  } else if (config.architecture == Architecture::qwen3_5) {
    const std::int64_t interval = text.integer("full_attention_interval", 1, kMaxLayers).value_or(4);
    for (std::int64_t i = 0; i < config.num_hidden_layers; ++i)
      config.layer_types.push_back((i + 1) % interval == 0 ? LayerKind::full_attention : LayerKind::linear_attention);
  } else {
    const std::int64_t window_from =
        text.integer("max_window_layers", 0, kMaxLayers).value_or(config.num_hidden_layers);
    for (std::int64_t i = 0; i < config.num_hidden_layers; ++i)
      config.layer_types.push_back(config.sliding_window && i >= window_from ? LayerKind::sliding_attention
                                                                             : LayerKind::full_attention);
  }
  for (const LayerKind kind : config.layer_types) {
    if (kind == LayerKind::linear_attention && config.architecture != Architecture::qwen3_5)
      throw text.error("layer_types",
                       fmt::format("linear_attention layers exist only in Qwen3.5, not {}", config.model_type));
    if (kind == LayerKind::sliding_attention && !config.sliding_window)
      config.sliding_window = text.integer("sliding_window", 1, kMaxTokenId);
    if (kind == LayerKind::sliding_attention && !config.sliding_window)
      throw text.error("sliding_window", "missing, but layer_types has sliding_attention layers");
  }

  if (config.num_linear_attention_layers() > 0) {
    LinearAttentionConfig& linear = config.linear_attention;
    linear.conv_kernel_size = text.required_integer("linear_conv_kernel_dim", 1, 64);
    linear.key_head_dim = text.required_integer("linear_key_head_dim", 1, kMaxDimension);
    linear.value_head_dim = text.required_integer("linear_value_head_dim", 1, kMaxDimension);
    linear.num_key_heads = text.required_integer("linear_num_key_heads", 1, kMaxDimension);
    linear.num_value_heads = text.required_integer("linear_num_value_heads", 1, kMaxDimension);
    if (linear.num_value_heads % linear.num_key_heads != 0)
      throw text.error("linear_num_value_heads", fmt::format("{} is not a multiple of linear_num_key_heads {}",
                                                             linear.num_value_heads, linear.num_key_heads));
    if (linear.conv_dim() > 4 * kMaxDimension)
      throw text.error("linear_key_head_dim", "linear attention widths are implausibly large");
  }

  config.eos_token_ids = text.token_ids("eos_token_id");
  if (config.eos_token_ids.empty()) config.eos_token_ids = top.token_ids("eos_token_id");
  config.bos_token_id = text.integer("bos_token_id", 0, kMaxTokenId);
  if (!config.bos_token_id) config.bos_token_id = top.integer("bos_token_id", 0, kMaxTokenId);
  config.pad_token_id = text.integer("pad_token_id", 0, kMaxTokenId);
  if (!config.pad_token_id) config.pad_token_id = top.integer("pad_token_id", 0, kMaxTokenId);
  return config;
}

void apply_generation_config(ModelConfig& config, std::string_view json_text, std::string_view source) {
  const json root = parse_untrusted_json(json_text, source, "generation config");
  if (!root.is_object()) throw CheckpointError(fmt::format("{}: generation config is not a JSON object", source));
  const FieldReader fields(root, source, "");
  std::vector<std::int64_t> merged = fields.token_ids("eos_token_id");
  for (const std::int64_t id : config.eos_token_ids)
    if (std::find(merged.begin(), merged.end(), id) == merged.end()) merged.push_back(id);
  config.eos_token_ids = std::move(merged);
  if (auto bos = fields.integer("bos_token_id", 0, kMaxTokenId)) config.bos_token_id = bos;
  if (auto pad = fields.integer("pad_token_id", 0, kMaxTokenId)) config.pad_token_id = pad;
}

ModelConfig load_model_config(const fs::path& model_dir) {
  const fs::path config_path = model_dir / "config.json";
  ModelConfig config = parse_model_config(read_text_file(config_path), config_path.string());
  const fs::path generation_path = model_dir / "generation_config.json";
  if (fs::exists(generation_path))
    apply_generation_config(config, read_text_file(generation_path), generation_path.string());
  return config;
}

}  // namespace quanteval::runtime
