#pragma once
// Invariant checks. A failed QE_CHECK is a bug in quanteval, never bad input:
// it throws InternalError (a std::logic_error) whose message names the source
// file and line, and the CLI reports it as "internal error" with exit code 3.
// Problems with the user's input have their own exception types
// (CheckpointError, ModelInputError, TokenizerError, std::invalid_argument, ...)
// carrying the file, line or field, and exit code 2.
//
//   QE_CHECK(rows.size() == expected, "step rows out of step with the batch");
//   QE_FAIL("unknown DType enumerator");   // a branch that must be unreachable
#include <stdexcept>
#include <string>

namespace quanteval {

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
[[noreturn]] inline void fail_check(const char* condition, const std::string& message, const char* file, int line) {
  throw InternalError(std::string(file) + ":" + std::to_string(line) + ": check `" + condition + "` failed" +
                      (message.empty() ? std::string() : ": " + message));
}
}  // namespace detail

}  // namespace quanteval

#define QE_CHECK(condition, message)                                                              \
  do {                                                                                            \
    if (!(condition)) ::quanteval::detail::fail_check(#condition, (message), __FILE__, __LINE__); \
  } while (false)

#define QE_FAIL(message) ::quanteval::detail::fail_check("unreachable", (message), __FILE__, __LINE__)
