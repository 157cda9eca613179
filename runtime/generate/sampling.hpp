#pragma once
// Choosing the next token from a row of logits: greedy, or sampling with
// temperature, top-k, top-p (nucleus) and min-p, applied in that order (the
// order of transformers' logits warpers), each filter renormalizing what is left.
// Randomness comes from a per-request generator seeded by the request, so the
// tokens of a request depend only on its seed and its logits, never on which
// other requests share its batch.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "runtime/text/tokenizer.hpp"  // TokenId

namespace quanteval::runtime {

struct SamplingParams {
  float temperature = 0;   // 0 = greedy (argmax, first index on ties); > 0 divides the logits
  int top_k = 0;           // keep the k most likely tokens; 0 = off
  float top_p = 1;         // keep the smallest most-likely set whose probability reaches top_p; 1 = off
  float min_p = 0;         // drop tokens less likely than min_p x the most likely one; 0 = off
  std::uint64_t seed = 0;  // seeds this request's generator
};

// Throws std::invalid_argument naming the field: temperature < 0 or not finite,
// top_k < 0, top_p outside (0, 1], min_p outside [0, 1].
void validate(const SamplingParams& params);

// The random source of one request: std::mt19937_64 (its output sequence is
// fixed by the C++ standard) turned into doubles in [0, 1) by taking 53 bits,
// so a seed gives the same tokens on every platform and standard library.
class SamplingRng {
 public:
  explicit SamplingRng(std::uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1p-53; }

 private:
  std::mt19937_64 engine_;
};

struct Candidate {
  TokenId id = 0;
  float probability = 0;
};

// Index of the largest logit (the first one on ties, as torch.argmax).
TokenId argmax_token(std::span<const float> logits);

// The distribution sampling draws from: every surviving token with its
// renormalized probability. Greedy params give the argmax with probability 1.
// Candidates are sorted by probability, descending (ties by id) whenever a
// filter needed the order; otherwise in id order.
std::vector<Candidate> sampling_distribution(std::span<const float> logits, const SamplingParams& params);

// One token: argmax for temperature 0, else a draw from sampling_distribution.
TokenId sample_token(std::span<const float> logits, const SamplingParams& params, SamplingRng& rng);

// Sets the logits of `ids` to -infinity, so neither greedy nor any sampling
// filter can pick them. Used for the ids a checkpoint's output layer has but its
// tokenizer cannot decode (padded vocabularies: Qwen3.5 has 248320 output rows
// and ~248077 tokens). Ids outside the row are ignored.
void mask_tokens(std::span<float> logits, std::span<const TokenId> ids);

}  // namespace quanteval::runtime
