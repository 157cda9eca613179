// The decoder stack's CUDA kernels (model_kernels.hpp). Each kernel is the
// indexing of one op around runtime/model/math.hpp, the per-element math the CPU
// backend runs too: a GPU result differs from the CPU's only by fp32 rounding
// (fma contraction, the device's exp/sin/cos, reduction order), never by formula.
//
// Threads: row kernels (norms, embed, gather) use one 256-thread block per row and
// reduce in double (the RMSNorm rule makes the tree order irrelevant at float
// precision); attention uses one 128-thread block per (row, head, context split),
// one warp per position, lanes over the head's dims; the delta rule one thread per
// column of a head's state (math::delta_rule_column), tokens in order.
#include "runtime/kernels/cuda/model_kernels.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "runtime/model/math.hpp"

namespace quanteval::runtime::cuda::kernels {

namespace {

void check_launch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("CUDA: launch of ") + kernel + ": " + cudaGetErrorString(status));
}

constexpr int kRowThreads = 256;
constexpr int kAttentionWarps = 4;
constexpr int kMaxHeadDim = 256;  // 8 dims per lane
constexpr int kMaxDimsPerLane = kMaxHeadDim / 32;

int grid_for(std::int64_t count, int threads) {
  const std::int64_t blocks = (count + threads - 1) / threads;
  return static_cast<int>(std::min<std::int64_t>(std::max<std::int64_t>(blocks, 1), 1 << 20));
}

// Sum of one double per thread over the block (blockDim.x a multiple of 32, at most 1024).
// Every thread gets the total. `shared` holds 32 doubles.
__device__ double block_sum(double value, double* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(0xffffffffu, value, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += shared[w];
    shared[0] = total;
  }
  __syncthreads();
  const double total = shared[0];
  __syncthreads();  // shared may be reused right after
  return total;
}

__device__ float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ float load_element(const void* data, Element type, std::int64_t index) {
  switch (type) {
    case Element::bf16: return math::bf16_to_float(static_cast<const std::uint16_t*>(data)[index]);
    case Element::f16: return math::f16_to_float(static_cast<const std::uint16_t*>(data)[index]);
    default: return static_cast<const float*>(data)[index];
  }
}

// --- row ops ----------------------------------------------------------------------------------

__global__ void embed_kernel(const void* table, Element type, const std::int32_t* tokens, int cols, float* out) {
  const int r = blockIdx.x;
  const std::int64_t base = static_cast<std::int64_t>(tokens[r]) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    out[static_cast<std::int64_t>(r) * cols + i] = load_element(table, type, base + i);
}

__global__ void rms_norm_kernel(const float* x, const float* weight, int cols, float eps, float* out) {
  __shared__ double shared[32];
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * cols;
  double sum = 0;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) sum += static_cast<double>(x[row + i]) * x[row + i];
  const float inv = math::inverse_rms(block_sum(sum, shared), cols, eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) out[row + i] = math::rms_scaled(x[row + i], inv, weight[i]);
}

__global__ void add_rms_norm_kernel(float* residual, const float* addend, const float* weight, int cols, float eps,
                                    float* normed) {
  __shared__ double shared[32];
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * cols;
  double sum = 0;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float value = residual[row + i] + addend[row + i];
    residual[row + i] = value;
    sum += static_cast<double>(value) * value;
  }
  const float inv = math::inverse_rms(block_sum(sum, shared), cols, eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x)
    normed[row + i] = math::rms_scaled(residual[row + i], inv, weight[i]);
}

__global__ void add_kernel(float* residual, const float* addend, std::int64_t count) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    residual[i] += addend[i];
}

__global__ void swiglu_kernel(const float* gate, const float* up, float* out, std::int64_t count) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = math::swiglu(gate[i], up[i]);
}

__global__ void to_16bit_kernel(const float* x, std::int64_t count, Element type, std::uint16_t* out) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    out[i] = type == Element::bf16 ? math::float_to_bf16(x[i]) : math::float_to_f16(x[i]);
}

__global__ void from_16bit_kernel(const void* y16, Element type, const float* bias, int cols, std::int64_t count,
                                  float* y) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    y[i] = load_element(y16, type, i) + (bias ? bias[i % cols] : 0.0f);
}

__global__ void add_bias_kernel(float* y, const float* bias, int cols, std::int64_t count) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    y[i] += bias[i % cols];
}

__global__ void gather_rows_kernel(const float* x, const std::int64_t* rows, int cols, float* out) {
  const std::int64_t source = rows[blockIdx.x] * cols, target = static_cast<std::int64_t>(blockIdx.x) * cols;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) out[target + i] = x[source + i];
}

// --- attention --------------------------------------------------------------------------------

// Block (row, j): j < heads normalizes and rotates query head j into `query`; otherwise
// K/V head j - heads: normalized and rotated in k (in place, as on the CPU), then K and V
// stored at the row's position in the pages.
__global__ void attention_prepare_kernel(AttentionLayer layer, StepRows step, const float* q, float* k, const float* v,
                                         float* query) {
  __shared__ float head[kMaxHeadDim * 2];
  __shared__ double shared[32];
  const int r = blockIdx.x, j = blockIdx.y, hd = layer.head_dim;
  const std::int64_t position = step.positions[r];
  const bool is_query = j < layer.heads;
  const int q_head_stride = hd * (layer.gated ? 2 : 1);
  const int kv_width = layer.kv_heads * hd;
  const float* source = is_query ? q + static_cast<std::int64_t>(r) * layer.heads * q_head_stride + j * q_head_stride
                                 : k + static_cast<std::int64_t>(r) * kv_width + (j - layer.heads) * hd;
  const float* norm = is_query ? layer.q_norm : layer.k_norm;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) head[i] = source[i];
  __syncthreads();
  if (norm) {
    double sum = 0;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) sum += static_cast<double>(head[i]) * head[i];
    const float inv = math::inverse_rms(block_sum(sum, shared), hd, layer.norm_eps);
    for (int i = threadIdx.x; i < hd; i += blockDim.x) head[i] = math::rms_scaled(head[i], inv, norm[i]);
    __syncthreads();
  }
  const int half = layer.rotary_dim / 2;
  for (int i = threadIdx.x; i < half; i += blockDim.x)
    math::rotate_pair(head[i], head[i + half], position, layer.inv_freq[i]);
  __syncthreads();
  if (is_query) {
    float* target = query + (static_cast<std::int64_t>(r) * layer.heads + j) * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) target[i] = head[i];
    return;
  }
  const int kv_head = j - layer.heads;
  const std::int64_t block = step.blocks[step.row_blocks[r] + position / layer.block_tokens];
  const std::int64_t slot =
      ((block * layer.block_tokens + position % layer.block_tokens) * layer.kv_heads + kv_head) * hd;
  float* k_row = k + static_cast<std::int64_t>(r) * kv_width + kv_head * hd;
  const float* v_row = v + static_cast<std::int64_t>(r) * kv_width + kv_head * hd;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    k_row[i] = head[i];
    layer.keys[slot + i] = head[i];
    layer.values[slot + i] = v_row[i];
  }
}

// Block (row, head, split): the split's positions of the row's causal range, one warp
// per position at a time, each warp with its own OnlineSoftmax; the warps' states are
// merged in warp order and written as the split's partial result.
__global__ void attention_partial_kernel(AttentionLayer layer, StepRows step, const float* query,
                                         const std::int64_t* split_offsets, float scale, float* partial) {
  __shared__ math::OnlineSoftmax warp_states[kAttentionWarps];
  __shared__ float warp_values[kAttentionWarps][kMaxHeadDim];
  const int r = blockIdx.x, h = blockIdx.y, split = blockIdx.z, hd = layer.head_dim;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::int64_t position = step.positions[r];
  if (split >= math::attention_split_count(position, layer.window)) return;  // this row has fewer splits
  const std::int64_t begin = math::attention_split_begin(position, layer.window, split);
  const std::int64_t end = math::attention_split_end(position, layer.window, split);
  const int kv_head = h / (layer.heads / layer.kv_heads);

  float q_lane[kMaxDimsPerLane], acc[kMaxDimsPerLane];
  const float* q_head = query + (static_cast<std::int64_t>(r) * layer.heads + h) * hd;
  for (int i = 0; i < kMaxDimsPerLane; ++i) {
    const int d = lane + 32 * i;
    q_lane[i] = d < hd ? q_head[d] : 0.0f;
    acc[i] = 0.0f;
  }
  math::OnlineSoftmax state;
  for (std::int64_t p = begin + warp; p < end; p += kAttentionWarps) {
    const std::int64_t block = step.blocks[step.row_blocks[r] + p / layer.block_tokens];
    const std::int64_t slot = ((block * layer.block_tokens + p % layer.block_tokens) * layer.kv_heads + kv_head) * hd;
    float dot = 0.0f;
    for (int i = 0; i < kMaxDimsPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) dot += q_lane[i] * layer.keys[slot + d];
    }
    const float score = warp_sum(dot) * scale;
    float weight = 0.0f;
    const float rescale = state.add(score, &weight);
    for (int i = 0; i < kMaxDimsPerLane; ++i) {
      const int d = lane + 32 * i;
      if (d < hd) acc[i] = acc[i] * rescale + weight * layer.values[slot + d];
    }
  }
  if (lane == 0) warp_states[warp] = state;
  for (int i = 0; i < kMaxDimsPerLane; ++i) {
    const int d = lane + 32 * i;
    if (d < hd) warp_values[warp][d] = acc[i];
  }
  __syncthreads();
  float* target = partial + ((split_offsets[r] + split) * layer.heads + h) * (2 + hd);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    math::OnlineSoftmax merged;
    float total = 0.0f;
    for (int w = 0; w < kAttentionWarps; ++w) {
      float self_factor = 0.0f, other_factor = 0.0f;
      merged.merge(warp_states[w], &self_factor, &other_factor);
      total = total * self_factor + warp_values[w][d] * other_factor;
    }
    target[2 + d] = total;
    if (d == 0) {
      target[0] = merged.max;
      target[1] = merged.sum;
    }
  }
}

// Block (row, head): the splits merged in split order, normalized, gated.
__global__ void attention_combine_kernel(AttentionLayer layer, StepRows step, const float* q,
                                         const std::int64_t* split_offsets, const float* partial, float* out) {
  const int r = blockIdx.x, h = blockIdx.y, hd = layer.head_dim;
  const std::int64_t position = step.positions[r];
  const int splits = static_cast<int>(math::attention_split_count(position, layer.window));
  const float* parts = partial + (split_offsets[r] * layer.heads + h) * (2 + hd);
  const int q_head_stride = hd * (layer.gated ? 2 : 1);
  const float* gate = q + static_cast<std::int64_t>(r) * layer.heads * q_head_stride + h * q_head_stride + hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    math::OnlineSoftmax merged;
    float total = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float* part = parts + static_cast<std::int64_t>(s) * layer.heads * (2 + hd);
      math::OnlineSoftmax state;
      state.max = part[0];
      state.sum = part[1];
      float self_factor = 0.0f, other_factor = 0.0f;
      merged.merge(state, &self_factor, &other_factor);
      total = total * self_factor + part[2 + d] * other_factor;
    }
    float result = total * merged.normalizer();
    if (layer.gated) result = math::gated_output(result, gate[d]);
    out[(static_cast<std::int64_t>(r) * layer.heads + h) * hd + d] = result;
  }
}

// --- Gated DeltaNet ---------------------------------------------------------------------------

// Thread (sequence, channel): the causal conv1d + SiLU over the sequence's rows in
// order, continuing from and then updating the conv state (the CPU's loop, per channel).
__global__ void deltanet_conv_kernel(DeltaNetLayer layer, const DeltaNetSequence* sequences, const float* qkv,
                                     float* conv_out) {
  const DeltaNetSequence sequence = sequences[blockIdx.x];
  const int conv_dim = 2 * layer.key_heads * layer.key_head_dim + layer.value_heads * layer.value_head_dim;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= conv_dim || sequence.rows == 0) return;
  const int kernel = layer.conv_kernel, history = kernel - 1;
  const float* input = qkv + sequence.first_row * conv_dim;
  float* state = layer.states + sequence.slot * layer.slot_floats;
  auto window = [&](std::int64_t w) {
    return w < history ? state[w * conv_dim + c] : input[(w - history) * conv_dim + c];
  };
  const float* taps = layer.conv_weight + static_cast<std::int64_t>(c) * kernel;
  const float bias = layer.conv_bias ? layer.conv_bias[c] : 0.0f;
  for (std::int64_t t = 0; t < sequence.rows; ++t)
    conv_out[(sequence.first_row + t) * conv_dim + c] =
        math::conv1d_silu(taps, kernel, bias, [&](int j) { return window(t + j); });
  // New state row r is window row rows + r; ascending r reads an old state row (> r) before it is overwritten.
  for (int r = 0; r < history; ++r) state[static_cast<std::int64_t>(r) * conv_dim + c] = window(sequence.rows + r);
}

// Block (row, value head): l2-normalized q (times 1/sqrt(d_k)) and k of the head's key
// head, and the gates. The norms' sums run on one thread in index order, as on the CPU.
__global__ void deltanet_prepare_kernel(DeltaNetLayer layer, const float* conv_out, const float* b, const float* a,
                                        float* q_out, float* k_out, float* g_out, float* beta_out) {
  __shared__ float inverse_norms[2];
  const int r = blockIdx.x, h = blockIdx.y, dk = layer.key_head_dim, Hv = layer.value_heads;
  const int key_dim = layer.key_heads * dk, conv_dim = 2 * key_dim + Hv * layer.value_head_dim;
  const int kh = h / (Hv / layer.key_heads);
  const float* row = conv_out + static_cast<std::int64_t>(r) * conv_dim;
  const float* q_source = row + kh * dk;
  const float* k_source = row + key_dim + kh * dk;
  const std::int64_t th = static_cast<std::int64_t>(r) * Hv + h;
  if (threadIdx.x == 0) {
    inverse_norms[0] = math::inverse_l2(q_source, dk, 1e-6f);
    inverse_norms[1] = math::inverse_l2(k_source, dk, 1e-6f);
    g_out[th] = math::deltanet_log_decay(a[th], layer.A_log[h], layer.dt_bias[h]);
    beta_out[th] = math::deltanet_beta(b[th]);
  }
  __syncthreads();
  const float q_scale = 1.0f / sqrtf(static_cast<float>(dk));
  for (int i = threadIdx.x; i < dk; i += blockDim.x) {
    q_out[th * dk + i] = (q_source[i] * inverse_norms[0]) * q_scale;
    k_out[th * dk + i] = k_source[i] * inverse_norms[1];
  }
}

// Block (sequence, value head), thread c = state column c: the delta rule over the
// sequence's tokens in order (math::delta_rule_column), q and k of each token in shared memory.
__global__ void deltanet_recurrence_kernel(DeltaNetLayer layer, const DeltaNetSequence* sequences,
                                           const float* conv_out, const float* q, const float* k, const float* g,
                                           const float* beta, float* core) {
  extern __shared__ float qk[];  // [2 * d_k]
  const DeltaNetSequence sequence = sequences[blockIdx.x];
  const int h = blockIdx.y, c = threadIdx.x;
  const int dk = layer.key_head_dim, dv = layer.value_head_dim, Hv = layer.value_heads;
  const int key_dim = layer.key_heads * dk, conv_dim = 2 * key_dim + Hv * dv;
  float* S =
      layer.states + sequence.slot * layer.slot_floats + layer.conv_floats + static_cast<std::int64_t>(h) * dk * dv;
  for (std::int64_t t = sequence.first_row; t < sequence.first_row + sequence.rows; ++t) {
    const std::int64_t th = t * Hv + h;
    for (int i = threadIdx.x; i < dk; i += blockDim.x) {
      qk[i] = q[th * dk + i];
      qk[dk + i] = k[th * dk + i];
    }
    __syncthreads();
    if (c < dv) {
      const float v_c = conv_out[t * conv_dim + 2 * key_dim + h * dv + c];
      core[th * dv + c] = math::delta_rule_column(S + c, dv, qk, qk + dk, dk, v_c, expf(g[th]), beta[th]);
    }
    __syncthreads();
  }
}

// Block (row, value head): the gated RMSNorm of the head's output, in place.
__global__ void deltanet_gated_norm_kernel(DeltaNetLayer layer, const float* z, float* core) {
  __shared__ double shared[32];
  const int dv = layer.value_head_dim;
  const std::int64_t head_row = static_cast<std::int64_t>(blockIdx.x) * layer.value_heads + blockIdx.y;
  float* o = core + head_row * dv;
  const float* zh = z + head_row * dv;
  double sum = 0;
  for (int c = threadIdx.x; c < dv; c += blockDim.x) sum += static_cast<double>(o[c]) * o[c];
  const float inv = math::inverse_rms(block_sum(sum, shared), dv, layer.norm_eps);
  for (int c = threadIdx.x; c < dv; c += blockDim.x) o[c] = math::gated_rms_scaled(o[c], inv, layer.norm[c], zh[c]);
}

}  // namespace

// --- launches ---------------------------------------------------------------------------------

void embed(const void* table, Element type, const std::int32_t* tokens, int rows, int cols, float* out,
           cudaStream_t stream) {
  if (rows == 0) return;
  embed_kernel<<<rows, kRowThreads, 0, stream>>>(table, type, tokens, cols, out);
  check_launch("embed");
}

void rms_norm(const float* x, const float* weight, int rows, int cols, float eps, float* out, cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_kernel<<<rows, kRowThreads, 0, stream>>>(x, weight, cols, eps, out);
  check_launch("rms_norm");
}

void add_rms_norm(float* residual, const float* addend, const float* weight, int rows, int cols, float eps,
                  float* normed, cudaStream_t stream) {
  if (rows == 0) return;
  add_rms_norm_kernel<<<rows, kRowThreads, 0, stream>>>(residual, addend, weight, cols, eps, normed);
  check_launch("add_rms_norm");
}

void add(float* residual, const float* addend, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  add_kernel<<<grid_for(count, 256), 256, 0, stream>>>(residual, addend, count);
  check_launch("add");
}

void swiglu(const float* gate, const float* up, float* out, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  swiglu_kernel<<<grid_for(count, 256), 256, 0, stream>>>(gate, up, out, count);
  check_launch("swiglu");
}

void to_16bit(const float* x, std::int64_t count, Element type, void* out, cudaStream_t stream) {
  if (count == 0) return;
  to_16bit_kernel<<<grid_for(count, 256), 256, 0, stream>>>(x, count, type, static_cast<std::uint16_t*>(out));
  check_launch("to_16bit");
}

void from_16bit(const void* y16, Element type, const float* bias, int rows, int cols, float* y, cudaStream_t stream) {
  const std::int64_t count = static_cast<std::int64_t>(rows) * cols;
  if (count == 0) return;
  from_16bit_kernel<<<grid_for(count, 256), 256, 0, stream>>>(y16, type, bias, cols, count, y);
  check_launch("from_16bit");
}

void add_bias(float* y, const float* bias, int rows, int cols, cudaStream_t stream) {
  const std::int64_t count = static_cast<std::int64_t>(rows) * cols;
  if (count == 0) return;
  add_bias_kernel<<<grid_for(count, 256), 256, 0, stream>>>(y, bias, cols, count);
  check_launch("add_bias");
}

void gather_rows(const float* x, const std::int64_t* rows, int count, int cols, float* out, cudaStream_t stream) {
  if (count == 0) return;
  gather_rows_kernel<<<count, kRowThreads, 0, stream>>>(x, rows, cols, out);
  check_launch("gather_rows");
}

std::int64_t attention_split_offsets(const std::int64_t* positions, int rows, std::int64_t window,
                                     std::int64_t* split_offsets, int* max_splits) {
  std::int64_t total = 0;
  *max_splits = 1;
  for (int r = 0; r < rows; ++r) {
    split_offsets[r] = total;
    const std::int64_t splits = math::attention_split_count(positions[r], window);
    total += splits;
    *max_splits = static_cast<int>(std::max<std::int64_t>(*max_splits, splits));
  }
  return total;
}

std::int64_t attention_partial_floats(std::int64_t total_splits, int heads, int head_dim) {
  return total_splits * heads * (2 + head_dim);
}

void attention(const AttentionLayer& layer, const StepRows& step, const float* q, float* k, const float* v,
               float* query, const std::int64_t* split_offsets, int max_splits, float* partial, float* out,
               cudaStream_t stream) {
  if (step.rows == 0) return;
  if (layer.head_dim > kMaxHeadDim || layer.head_dim <= 0 || layer.heads % layer.kv_heads != 0 ||
      layer.rotary_dim > layer.head_dim)
    throw std::invalid_argument("CUDA attention: head_dim " + std::to_string(layer.head_dim) + " (at most " +
                                std::to_string(kMaxHeadDim) + "), heads " + std::to_string(layer.heads) +
                                ", kv heads " + std::to_string(layer.kv_heads) + " not supported");
  attention_prepare_kernel<<<dim3(step.rows, layer.heads + layer.kv_heads), 128, 0, stream>>>(layer, step, q, k, v,
                                                                                              query);
  check_launch("attention_prepare");
  const float scale = 1.0f / std::sqrt(static_cast<float>(layer.head_dim));
  attention_partial_kernel<<<dim3(step.rows, layer.heads, max_splits), 32 * kAttentionWarps, 0, stream>>>(
      layer, step, query, split_offsets, scale, partial);
  check_launch("attention_partial");
  attention_combine_kernel<<<dim3(step.rows, layer.heads), 128, 0, stream>>>(layer, step, q, split_offsets, partial,
                                                                             out);
  check_launch("attention_combine");
}

std::int64_t deltanet_scratch_floats(const DeltaNetLayer& layer, int rows) {
  const std::int64_t conv_dim = 2 * layer.key_heads * layer.key_head_dim + layer.value_heads * layer.value_head_dim;
  const std::int64_t heads = static_cast<std::int64_t>(rows) * layer.value_heads;
  return rows * conv_dim + 2 * heads * layer.key_head_dim + 2 * heads;
}

void gated_deltanet(const DeltaNetLayer& layer, const DeltaNetSequence* sequences, int sequence_count, int rows,
                    const float* qkv, const float* z, const float* b, const float* a, float* scratch, float* out,
                    cudaStream_t stream) {
  if (rows == 0 || sequence_count == 0) return;
  if (layer.value_head_dim > 1024 || layer.value_heads % layer.key_heads != 0)
    throw std::invalid_argument("CUDA gated_deltanet: value head dim " + std::to_string(layer.value_head_dim) +
                                " (at most 1024), value heads " + std::to_string(layer.value_heads) +
                                " not a multiple of key heads " + std::to_string(layer.key_heads));
  const int conv_dim = 2 * layer.key_heads * layer.key_head_dim + layer.value_heads * layer.value_head_dim;
  const std::int64_t head_rows = static_cast<std::int64_t>(rows) * layer.value_heads;
  float* conv_out = scratch;
  float* q = conv_out + static_cast<std::int64_t>(rows) * conv_dim;
  float* k = q + head_rows * layer.key_head_dim;
  float* g = k + head_rows * layer.key_head_dim;
  float* beta = g + head_rows;
  deltanet_conv_kernel<<<dim3(sequence_count, (conv_dim + 127) / 128), 128, 0, stream>>>(layer, sequences, qkv,
                                                                                         conv_out);
  check_launch("deltanet_conv");
  deltanet_prepare_kernel<<<dim3(rows, layer.value_heads), 128, 0, stream>>>(layer, conv_out, b, a, q, k, g, beta);
  check_launch("deltanet_prepare");
  const int threads = (layer.value_head_dim + 31) / 32 * 32;
  const size_t shared = 2 * static_cast<size_t>(layer.key_head_dim) * sizeof(float);
  deltanet_recurrence_kernel<<<dim3(sequence_count, layer.value_heads), threads, shared, stream>>>(
      layer, sequences, conv_out, q, k, g, beta, out);
  check_launch("deltanet_recurrence");
  deltanet_gated_norm_kernel<<<dim3(rows, layer.value_heads), 128, 0, stream>>>(layer, z, out);
  check_launch("deltanet_gated_norm");
}

}  // namespace quanteval::runtime::cuda::kernels
