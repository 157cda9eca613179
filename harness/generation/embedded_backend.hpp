#pragma once
// The embedded runtime as a generation backend: one runtime::Model, all
// requests queued into the runtime's continuous batching (runtime::Generator).
#include <filesystem>
#include <memory>

#include "harness/generation/backend.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {

class EmbeddedBackend final : public GenerationBackend {
 public:
  struct Options {
    runtime::LoadOptions load;  // device, threads, KV cache budget
    int max_batch = 16;         // sequences decoded together
  };

  // Loads the model in `model_dir`. `tokenizer` (the model's) must outlive the backend.
  EmbeddedBackend(const std::filesystem::path& model_dir, const runtime::Tokenizer& tokenizer, Options options);

  BackendInfo info() const override;
  GenerationProgress complete(std::vector<CompletionRequest> requests, const OnCompletion& on_completion,
                              const OnProgress& on_progress) override;

 private:
  std::unique_ptr<runtime::Model> model_;
  const runtime::Tokenizer& tokenizer_;
  Options options_;
};

}  // namespace quanteval::harness
