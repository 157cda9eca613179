#include "harness/cli.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "harness/commands.hpp"

namespace quanteval::harness {

namespace {

constexpr const char* kUsage =
    "usage: quanteval <verb> [options]      (quanteval <verb> --help for a verb's options)\n"
    "\n"
    "Measures what INT4 quantization costs a code model on HumanEval.\n"
    "\n"
    "verbs:\n"
    "  score      execute and score a samples file (openai/human-eval format); no model needed\n"
    "  selftest   canonical solutions must all pass, known-bad and hostile programs must all fail\n"
    "  compare    paired comparison of a quantized run with its baseline: model-card table, statistics, HTML\n"
    "  gate       CI quality gate: exit 1 when the quantized run lost more than --max-drop pp of pass@1\n"
    "  generate   generate a continuation of one prompt with a model (JSON on stdout)\n"
    "  logits     write the logits of every prompt position (safetensors)\n"
    "  version    print the version\n"
    "\n"
    "exit codes: 0 ok, 1 gate failed or selftest surprise, 2 usage or input error\n";

}  // namespace

int run_cli(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string verb = argv[1];
  if (verb == "--help" || verb == "-h" || verb == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (verb == "version" || verb == "--version") {
    fmt::print("quanteval {}\n", tool_version());
    return 0;
  }
  if (verb == "score") return command_score(argc, argv, 2);
  if (verb == "selftest") return command_selftest(argc, argv, 2);
  if (verb == "compare") return command_compare(argc, argv, 2);
  if (verb == "gate") return command_gate(argc, argv, 2);
  if (verb == "generate") return command_generate(argc, argv, 2);
  if (verb == "logits") return command_logits(argc, argv, 2);
  throw UsageError(fmt::format("unknown verb '{}' (see quanteval --help)", verb));
}

}  // namespace quanteval::harness
