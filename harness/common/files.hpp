#pragma once
// Output files that are never half-written: whole files are written to a
// temporary name and renamed into place; JSONL streams are appended and
// flushed line by line so a crash loses at most the line being written.
#include <cstdio>
#include <filesystem>
#include <string>

namespace quanteval::harness {

// Writes text to path atomically (temp file in the same folder + fsync + rename).
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

class JsonlWriter {
 public:
  // append=false truncates the file first.
  JsonlWriter(const std::filesystem::path& path, bool append);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  void write_line(const std::string& json_text);  // adds '\n', flushes
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* file_ = nullptr;
};

// Current UTC time as ISO 8601, e.g. "2026-11-26T17:40:00Z".
std::string utc_timestamp();

}  // namespace quanteval::harness
