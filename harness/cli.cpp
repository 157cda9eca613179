#include "harness/cli.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <string>

namespace quanteval::harness {

int run_cli(int argc, char** argv) {
  if (argc < 2) {
    std::fputs("usage: quanteval <verb> [options]\n", stderr);
    return 2;
  }
  fmt::print(stderr, "quanteval: unknown verb '{}'\n", argv[1]);
  return 2;
}

}  // namespace quanteval::harness
