#include "runtime/platform/host_memory.hpp"

#include <unistd.h>

#include <fstream>
#include <string>

namespace quanteval::runtime {
namespace {

// A "Name:   1234 kB" line of /proc/self/status, in bytes.
std::uint64_t status_kilobytes(const char* name) {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == name) {
      std::uint64_t kilobytes = 0;
      status >> kilobytes;
      return kilobytes * 1024;
    }
    status.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace

std::uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return 0;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
}

std::uint64_t peak_resident_bytes() { return status_kilobytes("VmHWM:"); }
std::uint64_t resident_bytes() { return status_kilobytes("VmRSS:"); }

}  // namespace quanteval::runtime
