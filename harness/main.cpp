// quanteval: the command-line boundary. Every error below this point is an
// exception with context; here it becomes one message and exit code 2.
#include <cstdio>
#include <exception>

#include "harness/cli.hpp"

int main(int argc, char** argv) {
  try {
    return quanteval::harness::run_cli(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quanteval: error: %s\n", e.what());
    return 2;
  }
}
