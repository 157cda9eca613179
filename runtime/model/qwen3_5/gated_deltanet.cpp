#include "runtime/model/qwen3_5/gated_deltanet.hpp"

#include "runtime/base/check.hpp"

namespace quanteval::runtime {

GatedDeltaNetMixer::GatedDeltaNetMixer(DeltaNetSpec spec, Weights weights) : spec_(spec), weights_(std::move(weights)) {
  QE_CHECK(weights_.in_proj_qkv && weights_.in_proj_z && weights_.in_proj_b && weights_.in_proj_a &&
               weights_.out_proj && weights_.conv_weight && weights_.A_log && weights_.dt_bias && weights_.norm,
           "Gated DeltaNet weights missing");
  QE_CHECK(spec_.key_heads > 0 && spec_.value_heads % spec_.key_heads == 0, "DeltaNet head counts");
}

void GatedDeltaNetMixer::forward(Backend& backend, const StepBatch& batch, Tensor normed, Tensor out) const {
  const std::int64_t m = batch.rows();
  // Projections for all sequences at once, all four as one pass where the backend can.
  Tensor qkv = backend.scratch(m, spec_.conv_dim());
  Tensor z = backend.scratch(m, spec_.value_dim());
  Tensor b = backend.scratch(m, spec_.value_heads);
  Tensor a = backend.scratch(m, spec_.value_heads);
  const LinearWeight* projections[] = {weights_.in_proj_qkv.get(), weights_.in_proj_z.get(), weights_.in_proj_b.get(),
                                       weights_.in_proj_a.get()};
  const Tensor outputs[] = {qkv, z, b, a};
  backend.matmul_shared_input(projections, normed, outputs);
  Tensor core = backend.scratch(m, spec_.value_dim());
  const DeltaNetWeights small{weights_.conv_weight.get(), weights_.conv_bias.get(), weights_.A_log.get(),
                              weights_.dt_bias.get(), weights_.norm.get()};
  backend.gated_deltanet(spec_, small, batch, qkv, z, b, a, core);
  backend.matmul(*weights_.out_proj, core, out);
}

std::uint64_t GatedDeltaNetMixer::weight_bytes() const {
  return weights_.in_proj_qkv->weight_bytes() + weights_.in_proj_z->weight_bytes() +
         weights_.in_proj_b->weight_bytes() + weights_.in_proj_a->weight_bytes() + weights_.out_proj->weight_bytes();
}

DeltaNetSpec deltanet_spec(const ModelConfig& config, int state_layer) {
  const LinearAttentionConfig& la = config.linear_attention;
  DeltaNetSpec spec;
  spec.key_heads = static_cast<int>(la.num_key_heads);
  spec.value_heads = static_cast<int>(la.num_value_heads);
  spec.key_head_dim = static_cast<int>(la.key_head_dim);
  spec.value_head_dim = static_cast<int>(la.value_head_dim);
  spec.conv_kernel = static_cast<int>(la.conv_kernel_size);
  spec.norm_eps = static_cast<float>(config.rms_norm_eps);
  spec.state_layer = state_layer;
  return spec;
}

}  // namespace quanteval::runtime
