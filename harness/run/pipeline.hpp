#pragma once
// `quanteval run` as named steps, each with a plain input and output:
//
//   1. prepare   problems x modes -> PromptSet              (prompts/prompts.hpp)
//   2. plan      PromptSet + run directory -> RunPlan        what an interrupted run left to do
//   3. generate  prompts -> GenerationRecords                through a GenerationBackend; samples.jsonl
//   4. execute   GenerationRecords -> verdicts               programs through the Executor; results.jsonl
//   5. report    run directory -> RunReport                  report.json / report.md / report.html
//
// Steps 3 and 4 overlap: each record goes to the sandbox as soon as it is
// written, so verdicts arrive while the model is still generating. Every line
// is flushed as it is produced; a killed run resumes from step 2.
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "datasets/datasets.hpp"
#include "harness/execution/executor.hpp"
#include "harness/execution/time_limits.hpp"
#include "harness/generation/backend.hpp"
#include "harness/generation/decoding.hpp"
#include "harness/prompts/prompts.hpp"
#include "harness/run/evaluated_model.hpp"
#include "harness/run/generation_record.hpp"
#include "harness/run/run_directory.hpp"
#include "reports/reports.hpp"
#include "sandbox/sandbox.hpp"

namespace quanteval::harness {

// What must match for --resume (run.json's "config"): the model and its
// weights, decoding, modes, every prompt, the chat template, the dataset, the
// tasks and the sandbox limits.
nlohmann::ordered_json run_config(const EvaluatedModel& model, const Decoding& decoding, const PromptSet& prompts,
                                  const datasets::Dataset& dataset, const std::vector<const datasets::Problem*>& tasks,
                                  const TimeLimits& limits, const sandbox::Config& sandbox);

// ---------------------------------------------------------------- 2. plan

// What a run directory holds, typed: each line read by its record's one reader.
struct RunRecords {
  std::map<SampleKey, GenerationRecord> generations;     // samples.jsonl
  std::map<SampleKey, reports::SampleVerdict> verdicts;  // results.jsonl
};
RunRecords read_records(const RunDirectory& run);

// The run directory's key of a prompt's sample.
SampleKey sample_key(const PreparedPrompt& prompt);

struct RunPlan {
  std::vector<const PreparedPrompt*> to_generate;  // no generation record yet
  std::vector<GenerationRecord> to_execute;        // generated before an interruption, no verdict yet
  std::size_t total = 0;                           // samples of the run
  std::size_t done = 0, passed = 0;                // verdicts already on disk, and how many passed
};
RunPlan plan_run(const PromptSet& prompts, const RunRecords& records);

// ---------------------------------------------------------------- 3. generate

// The generation record of one completion: the mode's extraction applied.
GenerationRecord record_completion(const PreparedPrompt& prompt, const Completion& completion);

struct GenerationOutcome {
  GenerationProgress progress;  // the backend's final numbers (the report's speed)
  std::size_t failures = 0;     // infrastructure failures: nothing recorded, generated again on --resume
  std::string first_failure;
};

// Generates `prompts` through `backend` (each with its own seed,
// sample_seed(run seed, sample key)); every completion is recorded
// (samples.jsonl) and then handed to on_record, as it finishes.
GenerationOutcome generate_samples(GenerationBackend& backend, const std::vector<const PreparedPrompt*>& prompts,
                                   const Decoding& decoding, RunDirectory& run,
                                   const std::function<void(const GenerationRecord&)>& on_record,
                                   const GenerationBackend::OnProgress& on_progress);

// ---------------------------------------------------------------- 4. execute

// What a generation record leads to: the check program to run, or a verdict
// decided without running anything (thinking mode: no code, or the budget
// spent inside <think>).
struct Judgement {
  std::optional<reports::SampleVerdict> decided;
  std::string program;  // when not decided
};
Judgement judge(const datasets::Problem& problem, const GenerationRecord& record);

// Turns generation records into verdicts: decided ones at once, the others
// through the Executor as the sandbox finishes them. Every verdict is appended
// to results.jsonl and then handed to on_verdict, one at a time.
class RunExecution {
 public:
  using OnVerdict = std::function<void(const reports::SampleVerdict&)>;
  RunExecution(const datasets::Dataset& dataset, sandbox::Pool& pool, const TimeLimits& limits, RunDirectory& run,
               OnVerdict on_verdict);

  void submit(const GenerationRecord& record);  // thread-safe; throws an earlier execution failure
  void finish();                                // waits for every verdict; rethrows the first failure

 private:
  void record(const reports::SampleVerdict& verdict);

  const datasets::Dataset& dataset_;
  const TimeLimits& limits_;
  RunDirectory& run_;
  OnVerdict on_verdict_;
  std::mutex record_mutex_;
  Executor executor_;  // last: its threads call record(), so it stops before the rest goes
};

// Steps 3 and 4 overlapped: the plan's records left to execute go to the
// sandbox at once, its prompts left to generate to `backend` (may be null when
// there are none), each new record to the sandbox as soon as it is written.
// Returns once every verdict is on disk; a generation error is rethrown after
// the execution of what was generated has finished (nothing is lost).
GenerationOutcome generate_and_execute(const RunPlan& plan, GenerationBackend* backend, const Decoding& decoding,
                                       RunDirectory& run, RunExecution& execution,
                                       const GenerationBackend::OnProgress& on_progress);

// ---------------------------------------------------------------- 5. report

struct RunReportSources {
  const EvaluatedModel& model;
  const Decoding& decoding;
  const datasets::Dataset& dataset;
  const PromptSet& prompts;
  const RunDirectory& run;
  reports::SandboxInfo sandbox;
  GenerationProgress speed;
  std::string device;
  nlohmann::ordered_json backend;  // BackendInfo::details of this session's backend (null: none ran)
  std::optional<bool> batch_invariant;  // BackendInfo::batch_invariant of this session's backend, if one ran
  double wall_seconds = 0;
};

// The report of the run: every sample of every mode, read back from the run
// directory (so a resumed run reports the whole run, not the last session).
reports::RunReport build_run_report(const RunReportSources& sources);

// report.json, report.md and report.html in `dir`, each written atomically.
void write_run_report(const std::filesystem::path& dir, const reports::RunReport& report);

}  // namespace quanteval::harness
