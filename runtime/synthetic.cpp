#include "runtime/synthetic.hpp"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <fstream>
#include <cstring>

#include "runtime/numeric.hpp"
#include "runtime/quant_config.hpp"
#include "runtime/tensor_table.hpp"

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

void write_synthetic_checkpoint(const std::string& config_json, const std::filesystem::path& dir, std::uint64_t seed) {
  const ModelConfig config = parse_model_config(config_json, "synthetic config.json");
  const auto quant = quant_config_in_model_config(config_json, "synthetic config.json");
  FastRandom rng(seed);
  struct Pending {
    std::string name, dtype;
    std::vector<std::int64_t> shape;
    std::string bytes;
  };
  std::vector<Pending> tensors;
  auto add_bf16 = [&](const std::string& name, std::vector<std::int64_t> shape, auto&& value) {
    std::int64_t count = 1;
    for (auto d : shape) count *= d;
    std::string bytes(static_cast<std::size_t>(count) * 2, '\0');
    for (std::int64_t i = 0; i < count; ++i) {
      const std::uint16_t bits = float_to_bf16(value());
      std::memcpy(bytes.data() + i * 2, &bits, 2);
    }
    tensors.push_back({name, "BF16", std::move(shape), std::move(bytes)});
  };
  auto add_random_words = [&](const std::string& name, std::vector<std::int64_t> shape, std::int64_t words,
                              std::optional<std::uint32_t> fixed) {
    std::string bytes(static_cast<std::size_t>(words) * 4, '\0');
    for (std::int64_t i = 0; i < words; ++i) {
      const std::uint32_t word = fixed ? *fixed : static_cast<std::uint32_t>(rng.next());
      std::memcpy(bytes.data() + i * 4, &word, 4);
    }
    tensors.push_back({name, "I32", std::move(shape), std::move(bytes)});
  };
  for (const auto& expected : expected_tensors(config)) {
    if (!expected.required) continue;
    const std::string& name = expected.name;
    if (expected.kind == TensorKind::plain) {
      const bool norm = name.ends_with("norm.weight");
      const bool decay = name.ends_with("A_log") || name.ends_with("dt_bias");
      // Norms: 1 (stored 0 when zero-centred); decay parameters small and
      // positive; embeddings and conv taps uniform in [-0.5, 0.5).
      add_bf16(name, expected.shape, [&] {
        if (norm) return config.zero_centered_norms && !name.ends_with("linear_attn.norm.weight") ? 0.0f : 1.0f;
        if (decay) return 0.5f + 0.5f * rng.uniform_signed();
        return 0.5f * rng.uniform_signed();
      });
      continue;
    }
    const std::int64_t n = expected.shape.at(0), k = expected.shape.at(1);
    const bool keep_16_bit = !quant || name.ends_with("in_proj_a") || name.ends_with("in_proj_b") || name == "lm_head" ||
                             k % 8 != 0 || n % 8 != 0;
    const float amplitude = std::sqrt(3.0f / static_cast<float>(k));
    if (keep_16_bit) {
      add_bf16(name + ".weight", {n, k}, [&] { return amplitude * rng.uniform_signed(); });
    } else {
      const std::int64_t groups = quant->groups(k);
      add_random_words(name + ".qweight", {k / 8, n}, k / 8 * n, std::nullopt);
      add_random_words(name + ".qzeros", {groups, n / 8}, groups * (n / 8), 0x77777777u);
      std::string scales(static_cast<std::size_t>(groups * n) * 2, '\0');
      const std::uint16_t scale = float_to_f16(amplitude / 8.0f);
      for (std::int64_t i = 0; i < groups * n; ++i) std::memcpy(scales.data() + i * 2, &scale, 2);
      tensors.push_back({name + ".scales", "F16", {groups, n}, std::move(scales)});
      if (quant->desc_act) {
        std::string g_idx(static_cast<std::size_t>(k) * 4, '\0');
        for (std::int64_t i = 0; i < k; ++i) {
          const std::int32_t g = static_cast<std::int32_t>(i * groups / k);
          std::memcpy(g_idx.data() + i * 4, &g, 4);
        }
        tensors.push_back({name + ".g_idx", "I32", {k}, std::move(g_idx)});
      }
    }
    if (expected.has_bias) add_bf16(name + ".bias", {n}, [&] { return 0.1f * rng.uniform_signed(); });
  }
  // safetensors: 8-byte header length, JSON header, data in header order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::filesystem::create_directories(dir);
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  const std::uint64_t length = header_text.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out.write(header_text.data(), static_cast<std::streamsize>(header_text.size()));
  for (const auto& t : tensors) out.write(t.bytes.data(), static_cast<std::streamsize>(t.bytes.size()));
  if (!out) throw std::runtime_error(fmt::format("{}: cannot write the synthetic checkpoint", dir.string()));
  std::ofstream(dir / "config.json") << config_json;
}

}  // namespace quanteval::runtime
