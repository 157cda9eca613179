// The seed model's checkpoint layout at tiny size: the Qwen3.5 multimodal wrapper
// (model.language_model.*, vision tower, MTP head), GPTQ v1 group 64 act-order with
// F16 scales, two indexed shards, and an lm_head with more rows (151936) than the
// tokenizer has ids (151669). The padding rows are adversarial: for every input a
// padding id has the largest logit, so only masking keeps generation on ids the
// tokenizer can decode.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/generate/generator.hpp"
#include "runtime/model/model.hpp"
#include "runtime/text/tokenizer.hpp"
#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
using namespace quanteval::runtime;
using nlohmann::json;
using quanteval::test::read_jsonl;
using quanteval::test::run_quanteval;

namespace {

constexpr TokenId kFirstPaddingId = 151669;  // the Qwen3 tokenizer's vocab_size

const fs::path& seed_layout_model() {
  static quanteval::test::TempDir dir;
  static const fs::path model = dir.path() / "model";
  static const bool built = [] {
    const std::string command = fmt::format(
        "'{}' --shape qwen3.5-tiny --group-size 64 --act-order --multimodal --shard-mb 20 --tokenizer '{}' "
        "--chat-template '{}' --adversarial-padding-from {} --out '{}' >/dev/null",
        QUANTEVAL_SYNTHETIC_CHECKPOINT, quanteval::test::qwen3_tokenizer_dir().string(),
        quanteval::test::fixture("chat-templates/qwen3_5/chat_template.jinja").string(), kFirstPaddingId,
        model.string());
    return std::system(command.c_str()) == 0;
  }();
  REQUIRE(built);
  return model;
}

}  // namespace

TEST_CASE("the seed layout loads: shards, wrapper names, vision and MTP tensors set aside") {
  const fs::path dir = seed_layout_model();
  CHECK(fs::exists(dir / "model.safetensors.index.json"));
  const auto r = run_quanteval({"inspect", "--model", dir.string(), "--json", "--load"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json info = json::parse(r.out);
  CHECK(info["tensor_check"] == "ok");
  CHECK(info["shards"] == 2);
  CHECK(info["ignored_tensors"].get<int>() > 10);
  CHECK(info["vocab_size"] == 151936);
  CHECK(info["load"]["peak_resident_bytes"].get<std::uint64_t>() > 0);
}

TEST_CASE("padding ids win the unmasked argmax but are never generated") {
  const fs::path dir = seed_layout_model();
  const auto model = Model::load(dir, {.threads = 2});
  const Tokenizer tokenizer = Tokenizer::from_file(dir);
  REQUIRE(tokenizer.vocab_size() == static_cast<std::size_t>(kFirstPaddingId));
  REQUIRE(model->config().vocab_size > kFirstPaddingId);
  const std::vector<TokenId> prompt = tokenizer.encode("def add(a, b):\n    ");

  // The trap works: without masking the next token would be a padding id.
  const std::vector<float> logits = model->logits_for(prompt);
  const auto vocab = static_cast<std::size_t>(model->config().vocab_size);
  const std::span<const float> last(logits.data() + (prompt.size() - 1) * vocab, vocab);
  CHECK(argmax_token(last) >= kFirstPaddingId);

  Generator generator(*model, tokenizer);
  CHECK(generator.masked_token_ids().size() == vocab - kFirstPaddingId);
  for (const float temperature : {0.0f, 0.8f}) {
    GenerationRequest request;
    request.prompt = prompt;
    request.max_new_tokens = 12;
    request.sampling.temperature = temperature;
    request.sampling.seed = 7;
    const GenerationResult result = generator.generate(request);
    CAPTURE(temperature);
    CHECK(result.tokens.size() == 12);
    for (const TokenId id : result.tokens) CHECK(tokenizer.contains(id));
  }
}

TEST_CASE("generate and run work on the seed layout in both modes") {
  const fs::path dir = seed_layout_model();
  const auto generated =
      run_quanteval({"generate", "--model", dir.string(), "--prompt", "def f():", "--chat", "--max-new-tokens", "6"});
  INFO(generated.err);
  REQUIRE(generated.exit_code == 0);
  for (const auto& id : json::parse(generated.out)["ids"]) CHECK(id.get<TokenId>() < kFirstPaddingId);

  quanteval::test::TempDir out;
  const auto run = run_quanteval({"run", "--model", dir.string(), "--out", (out.path() / "run").string(), "--mode",
                                  "both", "--limit", "2", "--max-new-tokens", "8", "--kv-cache-mb", "1", "--dataset",
                                  quanteval::test::dataset_file("humaneval").string(), "--python",
                                  quanteval::test::python(), "--quiet"});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  const auto samples = read_jsonl(out.path() / "run" / "samples.jsonl");
  CHECK(samples.size() == 4);
  for (const auto& sample : samples) CHECK(sample["generated_tokens"] == 8);
}
