#pragma once
// `quanteval serve`: the embedded runtime behind a subset of the OpenAI HTTP
// protocol, so that `quanteval run --endpoint`, lm-evaluation-harness's
// local-completions, or curl can drive it.
//
//   GET  /health               {"status": "ok"} (503 once generation has broken)
//   GET  /v1/models            the one served model (id, root, max_model_len)
//   GET  /version              {"server": "quanteval", "version": ...}
//   POST /tokenize             {"prompt": text} or {"messages": [...]} -> {"tokens", "count"}
//   POST /detokenize           {"tokens": [...]} -> {"prompt": text}
//   POST /v1/completions       text or token-id prompt(s), max_tokens, stop, temperature, top_p,
//                              top_k, min_p, seed; logprobs/echo/n > 1 are refused (400); "stream"
//                              gets server-sent events (the whole text in one event: no per-token hook)
//   POST /v1/chat/completions  messages through the model's chat template
//                              (chat_template_kwargs.enable_thinking)
//
// Every request of every connection is submitted to one runtime::Generator
// whose loop runs on its own thread, so all of them are batched together
// (continuous batching). Errors are {"error": {"message", "type", "code"}}
// with a 4xx status for what the client got wrong; 429 when --max-concurrency
// requests are already generating; 413 above --max-request-bytes.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "runtime/runtime.hpp"

namespace httplib {
class Server;
}

namespace quanteval::harness {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 0;              // 0 = any free port (bind() returns it)
  std::string api_key;       // empty = no check; else "Authorization: Bearer KEY" on every route but /health
  std::string served_name;   // the model's name in /v1/models and every answer
  int max_concurrency = 64;  // requests generating at once; more get 429
  std::size_t max_request_bytes = 8 << 20;
  int max_tokens_limit = 32768;         // the largest max_tokens accepted
  int default_max_tokens = 16;          // OpenAI's default when a request gives none
  bool log_requests = true;             // one line per request on stderr (method, path, status, client)
  runtime::GeneratorOptions generator;  // max_batch, prefill budget
};

class CompletionServer {
 public:
  // `chat` may be null (then /v1/chat/completions answers 400). Model,
  // tokenizer and template must outlive the server.
  CompletionServer(runtime::Model& model, const runtime::Tokenizer& tokenizer, const runtime::ChatTemplate* chat,
                   ServeOptions options);
  ~CompletionServer();
  CompletionServer(const CompletionServer&) = delete;
  CompletionServer& operator=(const CompletionServer&) = delete;

  // Binds host:port; returns the bound port. Throws std::runtime_error when it cannot.
  int bind();
  // Serves until stop(); then lets every request in flight finish and returns.
  void serve();
  // Stops accepting connections (thread-safe; from a signal thread).
  void stop();

 private:
  struct Pending;
  // Submits one request to the generator and waits for its result. Throws
  // std::invalid_argument (-> 400) for a request the generator refuses.
  runtime::GenerationResult generate(runtime::GenerationRequest request);
  void generator_loop();
  void install_routes();

  runtime::Model& model_;
  const runtime::Tokenizer& tokenizer_;
  const runtime::ChatTemplate* chat_;
  ServeOptions options_;
  runtime::Generator generator_;
  std::unique_ptr<httplib::Server> http_;

  std::mutex mutex_;  // guards pending_, outstanding_, stopping_, broken_
  std::condition_variable work_;
  std::map<std::uint64_t, std::shared_ptr<Pending>> pending_;
  long outstanding_ = 0;  // submitted and not finished
  bool stopping_ = false;
  std::string broken_;  // non-empty: the generator failed (the message); every request answers 500
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<int> in_flight_{0};
  std::thread loop_;
};

}  // namespace quanteval::harness
