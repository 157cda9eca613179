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
//     traces they would leave.
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
  double seconds = 0.0;
  bool ok() const;
};

// The built-in known-bad cases. Paths, ports and secrets for the host-side
// traps are filled in by run_selftest.
std::vector<SelftestCase> known_bad_cases(const std::string& trap_dir, int trap_port, const std::string& secret_name,
                                          const std::string& secret_value);

// Canonical and known-bad programs each run under their task's limit in `limits`.
SelftestReport run_selftest(const datasets::Dataset& dataset, sandbox::Pool& pool, const TimeLimits& limits,
                            bool progress);

std::string format_selftest(const SelftestReport& report);

}  // namespace quanteval::harness
