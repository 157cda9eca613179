#include "runtime/platform/device.hpp"

#include <stdexcept>
#include <string>

#ifdef QUANTEVAL_HAVE_CUDA
#include "runtime/kernels/cuda/device_probe.hpp"
#endif

namespace quanteval::runtime {

bool cuda_built() {
#ifdef QUANTEVAL_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_available() {
#ifdef QUANTEVAL_HAVE_CUDA
  return cuda::device_status().usable;
#else
  return false;
#endif
}

std::string cuda_unavailable_reason() {
#ifdef QUANTEVAL_HAVE_CUDA
  const cuda::DeviceStatus status = cuda::device_status();
  return status.usable ? std::string() : status.summary();
#else
  return "this build has no CUDA backend (nvcc was not found at build time)";
#endif
}

Device select_device(std::string_view requested) {
  if (requested == "cpu") return Device::cpu;
  if (requested == "auto") return cuda_available() ? Device::cuda : Device::cpu;
  if (requested == "cuda") {
    if (!cuda_built())
      throw std::runtime_error("--device cuda: this build has no CUDA backend (nvcc was not found at build time)");
    if (!cuda_available()) throw std::runtime_error("--device cuda: no CUDA device: " + cuda_unavailable_reason());
    return Device::cuda;
  }
  throw std::invalid_argument("--device: expected cpu, cuda or auto, got '" + std::string(requested) + "'");
}

std::string describe_devices() {
  std::string text = "cpu";
#ifdef QUANTEVAL_HAVE_CUDA
  if (const std::string reason = cuda_unavailable_reason(); !reason.empty()) text += "\ncuda: none (" + reason + ")";
  for (const auto& d : cuda::list_devices())
    text += "\ncuda:" + std::to_string(d.index) + " " + d.name + " (sm_" + std::to_string(d.compute_major) +
            std::to_string(d.compute_minor) + ", " + std::to_string(d.total_memory_bytes >> 20) + " MiB)";
#endif
  return text;
}

}  // namespace quanteval::runtime
