// libFuzzer target: arbitrary bytes as config.json / quantize_config.json /
// generation_config.json text. Each parser must either succeed or throw
// CheckpointError; any other outcome is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/quant_config.hpp"
#include "runtime/checkpoint/tensor_table.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace quanteval::runtime;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    ModelConfig config = parse_model_config(text, "fuzz-config.json");
    if (static_cast<std::int64_t>(config.layer_types.size()) != config.num_hidden_layers) std::abort();
    // Shapes derived from any accepted config must stay positive (no overflow).
    for (const ExpectedTensor& entry : expected_tensors(config))
      for (const std::int64_t extent : entry.shape)
        if (extent <= 0) std::abort();
    apply_generation_config(config, text, "fuzz-generation_config.json");
  } catch (const CheckpointError&) {
  }
  try {
    (void)quant_config_in_model_config(text, "fuzz-config.json");
  } catch (const CheckpointError&) {
  }
  try {
    (void)parse_quant_config_text(text, "fuzz-quantize_config.json");
  } catch (const CheckpointError&) {
  }
  return 0;
}
