#include <fmt/format.h>

#include "harness/cli/commands.hpp"
#include "harness/cli/comparison_output.hpp"
#include "reports/reports.hpp"

namespace quanteval::harness {

int command_gate(int argc, char** argv, int first) {
  Args args("quanteval gate RUN_A RUN_B --max-drop PP [options]",
            "CI quality gate: exits 1 when the quantized run RUN_A lost more than PP percentage points of pass@1\n"
            "against the baseline RUN_B (paired, over the tasks both ran), in any compared mode; 0 otherwise.\n"
            "With --require-significant a drop fails only when the McNemar exact p-value is also below --alpha.\n"
            "Prints one paragraph with the numbers either way.");
  args.option("max-drop", "PP", "largest allowed pass@1 drop (baseline - quantized), percentage points")
      .option("alpha", "A", "significance level for --require-significant", "0.05")
      .repeated("mode", "M", "gate only this mode (default: every mode both runs share; any failing mode fails)")
      .flag("require-significant", "fail only when the drop is also significant (McNemar p < alpha)")
      .option("seed", "S", "bootstrap random seed (for the interval in the message)", "1")
      .option("bootstrap", "N", "bootstrap resamples", "10000")
      .flag("allow-mismatch",
            "compare runs whose prompts, chat template, decoding or dataset differ (refused otherwise); "
            "every output then says so at the top");
  const std::vector<std::string> positionals = leading_positionals(argc, argv, first);
  if (!args.parse(argc, argv, first)) return 0;
  if (positionals.size() != 2)
    throw UsageError("gate: give exactly two run directories, RUN_A (quantized) and RUN_B (baseline)");

  reports::GateOptions gate;
  gate.max_drop_pp = args.get_double("max-drop", 0.0, 100.0);
  gate.alpha = args.get_double("alpha", 1e-12, 1.0);
  gate.require_significant = args.is_set("require-significant");

  const reports::ComparisonOptions options = comparison_options(args);
  std::vector<reports::RunResults> runs;
  for (const auto& directory : positionals) runs.push_back(reports::load_run(directory));
  const reports::Comparison comparison = reports::compare_runs(std::move(runs), options);
  const reports::GateDecision decision = reports::evaluate_gate(comparison, gate);
  for (const auto& note : comparison.notes) fmt::print(stderr, "note: {}\n", note);
  if (const std::string warning = reports::mismatch_warning(comparison); !warning.empty()) fmt::print("{}\n", warning);
  fmt::print("{}\n", decision.paragraph);
  return decision.failed ? 1 : 0;
}

}  // namespace quanteval::harness
