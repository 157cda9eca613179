#include "runtime/checkpoint/synthetic.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "runtime/base/check.hpp"
#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/tensor_table.hpp"

namespace quanteval::runtime {

namespace {

// splitmix64 of (key + index): a counter-based stream, so element i of a tensor
// can be generated without generating elements 0..i-1 (std::mt19937 would be
// sequential and would also dominate building 0.5B weights).
std::uint64_t random_bits(std::uint64_t key, std::uint64_t index) {
  std::uint64_t z = key + (index + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
float uniform_signed(std::uint64_t key, std::uint64_t index) {  // [-1, 1)
  return static_cast<float>(static_cast<double>(random_bits(key, index) >> 11) * 0x1p-52 - 1.0);
}
std::uint64_t tensor_key(std::uint64_t seed, std::string_view name) {  // FNV-1a of the name, mixed with the seed
  std::uint64_t h = 0xcbf29ce484222325ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  return random_bits(h, 0);
}

// Fill functions by dtype: value(i) for element i.
template <typename Value>
std::function<void(std::int64_t, std::int64_t, void*)> bf16_fill(Value value) {
  return [value](std::int64_t first, std::int64_t count, void* out) {
    auto* bits = static_cast<std::uint16_t*>(out);
    for (std::int64_t i = 0; i < count; ++i) bits[i] = float_to_bf16(value(first + i));
  };
}
template <typename Value>
std::function<void(std::int64_t, std::int64_t, void*)> word_fill(Value value) {
  return [value](std::int64_t first, std::int64_t count, void* out) {
    auto* words = static_cast<std::uint32_t*>(out);
    for (std::int64_t i = 0; i < count; ++i) words[i] = value(first + i);
  };
}

// g_idx of an act-order (desc_act) checkpoint: GPTQ quantizes the input rows in
// a permuted order and row perm[i] belongs to group i / group_size, so every
// group has exactly group_size rows but g_idx is not monotonic.
std::vector<std::int32_t> act_order_g_idx(std::uint64_t key, std::int64_t k, std::int64_t group_size) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(k));
  for (std::int64_t i = 0; i < k; ++i) order[static_cast<std::size_t>(i)] = i;
  for (std::int64_t i = k - 1; i > 0; --i)
    std::swap(order[static_cast<std::size_t>(i)],
              order[static_cast<std::size_t>(random_bits(key, static_cast<std::uint64_t>(i)) %
                                             static_cast<std::uint64_t>(i + 1))]);
  std::vector<std::int32_t> g_idx(static_cast<std::size_t>(k));
  for (std::int64_t i = 0; i < k; ++i)
    g_idx[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = static_cast<std::int32_t>(i / group_size);
  return g_idx;
}

bool keeps_16_bit(const std::optional<QuantConfig>& quant, const std::string& name, std::int64_t n, std::int64_t k) {
  return !quant || name.ends_with("in_proj_a") || name.ends_with("in_proj_b") || name == TensorNames::lm_head ||
         k % 8 != 0 || n % 8 != 0 || k % quant->effective_group_size(k) != 0;
}

}  // namespace

std::int64_t SyntheticTensor::elements() const {
  std::int64_t count = 1;
  for (auto d : shape) count *= d;
  return count;
}

SyntheticWeights::SyntheticWeights(ModelConfig config, std::optional<QuantConfig> quant, SyntheticWeightOptions options)
    : config_(std::move(config)), quant_(std::move(quant)), options_(options) {
  if (options_.adversarial_padding_from > 0 &&
      (config_.tie_word_embeddings || options_.adversarial_padding_from + 2 > config_.vocab_size))
    throw std::invalid_argument(
        "synthetic weights: adversarial padding needs an untied lm_head with at least two "
        "rows past adversarial_padding_from");
  const std::uint64_t seed = options_.seed;
  for (const auto& expected : expected_tensors(config_)) {
    if (!expected.required) continue;
    const std::string& name = expected.name;
    const std::uint64_t key = tensor_key(seed, name);
    if (expected.kind == TensorKind::plain) {
      const bool norm = name.ends_with("norm.weight");
      const bool decay = name.ends_with("A_log") || name.ends_with("dt_bias");
      const bool zero_norm = config_.zero_centered_norms && !name.ends_with("linear_attn.norm.weight");
      // Norms: 1 (stored 0 when zero-centred); decay parameters in [0, 1);
      // embeddings and conv taps uniform in [-0.5, 0.5).
      tensors_.push_back({name, DType::bf16, expected.shape, bf16_fill([=](std::int64_t i) {
                            if (norm) return zero_norm ? 0.0f : 1.0f;
                            if (decay) return 0.5f + 0.5f * uniform_signed(key, static_cast<std::uint64_t>(i));
                            return 0.5f * uniform_signed(key, static_cast<std::uint64_t>(i));
                          })});
      continue;
    }
    const std::int64_t n = expected.shape.at(0), k = expected.shape.at(1);
    // Uniform in [-a, a) with a = sqrt(3 / K): unit-variance inputs give unit-variance outputs.
    const float amplitude = std::sqrt(3.0f / static_cast<float>(k));
    if (name == TensorNames::lm_head && options_.adversarial_padding_from > 0) {
      // Rows of decodable ids are zero (logit 0); two padding rows are +v and -v,
      // so one of them has a positive logit for any hidden state.
      const std::int64_t first_padding = options_.adversarial_padding_from;
      tensors_.push_back({name + ".weight", DType::bf16, {n, k}, bf16_fill([=](std::int64_t i) {
                            const std::int64_t row = i / k;
                            const float sign = row == first_padding ? 1.0f : row == first_padding + 1 ? -1.0f : 0.0f;
                            return sign * uniform_signed(key, static_cast<std::uint64_t>(i % k));
                          })});
    } else if (keeps_16_bit(quant_, name, n, k)) {
      tensors_.push_back({name + ".weight", DType::bf16, {n, k}, bf16_fill([=](std::int64_t i) {
                            return amplitude * uniform_signed(key, static_cast<std::uint64_t>(i));
                          })});
    } else {
      // Random 4-bit codes, symmetric v1 zeros (stored 7 = zero 8), one F16 scale
      // so that (q - 8) x scale spans about [-a, a].
      const std::int64_t groups = quant_->groups(k);
      const std::uint64_t codes_key = tensor_key(seed, name + ".qweight");
      tensors_.push_back({name + ".qweight", DType::i32, {k / 8, n}, word_fill([=](std::int64_t i) {
                            return static_cast<std::uint32_t>(random_bits(codes_key, static_cast<std::uint64_t>(i)));
                          })});
      tensors_.push_back(
          {name + ".qzeros", DType::i32, {groups, n / 8}, word_fill([](std::int64_t) { return 0x77777777u; })});
      const std::uint16_t scale = float_to_f16(amplitude / 8.0f);
      tensors_.push_back(
          {name + ".scales", DType::f16, {groups, n}, [scale](std::int64_t, std::int64_t count, void* out) {
             std::fill_n(static_cast<std::uint16_t*>(out), count, scale);
           }});
      if (quant_->desc_act) {
        const std::int64_t group_size = k / groups;
        const std::uint64_t order_key = tensor_key(seed, name + ".g_idx");
        tensors_.push_back({name + ".g_idx", DType::i32, {k}, [=](std::int64_t first, std::int64_t count, void* out) {
                              const std::vector<std::int32_t> g_idx = act_order_g_idx(order_key, k, group_size);
                              std::copy_n(g_idx.begin() + first, count, static_cast<std::int32_t*>(out));
                            }});
      }
    }
    if (expected.has_bias)
      tensors_.push_back({name + ".bias", DType::bf16, {n}, bf16_fill([=](std::int64_t i) {
                            return 0.1f * uniform_signed(key ^ 0xb1a5ull, static_cast<std::uint64_t>(i));
                          })});
  }
}

SyntheticWeights SyntheticWeights::from_config_json(const std::string& config_json, SyntheticWeightOptions options) {
  return SyntheticWeights(parse_model_config(config_json, "synthetic config.json"),
                          quant_config_in_model_config(config_json, "synthetic config.json"), options);
}

std::string SyntheticWeights::describe() const {
  return fmt::format("synthetic {} weights (seed {})", architecture_name(config_.architecture), options_.seed);
}

const SyntheticTensor* SyntheticWeights::find(std::string_view name) const {
  for (const auto& tensor : tensors_)
    if (tensor.name == name) return &tensor;
  return nullptr;
}

std::vector<std::byte> SyntheticWeights::materialize(const SyntheticTensor& tensor) const {
  std::vector<std::byte> bytes(tensor.bytes());
  tensor.fill(0, tensor.elements(), bytes.data());
  return bytes;
}

bool SyntheticWeights::has_linear(std::string_view prefix) const {
  return find(fmt::format("{}.weight", prefix)) || find(fmt::format("{}.qweight", prefix));
}

LinearSource SyntheticWeights::linear(std::string_view prefix, std::int64_t out_features,
                                      std::int64_t in_features) const {
  LinearSource source;
  source.name = std::string(prefix);
  source.out_features = out_features;
  source.in_features = in_features;
  if (const auto* bias = find(fmt::format("{}.bias", prefix))) {
    const auto bytes = materialize(*bias);
    for (std::int64_t i = 0; i < bias->elements(); ++i) {
      std::uint16_t bits;
      std::memcpy(&bits, bytes.data() + i * 2, 2);
      source.bias.push_back(bf16_to_float(bits));
    }
  }
  if (const auto* weight = find(fmt::format("{}.weight", prefix))) {
    QE_CHECK(weight->shape == (std::vector<std::int64_t>{out_features, in_features}), weight->name);
    auto bytes = std::make_shared<std::vector<std::byte>>(materialize(*weight));
    DenseSource dense;
    dense.dtype = weight->dtype;
    dense.rows = out_features;
    dense.cols = in_features;
    dense.bytes = bytes->data();
    dense.copy_to = [bytes](void* destination) { std::memcpy(destination, bytes->data(), bytes->size()); };
    source.dense = dense;
    source.storage = bytes;
    return source;
  }
  const SyntheticTensor* qweight = find(fmt::format("{}.qweight", prefix));
  if (!qweight) throw CheckpointError(fmt::format("{}: no tensor {}", describe(), prefix));
  QE_CHECK(qweight->shape == (std::vector<std::int64_t>{in_features / 8, out_features}), qweight->name);
  auto owned = std::make_shared<OwnedGptqWeight>();
  auto words = [&](const SyntheticTensor& tensor, auto& into) {
    into.resize(static_cast<std::size_t>(tensor.elements()));
    tensor.fill(0, tensor.elements(), into.data());
  };
  words(*qweight, owned->qweight);
  words(*find(fmt::format("{}.qzeros", prefix)), owned->qzeros);
  words(*find(fmt::format("{}.scales", prefix)), owned->scales);
  if (const auto* g_idx = find(fmt::format("{}.g_idx", prefix))) words(*g_idx, owned->g_idx);
  GptqWeight& w = owned->weight;
  w.name = source.name;
  w.in_features = static_cast<int>(in_features);
  w.out_features = static_cast<int>(out_features);
  w.bits = quant_->bits;
  w.group_size = static_cast<int>(quant_->group_size);
  w.format = GptqFormat::v1;
  w.sym = true;
  w.scale_format = ScaleFormat::f16;
  owned->refresh_views();
  w.validate();
  source.gptq = w;
  source.storage = owned;
  return source;
}

std::vector<float> SyntheticWeights::vector(std::string_view name, std::int64_t elements) const {
  const SyntheticTensor* tensor = find(name);
  if (!tensor) throw CheckpointError(fmt::format("{}: no tensor {}", describe(), name));
  QE_CHECK(tensor->elements() == elements, tensor->name);
  const auto bytes = materialize(*tensor);
  std::vector<float> values(static_cast<std::size_t>(elements));
  for (std::int64_t i = 0; i < elements; ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, bytes.data() + i * 2, 2);
    values[static_cast<std::size_t>(i)] = bf16_to_float(bits);
  }
  return values;
}

DenseSource SyntheticWeights::table(std::string_view name, std::int64_t rows, std::int64_t cols) const {
  const SyntheticTensor* tensor = find(name);
  if (!tensor) throw CheckpointError(fmt::format("{}: no tensor {}", describe(), name));
  QE_CHECK(tensor->elements() == rows * cols, tensor->name);
  DenseSource dense;
  dense.dtype = tensor->dtype;
  dense.rows = rows;
  dense.cols = cols;
  // Generated straight into the destination: a table is only ever copied (the
  // 2.5 GB embedding of a 27B shape never exists twice).
  dense.copy_to = [tensor](void* destination) { tensor->fill(0, tensor->elements(), destination); };
  return dense;
}

// ---------------------------------------------------------------------------------------------
// Named shapes

std::string synthetic_config_json(std::string_view shape, const SyntheticShapeOptions& options) {
  nlohmann::ordered_json config;
  if (shape == "qwen2.5-0.5b") {
    config = {{"architectures", {"Qwen2ForCausalLM"}},
              {"model_type", "qwen2"},
              {"vocab_size", 151936},
              {"hidden_size", 896},
              {"intermediate_size", 4864},
              {"num_hidden_layers", 24},
              {"num_attention_heads", 14},
              {"num_key_value_heads", 2},
              {"hidden_act", "silu"},
              {"max_position_embeddings", 32768},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 1000000.0},
              {"tie_word_embeddings", true},
              {"torch_dtype", "bfloat16"},
              {"bos_token_id", 151643},
              {"eos_token_id", 151645}};
  } else {
    struct Shape {
      const char* name;
      int hidden, layers, intermediate, heads, kv_heads, head_dim, linear_key_heads, linear_value_heads, linear_dim;
      std::int64_t vocab;
      bool tied;
      int vision_width;
    };
    static constexpr Shape kShapes[] = {
        {"qwen3.5-27b", 5120, 64, 17408, 24, 4, 256, 16, 48, 128, 248320, false, 1152},
        {"qwen3.5-0.8b", 1024, 24, 3584, 8, 2, 256, 16, 16, 128, 248320, true, 768},
        {"qwen3.5-tiny", 64, 4, 128, 2, 1, 64, 2, 4, 32, 151936, false, 32},
    };
    const Shape* found = nullptr;
    for (const auto& candidate : kShapes)
      if (shape == candidate.name) found = &candidate;
    if (!found)
      throw std::invalid_argument(
          fmt::format("unknown synthetic shape '{}' (qwen3.5-27b, qwen3.5-0.8b, qwen3.5-tiny, qwen2.5-0.5b)", shape));
    const Shape& d = *found;
    nlohmann::ordered_json text = {
        {"architectures", {"Qwen3_5ForCausalLM"}},
        {"model_type", "qwen3_5_text"},
        {"vocab_size", d.vocab},
        {"hidden_size", d.hidden},
        {"intermediate_size", d.intermediate},
        {"num_hidden_layers", d.layers},
        {"num_attention_heads", d.heads},
        {"num_key_value_heads", d.kv_heads},
        {"head_dim", d.head_dim},
        {"hidden_act", "silu"},
        {"max_position_embeddings", 262144},
        {"rms_norm_eps", 1e-6},
        {"tie_word_embeddings", d.tied},
        {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 10000000.0}, {"partial_rotary_factor", 0.25}}},
        {"linear_conv_kernel_dim", 4},
        {"linear_key_head_dim", d.linear_dim},
        {"linear_value_head_dim", d.linear_dim},
        {"linear_num_key_heads", d.linear_key_heads},
        {"linear_num_value_heads", d.linear_value_heads},
        {"full_attention_interval", 4},
        {"torch_dtype", "bfloat16"},
        {"bos_token_id", 151643},
        {"eos_token_id", 151645}};
    config = text;
    if (options.multimodal) {
      config = {{"architectures", {"Qwen3_5ForConditionalGeneration"}},
                {"model_type", "qwen3_5"},
                {"text_config", text},
                {"vision_config",
                 {{"model_type", "qwen3_5"},
                  {"hidden_size", d.vision_width},
                  {"depth", 27},
                  {"patch_size", 16},
                  {"out_hidden_size", d.hidden}}},
                {"tie_word_embeddings", d.tied},
                {"torch_dtype", "bfloat16"}};
    }
  }
  if (options.multimodal && shape == "qwen2.5-0.5b")
    throw std::invalid_argument("synthetic shape qwen2.5-0.5b has no multimodal layout");
  if (options.quantized)
    config["quantization_config"] = {{"quant_method", "gptq"},
                                     {"bits", 4},
                                     {"group_size", options.group_size},
                                     {"sym", true},
                                     {"desc_act", options.act_order},
                                     {"checkpoint_format", "gptq"},
                                     {"pack_dtype", "int32"},
                                     {"lm_head", false},
                                     {"meta", {{"quantizer", {"quanteval synthetic"}}}}};
  return config.dump(2);
}

// ---------------------------------------------------------------------------------------------
// The checkpoint writer

namespace {

// Tensors the published Qwen3.5 checkpoints carry besides the language model:
// the vision tower and the multi-token-prediction head. Shapes follow the real
// ones at the config's widths, with two vision blocks standing in for all of them
// (the runtime must only recognise and skip them, never read them).
std::vector<SyntheticTensor> multimodal_extras(const ModelConfig& config, std::int64_t vision_width,
                                               std::uint64_t seed) {
  std::vector<SyntheticTensor> extras;
  auto uniform = [&](std::string name, std::vector<std::int64_t> shape) {
    const std::uint64_t key = tensor_key(seed, name);
    extras.push_back({std::move(name), DType::bf16, std::move(shape), bf16_fill([key](std::int64_t i) {
                        return 0.02f * uniform_signed(key, static_cast<std::uint64_t>(i));
                      })});
  };
  auto constant = [&](std::string name, std::int64_t n, float value) {
    extras.push_back({std::move(name), DType::bf16, {n}, bf16_fill([value](std::int64_t) { return value; })});
  };
  const std::int64_t v = vision_width, hidden = config.hidden_size, inter = config.intermediate_size;
  uniform("model.visual.patch_embed.proj.weight", {v, 3, 2, 16, 16});
  uniform("model.visual.patch_embed.proj.bias", {v});
  uniform("model.visual.pos_embed.weight", {2304, v});
  for (int block = 0; block < 2; ++block) {
    const std::string p = fmt::format("model.visual.blocks.{}.", block);
    constant(p + "norm1.weight", v, 1.0f);
    uniform(p + "attn.qkv.weight", {3 * v, v});
    uniform(p + "attn.qkv.bias", {3 * v});
    uniform(p + "attn.proj.weight", {v, v});
    uniform(p + "mlp.linear_fc1.weight", {4 * v, v});
    uniform(p + "mlp.linear_fc2.weight", {v, 4 * v});
  }
  uniform("model.visual.merger.linear_fc2.weight", {hidden, 4 * v});
  uniform("mtp.fc.weight", {hidden, 2 * hidden});
  for (const char* norm : {"mtp.norm.weight", "mtp.pre_fc_norm_embedding.weight", "mtp.pre_fc_norm_hidden.weight"})
    constant(norm, hidden, 0.0f);
  uniform("mtp.layers.0.mlp.gate_proj.weight", {inter, hidden});
  uniform("mtp.layers.0.mlp.up_proj.weight", {inter, hidden});
  uniform("mtp.layers.0.mlp.down_proj.weight", {hidden, inter});
  return extras;
}

void write_tensor(std::ostream& out, const SyntheticTensor& tensor) {
  constexpr std::int64_t kPiece = 1 << 20;  // elements per write: memory stays a few MB
  std::vector<std::byte> buffer;
  for (std::int64_t first = 0; first < tensor.elements(); first += kPiece) {
    const std::int64_t count = std::min(kPiece, tensor.elements() - first);
    buffer.resize(static_cast<std::size_t>(count) * dtype_size(tensor.dtype));
    tensor.fill(first, count, buffer.data());
    out.write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(buffer.size()));
  }
}

}  // namespace

void write_synthetic_checkpoint(const std::string& config_json, const std::filesystem::path& dir,
                                const SyntheticCheckpointOptions& options) {
  const SyntheticWeights weights = SyntheticWeights::from_config_json(config_json, options.weights);
  const ModelConfig& config = weights.config();
  if (options.multimodal && !config.multimodal_wrapper)
    throw std::invalid_argument(
        "synthetic checkpoint: the multimodal layout needs the Qwen3.5 wrapper config "
        "(model_type qwen3_5 with text_config)");
  // The language model's tensors as the file spells them, then the extras.
  std::vector<SyntheticTensor> tensors = weights.tensors();
  if (options.multimodal) {
    for (auto& tensor : tensors)
      if (tensor.name.starts_with("model.")) tensor.name = "model.language_model." + tensor.name.substr(6);
    const auto root = nlohmann::json::parse(config_json);
    const std::int64_t vision_width =
        root.contains("vision_config") ? root["vision_config"].value("hidden_size", 64) : 64;
    for (auto& extra : multimodal_extras(config, vision_width, options.weights.seed))
      tensors.push_back(std::move(extra));
  }

  // Shards of about shard_bytes each, in table order (as Hugging Face's writers do).
  std::vector<std::vector<const SyntheticTensor*>> shards(1);
  std::uint64_t shard_size = 0, total_size = 0;
  for (const auto& tensor : tensors) {
    if (options.shard_bytes > 0 && shard_size > 0 && shard_size + tensor.bytes() > options.shard_bytes) {
      shards.emplace_back();
      shard_size = 0;
    }
    shards.back().push_back(&tensor);
    shard_size += tensor.bytes();
    total_size += tensor.bytes();
  }
  std::filesystem::create_directories(dir);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const std::string file = options.shard_bytes > 0
                                 ? fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, shards.size())
                                 : std::string("model.safetensors");
    // safetensors: 8-byte header length, JSON header, data in header order.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    std::uint64_t offset = 0;
    for (const SyntheticTensor* t : shards[s]) {
      header[t->name] = {{"dtype", std::string(dtype_name(t->dtype))},
                         {"shape", t->shape},
                         {"data_offsets", {offset, offset + t->bytes()}}};
      offset += t->bytes();
      weight_map[t->name] = file;
    }
    std::string header_text = header.dump();
    header_text.append((8 - header_text.size() % 8) % 8, ' ');
    std::ofstream out(dir / file, std::ios::binary);
    const std::uint64_t length = header_text.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const SyntheticTensor* t : shards[s]) write_tensor(out, *t);
    if (!out) throw std::runtime_error(fmt::format("{}: cannot write the synthetic checkpoint", (dir / file).string()));
  }
  if (options.shard_bytes > 0) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total_size}};
    index["weight_map"] = weight_map;
    std::ofstream(dir / "model.safetensors.index.json") << index.dump(2) << "\n";
  }
  std::ofstream(dir / "config.json") << config_json;
}

}  // namespace quanteval::runtime
