#pragma once
// Which SIMD level the CPU kernels use. Chosen at run time from what this CPU
// reports, so one binary runs everywhere; tests force each level explicitly.
#include <string>
#include <string_view>

namespace quanteval::runtime {

enum class CpuIsa {
  scalar,  // portable C++; any CPU
  avx2,    // AVX2 + FMA + F16C (x86-64-v3)
  avx512,  // AVX-512 F/BW/VL on top of avx2
};

std::string_view to_string(CpuIsa isa);

// True when this CPU (and OS) can run the kernels of that level, this build has them,
// and the level is not above the cap QUANTEVAL_CPU_ISA sets (see isa_cap()).
bool cpu_supports(CpuIsa isa);

// The highest level the kernels may use: the environment variable QUANTEVAL_CPU_ISA
// (scalar | avx2 | avx512) when set, else avx512 (no cap). It lets an AVX-512 machine
// run, test and measure exactly the kernels an AVX2-only one runs (the CI machine):
// QUANTEVAL_CPU_ISA=avx2 makes cpu_supports(avx512) false, so the default dispatch,
// the activation quantizer and forced-ISA tests all take the AVX2 paths. Read once per
// process; an unknown value throws std::invalid_argument naming it.
CpuIsa isa_cap();

// Whether the AVX2 int16 kernels use AVX-VNNI (VEX vpdpwssd; Intel since Alder Lake):
// the CPU has it and the cap is not avx2 -- QUANTEVAL_CPU_ISA=avx2 stands for a plain
// AVX2 CPU (Haswell, Zen 3), so capped runs measure and test exactly its code.
bool avx2_vnni_enabled();

// The name as printed by the benchmarks: the level plus "(capped by QUANTEVAL_CPU_ISA, hardware: ...)"
// when the cap lowered it, "+vnni" when the AVX-512 int16 kernels use VNNI and "+avxvnni"
// when the AVX2 ones use AVX-VNNI.
std::string describe_cpu_isa();

// The widest supported level.
CpuIsa best_cpu_isa();

}  // namespace quanteval::runtime
