// Reading run directories and comparing them task by task.
#include <doctest/doctest.h>

#include <fstream>

#include "reports/comparison/comparison.hpp"
#include "tests/compare/run_fixtures.hpp"
#include "tests/support/test_data.hpp"

using namespace quanteval::reports;
using quanteval::test::SyntheticRun;
using quanteval::test::TempDir;
using quanteval::test::write_run;
namespace fs = std::filesystem;

namespace {

// Baseline passes tasks with even number; the quantized run loses tasks 2, 4,
// 6 (regressed) and gains task 1 (improved).
bool baseline_passes(const std::string&, int task, int) { return task % 2 == 0; }
bool quantized_passes(const std::string& mode, int task, int sample) {
  if (task == 2 || task == 4 || task == 6) return false;
  if (task == 1) return true;
  return baseline_passes(mode, task, sample);
}

std::string error_of(const fs::path& directory) {
  try {
    load_run(directory);
  } catch (const RunInputError& e) {
    return e.what();
  }
  return "no error";
}

void write_lines(const fs::path& directory, const std::string& results) {
  fs::create_directories(directory);
  std::ofstream(directory / "results.jsonl") << results;
}

}  // namespace

TEST_CASE("load_run reads verdicts per mode and the report's metadata") {
  TempDir dir;
  SyntheticRun run{.tasks = 20, .passes = quantized_passes};
  run.report = {
      {"model",
       {{"id", "tiny-gptq"}, {"quantization", "gptq 4-bit g64"}, {"bits_per_weight", 4.25}, {"size_bytes", 1.5e9}}},
      {"speed", {{"decode_tok_s", 120.5}}},
      {"dataset", {{"name", "humaneval"}, {"sha256", "ab12"}}}};
  write_run(dir.path() / "a", run);
  const RunResults loaded = load_run(dir.path() / "a");
  CHECK(loaded.label == "tiny-gptq");
  CHECK(loaded.model.bits_per_weight == 4.25);
  CHECK(loaded.model.size_bytes == 1.5e9);
  CHECK(loaded.speed.decode_tokens_per_second == 120.5);
  CHECK_FALSE(loaded.speed.prefill_tokens_per_second.has_value());
  CHECK(loaded.dataset_sha256 == "ab12");
  REQUIRE(loaded.modes.size() == 2);
  CHECK(loaded.modes.at("standard").summary.tasks.size() == 20);
  CHECK(loaded.modes.at("thinking").pass_at_1() == doctest::Approx(8.0 / 20));  // evens 0..18 = 10, -3, +1
  CHECK(loaded.warnings.empty());
}

TEST_CASE("a score directory (no mode field) is one mode named by the report, else 'score'") {
  TempDir dir;
  SyntheticRun run{.modes = {""}, .tasks = 10, .passes = baseline_passes};
  write_run(dir.path() / "s", run);
  CHECK(load_run(dir.path() / "s").modes.count("score") == 1);
  run.report = {{"mode", "thinking"}};
  write_run(dir.path() / "t", run);
  CHECK(load_run(dir.path() / "t").modes.count("thinking") == 1);
  // Without report.json the verdicts still load, with a warning.
  fs::remove(dir.path() / "s" / "report.json");
  const RunResults bare = load_run(dir.path() / "s");
  CHECK(bare.label == "s");
  CHECK(bare.warnings.size() == 1);
}

TEST_CASE("malformed input names the file, the line and the field") {
  TempDir dir;
  const fs::path d = dir.path() / "bad";
  const std::string good = R"({"task_id": "HumanEval/0", "sample_index": 0, "status": "passed", "passed": true})";
  write_lines(d, good + "\n{not json\n");
  CHECK(error_of(d).find("results.jsonl:2: not valid JSON") != std::string::npos);
  write_lines(d, good + "\n\n" + R"({"task_id": "HumanEval/1", "status": "pased"})" + "\n");
  CHECK(error_of(d).find("results.jsonl:3: field 'status': unknown status 'pased'") != std::string::npos);
  write_lines(d, R"({"status": "passed"})");
  CHECK(error_of(d).find("results.jsonl:1: field 'task_id': missing") != std::string::npos);
  write_lines(d, R"({"task_id": "HumanEval/1", "status": "failed", "passed": true})");
  CHECK(error_of(d).find("field 'passed': true contradicts status 'failed'") != std::string::npos);
  write_lines(d, good + "\n" + good + "\n");
  CHECK(error_of(d).find("results.jsonl:2: field 'sample_index'") != std::string::npos);
  CHECK(error_of(d).find("already appears on line 1") != std::string::npos);
  write_lines(d, R"({"task_id": "HumanEval/1", "status": "failed", "sample_index": -1})");
  CHECK(error_of(d).find("field 'sample_index'") != std::string::npos);
  write_lines(d, "[1, 2]\n");
  CHECK(error_of(d).find("expected a JSON object") != std::string::npos);
  write_lines(d, "\n");
  CHECK(error_of(d).find("no verdicts") != std::string::npos);
  write_lines(d, good + "\n");
  std::ofstream(d / "report.json") << R"({"model": {"size_bytes": "15 GB"}})";
  CHECK(error_of(d).find("report.json: field 'model.size_bytes': expected a number, got string") != std::string::npos);
  std::ofstream(d / "report.json") << "{";
  CHECK(error_of(d).find("report.json: not valid JSON") != std::string::npos);
  CHECK(error_of(dir.path() / "missing").find("not a run directory") != std::string::npos);
  fs::create_directories(dir.path() / "empty");
  CHECK(error_of(dir.path() / "empty").find("results.jsonl: missing") != std::string::npos);
}

TEST_CASE("a stated pass@1 that the verdicts do not reproduce is a warning") {
  TempDir dir;
  SyntheticRun run{.modes = {"standard"}, .tasks = 10, .passes = baseline_passes};
  run.report = {{"modes", {{"standard", {{"pass_at_k", {{"pass@1", 0.9}}}}}}}};
  write_run(dir.path() / "w", run);
  const RunResults loaded = load_run(dir.path() / "w");
  REQUIRE(loaded.warnings.size() == 1);
  CHECK(loaded.warnings[0].find("states pass@1 0.9000 but results.jsonl gives 0.5000") != std::string::npos);
}

TEST_CASE("paired comparison: flips, missing tasks, statistics") {
  TempDir dir;
  SyntheticRun a{.tasks = 30, .passes = quantized_passes, .skip_tasks = {29}};
  SyntheticRun b{.tasks = 30, .passes = baseline_passes, .skip_tasks = {28}};
  write_run(dir.path() / "a", a);
  write_run(dir.path() / "b", b);
  const Comparison c = compare_runs({load_run(dir.path() / "a"), load_run(dir.path() / "b")}, {});
  CHECK(c.modes == std::vector<std::string>{"standard", "thinking"});
  REQUIRE(c.contenders.size() == 1);
  const ModeComparison& m = c.contenders[0].modes[0];
  CHECK(m.paired);
  CHECK(m.tasks.size() == 28);
  CHECK(m.only_in_a == std::vector<std::string>{"HumanEval/28"});
  CHECK(m.only_in_b == std::vector<std::string>{"HumanEval/29"});
  CHECK(m.regressed == 3);
  CHECK(m.improved == 1);
  CHECK(m.both_pass == 14 - 3);  // evens 0..26 are 14 tasks
  CHECK(m.both_fail == 14 - 1);
  CHECK(m.task_ids(Flip::regressed) == std::vector<std::string>{"HumanEval/2", "HumanEval/4", "HumanEval/6"});
  CHECK(m.task_ids(Flip::improved) == std::vector<std::string>{"HumanEval/1"});
  CHECK(m.paired_delta == doctest::Approx(-2.0 / 28));
  CHECK(m.mcnemar_p == doctest::Approx(2.0 * (1 + 4) / 16));  // b=3, c=1
  CHECK(m.bootstrap_ci.low < m.paired_delta);
  CHECK(m.paired_delta < m.bootstrap_ci.high);
  CHECK(m.tasks.front().task_id == "HumanEval/0");
  CHECK(m.tasks[10].task_id == "HumanEval/10");  // problem order, not text order

  ComparisonOptions only_thinking;
  only_thinking.modes = {"thinking"};
  CHECK(compare_runs({load_run(dir.path() / "a"), load_run(dir.path() / "b")}, only_thinking).modes.size() == 1);
  only_thinking.modes = {"nonesuch"};
  CHECK_THROWS_AS(compare_runs({load_run(dir.path() / "a"), load_run(dir.path() / "b")}, only_thinking), RunInputError);
}

TEST_CASE("several samples per task: per-task rates, sign test, tied tasks") {
  TempDir dir;
  // Baseline: task t passes 0, 2, 4, 6 or 10 of 10 samples (by t % 5). Quantized:
  // one fewer on tasks 3 and 8, the same elsewhere.
  auto base = [](const std::string&, int task, int sample) {
    const int rate_tenths[] = {0, 2, 4, 6, 10};
    return sample < rate_tenths[task % 5];
  };
  auto quant = [&](const std::string& mode, int task, int sample) {
    return (task == 3 || task == 8) ? sample < 5 : base(mode, task, sample);
  };
  write_run(dir.path() / "a", {.modes = {"thinking"}, .tasks = 10, .samples_per_task = 10, .passes = quant});
  write_run(dir.path() / "b", {.modes = {"thinking"}, .tasks = 10, .samples_per_task = 10, .passes = base});
  const Comparison c = compare_runs({load_run(dir.path() / "a"), load_run(dir.path() / "b")}, {});
  const ModeComparison& m = c.contenders[0].modes[0];
  CHECK(m.regressed == 2);
  CHECK(m.improved == 0);
  CHECK(m.both_fail == 2);  // tasks 0 and 5
  CHECK(m.both_pass == 2);  // tasks 4 and 9
  CHECK(m.tied == 4);       // equal partial rates
  CHECK(m.paired_delta == doctest::Approx(-0.2 / 10));
  CHECK(m.mcnemar_p == doctest::Approx(0.5));  // sign test: b=2, c=0
  REQUIRE(m.pass_at_k.count(10) == 1);         // both have 10 samples per task
  CHECK(m.pass_at_k.at(10).first == doctest::Approx(0.8));
  CHECK(model_card_table(c).rows.at(1).at(0) == "pass@10 thinking");
}

TEST_CASE("a score directory pairs with a named mode; a published baseline gives unpaired statistics") {
  TempDir dir;
  write_run(dir.path() / "score", {.modes = {""}, .tasks = 164, .passes = quantized_passes});
  write_run(dir.path() / "run", {.modes = {"thinking"}, .tasks = 164, .passes = baseline_passes});
  const Comparison c = compare_runs({load_run(dir.path() / "score"), load_run(dir.path() / "run")}, {});
  CHECK(c.modes == std::vector<std::string>{"thinking"});
  CHECK(c.notes.size() == 1);

  const Comparison published = compare_runs(
      {load_run(dir.path() / "run"), published_run("BF16 (card)", parse_mode_values("thinking=97.56,standard=55"))},
      {});
  REQUIRE(published.contenders[0].modes.size() == 1);
  const ModeComparison& m = published.contenders[0].modes[0];
  CHECK_FALSE(m.paired);
  CHECK(m.pass_at_1_b == doctest::Approx(0.9756));
  CHECK(m.delta() == doctest::Approx(0.5 - 0.9756));
  // Newcombe around 82/164 vs round(0.9756 * 164) = 160/164.
  const Interval expected = newcombe_difference_interval(82, 164, 160, 164);
  CHECK(m.unpaired_ci.low == doctest::Approx(expected.low));
  CHECK(m.unpaired_ci.high == doctest::Approx(expected.high));
  CHECK(m.delta_ci().low < m.delta());

  CHECK_THROWS_AS(parse_mode_values("thinking"), std::invalid_argument);
  CHECK_THROWS_AS(parse_mode_values("thinking=abc"), std::invalid_argument);
  CHECK_THROWS_AS(parse_mode_values("a=1,a=2"), std::invalid_argument);
  CHECK_THROWS_AS(published_run("x", {{"thinking", 101.0}}), std::invalid_argument);
}

TEST_CASE("gate decisions") {
  TempDir dir;
  write_run(dir.path() / "a", {.modes = {"standard"}, .tasks = 164, .passes = quantized_passes});
  write_run(dir.path() / "b", {.modes = {"standard"}, .tasks = 164, .passes = baseline_passes});
  const Comparison c = compare_runs({load_run(dir.path() / "a"), load_run(dir.path() / "b")}, {});
  // Drop: (3 - 1) / 164 = 1.22 pp, McNemar p = 0.625.
  CHECK(evaluate_gate(c, {.max_drop_pp = 1.0}).failed);
  CHECK_FALSE(evaluate_gate(c, {.max_drop_pp = 1.5}).failed);
  CHECK_FALSE(evaluate_gate(c, {.max_drop_pp = 1.0, .require_significant = true}).failed);
  const GateDecision d = evaluate_gate(c, {.max_drop_pp = 1.0});
  CHECK(d.paragraph.find("GATE FAILED") == 0);
  CHECK(d.paragraph.find("HumanEval/2, HumanEval/4, HumanEval/6") != std::string::npos);
  CHECK(d.paragraph.find("McNemar exact p = 0.6250") != std::string::npos);
}
