#include "runtime/kernels/cuda/device_probe.hpp"

#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace quanteval::runtime::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

__global__ void add_kernel(const float* a, const float* b, float* out, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = a[i] + b[i];
}

std::string describe_error(const std::string& call, cudaError_t status) {
  return call + ": " + cudaGetErrorString(status) + " (" + cudaGetErrorName(status) + ")";
}

std::string version_text(int version) {
  if (version <= 0) return "-";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

}  // namespace

std::string DeviceStatus::summary() const {
  std::string versions = "runtime " + version_text(runtime_version) + ", driver ";
  if (driver_version == 0)
    versions += "none found (libcuda.so.1 is not loadable)";
  else
    versions += version_text(driver_version) + (driver_version < runtime_version ? " (older than the runtime)" : "");
  if (usable) return "CUDA usable: " + std::to_string(device_count) + " device(s); " + versions;
  return "CUDA not usable: " + reason + "; " + versions;
}

DeviceStatus device_status() {
  DeviceStatus status;
  cudaRuntimeGetVersion(&status.runtime_version);
  if (cudaDriverGetVersion(&status.driver_version) != cudaSuccess) status.driver_version = 0;
  const cudaError_t count_status = cudaGetDeviceCount(&status.device_count);
  if (count_status != cudaSuccess) {
    cudaGetLastError();  // clear the error so later calls start clean
    status.device_count = 0;
    status.reason = describe_error("cudaGetDeviceCount", count_status);
    return status;
  }
  if (status.device_count == 0) {
    status.reason = "cudaGetDeviceCount: the driver reports 0 devices";
    return status;
  }
  // A device this binary has no machine code (or PTX) for fails here, not at the first GEMM.
  cudaFuncAttributes attributes{};
  const cudaError_t image_status = cudaFuncGetAttributes(&attributes, add_kernel);
  if (image_status != cudaSuccess) {
    cudaGetLastError();
    cudaDeviceProp prop{};
    std::string device = "device 0";
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
      device += " (" + std::string(prop.name) + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
    status.reason = describe_error("cudaFuncGetAttributes on " + device, image_status);
    return status;
  }
  status.usable = true;
  return status;
}

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
