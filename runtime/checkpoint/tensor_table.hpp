#pragma once
// The tensors each architecture expects, with shapes derived from its config.
// The whole table lives in tensor_table.cpp (one place to read when a new
// architecture or a renamed tensor turns up); names are the normalized ones
// (`model.layers.N...`, `model.embed_tokens.weight`, `model.norm.weight`,
// `lm_head.weight`), whatever prefix the file used.
//
// A projection ("linear" entry, y = x W^T + b) is stored either dense,
//   <prefix>.weight  [N out, K in]  BF16/F16/F32
// or GPTQ-quantized, recognised by the presence of <prefix>.qweight:
//   <prefix>.qweight I32 [K/8, N]        8 4-bit weights per word along K
//   <prefix>.qzeros  I32 [groups, N/8]   8 4-bit zeros per word along N
//   <prefix>.scales  F16/BF16 [groups, N]
//   <prefix>.g_idx   I32 [K]             group of each input; required with desc_act
// with groups = K / group_size (1 for group_size -1), and in both cases an
// optional-by-architecture <prefix>.bias [N].
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/quant_config.hpp"
#include "runtime/checkpoint/safetensors.hpp"

namespace quanteval::runtime {

// The one place the normalized tensor names are spelled. Linear modules are
// named by their prefix (the tensors are <prefix>.weight or <prefix>.qweight ...).
struct LayerTensorNames {
  std::string input_norm, post_attention_norm;  // [hidden]
  std::string gate_proj, up_proj, down_proj;    // SwiGLU MLP (linear prefixes)
  // Softmax attention (self_attn.*)
  std::string q_proj, k_proj, v_proj, o_proj;  // linear prefixes
  std::string q_norm, k_norm;                  // [head_dim]
  // Qwen3.5 Gated DeltaNet (linear_attn.*)
  std::string in_proj_qkv, in_proj_z, in_proj_b, in_proj_a, out_proj;  // linear prefixes
  std::string conv1d, A_log, dt_bias, gated_norm;                      // plain tensors
};
struct TensorNames {
  static constexpr const char* embed_tokens = "model.embed_tokens.weight";  // [vocab, hidden]
  static constexpr const char* embed_tokens_linear = "model.embed_tokens";  // the same table as a linear (tied head)
  static constexpr const char* final_norm = "model.norm.weight";            // [hidden]
  static constexpr const char* lm_head = "lm_head";                         // linear prefix
  static LayerTensorNames layer(std::int64_t index);
};

enum class TensorKind {
  plain,   // one float tensor with exactly `shape` (norms, embeddings, conv taps, A_log, ...)
  linear,  // a projection module: dense `.weight` or GPTQ tensors, see above
};

struct ExpectedTensor {
  std::string name;  // plain: the tensor name; linear: the module prefix (no ".weight")
  TensorKind kind = TensorKind::plain;
  std::vector<std::int64_t> shape;  // plain: the exact shape; linear: {N out_features, K in_features}
  bool required = true;             // false: may be absent (lm_head when embeddings are tied)
  bool has_bias = false;            // linear only: a `.bias` [N] must be present
};

// Every tensor the runtime reads for `config`, in a stable order (globals, then layer by layer).
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config);

// Tensors by normalized name (as Checkpoint indexes them).
using TensorMap = std::map<std::string, TensorView, std::less<>>;

struct ValidationReport {
  std::vector<std::string> errors;              // each names the tensor, expected and actual dtype/shape
  std::vector<std::string> unexpected_tensors;  // present but not in the table (not an error; listed by inspect)
  bool ok() const { return errors.empty(); }
};

// Checks `tensors` against the table for `config`. Every problem is collected;
// nothing throws for a bad tensor.
ValidationReport check_tensors(const ModelConfig& config, const std::optional<QuantConfig>& quant,
                               const TensorMap& tensors);

}  // namespace quanteval::runtime
