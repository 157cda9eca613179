#pragma once
// The CUDA backend: the decoder stack's ops (model/backend.hpp) on one GPU.
//   activations  fp32 device tensors [rows, cols], like the CPU backend's, so every op
//                can be compared with the CPU one on the same inputs;
//   projections  GPTQ: the Marlin-class INT4 kernel (marlin_gemm.hpp) on BF16
//                activations; 16-bit dense (and the lm_head): cuBLAS GemmEx, 16-bit
//                inputs, fp32 accumulation and output; fp32 dense: cuBLAS fp32;
//                LinearKernels::reference (or QE_CUDA_GPTQ=dequant) instead dequantizes
//                each GPTQ weight to BF16 at load and runs it through cuBLAS, so the
//                forward can be checked without the Marlin kernel;
//   other ops    model_kernels.hpp, around the shared math of model/math.hpp;
//   memory       the plan's K/V pages and state slots as fp32 device arrays: K/V as
//                [blocks][block_tokens][kv_heads][head_dim] (model_kernels.hpp; the CPU
//                keeps each head's rows together instead, kernels/cpu/memory.hpp), the
//                state slots as CpuMemory lays them out.
// Sampling stays on the host: Model::forward copies the logits back and the Generator
// samples them as for the CPU, with the same per-request generators.
//
// The class lives in backend.cpp (C++20, compiled by the host compiler, because the
// Backend interface is C++20); only the kernels are nvcc's. Built only with
// QUANTEVAL_HAVE_CUDA; model.cpp calls make_cuda_backend for Device::cuda.
#include <memory>

#include "runtime/model/backend.hpp"
#include "runtime/model/model.hpp"  // LinearKernels

namespace quanteval::runtime {

struct CudaBackendOptions {
  LinearKernels linears = LinearKernels::fast;
  // Synchronize after every op and name the op when the GPU reports an error (slow;
  // for finding a failing kernel). Also on with the environment QE_CUDA_SYNC=1.
  bool synchronize_each_op = false;
};

// Throws std::runtime_error "no CUDA device: <CUDA's reason>" when no GPU is usable and
// names cuBLAS's loading error when it is missing. Environment: QE_CUDA_GPTQ=dequant
// selects the reference projections for GPTQ weights, QE_CUDA_SYNC=1 as above.
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options);

}  // namespace quanteval::runtime
