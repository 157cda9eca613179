#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <mutex>

#include "datasets/datasets.hpp"
#include "harness/cli/commands.hpp"
#include "harness/common/files.hpp"
#include "harness/common/progress.hpp"
#include "harness/execution/executor.hpp"
#include "harness/execution/scoring.hpp"
#include "harness/samples/samples.hpp"
#include "reports/reports.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;

namespace {

// Verdict details are valid UTF-8 by construction (the sandbox guarantees it);
// replacing rather than throwing keeps one odd sample from ending a whole run.
constexpr auto kReplaceInvalidUtf8 = nlohmann::ordered_json::error_handler_t::replace;

fs::path default_out_dir(const fs::path& samples) {
  std::string name = samples.filename().string();
  for (const char* ext : {".gz", ".jsonl", ".json"})
    if (name.ends_with(ext)) name.resize(name.size() - std::string(ext).size());
  return samples.parent_path() / (name + ".score");
}

}  // namespace

int command_score(int argc, char** argv, int first) {
  Args args("quanteval score --samples FILE [options]",
            "Executes every sample of an openai/human-eval style samples file in the sandbox and scores it.\n"
            "Each JSONL line has `task_id` and `completion` (appended to the prompt) or `solution` (a whole program).\n"
            "Writes DIR/results.jsonl (one verdict per sample, input order), DIR/report.json and DIR/report.md.");
  args.option("samples", "FILE", "samples JSONL (optionally .gz)")
      .option("out", "DIR", "output folder (default: beside the samples file, <name>.score)", "");
  add_dataset_option(args);
  add_sandbox_options(args);
  args.flag("quiet", "no progress line on stderr");
  if (!args.parse(argc, argv, first)) return 0;

  const fs::path samples_file = args.get("samples");
  // Everything is validated before any output exists.
  const datasets::Dataset dataset = datasets::load(args.get("dataset"));
  const std::vector<Sample> samples = read_samples(samples_file, dataset);
  PythonChoice python;
  sandbox::Config config = sandbox_config(args, dataset, python);
  const fs::path out = args.get("out").empty() ? default_out_dir(samples_file) : fs::path(args.get("out"));

  sandbox::Pool pool(config);
  const TimeLimits limits = time_limits_from_args(args, dataset, pool);
  std::vector<ProgramJob> jobs;
  jobs.reserve(samples.size());
  for (const auto& s : samples)
    jobs.push_back({s.task_id, s.sample_index, check_program(*dataset.find(s.task_id), s), limits.for_task(s.task_id)});

  fs::create_directories(out);
  const auto start = std::chrono::steady_clock::now();
  // Verdicts are streamed to a partial file as they finish (nothing lost on a
  // crash); results.jsonl is written in input order once all are in.
  const fs::path partial = out / "results.jsonl.partial";
  std::size_t done = 0, passed = 0;
  std::vector<reports::SampleVerdict> verdicts;
  {
    JsonlWriter stream(partial, false);
    Progress bar("score", jobs.size(), !args.is_set("quiet"));
    verdicts = run_jobs(pool, jobs, [&](std::size_t, const reports::SampleVerdict& v) {
      stream.write_line(reports::to_json(v).dump(-1, ' ', false, kReplaceInvalidUtf8));
      ++done;
      if (v.status == reports::Status::passed) ++passed;
      bar.update(done, passed);
    });
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::string results;
  for (const auto& v : verdicts) results += reports::to_json(v).dump(-1, ' ', false, kReplaceInvalidUtf8) + "\n";
  write_file_atomically(out / "results.jsonl", results);
  fs::remove(partial);

  reports::ScoreReport report;
  report.tool_version = tool_version();
  report.created_utc = utc_timestamp();
  report.samples_file = samples_file.string();
  report.dataset = describe_dataset(dataset);
  report.sandbox = describe_sandbox(pool, limits, python.notes);
  report.verdicts = verdicts;
  report.wall_seconds = wall;
  const auto summary = reports::summarize(verdicts);
  write_file_atomically(out / "report.json",
                        reports::to_json(report, summary).dump(2, ' ', false, kReplaceInvalidUtf8) + "\n");
  write_file_atomically(out / "report.md", reports::to_markdown(report, summary));

  fmt::print("{} samples, {} tasks", summary.samples, summary.tasks.size());
  for (const auto& [k, value] : summary.pass_at_k) fmt::print(", pass@{} {:.2f}%", k, 100 * value);
  fmt::print(" ({:.1f} s, {:.1f} samples/s)\n", wall, wall > 0 ? static_cast<double>(summary.samples) / wall : 0.0);
  if (summary.counts.at(reports::Status::sandbox_error) > 0)
    fmt::print(stderr, "warning: {} samples hit sandbox errors (excluded from pass@k; see results.jsonl)\n",
               summary.counts.at(reports::Status::sandbox_error));
  fmt::print("wrote {}/results.jsonl, report.json, report.md\n", out.string());
  return 0;
}

}  // namespace quanteval::harness
