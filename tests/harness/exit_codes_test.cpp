// Exit codes at the CLI boundary: usage and input errors are 2 with a message
// that names what was wrong; broken invariants (QE_CHECK, std::logic_error) are
// 3, "internal error", with the source file and line.
#include <doctest/doctest.h>

#include <new>
#include <stdexcept>

#include "harness/cli/cli.hpp"
#include "runtime/base/check.hpp"
#include "runtime/checkpoint/safetensors.hpp"
#include "tests/support/test_data.hpp"

using quanteval::harness::error_exit;

namespace {

template <typename F>
quanteval::harness::ErrorExit exit_of(F&& thrower) {
  try {
    thrower();
  } catch (...) {
    return error_exit(std::current_exception());
  }
  FAIL("the function did not throw");
  return {};
}

}  // namespace

TEST_CASE("a failed QE_CHECK is an internal error naming its file and line") {
  const int line = __LINE__ + 1;
  const auto e = exit_of([] { QE_CHECK(1 + 1 == 3, "arithmetic is broken"); });
  CHECK(e.code == 3);
  CHECK(e.message.find("internal error") != std::string::npos);
  CHECK(e.message.find("exit_codes_test.cpp:" + std::to_string(line)) != std::string::npos);
  CHECK(e.message.find("1 + 1 == 3") != std::string::npos);
  CHECK(e.message.find("arithmetic is broken") != std::string::npos);
}

TEST_CASE("standard invariant errors are internal, invalid arguments and input errors are not") {
  CHECK(exit_of([] { throw std::logic_error("x"); }).code == 3);
  CHECK(exit_of([] { throw std::out_of_range("x"); }).code == 3);
  CHECK(exit_of([] { QE_FAIL("unreachable branch"); }).code == 3);
  const auto invalid = exit_of([] { throw std::invalid_argument("sampling: top_p must be in (0, 1] (got 2)"); });
  CHECK(invalid.code == 2);
  CHECK(invalid.message == "quanteval: error: sampling: top_p must be in (0, 1] (got 2)");
  const auto input = exit_of([] { throw quanteval::runtime::CheckpointError("/m/config.json: hidden_size: missing"); });
  CHECK(input.code == 2);
  CHECK(input.message.find("/m/config.json: hidden_size") != std::string::npos);
  CHECK(exit_of([] { throw std::bad_alloc(); }).code == 2);
  CHECK(exit_of([] { throw 42; }).code == 3);
}

TEST_CASE("the binary exits 2 on usage and input errors") {
  CHECK(quanteval::test::run_quanteval({"no-such-verb"}).exit_code == 2);
  const auto missing = quanteval::test::run_quanteval({"inspect", "--model", "/nonexistent/model"});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("/nonexistent/model") != std::string::npos);
  CHECK(missing.err.find("internal error") == std::string::npos);
}

TEST_CASE("bench decode refuses unknown and malformed options before any work, and --help explains") {
  // A typo once meant a minutes-long run with the defaults.
  for (const std::vector<std::string> args : {std::vector<std::string>{"--decode-token", "1"},
                                              {"--threads", "2x"},
                                              {"--prompt-tokens", "128,,512"},
                                              {"--batch"},
                                              {"--device", "cuda", "--batches", "1,x"},
                                              {"--device", "tpu"}}) {
    CAPTURE(args.front());
    std::vector<std::string> command{"bench", "decode"};
    command.insert(command.end(), args.begin(), args.end());
    const auto r = quanteval::test::run_quanteval(command);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(args.front() == "--device" ? args[args.size() - 2] : args.front()) != std::string::npos);
  }
  const auto help = quanteval::test::run_quanteval({"bench", "decode", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--decode-context") != std::string::npos);
  CHECK(help.out.find("--device cuda") != std::string::npos);
}

TEST_CASE("a bad QUANTEVAL_CPU_* setting is an input error, reported before any work") {
  // Read on first use, which can be inside a thread-pool worker; the CPU backend reads them
  // when it is built, so the CLI reports them (an exception in a worker would abort).
  for (const std::string setting :
       {"QUANTEVAL_CPU_ISA=avx9", "QUANTEVAL_CPU_DENSE_PREFETCH=sideways", "QUANTEVAL_CPU_INT4_PREFETCH=later"}) {
    CAPTURE(setting);
    const auto r = quanteval::test::run_quanteval({"bench", "decode", "--decode-tokens", "1"}, {setting});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(setting.substr(0, setting.find('='))) != std::string::npos);
    CHECK(r.err.find(setting.substr(setting.find('=') + 1)) != std::string::npos);
  }
}
