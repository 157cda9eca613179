// Step 4 of a run: generation records -> check programs -> verdicts, overlapped with step 3.
#include <fmt/format.h>

#include <stdexcept>

#include "harness/extraction/extraction.hpp"
#include "harness/run/pipeline.hpp"
#include "harness/samples/samples.hpp"

namespace quanteval::harness {

using reports::Status;

Judgement judge(const datasets::Problem& problem, const GenerationRecord& record) {
  Judgement j;
  auto decide = [&](Status status, const char* detail) {
    reports::SampleVerdict v;
    v.mode = std::string(to_string(record.mode));
    v.task_id = record.task_id;
    v.sample_index = record.sample_index;
    v.status = status;
    v.detail = detail;
    j.decided = v;
    return j;
  };
  if (record.mode == Mode::standard) {
    // openai/human-eval's program: prompt + completion + test + check(entry_point).
    j.program = check_program(problem, Sample{record.task_id, record.completion, false, record.sample_index, 0});
    return j;
  }
  const bool budget_spent = record.finish == FinishReason::length;
  if (!record.thinking_closed && budget_spent) return decide(Status::truncated, "token budget spent inside <think>");
  if (record.completion.empty())
    return budget_spent ? decide(Status::truncated, "token budget spent before any code")
                        : decide(Status::no_code, "no code found in the answer");
  // The extracted code is the whole program, with the prompt's imports it lacks.
  const std::string code = missing_prompt_imports(problem.prompt, record.completion) + record.completion;
  j.program = check_program(problem, Sample{record.task_id, code, true, record.sample_index, 0});
  return j;
}

RunExecution::RunExecution(const datasets::Dataset& dataset, sandbox::Pool& pool, const TimeLimits& limits,
                           RunDirectory& run, OnVerdict on_verdict)
    : dataset_(dataset),
      limits_(limits),
      run_(run),
      on_verdict_(std::move(on_verdict)),
      executor_(pool, [this](std::size_t, const reports::SampleVerdict& verdict) { record(verdict); }) {}

void RunExecution::submit(const GenerationRecord& record) {
  const datasets::Problem* problem = dataset_.find(record.task_id);
  if (!problem)
    throw std::runtime_error(fmt::format("{}/samples.jsonl: task {} is not in dataset {}", run_.path().string(),
                                         record.task_id, dataset_.name));
  Judgement j = judge(*problem, record);
  if (j.decided) return this->record(*j.decided);
  executor_.submit({record.task_id, record.sample_index, std::move(j.program), limits_.for_task(record.task_id),
                    std::string(to_string(record.mode))});
}

void RunExecution::finish() { executor_.finish(); }

void RunExecution::record(const reports::SampleVerdict& verdict) {
  std::lock_guard lock(record_mutex_);
  run_.append_result(reports::to_json(verdict));
  if (on_verdict_) on_verdict_(verdict);
}

GenerationOutcome generate_and_execute(const RunPlan& plan, GenerationBackend* backend, const Decoding& decoding,
                                       RunDirectory& run, RunExecution& execution,
                                       const GenerationBackend::OnProgress& on_progress) {
  GenerationOutcome outcome;
  std::exception_ptr generation_error;
  try {
    for (const auto& record : plan.to_execute) execution.submit(record);
    if (!plan.to_generate.empty()) {
      QE_CHECK(backend != nullptr, "prompts left to generate but no generation backend");
      outcome = generate_samples(
          *backend, plan.to_generate, decoding, run, [&](const GenerationRecord& record) { execution.submit(record); },
          on_progress);
    }
  } catch (...) {
    generation_error = std::current_exception();
  }
  // What was generated is executed and recorded before any error ends the run.
  try {
    execution.finish();
  } catch (...) {
    if (!generation_error) throw;
  }
  if (generation_error) std::rethrow_exception(generation_error);
  return outcome;
}

}  // namespace quanteval::harness
