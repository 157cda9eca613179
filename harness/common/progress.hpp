#pragma once
// A progress line on stderr for long work: redrawn in place on a terminal,
// plain log lines (about every 10% or 10 s) when stderr is a file or pipe.
#include <chrono>
#include <mutex>
#include <string>

namespace quanteval::harness {

class Progress {
 public:
  Progress(std::string label, std::size_t total, bool enabled = true);
  ~Progress();
  // done: finished units; passed: how many of them passed; extra: free text (e.g. tokens/s).
  void update(std::size_t done, std::size_t passed, const std::string& extra = {});
  void finish();

 private:
  std::string label_;
  std::size_t total_;
  bool enabled_;
  bool terminal_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
  std::size_t last_logged_done_ = 0;
  std::string last_line_;
  std::mutex mutex_;
};

}  // namespace quanteval::harness
