// Token-level divergence end to end: our runtime's logits through
// reports/divergence against KL computed by an independent Python script
// (divergence_reference.py) from the transformers logits of the fixture pairs;
// the harness's pairing of two models on one sequence against the plain
// reference path; the sequences (regions) and the CLI.
//
// Tolerance (derived, per position). Let L be our logits of a row and R the
// transformers (or reference-path) logits, δ = L - R, range(δ) = max δ - min δ.
// log-softmax moves each entry by δ_i - E[δ], so by at most range(δ). Writing
// KL_L - KL_R as a change of A, then of B (ℓ = log p, r = ℓ_B - ℓ_A of R):
//   change of A: -Σ p_B Δℓ_A                    |.| <= range(δ_A)           (exact)
//   change of B: Σ p_B' Δℓ_B + Σ (p_B' - p_B) r, where the first is KL(B'‖B) in
//                [0, range(δ_B)] and p_B' = p_B e^{Δℓ_B}, so the second is at most
//                (e^{range(δ_B)} - 1) E_{p_B}|r|.
// So |KL_L - KL_R| <= range(δ_A) + range(δ_B) + (e^{range(δ_B)} - 1) E_{p_B}|r|,
// plus 1e-9 for float -> double and the two summation orders. Our logits are
// ~1e-6 to 1e-3 relative L2 from transformers, so on these pairs (KL ~ 1 nat,
// logits ~ 10) the bound is ~1e-4 .. 1e-2 nats while a wrong direction, a
// missing normalization or a row off by one changes KL by O(1).
// Δp: p' = p e^{Δℓ}, so |Δp_L - Δp_R| <= (e^{range(δ_A)} - 1) p_A + (e^{range(δ_B)} - 1) p_B.
//
// The fixture pairs were generated with different input_ids (reference.json),
// so that comparison scores each model on its own prompt: it checks our logits
// and the KL arithmetic against an outside computation, row by row. The
// same-sequence pairing is checked against the reference path below.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "harness/divergence/divergence.hpp"
#include "harness/prompts/prompts.hpp"
#include "reports/reports.hpp"
#include "runtime/runtime.hpp"
#include "tests/model/model_test_support.hpp"
#include "tests/support/test_data.hpp"

using namespace quanteval;
using quanteval::test::ModelReference;
namespace fs = std::filesystem;

namespace {

struct Pair {
  std::string model, baseline;  // A (GPTQ), B (16-bit)
};
const std::vector<Pair> kPairs = {{"qwen2-tiny-gptq-g64-actorder-fp16", "qwen2-tiny-bf16"},
                                  {"qwen3-tiny-gptq-g64-actorder", "qwen3-tiny-bf16"},
                                  {"qwen3_5-tiny-gptq-g64-actorder", "qwen3_5-tiny-bf16"}};

std::string run_command(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[65536];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
  REQUIRE(::pclose(pipe) == 0);
  return out;
}

// The Python script's numbers for a fixture pair.
nlohmann::json python_divergence(const Pair& pair) {
  return nlohmann::json::parse(run_command(fmt::format("'{}' '{}' '{}' '{}'", test::python(), QUANTEVAL_DIVERGENCE_PY,
                                                       test::fixture("models/" + pair.model).string(),
                                                       test::fixture("models/" + pair.baseline).string())));
}

double range_of_difference(const float* ours, const float* truth, std::int64_t n) {
  double low = INFINITY, high = -INFINITY;
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(ours[i]) - truth[i];
    low = std::min(low, d);
    high = std::max(high, d);
  }
  return high - low;
}

std::vector<double> probabilities(const float* row, std::int64_t n) {
  double top = -INFINITY, sum = 0;
  for (std::int64_t i = 0; i < n; ++i) top = std::max(top, static_cast<double>(row[i]));
  std::vector<double> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) sum += p[static_cast<std::size_t>(i)] = std::exp(row[i] - top);
  for (double& v : p) v /= sum;
  return p;
}

// Smallest gap between the largest logit and any other: the top-1 cannot move
// under a perturbation of range below it.
double top1_margin(const float* row, std::int64_t n) {
  float first = -INFINITY, second = -INFINITY;
  for (std::int64_t i = 0; i < n; ++i)
    if (row[i] > first) {
      second = first;
      first = row[i];
    } else if (row[i] > second) {
      second = row[i];
    }
  return static_cast<double>(first) - second;
}

// All T rows of a model on its ids, through chunked teacher forcing (chunk 5).
std::vector<float> chunked_logits(runtime::Model& model, std::span<const runtime::TokenId> ids, std::int64_t chunk) {
  runtime::TeacherForcedLogits scorer(model, ids, chunk);
  std::vector<float> all;
  while (!scorer.done()) {
    const std::vector<float> logits = scorer.next_chunk();
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

}  // namespace

TEST_CASE("per-position KL, top-1 and delta p agree with Python on the transformers logits of every fixture pair") {
  for (const auto& pair : kPairs) {
    CAPTURE(pair.model);
    const ModelReference a = test::load_model_reference(pair.model), b = test::load_model_reference(pair.baseline);
    REQUIRE(a.vocab == b.vocab);
    REQUIRE(a.tokens == b.tokens);
    const nlohmann::json truth = python_divergence(pair);
    auto model_a = runtime::Model::load(a.dir, {.threads = 2, .kv_cache_bytes = 64ull << 20});
    auto model_b = runtime::Model::load(b.dir, {.threads = 2, .kv_cache_bytes = 64ull << 20});
    const std::vector<float> ours_a = chunked_logits(*model_a, a.input_ids, 5);
    const std::vector<float> ours_b = chunked_logits(*model_b, b.input_ids, 5);
    std::vector<std::int64_t> next;
    for (std::int64_t t = 0; t < b.tokens; ++t)
      next.push_back(b.input_ids[static_cast<std::size_t>((t + 1) % b.tokens)]);
    std::vector<reports::PositionDivergence> ours;
    reports::append_position_divergences(ours_a, ours_b, a.vocab, next, ours);
    REQUIRE(ours.size() == truth.at("kl").size());

    double worst = 0, worst_tolerance = 0, tolerance_total = 0, ours_total = 0;
    int top1_checked = 0;
    for (std::size_t t = 0; t < ours.size(); ++t) {
      CAPTURE(t);
      const auto at = static_cast<std::int64_t>(t) * a.vocab;
      const double range_a = range_of_difference(ours_a.data() + at, a.logits.data() + at, a.vocab);
      const double range_b = range_of_difference(ours_b.data() + at, b.logits.data() + at, b.vocab);
      const double kl = truth.at("kl")[t].get<double>();
      const double tolerance =
          range_a + range_b + std::expm1(range_b) * truth.at("mean_abs_log_ratio")[t].get<double>() + 1e-9;
      CHECK(kl > 0.05);  // the pair really differs, so the check below can fail
      CHECK(std::abs(ours[t].kl - kl) <= tolerance);
      worst = std::max(worst, std::abs(ours[t].kl - kl));
      worst_tolerance = std::max(worst_tolerance, tolerance);
      tolerance_total += tolerance;
      ours_total += ours[t].kl;

      const auto p_a = probabilities(a.logits.data() + at, a.vocab), p_b = probabilities(b.logits.data() + at, b.vocab);
      const auto n = static_cast<std::size_t>(next[t]);
      CHECK(std::abs(ours[t].delta_p - truth.at("delta_p")[t].get<double>()) <=
            std::expm1(range_a) * p_a[n] + std::expm1(range_b) * p_b[n] + 1e-9);
      if (top1_margin(a.logits.data() + at, a.vocab) > range_a &&
          top1_margin(b.logits.data() + at, b.vocab) > range_b) {
        CHECK(ours[t].same_top1 == truth.at("same_top1")[t].get<bool>());
        ++top1_checked;
      }
    }
    const double mean = ours_total / static_cast<double>(ours.size());
    CHECK(std::abs(mean - truth.at("mean_kl").get<double>()) <= tolerance_total / static_cast<double>(ours.size()));
    CHECK(top1_checked > 0);
    MESSAGE(
        fmt::format("{} vs {}: mean KL ours {:.6f}, Python {:.6f}; worst |ΔKL| {:.2e} (worst tolerance {:.2e}); "
                    "top-1 checked at {} of {} positions",
                    pair.model, pair.baseline, mean, truth.at("mean_kl").get<double>(), worst, worst_tolerance,
                    top1_checked, ours.size()));
  }
}

TEST_CASE("score_sequence pairs both models on one sequence: next tokens, regions and the reference path") {
  for (const auto& pair : kPairs) {
    CAPTURE(pair.model);
    const ModelReference b = test::load_model_reference(pair.baseline);
    auto model_a =
        runtime::Model::load(test::fixture("models/" + pair.model), {.threads = 2, .kv_cache_bytes = 64ull << 20});
    auto model_b = runtime::Model::load(b.dir, {.threads = 2, .kv_cache_bytes = 64ull << 20});
    harness::DivergenceSequence s;
    s.source = "canonical";
    s.task_id = "fixture";
    s.ids = b.input_ids;  // both models on the baseline's prompt
    for (std::size_t i = 0; i < s.ids.size(); ++i)
      s.regions.push_back(i < 10   ? reports::Region::prompt
                          : i < 17 ? reports::Region::thinking
                                   : reports::Region::answer);
    const reports::ScoredSequence scored = harness::score_sequence(*model_a, *model_b, s, 7);
    REQUIRE(scored.positions.size() == s.ids.size() - 1);
    REQUIRE(scored.regions.size() == s.ids.size() - 1);
    for (std::size_t t = 0; t + 1 < s.ids.size(); ++t) CHECK(scored.regions[t] == s.regions[t + 1]);

    // The plain reference path on the same ids, and our chunked logits (same
    // chunking, so the ones score_sequence saw) for the tolerance.
    const std::span<const runtime::TokenId> inputs(s.ids.data(), s.ids.size() - 1);
    const auto ref_a =
        runtime::reference_forward(runtime::Checkpoint::open(test::fixture("models/" + pair.model)), inputs);
    const auto ref_b = runtime::reference_forward(runtime::Checkpoint::open(b.dir), inputs);
    const std::vector<float> ours_a = chunked_logits(*model_a, inputs, 7), ours_b = chunked_logits(*model_b, inputs, 7);
    const std::int64_t vocab = b.vocab;
    for (std::size_t t = 0; t < inputs.size(); ++t) {
      CAPTURE(t);
      const auto at = static_cast<std::int64_t>(t) * vocab;
      const std::span<const float> row_a(ref_a.logits.data() + at, static_cast<std::size_t>(vocab));
      const std::span<const float> row_b(ref_b.logits.data() + at, static_cast<std::size_t>(vocab));
      const reports::PositionDivergence expected = reports::position_divergence(row_a, row_b, s.ids[t + 1]);
      const double range_a = range_of_difference(ours_a.data() + at, row_a.data(), vocab);
      const double range_b = range_of_difference(ours_b.data() + at, row_b.data(), vocab);
      // E_{p_B}|r| <= sqrt(E r^2) is not needed: bound |r| by its max over the row.
      const auto pa = probabilities(row_a.data(), vocab), pb = probabilities(row_b.data(), vocab);
      double mean_abs_r = 0;
      for (std::size_t i = 0; i < pa.size(); ++i) mean_abs_r += pb[i] * std::abs(std::log(pb[i]) - std::log(pa[i]));
      CHECK(expected.kl > 0.05);
      CHECK(std::abs(scored.positions[t].kl - expected.kl) <=
            range_a + range_b + std::expm1(range_b) * mean_abs_r + 1e-9);
      const auto n = static_cast<std::size_t>(s.ids[t + 1]);
      CHECK(std::abs(scored.positions[t].delta_p - expected.delta_p) <=
            std::expm1(range_a) * pa[n] + std::expm1(range_b) * pb[n] + 1e-9);
    }
    // A sequence of one token predicts nothing.
    harness::DivergenceSequence one{.source = "canonical",
                                    .task_id = "x",
                                    .sample_index = 0,
                                    .ids = {s.ids[0]},
                                    .regions = {reports::Region::prompt}};
    CHECK(harness::score_sequence(*model_a, *model_b, one, 4).positions.empty());
  }
}

namespace {

const runtime::Tokenizer& qwen3_tokenizer() {
  static const runtime::Tokenizer t = runtime::Tokenizer::from_file(test::qwen3_tokenizer_dir());
  return t;
}

const datasets::Dataset& humaneval() {
  static const datasets::Dataset d = datasets::load(test::dataset_file("humaneval").string());
  return d;
}

std::vector<runtime::TokenId> concat(std::vector<runtime::TokenId> a, const std::vector<runtime::TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::size_t count(const std::vector<reports::Region>& regions, reports::Region r) {
  return static_cast<std::size_t>(std::count(regions.begin(), regions.end(), r));
}

// A run directory as `run` leaves it (run.json's config and samples.jsonl),
// with the prompt hashes of `modes` over `tasks`.
void write_run(const fs::path& dir, const std::vector<const datasets::Problem*>& tasks,
               const std::vector<harness::Mode>& modes, const runtime::ChatTemplate* chat,
               const std::vector<nlohmann::json>& samples, const std::string& dataset_sha) {
  fs::create_directories(dir);
  const harness::PromptSet prompts = harness::prepare_prompts(tasks, modes, 1, qwen3_tokenizer(), chat);
  nlohmann::json config;
  for (const auto mode : modes) {
    config["modes"].push_back(std::string(harness::to_string(mode)));
    config["prompts"][std::string(harness::to_string(mode))] = prompts.sha256_by_mode.at(mode);
  }
  for (const auto* t : tasks) config["tasks"].push_back(t->task_id);
  config["dataset"] = dataset_sha;
  config["model"] = "test";
  config["weights"] = "none";
  std::ofstream(dir / "run.json") << nlohmann::json{{"config_hash", "x"}, {"config", config}}.dump();
  std::ofstream out(dir / "samples.jsonl");
  for (const auto& s : samples) out << s.dump() << "\n";
}

nlohmann::json sample_line(const std::string& mode, const std::string& task, int index, const std::string& raw,
                           bool closed) {
  nlohmann::json j = {{"mode", mode},       {"task_id", task},       {"sample_index", index},
                      {"prompt_tokens", 1}, {"generated_tokens", 1}, {"finish_reason", "eos"},
                      {"raw_output", raw},  {"completion", "pass"},  {"extraction_rule", "fenced_python"}};
  if (mode == "thinking")
    j["thinking_closed"] = closed;
  else
    j["extraction_rule"] = "prompt_continuation";
  return j;
}

}  // namespace

TEST_CASE("canonical sequences: prompt region is the prompt's tokens, answer the solution's") {
  const auto& d = humaneval();
  const std::vector<const datasets::Problem*> tasks = {&d.problems[0], &d.problems[1], &d.problems[163]};
  const auto sequences = harness::canonical_sequences(tasks, qwen3_tokenizer());
  REQUIRE(sequences.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& s = sequences[i];
    CHECK(s.task_id == tasks[i]->task_id);
    CHECK(s.ids == qwen3_tokenizer().encode(tasks[i]->prompt + tasks[i]->canonical_solution));
    const auto prompt = qwen3_tokenizer().encode(tasks[i]->prompt);
    CHECK(count(s.regions, reports::Region::prompt) <= prompt.size());
    CHECK(count(s.regions, reports::Region::prompt) + 2 >= prompt.size());  // at most a seam token re-merged
    CHECK(count(s.regions, reports::Region::thinking) == 0);
    CHECK(count(s.regions, reports::Region::prompt) + count(s.regions, reports::Region::answer) == s.ids.size());
    CHECK(s.regions.front() == reports::Region::prompt);
    CHECK(s.regions.back() == reports::Region::answer);
  }
}

TEST_CASE("run samples: the run's prompt ids, then thinking up to the last </think>, then the answer") {
  const auto& d = humaneval();
  const std::vector<const datasets::Problem*> run_tasks = {&d.problems[0], &d.problems[1]};
  const runtime::ChatTemplate chat = runtime::ChatTemplate::from_model_dir(test::qwen3_tokenizer_dir());
  const std::vector<harness::Mode> modes = {harness::Mode::standard, harness::Mode::thinking};
  const std::string think = "<think>\nLet me see. </think> not yet.\nNow.\n</think>";
  const std::string answer = "\n\n```python\ndef f():\n    return 1\n```";
  test::TempDir tmp;
  write_run(tmp.path() / "run", run_tasks, modes, &chat,
            {sample_line("standard", "HumanEval/0", 0, "    return []\n", true),
             sample_line("thinking", "HumanEval/1", 0, think + answer, true),
             sample_line("thinking", "HumanEval/0", 0, "<think>\nrunning out of budg", false)},
            d.sha256);
  const harness::PromptSet prompts = harness::prepare_prompts(run_tasks, modes, 1, qwen3_tokenizer(), &chat);
  const auto prompt_ids = [&](harness::Mode mode, std::size_t task) {
    for (const auto& p : prompts.prompts)
      if (p.mode == mode && p.problem == run_tasks[task]) return p.ids;
    FAIL("no prompt");
    return std::vector<runtime::TokenId>{};
  };

  const harness::RunSequences r = harness::run_sequences(tmp.path() / "run", d, run_tasks, qwen3_tokenizer(), &chat);
  REQUIRE(r.sequences.size() == 3);
  // standard first, then thinking in task order.
  const auto& standard = r.sequences[0];
  CHECK(standard.source == "standard");
  CHECK(standard.ids == concat(prompt_ids(harness::Mode::standard, 0), qwen3_tokenizer().encode("    return []\n")));
  CHECK(count(standard.regions, reports::Region::prompt) == prompt_ids(harness::Mode::standard, 0).size());
  CHECK(count(standard.regions, reports::Region::thinking) == 0);

  const auto& unfinished = r.sequences[1];  // HumanEval/0: never closed -> all thinking
  CHECK(unfinished.task_id == "HumanEval/0");
  CHECK(unfinished.source == "thinking");
  CHECK(count(unfinished.regions, reports::Region::answer) == 0);
  CHECK(count(unfinished.regions, reports::Region::thinking) ==
        qwen3_tokenizer().encode("<think>\nrunning out of budg").size());

  const auto& closed = r.sequences[2];
  CHECK(closed.task_id == "HumanEval/1");
  const auto think_ids = qwen3_tokenizer().encode(think), answer_ids = qwen3_tokenizer().encode(answer);
  CHECK(closed.ids == concat(concat(prompt_ids(harness::Mode::thinking, 1), think_ids), answer_ids));
  CHECK(count(closed.regions, reports::Region::thinking) == think_ids.size());
  CHECK(count(closed.regions, reports::Region::answer) == answer_ids.size());
  CHECK(closed.regions[closed.ids.size() - answer_ids.size() - 1] == reports::Region::thinking);  // </think> itself
  CHECK(r.info.at("samples").at("thinking") == 2);

  // Only the selected tasks.
  CHECK(harness::run_sequences(tmp.path() / "run", d, {run_tasks[1]}, qwen3_tokenizer(), &chat).sequences.size() == 1);
  // A task the run did not evaluate, another dataset, prompts rendered differently: refused.
  CHECK_THROWS_WITH_AS(harness::run_sequences(tmp.path() / "run", d, {&d.problems[2]}, qwen3_tokenizer(), &chat),
                       doctest::Contains("did not evaluate"), std::runtime_error);
  write_run(tmp.path() / "other-dataset", run_tasks, modes, &chat, {}, "0000");
  CHECK_THROWS_WITH_AS(harness::run_sequences(tmp.path() / "other-dataset", d, run_tasks, qwen3_tokenizer(), &chat),
                       doctest::Contains("dataset"), std::runtime_error);
  write_run(tmp.path() / "other-tasks", {run_tasks[1], run_tasks[0]}, modes, &chat, {}, d.sha256);
  {
    // Hash over the reordered tasks, but config.tasks rewritten in the original order: the hash no longer matches.
    std::ifstream in(tmp.path() / "other-tasks" / "run.json");
    nlohmann::json run = nlohmann::json::parse(in);
    run["config"]["tasks"] = {"HumanEval/0", "HumanEval/1"};
    std::ofstream(tmp.path() / "other-tasks" / "run.json") << run.dump();
  }
  CHECK_THROWS_WITH_AS(harness::run_sequences(tmp.path() / "other-tasks", d, run_tasks, qwen3_tokenizer(), &chat),
                       doctest::Contains("hash"), std::runtime_error);
  CHECK_THROWS_WITH_AS(harness::run_sequences(tmp.path() / "run", d, run_tasks, qwen3_tokenizer(), nullptr),
                       doctest::Contains("chat template"), std::runtime_error);
  CHECK_THROWS_AS(harness::run_sequences(tmp.path() / "missing", d, run_tasks, qwen3_tokenizer(), &chat),
                  std::runtime_error);
}

TEST_CASE("the vocabulary check accepts one tokenizer and names the first difference of another") {
  const auto& t = qwen3_tokenizer();
  const auto vocab = static_cast<std::int64_t>(t.vocab_size());
  CHECK(harness::require_same_vocabulary(vocab, t, vocab, t).find("same id -> bytes") != std::string::npos);
  CHECK_THROWS_WITH_AS(harness::require_same_vocabulary(vocab, t, vocab + 1, t),
                       doctest::Contains("vocabularies differ"), std::runtime_error);
  // The same tokenizer.json with two tokens' ids swapped.
  std::ifstream in(test::qwen3_tokenizer_dir() / "tokenizer.json");
  nlohmann::json j = nlohmann::json::parse(in);
  auto& v = j.at("model").at("vocab");
  const auto a = v.at("hello").get<int>(), b = v.at("world").get<int>();
  v["hello"] = b;
  v["world"] = a;
  const runtime::Tokenizer swapped = runtime::Tokenizer::from_json_text(j.dump());
  const std::string first_difference = fmt::format("differ at id {}", std::min(a, b));
  CHECK_THROWS_WITH_AS(harness::require_same_vocabulary(vocab, t, vocab, swapped),
                       doctest::Contains(first_difference.c_str()), std::runtime_error);
}
