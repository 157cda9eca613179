#include "harness/common/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace quanteval::harness {

Progress::Progress(std::string label, std::size_t total, bool enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      terminal_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(std::size_t done, std::size_t passed, const std::string& extra) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : 0.0;
  last_line_ = fmt::format("{} {}/{} passed {} ({:.1f}%) {:.1f}/s ETA {:.0f}s{}{}", label_, done, total_, passed,
                           done ? 100.0 * static_cast<double>(passed) / static_cast<double>(done) : 0.0, rate, eta,
                           extra.empty() ? "" : " ", extra);
  if (terminal_) {
    if (now - last_print_ < std::chrono::milliseconds(100) && done < total_) return;
    fmt::print(stderr, "\r\033[K{}", last_line_);
    std::fflush(stderr);
    last_print_ = now;
    return;
  }
  const bool step = total_ >= 10 ? done - last_logged_done_ >= total_ / 10 : true;
  if (step || now - last_print_ > std::chrono::seconds(10) || done == total_) {
    fmt::print(stderr, "{}\n", last_line_);
    last_print_ = now;
    last_logged_done_ = done;
  }
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (terminal_ && !last_line_.empty()) fmt::print(stderr, "\n");
}

}  // namespace quanteval::harness
