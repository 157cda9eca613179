#pragma once
// The checkpoint a run evaluates, opened once: where it is, what it is (for the
// report and the run's identity), and the tokenizer and chat template that
// render its prompts. Opening reads metadata only; the weights are loaded by
// the generation backend, and only when something is left to generate.
#include <filesystem>
#include <optional>
#include <string>

#include "reports/reports.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {

struct EvaluatedModel {
  std::string spec;                      // as given to --model (folder or hub id)
  runtime::hub::ResolvedModel resolved;  // the local folder, and the hub revision/commit
  runtime::Checkpoint checkpoint;        // config, quantization, tensors (validated)
  runtime::CheckpointSummary summary;    // parameters, bits per weight, size on disk
  runtime::Tokenizer tokenizer;
  std::optional<runtime::ChatTemplate> chat;  // loaded when thinking mode runs
  std::string chat_template_sha256;           // of the template source; "" when not loaded

  const runtime::ChatTemplate* chat_template() const { return chat ? &*chat : nullptr; }
};

// Resolves `spec` (a hub id is downloaded once), validates the checkpoint and
// reads its tokenizer, and its chat template when `with_chat_template`. Throws
// std::runtime_error naming the folder when the tokenizer is missing.
EvaluatedModel open_evaluated_model(const std::string& spec, const std::optional<std::string>& revision,
                                    bool with_chat_template);

// Identity of the weights without reading gigabytes: SHA-256 over config.json
// and each safetensors file's name, size and header (names, dtypes, shapes, offsets).
std::string checkpoint_identity(const runtime::Checkpoint& checkpoint);

// The report's description of the model.
reports::RunModelInfo model_info(const EvaluatedModel& model);

}  // namespace quanteval::harness
