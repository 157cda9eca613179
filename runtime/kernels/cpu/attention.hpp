#pragma once
// The CPU attention op (Backend::attention): per-head q/k RMSNorm, RoPE, K/V into
// the paged memory, causal softmax attention, optional sigmoid output gate.
#include "runtime/kernels/cpu/memory.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/model/backend.hpp"

namespace quanteval::runtime {

// q [M, heads * head_dim (x2 when gated)], k and v [M, kv_heads * head_dim], out
// [M, heads * head_dim]. k is normalized and rotated in place. q_norm / k_norm
// are [head_dim] weights (1 + w already for zero-centred norms) or null.
// Every (row, head) pair is computed by one thread in one order: the result is
// bit-identical for any pool size. `workspace`: attention_workspace_floats(spec, M) floats the
// call may overwrite (the normed, rotated queries), or null to allocate them here.
void attention_cpu(const AttentionSpec& spec, const float* q_norm, const float* k_norm, const StepBatch& batch,
                   const float* q, float* k, const float* v, float* out, const CpuMemory& memory, ThreadPool& pool,
                   float* workspace = nullptr);
std::int64_t attention_workspace_floats(const AttentionSpec& spec, std::int64_t rows);

}  // namespace quanteval::runtime
