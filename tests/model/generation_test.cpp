// Incremental decoding with the KV cache, batched and continuous batching, stop
// conditions -- always checked against the transformers greedy tokens
// (`greedy_new_tokens`, produced with its own KV cache) or `argmax_per_position`.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <random>

#include "runtime/generate/generator.hpp"
#include "runtime/model/model.hpp"
#include "tests/model/model_test_support.hpp"

using namespace quanteval::runtime;
using namespace quanteval::test;

namespace {

std::unique_ptr<Model> load(const ModelReference& ref, std::uint64_t cache_bytes = 64ull << 20) {
  return Model::load(ref.dir, {.threads = 2, .kv_cache_bytes = cache_bytes});
}

std::vector<TokenId> random_prompt(std::mt19937& rng, int length, std::int64_t vocab) {
  std::uniform_int_distribution<TokenId> pick(0, static_cast<TokenId>(vocab - 1));
  std::vector<TokenId> ids(static_cast<std::size_t>(length));
  for (auto& id : ids) id = pick(rng);
  return ids;
}

// Runs every submitted request; returns the results and the largest running batch seen.
std::pair<std::vector<GenerationResult>, std::size_t> run_all(Generator& generator) {
  std::size_t max_active = 0;
  std::vector<GenerationResult> results;
  generator.run([&](GenerationResult r) { results.push_back(std::move(r)); },
                [&](const GeneratorStats& s) { max_active = std::max(max_active, s.active); });
  return {std::move(results), max_active};
}

GenerationRequest greedy_request(std::uint64_t id, std::vector<TokenId> prompt, int new_tokens) {
  GenerationRequest r;
  r.id = id;
  r.prompt = std::move(prompt);
  r.max_new_tokens = new_tokens;
  return r;
}

}  // namespace

TEST_CASE("prefill + 15 cached decode steps reproduce the greedy tokens (Model::forward directly)") {
  for (const auto& name : all_model_fixture_names()) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    auto model = load(ref);
    auto state = model->open_sequence(static_cast<std::int64_t>(ref.input_ids.size() + ref.greedy_new_tokens.size()));
    Model::Step step{state.get(), ref.input_ids, false};
    std::vector<TokenId> generated;
    for (std::size_t i = 0; i < ref.greedy_new_tokens.size(); ++i) {
      const std::vector<float> logits = model->forward(std::span<const Model::Step>(&step, 1));
      generated.push_back(argmax(logits.data(), ref.vocab));
      step.tokens = std::span<const TokenId>(&generated.back(), 1);
    }
    CHECK(generated == ref.greedy_new_tokens);
    CHECK(state->length() == static_cast<std::int64_t>(ref.input_ids.size() + ref.greedy_new_tokens.size() - 1));
  }
}

TEST_CASE("Generator::generate reproduces the greedy tokens with finish_reason length") {
  for (const auto& name : all_model_fixture_names()) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    auto model = load(ref);
    Generator generator(*model, nullptr);
    const GenerationResult result = generator.generate(greedy_request(7, ref.input_ids, 16));
    CHECK(result.id == 7);
    CHECK(result.tokens == ref.greedy_new_tokens);
    CHECK(result.finish == FinishReason::length);
    CHECK(result.prompt_tokens == static_cast<int>(ref.input_ids.size()));
  }
}

TEST_CASE("batched decode next to sequences of other lengths gives the reference tokens") {
  std::mt19937 rng(1234);
  for (const auto& name : all_model_fixture_names()) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    auto model = load(ref);
    Generator generator(*model, nullptr, {.max_batch = 8});
    // id 0: the reference prompt. ids 1..4: its prefixes of lengths 5, 11, 17, 23,
    // whose first new token must be transformers' argmax at that position.
    // ids 5..7: random prompts (3, 40, 9 tokens) with other lengths of output.
    generator.submit(greedy_request(0, ref.input_ids, 16));
    const std::vector<int> prefix_lengths = {5, 11, 17, 23};
    for (std::size_t i = 0; i < prefix_lengths.size(); ++i)
      generator.submit(
          greedy_request(1 + i, std::vector<TokenId>(ref.input_ids.begin(), ref.input_ids.begin() + prefix_lengths[i]),
                         3 + 5 * static_cast<int>(i)));
    for (const int length : {3, 40, 9})
      generator.submit(greedy_request(5 + length, random_prompt(rng, length, ref.vocab), 20));
    std::map<std::uint64_t, GenerationResult> results;
    generator.run([&](GenerationResult r) { results[r.id] = std::move(r); });
    REQUIRE(results.size() == 8);
    CHECK(results[0].tokens == ref.greedy_new_tokens);
    for (std::size_t i = 0; i < prefix_lengths.size(); ++i) {
      CAPTURE(prefix_lengths[i]);
      CHECK(results[1 + i].tokens.front() == ref.argmax_per_position[static_cast<std::size_t>(prefix_lengths[i] - 1)]);
      CHECK(results[1 + i].tokens.size() == static_cast<std::size_t>(3 + 5 * i));
    }
    const GeneratorStats stats = generator.stats();
    CHECK(stats.finished == 8);
    CHECK(stats.active == 0);
  }
}

TEST_CASE("a request joining a running batch mid-way (continuous batching) gives the reference tokens") {
  std::mt19937 rng(99);
  for (const auto& name : all_model_fixture_names()) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    auto model = load(ref);
    Generator generator(*model, nullptr, {.max_batch = 4});
    for (std::uint64_t i = 1; i <= 3; ++i)
      generator.submit(greedy_request(i, random_prompt(rng, 7 * static_cast<int>(i), ref.vocab), 30));
    int steps = 0;
    bool joined_while_busy = false;
    std::map<std::uint64_t, GenerationResult> results;
    generator.run([&](GenerationResult r) { results[r.id] = std::move(r); },
                  [&](const GeneratorStats& stats) {
                    if (++steps == 5) {
                      joined_while_busy = stats.active == 3;
                      generator.submit(greedy_request(0, ref.input_ids, 16));
                    }
                  });
    CHECK(joined_while_busy);
    REQUIRE(results.size() == 4);
    CHECK(results[0].tokens == ref.greedy_new_tokens);
    for (std::uint64_t i = 1; i <= 3; ++i) CHECK(results[i].tokens.size() == 30);
  }
}

TEST_CASE("KV cache budget: requests wait for memory, impossible ones are refused with a clear error") {
  const ModelReference ref = load_model_reference("qwen3-tiny-bf16");
  // 3 attention layers x 2 (K, V) x 2 kv heads x 64 dims x 4 bytes = 3 KiB per token;
  // 16-token blocks are 48 KiB. A 144 KiB budget = 3 blocks = 48 tokens: one
  // 24 + 16 token request at a time (40 tokens need 3 blocks).
  auto model = load(ref, 3 * 48 * 1024);
  CHECK(model->memory().capacity_tokens() == 48);
  Generator generator(*model, nullptr, {.max_batch = 4});
  for (std::uint64_t i = 0; i < 3; ++i) generator.submit(greedy_request(i, ref.input_ids, 16));
  const auto [results, max_active] = run_all(generator);
  REQUIRE(results.size() == 3);
  CHECK(max_active == 1);
  for (const auto& r : results) CHECK(r.tokens == ref.greedy_new_tokens);
  CHECK_THROWS_WITH_AS(generator.submit(greedy_request(9, ref.input_ids, 30)), doctest::Contains("KV cache"),
                       ModelInputError);
}

TEST_CASE("Qwen3.5: one budget bounds K/V and recurrent state together; requests wait for a state slot") {
  const ModelReference ref = load_model_reference("qwen3_5-tiny-bf16");
  // Probe the sizes: one K/V block and one sequence's recurrent state (3 DeltaNet layers).
  const MemoryShape shape = Model::load(ref.dir, {.threads = 1, .kv_cache_bytes = 64ull << 20})->memory().plan().shape;
  REQUIRE(shape.recurrent());
  REQUIRE(shape.kv_layers == 1);
  REQUIRE(shape.state_layers == 3);
  // Three slots' worth of budget: the planner gives the state at most half, so one
  // slot, and the rest to K/V. Three requests must then run one at a time.
  const std::uint64_t budget = 3 * shape.slot_bytes();
  auto model = Model::load(ref.dir, {.threads = 2, .kv_cache_bytes = budget, .max_sequences = 4});
  const MemoryPlan& plan = model->memory().plan();
  CHECK(plan.slots == 1);
  CHECK(plan.bytes() <= budget);
  REQUIRE(plan.capacity_tokens() >= static_cast<std::int64_t>(ref.input_ids.size()) + 16);
  Generator generator(*model, nullptr, {.max_batch = 4});
  for (std::uint64_t i = 0; i < 3; ++i) generator.submit(greedy_request(i, ref.input_ids, 16));
  const auto [results, max_active] = run_all(generator);
  REQUIRE(results.size() == 3);
  CHECK(max_active == 1);
  for (const auto& r : results) CHECK(r.tokens == ref.greedy_new_tokens);
  // A request longer than the K/V part of the budget can hold is refused, not admitted over budget.
  const int too_many = static_cast<int>(plan.capacity_tokens());
  CHECK_THROWS_WITH_AS(generator.submit(greedy_request(9, ref.input_ids, too_many)), doctest::Contains("KV cache"),
                       ModelInputError);
  // A budget that cannot hold one slot and one block is refused at load.
  CHECK_THROWS_AS(Model::load(ref.dir, {.threads = 1, .kv_cache_bytes = shape.slot_bytes()}), std::invalid_argument);
}

TEST_CASE("bad requests are refused at submit with clear errors") {
  const ModelReference ref = load_model_reference("qwen2-tiny-bf16");
  auto model = load(ref);
  Generator generator(*model, nullptr);
  CHECK_THROWS_WITH_AS(generator.submit(greedy_request(1, {}, 4)), doctest::Contains("empty"), ModelInputError);
  CHECK_THROWS_WITH_AS(generator.submit(greedy_request(1, {5, 1024}, 4)), doctest::Contains("vocabulary"),
                       ModelInputError);
  CHECK_THROWS_WITH_AS(generator.submit(greedy_request(1, {5}, 5000)), doctest::Contains("max_position_embeddings"),
                       ModelInputError);
  CHECK_THROWS_AS(generator.submit(greedy_request(1, {5}, 0)), std::invalid_argument);
  GenerationRequest bad_sampling = greedy_request(1, {5}, 4);
  bad_sampling.sampling.top_p = 0;
  CHECK_THROWS_WITH_AS(generator.submit(bad_sampling), doctest::Contains("top_p"), std::invalid_argument);
  GenerationRequest stops_without_tokenizer = greedy_request(1, {5}, 4);
  stops_without_tokenizer.stop_strings = {"x"};
  CHECK_THROWS_WITH_AS(generator.submit(stops_without_tokenizer), doctest::Contains("tokenizer"),
                       std::invalid_argument);
}

TEST_CASE("eos ids stop generation; stop strings cut the text") {
  const ModelReference ref = load_model_reference("qwen3-tiny-bf16");
  auto model = load(ref);
  const Tokenizer tokenizer = Tokenizer::from_file(qwen3_tokenizer_dir());

  SUBCASE("an eos id stops at its first occurrence, the eos token kept in tokens, not in text") {
    const TokenId eos = ref.greedy_new_tokens[5];
    const auto first = std::find(ref.greedy_new_tokens.begin(), ref.greedy_new_tokens.end(), eos);
    const std::vector<TokenId> expected(ref.greedy_new_tokens.begin(), first + 1);
    Generator generator(*model, tokenizer, {.extra_eos_token_ids = {eos}});
    const GenerationResult r = generator.generate(greedy_request(1, ref.input_ids, 16));
    CHECK(r.finish == FinishReason::eos);
    CHECK(r.tokens == expected);
    CHECK(r.text == tokenizer.decode(std::vector<TokenId>(expected.begin(), expected.end() - 1)));
  }
  SUBCASE("a stop string in the middle of the output") {
    const std::string full = tokenizer.decode(ref.greedy_new_tokens);
    REQUIRE(full.size() > 12);
    const std::string stop = full.substr(full.size() / 2, 3);
    const std::size_t cut = full.find(stop);
    Generator generator(*model, tokenizer);
    GenerationRequest request = greedy_request(2, ref.input_ids, 16);
    request.stop_strings = {"\x01never\x02", stop};
    const GenerationResult r = generator.generate(request);
    CHECK(r.finish == FinishReason::stop);
    CHECK(r.text == full.substr(0, cut));
    // The tokens are a prefix of the greedy tokens, ending with the one that completed the stop string.
    REQUIRE(r.tokens.size() <= ref.greedy_new_tokens.size());
    CHECK(std::equal(r.tokens.begin(), r.tokens.end(), ref.greedy_new_tokens.begin()));
    CHECK(tokenizer.decode(r.tokens).find(stop) != std::string::npos);
    CHECK(tokenizer.decode(std::vector<TokenId>(r.tokens.begin(), r.tokens.end() - 1)).find(stop) == std::string::npos);
  }
  SUBCASE("no stop: the text is the decoded greedy tokens") {
    Generator generator(*model, tokenizer);
    const GenerationResult r = generator.generate(greedy_request(3, ref.input_ids, 16));
    CHECK(r.finish == FinishReason::length);
    CHECK(r.text == tokenizer.decode(ref.greedy_new_tokens));
  }
}

TEST_CASE("sampled generation: same seed same tokens, also inside a batch; another seed differs") {
  const ModelReference ref = load_model_reference("qwen2-tiny-bf16");
  auto model = load(ref);
  GenerationRequest request = greedy_request(1, ref.input_ids, 24);
  request.sampling = {.temperature = 1.0f, .top_k = 50, .top_p = 0.95f, .min_p = 0.01f, .seed = 42};
  Generator generator(*model, nullptr, {.max_batch = 8});
  const GenerationResult alone = generator.generate(request);
  CHECK(generator.generate(request).tokens == alone.tokens);

  std::mt19937 rng(5);
  for (std::uint64_t i = 2; i < 6; ++i) {
    GenerationRequest other =
        greedy_request(i, random_prompt(rng, 3 + 4 * static_cast<int>(i), ref.vocab), 10 + static_cast<int>(i));
    other.sampling = {.temperature = 0.7f, .seed = i};
    generator.submit(other);
  }
  generator.submit(request);
  std::map<std::uint64_t, GenerationResult> results;
  generator.run([&](GenerationResult r) { results[r.id] = std::move(r); });
  CHECK(results.at(1).tokens == alone.tokens);

  GenerationRequest reseeded = request;
  reseeded.sampling.seed = 43;
  CHECK(generator.generate(reseeded).tokens != alone.tokens);

  // top_k = 1 at any temperature is greedy.
  GenerationRequest top1 = request;
  top1.max_new_tokens = 16;
  top1.sampling = {.temperature = 1.5f, .top_k = 1, .seed = 7};
  CHECK(generator.generate(top1).tokens == ref.greedy_new_tokens);
}
