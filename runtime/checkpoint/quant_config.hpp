#pragma once
// GPTQ quantization settings of a checkpoint.
//
// Read from config.json's `quantization_config`, `quantize_config.json`
// (AutoGPTQ / GPTQModel) or `quant_config.json`; when several exist they must
// agree. Field spellings accepted: `quant_method` or `method`;
// `checkpoint_format` or `format` ("gptq" = v1, "gptq_v2" = v2).
//
// Supported, because the runtime's Marlin-style kernels and its reference
// dequantizer implement exactly this:
//   bits 4, packed in int32; group_size 32, 64, 128 or -1 (one group over all
//   input features); desc_act (act-order, g_idx) on or off; symmetric v1 or
//   v2, asymmetric only in v2.
// Refused with a CheckpointError naming the file and field: other bit widths,
// other methods (awq, bitsandbytes, fp8, ...), other packings (marlin,
// bitblas, ...), per-module `dynamic` overrides, and asymmetric v1: v1 stores
// zero - 1 in 4 bits, so a real zero of 0 would be stored as -1 (0xF) and be
// read back as 16; such files are ambiguous, and GPTQ tools write v2 for
// asymmetric quantization for that reason.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace quanteval::runtime {

enum class GptqFormat {
  v1,  // AutoGPTQ layout: qzeros store (real zero - 1)
  v2,  // GPTQModel v2: qzeros store the real zero
};

std::string_view gptq_format_name(GptqFormat format);  // "gptq" or "gptq_v2"

struct QuantConfig {
  std::string method = "gptq";    // quant_method; only "gptq"
  int bits = 4;                   // bits per weight; only 4 (8 values per int32 word)
  std::int64_t group_size = 128;  // input features sharing one scale and zero; -1 = a single group
  bool sym = true;                // symmetric: every real zero is 2^(bits-1)
  bool desc_act = false;          // act-order: g_idx maps each input feature to its group, not monotonic
  GptqFormat format = GptqFormat::v1;
  bool lm_head_quantized = false;  // GPTQModel `lm_head`: lm_head is a quantized module too
  std::string source;              // the file (and field) the settings were read from

  // Number of scale/zero groups for a layer with `in_features` inputs.
  std::int64_t groups(std::int64_t in_features) const { return group_size < 0 ? 1 : in_features / group_size; }
  // Inputs per group for a layer with `in_features` inputs.
  std::int64_t effective_group_size(std::int64_t in_features) const {
    return group_size < 0 ? in_features : group_size;
  }
  // What to add to a stored zero to get the real zero: 1 for v1, 0 for v2.
  int stored_zero_offset() const { return format == GptqFormat::v1 ? 1 : 0; }
  std::string describe() const;  // e.g. "GPTQ 4-bit, group 64, sym, desc_act, format gptq (v1)"

  bool operator==(const QuantConfig& other) const;  // compares the settings, not `source`
};

// Parses one quantization object. `source` names the file (and e.g.
// "quantization_config") in messages.
QuantConfig parse_quant_config(const nlohmann::json& object, std::string_view source);

// Parses the text of a quantize_config.json / quant_config.json.
QuantConfig parse_quant_config_text(std::string_view json_text, std::string_view source);

// The quantization_config of a config.json text, or nullopt when it has none.
std::optional<QuantConfig> quant_config_in_model_config(std::string_view config_json_text, std::string_view source);

// The quantization settings of a model directory, or nullopt for an
// unquantized checkpoint. Several sources that disagree are an error.
std::optional<QuantConfig> load_quant_config(const std::filesystem::path& model_dir);

}  // namespace quanteval::runtime
