#include <fmt/format.h>

#include <cstdio>

#include "datasets/datasets.hpp"
#include "harness/cli/commands.hpp"
#include "harness/execution/scoring.hpp"
#include "harness/execution/selftest.hpp"

namespace quanteval::harness {

int command_selftest(int argc, char** argv, int first) {
  Args args("quanteval selftest [options]",
            "Runs every canonical solution of the dataset through the sandbox (HumanEval: all 164 must pass) and a\n"
            "built-in set of known-bad and hostile programs (none may pass, none may leave a trace on the host).\n"
            "Exit code 0 when everything behaved as expected, 1 on any surprise.");
  add_dataset_option(args);
  add_sandbox_options(args);
  args.flag("quiet", "no progress line on stderr");
  if (!args.parse(argc, argv, first)) return 0;

  const datasets::Dataset dataset = datasets::load(args.get("dataset"));
  PythonChoice python;
  sandbox::Pool pool(sandbox_config(args, dataset, python));
  for (const auto& note : python.notes) fmt::print("python: {}\n", note);
  fmt::print("dataset {} ({} problems, {})\n", dataset.name, dataset.problems.size(),
             dataset.verified ? "hash verified" : "not a known release");
  fmt::print("sandbox protections: {}\n", fmt::join(pool.protections().active(), ", "));
  for (const auto& note : pool.protections().notes) fmt::print("  note: {}\n", note);
  const TimeLimits limits = time_limits_from_args(args, dataset, pool);
  fmt::print("time limits: {}\n", time_limit_text(describe_sandbox(pool, limits)));
  const SelftestReport report = run_selftest(dataset, pool, limits, !args.is_set("quiet"));
  std::fputs(format_selftest(report).c_str(), stdout);
  return report.ok() ? 0 : 1;
}

}  // namespace quanteval::harness
