// Writes a random-weight checkpoint with the shapes and file layout of a real one,
// for memory and speed measurements and for tests that need a checkpoint shaped
// like the seed model without downloading it (runtime/synthetic.hpp has the shapes):
//
//   synthetic_checkpoint --shape qwen3.5-27b|qwen3.5-0.8b|qwen3.5-tiny --out DIR
//       [--bf16] [--group-size 64] [--act-order] [--multimodal] [--shard-mb N]
//       [--tokenizer DIR] [--chat-template FILE] [--adversarial-padding-from ID] [--seed S]
//   (--help lists them; an unknown or malformed option is exit 2)
//
// --multimodal writes the published Qwen3.5 wrapper (model.language_model.*, vision
// tower, MTP head); --shard-mb splits into indexed shards; --tokenizer copies
// tokenizer.json and tokenizer_config.json beside the weights, --chat-template a
// chat_template.jinja. The seed model as its GPTQ checkpoint has it:
//   synthetic_checkpoint --shape qwen3.5-27b --group-size 64 --act-order --multimodal --shard-mb 4000 --out DIR
#include <fmt/format.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "runtime/checkpoint/synthetic.hpp"
#include "tools/options.hpp"

namespace fs = std::filesystem;
using namespace quanteval::runtime;

namespace {

constexpr const char* kUsage = R"(usage: synthetic_checkpoint --shape NAME --out DIR [options]
  --shape NAME                     qwen3.5-27b, qwen3.5-0.8b, qwen3.5-tiny or qwen2.5-0.5b
  --out DIR                        where to write it
  --bf16                           16-bit weights instead of GPTQ INT4
  --group-size N                   GPTQ group size (default 128)
  --act-order                      act-order (g_idx) layers
  --multimodal                     the published Qwen3.5 wrapper (vision tower, MTP head)
  --shard-mb N                     indexed shards of about N MB
  --seed S                         the random weights' seed
  --adversarial-padding-from ID    output rows from ID on are padding that wins every argmax
                                   unless masked (untied lm_head only)
  --tokenizer DIR                  copy tokenizer.json and tokenizer_config.json beside the weights
  --chat-template FILE             copy it as chat_template.jinja
)";

}  // namespace

int main(int argc, char** argv) {
  using quanteval::tools::ToolOptions;
  try {
    const ToolOptions options(
        argc, argv,
        {"shape", "out", "group-size", "shard-mb", "seed", "adversarial-padding-from", "tokenizer", "chat-template"},
        {"bf16", "act-order", "multimodal"});
    if (options.help()) {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (!options.has("shape") || !options.has("out")) throw ToolOptions::Error("--shape and --out are required");
    SyntheticShapeOptions shape;
    shape.quantized = !options.flag("bf16");
    shape.act_order = options.flag("act-order");
    shape.multimodal = options.flag("multimodal");
    shape.group_size = static_cast<int>(options.integer("group-size", shape.group_size));
    SyntheticCheckpointOptions checkpoint;
    checkpoint.multimodal = shape.multimodal;
    if (options.has("shard-mb"))
      checkpoint.shard_bytes = static_cast<std::uint64_t>(options.integer("shard-mb", 0)) << 20;
    checkpoint.weights.seed =
        static_cast<std::uint64_t>(options.integer("seed", static_cast<long long>(checkpoint.weights.seed)));
    checkpoint.weights.adversarial_padding_from =
        options.integer("adversarial-padding-from", checkpoint.weights.adversarial_padding_from);
    const fs::path out = options.text("out", "");
    write_synthetic_checkpoint(synthetic_config_json(options.text("shape", ""), shape), out, checkpoint);
    if (options.has("tokenizer"))
      for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
        fs::copy_file(fs::path(options.text("tokenizer", "")) / file, out / file, fs::copy_options::overwrite_existing);
    if (options.has("chat-template"))
      fs::copy_file(options.text("chat-template", ""), out / "chat_template.jinja",
                    fs::copy_options::overwrite_existing);
    fmt::print("wrote {} ({} shape)\n", out.string(), options.text("shape", ""));
  } catch (const ToolOptions::Error& e) {
    fmt::print(stderr, "synthetic_checkpoint: {}\n{}", e.what(), kUsage);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "synthetic_checkpoint: {}\n", e.what());
    return 2;
  }
  return 0;
}
