#include "harness/cli/cli.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "harness/cli/commands.hpp"

namespace quanteval::harness {

namespace {

struct Verb {
  const char* name;
  int (*run)(int argc, char** argv, int first);
  const char* summary;
};

// One row per verb: dispatch and the top-level help come from this table.
constexpr Verb kVerbs[] = {
    {"run", command_run, "generate + execute + score one checkpoint (standard and/or thinking mode)"},
    {"serve", command_serve,
     "the embedded runtime behind OpenAI-compatible HTTP routes (/v1/completions, /v1/chat/completions, ...)"},
    {"score", command_score, "execute and score a samples file (openai/human-eval format); no model needed"},
    {"selftest", command_selftest, "canonical solutions must all pass, known-bad and hostile programs must all fail"},
    {"compare", command_compare,
     "paired comparison of a quantized run with its baseline: model-card table, statistics, HTML"},
    {"gate", command_gate, "CI quality gate: exit 1 when the quantized run lost more than --max-drop pp of pass@1"},
    {"inspect", command_inspect,
     "architecture, quantization, parameters, bits per weight, size on disk of a checkpoint"},
    {"tokenize", command_tokenize, "token ids of a text (JSON)"},
    {"detokenize", command_detokenize, "text of token ids (JSON)"},
    {"render-chat", command_render_chat, "a conversation rendered with the model's chat template (JSON)"},
    {"generate", command_generate, "a continuation of one prompt with a model (JSON)"},
    {"logits", command_logits, "the logits of every prompt position (safetensors)"},
    {"divergence", command_divergence,
     "token-level KL of a model from its baseline, teacher-forced on HumanEval solutions and run samples"},
    {"bench", command_bench, "runtime speed: GEMM micro-benchmarks, prefill/decode tokens/s, sandbox, tokenizer"},
};

std::string usage() {
  std::string text =
      "usage: quanteval <verb> [options]      (quanteval <verb> --help for a verb's options)\n\n"
      "Measures what INT4 quantization costs a code model on HumanEval.\n\nverbs:\n";
  for (const auto& verb : kVerbs) text += fmt::format("  {:<12} {}\n", verb.name, verb.summary);
  text += fmt::format("  {:<12} {}\n", "version", "print the version");
  text += "\nexit codes: 0 ok, 1 gate failed or selftest surprise, 2 usage or input error\n";
  return text;
}

}  // namespace

int run_cli(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(usage().c_str(), stderr);
    return 2;
  }
  const std::string verb = argv[1];
  if (verb == "--help" || verb == "-h" || verb == "help") {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (verb == "version" || verb == "--version") {
    fmt::print("quanteval {}\n", tool_version());
    return 0;
  }
  for (const auto& v : kVerbs)
    if (verb == v.name) return v.run(argc, argv, 2);
  throw UsageError(fmt::format("unknown verb '{}' (see quanteval --help)", verb));
}

ErrorExit error_exit(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::invalid_argument& e) {  // a std::logic_error, but the libraries use it for bad input
    return {2, fmt::format("quanteval: error: {}", e.what())};
  } catch (const std::logic_error& e) {  // InternalError and the standard library's own invariant errors
    return {3, fmt::format("quanteval: internal error: {} (this is a bug in quanteval; please report it with the "
                           "command line)",
                           e.what())};
  } catch (const std::bad_alloc&) {
    return {2, "quanteval: error: out of memory"};
  } catch (const std::exception& e) {
    return {2, fmt::format("quanteval: error: {}", e.what())};
  } catch (...) {
    return {3, "quanteval: internal error: an exception of unknown type"};
  }
}

}  // namespace quanteval::harness
