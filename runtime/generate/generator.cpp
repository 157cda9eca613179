#include "runtime/generate/generator.hpp"
#include "runtime/base/check.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>

namespace quanteval::runtime {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::length: return "length";
    case FinishReason::stop: return "stop";
    case FinishReason::eos: return "eos";
  }
  return "unknown";
}

// A request in the running batch.
struct Generator::Running {
  GenerationRequest request;
  std::unique_ptr<SequenceState> state;
  SamplingRng rng;
  std::optional<StreamingDecoder> decoder;
  std::size_t longest_stop = 0;  // bytes of the longest stop string
  GenerationResult result;
  bool finished = false;

  Running(GenerationRequest r, std::unique_ptr<SequenceState> s, const Tokenizer* tokenizer)
      : request(std::move(r)), state(std::move(s)), rng(request.sampling.seed) {
    if (tokenizer) decoder.emplace(*tokenizer);
    for (const auto& stop : request.stop_strings) longest_stop = std::max(longest_stop, stop.size());
    result.id = request.id;
    result.prompt_tokens = static_cast<int>(request.prompt.size());
  }
};

Generator::Generator(Model& model, const Tokenizer* tokenizer, GeneratorOptions options)
    : model_(model), tokenizer_(tokenizer), options_(std::move(options)) {
  if (options_.max_batch < 1) throw std::invalid_argument("GeneratorOptions.max_batch must be >= 1");
  if (options_.max_prefill_tokens < 1) throw std::invalid_argument("GeneratorOptions.max_prefill_tokens must be >= 1");
  for (const std::int64_t id : model.config().eos_token_ids) eos_ids_.push_back(static_cast<TokenId>(id));
  if (tokenizer_)
    if (const auto eos = tokenizer_->eos_token_id()) eos_ids_.push_back(*eos);
  for (const TokenId id : options_.extra_eos_token_ids) eos_ids_.push_back(id);
  std::sort(eos_ids_.begin(), eos_ids_.end());
  eos_ids_.erase(std::unique(eos_ids_.begin(), eos_ids_.end()), eos_ids_.end());
  if (tokenizer_)
    for (TokenId id = 0; id < static_cast<TokenId>(model.config().vocab_size); ++id)
      if (!tokenizer_->contains(id)) masked_ids_.push_back(id);
}

void Generator::submit(GenerationRequest request) {
  model_.check_tokens(request.prompt);
  if (request.max_new_tokens < 1)
    throw std::invalid_argument(
        fmt::format("request {}: max_new_tokens must be >= 1 (got {})", request.id, request.max_new_tokens));
  validate(request.sampling);
  const std::int64_t needed = static_cast<std::int64_t>(request.prompt.size()) + request.max_new_tokens;
  if (needed > model_.max_sequence_tokens())
    throw ModelInputError(
        fmt::format("request {}: prompt of {} tokens + max_new_tokens {} = {} exceeds what this model "
                    "can hold ({} tokens: the smaller of max_position_embeddings {} and the KV cache "
                    "capacity {})",
                    request.id, request.prompt.size(), request.max_new_tokens, needed, model_.max_sequence_tokens(),
                    model_.config().max_position_embeddings, model_.memory().capacity_tokens()));
  for (const auto& stop : request.stop_strings) {
    if (stop.empty()) throw std::invalid_argument(fmt::format("request {}: empty stop string", request.id));
    if (!tokenizer_)
      throw std::invalid_argument(fmt::format("request {}: stop strings need a tokenizer (none loaded)", request.id));
  }
  std::lock_guard lock(mutex_);
  waiting_.push_back(std::move(request));
  ++stats_.waiting;
}

GeneratorStats Generator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void Generator::finish_text(Running& sequence) {
  if (sequence.decoder) sequence.result.text += sequence.decoder->finish();
}

bool Generator::append_token(Running& s, TokenId token) {
  s.result.tokens.push_back(token);
  if (std::binary_search(eos_ids_.begin(), eos_ids_.end(), token)) {
    s.result.finish = FinishReason::eos;
    finish_text(s);
    return true;
  }
  if (s.decoder) {
    std::string& text = s.result.text;
    const std::size_t old_size = text.size();
    text += s.decoder->push(token);
    if (!s.request.stop_strings.empty() && text.size() > old_size) {
      // Only a match that ends in the new text is new: start looking far enough
      // back for the longest stop string to straddle the old end.
      const std::size_t from = old_size >= s.longest_stop ? old_size - s.longest_stop + 1 : 0;
      std::size_t cut = std::string::npos;
      for (const auto& stop : s.request.stop_strings) cut = std::min(cut, text.find(stop, from));
      if (cut != std::string::npos) {
        text.resize(cut);
        s.result.finish = FinishReason::stop;
        return true;
      }
    }
  }
  if (static_cast<int>(s.result.tokens.size()) >= s.request.max_new_tokens) {
    s.result.finish = FinishReason::length;
    finish_text(s);
    return true;
  }
  return false;
}

void Generator::run(const std::function<void(GenerationResult)>& on_done,
                    const std::function<void(const GeneratorStats&)>& on_progress) {
  std::vector<std::unique_ptr<Running>> running;
  const auto vocab = static_cast<std::size_t>(model_.config().vocab_size);
  for (;;) {
    // Admission: waiting requests join while there is a slot, prefill budget and cache.
    std::vector<Running*> prefilling;
    {
      std::lock_guard lock(mutex_);
      std::int64_t prefill_tokens = 0;
      while (!waiting_.empty() && static_cast<int>(running.size()) < options_.max_batch) {
        const GenerationRequest& next = waiting_.front();
        const auto prompt = static_cast<std::int64_t>(next.prompt.size());
        if (!prefilling.empty() && prefill_tokens + prompt > options_.max_prefill_tokens) break;
        auto state = model_.try_open_sequence(prompt + next.max_new_tokens);
        if (!state) break;  // cache full: wait for a running sequence to finish
        running.push_back(std::make_unique<Running>(std::move(waiting_.front()), std::move(state), tokenizer_));
        waiting_.pop_front();
        prefilling.push_back(running.back().get());
        prefill_tokens += prompt;
      }
      stats_.waiting = waiting_.size();
      stats_.active = running.size();
      if (running.empty()) {
        if (waiting_.empty()) return;
        QE_FAIL("generator: a waiting request cannot be admitted into an empty batch");
      }
    }

    // One step for the whole batch: prompts of newly admitted sequences, the last
    // sampled token of the others.
    std::vector<Model::Step> steps;
    std::vector<TokenId> last_tokens(running.size());
    std::int64_t prompt_rows = 0, decode_rows = 0;
    for (std::size_t i = 0; i < running.size(); ++i) {
      Running& s = *running[i];
      if (s.result.tokens.empty()) {
        steps.push_back({s.state.get(), s.request.prompt, false});
        prompt_rows += static_cast<std::int64_t>(s.request.prompt.size());
      } else {
        last_tokens[i] = s.result.tokens.back();
        steps.push_back({s.state.get(), std::span<const TokenId>(&last_tokens[i], 1), false});
        ++decode_rows;
      }
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<float> logits = model_.forward(steps);
    const double step_seconds = seconds_since(start);

    std::vector<std::unique_ptr<Running>> still_running;
    std::vector<GenerationResult> done;
    for (std::size_t i = 0; i < running.size(); ++i) {
      Running& s = *running[i];
      const bool was_prefill = s.result.tokens.empty();
      (was_prefill ? s.result.prefill_seconds : s.result.decode_seconds) += step_seconds;
      const std::span<float> row(logits.data() + i * vocab, vocab);
      mask_tokens(row, masked_ids_);
      if (append_token(s, sample_token(row, s.request.sampling, s.rng))) {
        done.push_back(std::move(s.result));
        running[i]->state.reset();  // hand the KV blocks back before the callback runs
      } else {
        still_running.push_back(std::move(running[i]));
      }
    }
    running = std::move(still_running);
    {
      std::lock_guard lock(mutex_);
      if (prompt_rows > 0) {
        prefill_seconds_ += step_seconds;
        prefill_tokens_ += static_cast<std::uint64_t>(prompt_rows);
      }
      if (decode_rows > 0) {
        decode_seconds_ += step_seconds;
        decode_tokens_ += static_cast<std::uint64_t>(decode_rows);
      }
      stats_.generated_tokens += steps.size();
      stats_.finished += done.size();
      stats_.active = running.size();
      stats_.waiting = waiting_.size();
      stats_.prefill_tok_s = prefill_seconds_ > 0 ? static_cast<double>(prefill_tokens_) / prefill_seconds_ : 0;
      stats_.decode_tok_s = decode_seconds_ > 0 ? static_cast<double>(decode_tokens_) / decode_seconds_ : 0;
    }
    for (auto& result : done) on_done(std::move(result));
    if (on_progress) on_progress(stats());
  }
}

GenerationResult Generator::generate(const GenerationRequest& request) {
  submit(request);
  std::optional<GenerationResult> mine;
  run([&](GenerationResult result) {
    if (result.id == request.id && !mine) mine = std::move(result);
  });
  QE_CHECK(mine, "generator: request finished without a result");
  return std::move(*mine);
}

}  // namespace quanteval::runtime
