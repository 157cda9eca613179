#pragma once
// `quanteval selftest`: proves the scoring pipeline on this machine.
//  1. Every canonical solution of the dataset must pass (HumanEval: 164/164).
//     Tasks the manifest lists as known canonical failures must fail and are
//     reported as such, never hidden.
//  2. A built-in set of known-bad completions -- wrong answers, exceptions,
//     infinite loops, fake exits, and hostile programs that try to escape the
//     sandbox -- must all come out not passed. The hostile ones are written so
//     that they would *pass* if the escape worked (e.g. they assert that they
//     reached a listener on the host's loopback), and the host checks the
//     traces they would leave. Programs that force odd outcomes (misbehaving
//     exception objects, deep or huge directory trees, forged reports) must
//     still get a verdict of their own, never sandbox_error.
//  3. Pairs of programs on one worker: what the first leaves behind (IPC
//     objects, output in memory, a spoiled /tmp) must not reach the second,
//     and a process tree over its memory limit must end as oom.
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/datasets.hpp"
#include "harness/execution/time_limits.hpp"
#include "reports/reports.hpp"
#include "sandbox/sandbox.hpp"

namespace quanteval::harness {

struct SelftestCase {
  std::string name;
  std::string task_id;
  std::string completion;
  std::vector<reports::Status> expected;  // any of these is fine; passed never is
  bool then_canonical = false;            // the canonical body follows: passes only if the escape worked
};

struct SelftestOutcome {
  std::string name;
  std::string task_id;
  reports::Status status;
  std::string detail;
  bool surprise = false;  // passed, or a status outside `expected`, or a host-side trace found
  std::string why;        // explanation when surprise
};

struct SelftestReport {
  std::size_t canonical_total = 0;
  std::size_t canonical_passed = 0;
  std::vector<SelftestOutcome> canonical_unexpected;  // canonical failures not listed as known
  std::vector<SelftestOutcome> canonical_known;       // known canonical failures (expected to fail)
  std::vector<SelftestOutcome> bad;                   // every known-bad case
  std::vector<SelftestOutcome> between;               // one program's leftovers as seen by the next
  double seconds = 0.0;
  bool ok() const;
};

// The host-side traps the hostile cases aim at (set up by run_selftest).
struct SelftestTraps {
  std::string trap_dir;                   // a host folder anyone may write (must stay untouched)
  int trap_port = 0;                      // a TCP listener on the host's loopback
  std::string secret_name, secret_value;  // an environment variable of the pool
  std::string unix_socket;                // a listening unix socket in trap_dir
  std::string fifo;                       // a FIFO in trap_dir
  std::string dataset;                    // the dataset file (holds the canonical solutions)
  std::string working_tree;               // the pool's working directory ("" when it is / or /tmp)
  std::uint64_t host_devpts = 0;          // st_dev of the host's devpts (0: none)
};

// The built-in known-bad cases, aimed at the traps.
std::vector<SelftestCase> known_bad_cases(const SelftestTraps& traps);

// Canonical and known-bad programs each run under their task's limit in `limits`.
SelftestReport run_selftest(const datasets::Dataset& dataset, sandbox::Pool& pool, const TimeLimits& limits,
                            bool progress);

std::string format_selftest(const SelftestReport& report);

}  // namespace quanteval::harness
