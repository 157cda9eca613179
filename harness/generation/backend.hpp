#pragma once
// Step 3 of a run talks to a generation backend: something that turns prompts
// (token ids rendered by quanteval) into completions with token counts and
// finish reasons. The embedded runtime is one (embedded_backend.hpp); an
// OpenAI-compatible server (vLLM, SGLang, `quanteval serve`) is the next. What
// stays on quanteval's side whatever the backend -- prompts, per-sample seeds,
// extraction, the sandbox, statistics, resume -- is not behind this interface.
//
// Contract for an implementation:
//   - complete() runs every request and returns once each has been delivered;
//     completions are delivered as they finish (so execution overlaps
//     generation), in completion order, from any thread, but never two
//     callbacks (completion or progress) at the same time;
//   - a request the backend could not complete after its own retries (a server
//     down, garbage, timeouts) is delivered with `failure` set: an
//     infrastructure failure, never a model outcome. The run records nothing
//     for it, so --resume generates it again;
//   - an error that makes every request meaningless (a model that cannot run,
//     a refused served model) is thrown, as is an exception from on_completion
//     (the requests not delivered yet are dropped).
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/runtime.hpp"  // TokenId, SamplingParams, FinishReason

namespace quanteval::harness {

// Why a completion ended: the runtime's length | stop | eos (samples.jsonl
// spells them so). OpenAI-compatible servers report `length` and `stop`; an
// end-of-sequence token is a `stop` without a stop string there.
using FinishReason = runtime::FinishReason;
std::optional<FinishReason> parse_finish_reason(std::string_view name);

struct CompletionRequest {
  std::uint64_t id = 0;                  // echoed in the completion
  std::vector<runtime::TokenId> prompt;  // rendered and tokenized by quanteval; sent as ids, never as text
  runtime::SamplingParams sampling;      // temperature, top-k, top-p, min-p and this request's own seed
  std::vector<std::string> stop;         // stop strings (may be empty)
  int max_tokens = 256;                  // most new tokens
};

struct Completion {
  std::uint64_t id = 0;
  std::string text;          // the new text, cut before the first stop string
  int prompt_tokens = 0;     // as the backend counted them
  int generated_tokens = 0;  // new tokens, a final end-of-sequence token included
  FinishReason finish = FinishReason::length;
  double seconds = 0;   // wall time the backend spent on this request
  std::string failure;  // non-empty: an infrastructure failure (see above); nothing else is meaningful
};

// How generation is going: what the progress line shows and the report's speed.
struct GenerationProgress {
  std::size_t finished = 0;  // requests delivered
  std::size_t active = 0;    // being generated now (in the batch, or in flight)
  std::size_t waiting = 0;   // not started yet
  double prefill_tok_s = 0;  // prompt tokens per second of prefill
  double decode_tok_s = 0;   // generated tokens per second of decoding
};

// What the report says about where generation ran.
struct BackendInfo {
  std::string kind;          // "embedded", ...
  std::string device;        // "cpu (2 threads)", "cuda", or what serves the requests
  std::string served_model;  // the model name a server reports (empty for the embedded runtime)
  // The report's "backend" object: kind, and for servers their URLs (no
  // credentials), served model, versions, retries, failures, warnings, throughput.
  nlohmann::ordered_json details;
  // Whether a completion depends only on its request (not on the batch it ran in,
  // the thread count or --max-batch); false when the backend cannot promise it.
  bool batch_invariant = false;
};

class GenerationBackend {
 public:
  using OnCompletion = std::function<void(Completion)>;
  using OnProgress = std::function<void(const GenerationProgress&)>;

  virtual ~GenerationBackend() = default;

  virtual BackendInfo info() const = 0;

  // Completes every request (see the contract above); on_progress is called
  // from time to time. Returns the final progress (its rates are the report's
  // speed).
  virtual GenerationProgress complete(std::vector<CompletionRequest> requests, const OnCompletion& on_completion,
                                      const OnProgress& on_progress) = 0;
};

}  // namespace quanteval::harness
