#pragma once
// The sandbox pool the harness tests run programs on: the tests' interpreter
// (Debian's python3, tests/support) and two workers unless a test asks for fewer.
#include "sandbox/sandbox.hpp"
#include "tests/support/test_data.hpp"

namespace quanteval::test {

inline sandbox::Config test_pool_config(int workers = 2) {
  sandbox::Config config;
  config.python = python();
  config.workers = workers;
  return config;
}

}  // namespace quanteval::test
