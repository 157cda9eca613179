#include "harness/generation/embedded_backend.hpp"

#include <fmt/format.h>

namespace quanteval::harness {

namespace {

GenerationProgress progress_of(const runtime::GeneratorStats& stats) {
  return {stats.finished, stats.active, stats.waiting, stats.prefill_tok_s, stats.decode_tok_s};
}

}  // namespace

EmbeddedBackend::EmbeddedBackend(const std::filesystem::path& model_dir, const runtime::Tokenizer& tokenizer,
                                 Options options)
    : model_(runtime::Model::load(model_dir, options.load)), tokenizer_(tokenizer), options_(std::move(options)) {}

BackendInfo EmbeddedBackend::info() const {
  const std::string device = model_->backend().name();
  return {"embedded", device, "", {{"kind", "embedded"}, {"device", device}}, model_->backend().batch_invariant()};
}

GenerationProgress EmbeddedBackend::complete(std::vector<CompletionRequest> requests, const OnCompletion& on_completion,
                                             const OnProgress& on_progress) {
  runtime::GeneratorOptions generator_options;
  generator_options.max_batch = options_.max_batch;
  runtime::Generator generator(*model_, tokenizer_, generator_options);
  for (auto& request : requests) {
    runtime::GenerationRequest r;
    r.id = request.id;
    r.prompt = std::move(request.prompt);
    r.max_new_tokens = request.max_tokens;
    r.sampling = request.sampling;
    r.stop_strings = std::move(request.stop);
    generator.submit(std::move(r));
  }
  GenerationProgress last;
  generator.run(
      [&](runtime::GenerationResult result) {
        Completion c;
        c.id = result.id;
        c.text = std::move(result.text);
        c.prompt_tokens = result.prompt_tokens;
        c.generated_tokens = static_cast<int>(result.tokens.size());
        c.finish = result.finish;
        c.seconds = result.prefill_seconds + result.decode_seconds;
        on_completion(std::move(c));
      },
      [&](const runtime::GeneratorStats& stats) {
        last = progress_of(stats);
        if (on_progress) on_progress(last);
      });
  return last;
}

}  // namespace quanteval::harness
