#include "runtime/model/reference.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/tensor_table.hpp"
#include "runtime/model/model.hpp"  // rope_inverse_frequencies

namespace quanteval::runtime {

namespace {

using Matrix = std::vector<float>;  // row-major, shape given beside each use

struct Weights {  // one projection as plain floats
  std::int64_t out_features = 0, in_features = 0;
  std::vector<float> weight;  // [N, K]
  std::vector<float> bias;    // [N] or empty
};

Weights projection(const WeightSource& source, const std::string& prefix, std::int64_t n, std::int64_t k) {
  const LinearSource tensors = source.linear(prefix, n, k);
  Weights w;
  w.out_features = n;
  w.in_features = k;
  w.bias = tensors.bias;
  if (tensors.gptq) {
    w.weight = dequantize_reference(*tensors.gptq);
  } else {
    const DenseSource& dense = *tensors.dense;
    w.weight.resize(static_cast<std::size_t>(n * k));
    if (dense.dtype == DType::f32) {
      dense.copy_to(w.weight.data());
    } else {
      std::vector<std::uint16_t> bits(w.weight.size());
      dense.copy_to(bits.data());
      for (std::size_t i = 0; i < bits.size(); ++i)
        w.weight[i] = dense.dtype == DType::bf16 ? bf16_to_float(bits[i]) : f16_to_float(bits[i]);
    }
  }
  return w;
}

// out[t, n] = sum_k in[t, k] * W[n, k] + b[n];  in [T, K], W [N, K], out [T, N]
Matrix matmul(const Matrix& in, std::int64_t tokens, const Weights& w) {
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

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double silu(double x) { return x * sigmoid(x); }
double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }

// Rotate-half RoPE on the first 2 * inv_freq.size() dims of one head at `position`, in double.
void rope(float* head, std::int64_t position, const std::vector<double>& inv_freq) {
  const std::size_t half = inv_freq.size();
  for (std::size_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * inv_freq[i];
    const double x1 = head[i], x2 = head[i + half];
    head[i] = static_cast<float>(x1 * std::cos(angle) - x2 * std::sin(angle));
    head[i + half] = static_cast<float>(x2 * std::cos(angle) + x1 * std::sin(angle));
  }
}

class Reference {
 public:
  Reference(const Checkpoint& checkpoint, const ReferenceOptions& options)
      : source_(checkpoint), c_(checkpoint.config()), options_(options) {}

  std::vector<float> norm(const std::string& name, std::int64_t width) const {
    std::vector<float> w = source_.vector(name, width);
    if (c_.zero_centered_norms)
      for (float& v : w) v += 1.0f;  // stored as w - 1, applied as 1 + w
    return w;
  }

  // Softmax attention of one layer (Qwen2/Qwen3, and Qwen3.5's gated form): x [T, H] -> [T, H].
  Matrix attention(const LayerTensorNames& n, LayerKind kind, const Matrix& x, std::int64_t T) const {
    const std::int64_t H = c_.hidden_size, heads = c_.num_attention_heads, kv_heads = c_.num_key_value_heads;
    const std::int64_t D = c_.head_dim, rotary_dim = c_.rotary_dim > 0 ? c_.rotary_dim : D;
    const bool gated = c_.gated_attention;
    const Matrix q_and_gate = matmul(x, T, projection(source_, n.q_proj, heads * D * (gated ? 2 : 1), H));
    Matrix k = matmul(x, T, projection(source_, n.k_proj, kv_heads * D, H));  // [T, kv_heads * D]
    const Matrix v = matmul(x, T, projection(source_, n.v_proj, kv_heads * D, H));
    Matrix q(static_cast<std::size_t>(T * heads * D));  // [T, heads * D]
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t d = 0; d < D; ++d)
          q[static_cast<std::size_t>((t * heads + h) * D + d)] =
              q_and_gate[static_cast<std::size_t>((t * heads + h) * D * (gated ? 2 : 1) + d)];
    if (c_.qk_norm) {
      rms_norm(q.data(), T * heads, D, norm(n.q_norm, D), c_.rms_norm_eps);
      rms_norm(k.data(), T * kv_heads, D, norm(n.k_norm, D), c_.rms_norm_eps);
    }
    // RoPE frequencies in double, rounded to the model's dtype as transformers' buffer is
    // (the one deliberate non-double step, shared with the fast path).
    std::vector<double> inv_freq;
    const std::vector<float> rounded =
        rope_inverse_frequencies(c_.rope_theta, static_cast<int>(rotary_dim), c_.torch_dtype);
    for (std::int64_t i = 0; i < rotary_dim / 2; ++i)
      inv_freq.push_back(options_.exact_rope_frequencies
                             ? 1.0 /
                                   std::pow(c_.rope_theta, static_cast<double>(2 * i) / static_cast<double>(rotary_dim))
                             : rounded[static_cast<std::size_t>(i)]);
    for (std::int64_t t = 0; t < T; ++t) {
      for (std::int64_t h = 0; h < heads; ++h) rope(&q[static_cast<std::size_t>((t * heads + h) * D)], t, inv_freq);
      for (std::int64_t h = 0; h < kv_heads; ++h)
        rope(&k[static_cast<std::size_t>((t * kv_heads + h) * D)], t, inv_freq);
    }
    const std::int64_t window = kind == LayerKind::sliding_attention ? c_.sliding_window.value_or(0) : 0;
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
        for (std::int64_t d = 0; d < D; ++d) {
          double sum = 0;
          for (std::int64_t s = first; s <= t; ++s)
            sum += scores[static_cast<std::size_t>(s - first)] / total *
                   v[static_cast<std::size_t>((s * kv_heads + g) * D + d)];
          if (gated) sum *= sigmoid(q_and_gate[static_cast<std::size_t>((t * heads + h) * 2 * D + D + d)]);
          attended[static_cast<std::size_t>((t * heads + h) * D + d)] = static_cast<float>(sum);
        }
      }
    return matmul(attended, T, projection(source_, n.o_proj, H, heads * D));  // [T, H]
  }

  // Qwen3.5 Gated DeltaNet of one layer as the plain recurrence: x [T, H] -> [T, H].
  Matrix deltanet(const LayerTensorNames& n, const Matrix& x, std::int64_t T) const {
    const LinearAttentionConfig& la = c_.linear_attention;
    const std::int64_t H = c_.hidden_size, Hk = la.num_key_heads, Hv = la.num_value_heads;
    const std::int64_t dk = la.key_head_dim, dv = la.value_head_dim, kernel = la.conv_kernel_size;
    const std::int64_t key_dim = la.key_dim(), conv_dim = la.conv_dim();
    const Matrix mixed = matmul(x, T, projection(source_, n.in_proj_qkv, conv_dim, H));  // [T, conv_dim]
    const Matrix z = matmul(x, T, projection(source_, n.in_proj_z, la.value_dim(), H));  // [T, Hv * dv]
    const Matrix b = matmul(x, T, projection(source_, n.in_proj_b, Hv, H));              // [T, Hv]
    const Matrix a = matmul(x, T, projection(source_, n.in_proj_a, Hv, H));              // [T, Hv]
    const std::vector<float> conv = source_.vector(n.conv1d, conv_dim * kernel);         // [conv_dim, kernel]
    const std::vector<float> A_log = source_.vector(n.A_log, Hv), dt_bias = source_.vector(n.dt_bias, Hv);
    const std::vector<float> gated_norm = source_.vector(n.gated_norm, dv);  // used as stored
    // Causal depthwise conv over time (zeros before the sequence), then SiLU.
    std::vector<double> activated(static_cast<std::size_t>(T * conv_dim));
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t ch = 0; ch < conv_dim; ++ch) {
        double sum = 0;
        for (std::int64_t j = 0; j < kernel; ++j) {
          const std::int64_t source_t = t - (kernel - 1) + j;
          if (source_t >= 0)
            sum += static_cast<double>(conv[static_cast<std::size_t>(ch * kernel + j)]) *
                   mixed[static_cast<std::size_t>(source_t * conv_dim + ch)];
        }
        activated[static_cast<std::size_t>(t * conv_dim + ch)] = silu(sum);
      }
    // The recurrence per value head; head h reads key head h / (Hv / Hk).
    std::vector<double> S(static_cast<std::size_t>(Hv * dk * dv), 0.0);  // [Hv, dk, dv]
    Matrix core(static_cast<std::size_t>(T * Hv * dv));
    auto l2_normalized = [&](std::int64_t t, std::int64_t offset) {
      std::vector<double> u(static_cast<std::size_t>(dk));
      double sum = 0;
      for (std::int64_t i = 0; i < dk; ++i)
        sum += std::pow(u[static_cast<std::size_t>(i)] = activated[static_cast<std::size_t>(t * conv_dim + offset + i)],
                        2);
      for (double& value : u) value /= std::sqrt(sum + 1e-6);
      return u;
    };
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t h = 0; h < Hv; ++h) {
        const std::int64_t kh = h / (Hv / Hk);
        std::vector<double> q = l2_normalized(t, kh * dk), k = l2_normalized(t, key_dim + kh * dk);
        for (double& value : q) value /= std::sqrt(static_cast<double>(dk));
        const double beta = sigmoid(b[static_cast<std::size_t>(t * Hv + h)]);
        const double decay =
            std::exp(-std::exp(static_cast<double>(A_log[static_cast<std::size_t>(h)])) *
                     softplus(a[static_cast<std::size_t>(t * Hv + h)] + dt_bias[static_cast<std::size_t>(h)]));
        double* Sh = S.data() + h * dk * dv;
        for (std::int64_t i = 0; i < dk * dv; ++i) Sh[i] *= decay;
        for (std::int64_t col = 0; col < dv; ++col) {
          double recalled = 0;  // S^T k: what the memory returns for k
          for (std::int64_t i = 0; i < dk; ++i) recalled += Sh[i * dv + col] * k[static_cast<std::size_t>(i)];
          const double v = activated[static_cast<std::size_t>(t * conv_dim + 2 * key_dim + h * dv + col)];
          const double delta = beta * (v - recalled);
          for (std::int64_t i = 0; i < dk; ++i) Sh[i * dv + col] += k[static_cast<std::size_t>(i)] * delta;
        }
        // o = S^T q, then the gated RMSNorm: rmsnorm(o) * weight * silu(z).
        std::vector<double> o(static_cast<std::size_t>(dv), 0.0);
        double sum_squares = 0;
        for (std::int64_t col = 0; col < dv; ++col) {
          for (std::int64_t i = 0; i < dk; ++i)
            o[static_cast<std::size_t>(col)] += Sh[i * dv + col] * q[static_cast<std::size_t>(i)];
          sum_squares += o[static_cast<std::size_t>(col)] * o[static_cast<std::size_t>(col)];
        }
        const double inverse_rms = 1.0 / std::sqrt(sum_squares / static_cast<double>(dv) + c_.rms_norm_eps);
        for (std::int64_t col = 0; col < dv; ++col)
          core[static_cast<std::size_t>((t * Hv + h) * dv + col)] = static_cast<float>(
              o[static_cast<std::size_t>(col)] * inverse_rms * gated_norm[static_cast<std::size_t>(col)] *
              silu(z[static_cast<std::size_t>((t * Hv + h) * dv + col)]));
      }
    return matmul(core, T, projection(source_, n.out_proj, H, la.value_dim()));  // [T, H]
  }

  ReferenceOutput forward(std::span<const TokenId> ids) const {
    const std::int64_t T = static_cast<std::int64_t>(ids.size()), H = c_.hidden_size;
    if (T == 0) throw std::invalid_argument("reference_forward: no tokens");
    ReferenceOutput out;
    out.tokens = T;
    out.vocab = c_.vocab_size;
    out.hidden = H;

    // Embedding lookup: x [T, H].
    const DenseSource table = source_.table(TensorNames::embed_tokens, c_.vocab_size, H);
    const Weights embedding{c_.vocab_size,
                            H,
                            [&] {
                              std::vector<float> values(static_cast<std::size_t>(c_.vocab_size * H));
                              if (table.dtype == DType::f32) {
                                table.copy_to(values.data());
                              } else {
                                std::vector<std::uint16_t> bits(values.size());
                                table.copy_to(bits.data());
                                for (std::size_t i = 0; i < bits.size(); ++i)
                                  values[i] =
                                      table.dtype == DType::bf16 ? bf16_to_float(bits[i]) : f16_to_float(bits[i]);
                              }
                              return values;
                            }(),
                            {}};
    Matrix x(static_cast<std::size_t>(T * H));
    for (std::int64_t t = 0; t < T; ++t) {
      const TokenId id = ids[static_cast<std::size_t>(t)];
      if (id < 0 || id >= c_.vocab_size)
        throw std::invalid_argument(fmt::format("token id {} outside the vocabulary", id));
      for (std::int64_t i = 0; i < H; ++i)
        x[static_cast<std::size_t>(t * H + i)] = embedding.weight[static_cast<std::size_t>(id * H + i)];
    }
    out.hidden_states = x;

    for (std::int64_t l = 0; l < c_.num_hidden_layers; ++l) {
      const LayerKind kind = c_.layer_types[static_cast<std::size_t>(l)];
      const LayerTensorNames n = TensorNames::layer(l);
      Matrix normed = x;  // [T, H]
      rms_norm(normed.data(), T, H, norm(n.input_norm, H), c_.rms_norm_eps);
      const Matrix mixed = kind == LayerKind::linear_attention ? deltanet(n, normed, T) : attention(n, kind, normed, T);
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += mixed[i];

      // MLP: down(silu(gate(x)) * up(x)).
      normed = x;
      rms_norm(normed.data(), T, H, norm(n.post_attention_norm, H), c_.rms_norm_eps);
      Matrix gate = matmul(normed, T, projection(source_, n.gate_proj, c_.intermediate_size, H));  // [T, intermediate]
      const Matrix up = matmul(normed, T, projection(source_, n.up_proj, c_.intermediate_size, H));
      for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = static_cast<float>(silu(gate[i]) * up[i]);
      const Matrix mlp_out = matmul(gate, T, projection(source_, n.down_proj, H, c_.intermediate_size));  // [T, H]
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += mlp_out[i];
      if (l + 1 < c_.num_hidden_layers) out.hidden_states.insert(out.hidden_states.end(), x.begin(), x.end());
    }

    rms_norm(x.data(), T, H, norm(TensorNames::final_norm, H), c_.rms_norm_eps);
    out.hidden_states.insert(out.hidden_states.end(), x.begin(), x.end());
    out.logits = source_.has_linear(TensorNames::lm_head)
                     ? matmul(x, T, projection(source_, TensorNames::lm_head, c_.vocab_size, H))
                     : matmul(x, T, embedding);  // tied: [T, vocab]
    return out;
  }

 private:
  CheckpointWeights source_;
  const ModelConfig& c_;
  ReferenceOptions options_;
};

}  // namespace

ReferenceOutput reference_forward(const Checkpoint& checkpoint, std::span<const TokenId> ids,
                                  const ReferenceOptions& options) {
  return Reference(checkpoint, options).forward(ids);
}

}  // namespace quanteval::runtime
