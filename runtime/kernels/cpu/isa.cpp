#include "runtime/kernels/cpu/isa.hpp"

#include "runtime/kernels/cpu/kernel_detail.hpp"

namespace quanteval::runtime {

std::string_view to_string(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar: return "scalar";
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
  }
  return "unknown";
}

bool cpu_supports(CpuIsa isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // libgcc's cpu model also checks XCR0, i.e. that the OS saves the wide registers.
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  switch (isa) {
    case CpuIsa::scalar: return true;
    case CpuIsa::avx2: return avx2 && detail::avx2_kernels_compiled();
    case CpuIsa::avx512:
      return avx2 && detail::avx512_kernels_compiled() && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  }
  return false;
#else
  return isa == CpuIsa::scalar;
#endif
}

CpuIsa best_cpu_isa() {
  if (cpu_supports(CpuIsa::avx512)) return CpuIsa::avx512;
  if (cpu_supports(CpuIsa::avx2)) return CpuIsa::avx2;
  return CpuIsa::scalar;
}

}  // namespace quanteval::runtime
