// Run directories: crash-safe appends, resume, and refusal of a changed configuration.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "datasets/datasets.hpp"
#include "harness/run/run_directory.hpp"
#include "tests/support/test_data.hpp"

using quanteval::test::read_text;

namespace fs = std::filesystem;
using nlohmann::ordered_json;
using quanteval::harness::RunDirectory;
using quanteval::harness::SampleKey;

namespace {

ordered_json line(const char* mode, const char* task, int index) {
  return {{"mode", mode}, {"task_id", task}, {"sample_index", index}, {"x", 1}};
}

}  // namespace

TEST_CASE("SHA-256 of known strings") {
  CHECK(quanteval::datasets::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(quanteval::datasets::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("config hash ignores key order and sees every value") {
  ordered_json a = {{"model", "m"}, {"seed", 1}};
  ordered_json b = {{"seed", 1}, {"model", "m"}};
  ordered_json c = {{"seed", 2}, {"model", "m"}};
  CHECK(RunDirectory::config_hash_of(a) == RunDirectory::config_hash_of(b));
  CHECK(RunDirectory::config_hash_of(a) != RunDirectory::config_hash_of(c));
}

TEST_CASE("a run is appended line by line and resumed after a kill") {
  quanteval::test::TempDir tmp;
  const fs::path dir = tmp.path() / "run";
  const ordered_json config = {{"model", "tiny"}, {"temperature", 0}};
  {
    RunDirectory run(dir, config, false);
    CHECK_FALSE(run.resumed());
    run.append_sample(line("standard", "HumanEval/0", 0));
    run.append_result(line("standard", "HumanEval/0", 0));
    run.append_sample(line("standard", "HumanEval/1", 0));
    CHECK_THROWS_AS(run.append_sample(line("standard", "HumanEval/1", 0)), std::logic_error);
  }
  // A kill mid-write leaves half a line behind.
  std::ofstream(dir / "results.jsonl", std::ios::app) << "{\"mode\":\"standard\",\"task_id\":\"HumanEval/1\",\"sam";
  // Without --resume the directory is refused.
  CHECK_THROWS_WITH_AS(RunDirectory(dir, config, false), doctest::Contains("--resume"), std::runtime_error);
  // A different configuration is refused, naming what changed.
  CHECK_THROWS_WITH_AS(RunDirectory(dir, ordered_json{{"model", "tiny"}, {"temperature", 0.6}}, true),
                       doctest::Contains("temperature"), std::runtime_error);
  RunDirectory resumed(dir, config, true);
  CHECK(resumed.resumed());
  CHECK(resumed.samples().size() == 2);
  CHECK(resumed.results().size() == 1);
  CHECK(resumed.results().count(SampleKey{"standard", "HumanEval/0", 0}) == 1);
  // The partial line was cut off, so the next append starts on a clean line.
  resumed.append_result(line("standard", "HumanEval/1", 0));
  const std::string text = read_text(dir / "results.jsonl");
  CHECK(text.find("\"sam{") == std::string::npos);
  std::istringstream lines(text);
  std::string one;
  int count = 0;
  while (std::getline(lines, one)) {
    CHECK(nlohmann::json::parse(one).is_object());
    ++count;
  }
  CHECK(count == 2);
}
