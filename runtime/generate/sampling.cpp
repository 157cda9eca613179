#include "runtime/generate/sampling.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "runtime/model/math.hpp"

namespace quanteval::runtime {

namespace {

bool more_likely(const Candidate& a, const Candidate& b) {
  return math::more_likely(a.probability, a.id, b.probability, b.id);
}

void renormalize(std::vector<Candidate>& candidates) {
  double total = 0;
  for (const auto& c : candidates) total += c.probability;
  for (auto& c : candidates) c.probability = static_cast<float>(c.probability / total);
}

// Keeps the shortest most-likely prefix whose cumulative probability reaches
// top_p (at least one token). Sorting 150k candidates every step would cost
// more than a decode step of a small model, so only the candidates above a
// threshold are sorted when they already hold top_p of the mass: they are
// exactly the head of the full sorted order, so the prefix is the same.
void keep_nucleus(std::vector<Candidate>& candidates, float top_p) {
  float max_probability = 0;
  for (const auto& c : candidates) max_probability = std::max(max_probability, c.probability);
  for (const double fraction : {1e-3, 1e-6, 1e-10, 0.0}) {
    const double threshold = max_probability * fraction;
    std::vector<Candidate> head;
    double mass = 0;
    for (const auto& c : candidates)
      if (c.probability >= threshold) {
        head.push_back(c);
        mass += c.probability;
      }
    if (mass < top_p && fraction > 0) continue;
    std::sort(head.begin(), head.end(), more_likely);
    double cumulative = 0;
    std::size_t keep = 0;
    while (keep < head.size() && (keep == 0 || cumulative < top_p)) cumulative += head[keep++].probability;
    head.resize(keep);
    candidates = std::move(head);
    return;
  }
}

}  // namespace

void validate(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0)
    throw std::invalid_argument(fmt::format("sampling: temperature must be >= 0 (got {})", p.temperature));
  if (p.top_k < 0) throw std::invalid_argument(fmt::format("sampling: top_k must be >= 0 (got {})", p.top_k));
  if (!(p.top_p > 0 && p.top_p <= 1))
    throw std::invalid_argument(fmt::format("sampling: top_p must be in (0, 1] (got {})", p.top_p));
  if (!(p.min_p >= 0 && p.min_p <= 1))
    throw std::invalid_argument(fmt::format("sampling: min_p must be in [0, 1] (got {})", p.min_p));
}

TokenId argmax_token(std::span<const float> logits) {
  if (logits.empty()) throw std::invalid_argument("argmax of an empty logits row");
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (math::argmax_prefers(logits[i], static_cast<int>(i), logits[best], static_cast<int>(best))) best = i;
  return static_cast<TokenId>(best);
}

std::vector<Candidate> sampling_distribution(std::span<const float> logits, const SamplingParams& params) {
  validate(params);
  if (params.temperature == 0 || params.top_k == 1) return {{argmax_token(logits), 1.0f}};
  float max_logit = -INFINITY;
  for (float l : logits) max_logit = std::max(max_logit, l);
  std::vector<Candidate> candidates(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i)
    candidates[i] = {static_cast<TokenId>(i), math::tempered_weight(logits[i], max_logit, params.temperature)};
  // Tokens whose probability is exactly 0 (masked with -inf, or underflowed) can
  // never be drawn; dropping them keeps them out of top-k and of the draw's
  // rounding fallback below.
  std::erase_if(candidates, [](const Candidate& c) { return c.probability == 0; });
  renormalize(candidates);

  if (params.top_k > 0 && static_cast<std::size_t>(params.top_k) < candidates.size()) {
    const auto k = static_cast<std::ptrdiff_t>(params.top_k);
    std::partial_sort(candidates.begin(), candidates.begin() + k, candidates.end(), more_likely);
    candidates.resize(static_cast<std::size_t>(k));
    renormalize(candidates);
  }
  if (params.top_p < 1) {
    keep_nucleus(candidates, params.top_p);
    renormalize(candidates);
  }
  if (params.min_p > 0) {
    float max_probability = 0;
    for (const auto& c : candidates) max_probability = std::max(max_probability, c.probability);
    std::erase_if(candidates,
                  [&](const Candidate& c) { return !math::min_p_keeps(c.probability, max_probability, params.min_p); });
    renormalize(candidates);
  }
  return candidates;
}

TokenId sample_token(std::span<const float> logits, const SamplingParams& params, SamplingRng& rng) {
  if (params.temperature == 0) {
    validate(params);
    return argmax_token(logits);
  }
  const std::vector<Candidate> candidates = sampling_distribution(logits, params);
  // Always draw, even when one candidate is left, so a request consumes one number
  // per token whatever the filters did.
  const double u = rng.uniform();
  double cumulative = 0;
  for (const auto& c : candidates) {
    cumulative += c.probability;
    if (u < cumulative) return c.id;
  }
  return candidates.back().id;  // u within rounding of 1
}

void mask_tokens(std::span<float> logits, std::span<const TokenId> ids) {
  for (const TokenId id : ids)
    if (id >= 0 && static_cast<std::size_t>(id) < logits.size()) logits[static_cast<std::size_t>(id)] = -INFINITY;
}

}  // namespace quanteval::runtime
