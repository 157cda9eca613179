#pragma once
// The verdict taxonomy every report uses (BRIEF "Status taxonomy").
#include <array>
#include <optional>
#include <string_view>

namespace quanteval::reports {

enum class Status {
  passed,         // check() returned: positive evidence from the sandbox
  failed,         // an assertion failed
  error,          // any other exception, or the program ended before check() returned
  timeout,        // wall-clock or CPU limit
  oom,            // MemoryError or the address-space limit
  signal,         // killed by a signal
  no_code,        // nothing extractable from the model output
  truncated,      // the generation hit its token budget
  sandbox_error,  // infrastructure failure; retried, never counted as a model failure
};

inline constexpr std::array<Status, 9> all_statuses = {
    Status::passed, Status::failed,  Status::error,     Status::timeout,       Status::oom,
    Status::signal, Status::no_code, Status::truncated, Status::sandbox_error,
};

std::string_view to_string(Status status);
std::optional<Status> parse_status(std::string_view text);

}  // namespace quanteval::reports
