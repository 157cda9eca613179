// `quanteval compare` and `quanteval gate` end to end through the binary, on
// run directories the test writes.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

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

// Baseline (BF16): thinking passes all but every 10th task; standard passes the even ones.
bool baseline_passes(const std::string& mode, int task, int) {
  return mode == "thinking" ? task % 10 != 0 : task % 2 == 0;
}

// Quantized: thinking regresses on tasks 1-9 and 13 (10 tasks the baseline passes) and improves on
// 30 and 40 (which the baseline fails); standard regresses on 2 and 4 and improves on 3.
bool quantized_passes(const std::string& mode, int task, int sample) {
  if (mode == "thinking") {
    if ((task >= 1 && task <= 9) || task == 13) return false;
    if (task == 30 || task == 40) return true;
    return baseline_passes(mode, task, sample);
  }
  if (task == 2 || task == 4) return false;
  if (task == 3) return true;
  return baseline_passes(mode, task, sample);
}

struct Runs {
  TempDir dir;
  fs::path a, b;
  Runs() : a(dir.path() / "gptq"), b(dir.path() / "bf16") {
    SyntheticRun quantized{.passes = quantized_passes};
    quantized.report = {{"model",
                         {{"id", "demo-gptq-int4"},
                          {"quantization", "gptq 4-bit g64 sym act-order"},
                          {"bits_per_weight", 4.25},
                          {"size_bytes", 16.5e9}}},
                        {"speed", {{"decode_tok_s", 85.0}, {"prefill_tok_s", 3400.0}}}};
    SyntheticRun baseline{.passes = baseline_passes};
    baseline.report = {
        {"model", {{"id", "demo-bf16"}, {"quantization", "bf16"}, {"bits_per_weight", 16.0}, {"size_bytes", 54e9}}},
        {"speed", {{"decode_tok_s", 30.0}}}};
    write_run(a, quantized);
    write_run(b, baseline);
  }
};

}  // namespace

TEST_CASE("compare writes the model-card table, JSON and HTML") {
  Runs runs;
  const fs::path out = runs.dir.path() / "out";
  const auto r = run_quanteval({"compare", runs.a.string(), runs.b.string(), "--out", out.string(), "--seed", "7"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  // standard: A 82 - 2 + 1 = 81/164 = 49.39%.
  CHECK(contains(r.out, "| Metric | demo-gptq-int4 | demo-bf16 | Delta (pp) |"));
  CHECK(contains(r.out, "| pass@1 standard | 49.39% ["));
  CHECK(contains(r.out, "| pass@1 thinking | "));
  CHECK(contains(r.out, "| size (GB) | 16.50 (-69.4% vs baseline) | 54.00 |"));
  CHECK(contains(r.out, "| bits per weight | 4.25 | 16.00 |"));
  CHECK(contains(r.out, "| decode tok/s | 85.0 (2.83x baseline) | 30.0 |"));
  const std::string md = read_text(out / "compare.md");
  CHECK(contains(md, "| Metric | demo-gptq-int4 | demo-bf16 | Delta (pp) |"));
  CHECK(contains(md, "| pass@1 standard | 49.39% ["));
  CHECK(contains(md, "regressed 10 (A fails, B passes), improved 2"));
  CHECK(contains(md, "McNemar exact two-sided p = 0.0386"));  // b=10, c=2
  CHECK(contains(md, "- Regressed: HumanEval/1, HumanEval/2, HumanEval/3"));

  const json j = json::parse(read_text(out / "compare.json"));
  const json& thinking = j["comparisons"][0]["modes"]["thinking"];
  CHECK(thinking["counts"]["regressed"] == 10);
  CHECK(thinking["counts"]["improved"] == 2);
  CHECK(thinking["mcnemar_exact_p"].get<double>() == doctest::Approx(2.0 * 79 / 4096));
  CHECK(thinking["regressed_tasks"].size() == 10);
  CHECK(thinking["improved_tasks"] == json::array({"HumanEval/30", "HumanEval/40"}));
  CHECK(thinking["tasks"].size() == 164);
  CHECK(j["runs"][0]["role"] == "quantized");
  CHECK(j["runs"][1]["role"] == "baseline");
  CHECK(j["options"]["seed"] == 7);
  const json& standard = j["comparisons"][0]["modes"]["standard"];
  CHECK(standard["mcnemar_exact_p"].get<double>() == doctest::Approx(1.0));  // b=2, c=1
  CHECK(standard["delta"].get<double>() == doctest::Approx(-1.0 / 164));

  const std::string html = read_text(out / "compare.html");
  CHECK(html.starts_with("<!DOCTYPE html>"));
  CHECK(contains(html, "<svg"));
  CHECK(contains(html, "<title>HumanEval/1: regressed"));
  CHECK(contains(html, "Quality vs size"));
  CHECK_FALSE(contains(html, "<script"));
  CHECK_FALSE(contains(html, "<link"));
  CHECK_FALSE(contains(html, "https://"));
  // Deterministic with a seed: a second run writes the same JSON.
  const fs::path again = runs.dir.path() / "again";
  REQUIRE(
      run_quanteval({"compare", runs.a.string(), runs.b.string(), "--out", again.string(), "--seed", "7"}).exit_code ==
      0);
  CHECK(read_text(again / "compare.json") == read_text(out / "compare.json"));
}

TEST_CASE("compare with labels, a chosen mode, more than two runs, default output folder") {
  Runs runs;
  const fs::path extra = runs.dir.path() / "gptq8";
  write_run(extra, {.passes = baseline_passes, .report = {{"model", {{"id", "demo-int8"}, {"size_bytes", 29e9}}}}});
  const auto r = run_quanteval({"compare", runs.a.string(), runs.b.string(), extra.string(), "--mode", "thinking",
                                "--label-a", "INT4", "--label-b", "BF16", "--bootstrap", "2000"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "| Metric | INT4 | demo-int8 | BF16 | Delta INT4 (pp) | Delta demo-int8 (pp) |"));
  CHECK_FALSE(contains(r.out, "pass@1 standard"));
  const fs::path default_out = runs.dir.path() / "gptq-vs-bf16";
  CHECK(fs::exists(default_out / "compare.md"));
  CHECK(contains(read_text(default_out / "compare.html"), "demo-int8"));
}

TEST_CASE("compare against published baseline values") {
  Runs runs;
  const fs::path out = runs.dir.path() / "pub";
  const auto r = run_quanteval({"compare", runs.a.string(), "--baseline-value", "thinking=97.56,standard=55.0", "--out",
                                out.string(), "--label-b", "BF16 (model card)"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "| Metric | demo-gptq-int4 | BF16 (model card) (published) | Delta (pp) |"));
  CHECK(contains(r.out, "| 97.56% |"));
  const json j = json::parse(read_text(out / "compare.json"));
  CHECK(j["comparisons"][0]["modes"]["thinking"]["paired"] == false);
  CHECK(j["comparisons"][0]["modes"]["thinking"]["delta_ci95_method"] == "Newcombe hybrid score (unpaired)");
  CHECK(contains(read_text(out / "compare.md"), "no McNemar test"));

  CHECK(run_quanteval({"compare", runs.a.string(), "--baseline-value", "thinking"}).exit_code == 2);
  CHECK(run_quanteval({"compare", runs.a.string(), "--baseline-value", "thinking=140"}).exit_code == 2);
}

TEST_CASE("gate exit codes") {
  Runs runs;
  const std::string a = runs.a.string(), b = runs.b.string();
  // thinking: drop (10 - 2) / 164 = 4.88 pp, p = 0.0386; standard: drop 0.61 pp, p = 1.
  auto gate = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"gate", a, b};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_quanteval(args);
  };
  auto over = gate({"--max-drop", "3"});
  CHECK(over.exit_code == 1);
  CHECK(over.out.starts_with("GATE FAILED"));
  CHECK(contains(over.out, "drop 4.88 pp exceeds the allowed 3.00 pp"));
  CHECK(contains(over.out, "McNemar exact p = 0.0386"));
  CHECK(contains(over.out, "10 regressed: HumanEval/1, HumanEval/2"));
  auto within = gate({"--max-drop", "5"});
  CHECK(within.exit_code == 0);
  CHECK(within.out.starts_with("GATE OK"));
  // Significant at 0.05, not at 0.01.
  CHECK(gate({"--max-drop", "3", "--require-significant"}).exit_code == 1);
  CHECK(gate({"--max-drop", "3", "--require-significant", "--alpha", "0.01"}).exit_code == 0);
  // The standard mode alone: 0.61 pp drop.
  CHECK(gate({"--max-drop", "0.5", "--mode", "standard"}).exit_code == 1);
  CHECK(gate({"--max-drop", "0.5", "--mode", "standard", "--require-significant"}).exit_code == 0);
  CHECK(gate({"--max-drop", "1", "--mode", "standard"}).exit_code == 0);

  // Bad input: exit 2 with the file, line and field.
  CHECK(gate({}).exit_code == 2);  // --max-drop missing
  CHECK(run_quanteval({"gate", a, "--max-drop", "3"}).exit_code == 2);
  const auto missing = run_quanteval({"gate", a, (runs.dir.path() / "nope").string(), "--max-drop", "3"});
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.err, "nope"));
  fs::remove(runs.b / "results.jsonl");
  const auto no_results = gate({"--max-drop", "3"});
  CHECK(no_results.exit_code == 2);
  CHECK(contains(no_results.err, "results.jsonl: missing"));
  std::ofstream(runs.b / "results.jsonl") << R"({"task_id": "HumanEval/0", "status": "passed", "mode": "thinking"})"
                                          << "\n{\"task_id\": \"HumanEval/1\", \"status\": 3}\n";
  const auto malformed = gate({"--max-drop", "3"});
  CHECK(malformed.exit_code == 2);
  CHECK(contains(malformed.err, "results.jsonl:2: field 'status'"));
  CHECK(gate({"--max-drop", "lots"}).exit_code == 2);
  CHECK(gate({"--max-drop", "3", "--mode", "nonesuch"}).exit_code == 2);
}

TEST_CASE("compare and gate appear in the usage and have --help") {
  const auto usage = run_quanteval({"--help"});
  CHECK(contains(usage.out, "compare"));
  CHECK(contains(usage.out, "gate"));
  CHECK(run_quanteval({"compare", "--help"}).exit_code == 0);
  CHECK(run_quanteval({"gate", "--help"}).exit_code == 0);
  CHECK(run_quanteval({"compare"}).exit_code == 2);
}
