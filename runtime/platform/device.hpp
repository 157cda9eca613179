#pragma once
// Which compute device the runtime uses: "cpu", "cuda" or "auto" (CUDA when
// the CUDA backend was built and a GPU is visible, else CPU).
#include <string>
#include <string_view>

namespace quanteval::runtime {

enum class Device { cpu, cuda };

// True when this build contains the CUDA backend.
bool cuda_built();

// True when the CUDA backend is built and at least one GPU is visible.
bool cuda_available();

// Parses "cpu" | "cuda" | "auto"; throws std::invalid_argument naming the value
// for anything else, and std::runtime_error for "cuda" when no GPU can be used.
Device select_device(std::string_view requested);

std::string describe_devices();  // one line per device, for `inspect` and reports

}  // namespace quanteval::runtime
