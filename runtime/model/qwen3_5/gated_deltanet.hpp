#pragma once
// Qwen3.5's Gated DeltaNet (the `linear_attn` token mixer) over a backend's ops.
// Per token t and value head h (docs/qwen3_5.md derives it):
//   [q|k|v] = silu(causal_depthwise_conv1d(in_proj_qkv(x)))      conv over time, per channel
//   q, k    = l2norm(q), l2norm(k) per key head; q *= 1/sqrt(d_k)
//   beta    = sigmoid(in_proj_b(x)),  g = -exp(A_log) * softplus(in_proj_a(x) + dt_bias)
//   value head h reads key head h / (value heads / key heads)
//   S      *= exp(g);  delta = beta * (v - S^T k);  S += k delta^T;  o = S^T q     (S is [d_k, d_v])
//   out     = out_proj( rmsnorm(o) * norm_weight * silu(in_proj_z(x)) )         (norm per value head)
// The four input projections and out_proj are the backend's matmuls; everything
// between them is its gated_deltanet op, with the per-sequence conv and
// recurrent state in the model's memory slots.
#include <memory>

#include "runtime/model/model.hpp"

namespace quanteval::runtime {

class GatedDeltaNetMixer final : public TokenMixer {
 public:
  struct Weights {
    std::unique_ptr<LinearWeight> in_proj_qkv;  // [conv_dim, hidden]
    std::unique_ptr<LinearWeight> in_proj_z;    // [value_dim, hidden]
    std::unique_ptr<LinearWeight> in_proj_b;    // [value_heads, hidden]
    std::unique_ptr<LinearWeight> in_proj_a;    // [value_heads, hidden]
    std::unique_ptr<LinearWeight> out_proj;     // [hidden, value_dim]
    std::unique_ptr<VectorWeight> conv_weight;  // [conv_dim, conv_kernel]
    std::unique_ptr<VectorWeight> conv_bias;    // [conv_dim] or null (Qwen3.5 has none)
    std::unique_ptr<VectorWeight> A_log;        // [value_heads]
    std::unique_ptr<VectorWeight> dt_bias;      // [value_heads]
    std::unique_ptr<VectorWeight> norm;         // [value_head_dim] plain RMSNorm weight (not zero-centred)
  };
  GatedDeltaNetMixer(DeltaNetSpec spec, Weights weights);

  void forward(Backend& backend, const StepBatch& batch, Tensor normed, Tensor out) const override;
  std::uint64_t weight_bytes() const override;
  const DeltaNetSpec& spec() const { return spec_; }

 private:
  DeltaNetSpec spec_;
  Weights weights_;
};

// The DeltaNet spec for `config` (linear_attention layers), using state layer `state_layer`.
DeltaNetSpec deltanet_spec(const ModelConfig& config, int state_layer);

}  // namespace quanteval::runtime
