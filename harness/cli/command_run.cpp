// `quanteval run`: generate + execute + score one checkpoint in one or both
// modes, with continuous batching, generation and execution overlapped, every
// sample flushed to disk as it finishes, and --resume after a kill.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "datasets/datasets.hpp"
#include "harness/cli/commands.hpp"
#include "harness/eval/extraction.hpp"
#include "harness/eval/files.hpp"
#include "harness/cli/progress.hpp"
#include "harness/eval/run_state.hpp"
#include "harness/eval/samples.hpp"
#include "harness/eval/scoring.hpp"
#include "reports/summary/run_report.hpp"
#include "runtime/text/chat_template.hpp"
#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/platform/device.hpp"
#include "runtime/generate/generator.hpp"
#include "runtime/checkpoint/hub.hpp"
#include "runtime/model/model.hpp"
#include "runtime/text/tokenizer.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;
using reports::Status;

namespace {

struct Decoding {
  std::string preset;
  runtime::SamplingParams sampling;
  int n_samples = 1;
  int max_new_tokens_standard = 1024;
  int max_new_tokens_thinking = 4096;
};

Decoding decoding_from(const Args& args) {
  Decoding d;
  d.preset = args.get("preset");
  if (d.preset == "qwen-thinking") {
    d.sampling.temperature = 0.6f;
    d.sampling.top_p = 0.95f;
    d.sampling.top_k = 20;
  } else if (d.preset != "greedy") {
    throw UsageError(fmt::format("--preset: expected greedy or qwen-thinking, got '{}'", d.preset));
  }
  if (auto t = args.maybe("temperature")) d.sampling.temperature = static_cast<float>(args.get_double("temperature", 0, 10));
  if (args.maybe("top-p")) d.sampling.top_p = static_cast<float>(args.get_double("top-p", 0, 1));
  if (args.maybe("top-k")) d.sampling.top_k = args.get_int("top-k", 0, 1 << 20);
  if (args.maybe("min-p")) d.sampling.min_p = static_cast<float>(args.get_double("min-p", 0, 1));
  d.sampling.seed = static_cast<std::uint64_t>(args.get_int("seed", 0, 1 << 30));
  d.n_samples = args.get_int("n-samples", 1, 1000);
  if (d.n_samples > 1 && d.sampling.temperature == 0)
    throw UsageError("--n-samples > 1 with greedy decoding repeats one answer; use --preset qwen-thinking or --temperature");
  if (auto m = args.maybe("max-new-tokens")) {
    d.max_new_tokens_standard = d.max_new_tokens_thinking = args.get_int("max-new-tokens", 1, 1 << 20);
  }
  return d;
}

ordered_json decoding_json(const Decoding& d) {
  return {{"preset", d.preset},
          {"temperature", d.sampling.temperature},
          {"top_k", d.sampling.top_k},
          {"top_p", d.sampling.top_p},
          {"min_p", d.sampling.min_p},
          {"seed", d.sampling.seed},
          {"n_samples", d.n_samples},
          {"max_new_tokens_standard", d.max_new_tokens_standard},
          {"max_new_tokens_thinking", d.max_new_tokens_thinking},
          {"standard_stop", standard_stop_sequences()}};
}

std::vector<std::string> parse_modes(const std::string& text) {
  if (text == "both") return {"standard", "thinking"};
  if (text == "standard" || text == "thinking") return {text};
  throw UsageError(fmt::format("--mode: expected standard, thinking or both, got '{}'", text));
}

std::vector<const datasets::Problem*> select_tasks(const datasets::Dataset& dataset, const Args& args) {
  std::vector<const datasets::Problem*> tasks;
  if (auto list = args.maybe("tasks")) {
    std::stringstream items(*list);
    std::string item;
    while (std::getline(items, item, ',')) {
      // "3" means HumanEval/3; a full id is taken as is.
      const std::string id = item.find('/') == std::string::npos ? "HumanEval/" + item : item;
      const auto* p = dataset.find(id);
      if (!p) throw UsageError(fmt::format("--tasks: '{}' is not a task of dataset {}", item, dataset.name));
      tasks.push_back(p);
    }
  } else {
    for (const auto& p : dataset.problems) tasks.push_back(&p);
  }
  if (auto limit = args.maybe("limit")) {
    const auto n = static_cast<std::size_t>(args.get_int("limit", 1, 1 << 20));
    if (tasks.size() > n) tasks.resize(n);
  }
  return tasks;
}

// Identity of the weights without reading gigabytes: config, quantization and
// each file's safetensors header (names, dtypes, shapes, offsets) and size.
std::string checkpoint_identity(const runtime::Checkpoint& checkpoint) {
  std::string text = runtime::read_text_file(checkpoint.files().config_json);
  for (const auto& file : checkpoint.files().safetensors) {
    std::ifstream in(file, std::ios::binary);
    std::uint64_t header_length = 0;
    in.read(reinterpret_cast<char*>(&header_length), 8);
    std::string header(std::min<std::uint64_t>(header_length, 100ull << 20), '\0');
    in.read(header.data(), static_cast<std::streamsize>(header.size()));
    text += file.filename().string() + std::to_string(fs::file_size(file)) + header;
  }
  return sha256_hex(text);
}

struct PreparedSample {
  SampleKey key;
  const datasets::Problem* problem = nullptr;
  std::string prompt_text;  // what was tokenized
  std::vector<runtime::TokenId> prompt_ids;
};

// The sample's program and verdict-before-execution from its generation record.
struct Judgement {
  std::optional<Status> early;  // no_code / truncated: decided without running anything
  std::string program;
  std::string detail;
};

Judgement judge(const std::string& mode, const datasets::Problem& problem, const json& sample) {
  Judgement j;
  const std::string code = sample.value("completion", "");
  if (mode == "standard") {
    j.program = problem.prompt + code + "\n" + problem.test + "\n" + "check(" + problem.entry_point + ")";
    return j;
  }
  if (!sample.value("thinking_closed", true) && sample.value("finish_reason", "") == "length") {
    j.early = Status::truncated;
    j.detail = "token budget spent inside <think>";
    return j;
  }
  if (code.empty()) {
    j.early = sample.value("finish_reason", "") == "length" ? Status::truncated : Status::no_code;
    j.detail = j.early == Status::truncated ? "token budget spent before any code" : "no code found in the answer";
    return j;
  }
  j.program = missing_prompt_imports(problem.prompt, code) + code + "\n" + problem.test + "\n" + "check(" +
              problem.entry_point + ")";
  return j;
}

// A seed per sample from the run's seed and the sample's identity (stable
// across machines and library versions, unlike std::hash).
std::uint64_t sample_seed(std::uint64_t run_seed, const SampleKey& key) {
  return std::stoull(sha256_hex(fmt::format("{}:{}", run_seed, key.text())).substr(0, 16), nullptr, 16);
}

}  // namespace

int command_run(int argc, char** argv, int first) {
  Args args("quanteval run --model DIR|OWNER/NAME[@REV] --out DIR [options]",
            "Generates completions for HumanEval with the embedded runtime, executes each in the sandbox as soon as\n"
            "it is ready, and scores the checkpoint. Modes: standard (raw prompt, lm-evaluation-harness stop\n"
            "sequences, program = prompt + completion) and thinking (the model's chat template with enable_thinking,\n"
            "code = last fenced Python block after </think>). Every sample is flushed to DIR as it finishes;\n"
            "--resume continues a killed run without redoing or duplicating samples.");
  args.option("model", "DIR|OWNER/NAME[@REV]", "checkpoint folder or Hugging Face Hub id")
      .option("out", "DIR", "run directory (samples.jsonl, results.jsonl, report.json/md/html)")
      .option("mode", "standard|thinking|both", "evaluation mode(s)", "both")
      .option("limit", "N", "only the first N tasks")
      .option("tasks", "LIST", "only these tasks: ids or numbers, comma-separated (e.g. 0,5,HumanEval/7)")
      .option("max-new-tokens", "N", "token budget per sample (default: 1024 standard, 4096 thinking)")
      .option("preset", "greedy|qwen-thinking", "decoding preset; qwen-thinking = T 0.6, top-p 0.95, top-k 20", "greedy")
      .option("temperature", "T", "override the preset's temperature (0 = greedy)")
      .option("top-k", "K", "override the preset's top-k (0 = off)")
      .option("top-p", "P", "override the preset's top-p")
      .option("min-p", "P", "min-p filter (0 = off)")
      .option("n-samples", "K", "samples per task (pass@k); needs sampling", "1")
      .option("seed", "S", "sampling seed (each sample derives its own)", "0")
      .option("device", "cpu|cuda|auto", "compute device", "auto")
      .option("threads", "N", "CPU threads for the runtime (0 = all cores)", "0")
      .option("max-batch", "N", "sequences decoded together (continuous batching)", "16")
      .option("baseline", "RUN_DIR", "compare with this run at the end (as `quanteval compare`)")
      .option("revision", "REV", "hub revision (branch, tag or commit) when --model is a hub id");
  add_dataset_option(args);
  add_sandbox_options(args);
  args.flag("resume", "continue an interrupted run in --out").flag("quiet", "no progress line on stderr");
  if (!args.parse(argc, argv, first)) return 0;

  const auto wall_start = std::chrono::steady_clock::now();
  const auto modes = parse_modes(args.get("mode"));
  const Decoding decoding = decoding_from(args);
  const datasets::Dataset dataset = datasets::load(args.get("dataset"));
  const auto tasks = select_tasks(dataset, args);

  runtime::hub::Options hub_options;
  if (auto rev = args.maybe("revision")) hub_options.revision = *rev;
  const auto resolved = runtime::hub::resolve(args.get("model"), hub_options);
  const auto checkpoint = runtime::Checkpoint::open(resolved.directory);
  checkpoint.validate();
  const auto summary = checkpoint.summary();
  if (!fs::exists(resolved.directory / "tokenizer.json"))
    throw std::runtime_error(fmt::format("{}: no tokenizer.json; `run` needs the model's tokenizer (and, for thinking "
                                         "mode, its chat template) beside the weights",
                                         resolved.directory.string()));
  const auto tokenizer = runtime::Tokenizer::from_file(resolved.directory);
  std::optional<runtime::ChatTemplate> chat;
  std::string template_hash;
  if (std::find(modes.begin(), modes.end(), "thinking") != modes.end()) {
    const auto source = runtime::load_chat_template_source(resolved.directory);
    template_hash = sha256_hex(source.source);
    chat.emplace(runtime::ChatTemplate::from_model_dir(resolved.directory));
  }

  // Every prompt, tokenized up front: the configuration hash covers them.
  std::vector<PreparedSample> prepared;
  std::map<std::string, std::string> prompt_hash_by_mode;
  for (const auto& mode : modes) {
    std::string all_prompts;
    for (const auto* problem : tasks) {
      std::string text;
      if (mode == "standard") {
        text = problem->prompt;
      } else {
        nlohmann::ordered_json messages = nlohmann::ordered_json::array(
            {{{"role", "user"}, {"content", thinking_user_message(problem->prompt)}}});
        runtime::ChatOptions options;
        options.enable_thinking = true;
        text = chat->render_chat(messages, options);
      }
      all_prompts += text;
      auto ids = tokenizer.encode(text);
      for (int i = 0; i < decoding.n_samples; ++i) prepared.push_back({{mode, problem->task_id, i}, problem, text, ids});
    }
    prompt_hash_by_mode[mode] = sha256_hex(all_prompts);
  }

  PythonChoice python;
  sandbox::Config sandbox_cfg = sandbox_config(args, dataset, python);
  sandbox::Pool pool(sandbox_cfg);
  const TimeLimits limits = time_limits_from_args(args, dataset, pool);

  ordered_json config;
  config["model"] = resolved.id.empty() ? fs::absolute(resolved.directory).string() : resolved.id;
  config["model_commit"] = resolved.commit;
  config["weights"] = checkpoint_identity(checkpoint);
  config["decoding"] = decoding_json(decoding);
  config["modes"] = modes;
  config["prompts"] = prompt_hash_by_mode;
  config["chat_template"] = template_hash;
  config["dataset"] = dataset.sha256;
  ordered_json task_ids = ordered_json::array();
  for (const auto* t : tasks) task_ids.push_back(t->task_id);
  config["tasks"] = task_ids;
  config["sandbox"] = {{"time_limit", limits.rule}, {"memory_bytes", sandbox_cfg.limits.address_space_bytes}};
  RunDirectory run(args.get("out"), config, args.is_set("resume"));

  // What is left: generate the ungenerated, execute the generated-but-unscored.
  std::vector<const PreparedSample*> to_generate;
  std::vector<const PreparedSample*> to_execute;
  for (const auto& p : prepared) {
    if (run.results().count(p.key)) continue;
    if (run.samples().count(p.key)) to_execute.push_back(&p);
    else to_generate.push_back(&p);
  }

  runtime::LoadOptions load;
  load.device = runtime::select_device(args.get("device"));
  load.threads = args.get_int("threads", 0, 1024);
  std::unique_ptr<runtime::Model> model;
  if (!to_generate.empty()) model = runtime::Model::load(resolved.directory, load);

  const std::size_t total = prepared.size();
  std::atomic<std::size_t> done{run.results().size()}, passed{0};
  for (const auto& [key, r] : run.results()) passed += r.value("passed", false) ? 1 : 0;
  Progress bar("run", total, !args.is_set("quiet"));
  std::string speed_text;
  std::mutex speed_mutex;

  // Execution runs beside generation: a queue of programs and one thread per
  // sandbox worker, so verdicts arrive while the model is still decoding.
  std::mutex queue_mutex;
  std::condition_variable queue_ready;
  std::deque<std::pair<SampleKey, json>> queue;
  bool generation_finished = false;
  std::exception_ptr execution_error;
  auto record_result = [&](const SampleKey& key, const reports::SampleVerdict& verdict) {
    ordered_json line;
    line["mode"] = key.mode;
    const ordered_json fields = reports::to_json(verdict);
    for (const auto& [field, value] : fields.items()) line[field] = value;
    run.append_result(line);
    ++done;
    if (verdict.status == Status::passed) ++passed;
    std::lock_guard lock(speed_mutex);
    bar.update(done, passed, speed_text);
  };
  auto execute = [&](const SampleKey& key, const json& sample) {
    const auto* problem = dataset.find(key.task_id);
    const Judgement j = judge(key.mode, *problem, sample);
    if (j.early) {
      reports::SampleVerdict verdict;
      verdict.task_id = key.task_id;
      verdict.sample_index = key.sample_index;
      verdict.status = *j.early;
      verdict.detail = j.detail;
      return record_result(key, verdict);
    }
    sandbox::Limits task_limits = sandbox_cfg.limits;
    task_limits.wall_seconds = limits.for_task(key.task_id);
    const auto r = pool.run(j.program, &task_limits);
    record_result(key, to_verdict(key.task_id, key.sample_index, r, task_limits));
  };
  std::vector<std::thread> executors;
  for (int w = 0; w < sandbox_cfg.workers; ++w)
    executors.emplace_back([&] {
      for (;;) {
        std::pair<SampleKey, json> item;
        {
          std::unique_lock lock(queue_mutex);
          queue_ready.wait(lock, [&] { return !queue.empty() || generation_finished; });
          if (queue.empty()) return;
          item = std::move(queue.front());
          queue.pop_front();
        }
        try {
          execute(item.first, item.second);
        } catch (...) {
          std::lock_guard lock(queue_mutex);
          if (!execution_error) execution_error = std::current_exception();
        }
      }
    });
  auto enqueue = [&](const SampleKey& key, json sample) {
    {
      std::lock_guard lock(queue_mutex);
      queue.emplace_back(key, std::move(sample));
    }
    queue_ready.notify_one();
  };
  for (const auto* p : to_execute) enqueue(p->key, run.samples().at(p->key));

  double prefill_tok_s = 0, decode_tok_s = 0;
  std::exception_ptr generation_error;
  if (!to_generate.empty()) {
    try {
      runtime::GeneratorOptions gen_options;
      gen_options.max_batch = args.get_int("max-batch", 1, 4096);
      runtime::Generator generator(*model, tokenizer, gen_options);
      std::map<std::uint64_t, const PreparedSample*> by_id;
      std::uint64_t next_id = 0;
      for (const auto* p : to_generate) {
        runtime::GenerationRequest request;
        request.id = next_id++;
        request.prompt = p->prompt_ids;
        request.max_new_tokens = p->key.mode == "standard" ? decoding.max_new_tokens_standard : decoding.max_new_tokens_thinking;
        request.sampling = decoding.sampling;
        // Each sample has its own stream of random numbers, independent of batching order.
        request.sampling.seed = sample_seed(decoding.sampling.seed, p->key);
        if (p->key.mode == "standard") request.stop_strings = standard_stop_sequences();
        by_id[request.id] = p;
        generator.submit(std::move(request));
      }
      generator.run(
          [&](runtime::GenerationResult result) {
            const PreparedSample& p = *by_id.at(result.id);
            ordered_json line;
            line["mode"] = p.key.mode;
            line["task_id"] = p.key.task_id;
            line["sample_index"] = p.key.sample_index;
            line["prompt_tokens"] = result.prompt_tokens;
            line["generated_tokens"] = result.tokens.size();
            line["finish_reason"] = runtime::to_string(result.finish);
            line["raw_output"] = result.text;
            if (p.key.mode == "standard") {
              line["completion"] = cut_at_stop_sequence(result.text);
              line["extraction_rule"] = "prompt_continuation";
            } else {
              const auto e = extract_thinking_answer(result.text, prompt_opens_thinking(p.prompt_text));
              line["completion"] = e.code;
              line["extraction_rule"] = to_string(e.rule);
              line["thinking_closed"] = e.thinking_closed;
            }
            run.append_sample(line);
            enqueue(p.key, json(line));
          },
          [&](const runtime::GeneratorStats& stats) {
            prefill_tok_s = stats.prefill_tok_s;
            decode_tok_s = stats.decode_tok_s;
            std::lock_guard lock(speed_mutex);
            speed_text = fmt::format("gen {}/{} active {} decode {:.1f} tok/s", stats.finished, to_generate.size(),
                                     stats.active, stats.decode_tok_s);
            bar.update(done, passed, speed_text);
          });
    } catch (...) {
      generation_error = std::current_exception();
    }
  }
  {
    std::lock_guard lock(queue_mutex);
    generation_finished = true;
  }
  queue_ready.notify_all();
  for (auto& t : executors) t.join();
  bar.finish();
  if (generation_error) std::rethrow_exception(generation_error);
  if (execution_error) std::rethrow_exception(execution_error);

  // The report: every sample of every mode, read back from what is on disk.
  reports::RunReport report;
  report.tool_version = tool_version();
  report.created_utc = utc_timestamp();
  report.config_hash = run.config_hash();
  report.resumed = run.resumed();
  report.model.id = args.get("model");
  report.model.path = resolved.directory.string();
  report.model.revision = resolved.revision;
  report.model.commit = resolved.commit;
  report.model.architecture = std::string(runtime::architecture_name(checkpoint.config().architecture));
  report.model.quantization = checkpoint.quant_config() ? checkpoint.quant_config()->describe()
                                                        : (checkpoint.config().torch_dtype.empty() ? "dense" : checkpoint.config().torch_dtype);
  report.model.bits_per_weight = summary.bits_per_weight;
  report.model.parameters = summary.parameter_count;
  report.model.size_bytes = summary.size_on_disk;
  report.decoding = decoding_json(decoding);
  report.chat_template_hash = template_hash;
  report.dataset = {dataset.name, dataset.path.string(), dataset.sha256, dataset.verified, dataset.problems.size(),
                    dataset.manifest ? dataset.manifest->notes : std::vector<std::string>{}};
  report.sandbox = describe_sandbox(pool, limits);
  for (const auto& note : python.notes) report.sandbox.notes.push_back(note);
  for (const auto& mode : modes) {
    reports::ModeReport m;
    m.name = mode;
    m.prompt_hash = prompt_hash_by_mode[mode];
    for (const auto& p : prepared) {
      if (p.key.mode != mode) continue;
      const json& r = run.results().at(p.key);
      const json& s = run.samples().at(p.key);
      reports::SampleVerdict v;
      v.task_id = p.key.task_id;
      v.sample_index = p.key.sample_index;
      v.status = *reports::parse_status(r.at("status").get<std::string>());
      v.duration_seconds = r.value("duration_s", 0.0);
      v.detail = r.value("detail", "");
      v.attempts = r.value("attempts", 1);
      m.verdicts.push_back(v);
      m.prompt_tokens += s.value("prompt_tokens", 0);
      m.generated_tokens += s.value("generated_tokens", 0);
      if (mode == "thinking") ++m.extraction_rules[s.value("extraction_rule", "none")];
    }
    report.modes.push_back(std::move(m));
  }
  report.prefill_tokens_per_second = prefill_tok_s;
  report.decode_tokens_per_second = decode_tok_s;
  report.device = !model ? std::string("none this session (every sample was already generated)")
                 : load.device == runtime::Device::cuda ? std::string("cuda")
                                                        : model->backend().name();
  report.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  const fs::path out = run.path();
  write_file_atomically(out / "report.json", reports::to_json(report).dump(2) + "\n");
  write_file_atomically(out / "report.md", reports::to_markdown(report));
  write_file_atomically(out / "report.html", reports::to_html(report));
  for (const auto& m : report.modes) {
    const auto s = reports::summarize(m.verdicts);
    fmt::print("{}: pass@1 {:.2f}% [{:.2f}, {:.2f}] over {} tasks\n", m.name, 100 * (s.pass_at_k.count(1) ? s.pass_at_k.at(1) : 0.0),
               100 * s.pass_at_1_interval.low, 100 * s.pass_at_1_interval.high, s.tasks.size());
  }
  fmt::print("wrote {}/report.md, report.json, report.html\n", out.string());
  if (auto baseline = args.maybe("baseline")) {
    std::vector<std::string> compare_args = {"quanteval", "compare", out.string(), *baseline, "--out", (out / "compare").string()};
    std::vector<char*> cargv;
    for (auto& a : compare_args) cargv.push_back(a.data());
    return command_compare(static_cast<int>(cargv.size()), cargv.data(), 2);
  }
  return 0;
}

}  // namespace quanteval::harness
