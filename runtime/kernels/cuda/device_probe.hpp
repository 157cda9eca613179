#pragma once
// What the CUDA backend can see of the machine. Built only when nvcc exists
// (QUANTEVAL_HAVE_CUDA); callers go through runtime/device.hpp.
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

// Lists visible GPUs; an empty list when no driver or device is present
// (never throws: a CPU-only machine is a normal case).
std::vector<DeviceInfo> list_devices();

// Adds two small vectors on the GPU and returns the maximum absolute error
// against the host sum: a smoke test that kernels launch and memory moves.
// Throws std::runtime_error with the CUDA error text when anything fails.
double vector_add_smoke_test(int elements);

}  // namespace quanteval::runtime::cuda
