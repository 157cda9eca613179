#include "runtime/checkpoint/tensor_table.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

namespace quanteval::runtime {

namespace {

using Shape = std::vector<std::int64_t>;

ExpectedTensor plain(std::string name, Shape shape) {
  return {std::move(name), TensorKind::plain, std::move(shape), true, false};
}

ExpectedTensor linear(std::string prefix, std::int64_t out_features, std::int64_t in_features, bool bias = false) {
  return {std::move(prefix), TensorKind::linear, {out_features, in_features}, true, bias};
}

std::string shape_text(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

bool is_weight_dtype(DType dtype) { return dtype == DType::bf16 || dtype == DType::f16 || dtype == DType::f32; }

// Records every problem with one module; `claimed` collects the names it accounts for.
class Checker {
 public:
  Checker(const std::optional<QuantConfig>& quant, const TensorMap& tensors, ValidationReport& report,
          std::set<std::string>& claimed)
      : quant_(quant), tensors_(tensors), report_(report), claimed_(claimed) {}

  const TensorView* find(const std::string& name) const {
    const auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
  }

  // A tensor with an exact shape and an allowed dtype; `what` says what it is for messages.
  void expect(const std::string& name, const Shape& shape, bool (*dtype_ok)(DType), std::string_view dtypes,
              bool required) {
    const TensorView* tensor = find(name);
    if (!tensor) {
      if (required)
        report_.errors.push_back(fmt::format("missing tensor {} (expected {} {})", name, dtypes, shape_text(shape)));
      return;
    }
    claimed_.insert(name);
    if (!dtype_ok(tensor->dtype))
      report_.errors.push_back(fmt::format("tensor {} has dtype {}, expected {} (in {})", name,
                                           dtype_name(tensor->dtype), dtypes, tensor->file.string()));
    if (tensor->shape != shape)
      report_.errors.push_back(fmt::format("tensor {} has shape {}, expected {} (in {})", name,
                                           shape_text(tensor->shape), shape_text(shape), tensor->file.string()));
  }

  void check(const ExpectedTensor& entry) {
    if (entry.kind == TensorKind::plain) {
      expect(entry.name, entry.shape, is_weight_dtype, "BF16/F16/F32", entry.required);
      return;
    }
    const std::int64_t out_features = entry.shape[0];
    const std::int64_t in_features = entry.shape[1];
    const std::string qweight = entry.name + ".qweight";
    if (find(qweight)) {
      check_quantized(entry, out_features, in_features);
    } else if (entry.required || find(entry.name + ".weight")) {
      expect(entry.name + ".weight", {out_features, in_features}, is_weight_dtype, "BF16/F16/F32", true);
    }
    if (entry.has_bias) expect(entry.name + ".bias", {out_features}, is_weight_dtype, "BF16/F16/F32", true);
  }

 private:
  void check_quantized(const ExpectedTensor& entry, std::int64_t out_features, std::int64_t in_features) {
    const std::string& prefix = entry.name;
    if (!quant_) {
      report_.errors.push_back(
          fmt::format("{}.qweight is a GPTQ tensor, but the checkpoint has no quantization "
                      "config (config.json quantization_config or quantize_config.json)",
                      prefix));
      claim_quantized(prefix);
      return;
    }
    if (find(prefix + ".weight"))
      report_.errors.push_back(
          fmt::format("{} has both .weight and .qweight; a module is either dense or quantized", prefix));
    // The packing puts 8 weights per int32 along K (qweight) and 8 zeros along N (qzeros).
    if (in_features % 8 != 0 || out_features % 8 != 0) {
      report_.errors.push_back(
          fmt::format("{} is quantized but its shape [{}, {}] is not a multiple of 8 in both "
                      "dimensions, as GPTQ packing needs",
                      prefix, out_features, in_features));
      claim_quantized(prefix);
      return;
    }
    const std::int64_t group_size = quant_->effective_group_size(in_features);
    if (in_features % group_size != 0) {
      report_.errors.push_back(
          fmt::format("{}: in_features {} is not a multiple of group_size {}", prefix, in_features, group_size));
      claim_quantized(prefix);
      return;
    }
    const std::int64_t groups = in_features / group_size;
    auto is_i32 = [](DType d) { return d == DType::i32; };
    auto is_half = [](DType d) { return d == DType::f16 || d == DType::bf16; };
    expect(prefix + ".qweight", {in_features / 8, out_features}, is_i32, "I32", true);
    expect(prefix + ".qzeros", {groups, out_features / 8}, is_i32, "I32", true);
    expect(prefix + ".scales", {groups, out_features}, is_half, "F16/BF16", true);
    expect(prefix + ".g_idx", {in_features}, is_i32, "I32", quant_->desc_act);
  }

  void claim_quantized(const std::string& prefix) {
    for (const char* suffix : {".qweight", ".qzeros", ".scales", ".g_idx"}) claimed_.insert(prefix + suffix);
  }

  const std::optional<QuantConfig>& quant_;
  const TensorMap& tensors_;
  ValidationReport& report_;
  std::set<std::string>& claimed_;
};

}  // namespace

LayerTensorNames TensorNames::layer(std::int64_t index) {
  const std::string p = fmt::format("model.layers.{}.", index);
  LayerTensorNames n;
  n.input_norm = p + "input_layernorm.weight";
  n.post_attention_norm = p + "post_attention_layernorm.weight";
  n.gate_proj = p + "mlp.gate_proj";
  n.up_proj = p + "mlp.up_proj";
  n.down_proj = p + "mlp.down_proj";
  n.q_proj = p + "self_attn.q_proj";
  n.k_proj = p + "self_attn.k_proj";
  n.v_proj = p + "self_attn.v_proj";
  n.o_proj = p + "self_attn.o_proj";
  n.q_norm = p + "self_attn.q_norm.weight";
  n.k_norm = p + "self_attn.k_norm.weight";
  n.in_proj_qkv = p + "linear_attn.in_proj_qkv";
  n.in_proj_z = p + "linear_attn.in_proj_z";
  n.in_proj_b = p + "linear_attn.in_proj_b";
  n.in_proj_a = p + "linear_attn.in_proj_a";
  n.out_proj = p + "linear_attn.out_proj";
  n.conv1d = p + "linear_attn.conv1d.weight";
  n.A_log = p + "linear_attn.A_log";
  n.dt_bias = p + "linear_attn.dt_bias";
  n.gated_norm = p + "linear_attn.norm.weight";
  return n;
}

// ---------------------------------------------------------------------------------------------
// THE TABLE. Shapes are [rows, columns] of the PyTorch parameter; for a
// projection that is [out_features, in_features].
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& c) {
  const std::int64_t hidden = c.hidden_size;
  const std::int64_t q_width = c.num_attention_heads * c.head_dim;
  const std::int64_t kv_width = c.num_key_value_heads * c.head_dim;
  const LinearAttentionConfig& la = c.linear_attention;

  std::vector<ExpectedTensor> table;
  table.push_back(plain(TensorNames::embed_tokens, {c.vocab_size, hidden}));
  table.push_back(plain(TensorNames::final_norm, {hidden}));
  ExpectedTensor lm_head = linear(TensorNames::lm_head, c.vocab_size, hidden);
  lm_head.required = !c.tie_word_embeddings;  // tied: the model reuses embed_tokens
  table.push_back(lm_head);

  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const LayerTensorNames n = TensorNames::layer(i);
    table.push_back(plain(n.input_norm, {hidden}));
    table.push_back(plain(n.post_attention_norm, {hidden}));
    // SwiGLU MLP: down(silu(gate(x)) * up(x)).
    table.push_back(linear(n.gate_proj, c.intermediate_size, hidden));
    table.push_back(linear(n.up_proj, c.intermediate_size, hidden));
    table.push_back(linear(n.down_proj, hidden, c.intermediate_size));

    if (c.layer_types[static_cast<std::size_t>(i)] == LayerKind::linear_attention) {
      // Qwen3.5 Gated DeltaNet: in_proj_qkv emits [q; k; v] (the conv channels),
      // z gates the output norm, b and a give the per-value-head beta and decay.
      table.push_back(linear(n.in_proj_qkv, la.conv_dim(), hidden));
      table.push_back(linear(n.in_proj_z, la.value_dim(), hidden));
      table.push_back(linear(n.in_proj_b, la.num_value_heads, hidden));
      table.push_back(linear(n.in_proj_a, la.num_value_heads, hidden));
      table.push_back(plain(n.conv1d, {la.conv_dim(), 1, la.conv_kernel_size}));  // depthwise
      table.push_back(plain(n.A_log, {la.num_value_heads}));
      table.push_back(plain(n.dt_bias, {la.num_value_heads}));
      table.push_back(plain(n.gated_norm, {la.value_head_dim}));  // gated RMSNorm, shared by heads
      table.push_back(linear(n.out_proj, hidden, la.value_dim()));
    } else {
      // Softmax attention (GQA). Qwen3.5 q_proj also emits a per-channel output gate: 2x rows.
      table.push_back(linear(n.q_proj, q_width * (c.gated_attention ? 2 : 1), hidden, c.attention_bias));
      table.push_back(linear(n.k_proj, kv_width, hidden, c.attention_bias));
      table.push_back(linear(n.v_proj, kv_width, hidden, c.attention_bias));
      table.push_back(linear(n.o_proj, hidden, q_width, c.attention_output_bias));
      if (c.qk_norm) {
        table.push_back(plain(n.q_norm, {c.head_dim}));
        table.push_back(plain(n.k_norm, {c.head_dim}));
      }
    }
  }
  return table;
}
// ---------------------------------------------------------------------------------------------

ValidationReport check_tensors(const ModelConfig& config, const std::optional<QuantConfig>& quant,
                               const TensorMap& tensors) {
  ValidationReport report;
  std::set<std::string> claimed;
  Checker checker(quant, tensors, report, claimed);
  for (const ExpectedTensor& entry : expected_tensors(config)) checker.check(entry);
  for (const auto& [name, tensor] : tensors)
    if (!claimed.contains(name)) report.unexpected_tensors.push_back(name);
  return report;
}

}  // namespace quanteval::runtime
