#pragma once
// The quanteval command line: verbs like git (`quanteval <verb> [options]`).
// Exit codes: 0 ok, 1 gate failed / selftest surprise, 2 usage or input error.
namespace quanteval::harness {

int run_cli(int argc, char** argv);

}  // namespace quanteval::harness
