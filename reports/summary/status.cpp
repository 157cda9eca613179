#include "reports/summary/status.hpp"

namespace quanteval::reports {

std::string_view to_string(Status status) {
  switch (status) {
    case Status::passed: return "passed";
    case Status::failed: return "failed";
    case Status::error: return "error";
    case Status::timeout: return "timeout";
    case Status::oom: return "oom";
    case Status::signal: return "signal";
    case Status::no_code: return "no_code";
    case Status::truncated: return "truncated";
    case Status::sandbox_error: return "sandbox_error";
  }
  return "unknown";
}

std::optional<Status> parse_status(std::string_view text) {
  for (Status s : all_statuses)
    if (to_string(s) == text) return s;
  return std::nullopt;
}

}  // namespace quanteval::reports
