#pragma once
// What the operating system says about this machine's and this process's memory.
#include <cstdint>

namespace quanteval::runtime {

// Physical RAM of this machine in bytes (0 when unknown).
std::uint64_t physical_memory_bytes();

// The most memory this process has had resident at once (VmHWM: anonymous
// memory plus the mapped file pages it touched), and what it has now (VmRSS).
// 0 when /proc is not available.
std::uint64_t peak_resident_bytes();
std::uint64_t resident_bytes();

}  // namespace quanteval::runtime
