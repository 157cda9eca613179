#include "harness/divergence/divergence.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <stdexcept>
#include <tuple>

#include "harness/prompts/prompts.hpp"
#include "harness/run/generation_record.hpp"

namespace quanteval::harness {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;
using reports::Region;

namespace {

void append(DivergenceSequence& s, const std::vector<runtime::TokenId>& ids, Region region) {
  s.ids.insert(s.ids.end(), ids.begin(), ids.end());
  s.regions.insert(s.regions.end(), ids.size(), region);
}

json read_json_file(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot read (is this a run directory?)", file.string()));
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", file.string(), e.what()));
  }
}

}  // namespace

std::vector<DivergenceSequence> canonical_sequences(const std::vector<const datasets::Problem*>& tasks,
                                                    const runtime::Tokenizer& tokenizer) {
  std::vector<DivergenceSequence> out;
  for (const auto* problem : tasks) {
    DivergenceSequence s;
    s.source = "canonical";
    s.task_id = problem->task_id;
    const std::vector<runtime::TokenId> prompt = tokenizer.encode(problem->prompt);
    s.ids = tokenizer.encode(problem->prompt + problem->canonical_solution);
    // BPE may merge across the seam (a prompt ending in spaces, a solution
    // starting with them): the prompt region is the prefix both encodings share.
    const auto shared = static_cast<std::size_t>(
        std::mismatch(prompt.begin(), prompt.end(), s.ids.begin(), s.ids.end()).first - prompt.begin());
    s.regions.assign(s.ids.size(), Region::answer);
    std::fill_n(s.regions.begin(), shared, Region::prompt);
    out.push_back(std::move(s));
  }
  return out;
}

RunSequences run_sequences(const fs::path& run_dir, const datasets::Dataset& dataset,
                           const std::vector<const datasets::Problem*>& tasks, const runtime::Tokenizer& tokenizer,
                           const runtime::ChatTemplate* chat) {
  const fs::path run_file = run_dir / "run.json";
  const json run = read_json_file(run_file);
  const json config = run.value("config", json::object());
  if (!config.contains("modes") || !config.contains("prompts") || !config.contains("tasks"))
    throw std::runtime_error(fmt::format("{}: no config.modes / config.prompts / config.tasks", run_file.string()));
  if (config.value("dataset", "") != dataset.sha256)
    throw std::runtime_error(fmt::format("{}: the run used dataset {} but --dataset is {} ({}); pass the run's dataset",
                                         run_file.string(), config.value("dataset", "?"), dataset.path.string(),
                                         dataset.sha256));

  // The run's prompts, re-rendered over all of its tasks (the stored hash is
  // over all of them, in the run's order), then checked.
  std::vector<const datasets::Problem*> run_tasks;
  for (const auto& id : config.at("tasks")) {
    const auto* problem = dataset.find(id.get<std::string>());
    if (!problem)
      throw std::runtime_error(fmt::format("{}: task {} is not in the dataset", run_file.string(), id.dump()));
    run_tasks.push_back(problem);
  }
  std::vector<Mode> modes;
  for (const auto& name : config.at("modes")) {
    const auto mode = parse_mode(name.get<std::string>());
    if (!mode) throw std::runtime_error(fmt::format("{}: unknown mode {}", run_file.string(), name.dump()));
    modes.push_back(*mode);
  }
  const bool thinking = std::find(modes.begin(), modes.end(), Mode::thinking) != modes.end();
  if (thinking && !chat)
    throw std::runtime_error(
        fmt::format("{}: the run has thinking samples; the baseline needs a chat template", run_file.string()));
  const PromptSet prompts = prepare_prompts(run_tasks, modes, 1, tokenizer, chat);
  RunSequences result;
  result.info["run"] = fs::absolute(run_dir).string();
  result.info["run_model"] = config.value("model", "");
  result.info["run_weights"] = config.value("weights", "");
  for (const Mode mode : modes) {
    const std::string name(to_string(mode));
    const std::string stored = config.at("prompts").value(name, "");
    if (stored != prompts.sha256_by_mode.at(mode))
      throw std::runtime_error(fmt::format(
          "{}: the {} prompts rendered with the baseline's tokenizer and chat template hash to {}, the run's to {}: "
          "the run was not made with this baseline's template (or with another dataset)",
          run_file.string(), name, prompts.sha256_by_mode.at(mode), stored));
    result.info["prompts_sha256"][name] = stored;
  }
  std::map<std::pair<Mode, std::string>, const PreparedPrompt*> prompt_of;
  for (const auto& p : prompts.prompts) prompt_of[{p.mode, p.problem->task_id}] = &p;

  // samples.jsonl, read only (a half-written last line of a killed run is skipped, as --resume would repair it).
  const fs::path samples_file = run_dir / "samples.jsonl";
  std::ifstream in(samples_file);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot read", samples_file.string()));
  std::map<std::tuple<Mode, std::string, int>, GenerationRecord> records;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    json parsed;
    try {
      parsed = json::parse(line);
    } catch (const json::exception&) {
      if (in.peek() == EOF) break;  // the torn last line of an interrupted run
      throw std::runtime_error(fmt::format("{}:{}: not JSON", samples_file.string(), number));
    }
    GenerationRecord r = generation_record_from_json(parsed, fmt::format("{}:{}", samples_file.string(), number));
    records.emplace(std::tuple{r.mode, r.task_id, r.sample_index}, std::move(r));
  }

  std::map<std::string, int> per_mode;
  for (const Mode mode : modes)
    for (const auto* task : tasks) {
      const auto it = prompt_of.find({mode, task->task_id});
      if (it == prompt_of.end())
        throw std::runtime_error(
            fmt::format("{}: --tasks asks for {}, which the run did not evaluate", run_file.string(), task->task_id));
      for (auto record = records.lower_bound({mode, task->task_id, std::numeric_limits<int>::min()});
           record != records.end() && std::get<0>(record->first) == mode && std::get<1>(record->first) == task->task_id;
           ++record) {
        const GenerationRecord& r = record->second;
        DivergenceSequence s;
        s.source = std::string(to_string(mode));
        s.task_id = r.task_id;
        s.sample_index = r.sample_index;
        append(s, it->second->ids, Region::prompt);
        if (mode == Mode::standard) {
          append(s, tokenizer.encode(r.raw_output), Region::answer);
        } else {
          // As extraction reads it: the answer follows the last </think>; without
          // one the whole output is thinking when the block never closed.
          const std::string_view close = "</think>";
          const auto at = r.raw_output.rfind(close);
          if (at == std::string::npos) {
            append(s, tokenizer.encode(r.raw_output), r.thinking_closed ? Region::answer : Region::thinking);
          } else {
            const std::size_t end = at + close.size();
            append(s, tokenizer.encode(std::string_view(r.raw_output).substr(0, end)), Region::thinking);
            append(s, tokenizer.encode(std::string_view(r.raw_output).substr(end)), Region::answer);
          }
        }
        ++per_mode[s.source];
        result.sequences.push_back(std::move(s));
      }
    }
  for (const auto& [mode, count] : per_mode) result.info["samples"][mode] = count;
  return result;
}

std::string require_same_vocabulary(std::int64_t model_vocab, const runtime::Tokenizer& model_tokenizer,
                                    std::int64_t baseline_vocab, const runtime::Tokenizer& baseline_tokenizer) {
  const std::int64_t vocab = model_vocab;
  if (vocab != baseline_vocab)
    throw std::runtime_error(
        fmt::format("the models' vocabularies differ: {} logits (model) vs {} (baseline)", vocab, baseline_vocab));
  std::int64_t used = 0;
  for (std::int64_t i = 0; i < vocab; ++i) {
    const auto id = static_cast<runtime::TokenId>(i);
    const bool in_a = model_tokenizer.contains(id), in_b = baseline_tokenizer.contains(id);
    if (in_a != in_b)
      throw std::runtime_error(fmt::format("the models' tokenizers differ: id {} is a token of the {} only", id,
                                           in_a ? "model" : "baseline"));
    if (!in_a) continue;
    ++used;
    if (model_tokenizer.token_bytes(id) != baseline_tokenizer.token_bytes(id) ||
        model_tokenizer.is_special(id) != baseline_tokenizer.is_special(id))
      throw std::runtime_error(fmt::format("the models' tokenizers differ at id {}: {} (model) vs {} (baseline)", id,
                                           json(model_tokenizer.id_to_token(id)).dump(),
                                           json(baseline_tokenizer.id_to_token(id)).dump()));
  }
  return fmt::format("same id -> bytes table and special flags for all {} tokens of the {}-logit vocabulary", used,
                     vocab);
}

reports::ScoredSequence score_sequence(runtime::Model& model, runtime::Model& baseline,
                                       const DivergenceSequence& sequence, std::int64_t chunk_tokens, bool score_last) {
  if (sequence.ids.size() != sequence.regions.size())
    throw std::logic_error(
        fmt::format("divergence: {} ids but {} regions", sequence.ids.size(), sequence.regions.size()));
  reports::ScoredSequence scored;
  scored.source = sequence.source;
  scored.task_id = sequence.task_id;
  scored.sample_index = sequence.sample_index;
  const std::size_t scored_rows =
      score_last ? sequence.ids.size() : sequence.ids.size() - std::min<std::size_t>(1, sequence.ids.size());
  if (scored_rows == 0) return scored;  // nothing is predicted
  const std::span<const runtime::TokenId> inputs(sequence.ids.data(), scored_rows);
  const std::int64_t vocab = model.config().vocab_size;
  runtime::TeacherForcedLogits a(model, inputs, chunk_tokens), b(baseline, inputs, chunk_tokens);
  scored.positions.reserve(inputs.size());
  std::vector<std::int64_t> next;
  while (!a.done()) {
    const std::int64_t first = a.next_position();
    const std::vector<float> logits_a = a.next_chunk(), logits_b = b.next_chunk();
    const auto rows = static_cast<std::int64_t>(logits_a.size()) / vocab;
    next.clear();
    for (std::int64_t r = 0; r < rows; ++r) {
      const auto at = static_cast<std::size_t>(first + r + 1);
      next.push_back(at < sequence.ids.size() ? sequence.ids[at] : reports::kNoNextToken);
    }
    reports::append_position_divergences(logits_a, logits_b, vocab, next, scored.positions);
  }
  // Position t's region is its predicted token's; the last one (no token) keeps its own.
  for (std::size_t t = 0; t < scored_rows; ++t)
    scored.regions.push_back(sequence.regions[std::min(t + 1, sequence.regions.size() - 1)]);
  return scored;
}

void describe_worst_positions(reports::DivergenceReport& report, const std::vector<const DivergenceSequence*>& scored,
                              const runtime::Tokenizer& tokenizer) {
  const auto text = [&](std::span<const runtime::TokenId> ids) {
    for (const auto id : ids)
      if (!tokenizer.contains(id)) return fmt::format("<id {}>", id);
    return tokenizer.decode(ids);
  };
  for (auto& source : report.sources)
    for (auto& w : source.worst) {
      const DivergenceSequence& s = *scored.at(w.sequence);
      const auto at = static_cast<std::size_t>(w.position);
      const std::size_t from = at >= 15 ? at - 15 : 0;
      w.context = text(std::span<const runtime::TokenId>(s.ids).subspan(from, at + 1 - from));
      w.next = at + 1 < s.ids.size() ? text(std::span<const runtime::TokenId>(s.ids).subspan(at + 1, 1)) : "";
      const auto top_a = static_cast<runtime::TokenId>(w.divergence.top1_a);
      const auto top_b = static_cast<runtime::TokenId>(w.divergence.top1_b);
      w.top1_a = text(std::span<const runtime::TokenId>(&top_a, 1));
      w.top1_b = text(std::span<const runtime::TokenId>(&top_b, 1));
    }
}

}  // namespace quanteval::harness
