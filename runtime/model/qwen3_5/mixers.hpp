#pragma once
// Qwen3.5 token mixers for the CPU model: the Gated DeltaNet (linear
// attention) and the gated full attention of runtime/qwen3_5_layers.hpp,
// wrapped as TokenMixers so Model runs them like any other layer kind. Their
// projections are the model's fast Linear kernels; the delta rule, conv and
// attention loops are the layer code's own (fp32). Per-sequence state (conv +
// recurrent state, or the attention layer's K/V) lives in the SequenceState.
#include <memory>
#include <optional>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/model/model.hpp"

namespace quanteval::runtime {

// The mixer of decoder layer `layer` of a Qwen3.5 checkpoint: linear_attention
// layers get the Gated DeltaNet, full_attention layers the gated attention.
std::unique_ptr<TokenMixer> build_qwen3_5_mixer(const Checkpoint& checkpoint, int layer,
                                                const std::optional<QuantConfig>& quant);

}  // namespace quanteval::runtime
