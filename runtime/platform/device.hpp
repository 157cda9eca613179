#pragma once
// Which compute device the runtime uses: "cpu", "cuda" or "auto" (CUDA when
// the CUDA backend was built and a GPU is visible, else CPU).
#include <string>
#include <string_view>

namespace quanteval::runtime {

enum class Device { cpu, cuda };

// True when this build contains the CUDA backend.
bool cuda_built();

// True when the CUDA backend is built and its kernels can run on a visible GPU.
bool cuda_available();

// Why cuda_available() is false, in CUDA's words (e.g. "CUDA not usable: cudaGetDeviceCount:
// CUDA driver version is insufficient for CUDA runtime version (cudaErrorInsufficientDriver);
// runtime 13.0, driver 12.4 (older than the runtime)"); empty when it is true.
std::string cuda_unavailable_reason();

// Parses "cpu" | "cuda" | "auto"; throws std::invalid_argument naming the value
// for anything else, and std::runtime_error for "cuda" when no GPU can be used.
Device select_device(std::string_view requested);

std::string describe_devices();  // one line per device, for `inspect` and reports

}  // namespace quanteval::runtime
