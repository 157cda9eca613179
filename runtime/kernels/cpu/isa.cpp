#include "runtime/kernels/cpu/isa.hpp"

#include <cstdlib>
#include <stdexcept>
#include <string>

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

namespace {

struct IsaCap {
  CpuIsa level;
  bool amx;
};

IsaCap read_isa_cap() {
  const char* value = std::getenv("QUANTEVAL_CPU_ISA");
  if (value == nullptr || *value == '\0') return {CpuIsa::avx512, true};
  const std::string_view name = value;
  if (name == "scalar") return {CpuIsa::scalar, false};
  if (name == "avx2") return {CpuIsa::avx2, false};
  if (name == "avx512") return {CpuIsa::avx512, false};
  if (name == "amx") return {CpuIsa::avx512, true};
  throw std::invalid_argument("QUANTEVAL_CPU_ISA='" + std::string(name) + "': expected scalar, avx2, avx512 or amx");
}

// Computed once (the environment is read at first use) and never changed after.
const IsaCap& cap() {
  static const IsaCap value = read_isa_cap();
  return value;
}

// Asks the OS for the tile state once per process (see detail::amx_int8_usable).
bool amx_hardware() {
  static const bool usable = detail::amx_int8_usable();
  return usable;
}

// What the hardware and this build can run, ignoring the cap.
bool hardware_supports(CpuIsa isa) {
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

}  // namespace

CpuIsa isa_cap() { return cap().level; }

bool cpu_supports(CpuIsa isa) { return static_cast<int>(isa) <= static_cast<int>(isa_cap()) && hardware_supports(isa); }

bool amx_enabled() { return cap().amx && cpu_supports(CpuIsa::avx512) && amx_hardware(); }

bool avx2_vnni_enabled() {
  return isa_cap() != CpuIsa::avx2 && cpu_supports(CpuIsa::avx2) && detail::avx_vnni_supported();
}

namespace {

// A setting with two values: `yes` gives true, `no` false, unset or empty `fallback`; any
// other value throws std::invalid_argument naming the variable and both values.
bool two_way_setting(const char* variable, std::string_view yes, std::string_view no, bool fallback) {
  const char* value = std::getenv(variable);
  if (value == nullptr || *value == '\0') return fallback;
  const std::string_view name = value;
  if (name == yes) return true;
  if (name == no) return false;
  throw std::invalid_argument(std::string(variable) + "='" + std::string(name) + "': expected " + std::string(yes) +
                              " or " + std::string(no));
}

}  // namespace

bool dense_row_prefetch() {
  static const bool enabled = [] {
    bool intel = false;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    intel = __builtin_cpu_is("intel") != 0;
#endif
    return two_way_setting("QUANTEVAL_CPU_DENSE_PREFETCH", "rows", "linear", intel);
  }();
  return enabled;
}

bool int4_software_prefetch() {
  static const bool enabled = [] {
    bool zen4 = false;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    zen4 = __builtin_cpu_is("amdfam19h") && __builtin_cpu_supports("avx512f");
#endif
    return two_way_setting("QUANTEVAL_CPU_INT4_PREFETCH", "hinted", "hardware", !zen4);
  }();
  return enabled;
}

void check_cpu_settings() {
  isa_cap();
  dense_row_prefetch();
  int4_software_prefetch();
}

std::string describe_cpu_isa() {
  const CpuIsa best = best_cpu_isa();
  std::string out(to_string(best));
  if (best == CpuIsa::avx512 && detail::avx512_vnni_supported()) out += "+vnni";
  if (amx_enabled()) out += "+amx";
  if (best == CpuIsa::avx2 && avx2_vnni_enabled()) out += "+avxvnni";
  CpuIsa hardware = CpuIsa::scalar;
  if (hardware_supports(CpuIsa::avx512))
    hardware = CpuIsa::avx512;
  else if (hardware_supports(CpuIsa::avx2))
    hardware = CpuIsa::avx2;
  const bool hardware_amx = hardware == CpuIsa::avx512 && amx_hardware();
  if (hardware != best || hardware_amx != amx_enabled())
    out += " (capped by QUANTEVAL_CPU_ISA, hardware: " + std::string(to_string(hardware)) + (hardware_amx ? "+amx" : "") +
           ")";
  if (best == CpuIsa::avx512 && dense_row_prefetch()) out += ", bf16 row prefetch";
  if (best != CpuIsa::scalar && !int4_software_prefetch()) out += ", int4 hardware prefetch";
  return out;
}

CpuIsa best_cpu_isa() {
  if (cpu_supports(CpuIsa::avx512)) return CpuIsa::avx512;
  if (cpu_supports(CpuIsa::avx2)) return CpuIsa::avx2;
  return CpuIsa::scalar;
}

}  // namespace quanteval::runtime
