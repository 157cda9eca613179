#pragma once
// The work of `quanteval compare` as a function: `compare` calls it with what
// its options say, `run --baseline` with the run just finished.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "harness/cli/args.hpp"
#include "reports/reports.hpp"

namespace quanteval::harness {

struct CompareRequest {
  std::vector<std::filesystem::path> runs;                // RUN_A, RUN_B (unless published), further runs
  std::optional<reports::RunResults> published_baseline;  // replaces RUN_B (--baseline-value)
  std::optional<std::string> label_a, label_b;            // names in tables (default: the model ids)
  std::optional<std::filesystem::path> divergence;        // a `divergence` output folder: flips vs KL
  reports::ComparisonOptions options;
  std::filesystem::path out;  // empty: beside RUN_A, <RUN_A>-vs-<RUN_B>
};

// Loads and compares the runs, writes compare.md, compare.json and
// compare.html into the output folder, and prints the model-card table, one
// line of paired statistics per contender and mode, and the notes. Throws
// reports::RunInputError for a run directory that cannot be read.
void compare_and_write(const CompareRequest& request);

// Pieces `compare` and `gate` share: the run directories that come before the
// options (Args knows only options; `first` moves past them), and the
// --mode/--seed/--bootstrap/--allow-mismatch values.
std::vector<std::string> leading_positionals(int argc, char** argv, int& first);
reports::ComparisonOptions comparison_options(const Args& args);

}  // namespace quanteval::harness
