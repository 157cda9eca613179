// Step 3 of a run: prompts -> completions (through the backend) -> generation records.
#include "harness/extraction/extraction.hpp"
#include "harness/run/pipeline.hpp"

namespace quanteval::harness {

GenerationRecord record_completion(const PreparedPrompt& prompt, const Completion& completion) {
  GenerationRecord r;
  r.mode = prompt.mode;
  r.task_id = prompt.problem->task_id;
  r.sample_index = prompt.sample_index;
  r.prompt_tokens = completion.prompt_tokens;
  r.generated_tokens = completion.generated_tokens;
  r.finish = completion.finish;
  r.raw_output = completion.text;
  if (prompt.mode == Mode::standard) {
    r.completion = cut_at_stop_sequence(completion.text);
    r.extraction_rule = ExtractionRule::prompt_continuation;
  } else {
    const Extraction e = extract_thinking_answer(completion.text, prompt_opens_thinking(prompt.text));
    r.completion = e.code;
    r.extraction_rule = e.rule;
    r.thinking_closed = e.thinking_closed;
  }
  return r;
}

GenerationOutcome generate_samples(GenerationBackend& backend, const std::vector<const PreparedPrompt*>& prompts,
                                   const Decoding& decoding, RunDirectory& run,
                                   const std::function<void(const GenerationRecord&)>& on_record,
                                   const GenerationBackend::OnProgress& on_progress) {
  std::vector<CompletionRequest> requests;
  requests.reserve(prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    const PreparedPrompt& p = *prompts[i];
    CompletionRequest request;
    request.id = i;
    request.prompt = p.ids;
    request.max_tokens = decoding.max_new_tokens(p.mode);
    request.sampling = decoding.sampling;
    // Each sample has its own stream of random numbers, independent of batching order and backend.
    request.sampling.seed = sample_seed(decoding.sampling.seed, sample_key(p).text());
    request.stop = decoding.stop_strings(p.mode);
    requests.push_back(std::move(request));
  }
  GenerationOutcome outcome;
  outcome.progress = backend.complete(
      std::move(requests),
      [&](Completion completion) {
        const PreparedPrompt& p = *prompts.at(completion.id);
        if (!completion.failure.empty()) {
          if (outcome.failures++ == 0) outcome.first_failure = sample_key(p).text() + ": " + completion.failure;
          return;
        }
        const GenerationRecord record = record_completion(p, completion);
        run.append_sample(to_json(record));
        on_record(record);
      },
      on_progress);
  return outcome;
}

}  // namespace quanteval::harness
