// Batch invariance of the whole forward step: a sequence's logits are the same
// bits whether it runs alone on one thread (`run --max-batch 1 --threads 1`) or
// next to other sequences -- prefills and decodes mixed in one step -- on two
// threads (`--max-batch 16 --threads 2`). This is what makes two runs of one
// checkpoint at different batch sizes give identical samples (docs/compare.md,
// "Noise floor"); the kernels' part is in tests/cpu_kernels.
#include <doctest/doctest.h>

#include <cstring>
#include <random>

#include "runtime/model/model.hpp"
#include "tests/model/model_test_support.hpp"

using namespace quanteval::runtime;
using namespace quanteval::test;

namespace {

constexpr int kDecodeSteps = 6;

std::vector<TokenId> random_tokens(std::mt19937& rng, int length, std::int64_t vocab) {
  std::uniform_int_distribution<TokenId> pick(0, static_cast<TokenId>(vocab - 1));
  std::vector<TokenId> ids(static_cast<std::size_t>(length));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

// The logits of sequence 0 at its prefill and each decode step (the decode
// tokens are given, so both runs feed the same ones), with `companions` run in
// the same forward steps: each companion is prefilled in step 0 and decodes one
// token per step after that.
std::vector<std::vector<float>> logits_of_first(Model& model, std::int64_t vocab, const std::vector<TokenId>& prompt,
                                                const std::vector<TokenId>& decode_tokens,
                                                const std::vector<std::vector<TokenId>>& companions) {
  std::vector<std::unique_ptr<SequenceState>> states;
  states.push_back(model.open_sequence(static_cast<std::int64_t>(prompt.size()) + kDecodeSteps + 1));
  for (const auto& c : companions)
    states.push_back(model.open_sequence(static_cast<std::int64_t>(c.size()) + kDecodeSteps + 1));
  std::vector<std::vector<float>> out;
  for (int step = 0; step <= kDecodeSteps; ++step) {
    std::vector<Model::Step> steps;
    steps.push_back({states[0].get(), step == 0 ? std::span<const TokenId>(prompt)
                                                : std::span<const TokenId>(&decode_tokens[step - 1], 1)});
    for (std::size_t i = 0; i < companions.size(); ++i)
      steps.push_back({states[i + 1].get(), step == 0 ? std::span<const TokenId>(companions[i])
                                                      : std::span<const TokenId>(&decode_tokens[step - 1], 1)});
    const std::vector<float> logits = model.forward(steps);
    out.emplace_back(logits.begin(), logits.begin() + vocab);
  }
  return out;
}

}  // namespace

TEST_CASE("a sequence's logits do not depend on its batch or the thread count (bitwise)") {
  std::mt19937 rng(4321);
  for (const auto& name : all_model_fixture_names()) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    auto single = Model::load(ref.dir, {.threads = 1, .kv_cache_bytes = 64ull << 20});
    auto batched = Model::load(ref.dir, {.threads = 2, .kv_cache_bytes = 64ull << 20});
    const auto decode_tokens = random_tokens(rng, kDecodeSteps, ref.vocab);
    const std::vector<std::vector<TokenId>> companions = {
        random_tokens(rng, 3, ref.vocab), random_tokens(rng, 37, ref.vocab), random_tokens(rng, 1, ref.vocab),
        random_tokens(rng, 18, ref.vocab), random_tokens(rng, 9, ref.vocab)};
    const auto alone = logits_of_first(*single, ref.vocab, ref.input_ids, decode_tokens, {});
    const auto together = logits_of_first(*batched, ref.vocab, ref.input_ids, decode_tokens, companions);
    REQUIRE(alone.size() == together.size());
    for (std::size_t step = 0; step < alone.size(); ++step) {
      CAPTURE(step);
      CHECK(std::memcmp(alone[step].data(), together[step].data(), alone[step].size() * sizeof(float)) == 0);
    }
  }
}
