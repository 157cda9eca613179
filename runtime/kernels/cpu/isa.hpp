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
// (scalar | avx2 | avx512 | amx) when set, else no cap. It lets an AVX-512 machine
// run, test and measure exactly the kernels an AVX2-only one runs (the CI machine):
// QUANTEVAL_CPU_ISA=avx2 makes cpu_supports(avx512) false, so the default dispatch,
// the activation quantizer and forced-ISA tests all take the AVX2 paths; avx512 keeps
// AVX-512 but not AMX (amx_enabled() false: an AVX-512 CPU without tiles, Ice Lake or
// Zen 4); amx is the same as no cap. Returns the SIMD level (avx512 for amx). Read once
// per process; an unknown value throws std::invalid_argument naming it.
CpuIsa isa_cap();

// Whether the int16-activation INT4 product may run on AMX-INT8 tiles
// (detail::int4_blocks_amx, for M >= Int4Linear's AMX threshold): AVX-512 is supported,
// the cap allows AMX, and the CPU, OS and process permission allow it (Linux only).
bool amx_enabled();

// Whether the AVX2 int16 kernels use AVX-VNNI (VEX vpdpwssd; Intel since Alder Lake):
// the CPU has it and the cap is not avx2 -- QUANTEVAL_CPU_ISA=avx2 stands for a plain
// AVX2 CPU (Haswell, Zen 3), so capped runs measure and test exactly its code.
bool avx2_vnni_enabled();

// The name as printed by the benchmarks: the level plus "(capped by QUANTEVAL_CPU_ISA, hardware: ...)"
// when the cap lowered it, "+vnni" when the AVX-512 int16 kernels use VNNI, "+amx" when
// they use AMX tiles and "+avxvnni" when the AVX2 ones use AVX-VNNI.
std::string describe_cpu_isa();

// The widest supported level.
CpuIsa best_cpu_isa();

}  // namespace quanteval::runtime
