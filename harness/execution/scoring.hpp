#pragma once
// From how a program ended in the sandbox to a verdict of the report taxonomy,
// and the sandbox as the reports describe it.
#include <string>
#include <vector>

#include "datasets/datasets.hpp"
#include "harness/execution/time_limits.hpp"
#include "reports/reports.hpp"
#include "sandbox/sandbox.hpp"

namespace quanteval::harness {

// Maps how a program ended to a verdict. Only a completed program (the
// sandbox's positive evidence that check() returned) is `passed`.
reports::Status classify(const sandbox::Result& result);

// One short line for results.jsonl: "AssertionError: ...", "exited with code 0
// before check() returned", "wall-clock limit 3.0 s", ...
std::string describe(const sandbox::Result& result, const sandbox::Limits& limits);

// The verdict of one finished program run under `limits`.
reports::SampleVerdict to_verdict(const std::string& task_id, int sample_index, const sandbox::Result& result,
                                  const sandbox::Limits& limits);

// "3.11.2" for the interpreter, or "unknown" when it cannot be asked.
std::string python_version(const std::string& python);

// Sandbox settings as the reports show them, with the time-limit rule in use
// and `notes` (e.g. how the interpreter was chosen) after the pool's own.
reports::SandboxInfo describe_sandbox(const sandbox::Pool& pool, const TimeLimits& limits,
                                      const std::vector<std::string>& notes = {});

// The dataset as the reports show it.
reports::DatasetInfo describe_dataset(const datasets::Dataset& dataset);

}  // namespace quanteval::harness
