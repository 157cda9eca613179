// quanteval logits: the logits of every prompt position, as a safetensors file.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>

#include "harness/cli/command_model_common.hpp"
#include "harness/cli/commands.hpp"
#include "harness/common/files.hpp"

namespace quanteval::harness {

namespace {

// Minimal safetensors writer for one F32 tensor: u64 little-endian header
// length, the JSON header padded with spaces to a multiple of 8 (so the data
// starts aligned, as the reference writer does), then the raw floats.
std::string safetensors_f32(const std::string& name, const std::vector<std::int64_t>& shape,
                            const std::vector<float>& data) {
  nlohmann::ordered_json header;
  header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {0, data.size() * sizeof(float)}}};
  std::string json = header.dump();
  while (json.size() % 8 != 0) json.push_back(' ');
  std::string file(8, '\0');
  const std::uint64_t length = json.size();
  for (int i = 0; i < 8; ++i) file[static_cast<std::size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
  file += json;
  const std::size_t at = file.size();
  file.resize(at + data.size() * sizeof(float));
  std::memcpy(file.data() + at, data.data(), data.size() * sizeof(float));  // x86/ARM little-endian floats
  return file;
}

}  // namespace

int command_logits(int argc, char** argv, int first) {
  Args args("quanteval logits --model DIR --ids 1,2,3 --out FILE.safetensors",
            "Runs the prompt through the model once and writes the float32 logits of every position\n"
            "as tensor `logits` [T, vocab] in a safetensors file.");
  add_model_options(args);
  args.option("ids", "LIST", "prompt token ids, comma separated").option("out", "FILE", "output .safetensors file");
  if (!args.parse(argc, argv, first)) return 0;
  const std::vector<runtime::TokenId> ids = parse_token_ids(args.get("ids"));
  const std::string out = args.get("out");
  auto model = load_model_from_args(args);
  const std::vector<float> logits = model->logits_for(ids);
  write_file_atomically(
      out, safetensors_f32("logits", {static_cast<std::int64_t>(ids.size()), model->config().vocab_size}, logits));
  fmt::print(stderr, "wrote {} ({} positions x {} logits)\n", out, ids.size(), model->config().vocab_size);
  return 0;
}

}  // namespace quanteval::harness
