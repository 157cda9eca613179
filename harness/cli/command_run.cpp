// `quanteval run`: generate + execute + score one checkpoint in one or both
// modes. The verb turns its options into the inputs of the run's steps
// (harness/run/pipeline.hpp) and calls them in order; generation and execution
// overlap, every sample is flushed to disk as it finishes, and --resume
// continues after a kill.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>

#include "datasets/datasets.hpp"
#include "harness/cli/command_model_common.hpp"
#include "harness/cli/commands.hpp"
#include "harness/cli/comparison_output.hpp"
#include "harness/common/progress.hpp"
#include "harness/execution/scoring.hpp"
#include "harness/generation/decoding.hpp"
#include "harness/generation/embedded_backend.hpp"
#include "harness/generation/openai_backend.hpp"
#include "harness/prompts/prompts.hpp"
#include "harness/run/pipeline.hpp"
#include "reports/reports.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;

namespace {

std::vector<Mode> modes_from(const Args& args) {
  const std::string text = args.get("mode");
  if (text == "both") return {Mode::standard, Mode::thinking};
  if (const auto mode = parse_mode(text)) return {*mode};
  throw UsageError(fmt::format("--mode: expected standard, thinking or both, got '{}'", text));
}

Decoding decoding_from(const Args& args) {
  Decoding d;
  try {
    d = decoding_preset(args.get("preset"));
  } catch (const std::invalid_argument& e) {
    throw UsageError(fmt::format("--preset: {}", e.what()));
  }
  if (args.maybe("temperature")) d.sampling.temperature = static_cast<float>(args.get_double("temperature", 0, 10));
  if (args.maybe("top-p")) d.sampling.top_p = static_cast<float>(args.get_double("top-p", 0, 1));
  if (args.maybe("top-k")) d.sampling.top_k = args.get_int("top-k", 0, 1 << 20);
  if (args.maybe("min-p")) d.sampling.min_p = static_cast<float>(args.get_double("min-p", 0, 1));
  d.sampling.seed = static_cast<std::uint64_t>(args.get_int("seed", 0, 1 << 30));
  d.n_samples = args.get_int("n-samples", 1, 1000);
  if (d.n_samples > 1 && d.sampling.temperature == 0)
    throw UsageError(
        "--n-samples > 1 with greedy decoding repeats one answer; use --preset qwen-thinking or --temperature");
  if (args.maybe("max-new-tokens"))
    d.max_new_tokens_standard = d.max_new_tokens_thinking = args.get_int("max-new-tokens", 1, 1 << 20);
  return d;
}

EmbeddedBackend::Options embedded_options_from(const Args& args) {
  EmbeddedBackend::Options options;
  options.load.device = device_from_args(args);
  options.load.threads = args.get_int("threads", 0, 1024);
  options.max_batch = args.get_int("max-batch", 1, 4096);
  options.load.max_sequences = options.max_batch;  // one recurrent state slot per sequence that may run
  options.load.kv_cache_bytes = static_cast<std::uint64_t>(args.get_int("kv-cache-mb", 0, 1 << 20)) << 20;
  options.load.gpu_memory_utilization = args.get_double("gpu-memory-utilization", 0.01, 1.0);
  return options;
}

// The backend of a run: the embedded runtime, or the OpenAI-compatible servers of --endpoint.
std::unique_ptr<GenerationBackend> make_backend(const Args& args, const EvaluatedModel& model) {
  const std::vector<std::string> endpoints = args.all("endpoint");
  if (endpoints.empty())
    return std::make_unique<EmbeddedBackend>(model.resolved.directory, model.tokenizer, embedded_options_from(args));
  for (const char* name : {"device", "threads", "max-batch", "kv-cache-mb", "gpu-memory-utilization"})
    if (args.is_set(name))
      fmt::print(stderr, "quanteval: note: --{} configures the embedded runtime; ignored with --endpoint\n", name);
  OpenAIBackend::Options options;
  options.endpoints = endpoints;
  if (auto key = args.maybe("api-key")) {
    options.api_key = *key;
  } else if (const char* env = std::getenv("OPENAI_API_KEY")) {
    options.api_key = env;
  }
  options.served_model = args.maybe("served-model");
  options.model_names = {model.spec, model.resolved.directory.string()};
  options.concurrency = args.get_int("concurrency", 1, 4096);
  options.request_timeout_s = args.get_double("request-timeout", 0.1, 7 * 24 * 3600.0);
  options.retries = args.get_int("retries", 0, 100);
  return std::make_unique<OpenAIBackend>(std::move(options), model.tokenizer);
}

// What a server did differently from what was asked, once per kind, on stderr (the report has them too).
void print_backend_warnings(const BackendInfo& info) {
  if (!info.details.is_object() || !info.details.contains("warnings")) return;
  for (const auto& [kind, w] : info.details["warnings"].items())
    fmt::print(stderr, "quanteval: warning: {} ({} requests){}\n", kind, w.value("count", 0),
               w.value("first", "").empty() ? "" : ", e.g. " + w.value("first", ""));
}

// The progress line of a run: verdicts counted as they are recorded, with the
// backend's generation numbers beside them.
class RunProgress {
 public:
  RunProgress(const RunPlan& plan, bool enabled)
      : bar_("run", plan.total, enabled),
        to_generate_(plan.to_generate.size()),
        done_(plan.done),
        passed_(plan.passed) {}

  void verdict(const reports::SampleVerdict& verdict) {
    ++done_;
    if (verdict.status == reports::Status::passed) ++passed_;
    std::lock_guard lock(mutex_);
    bar_.update(done_, passed_, generation_);
  }
  void generation(const GenerationProgress& p) {
    std::lock_guard lock(mutex_);
    generation_ =
        fmt::format("gen {}/{} active {} decode {:.1f} tok/s", p.finished, to_generate_, p.active, p.decode_tok_s);
    bar_.update(done_, passed_, generation_);
  }
  void finish() { bar_.finish(); }

 private:
  Progress bar_;
  std::size_t to_generate_;
  std::atomic<std::size_t> done_, passed_;
  std::mutex mutex_;        // guards generation_
  std::string generation_;  // the backend's part of the line
};

void print_summary(const reports::RunReport& report, const fs::path& out) {
  for (const auto& m : report.modes) {
    const auto s = reports::summarize(m.verdicts);
    fmt::print("{}: pass@1 {:.2f}% [{:.2f}, {:.2f}] over {} tasks\n", m.name,
               100 * (s.pass_at_k.count(1) ? s.pass_at_k.at(1) : 0.0), 100 * s.pass_at_1_interval.low,
               100 * s.pass_at_1_interval.high, s.tasks.size());
  }
  fmt::print("wrote {}/report.md, report.json, report.html\n", out.string());
}

}  // namespace

int command_run(int argc, char** argv, int first) {
  Args args("quanteval run --model DIR|OWNER/NAME[@REV] --out DIR [options]",
            "Generates completions for HumanEval with the embedded runtime (or OpenAI-compatible servers,\n"
            "--endpoint), executes each in the sandbox as soon as it is ready, and scores the checkpoint.\n"
            "Modes: standard (raw prompt, lm-evaluation-harness stop sequences, program = prompt + completion)\n"
            "and thinking (the model's chat template with enable_thinking, code = last fenced Python block after\n"
            "</think>). Every sample is flushed to DIR as it finishes; --resume continues a killed run without\n"
            "redoing or duplicating samples.");
  args.option("model", "DIR|OWNER/NAME[@REV]", "checkpoint folder or Hugging Face Hub id")
      .option("out", "DIR", "run directory (samples.jsonl, results.jsonl, report.json/md/html)")
      .option("mode", "standard|thinking|both", "evaluation mode(s)", "both");
  add_task_options(args)
      .option("max-new-tokens", "N", "token budget per sample (default: 1024 standard, 4096 thinking)")
      .option("preset", "greedy|qwen-thinking", "decoding preset; qwen-thinking = T 0.6, top-p 0.95, top-k 20",
              "greedy")
      .option("temperature", "T", "override the preset's temperature (0 = greedy)")
      .option("top-k", "K", "override the preset's top-k (0 = off)")
      .option("top-p", "P", "override the preset's top-p")
      .option("min-p", "P", "min-p filter (0 = off)")
      .option("n-samples", "K", "samples per task (pass@k); needs sampling", "1")
      .option("seed", "S", "sampling seed (each sample derives its own)", "0")
      .option("device", "cpu|cuda|auto", "compute device", "auto")
      .option("threads", "N", "CPU threads for the runtime (0 = all cores)", "0")
      .option("max-batch", "N", "sequences decoded together (continuous batching)", "16")
      .option("kv-cache-mb", "MB",
              "model memory in MiB: K/V blocks and recurrent state slots together; sequences that do not fit wait "
              "(0 = 25% of RAM, at most 4 GiB; on a GPU what --gpu-memory-utilization leaves)",
              "0")
      .repeated("endpoint", "URL",
                "generate through this OpenAI-compatible server (vLLM, SGLang, quanteval serve) instead of the "
                "embedded runtime; repeat for several servers (prompts still rendered and tokenized here)")
      .option("served-model", "NAME",
              "the model name the endpoints serve, when it differs from --model's folder/hub name")
      .option("api-key", "KEY", "bearer token for the endpoints (default: $OPENAI_API_KEY); never written anywhere")
      .option("concurrency", "N", "requests in flight per endpoint", "8")
      .option("request-timeout", "S", "seconds one request may take before it is retried", "1800")
      .option("retries", "N", "retries of a request on 429/5xx/timeouts/connection errors/garbage", "6")
      .option("gpu-memory-utilization", "F",
              "with --device cuda and --kv-cache-mb 0: fraction of the GPU's memory to use (weights, model "
              "memory, scratch)",
              "0.9")
      .option("baseline", "RUN_DIR", "compare with this run at the end (as `quanteval compare`)")
      .option("revision", "REV", "hub revision (branch, tag or commit) when --model is a hub id");
  add_dataset_option(args);
  add_sandbox_options(args);
  args.flag("resume", "continue an interrupted run in --out").flag("quiet", "no progress line on stderr");
  if (!args.parse(argc, argv, first)) return 0;

  const auto wall_start = std::chrono::steady_clock::now();
  const std::vector<Mode> modes = modes_from(args);
  const Decoding decoding = decoding_from(args);
  const datasets::Dataset dataset = datasets::load(args.get("dataset"));
  const auto tasks = select_tasks(dataset, args);
  const bool thinking = std::find(modes.begin(), modes.end(), Mode::thinking) != modes.end();
  const EvaluatedModel model = open_evaluated_model(args.get("model"), args.maybe("revision"), thinking);

  // 1. Prepare: every prompt rendered and tokenized up front; the configuration hash covers them.
  const PromptSet prompts = prepare_prompts(tasks, modes, decoding.n_samples, model.tokenizer, model.chat_template());

  PythonChoice python;
  const sandbox::Config sandbox_cfg = sandbox_config(args, dataset, python);
  sandbox::Pool pool(sandbox_cfg);
  const TimeLimits limits = time_limits_from_args(args, dataset, pool);
  RunDirectory run(args.get("out"), run_config(model, decoding, prompts, dataset, tasks, limits, sandbox_cfg),
                   args.is_set("resume"));

  // 2. Plan: generate what has no sample yet, execute what has a sample but no verdict.
  const RunPlan plan = plan_run(prompts, read_records(run));

  // 3 + 4. Generate and execute, overlapped. The model is loaded only when something is left to generate.
  std::unique_ptr<GenerationBackend> backend;
  if (!plan.to_generate.empty()) backend = make_backend(args, model);
  RunProgress progress(plan, !args.is_set("quiet"));
  RunExecution execution(dataset, pool, limits, run, [&](const reports::SampleVerdict& v) { progress.verdict(v); });
  const GenerationOutcome generated = generate_and_execute(
      plan, backend.get(), decoding, run, execution, [&](const GenerationProgress& p) { progress.generation(p); });
  progress.finish();
  const BackendInfo backend_info = backend ? backend->info() : BackendInfo{};
  print_backend_warnings(backend_info);
  if (generated.failures > 0)
    throw std::runtime_error(
        fmt::format("{} of {} samples could not be generated (an infrastructure failure, not a model "
                    "outcome; first: {}); nothing was recorded for them: run again with --resume to generate them",
                    generated.failures, plan.to_generate.size(), generated.first_failure));

  // 5. Report: every sample of every mode, read back from what is on disk.
  const reports::RunReport report = build_run_report({
      .model = model,
      .decoding = decoding,
      .dataset = dataset,
      .prompts = prompts,
      .run = run,
      .sandbox = describe_sandbox(pool, limits, python.notes),
      .speed = generated.progress,
      .device = backend ? backend_info.device : "none this session (every sample was already generated)",
      .backend = backend_info.details,
      .batch_invariant = backend ? std::optional<bool>(backend_info.batch_invariant) : std::nullopt,
      .wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count(),
  });
  write_run_report(run.path(), report);
  print_summary(report, run.path());

  if (auto baseline = args.maybe("baseline")) {
    CompareRequest request;
    request.runs = {run.path(), *baseline};
    request.out = run.path() / "compare";
    compare_and_write(request);
  }
  return 0;
}

}  // namespace quanteval::harness
