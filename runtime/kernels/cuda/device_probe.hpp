#pragma once
// What the CUDA backend can see of the machine. Built only when nvcc exists
// (QUANTEVAL_HAVE_CUDA); callers go through runtime/platform/device.hpp.
#include <cstddef>
#include <string>
#include <vector>

namespace quanteval::runtime::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  std::size_t total_memory_bytes = 0;
  int multiprocessors = 0;
};

// Whether this build's kernels can run here, and if not, why -- in CUDA's own words, so
// that "no driver", "driver too old for this CUDA runtime", "no device" and "no kernel
// image for this GPU" are told apart (all of them used to look like "no GPU").
struct DeviceStatus {
  bool usable = false;
  int device_count = 0;
  int driver_version = 0;   // cudaDriverGetVersion (e.g. 13000), 0 when no driver is loaded
  int runtime_version = 0;  // cudaRuntimeGetVersion of the runtime linked into this binary
  // Empty when usable, else the failing call and CUDA's error name and text, e.g.
  // "cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime version
  // (cudaErrorInsufficientDriver)".
  std::string reason;

  // One line for logs: "CUDA usable: 1 device(s); runtime 13.0, driver 13.0" or
  // "CUDA not usable: <reason>; runtime 13.0, driver none found (libcuda.so.1 is not loadable)".
  std::string summary() const;
};

// Probes once per call (cheap after the first: the runtime caches its state). Never throws.
DeviceStatus device_status();

// Lists visible GPUs; an empty list when no driver or device is present
// (never throws: a CPU-only machine is a normal case; device_status() says why).
std::vector<DeviceInfo> list_devices();

// Adds two small vectors on the GPU and returns the maximum absolute error
// against the host sum: a smoke test that kernels launch and memory moves.
// Throws std::runtime_error with the CUDA error text when anything fails.
double vector_add_smoke_test(int elements);

}  // namespace quanteval::runtime::cuda
