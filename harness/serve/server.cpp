#include "harness/serve/server.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <future>
#include <random>
#include <stdexcept>

#include "harness/common/version.hpp"

namespace quanteval::harness {

using nlohmann::json;

namespace {

// A request the server answers with an error status (the client's fault unless 5xx).
struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, const std::string& message)
      : std::runtime_error(message), status(status), type(std::move(type)) {}
  int status;
  std::string type;
};

ApiError bad_request(const std::string& message) { return {400, "invalid_request_error", message}; }

std::string error_body(int status, const std::string& type, const std::string& message) {
  return json{{"error", {{"message", message}, {"type", type}, {"code", status}}}}.dump();
}

void send_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  res.status = status;
  res.set_content(error_body(status, type, message), "application/json");
}

void send_json(httplib::Response& res, const json& body) {
  res.status = 200;
  // The runtime's text is valid UTF-8 (its decoder is lossy); replace is the guard if that ever breaks.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

const json* field(const json& body, const char* name);

// A finished answer in OpenAI's streaming framing (server-sent events), for clients that ask for
// "stream": the runtime has no per-token hook, so each choice's whole text comes in one event, then
// an event with its finish reason, the usage when stream_options.include_usage, and [DONE].
void send_events(httplib::Response& res, const json& answer, bool chat, bool include_usage) {
  std::string out;
  auto event = [&](json choices, const json* usage) {
    json e = {{"id", answer["id"]},
              {"object", chat ? "chat.completion.chunk" : "text_completion"},
              {"created", answer["created"]},
              {"model", answer["model"]},
              {"choices", std::move(choices)}};
    if (usage) e["usage"] = *usage;
    out += "data: " + e.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
  };
  for (const auto& c : answer["choices"]) {
    json text = {{"index", c["index"]}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
    json end = {{"index", c["index"]},
                {"logprobs", nullptr},
                {"finish_reason", c["finish_reason"]},
                {"stop_reason", c["stop_reason"]}};
    if (chat) {
      text["delta"] = {{"role", "assistant"}, {"content", c["message"]["content"]}};
      end["delta"] = json::object();
    } else {
      text["text"] = c["text"];
      end["text"] = "";
    }
    event(json::array({text}), nullptr);
    event(json::array({end}), nullptr);
  }
  if (include_usage) event(json::array(), &answer["usage"]);
  out += "data: [DONE]\n\n";
  res.status = 200;
  res.set_content(out, "text/event-stream");
}

// Answers `answer` as JSON, or as events when the request asked for "stream".
void send_answer(httplib::Response& res, const json& request, const json& answer, bool chat) {
  const json* stream = field(request, "stream");
  if (stream && !stream->is_boolean()) throw bad_request("'stream' must be true or false");
  if (!stream || !stream->get<bool>()) return send_json(res, answer);
  const json* options = field(request, "stream_options");
  const bool usage = options && options->is_object() && options->value("include_usage", false);
  send_events(res, answer, chat, usage);
}

json parse_body(const httplib::Request& req) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) throw bad_request("the request body is not valid JSON");
  if (!body.is_object()) throw bad_request("the request body must be a JSON object");
  return body;
}

// A field of the request: absent and null are the same (the OpenAI clients send null).
const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* name, double fallback, double low, double high) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) throw bad_request(fmt::format("'{}' must be a number, got {}", name, v->dump()));
  const double x = v->get<double>();
  if (!(x >= low && x <= high)) throw bad_request(fmt::format("'{}' must be in [{}, {}], got {}", name, low, high, x));
  return x;
}

long long integer(const json& body, const char* name, long long fallback, long long low, long long high) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) throw bad_request(fmt::format("'{}' must be an integer, got {}", name, v->dump()));
  const long long x = v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(high)
                          ? high + 1
                          : v->get<long long>();
  if (x < low || x > high)
    throw bad_request(fmt::format("'{}' must be in [{}, {}], got {}", name, low, high, v->dump()));
  return x;
}

bool flag(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return false;
  if (!v->is_boolean()) throw bad_request(fmt::format("'{}' must be true or false, got {}", name, v->dump()));
  return v->get<bool>();
}

// What the runtime cannot do is refused, never silently ignored.
void refuse_unsupported(const json& body) {
  if (flag(body, "echo")) throw bad_request("'echo' is not supported by quanteval serve");
  if (const json* lp = field(body, "logprobs"); lp && !(lp->is_boolean() && !lp->get<bool>()) && *lp != 0)
    throw bad_request("'logprobs' is not supported: the runtime does not expose per-token log-probabilities");
  if (integer(body, "top_logprobs", 0, 0, 1 << 20) != 0) throw bad_request("'top_logprobs' is not supported");
  if (integer(body, "n", 1, 1, 1 << 20) != 1) throw bad_request("only n = 1 is supported");
  if (integer(body, "best_of", 1, 1, 1 << 20) != 1) throw bad_request("only best_of = 1 is supported");
  if (flag(body, "ignore_eos")) throw bad_request("'ignore_eos' is not supported");
  if (flag(body, "include_stop_str_in_output")) throw bad_request("'include_stop_str_in_output' is not supported");
  if (const json* s = field(body, "skip_special_tokens"); s && s->is_boolean() && s->get<bool>())
    throw bad_request("'skip_special_tokens': only false is supported (special tokens stay in the text)");
  for (const char* name : {"presence_penalty", "frequency_penalty"})
    if (number(body, name, 0, -2, 2) != 0) throw bad_request(fmt::format("'{}' other than 0 is not supported", name));
  if (number(body, "repetition_penalty", 1, 0, 100) != 1)
    throw bad_request("'repetition_penalty' other than 1 is not supported");
}

runtime::SamplingParams sampling_from(const json& body) {
  runtime::SamplingParams s;
  s.temperature = static_cast<float>(number(body, "temperature", 1.0, 0, 100));  // OpenAI's default: 1
  s.top_p = static_cast<float>(number(body, "top_p", 1.0, 0, 1));
  if (s.top_p <= 0) throw bad_request("'top_p' must be in (0, 1]");
  const long long top_k = integer(body, "top_k", -1, -1, 1 << 30);
  s.top_k = top_k <= 0 ? 0 : static_cast<int>(top_k);  // -1 and 0 are off, as in vLLM and SGLang
  s.min_p = static_cast<float>(number(body, "min_p", 0, 0, 1));
  if (const json* seed = field(body, "seed")) {
    if (!seed->is_number_integer()) throw bad_request("'seed' must be an integer");
    s.seed =
        seed->is_number_unsigned() ? seed->get<std::uint64_t>() : static_cast<std::uint64_t>(seed->get<std::int64_t>());
  } else {
    s.seed = std::random_device{}();  // no seed: a fresh stream, as OpenAI servers do
  }
  return s;
}

std::vector<std::string> stops_from(const json& body) {
  const json* v = field(body, "stop");
  if (!v) return {};
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const auto& s : *v) {
      if (!s.is_string()) throw bad_request("'stop' must be a string or a list of strings");
      stops.push_back(s.get<std::string>());
    }
  } else {
    throw bad_request("'stop' must be a string or a list of strings");
  }
  if (stops.size() > 64) throw bad_request("at most 64 stop strings");
  for (const auto& s : stops)
    if (s.empty()) throw bad_request("a stop string must not be empty");
  return stops;
}

// The stop string that ended `result` (finish stop): the one found where its text was cut.
json stop_reason(const runtime::GenerationResult& result, const std::vector<std::string>& stops,
                 const runtime::Tokenizer& tokenizer) {
  if (result.finish != runtime::FinishReason::stop || stops.empty()) return nullptr;
  const std::string full = tokenizer.decode(result.tokens);
  for (const auto& s : stops)
    if (full.compare(result.text.size(), s.size(), s) == 0) return s;
  return stops.front();
}

const char* openai_finish(runtime::FinishReason finish) {
  return finish == runtime::FinishReason::length ? "length" : "stop";  // eos is a stop without stop_reason
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string lower_last_component(std::string name) {
  while (!name.empty() && name.back() == '/') name.pop_back();
  if (const auto slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// Counts a request as generating for its lifetime; 429 when the server is full.
class ConcurrencySlot {
 public:
  ConcurrencySlot(std::atomic<int>& in_flight, int limit) : in_flight_(in_flight) {
    if (++in_flight_ > limit) {
      --in_flight_;
      throw ApiError(429, "rate_limit_error",
                     fmt::format("the server is generating {} requests already (--max-concurrency)", limit));
    }
  }
  ~ConcurrencySlot() { --in_flight_; }
  ConcurrencySlot(const ConcurrencySlot&) = delete;
  ConcurrencySlot& operator=(const ConcurrencySlot&) = delete;

 private:
  std::atomic<int>& in_flight_;
};

}  // namespace

struct CompletionServer::Pending {
  std::promise<runtime::GenerationResult> result;
};

CompletionServer::CompletionServer(runtime::Model& model, const runtime::Tokenizer& tokenizer,
                                   const runtime::ChatTemplate* chat, ServeOptions options)
    : model_(model),
      tokenizer_(tokenizer),
      chat_(chat),
      options_(std::move(options)),
      generator_(model, tokenizer, options_.generator),
      http_(std::make_unique<httplib::Server>()) {
  const std::size_t threads = static_cast<std::size_t>(options_.max_concurrency) + 8;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(options_.max_request_bytes);
  // Clients such as run --endpoint keep one connection per worker for thousands of requests.
  http_->set_keep_alive_max_count(100000);
  http_->set_keep_alive_timeout(2);
  if (options_.log_requests)
    http_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
      fmt::print(stderr, "quanteval serve: {} {} {} {}:{}\n", req.method, req.path, res.status, req.remote_addr,
                 req.remote_port);
    });
  install_routes();
  loop_ = std::thread([this] { generator_loop(); });
}

CompletionServer::~CompletionServer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  if (loop_.joinable()) loop_.join();
}

int CompletionServer::bind() {
  if (options_.port == 0) {
    const int port = http_->bind_to_any_port(options_.host);
    if (port <= 0) throw std::runtime_error(fmt::format("cannot bind {} on any port", options_.host));
    return port;
  }
  if (!http_->bind_to_port(options_.host, options_.port))
    throw std::runtime_error(
        fmt::format("cannot bind {}:{} (in use, or not an address of this machine)", options_.host, options_.port));
  return options_.port;
}

void CompletionServer::serve() {
  http_->listen_after_bind();  // returns after stop(), once every handler thread has finished
}

void CompletionServer::stop() { http_->stop(); }

void CompletionServer::generator_loop() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_.wait(lock, [&] { return outstanding_ > 0 || stopping_; });
      if (outstanding_ <= 0 && stopping_) return;
    }
    try {
      generator_.run([&](runtime::GenerationResult result) {
        std::shared_ptr<Pending> p;
        {
          std::lock_guard lock(mutex_);
          --outstanding_;
          const auto it = pending_.find(result.id);
          if (it == pending_.end()) return;
          p = it->second;
          pending_.erase(it);
        }
        p->result.set_value(std::move(result));
      });
    } catch (const std::exception& e) {
      // The model failed: nothing more can be trusted from it. Every waiting request gets the error.
      std::lock_guard lock(mutex_);
      broken_ = e.what();
      for (auto& [id, p] : pending_)
        p->result.set_exception(
            std::make_exception_ptr(ApiError(500, "server_error", "generation failed: " + broken_)));
      pending_.clear();
      outstanding_ = 0;
    }
  }
}

runtime::GenerationResult CompletionServer::generate(runtime::GenerationRequest request) {
  request.id = next_id_++;
  auto pending = std::make_shared<Pending>();
  auto result = pending->result.get_future();
  {
    std::lock_guard lock(mutex_);
    if (!broken_.empty()) throw ApiError(500, "server_error", "generation failed earlier: " + broken_);
    pending_[request.id] = pending;
  }
  try {
    generator_.submit(std::move(request));
  } catch (const std::exception& e) {
    std::lock_guard lock(mutex_);
    pending_.erase(request.id);
    throw bad_request(e.what());
  }
  {
    std::lock_guard lock(mutex_);
    ++outstanding_;
  }
  work_.notify_all();
  // A client that disconnects meanwhile is noticed only when the answer is written: the runtime
  // cannot cancel a sequence, and max_tokens bounds how long it runs.
  return result.get();
}

void CompletionServer::install_routes() {
  httplib::Server& http = *http_;
  const json model_card = {{"id", options_.served_name},
                           {"object", "model"},
                           {"created", unix_now()},
                           {"owned_by", "quanteval"},
                           {"root", model_.directory().string()},
                           {"max_model_len", model_.config().max_position_embeddings}};

  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + options_.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, 401, "authentication_error", "missing or wrong API key (Authorization: Bearer ...)");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib sets itself (404 no route, 413 too large, 400 bad framing) get a JSON body too.
  http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string message =
        res.status == 413
            ? fmt::format("the request is larger than {} bytes (--max-request-bytes)", options_.max_request_bytes)
        : res.status == 404 ? std::string("no such route")
                            : fmt::format("HTTP {}", res.status);
    send_error(res, res.status, res.status >= 500 ? "server_error" : "invalid_request_error", message);
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
    try {
      std::rethrow_exception(error);
    } catch (const ApiError& e) {
      send_error(res, e.status, e.type, e.what());
    } catch (const std::exception& e) {
      send_error(res, 500, "server_error", e.what());
    } catch (...) {
      send_error(res, 500, "server_error", "unknown error");
    }
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard lock(mutex_);
    if (!broken_.empty()) return send_error(res, 503, "server_error", "generation failed: " + broken_);
    send_json(res, {{"status", "ok"}});
  });
  http.Get("/v1/models", [model_card](const httplib::Request&, httplib::Response& res) {
    send_json(res, {{"object", "list"}, {"data", json::array({model_card})}});
  });
  http.Get("/version", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, {{"server", "quanteval"}, {"version", tool_version()}});
  });

  // A conversation rendered by the model's chat template.
  auto render_messages = [this](const json& body) {
    if (!chat_) throw bad_request("the model has no chat template");
    const json* messages = field(body, "messages");
    if (!messages || !messages->is_array() || messages->empty())
      throw bad_request("'messages' must be a non-empty list");
    for (const auto& m : *messages)
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        throw bad_request("each message must be an object with a 'role' string");
    runtime::ChatOptions chat_options;
    chat_options.add_generation_prompt = true;
    if (const json* kwargs = field(body, "chat_template_kwargs")) {
      if (!kwargs->is_object()) throw bad_request("'chat_template_kwargs' must be an object");
      for (const auto& [key, value] : kwargs->items()) {
        if (key == "enable_thinking") {
          if (!value.is_boolean()) throw bad_request("'chat_template_kwargs.enable_thinking' must be true or false");
          chat_options.enable_thinking = value.get<bool>();
        } else if (key == "add_generation_prompt" && value.is_boolean()) {
          chat_options.add_generation_prompt = value.get<bool>();
        } else {
          chat_options.extra_variables[key] = value;
        }
      }
    }
    try {
      return chat_->render_chat(nlohmann::ordered_json(*messages), chat_options);
    } catch (const std::exception& e) {
      throw bad_request(fmt::format("the chat template failed on these messages: {}", e.what()));
    }
  };

  auto check_model = [this](const json& body) {
    const json* model = field(body, "model");
    if (!model) return;
    if (!model->is_string()) throw bad_request("'model' must be a string");
    const std::string name = model->get<std::string>();
    if (name != options_.served_name && lower_last_component(name) != lower_last_component(options_.served_name))
      throw ApiError(
          404, "not_found_error",
          fmt::format("the model '{}' is not served here (this server serves '{}')", name, options_.served_name));
  };

  http.Post("/tokenize", [this, render_messages](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    std::string text;
    if (field(body, "messages")) {
      text = render_messages(body);
    } else {
      const json* prompt = field(body, "prompt");
      if (!prompt || !prompt->is_string()) throw bad_request("'prompt' must be a string (or give 'messages')");
      text = prompt->get<std::string>();
    }
    const auto ids = tokenizer_.encode(text);
    send_json(res,
              {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", model_.config().max_position_embeddings}});
  });
  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    const json* tokens = field(body, "tokens");
    if (!tokens || !tokens->is_array()) throw bad_request("'tokens' must be a list of token ids");
    std::vector<runtime::TokenId> ids;
    for (const auto& t : *tokens) {
      if (!t.is_number_integer() || t.get<long long>() < 0 ||
          !tokenizer_.contains(static_cast<runtime::TokenId>(t.get<long long>())))
        throw bad_request(fmt::format("{} is not a token id of this tokenizer", t.dump()));
      ids.push_back(static_cast<runtime::TokenId>(t.get<long long>()));
    }
    send_json(res, {{"prompt", tokenizer_.decode(ids)}});
  });

  // The parts of a generation request shared by both routes.
  auto request_from = [this](const json& body, std::vector<runtime::TokenId> prompt) {
    refuse_unsupported(body);
    runtime::GenerationRequest r;
    if (prompt.empty()) throw bad_request("the prompt is empty");
    r.prompt = std::move(prompt);
    const json* max_tokens =
        field(body, "max_tokens") ? field(body, "max_tokens") : field(body, "max_completion_tokens");
    r.max_new_tokens = options_.default_max_tokens;
    if (max_tokens) {
      if (!max_tokens->is_number_integer() || max_tokens->get<long long>() < 1 ||
          max_tokens->get<long long>() > options_.max_tokens_limit)
        throw bad_request(fmt::format("'max_tokens' must be an integer in [1, {}] (--max-tokens-limit), got {}",
                                      options_.max_tokens_limit, max_tokens->dump()));
      r.max_new_tokens = static_cast<int>(max_tokens->get<long long>());
    }
    r.sampling = sampling_from(body);
    r.stop_strings = stops_from(body);
    return r;
  };

  http.Post("/v1/completions", [this, check_model, request_from](const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req);
    check_model(body);
    // Prompts: a string, a list of token ids, or a list of either (one choice each).
    const json* prompt = field(body, "prompt");
    if (!prompt) throw bad_request("'prompt' is required");
    std::vector<std::vector<runtime::TokenId>> prompts;
    auto ids_of = [&](const json& p) {
      if (p.is_string()) return tokenizer_.encode(p.get<std::string>());
      if (!p.is_array()) throw bad_request("'prompt' must be a string, a list of token ids, or a list of those");
      std::vector<runtime::TokenId> ids;
      for (const auto& t : p) {
        if (!t.is_number_integer() || t.get<long long>() < 0 || t.get<long long>() >= (1ll << 31))
          throw bad_request(fmt::format("{} is not a token id", t.dump()));
        ids.push_back(static_cast<runtime::TokenId>(t.get<long long>()));
      }
      return ids;
    };
    if (prompt->is_array() && !prompt->empty() && ((*prompt)[0].is_string() || (*prompt)[0].is_array())) {
      if (prompt->size() > 64) throw bad_request("at most 64 prompts per request");
      for (const auto& p : *prompt) prompts.push_back(ids_of(p));
    } else {
      prompts.push_back(ids_of(*prompt));
    }
    std::vector<runtime::GenerationRequest> requests;
    for (auto& ids : prompts) requests.push_back(request_from(body, std::move(ids)));

    ConcurrencySlot slot(in_flight_, options_.max_concurrency);
    // Submitted together, so they are batched together; answered in prompt order.
    std::vector<std::future<runtime::GenerationResult>> futures;
    std::vector<std::vector<std::string>> stops;  // kept: the requests move into the generator
    for (const auto& r : requests) stops.push_back(r.stop_strings);
    for (auto& r : requests)
      futures.push_back(std::async(std::launch::async, [this, r = std::move(r)]() mutable { return generate(r); }));
    json choices = json::array();
    std::int64_t prompt_tokens = 0, completion_tokens = 0;
    for (std::size_t i = 0; i < futures.size(); ++i) {
      const runtime::GenerationResult result = futures[i].get();
      prompt_tokens += result.prompt_tokens;
      completion_tokens += static_cast<std::int64_t>(result.tokens.size());
      choices.push_back({{"index", i},
                         {"text", result.text},
                         {"logprobs", nullptr},
                         {"finish_reason", openai_finish(result.finish)},
                         {"stop_reason", stop_reason(result, stops[i], tokenizer_)}});
    }
    send_answer(res, body,
                {{"id", fmt::format("cmpl-{}", next_id_.load())},
                 {"object", "text_completion"},
                 {"created", unix_now()},
                 {"model", options_.served_name},
                 {"choices", choices},
                 {"usage",
                  {{"prompt_tokens", prompt_tokens},
                   {"completion_tokens", completion_tokens},
                   {"total_tokens", prompt_tokens + completion_tokens}}}},
                false);
  });

  http.Post("/v1/chat/completions",
            [this, check_model, request_from, render_messages](const httplib::Request& req, httplib::Response& res) {
              const json body = parse_body(req);
              check_model(body);
              runtime::GenerationRequest request = request_from(body, tokenizer_.encode(render_messages(body)));
              const std::vector<std::string> stops = request.stop_strings;
              ConcurrencySlot slot(in_flight_, options_.max_concurrency);
              const runtime::GenerationResult result = generate(std::move(request));
              const auto completion_tokens = static_cast<std::int64_t>(result.tokens.size());
              send_answer(res, body,
                          {{"id", fmt::format("chatcmpl-{}", next_id_.load())},
                           {"object", "chat.completion"},
                           {"created", unix_now()},
                           {"model", options_.served_name},
                           {"choices", json::array({{{"index", 0},
                                                     {"message", {{"role", "assistant"}, {"content", result.text}}},
                                                     {"logprobs", nullptr},
                                                     {"finish_reason", openai_finish(result.finish)},
                                                     {"stop_reason", stop_reason(result, stops, tokenizer_)}}})},
                           {"usage",
                            {{"prompt_tokens", result.prompt_tokens},
                             {"completion_tokens", completion_tokens},
                             {"total_tokens", result.prompt_tokens + completion_tokens}}}},
                          true);
            });
}

}  // namespace quanteval::harness
