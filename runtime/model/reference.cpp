#include "runtime/model/reference.hpp"
#include "runtime/base/numeric.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "runtime/model/linear.hpp"

namespace quanteval::runtime {

namespace {

using Matrix = std::vector<float>;  // row-major, shape given beside each use

// out[t, n] = sum_k in[t, k] * W[n, k] + b[n];  in [T, K], W [N, K], out [T, N]
Matrix matmul(const Matrix& in, std::int64_t tokens, const ReferenceLinearWeights& w) {
  Matrix out(static_cast<std::size_t>(tokens * w.out_features));
  for (std::int64_t t = 0; t < tokens; ++t)
    for (std::int64_t n = 0; n < w.out_features; ++n) {
      double sum = w.bias.empty() ? 0.0 : w.bias[static_cast<std::size_t>(n)];
      for (std::int64_t k = 0; k < w.in_features; ++k)
        sum += static_cast<double>(in[static_cast<std::size_t>(t * w.in_features + k)]) *
               w.weight[static_cast<std::size_t>(n * w.in_features + k)];
      out[static_cast<std::size_t>(t * w.out_features + n)] = static_cast<float>(sum);
    }
  return out;
}

// RMSNorm of each row of `x` [rows, width] in place: x / sqrt(mean(x^2) + eps) * w.
void rms_norm(float* x, std::int64_t rows, std::int64_t width, const std::vector<float>& w, double eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float* row = x + r * width;
    double sum_squares = 0;
    for (std::int64_t i = 0; i < width; ++i) sum_squares += static_cast<double>(row[i]) * row[i];
    const double inverse_rms = 1.0 / std::sqrt(sum_squares / static_cast<double>(width) + eps);
    for (std::int64_t i = 0; i < width; ++i)
      row[i] = static_cast<float>(row[i] * inverse_rms * w[static_cast<std::size_t>(i)]);
  }
}

// Rotate-half RoPE on the first `rotary_dim` dims of one head at `position`,
// in double, with the frequencies rounded to the model's dtype as transformers'
// inv_freq buffer is (the one deliberate non-double step).
void rope(float* head, std::int64_t position, std::int64_t rotary_dim, double theta, std::string_view model_dtype) {
  const std::int64_t half = rotary_dim / 2;
  for (std::int64_t i = 0; i < half; ++i) {
    double inv_freq = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(rotary_dim));
    if (model_dtype == "bfloat16") inv_freq = bf16_to_float(float_to_bf16(static_cast<float>(inv_freq)));
    else if (model_dtype == "float16") inv_freq = f16_to_float(float_to_f16(static_cast<float>(inv_freq)));
    const double angle = static_cast<double>(position) * inv_freq;
    const double x1 = head[i], x2 = head[i + half];
    head[i] = static_cast<float>(x1 * std::cos(angle) - x2 * std::sin(angle));
    head[i + half] = static_cast<float>(x2 * std::cos(angle) + x1 * std::sin(angle));
  }
}

std::vector<float> norm_weight(const Checkpoint& checkpoint, const std::string& name, bool zero_centered) {
  std::vector<float> w = to_float(checkpoint.tensor(name));
  if (zero_centered)
    for (float& v : w) v += 1.0f;
  return w;
}

}  // namespace

ReferenceOutput reference_forward(const Checkpoint& checkpoint, std::span<const TokenId> ids) {
  const ModelConfig& c = checkpoint.config();
  const auto& quant = checkpoint.quant_config();
  const std::int64_t T = static_cast<std::int64_t>(ids.size());
  const std::int64_t H = c.hidden_size, heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  const std::int64_t D = c.head_dim, rotary_dim = c.rotary_dim > 0 ? c.rotary_dim : c.head_dim;
  const bool zc = c.zero_centered_norms;
  if (T == 0) throw std::invalid_argument("reference_forward: no tokens");

  ReferenceOutput out;
  out.tokens = T;
  out.vocab = c.vocab_size;
  out.hidden = H;

  // Embedding lookup: x [T, H].
  const std::vector<float> embedding = to_float(checkpoint.tensor("model.embed_tokens.weight"));  // [vocab, H]
  Matrix x(static_cast<std::size_t>(T * H));
  for (std::int64_t t = 0; t < T; ++t) {
    const TokenId id = ids[static_cast<std::size_t>(t)];
    if (id < 0 || id >= c.vocab_size) throw std::invalid_argument(fmt::format("token id {} outside the vocabulary", id));
    for (std::int64_t i = 0; i < H; ++i) x[static_cast<std::size_t>(t * H + i)] = embedding[static_cast<std::size_t>(id * H + i)];
  }
  out.hidden_states = x;

  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const LayerKind kind = c.layer_types[static_cast<std::size_t>(l)];
    if (kind == LayerKind::linear_attention)
      throw CheckpointError(fmt::format("reference_forward: layer {} is linear_attention, not implemented here", l));
    const std::string p = fmt::format("model.layers.{}.", l);
    auto linear = [&](const char* name) { return reference_linear_weights(checkpoint.linear(p + name), quant); };

    // --- attention block ---
    Matrix normed = x;  // [T, H]
    rms_norm(normed.data(), T, H, norm_weight(checkpoint, p + "input_layernorm.weight", zc), c.rms_norm_eps);
    Matrix q = matmul(normed, T, linear("self_attn.q_proj"));  // [T, heads * D]
    Matrix k = matmul(normed, T, linear("self_attn.k_proj"));  // [T, kv_heads * D]
    Matrix v = matmul(normed, T, linear("self_attn.v_proj"));  // [T, kv_heads * D]
    if (c.qk_norm) {
      rms_norm(q.data(), T * heads, D, norm_weight(checkpoint, p + "self_attn.q_norm.weight", zc), c.rms_norm_eps);
      rms_norm(k.data(), T * kv_heads, D, norm_weight(checkpoint, p + "self_attn.k_norm.weight", zc), c.rms_norm_eps);
    }
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t h = 0; h < heads; ++h) rope(&q[static_cast<std::size_t>((t * heads + h) * D)], t, rotary_dim, c.rope_theta, c.torch_dtype);
      for (std::int64_t h = 0; h < kv_heads; ++h) rope(&k[static_cast<std::size_t>((t * kv_heads + h) * D)], t, rotary_dim, c.rope_theta, c.torch_dtype);
    }
    const std::int64_t window = kind == LayerKind::sliding_attention ? c.sliding_window.value_or(0) : 0;
    Matrix attended(static_cast<std::size_t>(T * heads * D), 0.0f);  // [T, heads * D]
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t h = 0; h < heads; ++h) {
        const std::int64_t g = h / (heads / kv_heads);  // the K/V head this query head reads
        const std::int64_t first = window > 0 ? std::max<std::int64_t>(0, t - window + 1) : 0;
        std::vector<double> scores;
        double max_score = -INFINITY;
        for (std::int64_t s = first; s <= t; ++s) {
          double dot = 0;
          for (std::int64_t d = 0; d < D; ++d)
            dot += static_cast<double>(q[static_cast<std::size_t>((t * heads + h) * D + d)]) *
                   k[static_cast<std::size_t>((s * kv_heads + g) * D + d)];
          scores.push_back(dot / std::sqrt(static_cast<double>(D)));
          max_score = std::max(max_score, scores.back());
        }
        double total = 0;
        for (double& score : scores) total += (score = std::exp(score - max_score));
        for (std::int64_t s = first; s <= t; ++s)
          for (std::int64_t d = 0; d < D; ++d)
            attended[static_cast<std::size_t>((t * heads + h) * D + d)] += static_cast<float>(
                scores[static_cast<std::size_t>(s - first)] / total * v[static_cast<std::size_t>((s * kv_heads + g) * D + d)]);
      }
    const Matrix attention_out = matmul(attended, T, linear("self_attn.o_proj"));  // [T, H]
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += attention_out[i];

    // --- MLP block: down(silu(gate(x)) * up(x)) ---
    normed = x;
    rms_norm(normed.data(), T, H, norm_weight(checkpoint, p + "post_attention_layernorm.weight", zc), c.rms_norm_eps);
    Matrix gate = matmul(normed, T, linear("mlp.gate_proj"));  // [T, intermediate]
    const Matrix up = matmul(normed, T, linear("mlp.up_proj"));  // [T, intermediate]
    for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
    const Matrix mlp_out = matmul(gate, T, linear("mlp.down_proj"));  // [T, H]
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += mlp_out[i];
    if (l + 1 < c.num_hidden_layers) out.hidden_states.insert(out.hidden_states.end(), x.begin(), x.end());
  }

  rms_norm(x.data(), T, H, norm_weight(checkpoint, "model.norm.weight", zc), c.rms_norm_eps);
  out.hidden_states.insert(out.hidden_states.end(), x.begin(), x.end());
  const bool own_head = checkpoint.has("lm_head.weight") || checkpoint.has("lm_head.qweight");
  const ReferenceLinearWeights head =
      reference_linear_weights(checkpoint.linear(own_head ? "lm_head" : "model.embed_tokens"), quant);
  out.logits = matmul(x, T, head);  // [T, vocab]
  return out;
}

}  // namespace quanteval::runtime
