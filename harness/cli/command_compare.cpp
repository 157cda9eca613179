#include <fmt/format.h>

#include <map>

#include "harness/cli/commands.hpp"
#include "harness/cli/comparison_output.hpp"
#include "reports/reports.hpp"

namespace quanteval::harness {

namespace fs = std::filesystem;

int command_compare(int argc, char** argv, int first) {
  Args args(
      "quanteval compare RUN_A RUN_B [RUN_C ...] [options]",
      "Paired comparison of a quantized run (RUN_A) with its baseline (RUN_B), task by task: the model-card\n"
      "table (printed and written to DIR/compare.md), paired statistics (McNemar exact test, paired-bootstrap\n"
      "interval of the delta, smallest detectable delta), DIR/compare.json and a self-contained DIR/compare.html.\n"
      "Further runs (RUN_C ...) are more variants compared with the same baseline (quality-vs-size chart).\n"
      "With --baseline-value, RUN_B is replaced by published numbers: give RUN_A [RUN_C ...] only.");
  args.option("out", "DIR", "output folder (default: beside RUN_A, <RUN_A>-vs-<RUN_B>)", "")
      .repeated("mode", "M", "compare only this mode (default: every mode RUN_A and the baseline share)")
      .option("divergence", "DIR",
              "output of `quanteval divergence` for these checkpoints: adds mean KL of regressed vs unchanged "
              "tasks with a Mann-Whitney U test (DIR_OUT/divergence_association.md, .json)")
      .option(
          "baseline-value", "MODE=PCT,...",
          "published baseline pass@1 in percent per mode, e.g. thinking=97.56,standard=55.0 (unpaired statistics only)")
      .option("label-a", "NAME", "name of RUN_A in tables (default: model id from report.json, else the folder name)")
      .option("label-b", "NAME", "name of the baseline in tables")
      .option("seed", "S", "bootstrap random seed", "1")
      .option("bootstrap", "N", "bootstrap resamples", "10000")
      .flag("allow-mismatch",
            "compare runs whose prompts, chat template, decoding or dataset differ (refused otherwise); "
            "every output then says so at the top");
  std::vector<std::string> positionals = leading_positionals(argc, argv, first);
  if (!args.parse(argc, argv, first)) return 0;

  const bool published = args.maybe("baseline-value").has_value();
  const std::size_t needed = published ? 1 : 2;
  if (positionals.size() < needed)
    throw UsageError(published ? "compare: give RUN_A (and optional further runs) with --baseline-value"
                               : "compare: give RUN_A and RUN_B (run directories), or RUN_A with --baseline-value");

  CompareRequest request;
  for (const auto& directory : positionals) request.runs.emplace_back(directory);
  if (published) {
    std::map<std::string, double> values;
    try {
      values = reports::parse_mode_values(args.get("baseline-value"));
      request.published_baseline = reports::published_run("baseline", values);
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--baseline-value: {}", e.what()));
    }
  }
  request.label_a = args.maybe("label-a");
  request.label_b = args.maybe("label-b");
  if (const auto divergence = args.maybe("divergence")) {
    if (!fs::exists(*divergence)) throw UsageError(fmt::format("--divergence: {} does not exist", *divergence));
    request.divergence = fs::path(*divergence);
  }
  request.options = comparison_options(args);
  if (!args.get("out").empty()) request.out = args.get("out");
  compare_and_write(request);
  return 0;
}

}  // namespace quanteval::harness
