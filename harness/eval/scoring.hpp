#pragma once
// Executes check programs in the sandbox and turns each sandbox outcome into a
// verdict of the report taxonomy.
#include <functional>
#include <string>
#include <vector>

#include "harness/eval/time_limits.hpp"
#include "reports/summary/score_report.hpp"
#include "sandbox/sandbox.hpp"

namespace quanteval::harness {

// Maps how a program ended to a verdict. Only a completed program (the
// sandbox's positive evidence that check() returned) is `passed`.
reports::Status classify(const sandbox::Result& result);

// One short line for results.jsonl: "AssertionError: ...", "exited with code 0
// before check() returned", "wall-clock limit 3.0 s", ...
std::string describe(const sandbox::Result& result, const sandbox::Limits& limits);

struct ProgramJob {
  std::string task_id;
  int sample_index = 0;
  std::string program;
  double wall_seconds = 0;  // this program's time limit; 0 = the pool's
};

// The verdict of one finished program run under `limits`.
reports::SampleVerdict to_verdict(const std::string& task_id, int sample_index, const sandbox::Result& result,
                                  const sandbox::Limits& limits);

// Runs every job on the pool; on_verdict(index, verdict) is called as each
// finishes (serialised). Returns verdicts in input order.
std::vector<reports::SampleVerdict> run_jobs(
    sandbox::Pool& pool, const std::vector<ProgramJob>& jobs,
    const std::function<void(std::size_t, const reports::SampleVerdict&)>& on_verdict = {});

// "3.11.2" for the interpreter, or "unknown" when it cannot be asked.
std::string python_version(const std::string& python);

// Sandbox settings as the reports show them, with the time-limit rule in use.
reports::SandboxInfo describe_sandbox(const sandbox::Pool& pool, const TimeLimits& limits);

}  // namespace quanteval::harness
