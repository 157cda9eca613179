#pragma once
// Which SIMD level the CPU kernels use. Chosen at run time from what this CPU
// reports, so one binary runs everywhere; tests force each level explicitly.
#include <string_view>

namespace quanteval::runtime {

enum class CpuIsa {
  scalar,  // portable C++; any CPU
  avx2,    // AVX2 + FMA + F16C (x86-64-v3)
  avx512,  // AVX-512 F/BW/VL on top of avx2
};

std::string_view to_string(CpuIsa isa);

// True when this CPU (and OS) can run the kernels of that level and this build has them.
bool cpu_supports(CpuIsa isa);

// The widest supported level.
CpuIsa best_cpu_isa();

}  // namespace quanteval::runtime
