#pragma once
// The memory floor the benchmarks compare kernels with: how fast this machine can
// stream bytes from DRAM into registers, measured the way a kernel would at best
// (every SIMD load width the CPU has, every thread of the pool, each thread on its own
// contiguous share, a buffer far beyond the last-level cache, several passes with several
// software-prefetch distances, the best of all). A GEMV that reads each weight once cannot
// be faster than this, so a benchmark row above it means the measurement, not the kernel,
// is wrong. One core alone is limited by how many misses it keeps in flight, which
// software prefetch raises, and which load width streams best differs between CPUs (4 ymm
// beat 4 zmm per step on an Intel Xeon VM), hence the search.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"

namespace quanteval::runtime {

struct ReadBandwidth {
  double gb_per_s = 0;             // best pass: bytes / seconds / 1e9
  double worst_gb_per_s = 0;       // the worst pass of the best configuration
  CpuIsa isa = CpuIsa::scalar;     // the loads of the best configuration
  std::size_t prefetch_bytes = 0;  // its prefetch distance (0: none)
  int threads = 0;
  std::size_t bytes = 0;   // buffer size
  int passes = 0;          // per configuration
  int configurations = 0;  // load widths x prefetch distances tried
};

// Allocates `bytes` (rounded up to 4 KiB) in the weights' kind of pages, touches every
// page, then reads the whole buffer `passes` times with read_stream split over `pool`, for
// each SIMD load width cpu_supports (AVX-512, AVX2; scalar when neither) and prefetch
// distance 0 / 2 / 4 / 8 KB, interleaved. `bytes` should be many times the last-level
// cache (1 GiB by default) so no pass is served from cache.
ReadBandwidth measure_read_bandwidth(ThreadPool& pool, std::size_t bytes = std::size_t{1} << 30, int passes = 5);

// A buffer of `bytes` (rounded up to 4 KiB; the weights' kind of pages, every page touched)
// that gb_per_s() reads once per call, split over the pool as measure_read_bandwidth does.
// Benchmarks interleave such passes with the work they time, so each measurement gets a floor
// taken at the same moment: on a shared VM whose bandwidth moved between ~35 and ~60 GB/s from
// one minute to the next (a Zen 4 VM, 2026-12-04), a floor measured once belongs to another
// moment, and decode against it said 51% where the same-moment ratio was 95%.
class ReadPass {
 public:
  ReadPass(ThreadPool& pool, std::size_t bytes);
  ~ReadPass();
  ReadPass(const ReadPass&) = delete;
  ReadPass& operator=(const ReadPass&) = delete;
  // One pass with `isa`'s loads and that prefetch distance; returns bytes / seconds / 1e9.
  // Throws std::logic_error if the checksum shows a word was not read.
  double gb_per_s(CpuIsa isa, std::size_t prefetch_bytes);
  std::size_t bytes() const { return bytes_; }

 private:
  ThreadPool& pool_;
  std::size_t bytes_;
  unsigned char* base_;
};

// XOR of all 64-bit words of data[0, bytes) (bytes a multiple of 8), read with the
// widest loads `isa` has, software-prefetching `prefetch_bytes` ahead (0: none; scalar
// ignores it); the result keeps the loads from being optimized away and lets tests check
// that every byte was read once. Throws std::runtime_error when the CPU lacks `isa`.
std::uint64_t read_stream(const void* data, std::size_t bytes, CpuIsa isa, std::size_t prefetch_bytes = 0);

// "model name" from /proc/cpuinfo (or "unknown CPU"), for benchmark headers.
std::string cpu_model_name();

}  // namespace quanteval::runtime
