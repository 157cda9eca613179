// Flips linked to causes and the thinking-budget curve, on a crafted pair of
// run directories (results.jsonl + samples.jsonl + report.json) whose cause
// per flip is known; the budget curve is recomputed here independently from
// what the test wrote.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reports/reports.hpp"
#include "tests/compare/run_fixtures.hpp"
#include "tests/support/test_data.hpp"

using quanteval::test::contains;
using quanteval::test::read_text;
using quanteval::test::run_quanteval;
using quanteval::test::SyntheticRun;
using quanteval::test::TempDir;
using quanteval::test::write_run;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kTasks = 30;
constexpr int kBudget = 4096;

// The quantized run (A): regressions 0-3 truncated (budget spent thinking), 4-5
// failed, 6 no_code, 7 error, 8 timeout; improvements on 25 and 26.
std::string status_a(int task) {
  if (task <= 3) return "truncated";
  if (task <= 5) return "failed";
  if (task == 6) return "no_code";
  if (task == 7) return "error";
  if (task == 8) return "timeout";
  if (task == 25 || task == 26) return "passed";
  return task >= 25 ? "failed" : "passed";
}
// The baseline (B): passes 0-24; 25 truncated, 26-29 failed.
std::string status_b(int task) {
  if (task < 25) return "passed";
  return task == 25 ? "truncated" : "failed";
}

struct Generated {
  int tokens;
  std::string finish;
  bool thinking_closed;
};
// Token counts spread over the budgets: finished samples take 150 + 130 * task tokens.
Generated generated(const std::string& status, int task) {
  if (status == "truncated") return {kBudget, "length", false};
  return {150 + 130 * task, "eos", true};
}

json sample_line(const std::string& status, int task, bool quantized) {
  const Generated g = generated(status, task);
  const std::string code = quantized ? "def f(x):\n    y = x + 1\n    return y\n" : "def f(x):\n    return x + 1\n";
  return {{"prompt_tokens", 100},
          {"generated_tokens", g.tokens},
          {"finish_reason", g.finish},
          {"raw_output", "<think>reasoning about task " + std::to_string(task) + (g.thinking_closed ? "</think>" : "")},
          {"completion", status == "no_code" || status == "truncated" ? "" : code},
          {"extraction_rule", status == "no_code" || status == "truncated" ? "none" : "fenced_python"},
          {"thinking_closed", g.thinking_closed}};
}

json report(const std::string& id) {
  return {{"model", {{"id", id}}},
          {"decoding", {{"preset", "greedy"}, {"temperature", 0.0}, {"max_new_tokens_thinking", kBudget}}},
          {"chat_template_sha256", "7e3p1a7e"},
          {"dataset", {{"name", "humaneval"}, {"sha256", "da7a5e7"}}},
          {"modes", {{"thinking", {{"prompt_sha256", "pr0mp75"}}}}}};
}

SyntheticRun crafted(bool quantized) {
  SyntheticRun run;
  run.modes = {"thinking"};
  run.tasks = kTasks;
  run.status = [quantized](const std::string&, int task, int) { return quantized ? status_a(task) : status_b(task); };
  run.sample = [quantized](const std::string&, int task, int) {
    return sample_line(quantized ? status_a(task) : status_b(task), task, quantized);
  };
  run.report = report(quantized ? "demo-int4" : "demo-bf16");
  return run;
}

// The curve by its definition, from the statuses and token counts written above.
struct Point {
  double pass, pass_finished;
  int finished;
  double pass_upper;  // cut samples whose thinking had closed counted as passed
  int uncertain;
};
Point expected_point(bool quantized, int budget) {
  int passed = 0, finished = 0, passed_finished = 0, uncertain = 0;
  for (int task = 0; task < kTasks; ++task) {
    const std::string status = quantized ? status_a(task) : status_b(task);
    const Generated g = generated(status, task);
    const bool within = g.tokens <= budget;
    if (within && status == "passed") ++passed;
    if (!within && g.thinking_closed) ++uncertain;
    if (within && g.finish != "length") {
      ++finished;
      if (status == "passed") ++passed_finished;
    }
  }
  return {static_cast<double>(passed) / kTasks, finished ? static_cast<double>(passed_finished) / finished : 0.0,
          finished, static_cast<double>(passed + uncertain) / kTasks, uncertain};
}

}  // namespace

TEST_CASE("compare: every flip carries both sides' causes; the cause table counts them") {
  TempDir tmp;
  write_run(tmp.path() / "int4", crafted(true));
  write_run(tmp.path() / "bf16", crafted(false));
  const auto r = run_quanteval({"compare", (tmp.path() / "int4").string(), (tmp.path() / "bf16").string(), "--out",
                                (tmp.path() / "out").string()});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json j = json::parse(read_text(tmp.path() / "out" / "compare.json"));
  const json& m = j["comparisons"][0]["modes"]["thinking"];
  CHECK(m["regressions_by_cause"] ==
        json{{"truncated", 4}, {"failed", 2}, {"no_code", 1}, {"error", 1}, {"timeout", 1}});
  CHECK(m["improvements_by_cause"] == json{{"truncated", 1}, {"failed", 1}});
  REQUIRE(m["flips"].size() == 11);
  for (const auto& flip : m["flips"]) {
    const int task = std::stoi(flip["task_id"].get<std::string>().substr(10));
    CAPTURE(task);
    CHECK(flip["outcome"] == (task >= 25 ? "improved" : "regressed"));
    for (const bool quantized : {true, false}) {
      const json& side = flip[quantized ? "a" : "b"];
      const std::string status = quantized ? status_a(task) : status_b(task);
      const Generated g = generated(status, task);
      CHECK(side["status"] == status);
      CHECK(side["generated_tokens"] == g.tokens);
      CHECK(side["finish_reason"] == g.finish);
      CHECK(side["thinking_closed"] == g.thinking_closed);
      CHECK(side["extraction_rule"] == (status == "no_code" || status == "truncated" ? "none" : "fenced_python"));
    }
  }
  const std::string md = read_text(tmp.path() / "out" / "compare.md");
  CHECK(contains(md, "Regressions by cause on each side"));
  CHECK(contains(md, "| truncated | 4 | 1 |"));
  CHECK(contains(md, "| total | 9 | 2 |"));
  CHECK(contains(md, "| HumanEval/0 | regressed | truncated | none | 4096 (length) | not closed | passed |"));
  const std::string html = read_text(tmp.path() / "out" / "compare.html");
  CHECK(contains(html, "regressions by cause on each side"));
  CHECK(contains(html, "<summary>thinking trace"));
  // The extracted code's diff, baseline (−) to A (+), on a task both sides have code for.
  CHECK(contains(html, "<span class=\"del\">−     return x + 1</span>"));
  CHECK(contains(html, "<span class=\"add\">+     y = x + 1</span>"));
  CHECK(contains(html, "<span class=\"\">  def f(x):</span>"));
}

TEST_CASE("compare and the budget curve: pass@1 by budget recomputed from samples.jsonl") {
  TempDir tmp;
  write_run(tmp.path() / "int4", crafted(true));
  write_run(tmp.path() / "bf16", crafted(false));
  const auto r = run_quanteval({"compare", (tmp.path() / "int4").string(), (tmp.path() / "bf16").string(), "--out",
                                (tmp.path() / "out").string()});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json m = json::parse(read_text(tmp.path() / "out" / "compare.json"))["comparisons"][0]["modes"]["thinking"];
  for (const bool quantized : {true, false}) {
    CAPTURE(quantized);
    const json& curve = m[quantized ? "budget_curve_a" : "budget_curve_b"];
    REQUIRE(curve.size() == 4);
    const int budgets[] = {512, 1024, 2048, 4096};
    for (std::size_t i = 0; i < 4; ++i) {
      CAPTURE(budgets[i]);
      const Point expected = expected_point(quantized, budgets[i]);
      CHECK(curve[i]["budget"] == budgets[i]);
      CHECK(std::fabs(curve[i]["pass@1"].get<double>() - expected.pass) < 1e-12);
      CHECK(curve[i]["finished"] == expected.finished);
      CHECK(curve[i]["uncertain"] == expected.uncertain);
      CHECK(std::fabs(curve[i]["pass@1_upper"].get<double>() - expected.pass_upper) < 1e-12);
      CHECK(curve[i]["samples"] == kTasks);
      if (expected.finished > 0)
        CHECK(std::fabs(curve[i]["pass@1_finished"].get<double>() - expected.pass_finished) < 1e-12);
      else
        CHECK(curve[i]["pass@1_finished"].is_null());
    }
    CHECK(curve[0]["uncertain"].get<int>() > 0);  // the crafted runs do exercise the bound
    // At the full budget the curve is the run's own pass@1, and exact.
    CHECK(curve[3]["uncertain"] == 0);
    CHECK(std::fabs(curve[3]["pass@1"].get<double>() - m[quantized ? "pass@1_a" : "pass@1_b"].get<double>()) < 1e-12);
  }
  const std::string html = read_text(tmp.path() / "out" / "compare.html");
  CHECK(contains(html, "pass@1 by token budget"));
  CHECK(contains(html, "<polyline"));
}

TEST_CASE("budget_grid: doublings from 512 below the budget, then the budget") {
  using quanteval::reports::budget_grid;
  CHECK(budget_grid(4096) == std::vector<int>{512, 1024, 2048, 4096});
  CHECK(budget_grid(3000) == std::vector<int>{512, 1024, 2048, 3000});
  CHECK(budget_grid(400) == std::vector<int>{400});
}

TEST_CASE("line_diff: a longest common subsequence of lines") {
  using quanteval::reports::DiffLine;
  using quanteval::reports::line_diff;
  const auto diff = line_diff("a\nb\nc\nd", "a\nx\nc\nd\ne");
  std::string rendered;
  for (const auto& line : diff)
    rendered += (line.kind == DiffLine::Kind::same      ? " "
                 : line.kind == DiffLine::Kind::removed ? "-"
                                                        : "+") +
                line.text + "|";
  CHECK(rendered == " a|-b|+x| c| d|+e|");
  CHECK(line_diff("", "").empty());
  CHECK(line_diff("same\n", "same\n").size() == 1);
}
