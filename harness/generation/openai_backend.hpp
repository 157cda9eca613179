#pragma once
// OpenAI-compatible servers as a generation backend (vLLM, SGLang, `quanteval
// serve`, or several of them): each request is one POST /v1/completions whose
// prompt is quanteval's token ids, so the server's template and tokenizer never
// change what the model sees. Every sampling field is sent explicitly (vLLM
// otherwise fills what is missing from the checkpoint's generation_config.json),
// and what the server did is checked and counted: its finish reasons, its token
// counts, the model it answered as. See docs/endpoints.md.
//
// Requests run on endpoints x concurrency worker threads, each with its own
// HTTP connection; each attempt goes to the endpoint with the fewest requests in
// flight. 429, 5xx, malformed answers, timeouts and connection errors are
// retried with exponential backoff and jitter; a request that still fails is
// delivered with `failure` set (backend.hpp).
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness/generation/backend.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {

class HttpClient;

class OpenAIBackend final : public GenerationBackend {
 public:
  struct Options {
    std::vector<std::string> endpoints;       // base URLs ("http://host:8000" or ".../v1")
    std::string api_key;                      // sent as a bearer token; never written anywhere
    std::optional<std::string> served_model;  // the served name to use, as the user stated it
    std::vector<std::string> model_names;     // names of --model a served name may match (see served_model_matches)
    int concurrency = 8;                      // requests in flight per endpoint
    double request_timeout_s = 1800;          // one attempt, connect to last byte
    int retries = 6;                          // attempts after the first
    double backoff_s = 0.5;                   // base of the exponential backoff
  };

  // Connects to every endpoint: GET /v1/models (the served model must match,
  // else std::runtime_error naming what is served) and the server's version.
  // `tokenizer` (the model's) must outlive the backend.
  OpenAIBackend(Options options, const runtime::Tokenizer& tokenizer);
  ~OpenAIBackend() override;

  BackendInfo info() const override;
  GenerationProgress complete(std::vector<CompletionRequest> requests, const OnCompletion& on_completion,
                              const OnProgress& on_progress) override;

 private:
  // One server: where it is, what it serves, and its counters (read by info()).
  struct Endpoint {
    std::string base;          // scheme://host:port[/prefix], no trailing /v1
    std::string shown;         // base without credentials: what reports show
    std::string served_model;  // the name sent as "model"
    std::string server_version;
    bool quanteval = false;        // the server is quanteval serve (takes the full 64-bit seed)
    nlohmann::json max_model_len;  // as /v1/models reported it (null when not)
    std::atomic<int> in_flight{0};
    std::atomic<std::size_t> requests{0}, retried{0}, failed{0};
  };

  Completion run_one(HttpClient& client, const CompletionRequest& request, std::uint64_t jitter_seed);
  Endpoint& pick_endpoint(const Endpoint* avoid);
  void warn(const std::string& kind, const std::string& example);

  Options options_;
  const runtime::Tokenizer& tokenizer_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::atomic<bool> abort_{false};
  std::atomic<int> failed_in_a_row_{0};  // requests that failed after every retry, since the last success
  mutable std::mutex stats_mutex_;       // guards the fields below
  std::map<std::string, std::pair<std::size_t, std::string>> warnings_;  // kind -> count, first example
  std::uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  std::size_t delivered_ = 0, failures_ = 0;
  double wall_seconds_ = 0, client_seconds_ = 0;
};

// Whether a served model name (or its `root` path) names the checkpoint of
// --model: the last path component compared without case, so "Qwen/Qwen3-8B"
// matches "/models/qwen3-8b" and "Qwen3-8B".
bool served_model_matches(const std::string& served, const std::vector<std::string>& model_names);

// The body of POST /v1/completions for one request (exposed for tests).
// `full_seed`: the sample's 64-bit seed as is (quanteval serve takes it, so a
// sampled run through it draws what the embedded runtime draws); otherwise
// folded into the signed 64-bit range that vLLM and SGLang accept.
nlohmann::json completion_request_body(const CompletionRequest& request, const std::string& model,
                                       bool full_seed = false);

// One /v1/completions answer, checked: a completion, or why the answer cannot
// be used (`error`, and whether trying again may help).
struct ParsedCompletion {
  Completion completion;
  std::string error;
  bool retryable = false;
  std::vector<std::pair<std::string, std::string>> warnings;  // kind, example
};
ParsedCompletion parse_completion_response(const std::string& body, const CompletionRequest& request,
                                           const std::string& served_model, const runtime::Tokenizer& tokenizer);

}  // namespace quanteval::harness
