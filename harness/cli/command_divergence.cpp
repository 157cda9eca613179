// quanteval divergence: token-level KL of a model from its baseline,
// teacher-forced on the same sequences (docs/divergence.md).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>

#include "harness/cli/command_model_common.hpp"
#include "harness/cli/commands.hpp"
#include "harness/common/files.hpp"
#include "harness/divergence/divergence.hpp"
#include "harness/run/evaluated_model.hpp"

namespace quanteval::harness {

namespace fs = std::filesystem;

namespace {

// --ids-file: a JSON list of ids, or an object whose "input_ids" is one (a fixture's reference.json).
std::vector<runtime::TokenId> read_token_ids_file(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw UsageError(fmt::format("--ids-file: cannot read {}", file.string()));
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    return (j.is_object() ? j.at("input_ids") : j).get<std::vector<runtime::TokenId>>();
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(fmt::format("--ids-file: {}: not a list of token ids or an object with input_ids ({})",
                                 file.string(), e.what()));
  }
}

constexpr const char* kHelp =
    "Both models score the same token sequences, teacher-forced: at every position each gives its full\n"
    "distribution over the next token, and quanteval reports KL(P_baseline || P_model) exactly from the two\n"
    "distributions (as llama-perplexity --kl-divergence), whether the top-1 tokens agree, and the change in\n"
    "probability of the true next token: mean KL with a bootstrap CI over tasks, median/p90/p99/max, same top-1 %,\n"
    "delta-p percentiles, per task and per region (prompt, thinking, answer).\n"
    "Sequences: HumanEval prompt + canonical solution, and with --runs the baseline run's own samples (both modes,\n"
    "thinking traces included).\n"
    "Memory: both checkpoints' weights resident, each model's K/V memory (--kv-cache-mb), and per chunk the two\n"
    "models' float logits, 2 x chunk x vocab x 4 bytes (chunk 64, vocab 151936: 78 MB), plus 2 x vocab x 8 bytes\n"
    "of double log-probabilities. No [tokens x vocab] array is ever held.\n"
    "Refused (exit 2) when the two tokenizers' id -> bytes tables differ.\n"
    "With --ids / --ids-file one given sequence is scored (tokenizers optional) and every position is written to\n"
    "OUT/positions.jsonl.\n"
    "Writes OUT/divergence.json (everything, per task) and OUT/divergence.md (tables).";

std::string mib(std::uint64_t bytes) { return fmt::format("{:.0f} MiB", static_cast<double>(bytes) / (1 << 20)); }

}  // namespace

int command_divergence(int argc, char** argv, int first) {
  Args args(
      "quanteval divergence --model DIR --baseline DIR --out DIR [--runs RUN_DIR | --ids 1,2,3 | --ids-file F] "
      "[options]",
      kHelp);
  args.option("model", "DIR|OWNER/NAME", "the checkpoint under test (A), e.g. the INT4 one")
      .option("baseline", "DIR|OWNER/NAME", "the reference checkpoint (B), e.g. BF16; its tokenizer encodes the text")
      .option("out", "DIR", "output folder (divergence.json, divergence.md)")
      .option("runs", "RUN_DIR", "also score the samples of this run directory (a run of the baseline)");
  add_task_options(args)
      .option("chunk", "N", "positions scored per forward step of each model", "64")
      .option("threads", "N", "CPU threads of each model (0 = all cores)", "0")
      .option("kv-cache-mb", "MB", "K/V memory of each model in MiB (0 = 25% of RAM, at most 4 GiB)", "0")
      .option("resamples", "N", "bootstrap resamples of tasks", "1000")
      .option("seed", "S", "bootstrap seed", "0")
      .option("worst", "N", "largest divergences listed per source, with their text", "20")
      .option("ids", "LIST", "score exactly these token ids instead (comma separated; no dataset, no tokenizer needed)")
      .option("ids-file", "FILE",
              "score the token ids of a JSON file instead: a list, or an object with \"input_ids\" (reference.json)");
  add_dataset_option(args);
  args.flag("no-canonical", "skip the prompt + canonical solution sequences (score --runs samples only)")
      .flag("positions",
            "also write OUT/positions.jsonl: every position's numbers, one line per sequence "
            "(on by default with --ids / --ids-file)")
      .flag("quiet", "no progress on stderr");
  if (!args.parse(argc, argv, first)) return 0;

  const fs::path out = args.get("out");
  const auto chunk = static_cast<std::int64_t>(args.get_int("chunk", 1, 1 << 16));
  reports::DivergenceOptions options;
  options.bootstrap_resamples = args.get_int("resamples", 100, 1 << 20);
  options.seed = static_cast<std::uint64_t>(args.get_int("seed", 0, 1 << 30));
  options.worst_positions = args.get_int("worst", 0, 1 << 20);
  const bool quiet = args.is_set("quiet");
  const auto runs = args.maybe("runs");
  if (args.is_set("no-canonical") && !runs) throw UsageError("--no-canonical leaves nothing to score without --runs");

  const bool given_ids = args.maybe("ids") || args.maybe("ids-file");
  if (given_ids && (runs || args.maybe("tasks") || args.maybe("limit")))
    throw UsageError("--ids / --ids-file score one given sequence: drop --runs, --tasks and --limit");
  if (args.maybe("ids") && args.maybe("ids-file")) throw UsageError("give --ids or --ids-file, not both");
  const bool write_positions = args.is_set("positions") || given_ids;

  // Metadata first: the vocabulary check and the sequences cost seconds, loading two models much more.
  std::vector<DivergenceSequence> sequences;
  nlohmann::ordered_json info;
  fs::path model_dir, baseline_dir;
  std::optional<runtime::Tokenizer> text_tokenizer;  // decodes the worst positions (the baseline's)
  if (given_ids) {
    DivergenceSequence s;
    s.source = "ids";
    s.task_id = args.maybe("ids-file").value_or("ids");
    s.ids = args.maybe("ids") ? parse_token_ids(args.get("ids")) : read_token_ids_file(args.get("ids-file"));
    s.regions.assign(s.ids.size(), reports::Region::prompt);
    sequences.push_back(std::move(s));
    model_dir = runtime::hub::resolve(args.get("model"), {}).directory;
    baseline_dir = runtime::hub::resolve(args.get("baseline"), {}).directory;
    const runtime::Checkpoint ca = runtime::Checkpoint::open(model_dir), cb = runtime::Checkpoint::open(baseline_dir);
    const bool ta = fs::exists(model_dir / "tokenizer.json"), tb = fs::exists(baseline_dir / "tokenizer.json");
    if (ta != tb)
      throw std::runtime_error(fmt::format("only the {} has a tokenizer.json, so the vocabularies cannot be compared",
                                           ta ? "model" : "baseline"));
    if (ta) {
      const auto a_tok = runtime::Tokenizer::from_file(model_dir);
      text_tokenizer.emplace(runtime::Tokenizer::from_file(baseline_dir));
      info["tokenizer"] =
          require_same_vocabulary(ca.config().vocab_size, a_tok, cb.config().vocab_size, *text_tokenizer);
    } else {
      if (ca.config().vocab_size != cb.config().vocab_size)
        throw std::runtime_error(fmt::format("the models' vocabularies differ: {} logits (model) vs {} (baseline)",
                                             ca.config().vocab_size, cb.config().vocab_size));
      info["tokenizer"] =
          fmt::format("no tokenizer.json beside either checkpoint: only the vocabulary size ({}) was compared",
                      ca.config().vocab_size);
    }
  } else {
    const datasets::Dataset dataset = datasets::load(args.get("dataset"));
    const auto tasks = select_tasks(dataset, args);
    const EvaluatedModel a = open_evaluated_model(args.get("model"), std::nullopt, false);
    EvaluatedModel b = open_evaluated_model(args.get("baseline"), std::nullopt, runs.has_value());
    info["tokenizer"] = require_same_vocabulary(a.checkpoint.config().vocab_size, a.tokenizer,
                                                b.checkpoint.config().vocab_size, b.tokenizer);
    info["dataset"] = {{"path", dataset.path.string()}, {"sha256", dataset.sha256}, {"tasks", tasks.size()}};
    if (!args.is_set("no-canonical")) sequences = canonical_sequences(tasks, b.tokenizer);
    if (runs) {
      RunSequences from_run = run_sequences(*runs, dataset, tasks, b.tokenizer, b.chat_template());
      if (from_run.info.value("run_weights", "") != checkpoint_identity(b.checkpoint))
        fmt::print(stderr, "note: {} was not generated by the baseline checkpoint (its weights identity differs)\n",
                   *runs);
      info["run"] = from_run.info;
      for (auto& s : from_run.sequences) sequences.push_back(std::move(s));
    }
    model_dir = a.resolved.directory;
    baseline_dir = b.resolved.directory;
    text_tokenizer.emplace(std::move(b.tokenizer));
  }

  runtime::LoadOptions load;
  load.device = runtime::Device::cpu;  // the model forward has no CUDA backend yet
  load.threads = args.get_int("threads", 0, 1024);
  load.kv_cache_bytes = static_cast<std::uint64_t>(args.get_int("kv-cache-mb", 0, 1 << 20)) << 20;
  load.max_sequences = 1;  // one sequence at a time per model
  auto model = runtime::Model::load(model_dir, load);
  auto baseline = runtime::Model::load(baseline_dir, load);
  const std::int64_t vocab = model->config().vocab_size;
  const std::uint64_t logits_bytes = 2 * static_cast<std::uint64_t>(chunk) * static_cast<std::uint64_t>(vocab) * 4;
  info["chunk"] = chunk;
  info["memory"] = {
      {"model_weights_bytes", model->resident_weight_bytes()},
      {"baseline_weights_bytes", baseline->resident_weight_bytes()},
      {"kv_bytes_each", load.kv_cache_bytes == 0 ? runtime::default_kv_cache_bytes() : load.kv_cache_bytes},
      {"chunk_logits_bytes", logits_bytes}};
  if (!quiet)
    fmt::print(stderr, "divergence: {} sequences; weights {} + {}, chunk logits {}\n", sequences.size(),
               mib(model->resident_weight_bytes()), mib(baseline->resident_weight_bytes()), mib(logits_bytes));

  const std::int64_t longest = std::min(model->max_sequence_tokens(), baseline->max_sequence_tokens());
  std::vector<reports::ScoredSequence> scored;
  std::vector<const DivergenceSequence*> scored_from;  // scored[i] came from *scored_from[i]
  nlohmann::ordered_json skipped = nlohmann::ordered_json::array();
  const auto start = std::chrono::steady_clock::now();
  std::int64_t positions = 0;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    const DivergenceSequence& s = sequences[i];
    if (static_cast<std::int64_t>(s.ids.size()) - (given_ids ? 0 : 1) > longest) {
      skipped.push_back({{"source", s.source},
                         {"task_id", s.task_id},
                         {"sample_index", s.sample_index},
                         {"tokens", s.ids.size()},
                         {"why", fmt::format("longer than the {} positions the model memory holds", longest)}});
      continue;
    }
    scored.push_back(score_sequence(*model, *baseline, s, chunk, given_ids));
    scored_from.push_back(&s);
    positions += static_cast<std::int64_t>(scored.back().positions.size());
    if (!quiet) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fmt::print(stderr, "divergence {}/{} {} {} #{}: {} positions ({:.0f} positions/s)\n", i + 1, sequences.size(),
                 s.source, s.task_id, s.sample_index, scored.back().positions.size(),
                 seconds > 0 ? static_cast<double>(positions) / seconds : 0.0);
    }
  }
  info["skipped"] = skipped;
  if (!skipped.empty())
    fmt::print(stderr, "note: {} sequences longer than the model memory were skipped (raise --kv-cache-mb)\n",
               skipped.size());
  if (positions == 0)
    throw std::runtime_error("divergence: no position to score (every sequence was skipped or empty)");

  reports::DivergenceReport report = reports::summarize_divergence(scored, options);
  if (text_tokenizer) describe_worst_positions(report, scored_from, *text_tokenizer);
  report.model = args.get("model");
  report.baseline = args.get("baseline");
  report.info = info;
  fs::create_directories(out);
  write_file_atomically(out / "divergence.json", reports::to_json(report).dump(2) + "\n");
  write_file_atomically(out / "divergence.md", reports::to_markdown(report));
  if (write_positions) {
    std::string lines;
    for (const auto& s : scored) lines += reports::positions_json(s).dump() + "\n";
    write_file_atomically(out / "positions.jsonl", lines);
  }
  for (const auto& source : report.sources)
    fmt::print("{}: mean KL {:.5f} [{:.5f}, {:.5f}] nats over {} positions, same top-1 {:.2f}%\n", source.source,
               source.all.mean_kl, source.all.mean_kl_ci.low, source.all.mean_kl_ci.high, source.all.positions,
               100 * source.all.same_top1);
  fmt::print("wrote {}/divergence.md, divergence.json{}\n", out.string(), write_positions ? ", positions.jsonl" : "");
  return 0;
}

}  // namespace quanteval::harness
