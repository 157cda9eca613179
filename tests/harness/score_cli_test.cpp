// End to end through the binary: score and selftest on the real datasets.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/datasets.hpp"
#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using quanteval::test::read_jsonl;
using quanteval::test::run_quanteval;
using quanteval::test::TempDir;

namespace {

json read_json(const fs::path& file) {
  std::ifstream in(file);
  return json::parse(in);
}

std::string he() { return quanteval::test::dataset_file("humaneval").string(); }

}  // namespace

TEST_CASE("score: the 164 canonical solutions all pass; outputs are complete") {
  const auto dataset = quanteval::datasets::load(he());
  TempDir dir;
  const fs::path samples = dir.path() / "canonical.jsonl";
  {
    std::ofstream out(samples);
    // Reverse order: results.jsonl must follow input order, not dataset order.
    for (auto it = dataset.problems.rbegin(); it != dataset.problems.rend(); ++it)
      out << json{{"task_id", it->task_id}, {"completion", it->canonical_solution}}.dump() << "\n";
  }
  const fs::path out = dir.path() / "out";
  const auto r = run_quanteval({"score", "--samples", samples.string(), "--dataset", he(), "--out", out.string(),
                                "--python", quanteval::test::python(), "--workers", "2"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto results = read_jsonl(out / "results.jsonl");
  REQUIRE(results.size() == 164);
  CHECK(results.front()["task_id"] == "HumanEval/163");
  CHECK(results.back()["task_id"] == "HumanEval/0");
  std::size_t passed = 0;
  for (const auto& row : results) {
    passed += row["passed"].get<bool>() ? 1 : 0;
    CHECK(row.contains("duration_s"));
    CHECK(row.contains("detail"));
  }
  CHECK(passed == 164);
  CHECK_FALSE(fs::exists(out / "results.jsonl.partial"));
  const json report = read_json(out / "report.json");
  CHECK(report["pass_at_k"]["pass@1"].get<double>() == 1.0);
  CHECK(report["status_counts"]["passed"] == 164);
  CHECK(report["dataset"]["verified"] == true);
  CHECK(report["dataset"]["sha256"] == dataset.sha256);
  CHECK(report["sandbox"]["protections"].size() > 0);
  CHECK(report["tool"]["version"].is_string());
  std::ifstream md(out / "report.md");
  std::stringstream text;
  text << md.rdbuf();
  CHECK(text.str().find("| pass@1 | 100.00% |") != std::string::npos);
}

TEST_CASE("score: each status and pass@k with several samples per task") {
  TempDir dir;
  const fs::path samples = dir.path() / "mixed.jsonl";
  const auto dataset = quanteval::datasets::load(he());
  const auto& p0 = *dataset.find("HumanEval/0");
  {
    std::ofstream out(samples);
    auto line = [&](const std::string& task, const std::string& key, const std::string& code, int index) {
      out << json{{"task_id", task}, {key, code}, {"sample_index", index}}.dump() << "\n";
    };
    line("HumanEval/0", "completion", p0.canonical_solution, 0);               // passed
    line("HumanEval/0", "completion", "    return False\n", 1);                // failed
    line("HumanEval/0", "completion", "    raise KeyError('k')\n", 2);         // error
    line("HumanEval/0", "completion", "    while True:\n        pass\n", 3);   // timeout
    line("HumanEval/0", "solution", p0.prompt + p0.canonical_solution, 4);     // passed, whole program
    line("HumanEval/0", "completion", "    x = bytearray(1 << 40)\n", 5);      // oom
    line("HumanEval/0", "completion", "    import os\n    os._exit(0)\n", 6);  // error: exited early
    line("HumanEval/0", "completion", "    import os, signal\n    os.kill(os.getpid(), signal.SIGSEGV)\n",
         7);                                                      // signal
    line("HumanEval/0", "completion", p0.canonical_solution, 8);  // passed
    line("HumanEval/0", "completion", "    return True\n", 9);    // failed
  }
  const fs::path out = dir.path() / "out";
  const auto r = run_quanteval({"score", "--samples", samples.string(), "--dataset", he(), "--out", out.string(),
                                "--python", quanteval::test::python(), "--timeout", "1"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto results = read_jsonl(out / "results.jsonl");
  REQUIRE(results.size() == 10);
  const std::vector<std::string> expected = {"passed", "failed", "error",  "timeout", "passed",
                                             "oom",    "error",  "signal", "passed",  "failed"};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("sample " << i << ": " << results[i].dump());
    CHECK(results[i]["status"] == expected[i]);
    CHECK(results[i]["sample_index"] == static_cast<int>(i));
  }
  CHECK(results[2]["detail"].get<std::string>().find("KeyError") != std::string::npos);
  CHECK(results[6]["detail"].get<std::string>().find("exited with code 0") != std::string::npos);
  const json report = read_json(out / "report.json");
  // n = 10, c = 3: pass@1 = 0.3, pass@10 = 1.
  CHECK(report["pass_at_k"]["pass@1"].get<double>() == doctest::Approx(0.3));
  CHECK(report["pass_at_k"]["pass@10"].get<double>() == doctest::Approx(1.0));
  CHECK_FALSE(report["pass_at_k"].contains("pass@100"));
}

TEST_CASE("score: wrong samples that force odd outcomes stay in pass@k (1 right + 3 hostile wrong = 25%)") {
  // Each of these once came out sandbox_error, which pass@k excludes: the
  // file scored 100%. They are wrong answers and must count as such.
  TempDir dir;
  const fs::path samples = dir.path() / "hostile.jsonl";
  const auto dataset = quanteval::datasets::load(he());
  const auto& p0 = *dataset.find("HumanEval/0");
  const std::vector<std::string> completions = {
      p0.canonical_solution,
      "    raise ValueError('\\udcff wrong \\ud800')\n",  // lone surrogates in the message
      "    class M(type):\n        def __getattribute__(cls, name):\n"
      "            return 42 if name in ('__qualname__', '__name__') else super().__getattribute__(name)\n"
      "    class E(Exception, metaclass=M):\n        pass\n    raise E('x')\n",  // a type name that is no string
      "    import os\n    for _ in range(1200):\n        os.mkdir('d')\n        os.chdir('d')\n"
      "    return False\n",  // 1200 nested directories left behind
  };
  {
    std::ofstream out(samples);
    for (std::size_t i = 0; i < completions.size(); ++i)
      out << json{{"task_id", "HumanEval/0"}, {"completion", completions[i]}, {"sample_index", i}}.dump() << "\n";
  }
  const fs::path out = dir.path() / "out";
  const auto r = run_quanteval({"score", "--samples", samples.string(), "--dataset", he(), "--out", out.string(),
                                "--python", quanteval::test::python(), "--workers", "2"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const auto results = read_jsonl(out / "results.jsonl");
  REQUIRE(results.size() == 4);
  const std::vector<std::string> expected = {"passed", "error", "error", "failed"};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("sample " << i << ": " << results[i].dump());
    CHECK(results[i]["status"] == expected[i]);
    CHECK_FALSE(results[i].contains("attempts"));
  }
  const json report = read_json(out / "report.json");
  CHECK(report["pass_at_k"]["pass@1"].get<double>() == doctest::Approx(0.25));
  CHECK(report["status_counts"]["sandbox_error"] == 0);
  CHECK(report["scored_samples"] == 4);
}

TEST_CASE("score: a long non-ASCII error message ends the sample, not the run; details stay valid UTF-8") {
  TempDir dir;
  const fs::path samples = dir.path() / "unicode.jsonl";
  const auto dataset = quanteval::datasets::load(he());
  const auto& p0 = *dataset.find("HumanEval/0");
  {
    std::ofstream out(samples);
    out << json{{"task_id", "HumanEval/0"}, {"completion", "    raise ValueError('\u00e9' * 300)\n"}}.dump() << "\n";
    out << json{{"task_id", "HumanEval/0"},
                {"completion", "    raise ValueError('\u20ac' * 300)\n"},
                {"sample_index", 1}}
               .dump()
        << "\n";
    out << json{{"task_id", "HumanEval/0"}, {"completion", p0.canonical_solution}, {"sample_index", 2}}.dump() << "\n";
  }
  const fs::path out = dir.path() / "out";
  const auto r = run_quanteval({"score", "--samples", samples.string(), "--dataset", he(), "--out", out.string(),
                                "--python", quanteval::test::python()});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const auto results = read_jsonl(out / "results.jsonl");  // strict UTF-8 parse
  REQUIRE(results.size() == 3);
  for (int i = 0; i < 2; ++i) {
    CHECK(results[i]["status"] == "error");
    const std::string detail = results[i]["detail"].get<std::string>();
    CHECK(detail.rfind("ValueError: ", 0) == 0);
    CHECK(detail.size() <= 200);
    CHECK(detail.substr(detail.size() - 3) == "...");
  }
  CHECK(results[2]["status"] == "passed");
  const json report = read_json(out / "report.json");
  CHECK(report["pass_at_k"]["pass@1"].get<double>() == doctest::Approx(1.0 / 3.0));
}

TEST_CASE("selftest passes on HumanEval") {
  const auto r = run_quanteval({"selftest", "--dataset", he(), "--python", quanteval::test::python(), "--quiet"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("canonical solutions: 164/164 passed") != std::string::npos);
  CHECK(r.out.find("SURPRISE") == std::string::npos);
  CHECK(r.out.find("selftest OK") != std::string::npos);
}

TEST_CASE("selftest on HumanEval+ (needs numpy): HumanEval/32 is a reported known failure") {
  const auto r = run_quanteval({"selftest", "--dataset", quanteval::test::dataset_file("humaneval+").string(),
                                "--python", quanteval::test::python(), "--quiet"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("canonical solutions: 163/164 passed") != std::string::npos);
  CHECK(r.out.find("known canonical failure HumanEval/32") != std::string::npos);
  // Limits derived from each canonical solution's time on this machine, not one flat number.
  CHECK(r.out.find("time limits: max(3.0 s, 4.0 x canonical solution time on this machine)") != std::string::npos);
}
