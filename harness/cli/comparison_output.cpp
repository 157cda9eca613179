#include "harness/cli/comparison_output.hpp"

#include <fmt/format.h>

#include <climits>

#include "harness/common/files.hpp"
#include "harness/divergence/divergence.hpp"
#include "harness/run/generation_record.hpp"
#include "runtime/runtime.hpp"  // QE_CHECK

namespace quanteval::harness {
namespace fs = std::filesystem;

namespace {

fs::path default_out_dir(const fs::path& run_a, const std::string& baseline_name) {
  const fs::path a = fs::absolute(run_a).lexically_normal();
  const fs::path folder = a.has_filename() ? a : a.parent_path();
  return folder.parent_path() / (folder.filename().string() + "-vs-" + baseline_name);
}

}  // namespace

std::vector<std::string> leading_positionals(int argc, char** argv, int& first) {
  std::vector<std::string> positionals;
  while (first < argc && !std::string_view(argv[first]).starts_with("--")) positionals.emplace_back(argv[first++]);
  return positionals;
}

reports::ComparisonOptions comparison_options(const Args& args) {
  reports::ComparisonOptions options;
  options.modes = args.all("mode");
  options.seed = static_cast<std::uint64_t>(args.get_int("seed", 0, INT_MAX));
  options.bootstrap_resamples = args.get_int("bootstrap", 100, 10'000'000);
  options.allow_mismatch = args.is_set("allow-mismatch");
  return options;
}

void compare_and_write(const CompareRequest& request) {
  QE_CHECK(request.runs.size() >= (request.published_baseline ? 1u : 2u), "compare needs a run and a baseline");
  std::vector<reports::RunResults> runs;
  for (const auto& directory : request.runs) {
    runs.push_back(reports::load_run(directory));
    attach_generations(runs.back());
  }
  if (request.published_baseline) runs.insert(runs.begin() + 1, *request.published_baseline);
  if (request.label_a) runs[0].label = *request.label_a;
  if (request.label_b) runs[1].label = *request.label_b;
  const reports::Comparison comparison = reports::compare_runs(std::move(runs), request.options);

  const std::string baseline_name = request.published_baseline
                                        ? std::string("published")
                                        : fs::absolute(request.runs[1]).lexically_normal().filename().string();
  const fs::path out = request.out.empty() ? default_out_dir(request.runs[0], baseline_name) : request.out;
  fs::create_directories(out);
  write_file_atomically(out / "compare.md", reports::to_markdown(comparison));
  write_file_atomically(out / "compare.json", reports::to_json(comparison).dump(2) + "\n");
  write_file_atomically(out / "compare.html", reports::comparison_html(comparison));

  if (const std::string warning = reports::mismatch_warning(comparison); !warning.empty()) fmt::print("{}\n", warning);
  fmt::print("{}", reports::to_markdown(reports::model_card_table(comparison)));
  for (const auto& contender : comparison.contenders)
    for (const auto& m : contender.modes)
      if (m.paired)
        fmt::print(
            "{} {}: {} regressed, {} improved of {} shared tasks; delta {:+.2f} pp, 95% CI [{:+.2f}, {:+.2f}], "
            "McNemar p = {:.4g}\n",
            comparison.runs[contender.run_index].label, m.mode, m.regressed, m.improved, m.tasks.size(),
            100 * m.paired_delta, 100 * m.bootstrap_ci.low, 100 * m.bootstrap_ci.high, m.mcnemar_p);
  // Where the regressions come from, in one line per mode: "thinking regressions by cause: truncated 4, failed 2".
  for (const auto& contender : comparison.contenders)
    for (const auto& m : contender.modes) {
      if (m.regressions_by_cause.empty()) continue;
      std::vector<std::string> parts;
      for (const auto& [status, n] : m.regressions_by_cause)
        parts.push_back(fmt::format("{} {}", to_string(status), n));
      fmt::print("{} {} regressions by cause: {}\n", comparison.runs[contender.run_index].label, m.mode,
                 fmt::join(parts, ", "));
    }
  for (const auto& note : comparison.notes) fmt::print(stderr, "note: {}\n", note);
  fmt::print("wrote {}/compare.md, compare.json, compare.html\n", out.string());
  if (request.divergence) write_divergence_association(comparison, *request.divergence, out);
}

}  // namespace quanteval::harness
