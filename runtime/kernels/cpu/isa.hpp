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

// Which software prefetch the AVX-512 bf16 GEMV (the 16-bit lm_head, most of a small
// model's decode bytes) uses for its weight stream: true = each weight row's own lines a few
// rows ahead into L1 plus further ahead into L2 only (PREFETCHT1), false = one prefetch into
// L1 per line, 8 KB ahead in address order (what the AVX2 kernel does everywhere). The two
// CPU families disagree: on an Intel Xeon (Sapphire Rapids class) the row scheme streamed
// 93-96% of the read floor and decoded faster than the linear one; on an AMD Zen 5 the linear
// one streamed 1.10-1.19x (M = 1) and 1.28x (M = 16) the row scheme, interleaved call by call
// (docs/perf.md, 2026-12-03 13:47). So: true on Intel, false elsewhere;
// QUANTEVAL_CPU_DENSE_PREFETCH=rows|linear overrides (to measure either on any CPU). Read
// once per process; another value throws std::invalid_argument. Results never depend on it.
bool dense_row_prefetch();

// Whether the int16-activation INT4 kernels (the AVX-512 and AVX2 ones, not AMX) issue their
// software prefetches: true = into L1 32 lines (2 KB) ahead plus into L2 only (PREFETCHT1) 128
// lines ahead in every tile, false = none at M = 1 and only the L1 one in tiles of more rows,
// leaving the stream to the hardware prefetchers. Measured, DRAM-resident MLP matrices at 2
// threads with the calls interleaved: on an Intel Xeon (Sapphire Rapids class) the L2 one made
// M = 1 12-13% faster, on an AMD Zen 5 it was worth as much or a little more, but on an AMD
// Zen 4 the M = 1 GEMV streamed 1.13x (at a 35 GB/s read floor) and 1.29x (at 55-61 GB/s)
// faster with no software prefetch, and M = 16 lost nothing without the L2 one (docs/perf.md,
// 2026-12-04). So false on Zen 4 (AMD family 19h with AVX-512; Zen 3, the same family, has no
// AVX-512 and was not measured), true elsewhere; QUANTEVAL_CPU_INT4_PREFETCH=hinted|hardware
// overrides. Read once per process; another value throws std::invalid_argument. Results
// never depend on it.
bool int4_software_prefetch();

// Reads every QUANTEVAL_CPU_* setting above now, on the calling thread: a bad value throws
// std::invalid_argument here (the CPU backend calls it when it is built) instead of at first
// use, which may be inside a pool worker, where an exception ends the process.
void check_cpu_settings();

// The name as printed by the benchmarks: the level plus "(capped by QUANTEVAL_CPU_ISA, hardware: ...)"
// when the cap lowered it, "+vnni" when the AVX-512 int16 kernels use VNNI, "+amx" when
// they use AMX tiles, "+avxvnni" when the AVX2 ones use AVX-VNNI, ", bf16 row prefetch"
// when the AVX-512 bf16 kernel uses dense_row_prefetch()'s row scheme, and ", int4 hardware
// prefetch" when int4_software_prefetch() is false.
std::string describe_cpu_isa();

// The widest supported level.
CpuIsa best_cpu_isa();

}  // namespace quanteval::runtime
