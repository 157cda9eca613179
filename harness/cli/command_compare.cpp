#include <fmt/format.h>

#include <climits>
#include <filesystem>

#include "harness/cli/commands.hpp"
#include "harness/eval/files.hpp"
#include "reports/comparison/comparison.hpp"
#include "reports/comparison/html_comparison.hpp"
#include "reports/comparison/run_results.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;

namespace {

// The run directories come first (`compare A B [options]`): Args knows only
// options, so the leading non-option arguments are taken here.
std::vector<std::string> leading_positionals(int argc, char** argv, int& first) {
  std::vector<std::string> positionals;
  while (first < argc && !std::string_view(argv[first]).starts_with("--")) positionals.emplace_back(argv[first++]);
  return positionals;
}

fs::path default_out_dir(const fs::path& run_a, const std::string& baseline_name) {
  const fs::path a = fs::absolute(run_a).lexically_normal();
  const fs::path folder = a.has_filename() ? a : a.parent_path();
  return folder.parent_path() / (folder.filename().string() + "-vs-" + baseline_name);
}

}  // namespace

int command_compare(int argc, char** argv, int first) {
  Args args("quanteval compare RUN_A RUN_B [RUN_C ...] [options]",
            "Paired comparison of a quantized run (RUN_A) with its baseline (RUN_B), task by task: the model-card\n"
            "table (printed and written to DIR/compare.md), paired statistics (McNemar exact test, paired-bootstrap\n"
            "interval of the delta, smallest detectable delta), DIR/compare.json and a self-contained DIR/compare.html.\n"
            "Further runs (RUN_C ...) are more variants compared with the same baseline (quality-vs-size chart).\n"
            "With --baseline-value, RUN_B is replaced by published numbers: give RUN_A [RUN_C ...] only.");
  args.option("out", "DIR", "output folder (default: beside RUN_A, <RUN_A>-vs-<RUN_B>)", "")
      .repeated("mode", "M", "compare only this mode (default: every mode RUN_A and the baseline share)")
      .option("baseline-value", "MODE=PCT,...",
              "published baseline pass@1 in percent per mode, e.g. thinking=97.56,standard=55.0 (unpaired statistics only)")
      .option("label-a", "NAME", "name of RUN_A in tables (default: model id from report.json, else the folder name)")
      .option("label-b", "NAME", "name of the baseline in tables")
      .option("seed", "S", "bootstrap random seed", "1")
      .option("bootstrap", "N", "bootstrap resamples", "10000");
  std::vector<std::string> positionals = leading_positionals(argc, argv, first);
  if (!args.parse(argc, argv, first)) return 0;

  const bool published = args.maybe("baseline-value").has_value();
  const std::size_t needed = published ? 1 : 2;
  if (positionals.size() < needed)
    throw UsageError(published ? "compare: give RUN_A (and optional further runs) with --baseline-value"
                               : "compare: give RUN_A and RUN_B (run directories), or RUN_A with --baseline-value");

  std::vector<reports::RunResults> runs;
  for (const auto& directory : positionals) runs.push_back(reports::load_run(directory));
  if (published) {
    std::map<std::string, double> values;
    try {
      values = reports::parse_mode_values(args.get("baseline-value"));
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--baseline-value: {}", e.what()));
    }
    try {
      runs.insert(runs.begin() + 1, reports::published_run("baseline", values));
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--baseline-value: {}", e.what()));
    }
  }
  if (auto label = args.maybe("label-a")) runs[0].label = *label;
  if (auto label = args.maybe("label-b")) runs[1].label = *label;

  reports::ComparisonOptions options;
  options.modes = args.all("mode");
  options.seed = static_cast<std::uint64_t>(args.get_int("seed", 0, INT_MAX));
  options.bootstrap_resamples = args.get_int("bootstrap", 100, 10'000'000);
  const reports::Comparison comparison = reports::compare_runs(std::move(runs), options);

  const std::string baseline_name =
      published ? std::string("published") : fs::absolute(positionals[1]).lexically_normal().filename().string();
  const fs::path out = args.get("out").empty() ? default_out_dir(positionals[0], baseline_name) : fs::path(args.get("out"));
  fs::create_directories(out);
  write_file_atomically(out / "compare.md", reports::to_markdown(comparison));
  write_file_atomically(out / "compare.json", reports::to_json(comparison).dump(2) + "\n");
  write_file_atomically(out / "compare.html", reports::comparison_html(comparison));

  fmt::print("{}", reports::to_markdown(reports::model_card_table(comparison)));
  for (const auto& contender : comparison.contenders)
    for (const auto& m : contender.modes)
      if (m.paired)
        fmt::print("{} {}: {} regressed, {} improved of {} shared tasks; delta {:+.2f} pp, 95% CI [{:+.2f}, {:+.2f}], "
                   "McNemar p = {:.4g}\n",
                   comparison.runs[contender.run_index].label, m.mode, m.regressed, m.improved, m.tasks.size(),
                   100 * m.paired_delta, 100 * m.bootstrap_ci.low, 100 * m.bootstrap_ci.high, m.mcnemar_p);
  for (const auto& note : comparison.notes) fmt::print(stderr, "note: {}\n", note);
  fmt::print("wrote {}/compare.md, compare.json, compare.html\n", out.string());
  return 0;
}

}  // namespace quanteval::harness
