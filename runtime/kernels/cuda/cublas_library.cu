#include "runtime/kernels/cuda/cublas_library.hpp"

#include <cublas_api.h>
#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace quanteval::runtime::cuda {

// The four entry points used, as explicit pointer types (cublasGemmEx is overloaded in C++).
struct CublasHandle::Api {
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*destroy)(cublasHandle_t) = nullptr;
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  const char* (*status_string)(cublasStatus_t) = nullptr;  // optional

  std::string describe(cublasStatus_t status) const {
    std::string text = "status " + std::to_string(static_cast<int>(status));
    if (status_string) text += " (" + std::string(status_string(status)) + ")";
    return text;
  }
};

std::unique_ptr<CublasHandle> CublasHandle::open(std::string& error) {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  std::vector<std::string> candidates = {soname};
  if (const char* home = std::getenv("CUDA_HOME"); home && *home)
    candidates.push_back(std::string(home) + "/lib64/" + soname);
  candidates.push_back("/usr/local/cuda/lib64/" + soname);
  candidates.push_back("/usr/local/cuda/targets/x86_64-linux/lib/" + soname);

  std::unique_ptr<CublasHandle> out(new CublasHandle());
  out->api_ = std::make_unique<Api>();
  std::string tried;
  for (const std::string& candidate : candidates) {
    out->dl_ = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (out->dl_) {
      out->library_ = candidate;
      break;
    }
    const char* why = dlerror();
    tried += (tried.empty() ? "" : "; ") + std::string(why ? why : candidate.c_str());
  }
  if (!out->dl_) {
    error = "cuBLAS not found (" + tried + ")";
    return nullptr;
  }
  auto resolve = [&](auto& pointer, const char* symbol, bool required) {
    pointer = reinterpret_cast<std::remove_reference_t<decltype(pointer)>>(dlsym(out->dl_, symbol));
    if (!pointer && required) throw std::runtime_error(std::string(symbol) + " missing in " + out->library_);
  };
  try {
    resolve(out->api_->create, "cublasCreate_v2", true);
    resolve(out->api_->destroy, "cublasDestroy_v2", true);
    resolve(out->api_->set_stream, "cublasSetStream_v2", true);
    resolve(out->api_->gemm_ex, "cublasGemmEx", true);
    resolve(out->api_->status_string, "cublasGetStatusString", false);
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;  // the destructor closes the library
  }
  cublasHandle_t handle = nullptr;
  const cublasStatus_t status = out->api_->create(&handle);
  if (status != CUBLAS_STATUS_SUCCESS) {
    error = "cublasCreate (" + out->library_ + "): " + out->api_->describe(status);
    return nullptr;
  }
  out->handle_ = handle;
  return out;
}

CublasHandle::~CublasHandle() {
  if (handle_ && api_ && api_->destroy) api_->destroy(static_cast<cublasHandle_t>(handle_));
  if (dl_) dlclose(dl_);
}

void CublasHandle::gemm_row_major(bool bf16, int m, int n, int k, const void* a, int lda, const void* w, int ldw,
                                  void* c, int ldc, cudaStream_t stream) {
  const Type type = bf16 ? Type::bf16 : Type::f16;
  gemm_row_major(type, type, m, n, k, a, lda, w, ldw, c, ldc, stream);
}

void CublasHandle::gemm_row_major(Type ab, Type c_type, int m, int n, int k, const void* a, int lda, const void* w,
                                  int ldw, void* c, int ldc, cudaStream_t stream) {
  auto data_type = [](Type t) { return t == Type::bf16 ? CUDA_R_16BF : t == Type::f16 ? CUDA_R_16F : CUDA_R_32F; };
  auto handle = static_cast<cublasHandle_t>(handle_);
  cublasStatus_t status = api_->set_stream(handle, stream);
  if (status != CUBLAS_STATUS_SUCCESS) throw std::runtime_error("cublasSetStream: " + api_->describe(status));
  // Row-major C[m, n] = A W^T is column-major C^T[n, m] = W (column-major [k, n], transposed) x A^T.
  const float alpha = 1.0f, beta = 0.0f;
  const cudaDataType type = data_type(ab);
  status = api_->gemm_ex(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, type, ldw, a, type, lda, &beta, c,
                         data_type(c_type), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error("cublasGemmEx (m=" + std::to_string(m) + ", n=" + std::to_string(n) +
                             ", k=" + std::to_string(k) + "): " + api_->describe(status));
}

}  // namespace quanteval::runtime::cuda
