// The client side of the OpenAI protocol without a server: the request body
// run --endpoint sends, how an answer is read (finish reasons, token counts,
// what is refused), the served-model match and URL redaction.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "harness/generation/http_client.hpp"
#include "harness/generation/openai_backend.hpp"
#include "tests/support/test_data.hpp"

using namespace quanteval::harness;
using nlohmann::json;

namespace {

const quanteval::runtime::Tokenizer& tokenizer() {
  static const auto t = quanteval::runtime::Tokenizer::from_file(quanteval::test::qwen3_tokenizer_dir());
  return t;
}

CompletionRequest request() {
  CompletionRequest r;
  r.id = 7;
  r.prompt = {100, 200, 300};
  r.max_tokens = 10;
  r.stop = {"\ndef", "\nclass"};
  return r;
}

std::string answer(const json& choice, const json& usage = {{"prompt_tokens", 3}, {"completion_tokens", 4}},
                   const std::string& model = "m") {
  return json{{"model", model}, {"choices", json::array({choice})}, {"usage", usage}}.dump();
}

}  // namespace

TEST_CASE("the request body: token ids, every sampling field explicit, top-k off as -1, seed in int64") {
  CompletionRequest r = request();
  r.sampling.temperature = 0.6f;
  r.sampling.top_p = 0.95f;
  r.sampling.top_k = 0;
  r.sampling.seed = 0xfedcba9876543210ull;
  const json body = completion_request_body(r, "served");
  CHECK(body["model"] == "served");
  CHECK(body["prompt"] == json::array({100, 200, 300}));
  CHECK(body["max_tokens"] == 10);
  CHECK(body["temperature"].get<double>() == doctest::Approx(0.6));
  CHECK(body["top_p"].get<double>() == doctest::Approx(0.95));
  CHECK(body["top_k"] == -1);
  CHECK(body["min_p"] == 0.0);
  CHECK(body["repetition_penalty"] == 1.0);
  CHECK(body["presence_penalty"] == 0.0);
  CHECK(body["frequency_penalty"] == 0.0);
  CHECK(body["seed"].get<std::int64_t>() == static_cast<std::int64_t>(0x7edcba9876543210ull));
  CHECK(body["stop"] == json::array({"\ndef", "\nclass"}));
  CHECK(body["n"] == 1);
  CHECK(body["skip_special_tokens"] == false);
  CHECK(body["include_stop_str_in_output"] == false);
  CHECK(completion_request_body(r, "served", true)["seed"].get<std::uint64_t>() == 0xfedcba9876543210ull);
  r.sampling.top_k = 20;
  CHECK(completion_request_body(r, "served")["top_k"] == 20);
}

TEST_CASE("finish reasons: length, a stop string, end-of-sequence (vLLM null, SGLang token id)") {
  const auto parse = [](const json& choice) {
    return parse_completion_response(answer(choice), request(), "m", tokenizer());
  };
  auto p = parse({{"text", "x"}, {"finish_reason", "length"}});
  REQUIRE(p.error.empty());
  CHECK(p.completion.finish == FinishReason::length);
  CHECK(p.completion.id == 7);
  CHECK(p.completion.prompt_tokens == 3);
  CHECK(p.completion.generated_tokens == 4);
  CHECK(p.warnings.size() == 1);  // length before max_tokens

  p = parse({{"text", "x"}, {"finish_reason", "stop"}, {"stop_reason", "\ndef"}});
  CHECK(p.completion.finish == FinishReason::stop);
  CHECK(p.warnings.empty());
  p = parse({{"text", "x"}, {"finish_reason", "stop"}, {"stop_reason", nullptr}});
  CHECK(p.completion.finish == FinishReason::eos);
  CHECK(p.warnings.empty());
  p = parse({{"text", "x"}, {"finish_reason", "stop"}, {"matched_stop", 151645}});
  CHECK(p.completion.finish == FinishReason::eos);
  p = parse({{"text", "x"}, {"finish_reason", "stop"}, {"matched_stop", "\nclass"}});
  CHECK(p.completion.finish == FinishReason::stop);
  // A server that says nothing about what stopped it: end-of-sequence, with a warning.
  p = parse({{"text", "x"}, {"finish_reason", "stop"}});
  CHECK(p.completion.finish == FinishReason::eos);
  CHECK(p.warnings.size() == 1);

  p = parse({{"text", "x"}, {"finish_reason", "abort"}});
  CHECK(p.error.find("abort") != std::string::npos);
  CHECK(p.retryable);
}

TEST_CASE("answers that cannot be used: the reason, and whether a retry may help") {
  const CompletionRequest r = request();
  auto p = parse_completion_response("<html>502 Bad Gateway</html>", r, "m", tokenizer());
  CHECK(p.error.find("not JSON") != std::string::npos);
  CHECK(p.retryable);
  p = parse_completion_response(R"({"choices": [{"text": "x", "finish_)", r, "m", tokenizer());
  CHECK(p.error.find("not JSON") != std::string::npos);
  p = parse_completion_response(R"({"error": {"message": "overloaded"}})", r, "m", tokenizer());
  CHECK(p.error.find("overloaded") != std::string::npos);
  p = parse_completion_response(R"({"choices": []})", r, "m", tokenizer());
  CHECK(p.error.find("choices") != std::string::npos);
  p = parse_completion_response(R"({"choices": [{"text": 5, "finish_reason": "stop"}]})", r, "m", tokenizer());
  CHECK(p.error.find("text") != std::string::npos);
  // Another model, or more tokens than asked: the server misbehaved; retrying the same server will not help.
  p = parse_completion_response(answer({{"text", "x"}, {"finish_reason", "length"}}, {}, "other"), r, "m", tokenizer());
  CHECK(p.error.find("answered as model 'other'") != std::string::npos);
  CHECK_FALSE(p.retryable);
  p = parse_completion_response(
      answer({{"text", "x"}, {"finish_reason", "length"}}, {{"prompt_tokens", 3}, {"completion_tokens", 11}}), r, "m",
      tokenizer());
  CHECK(p.error.find("max_tokens") != std::string::npos);
  CHECK_FALSE(p.retryable);
  // The same model under its hub name is the same model.
  p = parse_completion_response(answer({{"text", "x"}, {"finish_reason", "length"}}, {}, "org/M"), r, "/models/m",
                                tokenizer());
  CHECK(p.error.empty());
}

TEST_CASE("token counts: the server's, checked against the prompt; re-tokenized when it gives none") {
  const CompletionRequest r = request();
  auto p = parse_completion_response(answer({{"text", "x"}, {"finish_reason", "stop"}, {"stop_reason", nullptr}},
                                            {{"prompt_tokens", 4}, {"completion_tokens", 2}}),
                                     r, "m", tokenizer());
  REQUIRE(p.error.empty());
  CHECK(p.completion.prompt_tokens == 4);
  REQUIRE(p.warnings.size() == 1);
  CHECK(p.warnings[0].first.find("prompt_tokens") != std::string::npos);

  p = parse_completion_response(
      json{{"choices", json::array({{{"text", "hello world"}, {"finish_reason", "stop"}, {"stop_reason", nullptr}}})}}
          .dump(),
      r, "m", tokenizer());
  REQUIRE(p.error.empty());
  CHECK(p.completion.prompt_tokens == 3);
  // "hello world" is two Qwen tokens, plus the end-of-sequence token that finished it.
  CHECK(p.completion.generated_tokens == static_cast<int>(tokenizer().encode("hello world").size()) + 1);
  CHECK(p.warnings.size() == 2);
}

TEST_CASE("the served model matches --model by its last path component, without case") {
  CHECK(served_model_matches("Qwen/Qwen3-8B", {"/models/qwen3-8b"}));
  CHECK(served_model_matches("/data/Qwen3-8B/", {"Qwen/Qwen3-8B"}));
  CHECK(served_model_matches("qwen3-8b", {"elsewhere", "Qwen/Qwen3-8B"}));
  CHECK_FALSE(served_model_matches("Qwen/Qwen3-8B-Base", {"Qwen/Qwen3-8B"}));
  CHECK_FALSE(served_model_matches("", {""}));
}

TEST_CASE("URLs in reports lose their credentials and query") {
  CHECK(redact_url("http://user:secret@host:8000/v1") == "http://host:8000/v1");
  CHECK(redact_url("https://host/v1?api_key=secret") == "https://host/v1");
  CHECK(redact_url("http://host:8000") == "http://host:8000");
  CHECK(redact_url("host:8000") == "host:8000");
}
