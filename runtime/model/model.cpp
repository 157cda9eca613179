#include "runtime/model/model.hpp"
#include "runtime/model/qwen3_5/mixers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/base/numeric.hpp"

namespace quanteval::runtime {

namespace {

// y = x / sqrt(mean(x^2) + eps) * weight over `width` floats. The sum of squares
// is accumulated in double so it does not depend on the summation order.
void rms_norm(const float* x, const float* weight, std::int64_t width, float eps, float* y) {
  double sum_squares = 0;
  for (std::int64_t i = 0; i < width; ++i) sum_squares += static_cast<double>(x[i]) * x[i];
  const float inverse_rms = static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(width) + eps));
  for (std::int64_t i = 0; i < width; ++i) y[i] = x[i] * inverse_rms * weight[i];
}

void rms_norm_rows(const float* x, const std::vector<float>& weight, std::int64_t rows, float eps, float* y) {
  const auto width = static_cast<std::int64_t>(weight.size());
  for (std::int64_t r = 0; r < rows; ++r) rms_norm(x + r * width, weight.data(), width, eps, y + r * width);
}

// NeoX-style RoPE ("rotate half"): dims i and i + rotary_dim/2 of a head form a pair
// rotated by angle position * inv_freq[i]; dims past rotary_dim are left alone.
// The angle is formed in fp32 like transformers (position * inv_freq), and its
// cos/sin then taken exactly, so long positions round the same way.
void apply_rope(float* head, std::int64_t position, const std::vector<float>& inv_freq) {
  const std::size_t half = inv_freq.size();
  for (std::size_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(position) * inv_freq[i];
    const auto cos_a = static_cast<float>(std::cos(static_cast<double>(angle)));
    const auto sin_a = static_cast<float>(std::sin(static_cast<double>(angle)));
    const float x1 = head[i], x2 = head[i + half];
    head[i] = x1 * cos_a - x2 * sin_a;
    head[i + half] = x2 * cos_a + x1 * sin_a;
  }
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

std::vector<float> norm_weight(const Checkpoint& checkpoint, const std::string& name, std::int64_t width,
                               bool zero_centered) {
  std::vector<float> w = to_float(checkpoint.tensor(name));
  if (static_cast<std::int64_t>(w.size()) != width)
    throw CheckpointError(fmt::format("{}: {} has {} elements, expected {}", checkpoint.directory().string(), name,
                                      w.size(), width));
  if (zero_centered)
    for (float& v : w) v += 1.0f;  // stored as w - 1; the layer multiplies by (1 + w)
  return w;
}

Embedding load_embedding(const TensorView& view, std::int64_t vocab, std::int64_t width) {
  if (view.shape.size() != 2 || view.shape[0] != vocab || view.shape[1] != width)
    throw CheckpointError(fmt::format("{}: expected shape [{}, {}]", view.describe(), vocab, width));
  Embedding e;
  e.vocab = vocab;
  e.width = width;
  if (view.dtype == DType::bf16 || view.dtype == DType::f16) {
    e.bf16 = view.dtype == DType::bf16;
    auto bits = std::make_shared<std::vector<std::uint16_t>>(static_cast<std::size_t>(vocab * width));
    copy_and_release(view, bits->data());
    e.bits16 = std::move(bits);
  } else {
    e.floats = to_float(view);
  }
  release_resident_pages(view);
  return e;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Small pieces

std::vector<float> rope_inverse_frequencies(double theta, int rotary_dim, std::string_view model_dtype) {
  // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), all in fp32 --
  // then the buffer is cast with the model to its dtype, so a bf16 (fp16) model
  // rotates by bf16- (fp16-) rounded frequencies. Matching that rounding is
  // worth ~1e-3 relative L2 on the logits of the bf16 fixtures.
  std::vector<float> inv_freq(static_cast<std::size_t>(rotary_dim / 2));
  for (int i = 0; i < rotary_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(rotary_dim);
    const float power = static_cast<float>(std::pow(static_cast<double>(static_cast<float>(theta)), exponent));
    float value = 1.0f / power;
    if (model_dtype == "bfloat16") value = bf16_to_float(float_to_bf16(value));
    else if (model_dtype == "float16") value = f16_to_float(float_to_f16(value));
    inv_freq[static_cast<std::size_t>(i)] = value;
  }
  return inv_freq;
}

std::uint64_t default_kv_cache_bytes() {
  const std::uint64_t ram = physical_memory_bytes();
  if (ram == 0) return 256ull << 20;
  return std::min<std::uint64_t>(ram / 4, 4ull << 30);
}

void Embedding::row(TokenId id, float* out) const {
  const auto offset = static_cast<std::size_t>(id) * static_cast<std::size_t>(width);
  if (bits16) {
    const std::uint16_t* src = bits16->data() + offset;
    if (bf16)
      for (std::int64_t i = 0; i < width; ++i) out[i] = bf16_to_float(src[i]);
    else
      for (std::int64_t i = 0; i < width; ++i) out[i] = f16_to_float(src[i]);
  } else {
    std::memcpy(out, floats.data() + offset, static_cast<std::size_t>(width) * sizeof(float));
  }
}

SequenceState::~SequenceState() {
  if (cache_) cache_->release(blocks_);
}

// ---------------------------------------------------------------------------------------------
// Attention

Attention::Attention(AttentionWeights weights, AttentionShape shape, std::vector<float> inv_freq, int cache_slot)
    : weights_(std::move(weights)), shape_(shape), inv_freq_(std::move(inv_freq)), cache_slot_(cache_slot) {}

std::uint64_t Attention::weight_bytes() const {
  return weights_.q_proj.weight_bytes() + weights_.k_proj.weight_bytes() + weights_.v_proj.weight_bytes() +
         weights_.o_proj.weight_bytes();
}

void Attention::forward(const StepRows& rows, const float* normed, float* out, MixerContext& context) const {
  const int m = static_cast<int>(rows.size());
  const int heads = shape_.heads, kv_heads = shape_.kv_heads, head_dim = shape_.head_dim;
  const int q_width = heads * head_dim, kv_width = kv_heads * head_dim;
  std::vector<float> q(static_cast<std::size_t>(m) * q_width);   // [M, heads * head_dim]
  std::vector<float> k(static_cast<std::size_t>(m) * kv_width);  // [M, kv_heads * head_dim]
  std::vector<float> v(static_cast<std::size_t>(m) * kv_width);  // [M, kv_heads * head_dim]
  weights_.q_proj.forward(normed, m, q.data(), context.pool);
  weights_.k_proj.forward(normed, m, k.data(), context.pool);
  weights_.v_proj.forward(normed, m, v.data(), context.pool);

  KvCache& cache = context.cache;
  const int block_tokens = cache.shape().block_tokens;
  // Per row: q/k head norms, RoPE at the row's position, then K/V into the cache.
  // Every row is stored before any row attends, so a prompt's rows see each other.
  auto prepare_rows = [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const std::int64_t position = rows.position[static_cast<std::size_t>(r)];
      float* q_row = q.data() + r * q_width;
      float* k_row = k.data() + r * kv_width;
      for (int h = 0; h < heads; ++h) {
        float* head = q_row + h * head_dim;
        if (!weights_.q_norm.empty()) rms_norm(head, weights_.q_norm.data(), head_dim, shape_.norm_eps, head);
        apply_rope(head, position, inv_freq_);
      }
      const SequenceState& state = *rows.states[static_cast<std::size_t>(rows.sequence[static_cast<std::size_t>(r)])];
      const std::int32_t block = state.blocks()[static_cast<std::size_t>(position / block_tokens)];
      const int offset = static_cast<int>(position % block_tokens);
      for (int h = 0; h < kv_heads; ++h) {
        float* head = k_row + h * head_dim;
        if (!weights_.k_norm.empty()) rms_norm(head, weights_.k_norm.data(), head_dim, shape_.norm_eps, head);
        apply_rope(head, position, inv_freq_);
        std::memcpy(cache.key(cache_slot_, block, offset, h), head, sizeof(float) * head_dim);
        std::memcpy(cache.value(cache_slot_, block, offset, h), v.data() + r * kv_width + h * head_dim,
                    sizeof(float) * head_dim);
      }
    }
  };
  // Waking the pool costs tens of microseconds, more than a few rows of this work:
  // decode steps of small batches do it on the calling thread.
  constexpr std::int64_t kRowsWorthThreads = 8;
  if (m < kRowsWorthThreads) prepare_rows(0, m);
  else context.pool.parallel_for(m, prepare_rows);

  // Causal attention, one (row, query head) pair per task; scores are softmaxed in fp32.
  std::vector<float> attended(static_cast<std::size_t>(m) * q_width);  // [M, heads * head_dim]
  const int group = heads / kv_heads;  // query heads sharing one K/V head
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  auto attend = [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scores;
    for (std::int64_t task = begin; task < end; ++task) {
      const std::int64_t r = task / heads;
      const int h = static_cast<int>(task % heads);
      const int kv_head = h / group;
      const std::int64_t position = rows.position[static_cast<std::size_t>(r)];
      const SequenceState& state = *rows.states[static_cast<std::size_t>(rows.sequence[static_cast<std::size_t>(r)])];
      const std::int64_t first = shape_.window > 0 ? std::max<std::int64_t>(0, position - shape_.window + 1) : 0;
      const float* query = q.data() + r * q_width + h * head_dim;
      scores.resize(static_cast<std::size_t>(position - first + 1));
      float max_score = -INFINITY;
      for (std::int64_t p = first; p <= position; ++p) {
        const float* key = cache.key(cache_slot_, state.blocks()[static_cast<std::size_t>(p / block_tokens)],
                                     static_cast<int>(p % block_tokens), kv_head);
        float dot = 0;
        for (int d = 0; d < head_dim; ++d) dot += query[d] * key[d];
        dot *= scale;
        scores[static_cast<std::size_t>(p - first)] = dot;
        max_score = std::max(max_score, dot);
      }
      float total = 0;
      for (float& s : scores) {
        s = std::exp(s - max_score);
        total += s;
      }
      float* result = attended.data() + r * q_width + h * head_dim;
      std::fill(result, result + head_dim, 0.0f);
      for (std::int64_t p = first; p <= position; ++p) {
        const float* value = cache.value(cache_slot_, state.blocks()[static_cast<std::size_t>(p / block_tokens)],
                                         static_cast<int>(p % block_tokens), kv_head);
        const float weight = scores[static_cast<std::size_t>(p - first)] / total;
        for (int d = 0; d < head_dim; ++d) result[d] += weight * value[d];
      }
    }
  };
  // Same trade-off: below ~256k multiply-adds (a few tens of microseconds) stay on this thread.
  std::int64_t multiply_adds = 0;
  for (std::int64_t r = 0; r < m; ++r) multiply_adds += 2 * (rows.position[static_cast<std::size_t>(r)] + 1) * q_width;
  const std::int64_t tasks = static_cast<std::int64_t>(m) * heads;
  if (multiply_adds < (1 << 18)) attend(0, tasks);
  else context.pool.parallel_for(tasks, attend);
  weights_.o_proj.forward(attended.data(), m, out, context.pool);
}

std::unique_ptr<TokenMixer> build_attention_mixer(const ModelConfig& config, LayerKind kind, AttentionWeights weights,
                                                  int cache_slot) {
  AttentionShape shape;
  shape.heads = static_cast<int>(config.num_attention_heads);
  shape.kv_heads = static_cast<int>(config.num_key_value_heads);
  shape.head_dim = static_cast<int>(config.head_dim);
  shape.rotary_dim = config.rotary_dim > 0 ? static_cast<int>(config.rotary_dim) : shape.head_dim;
  shape.norm_eps = static_cast<float>(config.rms_norm_eps);
  if (kind == LayerKind::sliding_attention) {
    if (!config.sliding_window) throw CheckpointError("sliding_attention layer without a sliding_window");
    shape.window = *config.sliding_window;
  }
  return std::make_unique<Attention>(std::move(weights), shape,
                                     rope_inverse_frequencies(config.rope_theta, shape.rotary_dim, config.torch_dtype), cache_slot);
}

// ---------------------------------------------------------------------------------------------
// Model

Model::Model(ModelConfig config, ModelWeights weights, const LoadOptions& options)
    : config_(std::move(config)), weights_(std::move(weights)) {
  if (options.device != Device::cpu)
    throw std::runtime_error("the model forward runs on the CPU only in this build (use --device cpu)");
  pool_ = std::make_unique<ThreadPool>(options.threads);
  KvCacheShape shape;
  shape.attention_layers = static_cast<int>(config_.num_full_attention_layers());
  shape.kv_heads = static_cast<int>(config_.num_key_value_heads);
  shape.head_dim = static_cast<int>(config_.head_dim);
  shape.block_tokens = options.kv_block_tokens;
  cache_ = std::make_unique<KvCache>(shape, options.kv_cache_bytes ? options.kv_cache_bytes : default_kv_cache_bytes());
}

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, const LoadOptions& options) {
  if (options.device != Device::cpu)
    throw std::runtime_error("the model forward runs on the CPU only in this build (use --device cpu)");
  const Checkpoint checkpoint = Checkpoint::open(dir);
  checkpoint.validate();
  const ModelConfig& config = checkpoint.config();
  const auto& quant = checkpoint.quant_config();
  if (config.hidden_act != "silu")
    throw CheckpointError(fmt::format("{}: hidden_act '{}' is not supported (only silu)", dir.string(), config.hidden_act));
  if (config.rope_type != "default")
    throw CheckpointError(fmt::format("{}: rope_type '{}' is not supported", dir.string(), config.rope_type));

  ModelWeights weights;
  const std::int64_t hidden = config.hidden_size;
  const bool zero_centered = config.zero_centered_norms;
  weights.embed_tokens = load_embedding(checkpoint.tensor("model.embed_tokens.weight"), config.vocab_size, hidden);
  int cache_slot = 0;
  for (std::int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string prefix = fmt::format("model.layers.{}.", i);
    DecoderLayer layer;
    layer.kind = config.layer_types.at(static_cast<std::size_t>(i));
    layer.input_norm = norm_weight(checkpoint, prefix + "input_layernorm.weight", hidden, zero_centered);
    layer.post_attention_norm = norm_weight(checkpoint, prefix + "post_attention_layernorm.weight", hidden, zero_centered);
    if (config.architecture == Architecture::qwen3_5) {
      // Gated DeltaNet or gated attention (runtime/model_qwen3_5.hpp).
      layer.mixer = build_qwen3_5_mixer(checkpoint, static_cast<int>(i), quant);
    } else switch (layer.kind) {
      case LayerKind::full_attention:
      case LayerKind::sliding_attention: {
        AttentionWeights attention;
        attention.q_proj = Linear::from_checkpoint(checkpoint.linear(prefix + "self_attn.q_proj"), quant);
        attention.k_proj = Linear::from_checkpoint(checkpoint.linear(prefix + "self_attn.k_proj"), quant);
        attention.v_proj = Linear::from_checkpoint(checkpoint.linear(prefix + "self_attn.v_proj"), quant);
        attention.o_proj = Linear::from_checkpoint(checkpoint.linear(prefix + "self_attn.o_proj"), quant);
        if (config.qk_norm) {
          attention.q_norm = norm_weight(checkpoint, prefix + "self_attn.q_norm.weight", config.head_dim, zero_centered);
          attention.k_norm = norm_weight(checkpoint, prefix + "self_attn.k_norm.weight", config.head_dim, zero_centered);
        }
        layer.mixer = build_attention_mixer(config, layer.kind, std::move(attention), cache_slot++);
        break;
      }
      case LayerKind::linear_attention:
        throw CheckpointError(fmt::format("{}: layer {} is linear_attention (Gated DeltaNet), not implemented by this "
                                          "model yet", dir.string(), i));
    }
    layer.mlp.gate_proj = Linear::from_checkpoint(checkpoint.linear(prefix + "mlp.gate_proj"), quant);
    layer.mlp.up_proj = Linear::from_checkpoint(checkpoint.linear(prefix + "mlp.up_proj"), quant);
    layer.mlp.down_proj = Linear::from_checkpoint(checkpoint.linear(prefix + "mlp.down_proj"), quant);
    weights.layers.push_back(std::move(layer));
  }
  weights.final_norm = norm_weight(checkpoint, "model.norm.weight", hidden, zero_centered);
  if (checkpoint.has("lm_head.weight") || checkpoint.has("lm_head.qweight")) {
    weights.lm_head = Linear::from_checkpoint(checkpoint.linear("lm_head"), quant);
  } else if (config.tie_word_embeddings && weights.embed_tokens.bits16) {
    const Embedding& embed = weights.embed_tokens;
    weights.lm_head = Linear::from_dense(DenseLinear::from_shared_16bit(embed.bits16, embed.bf16,
                                                                        static_cast<int>(embed.vocab),
                                                                        static_cast<int>(embed.width)),
                                         "lm_head (tied to model.embed_tokens)");
    weights.lm_head_shares_embedding = true;
  } else if (config.tie_word_embeddings) {
    weights.lm_head = Linear::from_checkpoint(checkpoint.linear("model.embed_tokens"), std::nullopt);
  } else {
    throw CheckpointError(fmt::format("{}: no lm_head.weight and tie_word_embeddings is false", dir.string()));
  }
  auto model = std::make_unique<Model>(config, std::move(weights), options);
  model->directory_ = dir;
  return model;
}

std::uint64_t Model::weight_bytes() const {
  std::uint64_t total = weights_.lm_head.weight_bytes();
  for (const auto& layer : weights_.layers) {
    total += layer.mixer->weight_bytes() + layer.mlp.gate_proj.weight_bytes() + layer.mlp.up_proj.weight_bytes() +
             layer.mlp.down_proj.weight_bytes();
    total += (layer.input_norm.size() + layer.post_attention_norm.size()) * sizeof(float);
  }
  return total;
}

std::uint64_t Model::resident_weight_bytes() const {
  const Embedding& embed = weights_.embed_tokens;
  const std::uint64_t table = embed.bits16 ? embed.bits16->size() * 2 : embed.floats.size() * sizeof(float);
  // A tied lm_head shares the table, and weight_bytes() already counts it.
  return weight_bytes() + (weights_.lm_head_shares_embedding ? 0 : table);
}

std::int64_t Model::max_sequence_tokens() const {
  std::int64_t limit = cache_->capacity_tokens();
  if (config_.max_position_embeddings > 0) limit = std::min(limit, config_.max_position_embeddings);
  return limit;
}

void Model::check_tokens(std::span<const TokenId> ids) const {
  if (ids.empty()) throw ModelInputError("empty token sequence: a prompt needs at least one token");
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= config_.vocab_size)
      throw ModelInputError(fmt::format("token id {} at index {} is outside the model vocabulary [0, {})", ids[i], i,
                                        config_.vocab_size));
}

std::unique_ptr<SequenceState> Model::try_open_sequence(std::int64_t max_tokens) {
  if (max_tokens <= 0) throw ModelInputError("a sequence needs room for at least one token");
  if (config_.max_position_embeddings > 0 && max_tokens > config_.max_position_embeddings)
    throw ModelInputError(fmt::format("sequence of {} tokens (prompt + max new tokens) exceeds the model's context "
                                      "of {} (max_position_embeddings)", max_tokens, config_.max_position_embeddings));
  if (cache_->shape().blocks_for(max_tokens) > cache_->total_blocks())
    throw ModelInputError(fmt::format("sequence of {} tokens (prompt + max new tokens) does not fit the KV cache: its "
                                      "budget of {} bytes holds {} tokens ({} bytes per token)", max_tokens,
                                      cache_->allocated_bytes(), cache_->capacity_tokens(),
                                      cache_->shape().bytes_per_token()));
  std::unique_ptr<SequenceState> state(new SequenceState());
  if (!cache_->try_reserve(max_tokens, state->blocks_)) return nullptr;
  state->cache_ = cache_.get();
  state->capacity_ = max_tokens;
  for (const auto& layer : weights_.layers) state->layer_states_.push_back(layer.mixer->make_state());
  return state;
}

std::unique_ptr<SequenceState> Model::open_sequence(std::int64_t max_tokens) {
  auto state = try_open_sequence(max_tokens);
  if (!state)
    throw ModelInputError(fmt::format("KV cache is full: {} tokens requested, {} of {} blocks free", max_tokens,
                                      cache_->free_blocks(), cache_->total_blocks()));
  return state;
}

std::vector<float> Model::forward(std::span<const Step> steps, ForwardTrace* trace) {
  StepRows rows;
  std::vector<std::int64_t> logit_rows;  // which rows of the batch produce logits, in output order
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    if (!step.state) throw std::invalid_argument("Model::forward: step without a sequence");
    check_tokens(step.tokens);
    const auto count = static_cast<std::int64_t>(step.tokens.size());
    if (step.state->length_ + count > step.state->capacity_)
      throw ModelInputError(fmt::format("sequence would grow to {} tokens but only {} were reserved",
                                        step.state->length_ + count, step.state->capacity_));
    rows.states.push_back(step.state);
    for (std::int64_t j = 0; j < count; ++j) {
      if (step.all_logits || j == count - 1) logit_rows.push_back(rows.size());
      rows.tokens.push_back(step.tokens[static_cast<std::size_t>(j)]);
      rows.sequence.push_back(static_cast<int>(i));
      rows.position.push_back(step.state->length_ + j);
    }
  }
  const std::int64_t m = rows.size();
  const std::int64_t hidden_size = config_.hidden_size;
  const float eps = static_cast<float>(config_.rms_norm_eps);
  const std::size_t activation_floats = static_cast<std::size_t>(m * hidden_size);
  std::vector<float> hidden(activation_floats);  // [M, hidden] residual stream
  std::vector<float> normed(activation_floats);  // [M, hidden]
  std::vector<float> branch(activation_floats);  // [M, hidden] mixer / MLP output
  const auto intermediate = static_cast<std::size_t>(config_.intermediate_size);
  std::vector<float> gate(static_cast<std::size_t>(m) * intermediate);  // [M, intermediate]
  std::vector<float> up(static_cast<std::size_t>(m) * intermediate);    // [M, intermediate]

  for (std::int64_t r = 0; r < m; ++r)
    weights_.embed_tokens.row(rows.tokens[static_cast<std::size_t>(r)], hidden.data() + r * hidden_size);
  const std::size_t layers = weights_.layers.size();
  if (trace) {
    trace->rows = m;
    trace->width = hidden_size;
    trace->hidden_states.assign(hidden.begin(), hidden.end());
  }

  MixerContext context{*pool_, *cache_, 0};
  for (std::size_t l = 0; l < layers; ++l) {
    const DecoderLayer& layer = weights_.layers[l];
    context.layer_index = l;
    rms_norm_rows(hidden.data(), layer.input_norm, m, eps, normed.data());
    layer.mixer->forward(rows, normed.data(), branch.data(), context);
    for (std::size_t i = 0; i < activation_floats; ++i) hidden[i] += branch[i];
    rms_norm_rows(hidden.data(), layer.post_attention_norm, m, eps, normed.data());
    layer.mlp.gate_proj.forward(normed.data(), static_cast<int>(m), gate.data(), *pool_);
    layer.mlp.up_proj.forward(normed.data(), static_cast<int>(m), up.data(), *pool_);
    for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = silu(gate[i]) * up[i];
    layer.mlp.down_proj.forward(gate.data(), static_cast<int>(m), branch.data(), *pool_);
    for (std::size_t i = 0; i < activation_floats; ++i) hidden[i] += branch[i];
    if (trace && l + 1 < layers) trace->hidden_states.insert(trace->hidden_states.end(), hidden.begin(), hidden.end());
  }
  for (std::size_t i = 0; i < steps.size(); ++i)
    steps[i].state->length_ += static_cast<std::int64_t>(steps[i].tokens.size());

  // Final norm and lm_head only for the rows whose logits are wanted: at decode the
  // lm_head is the largest single matrix, and prefill needs only the last row.
  const auto out_rows = static_cast<std::int64_t>(logit_rows.size());
  std::vector<float> selected(static_cast<std::size_t>(out_rows * hidden_size));  // [R, hidden]
  for (std::int64_t i = 0; i < out_rows; ++i)
    rms_norm(hidden.data() + logit_rows[static_cast<std::size_t>(i)] * hidden_size, weights_.final_norm.data(),
             hidden_size, eps, selected.data() + i * hidden_size);
  if (trace) {
    std::vector<float> all_normed(activation_floats);
    rms_norm_rows(hidden.data(), weights_.final_norm, m, eps, all_normed.data());
    trace->hidden_states.insert(trace->hidden_states.end(), all_normed.begin(), all_normed.end());
  }
  std::vector<float> logits(static_cast<std::size_t>(out_rows * config_.vocab_size));  // [R, vocab]
  weights_.lm_head.forward(selected.data(), static_cast<int>(out_rows), logits.data(), *pool_);
  return logits;
}

std::vector<float> Model::logits_for(std::span<const TokenId> ids) {
  check_tokens(ids);
  auto state = open_sequence(static_cast<std::int64_t>(ids.size()));
  const Step step{state.get(), ids, true};
  return forward(std::span<const Step>(&step, 1));
}

ForwardTrace Model::hidden_states_for(std::span<const TokenId> ids) {
  check_tokens(ids);
  auto state = open_sequence(static_cast<std::int64_t>(ids.size()));
  const Step step{state.get(), ids, true};
  ForwardTrace trace;
  forward(std::span<const Step>(&step, 1), &trace);
  return trace;
}

}  // namespace quanteval::runtime
