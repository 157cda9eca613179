#pragma once
// Shared helpers for the sandbox tests: a pool, limits for fast hostile tests,
// and host-side views of what the sandbox left behind.
#include <sys/types.h>

#include <string>
#include <vector>

#include "sandbox/sandbox.hpp"

namespace quanteval::sandbox::testing {

Config test_config(int workers = 2);

// One pool shared by the tests that do not need a special configuration
// (starting a pool costs ~0.3 s; many tests run a handful of programs).
Pool& shared_pool();

// The default limits with a short wall clock, for programs that never end.
Limits quick_limits(double wall_seconds = 1.0);

// Processes that descend from this test process's own children (the zygotes),
// not counting the zygotes themselves: anything a program left behind.
std::vector<pid_t> leftover_processes();

// Every process on the host (any parent) running as this uid, zombies included.
std::vector<pid_t> processes_with_uid(uid_t uid);

// The zygotes: direct children of this process.
std::vector<pid_t> worker_processes();

// Runs a trivial program and checks it completes with the right output, and
// that nothing was left behind. Used after every hostile program.
void check_pool_still_works(Pool& pool);

}  // namespace quanteval::sandbox::testing
