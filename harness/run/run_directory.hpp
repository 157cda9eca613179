#pragma once
// A run directory that survives being killed. samples.jsonl (one generation
// per line) and results.jsonl (one verdict per line) are appended and flushed
// sample by sample; run.json holds the run's configuration and its hash.
// `--resume` reopens the directory: finished samples are kept, generated but
// unscored ones are scored, the rest generated -- never twice -- and the run
// is refused when its configuration (model, decoding, prompts, template,
// dataset, sandbox limits) differs from the interrupted one.
//
// This is the storage, keyed by sample; what a line holds is its record's
// business: run/generation_record.hpp for samples.jsonl,
// reports::SampleVerdict (reports/reports.hpp) for results.jsonl.
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/common/files.hpp"

namespace quanteval::harness {

// Identifies one sample of a run.
struct SampleKey {
  std::string mode;
  std::string task_id;
  int sample_index = 0;
  auto operator<=>(const SampleKey&) const = default;
  std::string text() const;  // "thinking HumanEval/3 #0"
};

class RunDirectory {
 public:
  // Creates `dir` for a new run, or (resume = true) reopens an interrupted
  // one. `config` is what must match for a resume; its hash is stored.
  // Throws std::runtime_error: a directory that already holds a run without
  // --resume, a resume of a different configuration (naming the fields that
  // differ), or malformed files (file and line).
  RunDirectory(const std::filesystem::path& dir, const nlohmann::ordered_json& config, bool resume);

  const std::filesystem::path& path() const { return dir_; }
  const std::string& config_hash() const { return hash_; }
  bool resumed() const { return resumed_; }

  // Lines already on disk (resume), keyed by sample.
  const std::map<SampleKey, nlohmann::json>& samples() const { return samples_.lines; }
  const std::map<SampleKey, nlohmann::json>& results() const { return results_.lines; }

  // Appends and flushes one line each (thread-safe). The line must carry
  // mode, task_id and sample_index; a key already written is a logic error.
  void append_sample(const nlohmann::ordered_json& line);
  void append_result(const nlohmann::ordered_json& line);

  static std::string config_hash_of(const nlohmann::ordered_json& config);
  static SampleKey key_of(const nlohmann::json& line, const std::string& where);

 private:
  std::filesystem::path dir_;
  std::string hash_;
  bool resumed_ = false;
  // One of the two JSONL files: its lines keyed by sample, and its writer.
  struct LineFile {
    std::filesystem::path path;
    std::map<SampleKey, nlohmann::json> lines;
    std::unique_ptr<JsonlWriter> writer;
  };
  // Reads what is on disk when resuming (repairing a half-written last line), then opens for appending.
  static void open(LineFile& file, bool read_existing);
  void append(LineFile& file, const nlohmann::ordered_json& line);

  LineFile samples_, results_;
  std::mutex mutex_;  // guards both files
};

}  // namespace quanteval::harness
