#pragma once
// The memory floor the benchmarks compare kernels with: how fast this machine can
// stream bytes from DRAM into registers, measured the way a kernel would at best
// (the widest loads the active ISA has, every thread of the pool, each thread on
// its own contiguous share, a buffer far beyond the last-level cache, best of
// several passes). A GEMV that reads each weight once cannot be faster than this,
// so a benchmark row above it means the measurement, not the kernel, is wrong.
// One core alone is limited by how many misses it keeps in flight, which software
// prefetch raises (the INT4 kernels prefetch 2 KB ahead and beat a plain read loop at
// one thread), so each pass is run with no prefetch and with 2 KB and 4 KB prefetch
// distances, and the best of all counts.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"

namespace quanteval::runtime {

struct ReadBandwidth {
  double gb_per_s = 0;  // best pass: bytes / seconds / 1e9
  double worst_gb_per_s = 0;
  CpuIsa isa = CpuIsa::scalar;     // the loads used
  std::size_t prefetch_bytes = 0;  // prefetch distance of the best pass (0: none)
  int threads = 0;
  std::size_t bytes = 0;  // buffer size
  int passes = 0;
};

// Allocates `bytes` (rounded up to 4 KiB), touches every page, then reads the whole
// buffer `passes` times per prefetch distance (interleaved) with read_stream split over
// `pool`. `bytes` should be many
// times the last-level cache (1 GiB by default) so no pass is served from cache.
ReadBandwidth measure_read_bandwidth(ThreadPool& pool, std::size_t bytes = std::size_t{1} << 30, int passes = 5);

// XOR of all 64-bit words of data[0, bytes) (bytes a multiple of 8), read with the
// widest loads `isa` has, software-prefetching `prefetch_bytes` ahead (0: none; scalar
// ignores it); the result keeps the loads from being optimized away and lets tests check
// that every byte was read once. Throws std::runtime_error when the CPU lacks `isa`.
std::uint64_t read_stream(const void* data, std::size_t bytes, CpuIsa isa, std::size_t prefetch_bytes = 0);

// "model name" from /proc/cpuinfo (or "unknown CPU"), for benchmark headers.
std::string cpu_model_name();

}  // namespace quanteval::runtime
