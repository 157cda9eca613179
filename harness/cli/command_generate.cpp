// quanteval generate: one prompt through the model, JSON on stdout.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "harness/cli/command_model_common.hpp"
#include "harness/cli/commands.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;

int command_generate(int argc, char** argv, int first) {
  Args args("quanteval generate --model DIR (--ids 1,2,3 | --prompt TEXT [--chat]) [options]",
            "Generates a continuation of one prompt and prints JSON:\n"
            "{\"ids\": [...], \"text\": ..., \"finish_reason\": \"length|stop|eos\", \"prompt_tokens\": N,\n"
            " \"prefill_tok_s\": X, \"decode_tok_s\": Y}. `ids` are the new tokens (a final eos included);\n"
            "`text` is their decoding cut before a stop string (empty when the model has no tokenizer).");
  add_model_options(args);
  args.option("ids", "LIST", "prompt token ids, comma separated", "")
      .option("prompt", "TEXT", "prompt text (needs tokenizer.json in the model directory)", "")
      .flag("chat", "wrap --prompt as a user message with the model's chat template (generation prompt added)")
      .option("enable-thinking", "true|false", "chat template enable_thinking (default: the template's own)", "")
      .option("max-new-tokens", "N", "most tokens to generate", "256")
      .option("temperature", "T", "0 = greedy", "0")
      .option("top-k", "K", "0 = off", "0")
      .option("top-p", "P", "1 = off", "1")
      .option("min-p", "M", "0 = off", "0")
      .option("seed", "S", "sampling seed", "0")
      .repeated("stop", "TEXT", "stop when the text contains TEXT (removed from the output); repeatable");
  if (!args.parse(argc, argv, first)) return 0;

  const bool have_ids = !args.get("ids").empty(), have_prompt = !args.get("prompt").empty();
  if (have_ids == have_prompt) throw UsageError("give exactly one of --ids and --prompt");
  if (args.is_set("chat") && !have_prompt) throw UsageError("--chat needs --prompt");

  const fs::path model_dir = args.get("model");
  std::optional<runtime::Tokenizer> tokenizer;
  if (fs::exists(model_dir / "tokenizer.json"))
    tokenizer.emplace(runtime::Tokenizer::from_file(model_dir));
  else if (have_prompt)
    throw UsageError(
        fmt::format("--prompt needs a tokenizer, but {} has no tokenizer.json (use --ids)", model_dir.string()));

  // Sampling parameters are checked before the (slow) model load.
  runtime::GenerationRequest request;
  request.max_new_tokens = args.get_int("max-new-tokens", 1, 1 << 20);
  request.sampling.temperature = static_cast<float>(args.get_double("temperature", 0, 100));
  request.sampling.top_k = args.get_int("top-k", 0, 1 << 24);
  request.sampling.top_p = static_cast<float>(args.get_double("top-p", 0, 1));
  request.sampling.min_p = static_cast<float>(args.get_double("min-p", 0, 1));
  request.sampling.seed = static_cast<std::uint64_t>(args.get_int("seed", 0, 2147483647));
  runtime::validate(request.sampling);
  request.stop_strings = args.all("stop");

  if (have_ids) {
    request.prompt = parse_token_ids(args.get("ids"));
  } else {
    std::string text = args.get("prompt");
    if (args.is_set("chat")) {
      runtime::ChatOptions chat_options;
      const std::string thinking = args.get("enable-thinking");
      if (thinking == "true")
        chat_options.enable_thinking = true;
      else if (thinking == "false")
        chat_options.enable_thinking = false;
      else if (!thinking.empty())
        throw UsageError("--enable-thinking: expected true or false");
      nlohmann::ordered_json messages = nlohmann::ordered_json::array();
      messages.push_back({{"role", "user"}, {"content", text}});
      text = runtime::ChatTemplate::from_model_dir(model_dir).render_chat(messages, chat_options);
    }
    request.prompt = tokenizer->encode(text);
  }

  auto model = load_model_from_args(args);
  if (tokenizer && tokenizer->vocab_size() > static_cast<std::size_t>(model->config().vocab_size)) {
    // Ids the tokenizer can produce but the model has no row for are refused by
    // check_tokens below with the offending id; say where the mismatch comes from.
    for (const runtime::TokenId id : request.prompt)
      if (id >= model->config().vocab_size)
        throw runtime::ModelInputError(fmt::format(
            "prompt token id {} is outside the model vocabulary of {} (the tokenizer has {} ids: model and tokenizer "
            "do not match)",
            id, model->config().vocab_size, tokenizer->vocab_size()));
  }
  runtime::Generator generator(*model, tokenizer ? &*tokenizer : nullptr);
  const runtime::GenerationResult result = generator.generate(request);

  const double prefill_tok_s = result.prefill_seconds > 0 ? result.prompt_tokens / result.prefill_seconds : 0;
  const std::size_t decoded =
      result.tokens.empty() ? 0 : result.tokens.size() - 1;  // the first token comes from prefill
  const double decode_tok_s = result.decode_seconds > 0 ? static_cast<double>(decoded) / result.decode_seconds : 0;
  nlohmann::ordered_json out;
  out["ids"] = result.tokens;
  out["text"] = result.text;
  out["finish_reason"] = runtime::to_string(result.finish);
  out["prompt_tokens"] = result.prompt_tokens;
  out["prefill_tok_s"] = prefill_tok_s;
  out["decode_tok_s"] = decode_tok_s;
  // Invalid UTF-8 cannot occur (the decoder emits U+FFFD), but never let dump() throw on output.
  fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  return 0;
}

}  // namespace quanteval::harness
