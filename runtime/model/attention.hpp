#pragma once
// The softmax-attention token mixer, one class for every architecture's variant:
// Qwen2 (q/k/v bias), Qwen3 (per-head q/k RMSNorm), Qwen3.5 gated attention
// (q_proj emits per head [query | gate], zero-centred q/k norms, partial RoPE,
// output * sigmoid(gate)), full or sliding window. The projections run through
// the backend's matmul, the rest through its attention op.
#include <memory>

#include "runtime/checkpoint/weight_source.hpp"
#include "runtime/model/model.hpp"

namespace quanteval::runtime {

class AttentionMixer final : public TokenMixer {
 public:
  struct Weights {
    std::unique_ptr<LinearWeight> q_proj;  // [heads * head_dim (x2 gated), hidden]
    std::unique_ptr<LinearWeight> k_proj;  // [kv_heads * head_dim, hidden]
    std::unique_ptr<LinearWeight> v_proj;  // [kv_heads * head_dim, hidden]
    std::unique_ptr<LinearWeight> o_proj;  // [hidden, heads * head_dim]
    std::unique_ptr<VectorWeight> q_norm;  // [head_dim] or null
    std::unique_ptr<VectorWeight> k_norm;  // [head_dim] or null
  };
  AttentionMixer(AttentionSpec spec, Weights weights);

  void forward(Backend& backend, const StepBatch& batch, Tensor normed, Tensor out) const override;
  std::uint64_t weight_bytes() const override;
  const AttentionSpec& spec() const { return spec_; }

 private:
  AttentionSpec spec_;
  Weights weights_;
};

// The attention spec of decoder layer `layer` (of kind full or sliding attention) for `config`.
AttentionSpec attention_spec(const ModelConfig& config, LayerKind kind, int kv_layer);

}  // namespace quanteval::runtime
