#include "runtime/kernels/cuda/device_probe.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace quanteval::runtime::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

__global__ void add_kernel(const float* a, const float* b, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

}  // namespace

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> devices;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return devices;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    devices.push_back({i, prop.name, prop.major, prop.minor, prop.totalGlobalMem, prop.multiProcessorCount});
  }
  return devices;
}

double vector_add_smoke_test(int elements) {
  std::vector<float> a(elements), b(elements), out(elements);
  for (int i = 0; i < elements; ++i) {
    a[i] = 0.5f * static_cast<float>(i);
    b[i] = 1.0f / static_cast<float>(i + 1);
  }
  float *da = nullptr, *db = nullptr, *dout = nullptr;
  const size_t bytes = sizeof(float) * static_cast<size_t>(elements);
  check(cudaMalloc(&da, bytes), "cudaMalloc");
  check(cudaMalloc(&db, bytes), "cudaMalloc");
  check(cudaMalloc(&dout, bytes), "cudaMalloc");
  check(cudaMemcpy(da, a.data(), bytes, cudaMemcpyHostToDevice), "copy a");
  check(cudaMemcpy(db, b.data(), bytes, cudaMemcpyHostToDevice), "copy b");
  add_kernel<<<(elements + 255) / 256, 256>>>(da, db, dout, elements);
  check(cudaGetLastError(), "launch add_kernel");
  check(cudaMemcpy(out.data(), dout, bytes, cudaMemcpyDeviceToHost), "copy out");
  cudaFree(da);
  cudaFree(db);
  cudaFree(dout);
  double worst = 0.0;
  for (int i = 0; i < elements; ++i) worst = std::fmax(worst, std::fabs(out[i] - (a[i] + b[i])));
  return worst;
}

}  // namespace quanteval::runtime::cuda
