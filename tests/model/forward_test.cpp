// Whole-model forward against the transformers reference of each fixture, for
// the plain reference path and the fast path.
//
// Tolerances. Logits: relative L2 <= 1e-2 per position (the bound).
// Both paths compute in fp32 on the same stored weights as the reference, so
// the differences are summation order and exp/rsqrt rounding, ~1e-6 relative
// per op; we expect 1e-5-ish and the 1e-2 bound leaves room for the fast
// kernels' blocked accumulation. Hidden states: 2e-2 relative L2 per (layer,
// position) -- looser because the residual stream of a random model can have a
// small norm at some positions, which magnifies the same absolute error.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "runtime/checkpoint/checkpoint.hpp"
#include "runtime/model/model.hpp"
#include "runtime/model/reference.hpp"
#include "tests/model/model_test_support.hpp"

using namespace quanteval::runtime;
using namespace quanteval::test;

namespace {

constexpr double kLogitTolerance = 1e-2;
constexpr double kHiddenTolerance = 2e-2;

struct Agreement {
  double worst_logits = 0;
  double worst_hidden = 0;
};

Agreement compare(const ModelReference& ref, const std::vector<float>& logits, const std::vector<float>& hidden) {
  Agreement result;
  REQUIRE(logits.size() == ref.logits.size());
  for (std::int64_t t = 0; t < ref.tokens; ++t) {
    const float* row = logits.data() + t * ref.vocab;
    result.worst_logits = std::max(result.worst_logits, relative_l2(row, ref.logits.data() + t * ref.vocab, ref.vocab));
    CHECK_MESSAGE(argmax(row, ref.vocab) == ref.argmax_per_position[static_cast<std::size_t>(t)], "position " << t);
  }
  REQUIRE(hidden.size() == ref.hidden_states.size());
  for (std::int64_t e = 0; e < ref.hidden_entries; ++e)
    for (std::int64_t t = 0; t < ref.tokens; ++t) {
      const std::int64_t at = (e * ref.tokens + t) * ref.hidden;
      const double error = relative_l2(hidden.data() + at, ref.hidden_states.data() + at, ref.hidden);
      CHECK_MESSAGE(error <= kHiddenTolerance, "hidden state " << e << " position " << t);
      result.worst_hidden = std::max(result.worst_hidden, error);
    }
  CHECK(result.worst_logits <= kLogitTolerance);
  return result;
}

}  // namespace

TEST_CASE("reference path matches transformers on every fixture") {
  for (const auto& name : all_model_fixture_names()) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    const Checkpoint checkpoint = Checkpoint::open(ref.dir);
    const ReferenceOutput out = reference_forward(checkpoint, ref.input_ids);
    const Agreement a = compare(ref, out.logits, out.hidden_states);
    MESSAGE(fmt::format("{} reference path: worst logits rel L2 {:.2e}, worst hidden rel L2 {:.2e}", name,
                        a.worst_logits, a.worst_hidden));
  }
}

TEST_CASE("fast path matches transformers and the reference path on every fixture") {
  for (const auto& name : all_model_fixture_names()) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    auto model = Model::load(ref.dir, {.threads = 2, .kv_cache_bytes = 64ull << 20});
    const std::vector<float> logits = model->logits_for(ref.input_ids);
    const ForwardTrace trace = model->hidden_states_for(ref.input_ids);
    const Agreement a = compare(ref, logits, trace.hidden_states);
    MESSAGE(fmt::format("{} fast path: worst logits rel L2 {:.2e}, worst hidden rel L2 {:.2e}", name, a.worst_logits,
                        a.worst_hidden));
    // Fast vs reference path directly (same weights, same math, different kernels).
    const ReferenceOutput slow = reference_forward(Checkpoint::open(ref.dir), ref.input_ids);
    double worst = 0;
    for (std::int64_t t = 0; t < ref.tokens; ++t)
      worst =
          std::max(worst, relative_l2(logits.data() + t * ref.vocab, slow.logits.data() + t * ref.vocab, ref.vocab));
    CHECK(worst <= kLogitTolerance);
    MESSAGE(fmt::format("{} fast vs reference path: worst logits rel L2 {:.2e}", name, worst));
  }
}

TEST_CASE("logits_for rejects bad input with clear errors") {
  auto model = Model::load(fixture("models/qwen3-tiny-bf16"), {.threads = 1, .kv_cache_bytes = 16ull << 20});
  const std::vector<TokenId> empty;
  CHECK_THROWS_WITH_AS(model->logits_for(empty), doctest::Contains("empty"), ModelInputError);
  const std::vector<TokenId> out_of_range = {1, 2, 1024};
  CHECK_THROWS_WITH_AS(model->logits_for(out_of_range), doctest::Contains("outside the model vocabulary"),
                       ModelInputError);
  const std::vector<TokenId> negative = {-1};
  CHECK_THROWS_AS(model->logits_for(negative), ModelInputError);
  // Longer than max_position_embeddings (4096).
  CHECK_THROWS_WITH_AS(model->open_sequence(5000), doctest::Contains("max_position_embeddings"), ModelInputError);
}
