#pragma once
// The model architecture described by a Hugging Face config.json, for the
// three families the runtime implements:
//   qwen2         Qwen2 / Qwen2.5 (q/k/v bias)
//   qwen3         Qwen3 (per-head q/k RMSNorm, no bias)
//   qwen3_5_text  Qwen3.5 text model: Gated DeltaNet linear-attention layers
//                 mixed with gated full-attention layers
//   qwen3_5       the multimodal wrapper of the same, its text model in
//                 `text_config`; tensors live under `model.language_model.`
// Both current and older field spellings are read (rope_parameters or
// rope_theta; layer_types or full_attention_interval; head_dim or
// hidden_size / num_attention_heads).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "runtime/checkpoint/safetensors.hpp"  // CheckpointError

namespace quanteval::runtime {

enum class Architecture { qwen2, qwen3, qwen3_5 };

std::string_view architecture_name(Architecture architecture);  // "qwen2", "qwen3", "qwen3_5"

// What a decoder layer's token mixer is.
enum class LayerKind {
  full_attention,     // softmax attention over the whole context
  sliding_attention,  // softmax attention over the last `sliding_window` tokens (Qwen2 option)
  linear_attention,   // Qwen3.5 Gated DeltaNet (recurrent state, causal conv1d)
};

std::string_view layer_kind_name(LayerKind kind);

// Qwen3.5 Gated DeltaNet dimensions (all zero for the other architectures).
struct LinearAttentionConfig {
  std::int64_t conv_kernel_size = 0;  // linear_conv_kernel_dim: taps of the causal depthwise conv1d
  std::int64_t key_head_dim = 0;      // linear_key_head_dim: width of one key (and query) head
  std::int64_t value_head_dim = 0;    // linear_value_head_dim: width of one value head
  std::int64_t num_key_heads = 0;     // linear_num_key_heads: query and key heads
  std::int64_t num_value_heads = 0;   // linear_num_value_heads: value heads (a multiple of the key heads)

  std::int64_t key_dim() const { return key_head_dim * num_key_heads; }        // width of q, and of k
  std::int64_t value_dim() const { return value_head_dim * num_value_heads; }  // width of v, z and the output
  std::int64_t conv_dim() const { return 2 * key_dim() + value_dim(); }  // channels of [q; k; v] that the conv sees
};

struct ModelConfig {
  Architecture architecture = Architecture::qwen3;
  std::string model_type;           // as spelled in config.json (the wrapper's, e.g. "qwen3_5")
  bool multimodal_wrapper = false;  // text model nested in text_config; tensors under model.language_model.
  std::string torch_dtype;          // "bfloat16", "float16", ... (informational; tensors carry their own dtype)

  std::int64_t vocab_size = 0;           // rows of embed_tokens and lm_head
  std::int64_t hidden_size = 0;          // residual stream width
  std::int64_t intermediate_size = 0;    // SwiGLU MLP inner width
  std::int64_t num_hidden_layers = 0;    // decoder layers
  std::int64_t num_attention_heads = 0;  // query heads of full attention
  std::int64_t num_key_value_heads = 0;  // key/value heads of full attention (GQA); divides num_attention_heads
  std::int64_t head_dim = 0;             // width of one full-attention head (explicit, or hidden / heads)
  std::string hidden_act;                // MLP activation; only "silu" is supported

  double rms_norm_eps = 1e-6;          // epsilon of every RMSNorm
  bool zero_centered_norms = false;    // Qwen3.5 stores RMSNorm weights as w-1 (output = x * (1 + w))
  bool qk_norm = false;                // Qwen3/Qwen3.5: RMSNorm over each q and k head (q_norm/k_norm [head_dim])
  bool attention_bias = false;         // q/k/v projections carry a bias (always for Qwen2)
  bool attention_output_bias = false;  // o_proj carries a bias (Qwen3 family when attention_bias is set)
  bool gated_attention = false;        // Qwen3.5: q_proj emits query and a sigmoid output gate (2x rows)

  double rope_theta = 10000.0;                 // RoPE base frequency
  std::string rope_type = "default";           // only "default" is supported
  double partial_rotary_factor = 1.0;          // fraction of head_dim that is rotated (Qwen3.5: 0.25)
  std::int64_t rotary_dim = 0;                 // head_dim * partial_rotary_factor, rounded down to an even number
  std::int64_t max_position_embeddings = 0;    // context length the model was trained for
  std::optional<std::int64_t> sliding_window;  // window of sliding_attention layers, where enabled

  bool tie_word_embeddings = false;        // lm_head reuses embed_tokens (lm_head.weight may be absent)
  std::vector<LayerKind> layer_types;      // one per decoder layer
  LinearAttentionConfig linear_attention;  // Qwen3.5 only

  // Token ids. eos_token_ids merges generation_config.json (first) and
  // config.json, because generation stops on either; config may give an int or a list.
  std::vector<std::int64_t> eos_token_ids;
  std::optional<std::int64_t> bos_token_id;
  std::optional<std::int64_t> pad_token_id;

  std::int64_t num_linear_attention_layers() const;
  std::int64_t num_full_attention_layers() const;  // full and sliding attention
};

// Parses config.json text. `source` names the file in messages; errors name
// the JSON field (e.g. "config.json: field text_config.hidden_size: ...").
// Dimensions are bounded (each <= 2^24, layers <= 4096) so that every shape
// derived from them fits comfortably in 64 bits.
ModelConfig parse_model_config(std::string_view json_text, std::string_view source);

// Folds generation_config.json (eos_token_id int or list, bos, pad) into `config`.
void apply_generation_config(ModelConfig& config, std::string_view json_text, std::string_view source);

// config.json, plus generation_config.json when present, from a model directory.
ModelConfig load_model_config(const std::filesystem::path& model_dir);

// --- JSON helpers shared by the checkpoint parsers --------------------------------------------
// Parses untrusted JSON: syntax errors, nesting deeper than 64 and duplicate
// object keys (which nlohmann would silently resolve to the last) throw
// CheckpointError naming `source` and `what`.
nlohmann::json parse_untrusted_json(std::string_view text, std::string_view source, std::string_view what);

// Reads a whole (small) text file; throws CheckpointError naming it.
std::string read_text_file(const std::filesystem::path& path, std::uint64_t max_bytes = 64ull << 20);

}  // namespace quanteval::runtime
