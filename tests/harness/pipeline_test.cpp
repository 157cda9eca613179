// The steps of `run` without a model: a scripted GenerationBackend feeds the
// generate and execute steps; what reaches samples.jsonl / results.jsonl, what
// a backend is asked for, and what a resume plans after an infrastructure
// failure. Also the records' one writer / one reader.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "harness/run/pipeline.hpp"
#include "tests/harness/sandbox_pool.hpp"
#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
using namespace quanteval;
using namespace quanteval::harness;

namespace {

datasets::Dataset tiny_dataset() {
  datasets::Dataset d;
  d.name = "tiny";
  for (const char* id : {"T/0", "T/1"})
    d.problems.push_back({id, "def f():\n", "    return 1\n", "def check(f):\n    assert f() == 1\n", "f"});
  return d;
}

PromptSet tiny_prompts(const datasets::Dataset& dataset) {
  PromptSet set;
  set.modes = {Mode::standard, Mode::thinking};
  for (const Mode mode : set.modes) {
    for (const auto& problem : dataset.problems) set.prompts.push_back({mode, &problem, 0, "prompt", {1, 2, 3}});
    set.sha256_by_mode[mode] = "hash";
  }
  return set;
}

// Answers every request from a script: standard mode continues the prompt
// correctly, thinking mode answers a wrong fenced function, and T/1 in thinking
// mode fails as a server that cannot be reached would.
class ScriptedBackend final : public GenerationBackend {
 public:
  std::vector<CompletionRequest> requests;

  BackendInfo info() const override {
    BackendInfo info;
    info.kind = "scripted";
    info.device = "none";
    info.served_model = "tiny";
    return info;
  }
  GenerationProgress complete(std::vector<CompletionRequest> batch, const OnCompletion& on_completion,
                              const OnProgress& on_progress) override {
    requests = batch;
    GenerationProgress progress;
    // Completion order differs from submission order, as with a real batch.
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
      Completion c;
      c.id = it->id;
      c.prompt_tokens = static_cast<int>(it->prompt.size());
      if (it->stop.empty()) {  // thinking
        if (it->id == failing_id) c.failure = "connection refused";
        c.text = "<think>x</think>\n```python\ndef f():\n    return 2\n```";
        c.finish = FinishReason::eos;
      } else {
        c.text = "    return 1\n";
        c.finish = FinishReason::stop;
      }
      c.generated_tokens = 7;
      on_completion(std::move(c));
      ++progress.finished;
      if (on_progress) on_progress(progress);
    }
    return progress;
  }
  std::uint64_t failing_id = 3;  // the fourth prompt: thinking T/1
};

}  // namespace

TEST_CASE("generate + execute through a backend; an infrastructure failure is not recorded and is planned again") {
  test::TempDir tmp;
  const auto dataset = tiny_dataset();
  const PromptSet prompts = tiny_prompts(dataset);
  Decoding decoding;
  decoding.max_new_tokens_standard = 64;
  decoding.max_new_tokens_thinking = 512;
  sandbox::Pool pool(test::test_pool_config());
  TimeLimits limits;
  limits.default_seconds = 20;
  const nlohmann::ordered_json config = {{"test", "pipeline"}};

  ScriptedBackend backend;
  GenerationOutcome outcome;
  std::vector<reports::SampleVerdict> verdicts;
  {
    RunDirectory run(tmp.path() / "run", config, false);
    const RunPlan plan = plan_run(prompts, read_records(run));
    REQUIRE(plan.to_generate.size() == 4);
    RunExecution execution(dataset, pool, limits, run, [&](const reports::SampleVerdict& v) { verdicts.push_back(v); });
    outcome = generate_and_execute(plan, &backend, decoding, run, execution, {});
  }
  // What the backend was asked: ids as rendered, the mode's budget and stops, one seed per sample.
  REQUIRE(backend.requests.size() == 4);
  std::set<std::uint64_t> seeds;
  for (const auto& r : backend.requests) {
    const bool standard = r.id < 2;
    CHECK(r.prompt == std::vector<runtime::TokenId>{1, 2, 3});
    CHECK(r.max_tokens == (standard ? 64 : 512));
    CHECK(r.stop == (standard ? standard_stop_sequences() : std::vector<std::string>{}));
    seeds.insert(r.sampling.seed);
  }
  CHECK(seeds.size() == 4);

  CHECK(outcome.failures == 1);
  CHECK(outcome.first_failure.find("thinking T/1 #0: connection refused") != std::string::npos);
  REQUIRE(verdicts.size() == 3);
  std::map<std::string, reports::Status> status;
  for (const auto& v : verdicts) status[v.mode + " " + v.task_id] = v.status;
  CHECK(status.at("standard T/0") == reports::Status::passed);
  CHECK(status.at("standard T/1") == reports::Status::passed);
  CHECK(status.at("thinking T/0") == reports::Status::failed);
  CHECK(status.count("thinking T/1") == 0);

  // Read back with the one reader of each file; a resume plans the failed sample only.
  RunDirectory resumed(tmp.path() / "run", config, true);
  const RunRecords records = read_records(resumed);
  CHECK(records.generations.size() == 3);
  CHECK(records.verdicts.size() == 3);
  const GenerationRecord& thinking = records.generations.at({"thinking", "T/0", 0});
  CHECK(thinking.completion == "def f():\n    return 2\n");
  CHECK(thinking.extraction_rule == ExtractionRule::fenced_python);
  CHECK(thinking.finish == FinishReason::eos);
  CHECK(records.generations.at({"standard", "T/0", 0}).extraction_rule == ExtractionRule::prompt_continuation);
  const RunPlan again = plan_run(prompts, records);
  REQUIRE(again.to_generate.size() == 1);
  CHECK(again.to_generate[0]->mode == Mode::thinking);
  CHECK(again.to_generate[0]->problem->task_id == "T/1");
  CHECK(again.to_execute.empty());
  CHECK(again.done == 3);
  CHECK(again.passed == 2);
}

TEST_CASE("records: one writer and one reader, field by field") {
  GenerationRecord r;
  r.mode = Mode::thinking;
  r.task_id = "HumanEval/3";
  r.sample_index = 2;
  r.prompt_tokens = 10;
  r.generated_tokens = 20;
  r.finish = FinishReason::length;
  r.raw_output = "<think>never closed";
  r.completion = "";
  r.extraction_rule = ExtractionRule::none;
  r.thinking_closed = false;
  const nlohmann::ordered_json line = to_json(r);
  std::vector<std::string> fields;
  for (const auto& [key, value] : line.items()) fields.push_back(key);
  CHECK(fields == std::vector<std::string>{"mode", "task_id", "sample_index", "prompt_tokens", "generated_tokens",
                                           "finish_reason", "raw_output", "completion", "extraction_rule",
                                           "thinking_closed"});
  const GenerationRecord back = generation_record_from_json(nlohmann::json(line), "samples.jsonl:1");
  CHECK(to_json(back) == line);
  // Standard-mode lines have no thinking_closed.
  r.mode = Mode::standard;
  CHECK_FALSE(to_json(r).contains("thinking_closed"));

  nlohmann::json bad = nlohmann::json(line);
  bad["finish_reason"] = "timeout";
  CHECK_THROWS_WITH_AS(generation_record_from_json(bad, "samples.jsonl:7"),
                       doctest::Contains("samples.jsonl:7: field 'finish_reason': unknown finish reason 'timeout'"),
                       std::runtime_error);
  bad = nlohmann::json(line);
  bad.erase("raw_output");
  CHECK_THROWS_WITH_AS(generation_record_from_json(bad, "samples.jsonl:8"),
                       doctest::Contains("field 'raw_output': missing"), std::runtime_error);

  reports::SampleVerdict v;
  v.mode = "standard";
  v.task_id = "HumanEval/0";
  v.sample_index = 1;
  v.status = reports::Status::timeout;
  v.duration_seconds = 3.00004;
  v.time_limit_seconds = 3;
  v.detail = "time limit 3.0 s exceeded";
  v.attempts = 2;
  const nlohmann::ordered_json verdict_line = reports::to_json(v);
  fields.clear();
  for (const auto& [key, value] : verdict_line.items()) fields.push_back(key);
  CHECK(fields == std::vector<std::string>{"mode", "task_id", "sample_index", "status", "passed", "duration_s",
                                           "time_limit_s", "detail", "attempts"});
  const reports::SampleVerdict read = reports::verdict_from_json(nlohmann::json(verdict_line), "results.jsonl:1");
  CHECK(reports::to_json(read) == verdict_line);
  // A scored samples file has no modes: the line has no mode field.
  v.mode.clear();
  CHECK_FALSE(reports::to_json(v).contains("mode"));
}
