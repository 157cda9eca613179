#pragma once
// cuBLAS, loaded at run time with dlopen: the binaries start (and say "no GPU") on machines
// without it, and the GPU bundle (tools/gpu_bundle.sh) uses whichever cuBLAS 13 the GPU
// machine has instead of carrying 600 MB of it. Used by marlin_gemm's dense hand-over and
// by tools/bench_gemm_cuda.cu as the BF16 baseline.
//
// Where it looks, in order: the plain soname libcublas.so.<major> (LD_LIBRARY_PATH, the
// executable's RPATH, ld.so.cache), then $CUDA_HOME/lib64, /usr/local/cuda/lib64 and
// /usr/local/cuda/targets/x86_64-linux/lib. <major> is the cuBLAS major version of the
// headers this was compiled with.
#include <memory>
#include <string>

#include <cuda_runtime_api.h>

namespace quanteval::runtime::cuda {

class CublasHandle {
 public:
  // nullptr (and `error` set to what dlopen/dlsym/cublasCreate said) when cuBLAS is unusable.
  static std::unique_ptr<CublasHandle> open(std::string& error);
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;

  // Row-major C[m, n] = A[m, k] * W[n, k]^T with 16-bit A, W and C (bf16 or f16) and FP32
  // accumulation (CUBLAS_COMPUTE_32F); lda/ldw/ldc are row strides in elements.
  // Asynchronous on `stream`; throws std::runtime_error with cuBLAS's status text.
  void gemm_row_major(bool bf16, int m, int n, int k, const void* a, int lda, const void* w, int ldw, void* c, int ldc,
                      cudaStream_t stream);

  // Row-major C[m, n] = A[m, k] * W[n, k]^T with any of bf16 / f16 / f32 for A and W (the
  // same type) and C, FP32 accumulation: the CUDA backend's dense projections (16-bit
  // weights, fp32 output; fp32 weights for fp32 checkpoints).
  enum class Type { bf16, f16, f32 };
  void gemm_row_major(Type ab, Type c_type, int m, int n, int k, const void* a, int lda, const void* w, int ldw,
                      void* c, int ldc, cudaStream_t stream);

  const std::string& library() const { return library_; }  // the path or soname that loaded

 private:
  CublasHandle() = default;
  struct Api;
  void* dl_ = nullptr;
  void* handle_ = nullptr;  // cublasHandle_t
  std::unique_ptr<Api> api_;
  std::string library_;
};

}  // namespace quanteval::runtime::cuda
