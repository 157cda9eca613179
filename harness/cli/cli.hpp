#pragma once
// The quanteval command line: verbs like git (`quanteval <verb> [options]`).
// Exit codes: 0 ok, 1 gate failed / selftest surprise, 2 usage or input error,
// 3 internal error (a broken invariant: a bug in quanteval).
#include <exception>
#include <string>

namespace quanteval::harness {

int run_cli(int argc, char** argv);

// How an exception that escaped a verb ends the process: the line printed on
// stderr and the exit code. InternalError (QE_CHECK) and other std::logic_error
// except std::invalid_argument are bugs: "internal error", exit 3, with the
// file:line the check names. Everything else -- usage, input files, checkpoints,
// the environment -- is exit 2 with the message, which names the file, line or field.
struct ErrorExit {
  int code = 2;
  std::string message;  // one line, "quanteval: error: ..." or "quanteval: internal error: ..."
};
ErrorExit error_exit(std::exception_ptr error);

}  // namespace quanteval::harness
