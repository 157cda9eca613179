#include "harness/generation/openai_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <random>
#include <stdexcept>
#include <thread>

#include "harness/generation/http_client.hpp"

namespace quanteval::harness {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string last_component(std::string name) {
  while (!name.empty() && name.back() == '/') name.pop_back();
  const auto slash = name.rfind('/');
  return slash == std::string::npos ? name : name.substr(slash + 1);
}

// "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/completions" -> "http://h:8000".
std::string normalize_base(std::string url) {
  if (url.find("://") == std::string::npos) url = "http://" + url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  for (const std::string_view tail : {"/v1/completions", "/v1"})
    if (url.size() > tail.size() && url.compare(url.size() - tail.size(), tail.size(), tail) == 0)
      url.resize(url.size() - tail.size());
  return url;
}

// The start of a body for an error message: servers answer HTML, binary junk, megabytes.
std::string excerpt(const std::string& body) {
  std::string out;
  for (const char c : body.substr(0, 160)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  if (body.size() > 160) out += "...";
  return out.empty() ? "(empty body)" : out;
}

// The message of an OpenAI-style error body, or an excerpt of whatever came.
std::string error_message(const std::string& body) {
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_object()) {
    const auto it = parsed.find("error");
    if (it != parsed.end() && it->is_object() && it->contains("message") && (*it)["message"].is_string())
      return (*it)["message"].get<std::string>();
    if (it != parsed.end() && it->is_string()) return it->get<std::string>();
    if (parsed.contains("detail") && parsed["detail"].is_string())
      return parsed["detail"].get<std::string>();  // FastAPI
  }
  return excerpt(body);
}

bool retryable_status(long status) { return status == 408 || status == 429 || status >= 500; }

const json* integer_field(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || !it->is_number_integer()) return nullptr;
  return &*it;
}

}  // namespace

bool served_model_matches(const std::string& served, const std::vector<std::string>& model_names) {
  const std::string want = lower(last_component(served));
  if (want.empty()) return false;
  return std::any_of(model_names.begin(), model_names.end(),
                     [&](const std::string& name) { return lower(last_component(name)) == want; });
}

json completion_request_body(const CompletionRequest& request, const std::string& model, bool full_seed) {
  const runtime::SamplingParams& s = request.sampling;
  json body;
  body["model"] = model;
  body["prompt"] = request.prompt;  // token ids: the server neither templates nor tokenizes
  body["max_tokens"] = request.max_tokens;
  // Every sampling field explicitly: a missing one is filled by the server, vLLM from the
  // checkpoint's generation_config.json (Qwen's: temperature 0.7, top-k 20, repetition penalty...).
  body["temperature"] = s.temperature;
  body["top_p"] = s.top_p;
  body["top_k"] = s.top_k == 0 ? -1 : s.top_k;  // vLLM and SGLang: -1 = off
  body["min_p"] = s.min_p;
  body["repetition_penalty"] = 1.0;
  body["presence_penalty"] = 0.0;
  body["frequency_penalty"] = 0.0;
  // vLLM and SGLang take a signed 64-bit seed; the sample's seed is folded into that range.
  if (full_seed)
    body["seed"] = s.seed;
  else
    body["seed"] = static_cast<std::int64_t>(s.seed & 0x7fffffffffffffffull);
  body["n"] = 1;
  body["stream"] = false;
  body["stop"] = request.stop;
  body["include_stop_str_in_output"] = false;
  body["ignore_eos"] = false;
  // The embedded runtime's text: special tokens kept, nothing inserted between them.
  body["skip_special_tokens"] = false;
  body["spaces_between_special_tokens"] = false;
  return body;
}

ParsedCompletion parse_completion_response(const std::string& body, const CompletionRequest& request,
                                           const std::string& served_model, const runtime::Tokenizer& tokenizer) {
  ParsedCompletion out;
  auto fail = [&](std::string why, bool retryable) {
    out.error = std::move(why);
    out.retryable = retryable;
    return out;
  };
  const json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded()) return fail("the answer is not JSON: " + excerpt(body), true);
  if (!parsed.is_object()) return fail("the answer is not a JSON object: " + excerpt(body), true);
  if (parsed.contains("error")) return fail("the server answered an error: " + error_message(body), true);
  if (const auto it = parsed.find("model");
      it != parsed.end() && it->is_string() && *it != served_model && !served_model_matches(*it, {served_model}))
    return fail(fmt::format("the server answered as model '{}', not '{}'", it->get<std::string>(), served_model),
                false);
  const auto choices = parsed.find("choices");
  if (choices == parsed.end() || !choices->is_array() || choices->size() != 1 || !(*choices)[0].is_object())
    return fail("the answer has no single 'choices' entry: " + excerpt(body), true);
  const json& choice = (*choices)[0];
  if (!choice.contains("text") || !choice["text"].is_string())
    return fail("the answer's choice has no 'text' string: " + excerpt(body), true);
  Completion& c = out.completion;
  c.id = request.id;
  c.text = choice["text"].get<std::string>();

  const std::string finish = choice.contains("finish_reason") && choice["finish_reason"].is_string()
                                 ? choice["finish_reason"].get<std::string>()
                                 : std::string("(none)");
  if (finish == "length") {
    c.finish = FinishReason::length;
  } else if (finish == "stop") {
    // What stopped it: vLLM's stop_reason, SGLang's matched_stop -- a string is one of our stop
    // strings, a token id or null is end-of-sequence.
    const json* why = nullptr;
    bool told = false;  // the server said (vLLM sends stop_reason null for end-of-sequence)
    for (const char* name : {"stop_reason", "matched_stop"}) {
      if (!choice.contains(name)) continue;
      told = true;
      if (!choice[name].is_null()) why = &choice[name];
    }
    if (why && why->is_string()) {
      const std::string matched = why->get<std::string>();
      if (std::find(request.stop.begin(), request.stop.end(), matched) == request.stop.end())
        out.warnings.push_back({"stopped at a string that was not asked for", matched});
      c.finish = FinishReason::stop;
    } else {
      c.finish = FinishReason::eos;
      if (!told && !request.stop.empty())
        out.warnings.push_back({"finish 'stop' without stop_reason/matched_stop: taken as end-of-sequence",
                                fmt::format("request {}", request.id)});
    }
  } else {
    return fail(fmt::format("unexpected finish_reason '{}'", finish), true);
  }

  const json* usage = parsed.contains("usage") && parsed["usage"].is_object() ? &parsed["usage"] : nullptr;
  const json* prompt_tokens = usage ? integer_field(*usage, "prompt_tokens") : nullptr;
  const json* completion_tokens = usage ? integer_field(*usage, "completion_tokens") : nullptr;
  const int our_prompt = static_cast<int>(request.prompt.size());
  c.prompt_tokens = our_prompt;
  if (prompt_tokens) {
    c.prompt_tokens = prompt_tokens->get<int>();
    if (c.prompt_tokens != our_prompt)
      out.warnings.push_back({"usage.prompt_tokens differs from the prompt sent",
                              fmt::format("sent {} tokens, the server counted {}", our_prompt, c.prompt_tokens)});
  } else {
    out.warnings.push_back({"no usage.prompt_tokens: the prompt's own length recorded", ""});
  }
  if (completion_tokens) {
    c.generated_tokens = completion_tokens->get<int>();
  } else {
    // Without the server's count, the text re-tokenized (an approximation: say so in the report).
    c.generated_tokens = static_cast<int>(tokenizer.encode(c.text).size()) + (c.finish == FinishReason::eos ? 1 : 0);
    out.warnings.push_back({"no usage.completion_tokens: the text re-tokenized to count", ""});
  }
  if (c.generated_tokens < 0 || c.generated_tokens > request.max_tokens)
    return fail(fmt::format("the server generated {} tokens, max_tokens was {} (it ignored the request's limit)",
                            c.generated_tokens, request.max_tokens),
                false);
  if (c.finish == FinishReason::length && c.generated_tokens < request.max_tokens)
    out.warnings.push_back({"finish 'length' before max_tokens (the server's context limit?)",
                            fmt::format("{} of {} tokens", c.generated_tokens, request.max_tokens)});
  return out;
}

OpenAIBackend::OpenAIBackend(Options options, const runtime::Tokenizer& tokenizer)
    : options_(std::move(options)), tokenizer_(tokenizer) {
  if (options_.endpoints.empty()) throw std::invalid_argument("no endpoint given");
  std::vector<std::string> headers;
  if (!options_.api_key.empty()) headers.push_back("Authorization: Bearer " + options_.api_key);
  HttpClient client(headers);
  for (const auto& url : options_.endpoints) {
    auto e = std::make_unique<Endpoint>();
    e->base = normalize_base(url);
    e->shown = redact_url(e->base);
    // The server may still be starting: a few quick tries before giving up.
    HttpResponse models;
    for (int attempt = 0; attempt < 3; ++attempt) {
      models = client.get(e->base + "/v1/models", std::min(options_.request_timeout_s, 30.0));
      if (models.error.empty() && models.status < 500) break;  // only a server error may pass by itself
      std::this_thread::sleep_for(std::chrono::milliseconds(300 << attempt));
    }
    if (!models.error.empty())
      throw std::runtime_error(fmt::format("endpoint {}: GET /v1/models failed: {}", e->shown, models.error));
    if (models.status == 404) {
      // A server without the model list: the name is the user's word (or --model's), and every answer's
      // "model" is still checked against it. The report says the list was missing.
      e->served_model = options_.served_model.value_or(options_.model_names.empty() ? "" : options_.model_names[0]);
      warn("the server has no GET /v1/models: the served model was not checked before generating", e->shown);
    } else if (models.status != 200) {
      throw std::runtime_error(fmt::format("endpoint {}: GET /v1/models answered HTTP {}: {}", e->shown, models.status,
                                           error_message(models.body)));
    }
    const json listing =
        models.status == 200 ? json::parse(models.body, nullptr, false) : json::object({{"data", json::array()}});
    if (!listing.is_object() || !listing.contains("data") || !listing["data"].is_array())
      throw std::runtime_error(
          fmt::format("endpoint {}: GET /v1/models is not a model list: {}", e->shown, excerpt(models.body)));
    std::vector<std::string> served;
    for (const auto& m : listing["data"]) {
      if (!m.is_object() || !m.contains("id") || !m["id"].is_string()) continue;
      const std::string id = m["id"].get<std::string>();
      served.push_back(id);
      const std::string root = m.contains("root") && m["root"].is_string() ? m["root"].get<std::string>() : "";
      const bool chosen = options_.served_model
                              ? id == *options_.served_model
                              : served_model_matches(id, options_.model_names) ||
                                    (!root.empty() && served_model_matches(root, options_.model_names));
      if (chosen && e->served_model.empty()) {
        e->served_model = id;
        e->max_model_len = m.contains("max_model_len") ? m["max_model_len"] : json();
      }
    }
    if (e->served_model.empty() && models.status == 200) {
      std::string list;
      for (const auto& s : served) list += (list.empty() ? "'" : ", '") + s + "'";
      if (list.empty()) list = "nothing";
      throw std::runtime_error(
          options_.served_model
              ? fmt::format("endpoint {} serves {}, not '{}' (--served-model)", e->shown, list, *options_.served_model)
              : fmt::format("endpoint {} serves {}, which is not the checkpoint of --model ('{}'); if it is the same "
                            "model under another name, say so with --served-model NAME",
                            e->shown, list, options_.model_names.empty() ? "" : options_.model_names.front()));
    }
    // vLLM and quanteval answer /version; SGLang /get_server_info.
    for (const char* path : {"/version", "/get_server_info"}) {
      const HttpResponse v = client.get(e->base + path, 10);
      const json info = v.status == 200 ? json::parse(v.body, nullptr, false) : json();
      if (info.is_object() && info.contains("version") && info["version"].is_string()) {
        e->server_version = info["version"].get<std::string>();
        if (info.contains("server") && info["server"].is_string()) {
          e->quanteval = info["server"] == "quanteval";
          e->server_version = info["server"].get<std::string>() + " " + e->server_version;
        }
        break;
      }
    }
    if (e->server_version.empty()) e->server_version = "unknown";
    endpoints_.push_back(std::move(e));
  }
}

OpenAIBackend::~OpenAIBackend() = default;

void OpenAIBackend::warn(const std::string& kind, const std::string& example) {
  std::lock_guard lock(stats_mutex_);
  auto& [count, first] = warnings_[kind];
  if (count++ == 0) first = example;
}

OpenAIBackend::Endpoint& OpenAIBackend::pick_endpoint(const Endpoint* avoid) {
  // Fewest in flight; a retry prefers another endpoint than the one that just failed.
  Endpoint* best = nullptr;
  auto load = [&](const Endpoint& e) {
    return std::make_tuple(&e == avoid ? 1 : 0, e.in_flight.load(), e.failed.load() + e.retried.load());
  };
  for (auto& e : endpoints_)
    if (!best || load(*e) < load(*best)) best = e.get();
  return *best;
}

Completion OpenAIBackend::run_one(HttpClient& client, const CompletionRequest& request, std::uint64_t jitter_seed) {
  std::mt19937_64 jitter(jitter_seed);
  const Endpoint* last = nullptr;
  std::string why;
  const auto start = Clock::now();
  // Once several requests in a row have failed after all their retries (the servers are down),
  // the rest get one attempt each: a dead cluster fails the run in seconds, not hours of backoff;
  // a server that comes back succeeds at once and restores the retries.
  const int retries = failed_in_a_row_ >= static_cast<int>(2 * endpoints_.size()) ? 0 : options_.retries;
  for (int attempt = 0; attempt <= retries && !abort_; ++attempt) {
    Endpoint& e = pick_endpoint(last);
    last = &e;
    ++e.in_flight;
    ++e.requests;
    const auto build_start = Clock::now();
    const std::string body = completion_request_body(request, e.served_model, e.quanteval).dump();
    double client_s = seconds_since(build_start);
    const HttpResponse response = client.post_json(e.base + "/v1/completions", body, options_.request_timeout_s);
    --e.in_flight;
    bool retryable = true;
    double wait_hint = response.retry_after_s;
    if (!response.error.empty()) {
      why = fmt::format("{}: {}", e.shown,
                        response.timed_out
                            ? fmt::format("no answer within --request-timeout {} s", options_.request_timeout_s)
                            : response.error);
    } else if (response.status != 200) {
      why = fmt::format("{}: HTTP {}: {}", e.shown, response.status, error_message(response.body));
      retryable = retryable_status(response.status);
    } else {
      const auto parse_start = Clock::now();
      ParsedCompletion parsed = parse_completion_response(response.body, request, e.served_model, tokenizer_);
      client_s += seconds_since(parse_start);
      {
        std::lock_guard lock(stats_mutex_);
        client_seconds_ += client_s;
      }
      for (const auto& [kind, example] : parsed.warnings) warn(kind, example);
      if (parsed.error.empty()) {
        failed_in_a_row_ = 0;
        parsed.completion.seconds = seconds_since(start);
        return std::move(parsed.completion);
      }
      why = fmt::format("{}: {}", e.shown, parsed.error);
      retryable = parsed.retryable;
    }
    if (!retryable) {
      ++e.failed;
      break;
    }
    if (attempt == retries) {
      ++e.failed;
      break;
    }
    ++e.retried;
    // A random delay in the second half of an exponentially growing window (at most 30 s), so that
    // workers that failed together do not retry together; a Retry-After is honoured up to 60 s.
    const double window = std::min(30.0, options_.backoff_s * static_cast<double>(1u << std::min(attempt, 16)));
    double delay = std::uniform_real_distribution<double>(0.5 * window, window)(jitter);
    if (wait_hint > 0) delay = std::max(delay, std::min(wait_hint, 60.0));
    const auto until = Clock::now() + std::chrono::duration<double>(delay);
    while (Clock::now() < until && !abort_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ++failed_in_a_row_;
  Completion failed;
  failed.id = request.id;
  failed.failure = why.empty() ? std::string("cancelled") : why;
  failed.seconds = seconds_since(start);
  return failed;
}

GenerationProgress OpenAIBackend::complete(std::vector<CompletionRequest> requests, const OnCompletion& on_completion,
                                           const OnProgress& on_progress) {
  const auto start = Clock::now();
  std::deque<CompletionRequest> queue(std::make_move_iterator(requests.begin()),
                                      std::make_move_iterator(requests.end()));
  std::mutex queue_mutex;
  std::mutex deliver_mutex;  // one callback at a time (the backend contract)
  std::exception_ptr callback_error;
  std::atomic<std::size_t> active{0};
  std::uint64_t generated = 0, prompted = 0;
  std::size_t finished = 0;
  abort_ = false;

  auto progress_now = [&] {
    GenerationProgress p;
    p.finished = finished;
    p.active = active;
    {
      std::lock_guard lock(queue_mutex);
      p.waiting = queue.size();
    }
    const double elapsed = std::max(seconds_since(start), 1e-9);
    p.prefill_tok_s = static_cast<double>(prompted) / elapsed;
    p.decode_tok_s = static_cast<double>(generated) / elapsed;
    return p;
  };

  std::vector<std::string> headers;
  if (!options_.api_key.empty()) headers.push_back("Authorization: Bearer " + options_.api_key);
  const std::size_t workers =
      std::min(queue.size(), endpoints_.size() * static_cast<std::size_t>(std::max(1, options_.concurrency)));
  const std::uint64_t base_seed = std::random_device{}();
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      HttpClient client(headers);
      client.set_cancel_flag(&abort_);  // a failed callback ends the requests in flight too
      for (;;) {
        CompletionRequest request;
        {
          std::lock_guard lock(queue_mutex);
          if (queue.empty() || abort_) return;
          request = std::move(queue.front());
          queue.pop_front();
        }
        ++active;
        Completion c = run_one(client, request, base_seed + w * 7919 + request.id);
        --active;
        std::lock_guard lock(deliver_mutex);
        if (abort_) return;
        ++finished;
        if (c.failure.empty()) {
          generated += static_cast<std::uint64_t>(c.generated_tokens);
          prompted += static_cast<std::uint64_t>(c.prompt_tokens);
        } else {
          std::lock_guard stats(stats_mutex_);
          ++failures_;
        }
        try {
          on_completion(std::move(c));
          if (on_progress) on_progress(progress_now());
        } catch (...) {
          callback_error = std::current_exception();
          abort_ = true;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (callback_error) std::rethrow_exception(callback_error);
  const GenerationProgress last = progress_now();
  std::lock_guard lock(stats_mutex_);
  prompt_tokens_ += prompted;
  generated_tokens_ += generated;
  delivered_ += finished;
  wall_seconds_ += seconds_since(start);
  return last;
}

BackendInfo OpenAIBackend::info() const {
  BackendInfo info;
  info.kind = "openai";
  std::string names;
  nlohmann::ordered_json endpoints = nlohmann::ordered_json::array();
  for (const auto& e : endpoints_) {
    endpoints.push_back({{"url", e->shown},
                         {"served_model", e->served_model},
                         {"server_version", e->server_version},
                         {"max_model_len", e->max_model_len},
                         {"attempts", e->requests.load()},
                         {"retried", e->retried.load()},
                         {"failed", e->failed.load()}});
    if (names.find(e->served_model) == std::string::npos) names += (names.empty() ? "" : ", ") + e->served_model;
  }
  info.served_model = names;
  info.device = fmt::format("{} OpenAI-compatible endpoint{} ({})", endpoints_.size(),
                            endpoints_.size() == 1 ? "" : "s", endpoints_.front()->shown);
  std::lock_guard lock(stats_mutex_);
  nlohmann::ordered_json warnings = nlohmann::ordered_json::object();
  for (const auto& [kind, entry] : warnings_) warnings[kind] = {{"count", entry.first}, {"first", entry.second}};
  info.details = {
      {"kind", "openai"},
      {"endpoints", endpoints},
      {"concurrency_per_endpoint", options_.concurrency},
      {"request_timeout_s", options_.request_timeout_s},
      {"retries", options_.retries},
      {"completions", delivered_ - failures_},
      {"failures", failures_},
      {"prompt_tokens", prompt_tokens_},
      {"generated_tokens", generated_tokens_},
      {"wall_seconds", wall_seconds_},
      {"generated_tokens_per_second", wall_seconds_ > 0 ? static_cast<double>(generated_tokens_) / wall_seconds_ : 0.0},
      {"client_ms_per_request",
       delivered_ > failures_ ? 1000 * client_seconds_ / static_cast<double>(delivered_ - failures_) : 0.0},
      {"warnings", warnings},
  };
  return info;
}

}  // namespace quanteval::harness
