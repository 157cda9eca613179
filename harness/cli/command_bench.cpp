// `quanteval bench`: the runtime's speed benchmarks, each a program of its own
// under tools/ (they print a table with same-run baselines; see docs/perf.md).
// The verb finds them beside the quanteval binary and runs them.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "harness/cli/commands.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;

namespace {

struct Benchmark {
  const char* name;
  const char* program;
  const char* summary;
};

constexpr Benchmark kBenchmarks[] = {
    {"decode", "bench_decode",
     "prefill/decode tokens/s of a random-weight model (or --checkpoint DIR) vs the memory floor, on the CPU "
     "or --device cuda (`quanteval bench decode --help` lists the options)"},
    {"gemm", "bench_cpu_gemm",
     "CPU INT4 and BF16 GEMM vs memcpy, DRAM-resident GEMV vs the memory floor (--threads N, --isa "
     "scalar|avx2|avx512|amx, as QUANTEVAL_CPU_ISA caps them)"},
    {"gemm-cuda", "bench_gemm_cuda",
     "CUDA INT4 GEMM vs cuBLAS BF16 and copy bandwidth on Qwen3.5-27B shapes (GPU builds)"},
    {"sandbox", "bench_sandbox", "sandbox programs/s for a number of workers"},
    {"tokenizer", "bench_tokenizer", "tokenizer throughput on the HumanEval prompts"},
};

fs::path own_directory() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path(".") : self.parent_path();
}

}  // namespace

int command_bench(int argc, char** argv, int first) {
  std::string help = "usage: quanteval bench <benchmark> [its options]\n\nbenchmarks:\n";
  for (const auto& b : kBenchmarks) help += fmt::format("  {:<10} {}\n", b.name, b.summary);
  if (first >= argc || std::string(argv[first]) == "--help") {
    fmt::print("{}", help);
    return first >= argc ? 2 : 0;
  }
  const std::string which = argv[first];
  for (const auto& b : kBenchmarks) {
    if (which != b.name) continue;
    // Build tree: build/harness/quanteval and build/tools/<program>; installed: side by side.
    for (const fs::path& candidate : {own_directory() / ".." / "tools" / b.program, own_directory() / b.program}) {
      if (!fs::exists(candidate)) continue;
      std::vector<char*> args;
      std::string program = candidate.string();
      args.push_back(program.data());
      for (int i = first + 1; i < argc; ++i) args.push_back(argv[i]);
      args.push_back(nullptr);
      ::execv(program.c_str(), args.data());
      throw std::runtime_error(fmt::format("cannot run {}", program));
    }
    throw std::runtime_error(
        fmt::format("benchmark program {} not found beside {} (is it built? gemm-cuda needs a CUDA build)", b.program,
                    own_directory().string()));
  }
  throw UsageError(fmt::format("unknown benchmark '{}'\n{}", which, help));
}

}  // namespace quanteval::harness
