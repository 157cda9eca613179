#include "runtime/model/qwen3_5/layers.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/checkpoint/gptq.hpp"
#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/safetensors.hpp"

namespace quanteval::runtime::qwen3_5 {
namespace {

float silu(float x) { return x / (1.0f + std::exp(-x)); }
float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("qwen3_5_layers: " + what);
}

void check_size(const std::vector<float>& v, size_t expected, const char* name) {
  require(v.size() == expected, fmt::format("{} has {} values, expected {}", name, v.size(), expected));
}

int total_rows(std::span<const int> lengths) {
  int total = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    require(lengths[s] >= 0, fmt::format("sequence {} has negative length {}", s, lengths[s]));
    total += lengths[s];
  }
  return total;
}

}  // namespace

// --- Norm and MLP ---

void rms_norm_zero_centered(const float* x, int rows, int width, std::span<const float> weight, float eps, float* y) {
  require(weight.size() == static_cast<size_t>(width),
          fmt::format("norm weight has {} values, expected {}", weight.size(), width));
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * width;
    float* yr = y + static_cast<size_t>(r) * width;
    float mean_sq = 0.0f;
    for (int i = 0; i < width; ++i) mean_sq += xr[i] * xr[i];
    mean_sq /= static_cast<float>(width);
    const float inv = 1.0f / std::sqrt(mean_sq + eps);
    for (int i = 0; i < width; ++i) yr[i] = xr[i] * inv * (1.0f + weight[i]);
  }
}

void swiglu_mlp(const MlpWeights& weights, const float* x, int rows, float* y) {
  if (rows == 0) return;
  const size_t inner = static_cast<size_t>(rows) * weights.intermediate_size;
  std::vector<float> gate(inner), up(inner);
  weights.gate_proj(x, rows, gate.data());
  weights.up_proj(x, rows, up.data());
  for (size_t i = 0; i < inner; ++i) gate[i] = silu(gate[i]) * up[i];
  weights.down_proj(gate.data(), rows, y);
}

// --- Gated attention ---

AttentionDims AttentionDims::from_config(const ModelConfig& config) {
  AttentionDims dims;
  dims.hidden_size = static_cast<int>(config.hidden_size);
  dims.num_heads = static_cast<int>(config.num_attention_heads);
  dims.num_kv_heads = static_cast<int>(config.num_key_value_heads);
  dims.head_dim = static_cast<int>(config.head_dim);
  dims.rotary_dim = static_cast<int>(config.rotary_dim);
  dims.rope_theta = config.rope_theta;
  dims.bf16_inv_freq = config.torch_dtype == "bfloat16";
  dims.validate();
  return dims;
}

void AttentionDims::validate() const {
  require(hidden_size > 0 && num_heads > 0 && num_kv_heads > 0 && head_dim > 0,
          fmt::format("non-positive attention size (hidden {}, heads {}, kv heads {}, head_dim {})", hidden_size,
                      num_heads, num_kv_heads, head_dim));
  require(num_heads % num_kv_heads == 0,
          fmt::format("{} query heads is not a multiple of {} kv heads", num_heads, num_kv_heads));
  require(rotary_dim >= 0 && rotary_dim <= head_dim && rotary_dim % 2 == 0,
          fmt::format("rotary_dim {} must be even and within head_dim {}", rotary_dim, head_dim));
  require(rope_theta > 0, fmt::format("rope_theta {} must be positive", rope_theta));
}

GatedAttention::GatedAttention(GatedAttentionWeights weights) : weights_(std::move(weights)) {
  const AttentionDims& d = weights_.dims;
  d.validate();
  require(weights_.q_proj && weights_.k_proj && weights_.v_proj && weights_.o_proj,
          "an attention projection callback is empty");
  check_size(weights_.q_norm, static_cast<size_t>(d.head_dim), "q_norm.weight");
  check_size(weights_.k_norm, static_cast<size_t>(d.head_dim), "k_norm.weight");
  // As transformers computes it: exponent 2i/dim and the power in fp32.
  const float theta = static_cast<float>(d.rope_theta);
  for (int i = 0; i < d.rotary_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(d.rotary_dim);
    const float inv_freq = 1.0f / std::pow(theta, exponent);
    inv_freq_.push_back(d.bf16_inv_freq ? bf16_to_float(float_to_bf16(inv_freq)) : inv_freq);
  }
}

void GatedAttention::decode_step(const float* x, std::span<AttentionKvCache* const> caches, float* y,
                                 ThreadPool* pool) const {
  const std::vector<int> ones(caches.size(), 1);
  forward(x, ones, caches, y, pool);
}

void GatedAttention::forward(const float* x, std::span<const int> lengths, std::span<AttentionKvCache* const> caches,
                             float* y, ThreadPool* pool) const {
  const AttentionDims& d = weights_.dims;
  require(lengths.size() == caches.size(),
          fmt::format("{} sequence lengths but {} kv caches", lengths.size(), caches.size()));
  const int total = total_rows(lengths);
  if (total == 0) return;
  const int H = d.num_heads, Hkv = d.num_kv_heads, hd = d.head_dim, group = H / Hkv;
  const int half = d.rotary_dim / 2;

  std::vector<float> q_and_gate(static_cast<size_t>(total) * H * 2 * hd);
  std::vector<float> k(static_cast<size_t>(total) * Hkv * hd), v(k.size());
  weights_.q_proj(x, total, q_and_gate.data());
  weights_.k_proj(x, total, k.data());
  weights_.v_proj(x, total, v.data());

  // Rotate-half RoPE on the leading rotary_dim dims of one head; the rest pass through.
  auto rope = [&](float* head, std::int64_t position) {
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(position) * inv_freq_[i];
      const float c = std::cos(angle), s = std::sin(angle);
      const float a = head[i], b = head[i + half];
      head[i] = a * c - b * s;
      head[i + half] = b * c + a * s;
    }
  };

  std::vector<float> query(static_cast<size_t>(total) * H * hd), gated(query.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const size_t kv_row = static_cast<size_t>(Hkv) * hd;

  // Check every cache before touching any, so a bad one leaves all unchanged.
  for (size_t s = 0; s < lengths.size(); ++s) {
    if (lengths[s] == 0) continue;
    require(caches[s] != nullptr, fmt::format("sequence {} has no kv cache", s));
    const AttentionKvCache& cache = *caches[s];
    require(cache.keys.size() == static_cast<size_t>(cache.length) * kv_row &&
                cache.values.size() == cache.keys.size(),
            fmt::format("sequence {}: kv cache holds {} keys / {} values for length {}", s, cache.keys.size(),
                        cache.values.size(), cache.length));
  }

  // Phase 1 (serial; O(rows * heads * head_dim), small next to the attention):
  // norms and RoPE, then the new keys and values appended to each cache. The
  // caches grow here, so this must finish before the parallel phase reads them.
  std::vector<int> first_row(lengths.size());
  std::vector<std::int64_t> start_position(lengths.size());
  int first = 0;
  for (size_t s = 0; s < lengths.size(); ++s) {
    const int rows = lengths[s];
    first_row[s] = first;
    if (rows == 0) continue;
    AttentionKvCache& cache = *caches[s];
    const std::int64_t start = cache.length;
    start_position[s] = start;

    for (int t = 0; t < rows; ++t) {
      const size_t row = static_cast<size_t>(first + t);
      const std::int64_t position = start + t;
      for (int h = 0; h < H; ++h) {
        // q_proj row, head h: [query (hd) | gate (hd)].
        const float* src = q_and_gate.data() + (row * H + h) * 2 * hd;
        float* qh = query.data() + (row * H + h) * hd;
        rms_norm_zero_centered(src, 1, hd, weights_.q_norm, weights_.norm_eps, qh);
        rope(qh, position);
      }
      for (int h = 0; h < Hkv; ++h) {
        float* kh = k.data() + (row * Hkv + h) * hd;
        rms_norm_zero_centered(kh, 1, hd, weights_.k_norm, weights_.norm_eps, kh);
        rope(kh, position);
      }
      cache.keys.insert(cache.keys.end(), k.begin() + row * kv_row, k.begin() + (row + 1) * kv_row);
      cache.values.insert(cache.values.end(), v.begin() + row * kv_row, v.begin() + (row + 1) * kv_row);
    }
    cache.length += rows;
    first += rows;
  }

  // Phase 2: causal attention, one (sequence, query head) unit at a time. A unit
  // reads its sequence's (now fixed) cache and writes only its head's rows of
  // `gated`, with its own score buffer, so units run on any thread with
  // bit-identical results. The token at `position` sees cached positions 0..position.
  auto attend = [&](int s, int h, std::vector<float>& scores) {
    const AttentionKvCache& cache = *caches[s];
    const int kv_head = h / group;
    for (int t = 0; t < lengths[s]; ++t) {
      const size_t row = static_cast<size_t>(first_row[s] + t);
      const int visible = static_cast<int>(start_position[s] + t + 1);
      scores.resize(visible);
      const float* qh = query.data() + (row * H + h) * hd;
      float max_score = -std::numeric_limits<float>::infinity();
      for (int p = 0; p < visible; ++p) {
        const float* kp = cache.keys.data() + (static_cast<size_t>(p) * Hkv + kv_head) * hd;
        float dot = 0.0f;
        for (int i = 0; i < hd; ++i) dot += qh[i] * kp[i];
        scores[p] = dot * scale;
        max_score = std::max(max_score, scores[p]);
      }
      float sum = 0.0f;
      for (int p = 0; p < visible; ++p) sum += scores[p] = std::exp(scores[p] - max_score);
      float* out = gated.data() + (row * H + h) * hd;
      std::fill(out, out + hd, 0.0f);
      for (int p = 0; p < visible; ++p) {
        const float w = scores[p] / sum;
        const float* vp = cache.values.data() + (static_cast<size_t>(p) * Hkv + kv_head) * hd;
        for (int i = 0; i < hd; ++i) out[i] += w * vp[i];
      }
      const float* gate = q_and_gate.data() + (row * H + h) * 2 * hd + hd;
      for (int i = 0; i < hd; ++i) out[i] *= sigmoid(gate[i]);
    }
  };
  const int64_t units = static_cast<int64_t>(lengths.size()) * H;
  auto attend_units = [&](int64_t begin, int64_t end) {
    std::vector<float> scores;
    for (int64_t u = begin; u < end; ++u) {
      const int s = static_cast<int>(u / H), h = static_cast<int>(u % H);
      if (lengths[s] > 0) attend(s, h, scores);
    }
  };
  // Single-unit pieces, claimed dynamically: sequences differ in length and cache size.
  if (pool == nullptr || pool->size() == 1 || units == 1) attend_units(0, units);
  else pool->parallel_chunks(units, 1, attend_units);
  weights_.o_proj(gated.data(), total, y);
}

// --- Decoder layer ---

DecoderLayer::DecoderLayer(DecoderLayerWeights weights)
    : kind_(weights.kind),
      hidden_size_(weights.hidden_size),
      norm_eps_(weights.norm_eps),
      input_norm_(std::move(weights.input_norm)),
      post_attention_norm_(std::move(weights.post_attention_norm)),
      mlp_(std::move(weights.mlp)) {
  require(hidden_size_ > 0, "decoder layer hidden size must be positive");
  check_size(input_norm_, static_cast<size_t>(hidden_size_), "input_layernorm.weight");
  check_size(post_attention_norm_, static_cast<size_t>(hidden_size_), "post_attention_layernorm.weight");
  require(mlp_.gate_proj && mlp_.up_proj && mlp_.down_proj && mlp_.intermediate_size > 0,
          "MLP projections missing");
  switch (kind_) {
    case LayerKind::linear_attention:
      require(weights.linear_attn.has_value(), "linear_attention layer without DeltaNet weights");
      linear_attn_.emplace(std::move(*weights.linear_attn));
      break;
    case LayerKind::full_attention:
      require(weights.self_attn.has_value(), "full_attention layer without attention weights");
      self_attn_.emplace(std::move(*weights.self_attn));
      break;
    default:
      throw std::invalid_argument(
          fmt::format("qwen3_5_layers: layer kind {} is not part of Qwen3.5", layer_kind_name(kind_)));
  }
}

LayerState DecoderLayer::make_state() const {
  LayerState state;
  if (linear_attn_) state.deltanet = DeltaNetState::zeros(linear_attn_->dims());
  return state;
}

void DecoderLayer::prefill(const float* x, std::span<const int> lengths, std::span<LayerState* const> states,
                           float* y) const {
  run(x, lengths, states, y, false);
}

void DecoderLayer::decode_step(const float* x, std::span<LayerState* const> states, float* y) const {
  const std::vector<int> ones(states.size(), 1);
  run(x, ones, states, y, true);
}

void DecoderLayer::run(const float* x, std::span<const int> lengths, std::span<LayerState* const> states, float* y,
                       bool decode) const {
  require(lengths.size() == states.size(), fmt::format("{} lengths but {} states", lengths.size(), states.size()));
  for (size_t s = 0; s < states.size(); ++s) require(states[s] != nullptr, fmt::format("sequence {} has no state", s));
  const int total = total_rows(lengths);
  if (total == 0) return;
  const size_t elements = static_cast<size_t>(total) * hidden_size_;
  std::vector<float> normed(elements), mixed(elements), residual(x, x + elements);

  rms_norm_zero_centered(x, total, hidden_size_, input_norm_, norm_eps_, normed.data());
  if (linear_attn_) {
    std::vector<DeltaNetState*> deltanet_states;
    for (LayerState* state : states) deltanet_states.push_back(&state->deltanet);
    if (decode) {
      linear_attn_->decode_step(normed.data(), deltanet_states, mixed.data());
    } else {
      linear_attn_->prefill(normed.data(), lengths, deltanet_states, mixed.data());
    }
  } else {
    std::vector<AttentionKvCache*> caches;
    for (LayerState* state : states) caches.push_back(&state->kv);
    self_attn_->forward(normed.data(), lengths, caches, mixed.data());
  }
  for (size_t i = 0; i < elements; ++i) residual[i] += mixed[i];

  rms_norm_zero_centered(residual.data(), total, hidden_size_, post_attention_norm_, norm_eps_, normed.data());
  swiglu_mlp(mlp_, normed.data(), total, mixed.data());
  for (size_t i = 0; i < elements; ++i) y[i] = residual[i] + mixed[i];
}

// --- Loading ---

std::vector<float> load_float_tensor(const Checkpoint& checkpoint, const std::string& name,
                                     std::int64_t expected_elements) {
  const TensorView& view = checkpoint.tensor(name);
  if (view.element_count() != expected_elements) {
    throw CheckpointError(fmt::format("{}: expected {} elements", view.describe(), expected_elements));
  }
  return to_float(view);
}

LinearFn reference_linear(const Checkpoint& checkpoint, const LinearTensors& tensors) {
  const int N = static_cast<int>(tensors.out_features), K = static_cast<int>(tensors.in_features);
  auto weight = std::make_shared<std::vector<float>>();
  if (tensors.quantized) {
    const auto& quant = checkpoint.quant_config();
    if (!quant) throw CheckpointError(tensors.prefix + ": GPTQ tensors but the checkpoint has no quantization config");
    const std::vector<std::int32_t> qweight = to_int32(*tensors.qweight);
    const std::vector<std::int32_t> qzeros = to_int32(*tensors.qzeros);
    std::vector<std::int32_t> g_idx;
    if (tensors.g_idx) g_idx = to_int32(*tensors.g_idx);
    const TensorView& scales_view = *tensors.scales;
    if (scales_view.dtype != DType::f16 && scales_view.dtype != DType::bf16) {
      throw CheckpointError(scales_view.describe() + ": GPTQ scales must be F16 or BF16");
    }
    std::vector<std::uint16_t> scales(scales_view.bytes / 2);
    std::memcpy(scales.data(), scales_view.data, scales.size() * 2);  // unaligned source: copy, never cast

    GptqWeight gptq;
    gptq.name = tensors.prefix;
    gptq.in_features = K;
    gptq.out_features = N;
    gptq.bits = quant->bits;
    gptq.group_size = static_cast<int>(quant->group_size);
    gptq.format = quant->format;
    gptq.sym = quant->sym;
    gptq.scale_format = scales_view.dtype == DType::f16 ? ScaleFormat::f16 : ScaleFormat::bf16;
    gptq.qweight = qweight;
    gptq.qzeros = qzeros;
    gptq.scales = scales;
    gptq.g_idx = g_idx;
    try {
      *weight = dequantize_reference(gptq);
    } catch (const std::invalid_argument& error) {
      throw CheckpointError(fmt::format("{}: {}", tensors.prefix, error.what()));
    }
  } else {
    *weight = to_float(*tensors.weight);
  }
  auto bias = std::make_shared<std::vector<float>>();
  if (tensors.bias) *bias = to_float(*tensors.bias);
  if (weight->size() != static_cast<size_t>(N) * K || (!bias->empty() && bias->size() != static_cast<size_t>(N))) {
    throw CheckpointError(fmt::format("{}: weight/bias sizes do not match [{}, {}]", tensors.prefix, N, K));
  }
  return [weight, bias, N, K](const float* x, int rows, float* y) {
    for (int r = 0; r < rows; ++r) {
      const float* xr = x + static_cast<size_t>(r) * K;
      float* yr = y + static_cast<size_t>(r) * N;
      for (int n = 0; n < N; ++n) {
        const float* wn = weight->data() + static_cast<size_t>(n) * K;
        float acc = 0.0f;
        for (int k = 0; k < K; ++k) acc += xr[k] * wn[k];
        yr[n] = acc + (bias->empty() ? 0.0f : (*bias)[n]);
      }
    }
  };
}

namespace {

std::string layer_prefix(int layer) { return fmt::format("model.layers.{}.", layer); }

// Checks a projection's shape before handing it to the factory, so a mismatched
// checkpoint fails with the tensor's name rather than inside a kernel.
LinearFn make_checked(const Checkpoint& checkpoint, const std::string& prefix, std::int64_t out_features,
                      std::int64_t in_features, const LinearFactory& make_linear) {
  const LinearTensors tensors = checkpoint.linear(prefix);
  if (tensors.out_features != out_features || tensors.in_features != in_features) {
    throw CheckpointError(fmt::format("{}: shape [{}, {}], expected [{}, {}]", prefix, tensors.out_features,
                                      tensors.in_features, out_features, in_features));
  }
  LinearFn fn = make_linear(tensors);
  if (!fn) throw CheckpointError(prefix + ": the linear factory returned an empty callback");
  return fn;
}

}  // namespace

DeltaNetWeights load_deltanet_weights(const Checkpoint& checkpoint, int layer, const LinearFactory& make_linear) {
  const ModelConfig& config = checkpoint.config();
  DeltaNetWeights w;
  w.dims = DeltaNetDims::from_config(config);
  w.norm_eps = static_cast<float>(config.rms_norm_eps);
  const std::string p = layer_prefix(layer) + "linear_attn.";
  const int hidden = w.dims.hidden_size;
  w.in_proj_qkv = make_checked(checkpoint, p + "in_proj_qkv", w.dims.conv_dim(), hidden, make_linear);
  w.in_proj_z = make_checked(checkpoint, p + "in_proj_z", w.dims.value_dim(), hidden, make_linear);
  w.in_proj_b = make_checked(checkpoint, p + "in_proj_b", w.dims.num_value_heads, hidden, make_linear);
  w.in_proj_a = make_checked(checkpoint, p + "in_proj_a", w.dims.num_value_heads, hidden, make_linear);
  w.out_proj = make_checked(checkpoint, p + "out_proj", hidden, w.dims.value_dim(), make_linear);
  // [conv_dim, 1, kernel] is [conv_dim, kernel] in memory.
  w.conv_weight = load_float_tensor(checkpoint, p + "conv1d.weight",
                                    static_cast<std::int64_t>(w.dims.conv_dim()) * w.dims.conv_kernel);
  if (checkpoint.has(p + "conv1d.bias")) w.conv_bias = load_float_tensor(checkpoint, p + "conv1d.bias", w.dims.conv_dim());
  w.A_log = load_float_tensor(checkpoint, p + "A_log", w.dims.num_value_heads);
  w.dt_bias = load_float_tensor(checkpoint, p + "dt_bias", w.dims.num_value_heads);
  w.norm_weight = load_float_tensor(checkpoint, p + "norm.weight", w.dims.value_head_dim);
  return w;
}

GatedAttentionWeights load_attention_weights(const Checkpoint& checkpoint, int layer,
                                             const LinearFactory& make_linear) {
  const ModelConfig& config = checkpoint.config();
  if (!config.gated_attention) {
    throw CheckpointError(fmt::format("{}: layer {} attention is not gated; only Qwen3.5 gated attention is built here",
                                      checkpoint.directory().string(), layer));
  }
  GatedAttentionWeights w;
  w.dims = AttentionDims::from_config(config);
  w.norm_eps = static_cast<float>(config.rms_norm_eps);
  const std::string p = layer_prefix(layer) + "self_attn.";
  const AttentionDims& d = w.dims;
  w.q_proj = make_checked(checkpoint, p + "q_proj", static_cast<std::int64_t>(d.num_heads) * d.head_dim * 2,
                          d.hidden_size, make_linear);
  w.k_proj = make_checked(checkpoint, p + "k_proj", static_cast<std::int64_t>(d.num_kv_heads) * d.head_dim,
                          d.hidden_size, make_linear);
  w.v_proj = make_checked(checkpoint, p + "v_proj", static_cast<std::int64_t>(d.num_kv_heads) * d.head_dim,
                          d.hidden_size, make_linear);
  w.o_proj = make_checked(checkpoint, p + "o_proj", d.hidden_size,
                          static_cast<std::int64_t>(d.num_heads) * d.head_dim, make_linear);
  w.q_norm = load_float_tensor(checkpoint, p + "q_norm.weight", d.head_dim);
  w.k_norm = load_float_tensor(checkpoint, p + "k_norm.weight", d.head_dim);
  return w;
}

MlpWeights load_mlp_weights(const Checkpoint& checkpoint, int layer, const LinearFactory& make_linear) {
  const ModelConfig& config = checkpoint.config();
  MlpWeights w;
  w.hidden_size = static_cast<int>(config.hidden_size);
  w.intermediate_size = static_cast<int>(config.intermediate_size);
  const std::string p = layer_prefix(layer) + "mlp.";
  w.gate_proj = make_checked(checkpoint, p + "gate_proj", w.intermediate_size, w.hidden_size, make_linear);
  w.up_proj = make_checked(checkpoint, p + "up_proj", w.intermediate_size, w.hidden_size, make_linear);
  w.down_proj = make_checked(checkpoint, p + "down_proj", w.hidden_size, w.intermediate_size, make_linear);
  return w;
}

DecoderLayerWeights load_decoder_layer_weights(const Checkpoint& checkpoint, int layer,
                                               const LinearFactory& make_linear) {
  const ModelConfig& config = checkpoint.config();
  if (layer < 0 || layer >= static_cast<int>(config.layer_types.size())) {
    throw CheckpointError(fmt::format("{}: layer {} out of range ({} layers)", checkpoint.directory().string(), layer,
                                      config.layer_types.size()));
  }
  if (!config.zero_centered_norms) {
    throw CheckpointError(checkpoint.directory().string() + ": Qwen3.5 layers expect zero-centred norms");
  }
  DecoderLayerWeights w;
  w.kind = config.layer_types[layer];
  w.hidden_size = static_cast<int>(config.hidden_size);
  w.norm_eps = static_cast<float>(config.rms_norm_eps);
  const std::string p = layer_prefix(layer);
  w.input_norm = load_float_tensor(checkpoint, p + "input_layernorm.weight", config.hidden_size);
  w.post_attention_norm = load_float_tensor(checkpoint, p + "post_attention_layernorm.weight", config.hidden_size);
  if (w.kind == LayerKind::linear_attention) {
    w.linear_attn = load_deltanet_weights(checkpoint, layer, make_linear);
  } else if (w.kind == LayerKind::full_attention) {
    w.self_attn = load_attention_weights(checkpoint, layer, make_linear);
  } else {
    throw CheckpointError(fmt::format("{}: layer {} is {}, which Qwen3.5 does not use", checkpoint.directory().string(),
                                      layer, layer_kind_name(w.kind)));
  }
  w.mlp = load_mlp_weights(checkpoint, layer, make_linear);
  return w;
}

}  // namespace quanteval::runtime::qwen3_5
