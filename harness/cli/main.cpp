// quanteval: the command-line boundary. Every error below this point is an
// exception with context; here it becomes one message and its exit code
// (harness/cli.hpp: 2 for usage and input errors, 3 for internal errors).
#include <cstdio>
#include <exception>

#include "harness/cli/cli.hpp"

int main(int argc, char** argv) {
  try {
    return quanteval::harness::run_cli(argc, argv);
  } catch (...) {
    const auto exit = quanteval::harness::error_exit(std::current_exception());
    std::fprintf(stderr, "%s\n", exit.message.c_str());
    return exit.code;
  }
}
