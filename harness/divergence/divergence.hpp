#pragma once
// `quanteval divergence`: the token sequences both models score, and the glue
// from the runtime's teacher-forced logits to reports/divergence's statistics.
//
// Sequences (token ids from the baseline's tokenizer, which must equal the
// model's: require_same_vocabulary):
//   canonical  HumanEval prompt + canonical solution: encode(prompt) is the
//              prompt region, the rest of encode(prompt + solution) the answer;
//   <mode>     with a run directory: each sample of samples.jsonl as the run
//              rendered its prompt (re-rendered here through prompts/ and checked
//              against run.json's prompt hash), followed by encode(raw_output):
//              thinking = up to and including the last </think>, answer = after
//              it (standard mode: all answer).
// Position t of a T-token sequence predicts token t+1; its region is that
// token's. Generated token ids are not stored by `run`, so a sample is scored
// on the tokenizer's encoding of its text, which can differ from the sampled
// ids where BPE has several spellings of one string (docs/divergence.md).
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/datasets.hpp"
#include "reports/reports.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {

struct DivergenceSequence {
  std::string source;  // "canonical", "standard", "thinking"
  std::string task_id;
  int sample_index = 0;
  std::vector<runtime::TokenId> ids;     // [T]
  std::vector<reports::Region> regions;  // [T]: the region of each token
};

// Prompt + canonical solution of each task.
std::vector<DivergenceSequence> canonical_sequences(const std::vector<const datasets::Problem*>& tasks,
                                                    const runtime::Tokenizer& tokenizer);

// What a run directory gives: its samples as sequences, and what was checked.
struct RunSequences {
  std::vector<DivergenceSequence> sequences;  // samples of `tasks`, by mode, task order, sample index
  nlohmann::ordered_json info;                // run directory, model, modes, prompt hashes checked
};

// The samples of `tasks` in the run directory `run_dir`, rendered with the
// baseline's tokenizer and chat template (`chat` needed when the run has
// thinking samples). Throws std::runtime_error (an input error) when run.json
// or samples.jsonl is missing or malformed, when the run's dataset differs from
// `dataset`, or when the re-rendered prompts do not hash to run.json's (another
// template or tokenizer rendered them).
RunSequences run_sequences(const std::filesystem::path& run_dir, const datasets::Dataset& dataset,
                           const std::vector<const datasets::Problem*>& tasks, const runtime::Tokenizer& tokenizer,
                           const runtime::ChatTemplate* chat);

// Throws std::runtime_error naming the first difference when the two models
// cannot be compared token by token: logits of different widths, or tokenizers
// whose id -> bytes tables (or special flags) differ anywhere in [0, vocab).
// Returns a one-line description of what was checked.
// Takes the checkpoints' vocab_size (logits per position) so it runs before
// any weights are loaded.
std::string require_same_vocabulary(std::int64_t model_vocab, const runtime::Tokenizer& model_tokenizer,
                                    std::int64_t baseline_vocab, const runtime::Tokenizer& baseline_tokenizer);

// Scores one sequence: both models teacher-forced over ids[0 .. T-2] in chunks
// of `chunk_tokens` positions (the last token is only predicted), and each pair
// of rows turned into a position's divergence at once, so at most
// 2 x chunk x vocab floats of logits exist at a time.
// With score_last, all T positions are scored (as `logits` returns them), the
// last one without a next token (reports::kNoNextToken).
reports::ScoredSequence score_sequence(runtime::Model& model, runtime::Model& baseline,
                                       const DivergenceSequence& sequence, std::int64_t chunk_tokens,
                                       bool score_last = false);

// Fills the text of each source's worst positions: up to 16 tokens of context
// before the position, the true next token and both top-1 tokens, decoded with
// `tokenizer` (an id it does not know is written "<id N>"). scored[i] is the
// sequence summarize_divergence's input i was scored from.
void describe_worst_positions(reports::DivergenceReport& report, const std::vector<const DivergenceSequence*>& scored,
                              const runtime::Tokenizer& tokenizer);

// `compare --divergence DIR`: joins the comparison's flips with
// DIR/divergence.json (or DIR itself when it is a file), writes
// out/divergence_association.md and .json and prints one line per mode. Throws
// std::runtime_error when the file is missing or not a divergence report.
void write_divergence_association(const reports::Comparison& comparison, const std::filesystem::path& divergence,
                                  const std::filesystem::path& out);

}  // namespace quanteval::harness
