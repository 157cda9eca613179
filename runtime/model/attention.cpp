#include "runtime/model/attention.hpp"

#include "runtime/base/check.hpp"

namespace quanteval::runtime {

AttentionMixer::AttentionMixer(AttentionSpec spec, Weights weights)
    : spec_(std::move(spec)), weights_(std::move(weights)) {
  QE_CHECK(weights_.q_proj && weights_.k_proj && weights_.v_proj && weights_.o_proj, "attention projections missing");
  QE_CHECK(spec_.heads > 0 && spec_.kv_heads > 0 && spec_.heads % spec_.kv_heads == 0, "attention head counts");
  QE_CHECK(weights_.q_proj->out_features() ==
               static_cast<std::int64_t>(spec_.heads) * spec_.head_dim * (spec_.gated ? 2 : 1),
           "q_proj rows do not match the head layout");
}

void AttentionMixer::forward(Backend& backend, const StepBatch& batch, Tensor normed, Tensor out) const {
  const std::int64_t m = batch.rows();
  Tensor q = backend.scratch(m, weights_.q_proj->out_features());
  Tensor k = backend.scratch(m, weights_.k_proj->out_features());
  Tensor v = backend.scratch(m, weights_.v_proj->out_features());
  const LinearWeight* projections[] = {weights_.q_proj.get(), weights_.k_proj.get(), weights_.v_proj.get()};
  const Tensor outputs[] = {q, k, v};
  backend.matmul_shared_input(projections, normed, outputs);
  Tensor attended = backend.scratch(m, static_cast<std::int64_t>(spec_.heads) * spec_.head_dim);
  backend.attention(spec_, {weights_.q_norm.get(), weights_.k_norm.get()}, batch, q, k, v, attended);
  backend.matmul(*weights_.o_proj, attended, out);
}

std::uint64_t AttentionMixer::weight_bytes() const {
  return weights_.q_proj->weight_bytes() + weights_.k_proj->weight_bytes() + weights_.v_proj->weight_bytes() +
         weights_.o_proj->weight_bytes();
}

AttentionSpec attention_spec(const ModelConfig& config, LayerKind kind, int kv_layer) {
  AttentionSpec spec;
  spec.heads = static_cast<int>(config.num_attention_heads);
  spec.kv_heads = static_cast<int>(config.num_key_value_heads);
  spec.head_dim = static_cast<int>(config.head_dim);
  spec.rotary_dim = config.rotary_dim > 0 ? static_cast<int>(config.rotary_dim) : spec.head_dim;
  spec.gated = config.gated_attention;
  spec.norm_eps = static_cast<float>(config.rms_norm_eps);
  spec.kv_layer = kv_layer;
  if (kind == LayerKind::sliding_attention) {
    if (!config.sliding_window) throw CheckpointError("sliding_attention layer without a sliding_window");
    spec.window = *config.sliding_window;
  }
  spec.inv_freq = rope_inverse_frequencies(config.rope_theta, spec.rotary_dim, config.torch_dtype);
  return spec;
}

}  // namespace quanteval::runtime
