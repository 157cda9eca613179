// Bad input: every problem names file, line and field; exit code 2; no output.
#include <doctest/doctest.h>

#include <fstream>

#include "datasets/datasets.hpp"
#include "harness/samples/samples.hpp"
#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
using quanteval::harness::InputError;
using quanteval::harness::read_samples;
using quanteval::test::TempDir;

namespace {

const quanteval::datasets::Dataset& humaneval() {
  static const auto d = quanteval::datasets::load(quanteval::test::dataset_file("humaneval").string());
  return d;
}

std::string error_for(const std::string& content) {
  TempDir dir;
  const fs::path file = dir.path() / "samples.jsonl";
  std::ofstream(file) << content;
  try {
    read_samples(file, humaneval());
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("valid samples: completion and solution forms, indices per task") {
  TempDir dir;
  const fs::path file = dir.path() / "s.jsonl";
  std::ofstream(file) << R"({"task_id":"HumanEval/0","completion":"    return True\n","extra":1})"
                         "\n"
                      << R"({"task_id":"HumanEval/1","solution":"def separate_paren_groups(s):\n    return []\n"})"
                         "\n"
                      << R"({"task_id":"HumanEval/0","completion":"    return False\n"})"
                         "\n";
  const auto samples = read_samples(file, humaneval());
  REQUIRE(samples.size() == 3);
  CHECK(samples[0].sample_index == 0);
  CHECK(samples[2].sample_index == 1);
  CHECK(samples[1].whole_program);
  CHECK(samples[2].line == 3);
  const auto program = quanteval::harness::check_program(*humaneval().find("HumanEval/0"), samples[0]);
  const auto& p = *humaneval().find("HumanEval/0");
  CHECK(program == p.prompt + "    return True\n" + "\n" + p.test + "\n" + "check(has_close_elements)");
  const auto whole = quanteval::harness::check_program(*humaneval().find("HumanEval/1"), samples[1]);
  CHECK(whole.starts_with("def separate_paren_groups(s):"));
}

TEST_CASE("each kind of bad line is reported with file, line and field") {
  CHECK(error_for("{\"task_id\": \"HumanEval/0\", \"completion\": \"x\"}\n{broken\n")
            .find("samples.jsonl:2: invalid JSON") != std::string::npos);
  CHECK(error_for("[1,2]\n").find("samples.jsonl:1: expected a JSON object") != std::string::npos);
  CHECK(error_for("{\"completion\": \"x\"}\n").find(":1: field 'task_id' is missing") != std::string::npos);
  CHECK(error_for("{\"task_id\": \"HumanEval/0\"}\n").find(":1: field 'completion' (or 'solution') is missing") !=
        std::string::npos);
  CHECK(error_for("{\"task_id\": \"HumanEval/0\", \"completion\": 5}\n")
            .find(":1: field 'completion' must be a string, got number") != std::string::npos);
  CHECK(error_for("{\"task_id\": null, \"completion\": \"x\"}\n").find("field 'task_id' must be a string, got null") !=
        std::string::npos);
  CHECK(error_for("{\"task_id\": \"HumanEval/999\", \"completion\": \"x\"}\n")
            .find(":1: field 'task_id': 'HumanEval/999' is not a task") != std::string::npos);
  CHECK(error_for("{\"task_id\": \"HumanEval/0\", \"completion\": \"x\", \"solution\": \"y\"}\n").find("not both") !=
        std::string::npos);
  CHECK(error_for("").find("no samples") != std::string::npos);
  CHECK(error_for("\n  \n").find("no samples") != std::string::npos);
  const std::string dup =
      "{\"task_id\": \"HumanEval/0\", \"completion\": \"x\"}\n{\"task_id\": \"HumanEval/0\", \"completion\": \"x\"}\n";
  const std::string message = error_for(dup);
  CHECK(message.find("samples.jsonl:2: duplicate sample") != std::string::npos);
  CHECK(message.find("line 1") != std::string::npos);
  // Distinct explicit indices make repeated identical samples legitimate.
  CHECK(error_for("{\"task_id\": \"HumanEval/0\", \"completion\": \"x\", \"sample_index\": 0}\n"
                  "{\"task_id\": \"HumanEval/0\", \"completion\": \"x\", \"sample_index\": 1}\n") == "(no error)");
}

TEST_CASE("CLI: bad input exits 2 with one clear message and writes nothing") {
  TempDir dir;
  const fs::path samples = dir.path() / "bad.jsonl";
  std::ofstream(samples)
      << "{\"task_id\": \"HumanEval/0\", \"completion\": \"    return True\\n\"}\n{\"task_id\": 3}\n";
  const fs::path out = dir.path() / "out";
  const auto r =
      quanteval::test::run_quanteval({"score", "--samples", samples.string(), "--dataset",
                                      quanteval::test::dataset_file("humaneval").string(), "--out", out.string()});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("bad.jsonl:2: field 'task_id' must be a string") != std::string::npos);
  CHECK_FALSE(fs::exists(out));

  const auto missing =
      quanteval::test::run_quanteval({"score", "--samples", (dir.path() / "none.jsonl").string(), "--dataset",
                                      quanteval::test::dataset_file("humaneval").string()});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("none.jsonl: samples file not found") != std::string::npos);

  // A dataset whose name claims to be the official file but whose bytes differ.
  const fs::path fake = dir.path() / "HumanEval.jsonl.gz";
  std::ofstream(fake) << "{\"task_id\":\"HumanEval/"
                         "0\",\"prompt\":\"\",\"canonical_solution\":\"\",\"test\":\"\",\"entry_point\":\"f\"}\n";
  const auto tampered =
      quanteval::test::run_quanteval({"score", "--samples", samples.string(), "--dataset", fake.string()});
  CHECK(tampered.exit_code == 2);
  CHECK(tampered.err.find("SHA-256 mismatch") != std::string::npos);
}

TEST_CASE("CLI: usage errors exit 2; --help exits 0") {
  CHECK(quanteval::test::run_quanteval({}).exit_code == 2);
  CHECK(quanteval::test::run_quanteval({"frobnicate"}).exit_code == 2);
  const auto unknown = quanteval::test::run_quanteval({"score", "--sample", "x"});
  CHECK(unknown.exit_code == 2);
  CHECK(unknown.err.find("unknown option --sample") != std::string::npos);
  const auto bad_number = quanteval::test::run_quanteval({"score", "--samples", "x", "--workers", "zero"});
  CHECK(bad_number.exit_code == 2);
  const auto help = quanteval::test::run_quanteval({"score", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--samples FILE") != std::string::npos);
  CHECK(help.out.find("--timeout") != std::string::npos);
  const auto top = quanteval::test::run_quanteval({"--help"});
  CHECK(top.exit_code == 0);
  CHECK(top.out.find("selftest") != std::string::npos);
}
