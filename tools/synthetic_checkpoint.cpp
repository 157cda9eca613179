// Writes a random-weight checkpoint with the shapes and file layout of a real one,
// for memory and speed measurements and for tests that need a checkpoint shaped
// like the seed model without downloading it (runtime/synthetic.hpp has the shapes):
//
//   synthetic_checkpoint --shape qwen3.5-27b|qwen3.5-0.8b|qwen3.5-tiny --out DIR
//       [--bf16] [--group-size 64] [--act-order] [--multimodal] [--shard-mb N]
//       [--tokenizer DIR] [--chat-template FILE] [--adversarial-padding-from ID] [--seed S]
//
// --multimodal writes the published Qwen3.5 wrapper (model.language_model.*, vision
// tower, MTP head); --shard-mb splits into indexed shards; --tokenizer copies
// tokenizer.json and tokenizer_config.json beside the weights, --chat-template a
// chat_template.jinja. The seed model as its GPTQ checkpoint has it:
//   synthetic_checkpoint --shape qwen3.5-27b --group-size 64 --act-order --multimodal --shard-mb 4000 --out DIR
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include "runtime/checkpoint/synthetic.hpp"

namespace fs = std::filesystem;
using namespace quanteval::runtime;

int main(int argc, char** argv) {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> flags;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--bf16" || arg == "--act-order" || arg == "--multimodal") {
      flags[arg.substr(2)] = true;
    } else if (arg.starts_with("--") && i + 1 < argc) {
      values[arg.substr(2)] = argv[++i];
    } else {
      fmt::print(stderr,
                 "synthetic_checkpoint: unexpected argument '{}' (see the comment at the top of "
                 "tools/synthetic_checkpoint.cpp)\n",
                 arg);
      return 2;
    }
  }
  if (!values.count("shape") || !values.count("out")) {
    fmt::print(stderr, "usage: synthetic_checkpoint --shape NAME --out DIR [options]\n");
    return 2;
  }
  try {
    SyntheticShapeOptions shape;
    shape.quantized = !flags["bf16"];
    shape.act_order = flags["act-order"];
    shape.multimodal = flags["multimodal"];
    if (values.count("group-size")) shape.group_size = std::stoi(values["group-size"]);
    SyntheticCheckpointOptions options;
    options.multimodal = shape.multimodal;
    if (values.count("shard-mb")) options.shard_bytes = std::stoull(values["shard-mb"]) << 20;
    if (values.count("seed")) options.weights.seed = std::stoull(values["seed"]);
    if (values.count("adversarial-padding-from"))
      options.weights.adversarial_padding_from = std::stoll(values["adversarial-padding-from"]);
    const fs::path out = values["out"];
    write_synthetic_checkpoint(synthetic_config_json(values["shape"], shape), out, options);
    if (values.count("tokenizer"))
      for (const char* file : {"tokenizer.json", "tokenizer_config.json"})
        fs::copy_file(fs::path(values["tokenizer"]) / file, out / file, fs::copy_options::overwrite_existing);
    if (values.count("chat-template"))
      fs::copy_file(values["chat-template"], out / "chat_template.jinja", fs::copy_options::overwrite_existing);
    fmt::print("wrote {} ({} shape)\n", out.string(), values["shape"]);
  } catch (const std::exception& e) {
    fmt::print(stderr, "synthetic_checkpoint: {}\n", e.what());
    return 2;
  }
  return 0;
}
