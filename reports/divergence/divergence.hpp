#pragma once
// Token-level divergence of a model A (the quantized checkpoint) from a baseline
// B on the same token sequences, teacher-forced: at every position both models
// see the same prefix and give a full distribution over the next token.
//
// Per position (exact, from both full distributions, in double precision):
//   kl         KL(P_B || P_A) = sum_i p_B(i) (log p_B(i) - log p_A(i)), in nats,
//              with log p = logits - logsumexp(logits) (max-shifted: stable)
//   same_top1  argmax P_A == argmax P_B
//   delta_p    p_A(ref) - p_B(ref), ref = the token that actually comes next
// This is what llama.cpp's `llama-perplexity --kl-divergence` reports per token
// (it also takes the baseline as P and the quantized model as Q).
//
// Aggregates, per sequence source (canonical solutions, or the samples of one
// mode) and per region (prompt, thinking, answer): mean KL with a bootstrap CI
// that resamples tasks (tokens of one task are not independent), the KL median,
// p90, p99 and max, same-top-1 %, and Δp percentiles; and a row per task.
//
// This module takes logits as numbers only; the harness runs the models.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "reports/summary/score_report.hpp"  // Interval

namespace quanteval::reports {

// Which part of a sequence a scored position predicts.
enum class Region {
  prompt,    // a token of the prompt (the first prompt token is never predicted)
  thinking,  // a generated token up to and including </think>
  answer,    // the code: a canonical solution, or generated tokens after </think> (all of them in standard mode)
};
inline constexpr Region all_regions[] = {Region::prompt, Region::thinking, Region::answer};
std::string_view to_string(Region region);

struct PositionDivergence {
  double kl = 0;                        // KL(P_B || P_A) in nats, >= 0
  bool same_top1 = false;               // argmax (lowest index on ties) agrees
  double delta_p = 0;                   // p_A(next) - p_B(next), in [-1, 1]
  std::int64_t top1_a = 0, top1_b = 0;  // the argmax ids
  // false for a last position scored without a following token (`--ids` scores
  // every row, as `logits` returns them): its delta_p is 0 and left out of the Δp statistics.
  bool has_next = true;
};

// `next` of a position that has no following token.
inline constexpr std::int64_t kNoNextToken = -1;

// One position from two logit rows of equal width (vocab) and the id of the
// token that follows (or kNoNextToken). Throws std::invalid_argument for empty or unequal rows,
// `next` outside [0, vocab) or a non-finite logit.
PositionDivergence position_divergence(std::span<const float> logits_a, std::span<const float> logits_b,
                                       std::int64_t next);

// The same for a chunk of rows: logits_a, logits_b [rows, vocab] row-major,
// next[r] the token after row r's position. Appends `rows` results to out.
void append_position_divergences(std::span<const float> logits_a, std::span<const float> logits_b, std::int64_t vocab,
                                 std::span<const std::int64_t> next, std::vector<PositionDivergence>& out);

// One scored sequence: positions[t] predicts token t+1 of a T-token sequence.
struct ScoredSequence {
  std::string source;  // "canonical", or the mode of the run samples ("standard", "thinking")
  std::string task_id;
  int sample_index = 0;
  std::vector<PositionDivergence> positions;  // [T - 1]
  std::vector<Region> regions;                // [T - 1]: the region of the predicted token
};

struct DivergenceOptions {
  int bootstrap_resamples = 1000;
  std::uint64_t seed = 0;
  int worst_positions = 20;  // listed per source, largest KL first
};

// One of the largest divergences of a source, located; the text fields are for
// the harness to fill (this module has no tokenizer) and empty until then.
struct WorstPosition {
  std::size_t sequence = 0;  // index into summarize_divergence's input
  std::string task_id;
  int sample_index = 0;
  std::int64_t position = 0;  // predicts token position + 1 of that sequence
  Region region = Region::prompt;
  PositionDivergence divergence;
  std::string context;         // text just before the predicted token
  std::string next;            // the predicted (true) token
  std::string top1_a, top1_b;  // each model's most likely token
};

// Statistics of a set of positions.
struct DivergenceStats {
  std::int64_t positions = 0;
  std::int64_t tasks = 0;  // tasks with at least one of the positions
  double mean_kl = 0;
  // Percentile bootstrap 95% interval of mean_kl: tasks resampled with
  // replacement, each resample's mean = its tokens' KL sum / its token count
  // (the same token-weighted mean as mean_kl). {mean, mean} for one task.
  Interval mean_kl_ci;
  double median_kl = 0, p90_kl = 0, p99_kl = 0, max_kl = 0;
  double same_top1 = 0;     // fraction of positions, in [0, 1]
  double mean_delta_p = 0;  // over the positions with a next token
  // Δp quantiles at kDeltaPQuantiles (negative: A gives the true token less mass);
  // empty when no position has a next token.
  std::vector<double> delta_p_quantiles;
};
inline constexpr double kDeltaPQuantiles[] = {0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99};

struct TaskDivergence {
  std::string task_id;
  std::int64_t positions = 0;
  double mean_kl = 0, max_kl = 0;
  double same_top1 = 0;  // fraction
  double mean_delta_p = 0;
  std::map<Region, double> mean_kl_by_region;  // regions the task has positions in
};

struct SourceDivergence {
  std::string source;
  std::int64_t sequences = 0;
  DivergenceStats all;
  std::map<Region, DivergenceStats> by_region;  // regions with at least one position
  std::vector<TaskDivergence> tasks;            // in first-seen order
  std::vector<WorstPosition> worst;             // largest KL first, at most options.worst_positions
};

struct DivergenceReport {
  std::string model, baseline;  // as given (A, B)
  nlohmann::ordered_json info;  // what the harness wants recorded (tokenizer, chunk, memory, ...)
  DivergenceOptions options;
  std::vector<SourceDivergence> sources;  // in first-seen order
};

// Statistics of `positions` (non-empty) grouped by `task_of[i]` for the bootstrap.
DivergenceStats divergence_stats(std::span<const PositionDivergence> positions, std::span<const std::size_t> task_of,
                                 const DivergenceOptions& options);

// Everything, from the scored sequences (sequences without positions are counted but add nothing).
DivergenceReport summarize_divergence(const std::vector<ScoredSequence>& sequences, const DivergenceOptions& options);

nlohmann::ordered_json to_json(const DivergenceReport& report);
// Every position of one sequence as parallel arrays (positions.jsonl's line):
// source, task_id, sample_index, region, kl, same_top1, delta_p, top1_a, top1_b.
nlohmann::ordered_json positions_json(const ScoredSequence& sequence);
std::string to_markdown(const DivergenceReport& report);

}  // namespace quanteval::reports
