// The generate and logits verbs end to end (the quanteval binary), against the fixtures' references.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "runtime/runtime.hpp"  // the umbrella header must compile on its own
#include "tests/model/model_test_support.hpp"

using namespace quanteval::runtime;
using namespace quanteval::test;
namespace fs = std::filesystem;

namespace {

std::string join_ids(const std::vector<TokenId>& ids) {
  std::string out;
  for (const TokenId id : ids) out += (out.empty() ? "" : ",") + std::to_string(id);
  return out;
}

}  // namespace

TEST_CASE("generate --ids prints the greedy tokens as JSON") {
  for (const auto& name : all_model_fixture_names()) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    const CommandResult r = run_quanteval({"generate", "--model", ref.dir.string(), "--ids", join_ids(ref.input_ids),
                                           "--max-new-tokens", "16", "--device", "cpu", "--threads", "2"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto json = nlohmann::json::parse(r.out);
    CHECK(json.at("ids").get<std::vector<TokenId>>() == ref.greedy_new_tokens);
    CHECK(json.at("finish_reason") == "length");
    CHECK(json.at("prompt_tokens") == ref.input_ids.size());
    CHECK(json.at("text") == "");  // fixtures have no tokenizer
    CHECK(json.at("decode_tok_s").get<double>() > 0);
  }
}

TEST_CASE("logits --out writes a safetensors file equal to the reference") {
  for (const std::string name : {"qwen3-tiny-gptq-g64-actorder", "qwen3_5-tiny-gptq-g64-actorder"}) {
    CAPTURE(name);
    const ModelReference ref = load_model_reference(name);
    const TempDir dir;
    const fs::path out = dir.path() / "logits.safetensors";
    const CommandResult r = run_quanteval({"logits", "--model", ref.dir.string(), "--ids", join_ids(ref.input_ids),
                                           "--out", out.string(), "--device", "auto"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const SafetensorsFile file(out);
    const TensorView logits = file.tensor("logits");
    REQUIRE(logits.shape == std::vector<std::int64_t>{ref.tokens, ref.vocab});
    const std::vector<float> values = to_float(logits);
    for (std::int64_t t = 0; t < ref.tokens; ++t) {
      CHECK(relative_l2(values.data() + t * ref.vocab, ref.logits.data() + t * ref.vocab, ref.vocab) <= 1e-2);
      CHECK(argmax(values.data() + t * ref.vocab, ref.vocab) == ref.argmax_per_position[static_cast<std::size_t>(t)]);
    }
  }
}

TEST_CASE("generate --prompt with a tokenizer beside the model; vocabulary mismatch is a clear error") {
  // A model directory made of the qwen3 fixture's files plus the Qwen3 tokenizer.
  const fs::path fixture_dir = fixture("models/qwen3-tiny-bf16");
  const TempDir dir;
  for (const char* f : {"config.json", "model.safetensors"}) fs::create_symlink(fixture_dir / f, dir.path() / f);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::create_symlink(qwen3_tokenizer_dir() / f, dir.path() / f);
  const Tokenizer tokenizer = Tokenizer::from_file(dir.path());
  const ModelReference ref = load_model_reference("qwen3-tiny-bf16");

  SUBCASE("a prompt whose ids fit the fixture's 1024-token vocabulary") {
    const std::string text = "12+34=46";  // digits are split one per token: small ids
    const std::vector<TokenId> ids = tokenizer.encode(text);
    for (const TokenId id : ids) REQUIRE(id < 1024);
    const CommandResult r = run_quanteval(
        {"generate", "--model", dir.path().string(), "--prompt", text, "--max-new-tokens", "5", "--threads", "1"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto json = nlohmann::json::parse(r.out);
    const auto new_ids = json.at("ids").get<std::vector<TokenId>>();
    CHECK(new_ids.size() == 5);
    CHECK(json.at("prompt_tokens") == ids.size());
    CHECK(json.at("text") == tokenizer.decode(new_ids));
    // Same ids through --ids give the same continuation.
    const CommandResult by_ids = run_quanteval({"generate", "--model", dir.path().string(), "--ids", join_ids(ids),
                                                "--max-new-tokens", "5", "--threads", "1"});
    REQUIRE(by_ids.exit_code == 0);
    CHECK(nlohmann::json::parse(by_ids.out).at("ids") == json.at("ids"));
  }
  SUBCASE("the chat template produces ids past the model's vocabulary") {
    const CommandResult r = run_quanteval({"generate", "--model", dir.path().string(), "--prompt", "hello", "--chat",
                                           "--enable-thinking", "false", "--max-new-tokens", "4"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("outside the model vocabulary") != std::string::npos);
  }
  SUBCASE("stop strings are cut from the text") {
    const std::string full = tokenizer.decode(ref.greedy_new_tokens);
    const std::string stop = full.substr(full.size() / 2, 3);
    const CommandResult r = run_quanteval({"generate", "--model", dir.path().string(), "--ids", join_ids(ref.input_ids),
                                           "--max-new-tokens", "16", "--stop", stop});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto json = nlohmann::json::parse(r.out);
    CHECK(json.at("finish_reason") == "stop");
    CHECK(json.at("text") == full.substr(0, full.find(stop)));
  }
}

TEST_CASE("generate and logits: input errors exit 2 with a message") {
  const std::string model = fixture("models/qwen2-tiny-bf16").string();
  auto expect_error = [](const std::vector<std::string>& args, const std::string& fragment) {
    const CommandResult r = run_quanteval(args);
    CAPTURE(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(fragment) != std::string::npos);
  };
  expect_error({"generate", "--model", model, "--ids", "1,2,99999"}, "outside the model vocabulary");
  expect_error({"generate", "--model", model, "--ids", "1,x"}, "not a token id");
  expect_error({"generate", "--model", model, "--ids", "1,2", "--max-new-tokens", "5000"}, "max_position_embeddings");
  expect_error({"generate", "--model", model, "--prompt", "hi"}, "tokenizer");
  expect_error({"generate", "--model", model, "--ids", "1", "--device", "cuda"}, "--device cuda");
  expect_error({"generate", "--model", model, "--ids", "1", "--top-p", "0"}, "top_p");
  expect_error({"logits", "--model", model, "--ids", "", "--out", "/tmp/never.safetensors"}, "not a token id");
  // A checkpoint whose tensors do not match its config: the qwen2 config over qwen3 weights.
  const TempDir dir;
  fs::copy_file(fixture("models/qwen2-tiny-bf16/config.json"), dir.path() / "config.json");
  fs::create_symlink(fixture("models/qwen3-tiny-bf16/model.safetensors"), dir.path() / "model.safetensors");
  expect_error({"generate", "--model", dir.path().string(), "--ids", "1,2"}, "tensor problem");
}
