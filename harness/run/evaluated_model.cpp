#include "harness/run/evaluated_model.hpp"

#include <fmt/format.h>

#include <fstream>
#include <stdexcept>

#include "datasets/datasets.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;

EvaluatedModel open_evaluated_model(const std::string& spec, const std::optional<std::string>& revision,
                                    bool with_chat_template) {
  runtime::hub::Options hub_options;
  if (revision) hub_options.revision = *revision;
  runtime::hub::ResolvedModel resolved = runtime::hub::resolve(spec, hub_options);
  runtime::Checkpoint checkpoint = runtime::Checkpoint::open(resolved.directory);
  checkpoint.validate();
  runtime::CheckpointSummary summary = checkpoint.summary();
  if (!fs::exists(resolved.directory / "tokenizer.json"))
    throw std::runtime_error(
        fmt::format("{}: no tokenizer.json; `run` needs the model's tokenizer (and, for thinking "
                    "mode, its chat template) beside the weights",
                    resolved.directory.string()));
  runtime::Tokenizer tokenizer = runtime::Tokenizer::from_file(resolved.directory);
  std::optional<runtime::ChatTemplate> chat;
  std::string template_hash;
  if (with_chat_template) {
    template_hash = datasets::sha256_hex(runtime::load_chat_template_source(resolved.directory).source);
    chat.emplace(runtime::ChatTemplate::from_model_dir(resolved.directory));
  }
  return EvaluatedModel{spec,
                        std::move(resolved),
                        std::move(checkpoint),
                        summary,
                        std::move(tokenizer),
                        std::move(chat),
                        std::move(template_hash)};
}

std::string checkpoint_identity(const runtime::Checkpoint& checkpoint) {
  std::string text = runtime::read_text_file(checkpoint.files().config_json);
  for (const auto& file : checkpoint.files().safetensors) {
    std::ifstream in(file, std::ios::binary);
    std::uint64_t header_length = 0;
    in.read(reinterpret_cast<char*>(&header_length), 8);
    std::string header(std::min<std::uint64_t>(header_length, 100ull << 20), '\0');
    in.read(header.data(), static_cast<std::streamsize>(header.size()));
    text += file.filename().string() + std::to_string(fs::file_size(file)) + header;
  }
  return datasets::sha256_hex(text);
}

reports::RunModelInfo model_info(const EvaluatedModel& model) {
  const runtime::Checkpoint& checkpoint = model.checkpoint;
  reports::RunModelInfo info;
  info.id = model.spec;
  info.path = model.resolved.directory.string();
  info.revision = model.resolved.revision;
  info.commit = model.resolved.commit;
  info.architecture = std::string(runtime::architecture_name(checkpoint.config().architecture));
  info.quantization = checkpoint.quant_config()                 ? checkpoint.quant_config()->describe()
                      : checkpoint.config().torch_dtype.empty() ? std::string("dense")
                                                                : checkpoint.config().torch_dtype;
  info.bits_per_weight = model.summary.bits_per_weight;
  info.parameters = model.summary.parameter_count;
  info.size_bytes = model.summary.size_on_disk;
  return info;
}

}  // namespace quanteval::harness
