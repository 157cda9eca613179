// inspect / tokenize / detokenize / render-chat through the binary, against the
// transformers references in the shared fixtures.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "datasets/datasets.hpp"
#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using quanteval::test::run_quanteval;

namespace {

const json& tokref() {
  static const json data = json::parse(quanteval::datasets::read_maybe_gzip(
      quanteval::test::fixture("tokenizer-reference/qwen3-humaneval-tokref.json.gz")));
  return data;
}

}  // namespace

TEST_CASE("tokenize and detokenize reproduce the reference ids and text") {
  quanteval::test::TempDir dir;
  const std::string tokenizer = quanteval::test::qwen3_tokenizer_dir().string();
  for (std::size_t i : {0u, 17u, 163u}) {
    const auto& entry = tokref()["humaneval"][i];
    const fs::path text_file = dir.path() / "text.txt";
    std::ofstream(text_file, std::ios::binary) << entry["chat_thinking"].get<std::string>();
    const auto r = run_quanteval({"tokenize", "--model", tokenizer, "--text-file", text_file.string()});
    REQUIRE(r.exit_code == 0);
    CHECK(json::parse(r.out)["ids"] == entry["chat_thinking_ids"]);
  }
  const auto& decode = tokref()["decode"][0];
  std::string ids;
  for (const auto& id : decode["ids"]) ids += (ids.empty() ? "" : ",") + std::to_string(id.get<int>());
  const auto plain = run_quanteval({"detokenize", "--model", tokenizer, "--ids", ids});
  REQUIRE(plain.exit_code == 0);
  CHECK(json::parse(plain.out)["text"] == decode["text"]);
  const auto skip = run_quanteval({"detokenize", "--model", tokenizer, "--ids", ids, "--skip-special"});
  CHECK(json::parse(skip.out)["text"] == decode["text_skip_special"]);
  const auto bad = run_quanteval({"detokenize", "--model", tokenizer, "--ids", "1,x"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--ids") != std::string::npos);
}

TEST_CASE("render-chat reproduces the reference renders from a tokenizer-only folder") {
  quanteval::test::TempDir dir;
  const std::string tokenizer = quanteval::test::qwen3_tokenizer_dir().string();
  const auto& multi = tokref()["multi_turn"];
  const fs::path messages = dir.path() / "messages.json";
  std::ofstream(messages) << multi["messages"].dump();
  for (const char* mode : {"thinking", "nothinking"}) {
    const auto r = run_quanteval({"render-chat", "--model", tokenizer, "--messages", messages.string(),
                                  "--enable-thinking", std::string(mode) == "thinking" ? "true" : "false"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(json::parse(r.out)["text"] == multi[mode]);
  }
  const auto missing =
      run_quanteval({"render-chat", "--model", tokenizer, "--messages", (dir.path() / "none.json").string()});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("none.json") != std::string::npos);
}

TEST_CASE("inspect reports architecture, layer types and quantization") {
  const auto r = run_quanteval(
      {"inspect", "--model", quanteval::test::fixture("models/qwen3_5-tiny-gptq-g64-actorder").string(), "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json j = json::parse(r.out);
  CHECK(j["architecture"] == "qwen3_5");
  CHECK(j["layer_types"] ==
        json::array({"linear_attention", "linear_attention", "linear_attention", "full_attention"}));
  CHECK(j["quantization"].get<std::string>().find("group 64") != std::string::npos);
  CHECK(j["tensor_check"] == "ok");
  CHECK(j["quantized_bits_per_weight"].get<double>() > 4.0);
  CHECK(j["quantized_bits_per_weight"].get<double>() < 5.0);
  const auto bf16 =
      run_quanteval({"inspect", "--model", quanteval::test::fixture("models/qwen2-tiny-bf16").string(), "--json"});
  CHECK(json::parse(bf16.out)["quantized_modules"] == 0);
  CHECK(json::parse(bf16.out)["bits_per_weight"].get<double>() == doctest::Approx(16.0));
  CHECK(run_quanteval({"inspect", "--model", "/nonexistent/dir"}).exit_code == 2);
}
