#include "runtime/checkpoint/synthetic.hpp"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <fstream>
#include <functional>
#include <optional>
#include <cstring>

#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/quant_config.hpp"
#include "runtime/checkpoint/tensor_table.hpp"

namespace quanteval::runtime {

namespace {

// splitmix64: a fast, seedable stream; std::mt19937 would dominate building 0.5B weights.
class FastRandom {
 public:
  explicit FastRandom(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform_signed() { return static_cast<float>(static_cast<double>(next() >> 11) * 0x1p-52 - 1.0); }  // [-1, 1)

 private:
  std::uint64_t state_;
};

// Uniform weights in [-a, a) with a = sqrt(3 / K): unit-variance inputs give unit-variance outputs.
Linear random_linear(const SyntheticModelSpec& spec, int n, int k, bool bias, FastRandom& rng, const std::string& name) {
  const float amplitude = std::sqrt(3.0f / static_cast<float>(k));
  std::vector<float> bias_values;
  if (bias)
    for (int i = 0; i < n; ++i) bias_values.push_back(0.1f * rng.uniform_signed());
  if (!spec.quantized) {
    std::vector<std::uint16_t> w(static_cast<std::size_t>(n) * k);
    for (auto& bits : w) bits = float_to_bf16(amplitude * rng.uniform_signed());
    return Linear::from_dense(DenseLinear::from_bf16(w.data(), n, k, bias_values), name);
  }
  // Random 4-bit codes, symmetric zero 8 (stored 7 in v1), scale so that
  // (q - 8) x scale spans about [-a, a].
  OwnedGptqWeight owned;
  GptqWeight& w = owned.weight;
  w.name = name;
  w.in_features = k;
  w.out_features = n;
  w.group_size = spec.group_size;
  w.format = GptqFormat::v1;
  const int groups = k / spec.group_size;
  owned.qweight.resize(static_cast<std::size_t>(k / 8) * n);
  for (auto& word : owned.qweight) word = static_cast<std::int32_t>(rng.next());
  owned.qzeros.assign(static_cast<std::size_t>(groups) * (n / 8), static_cast<std::int32_t>(0x77777777));
  owned.scales.assign(static_cast<std::size_t>(groups) * n, float_to_f16(amplitude / 8.0f));
  owned.refresh_views();
  return Linear::from_int4(Int4Linear::from_gptq(w, bias_values), name);
}

std::vector<float> ones(std::int64_t n) { return std::vector<float>(static_cast<std::size_t>(n), 1.0f); }

}  // namespace

ModelConfig synthetic_config(const SyntheticModelSpec& spec) {
  ModelConfig c;
  c.architecture = spec.architecture;
  c.model_type = spec.architecture == Architecture::qwen2 ? "qwen2" : "qwen3";
  c.torch_dtype = "bfloat16";
  c.vocab_size = spec.vocab_size;
  c.hidden_size = spec.hidden_size;
  c.intermediate_size = spec.intermediate_size;
  c.num_hidden_layers = spec.num_hidden_layers;
  c.num_attention_heads = spec.num_attention_heads;
  c.num_key_value_heads = spec.num_key_value_heads;
  c.head_dim = spec.head_dim;
  c.hidden_act = "silu";
  c.qk_norm = spec.architecture == Architecture::qwen3;
  c.attention_bias = spec.architecture == Architecture::qwen2;
  c.rope_theta = spec.rope_theta;
  c.rotary_dim = spec.head_dim;
  c.max_position_embeddings = spec.max_position_embeddings;
  c.tie_word_embeddings = spec.tie_word_embeddings;
  c.layer_types.assign(static_cast<std::size_t>(spec.num_hidden_layers), LayerKind::full_attention);
  return c;
}

std::unique_ptr<Model> make_synthetic_model(const SyntheticModelSpec& spec, const LoadOptions& options) {
  const ModelConfig config = synthetic_config(spec);
  FastRandom rng(spec.seed);
  const int hidden = static_cast<int>(spec.hidden_size), inter = static_cast<int>(spec.intermediate_size);
  const int q_width = static_cast<int>(spec.num_attention_heads * spec.head_dim);
  const int kv_width = static_cast<int>(spec.num_key_value_heads * spec.head_dim);
  ModelWeights weights;
  Embedding& embed = weights.embed_tokens;
  embed.vocab = spec.vocab_size;
  embed.width = spec.hidden_size;
  embed.bf16 = true;
  auto table = std::make_shared<std::vector<std::uint16_t>>(static_cast<std::size_t>(spec.vocab_size * spec.hidden_size));
  for (auto& bits : *table) bits = float_to_bf16(rng.uniform_signed());
  embed.bits16 = table;
  int cache_slot = 0;
  for (std::int64_t l = 0; l < spec.num_hidden_layers; ++l) {
    const std::string prefix = fmt::format("model.layers.{}.", l);
    DecoderLayer layer;
    layer.input_norm = ones(spec.hidden_size);
    layer.post_attention_norm = ones(spec.hidden_size);
    AttentionWeights attention;
    const bool bias = config.attention_bias;
    attention.q_proj = random_linear(spec, q_width, hidden, bias, rng, prefix + "self_attn.q_proj");
    attention.k_proj = random_linear(spec, kv_width, hidden, bias, rng, prefix + "self_attn.k_proj");
    attention.v_proj = random_linear(spec, kv_width, hidden, bias, rng, prefix + "self_attn.v_proj");
    attention.o_proj = random_linear(spec, hidden, q_width, false, rng, prefix + "self_attn.o_proj");
    if (config.qk_norm) {
      attention.q_norm = ones(spec.head_dim);
      attention.k_norm = ones(spec.head_dim);
    }
    layer.mixer = build_attention_mixer(config, LayerKind::full_attention, std::move(attention), cache_slot++);
    layer.mlp.gate_proj = random_linear(spec, inter, hidden, false, rng, prefix + "mlp.gate_proj");
    layer.mlp.up_proj = random_linear(spec, inter, hidden, false, rng, prefix + "mlp.up_proj");
    layer.mlp.down_proj = random_linear(spec, hidden, inter, false, rng, prefix + "mlp.down_proj");
    weights.layers.push_back(std::move(layer));
  }
  weights.final_norm = ones(spec.hidden_size);
  if (spec.tie_word_embeddings) {
    weights.lm_head = Linear::from_dense(
        DenseLinear::from_shared_16bit(embed.bits16, true, static_cast<int>(spec.vocab_size), hidden), "lm_head (tied)");
    weights.lm_head_shares_embedding = true;
  } else {
    SyntheticModelSpec dense = spec;
    dense.quantized = false;
    weights.lm_head = random_linear(dense, static_cast<int>(spec.vocab_size), hidden, false, rng, "lm_head");
  }
  return std::make_unique<Model>(config, std::move(weights), options);
}

namespace {

// One tensor of a synthetic checkpoint: planned first (name, dtype, shape,
// bytes), its values generated only when its shard is written, so a 27B
// checkpoint streams to disk with a few megabytes of memory.
struct PlannedTensor {
  std::string name;  // as written in the file
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t bytes = 0;
  std::function<void(std::ostream&, FastRandom&)> write;
};

std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t count = 1;
  for (auto d : shape) count *= d;
  return count;
}

// Writes `count` little-endian values of T made by `next()` in bounded chunks.
template <typename T, typename Next>
void write_values(std::ostream& out, std::int64_t count, Next&& next) {
  constexpr std::int64_t kChunk = 1 << 20;
  std::vector<T> chunk;
  for (std::int64_t done = 0; done < count;) {
    const std::int64_t n = std::min(kChunk, count - done);
    chunk.resize(static_cast<std::size_t>(n));
    for (auto& value : chunk) value = next();
    out.write(reinterpret_cast<const char*>(chunk.data()), static_cast<std::streamsize>(n * sizeof(T)));
    done += n;
  }
}

class CheckpointPlan {
 public:
  // A BF16 tensor whose values come from value(rng).
  void bf16(std::string name, std::vector<std::int64_t> shape, std::function<float(FastRandom&)> value) {
    const std::int64_t count = element_count(shape);
    add({std::move(name), "BF16", std::move(shape), static_cast<std::uint64_t>(count) * 2,
         [count, value = std::move(value)](std::ostream& out, FastRandom& rng) {
           write_values<std::uint16_t>(out, count, [&] { return float_to_bf16(value(rng)); });
         }});
  }
  void uniform_bf16(std::string name, std::vector<std::int64_t> shape, float amplitude) {
    bf16(std::move(name), std::move(shape), [amplitude](FastRandom& rng) { return amplitude * rng.uniform_signed(); });
  }
  void words(std::string name, std::vector<std::int64_t> shape, std::optional<std::uint32_t> fixed) {
    const std::int64_t count = element_count(shape);
    add({std::move(name), "I32", std::move(shape), static_cast<std::uint64_t>(count) * 4,
         [count, fixed](std::ostream& out, FastRandom& rng) {
           write_values<std::uint32_t>(out, count, [&] { return fixed ? *fixed : static_cast<std::uint32_t>(rng.next()); });
         }});
  }
  void add(PlannedTensor tensor) { tensors_.push_back(std::move(tensor)); }
  std::vector<PlannedTensor>& tensors() { return tensors_; }

 private:
  std::vector<PlannedTensor> tensors_;
};

// g_idx of an act-order (desc_act) checkpoint: GPTQ quantizes the input rows in
// a permuted order and row perm[i] belongs to group i / group_size, so every
// group has exactly group_size rows but g_idx is not monotonic.
void plan_act_order_g_idx(CheckpointPlan& plan, const std::string& name, std::int64_t k, std::int64_t group_size) {
  plan.add({name, "I32", {k}, static_cast<std::uint64_t>(k) * 4, [k, group_size](std::ostream& out, FastRandom& rng) {
              std::vector<std::int32_t> g_idx(static_cast<std::size_t>(k));
              std::vector<std::int64_t> order(static_cast<std::size_t>(k));
              for (std::int64_t i = 0; i < k; ++i) order[static_cast<std::size_t>(i)] = i;
              for (std::int64_t i = k - 1; i > 0; --i)
                std::swap(order[static_cast<std::size_t>(i)],
                          order[static_cast<std::size_t>(rng.next() % static_cast<std::uint64_t>(i + 1))]);
              for (std::int64_t i = 0; i < k; ++i)
                g_idx[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = static_cast<std::int32_t>(i / group_size);
              out.write(reinterpret_cast<const char*>(g_idx.data()), static_cast<std::streamsize>(k * 4));
            }});
}

// Tensors the published Qwen3.5 checkpoints carry besides the language model:
// the vision tower and the multi-token-prediction head. Shapes follow the real
// ones at the config's widths, with two vision blocks standing in for all of them
// (the runtime must only recognise and skip them, never read them).
void plan_multimodal_extras(CheckpointPlan& plan, const ModelConfig& config, std::int64_t vision_width) {
  const std::int64_t v = vision_width, hidden = config.hidden_size, inter = config.intermediate_size;
  plan.uniform_bf16("model.visual.patch_embed.proj.weight", {v, 3, 2, 16, 16}, 0.02f);
  plan.uniform_bf16("model.visual.patch_embed.proj.bias", {v}, 0.02f);
  plan.uniform_bf16("model.visual.pos_embed.weight", {2304, v}, 0.02f);
  for (int block = 0; block < 2; ++block) {
    const std::string p = fmt::format("model.visual.blocks.{}.", block);
    plan.bf16(p + "norm1.weight", {v}, [](FastRandom&) { return 1.0f; });
    plan.uniform_bf16(p + "attn.qkv.weight", {3 * v, v}, 0.02f);
    plan.uniform_bf16(p + "attn.qkv.bias", {3 * v}, 0.02f);
    plan.uniform_bf16(p + "attn.proj.weight", {v, v}, 0.02f);
    plan.uniform_bf16(p + "mlp.linear_fc1.weight", {4 * v, v}, 0.02f);
    plan.uniform_bf16(p + "mlp.linear_fc2.weight", {v, 4 * v}, 0.02f);
  }
  plan.uniform_bf16("model.visual.merger.linear_fc2.weight", {hidden, 4 * v}, 0.02f);
  plan.uniform_bf16("mtp.fc.weight", {hidden, 2 * hidden}, 0.02f);
  for (const char* norm : {"mtp.norm.weight", "mtp.pre_fc_norm_embedding.weight", "mtp.pre_fc_norm_hidden.weight"})
    plan.bf16(norm, {hidden}, [](FastRandom&) { return 0.0f; });
  plan.uniform_bf16("mtp.layers.0.mlp.gate_proj.weight", {inter, hidden}, 0.02f);
  plan.uniform_bf16("mtp.layers.0.mlp.up_proj.weight", {inter, hidden}, 0.02f);
  plan.uniform_bf16("mtp.layers.0.mlp.down_proj.weight", {hidden, inter}, 0.02f);
}

}  // namespace

std::string synthetic_config_json(std::string_view shape, const SyntheticShapeOptions& options) {
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
    throw std::invalid_argument(fmt::format("unknown synthetic shape '{}' (qwen3.5-27b, qwen3.5-0.8b, qwen3.5-tiny)",
                                            shape));
  const Shape& d = *found;
  nlohmann::ordered_json text = {
      {"architectures", {"Qwen3_5ForCausalLM"}}, {"model_type", "qwen3_5_text"}, {"vocab_size", d.vocab},
      {"hidden_size", d.hidden}, {"intermediate_size", d.intermediate}, {"num_hidden_layers", d.layers},
      {"num_attention_heads", d.heads}, {"num_key_value_heads", d.kv_heads}, {"head_dim", d.head_dim},
      {"hidden_act", "silu"}, {"max_position_embeddings", 262144}, {"rms_norm_eps", 1e-6},
      {"tie_word_embeddings", d.tied},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 10000000.0}, {"partial_rotary_factor", 0.25}}},
      {"linear_conv_kernel_dim", 4}, {"linear_key_head_dim", d.linear_dim}, {"linear_value_head_dim", d.linear_dim},
      {"linear_num_key_heads", d.linear_key_heads}, {"linear_num_value_heads", d.linear_value_heads},
      {"full_attention_interval", 4}, {"torch_dtype", "bfloat16"}, {"bos_token_id", 151643},
      {"eos_token_id", 151645}};
  nlohmann::ordered_json config = text;
  if (options.multimodal) {
    config = {{"architectures", {"Qwen3_5ForConditionalGeneration"}},
              {"model_type", "qwen3_5"},
              {"text_config", text},
              {"vision_config", {{"model_type", "qwen3_5"}, {"hidden_size", d.vision_width}, {"depth", 27},
                                 {"patch_size", 16}, {"out_hidden_size", d.hidden}}},
              {"tie_word_embeddings", d.tied},
              {"torch_dtype", "bfloat16"}};
  }
  if (options.quantized)
    config["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", options.group_size},
                                     {"sym", true}, {"desc_act", options.act_order}, {"checkpoint_format", "gptq"},
                                     {"pack_dtype", "int32"}, {"lm_head", false},
                                     {"meta", {{"quantizer", {"quanteval synthetic"}}}}};
  return config.dump(2);
}

void write_synthetic_checkpoint(const std::string& config_json, const std::filesystem::path& dir,
                                const SyntheticCheckpointOptions& options) {
  const ModelConfig config = parse_model_config(config_json, "synthetic config.json");
  const auto quant = quant_config_in_model_config(config_json, "synthetic config.json");
  if (options.multimodal && config.architecture != Architecture::qwen3_5)
    throw std::invalid_argument("synthetic checkpoint: the multimodal layout is Qwen3.5's (config needs text_config)");
  if (options.adversarial_padding_from > 0 &&
      (config.tie_word_embeddings || options.adversarial_padding_from + 2 > config.vocab_size))
    throw std::invalid_argument("synthetic checkpoint: adversarial padding needs an untied lm_head with at least two "
                                "rows past adversarial_padding_from");
  // The language model's tensors as the file spells them.
  const auto file_name = [&](const std::string& name) {
    return options.multimodal && name.starts_with("model.") ? "model.language_model." + name.substr(6) : name;
  };

  CheckpointPlan plan;
  for (const auto& expected : expected_tensors(config)) {
    if (!expected.required) continue;
    const std::string& name = expected.name;
    if (expected.kind == TensorKind::plain) {
      const bool norm = name.ends_with("norm.weight");
      const bool decay = name.ends_with("A_log") || name.ends_with("dt_bias");
      const bool zero_norm = config.zero_centered_norms && !name.ends_with("linear_attn.norm.weight");
      // Norms: 1 (stored 0 when zero-centred); decay parameters small and
      // positive; embeddings and conv taps uniform in [-0.5, 0.5).
      plan.bf16(file_name(name), expected.shape, [norm, decay, zero_norm](FastRandom& rng) {
        if (norm) return zero_norm ? 0.0f : 1.0f;
        if (decay) return 0.5f + 0.5f * rng.uniform_signed();
        return 0.5f * rng.uniform_signed();
      });
      continue;
    }
    const std::int64_t n = expected.shape.at(0), k = expected.shape.at(1);
    const bool keep_16_bit = !quant || name.ends_with("in_proj_a") || name.ends_with("in_proj_b") || name == "lm_head" ||
                             k % 8 != 0 || n % 8 != 0;
    const float amplitude = std::sqrt(3.0f / static_cast<float>(k));
    if (name == "lm_head" && options.adversarial_padding_from > 0) {
      // Rows of decodable ids are zero (logit 0); two padding rows are +v and -v,
      // so one of them has a positive logit for any hidden state.
      const std::int64_t first_padding = options.adversarial_padding_from;
      plan.add({file_name(name) + ".weight", "BF16", {n, k}, static_cast<std::uint64_t>(n * k) * 2,
                [n, k, first_padding](std::ostream& out, FastRandom& rng) {
                  std::vector<float> direction(static_cast<std::size_t>(k));
                  for (float& d : direction) d = rng.uniform_signed();
                  std::vector<std::uint16_t> row(static_cast<std::size_t>(k));
                  for (std::int64_t r = 0; r < n; ++r) {
                    const float sign = r == first_padding ? 1.0f : r == first_padding + 1 ? -1.0f : 0.0f;
                    for (std::int64_t i = 0; i < k; ++i)
                      row[static_cast<std::size_t>(i)] = float_to_bf16(sign * direction[static_cast<std::size_t>(i)]);
                    out.write(reinterpret_cast<const char*>(row.data()), static_cast<std::streamsize>(k * 2));
                  }
                }});
    } else if (keep_16_bit) {
      plan.uniform_bf16(file_name(name) + ".weight", {n, k}, amplitude);
    } else {
      // Random 4-bit codes, symmetric v1 zeros (stored 7 = zero 8), one F16 scale
      // so that (q - 8) x scale spans about [-a, a] with a = sqrt(3 / K).
      const std::int64_t groups = quant->groups(k);
      const std::string prefix = file_name(name);
      plan.words(prefix + ".qweight", {k / 8, n}, std::nullopt);
      plan.words(prefix + ".qzeros", {groups, n / 8}, 0x77777777u);
      const std::uint16_t scale = float_to_f16(amplitude / 8.0f);
      plan.add({prefix + ".scales", "F16", {groups, n}, static_cast<std::uint64_t>(groups * n) * 2,
                [count = groups * n, scale](std::ostream& out, FastRandom&) {
                  write_values<std::uint16_t>(out, count, [scale] { return scale; });
                }});
      if (quant->desc_act) plan_act_order_g_idx(plan, prefix + ".g_idx", k, k / groups);
    }
    if (expected.has_bias) plan.bf16(file_name(name) + ".bias", {n}, [](FastRandom& rng) { return 0.1f * rng.uniform_signed(); });
  }
  if (options.multimodal) {
    const auto root = nlohmann::json::parse(config_json);
    const std::int64_t vision_width = root.contains("vision_config") ? root["vision_config"].value("hidden_size", 64) : 64;
    plan_multimodal_extras(plan, config, vision_width);
  }

  // Shards of about shard_bytes each, in plan order (as Hugging Face's writers do).
  std::vector<std::vector<PlannedTensor*>> shards(1);
  std::uint64_t shard_size = 0, total_size = 0;
  for (auto& tensor : plan.tensors()) {
    if (options.shard_bytes > 0 && shard_size > 0 && shard_size + tensor.bytes > options.shard_bytes) {
      shards.emplace_back();
      shard_size = 0;
    }
    shards.back().push_back(&tensor);
    shard_size += tensor.bytes;
    total_size += tensor.bytes;
  }
  std::filesystem::create_directories(dir);
  FastRandom rng(options.seed);
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const std::string file = options.shard_bytes > 0
                                 ? fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, shards.size())
                                 : std::string("model.safetensors");
    // safetensors: 8-byte header length, JSON header, data in header order.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    std::uint64_t offset = 0;
    for (const PlannedTensor* t : shards[s]) {
      header[t->name] = {{"dtype", t->dtype}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->bytes}}};
      offset += t->bytes;
      weight_map[t->name] = file;
    }
    std::string header_text = header.dump();
    header_text.append((8 - header_text.size() % 8) % 8, ' ');
    std::ofstream out(dir / file, std::ios::binary);
    const std::uint64_t length = header_text.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
    for (const PlannedTensor* t : shards[s]) t->write(out, rng);
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
