#include "runtime/kernels/cpu/delta_rule.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/kernels/cpu/thread_pool.hpp"
#include "runtime/model/math.hpp"

namespace quanteval::runtime {
namespace {

// x *= 1 / sqrt(sum(x^2) + eps): the fla / HF `l2norm` (eps inside the root, not a clamp).
void l2_normalize(float* x, int n, float eps) {
  const float inv = math::inverse_l2(x, n, eps);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("gated_deltanet: " + what);
}

void check_inputs(const DeltaRuleInputs& in) {
  require(in.tokens >= 0 && in.heads > 0 && in.key_head_dim > 0 && in.value_head_dim > 0,
          fmt::format("bad delta-rule sizes T={} H={} d_k={} d_v={}", in.tokens, in.heads, in.key_head_dim,
                      in.value_head_dim));
  require(in.tokens == 0 || (in.q && in.k && in.v && in.g && in.beta), "delta-rule input pointer is null");
}

// Causal conv1d + SiLU on channels [c_begin, c_end) only; the rest of `output`
// and `conv_state` is untouched, so disjoint channel ranges may run on different
// threads. Each output value is math::conv1d_silu's arithmetic (bias, then each tap's
// product added in tap order, then silu), whatever the range, so splitting never changes a bit.
// It runs up to kBlock channels at a time with the taps transposed to [kernel][block] once,
// then row after row through detail::conv1d_silu_row (SIMD products and exp), so the input
// is read in time order and each row's slice stays in L1 for the kernel - 1 rows that reuse
// it. (A DeltaNet unit's ranges are 128 channels: one block each. 64-channel blocks over all
// rows each re-read every row 24 KB apart from L2 / L3: half of the samples sat on that load.)
// One channel at a time (a lambda per window value, a scalar exp per output) had been 9% of a
// Qwen3.5 prefill's samples, half as much as all its INT4 products.
void conv1d_silu_channels(const float* input, int rows, int channels, const float* weight, int kernel,
                          const float* bias, float* conv_state, float* output, int c_begin, int c_end) {
  const int history = kernel - 1;
  // Window row w (time w - history relative to this call) is a state row before
  // `history`, an input row after.
  auto window_row = [&](int w) {
    return w < history ? conv_state + static_cast<size_t>(w) * channels
                       : input + static_cast<size_t>(w - history) * channels;
  };
  constexpr int kBlock = 512;
  constexpr int kMaxKernel = 8;  // Qwen3.5: 4
  constexpr int kPrefetchRows = 8;
  if (kernel > kMaxKernel) throw std::invalid_argument(fmt::format("conv1d kernel {} > {}", kernel, kMaxKernel));
  float taps[kMaxKernel * kBlock];  // [kernel][width]: 16 KB of stack
  const float* window[kMaxKernel];
  for (int c0 = c_begin; c0 < c_end; c0 += kBlock) {
    const int width = std::min(kBlock, c_end - c0);
    for (int i = 0; i < width; ++i)
      for (int j = 0; j < kernel; ++j)
        taps[j * width + i] = weight[static_cast<size_t>(c0 + i) * kernel + j];
    for (int t = 0; t < rows; ++t) {
      // The rows are conv_dim floats apart and a unit reads only its slice of each, a stride the
      // hardware prefetchers do not follow: fetch the slice kPrefetchRows ahead by hand (the
      // load had half of this function's samples). The output's slices, prefetched too, gained nothing.
      if (t + kPrefetchRows < rows) {
        const char* ahead =
            reinterpret_cast<const char*>(input + static_cast<size_t>(t + kPrefetchRows) * channels + c0);
        for (int line = 0; line < width * static_cast<int>(sizeof(float)); line += 64) __builtin_prefetch(ahead + line);
      }
      for (int j = 0; j < kernel; ++j) window[j] = window_row(t + j) + c0;
      detail::conv1d_silu_row(window, kernel, taps, width, bias ? bias + c0 : nullptr, width,
                              output + static_cast<size_t>(t) * channels + c0);
    }
  }
  // The next call needs window rows rows .. rows+history-1. Row r of the new state
  // may come from old state row rows + r > r, which ascending r reads before it
  // is overwritten.
  for (int r = 0; r < history; ++r) {
    const float* from = window_row(rows + r);
    std::copy(from + c_begin, from + c_end, conv_state + static_cast<size_t>(r) * channels + c_begin);
  }
}

// The recurrence for value heads [h_begin, h_end). Heads never interact, so a head
// range computes exactly what the full loop computes for those heads.
void delta_rule_recurrent_heads(const DeltaRuleInputs& in, float* state, float* out, int h_begin, int h_end);
// The chunked form for value heads [h_begin, h_end).
void delta_rule_chunked_heads(const DeltaRuleInputs& in, float* state, float* out, int chunk_size, int h_begin,
                              int h_end);

// Runs task over [0, count) in pieces of `grain` on the pool, or inline without one.
// Pieces are claimed dynamically (parallel_chunks), which balances sequences of
// different lengths; a piece's result never depends on which thread runs it.
void for_each_piece(ThreadPool* pool, int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& task) {
  if (count <= 0) return;
  if (pool == nullptr || pool->size() == 1 || count == 1) {
    task(0, count);
  } else {
    pool->parallel_chunks(count, grain, task);
  }
}

}  // namespace

// --- Causal conv1d ---

void causal_conv1d_silu(const float* input, int rows, int channels, std::span<const float> weight, int kernel,
                        std::span<const float> bias, std::span<float> conv_state, float* output) {
  require(rows >= 0 && channels > 0 && kernel > 0,
          fmt::format("conv1d sizes rows={} channels={} kernel={}", rows, channels, kernel));
  require(weight.size() == static_cast<size_t>(channels) * kernel,
          fmt::format("conv1d weight has {} values, expected {} x {}", weight.size(), channels, kernel));
  require(bias.empty() || bias.size() == static_cast<size_t>(channels),
          fmt::format("conv1d bias has {} values, expected {}", bias.size(), channels));
  const size_t history = static_cast<size_t>(kernel - 1);
  require(conv_state.size() == history * channels,
          fmt::format("conv state has {} values, expected {} x {}", conv_state.size(), history, channels));
  if (rows == 0) return;
  conv1d_silu_channels(input, rows, channels, weight.data(), kernel, bias.empty() ? nullptr : bias.data(),
                       conv_state.data(), output, 0, channels);
}

// --- Delta rule, token by token ---

void gated_delta_rule_recurrent(const DeltaRuleInputs& in, float* state, float* out) {
  check_inputs(in);
  delta_rule_recurrent_heads(in, state, out, 0, in.heads);
}

namespace {

void delta_rule_recurrent_heads(const DeltaRuleInputs& in, float* state, float* out, int h_begin, int h_end) {
  const int H = in.heads, dk = in.key_head_dim, dv = in.value_head_dim;
  const bool vector_columns = dv % 8 == 0 && cpu_supports(CpuIsa::avx2);
  // Head-major: one head's state stays in cache across the tokens. Column by column
  // through math::delta_rule_column, the function the CUDA kernel runs per thread (with AVX2,
  // 8 columns a vector, the same operations per column: detail::delta_rule_columns_avx2):
  // delta = beta * (v - S^T k) is what the memory should have returned for k, minus
  // what it returns.
  for (int h = h_begin; h < h_end; ++h) {
    for (int t = 0; t < in.tokens; ++t) {
      const size_t th = static_cast<size_t>(t) * H + h;
      const float* q = in.q + th * dk;
      const float* k = in.k + th * dk;
      const float* v = in.v + th * dv;
      const float decay = std::exp(in.g[th]);
      const float beta = in.beta[th];
      float* S = state + static_cast<size_t>(h) * dk * dv;  // [d_k, d_v]
      float* o = out + th * dv;
      if (vector_columns)
        detail::delta_rule_columns_avx2(S, dv, q, k, dk, v, dv, decay, beta, o);
      else
        for (int c = 0; c < dv; ++c) o[c] = math::delta_rule_column(S + c, dv, q, k, dk, v[c], decay, beta);
    }
  }
}

}  // namespace

// --- Delta rule, chunk by chunk ---
//
// Within a chunk of L tokens starting from state S0, with cumulative log decay
// G_i = g_0 + ... + g_i (so token j's contribution has decayed by exp(G_i - G_j) at i):
//   delta_i + sum_{j<i} beta_i exp(G_i - G_j) (k_i . k_j) delta_j = beta_i v_i - beta_i exp(G_i) S0^T k_i
// i.e. (I + M) Delta = beta V - diag(beta exp(G)) K S0 with M strictly lower triangular.
// With T = (I + M)^-1 (unit lower triangular, found by forward substitution):
//   U = T (beta V), W = T (beta exp(G) K), Delta = U - W S0            (the UT transform)
//   o_i  = exp(G_i) S0^T q_i + sum_{j<=i} exp(G_i - G_j) (q_i . k_j) delta_j
//   S_L  = exp(G_{L-1}) S0 + sum_j exp(G_{L-1} - G_j) k_j delta_j^T
// Only differences G_i - G_j (i >= j) are exponentiated besides exp(G_i) <= 1,
// so nothing overflows however strong the decay.
void gated_delta_rule_chunked(const DeltaRuleInputs& in, float* state, float* out, int chunk_size) {
  check_inputs(in);
  require(chunk_size > 0, fmt::format("chunk size {} must be positive", chunk_size));
  delta_rule_chunked_heads(in, state, out, chunk_size, 0, in.heads);
}

namespace {

// The same with a lower-triangular A: row i takes inner indices 0 .. i only. Rows go in
// blocks of 4: the block's common part (0 .. its first row) in one call, then each row's
// rest; an element still sees its products in inner order.
void multiply_accumulate_lower(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
                               int rows, int cols) {
  for (int i0 = 0; i0 < rows; i0 += 4) {
    const int block = std::min(4, rows - i0);
    detail::multiply_accumulate(c + i0 * ldc, ldc, a + i0 * lda, lda, b, ldb, block, cols, i0 + 1, false);
    for (int i = i0 + 1; i < i0 + block; ++i)
      detail::multiply_accumulate(c + i * ldc, ldc, a + i * lda + i0 + 1, lda, b + (i0 + 1) * ldb, ldb, 1, cols, i - i0,
                                  false);
  }
}

// dots[j] = lane_dot(x, rows + j * stride, n) for j < count (attention_scores with scale 1
// computes exactly that: its scores are lane_dot * scale, and x * 1 is x).
void lane_dots(const float* x, const float* rows, int64_t stride, int n, int count, float* dots) {
  detail::attention_scores(x, 1, n, rows, stride, count, 1.0f, dots, count);
}

void delta_rule_chunked_heads(const DeltaRuleInputs& in, float* state, float* out, int chunk_size, int h_begin,
                              int h_end) {
  const int H = in.heads, dk = in.key_head_dim, dv = in.value_head_dim;
  const int C = chunk_size;
  // Rows of one head in the [tokens, H, d] inputs and output are H * d floats apart.
  const int64_t out_stride = static_cast<int64_t>(H) * dv;
  std::vector<float> G(C), T(static_cast<size_t>(C) * C), M(static_cast<size_t>(C) * C), dots(C);
  std::vector<float> U(static_cast<size_t>(C) * dv), W(static_cast<size_t>(C) * dk), Delta(static_cast<size_t>(C) * dv);
  // Coefficient matrices of the dense products ([C, C] each; KW is [d_k, C]).
  std::vector<float> CU(static_cast<size_t>(C) * C), CW(CU.size()), QK(CU.size()), KW(static_cast<size_t>(dk) * C);
  std::vector<float> S_new(static_cast<size_t>(dk) * dv);
  // The chunk's key, query and value rows of one head, copied into contiguous [L, d] panels.
  // In the [tokens, H, d] inputs they are H * d floats apart (8 KB on Qwen3.5), so a product
  // tile, which reads a row of B (or an element of A) per inner step, met the same few L1
  // sets at every step: 66 against 118 GFLOP/s for a 64 x 128 x 64 product (AVX2, Intel VM,
  // 1 thread). The values and the operations are the same: the same bits.
  std::vector<float> K_panel(static_cast<size_t>(C) * dk), Q_panel(K_panel.size()),
      V_panel(static_cast<size_t>(C) * dv);

  for (int h = h_begin; h < h_end; ++h) {
    float* S = state + static_cast<size_t>(h) * dk * dv;
    auto row = [&](const float* base, int t, int width) { return base + (static_cast<size_t>(t) * H + h) * width; };
    auto scalar = [&](const float* base, int t) { return base[static_cast<size_t>(t) * H + h]; };

    for (int t0 = 0; t0 < in.tokens; t0 += C) {
      const int L = std::min(C, in.tokens - t0);
      for (int i = 0; i < L; ++i) {
        std::copy_n(row(in.k, t0 + i, dk), dk, K_panel.data() + static_cast<size_t>(i) * dk);
        std::copy_n(row(in.q, t0 + i, dk), dk, Q_panel.data() + static_cast<size_t>(i) * dk);
        std::copy_n(row(in.v, t0 + i, dv), dv, V_panel.data() + static_cast<size_t>(i) * dv);
      }
      const float* K = K_panel.data();  // [L, dk]
      const float* Q = Q_panel.data();  // [L, dk]
      const float* V = V_panel.data();  // [L, dv]
      const int64_t k_stride = dk, v_stride = dv;
      float* O = out + (static_cast<size_t>(t0) * H + h) * dv;  // [L] rows, out_stride apart

      float running = 0.0f;
      for (int i = 0; i < L; ++i) G[i] = running += scalar(in.g, t0 + i);

      // M[i][j] = beta_i exp(G_i - G_j) (k_i . k_j), j < i.
      for (int i = 0; i < L; ++i) {
        const float beta_i = scalar(in.beta, t0 + i);
        lane_dots(K + i * k_stride, K, k_stride, dk, i, dots.data());
        for (int j = 0; j < i; ++j) M[static_cast<size_t>(i) * C + j] = beta_i * std::exp(G[i] - G[j]) * dots[j];
      }
      // T = (I + M)^-1 row by row: T_i = e_i - sum_{m<i} M[i][m] T_m.
      for (int i = 0; i < L; ++i) {
        float* Ti = T.data() + static_cast<size_t>(i) * C;
        for (int j = 0; j < L; ++j) Ti[j] = j == i ? 1.0f : 0.0f;
        for (int m = 0; m < i; ++m) {
          const float coeff = M[static_cast<size_t>(i) * C + m];
          const float* Tm = T.data() + static_cast<size_t>(m) * C;
          for (int j = 0; j <= m; ++j) Ti[j] -= coeff * Tm[j];
        }
      }
      // U = T (beta V), W = T (beta exp(G) K), both lower triangular in T.
      for (int i = 0; i < L; ++i)
        for (int j = 0; j <= i; ++j) {
          const float tij = T[static_cast<size_t>(i) * C + j];
          const float beta_j = scalar(in.beta, t0 + j);
          CU[static_cast<size_t>(i) * C + j] = tij * beta_j;
          CW[static_cast<size_t>(i) * C + j] = tij * beta_j * std::exp(G[j]);
        }
      std::fill(U.begin(), U.begin() + static_cast<std::ptrdiff_t>(L) * dv, 0.0f);
      std::fill(W.begin(), W.begin() + static_cast<std::ptrdiff_t>(L) * dk, 0.0f);
      multiply_accumulate_lower(U.data(), dv, CU.data(), C, V, v_stride, L, dv);
      multiply_accumulate_lower(W.data(), dk, CW.data(), C, K, k_stride, L, dk);
      // Delta = U - W S0.
      std::copy(U.begin(), U.begin() + static_cast<std::ptrdiff_t>(L) * dv, Delta.begin());
      detail::multiply_accumulate(Delta.data(), dv, W.data(), dk, S, dv, L, dv, dk, true);
      // Outputs: the decayed initial state read by q_i, plus the in-chunk updates up to i.
      for (int i = 0; i < L; ++i) std::fill(O + i * out_stride, O + i * out_stride + dv, 0.0f);
      detail::multiply_accumulate(O, out_stride, Q, k_stride, S, dv, L, dv, dk, false);
      for (int i = 0; i < L; ++i) {
        const float carried = std::exp(G[i]);
        for (int c = 0; c < dv; ++c) O[i * out_stride + c] *= carried;
        lane_dots(Q + i * k_stride, K, k_stride, dk, i + 1, dots.data());
        for (int j = 0; j <= i; ++j) QK[static_cast<size_t>(i) * C + j] = dots[j] * std::exp(G[i] - G[j]);
      }
      multiply_accumulate_lower(O, out_stride, QK.data(), C, Delta.data(), dv, L, dv);
      // State at the end of the chunk: exp(G_{L-1}) S0 + sum_j (exp(G_{L-1} - G_j) k_j) delta_j^T.
      const float end_decay = std::exp(G[L - 1]);
      for (int i = 0; i < dk * dv; ++i) S_new[i] = S[i] * end_decay;
      for (int j = 0; j < L; ++j) {
        const float w = std::exp(G[L - 1] - G[j]);
        for (int a = 0; a < dk; ++a) KW[static_cast<size_t>(a) * C + j] = w * K[j * k_stride + a];
      }
      detail::multiply_accumulate(S_new.data(), dv, KW.data(), C, Delta.data(), dv, dk, dv, L, false);
      std::copy(S_new.begin(), S_new.end(), S);
    }
  }
}

}  // namespace

// --- The op ---

std::int64_t gated_deltanet_workspace_floats(const DeltaNetSpec& d, std::int64_t rows) {
  const std::int64_t heads = d.value_heads;
  return rows * (d.conv_dim() + heads * (2 * static_cast<std::int64_t>(d.key_head_dim) + d.value_head_dim + 2));
}

void gated_deltanet_cpu(const DeltaNetSpec& d, const DeltaNetCpuWeights& w, std::span<const DeltaNetRun> runs,
                        const float* mixed, const float* z, const float* b, const float* a, float* core, int chunk_size,
                        ThreadPool* pool, float* workspace) {
  require(d.key_heads > 0 && d.value_heads % d.key_heads == 0 && d.key_head_dim > 0 && d.value_head_dim > 0 &&
              d.conv_kernel > 0,
          fmt::format("bad DeltaNet sizes (key heads {}, value heads {}, d_k {}, d_v {}, kernel {})", d.key_heads,
                      d.value_heads, d.key_head_dim, d.value_head_dim, d.conv_kernel));
  require(chunk_size >= 0, fmt::format("chunk size {} must be >= 0", chunk_size));
  const int Hv = d.value_heads, dk = d.key_head_dim, dv = d.value_head_dim;
  const int conv_dim = d.conv_dim(), ratio = Hv / d.key_heads;
  std::int64_t total = 0;
  for (const auto& run : runs) total = std::max(total, run.first_row + run.rows);

  std::vector<float> owned;
  if (!workspace) {
    owned.resize(static_cast<size_t>(gated_deltanet_workspace_floats(d, total)));
    workspace = owned.data();
  }
  // Every element of these is written before it is read (each unit fills its own rows).
  float* conv_out = workspace;                                            // [total, conv_dim]
  float* q = conv_out + static_cast<size_t>(total) * conv_dim;            // [total, Hv, dk]
  float* k = q + static_cast<size_t>(total) * Hv * dk;                    // [total, Hv, dk]
  float* v = k + static_cast<size_t>(total) * Hv * dk;                    // [total, Hv, dv]
  float* g = v + static_cast<size_t>(total) * Hv * dv;                    // [total, Hv]
  float* beta = g + static_cast<size_t>(total) * Hv;                      // [total, Hv]
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(dk));
  const int key_dim = d.key_dim();
  const float eps = d.norm_eps;

  // Everything between the projections, for one (sequence, key head) unit: key head
  // kh owns its q and k conv channels and the v channels of value heads
  // kh*ratio .. kh*ratio+ratio-1, and those value heads read nothing else, so the
  // conv, the q/k normalisation, the delta rule and the gated norm of a unit touch
  // only that unit's slices of the buffers and of its sequence's state. Units can
  // therefore run on any threads in any order with bit-identical results.
  auto run_unit = [&](const DeltaNetRun& run, int kh) {
    const int rows = static_cast<int>(run.rows), first = static_cast<int>(run.first_row);
    const float* conv_in = mixed + static_cast<size_t>(first) * conv_dim;
    float* conv_rows = conv_out + static_cast<size_t>(first) * conv_dim;
    const int h_begin = kh * ratio, h_end = h_begin + ratio;
    const int channel_ranges[3][2] = {{kh * dk, (kh + 1) * dk},
                                      {key_dim + kh * dk, key_dim + (kh + 1) * dk},
                                      {2 * key_dim + h_begin * dv, 2 * key_dim + h_end * dv}};
    for (const auto& range : channel_ranges)
      conv1d_silu_channels(conv_in, rows, conv_dim, w.conv_weight, d.conv_kernel, w.conv_bias, run.conv_state,
                           conv_rows, range[0], range[1]);

    for (int t = first; t < first + rows; ++t) {
      const float* row = conv_out + static_cast<size_t>(t) * conv_dim;  // [q (Hk*dk) | k (Hk*dk) | v (Hv*dv)]
      for (int h = h_begin; h < h_end; ++h) {
        // Value head h reads key head h / ratio (torch repeat_interleave on the head axis).
        float* qh = q + (static_cast<size_t>(t) * Hv + h) * dk;
        float* kh_row = k + (static_cast<size_t>(t) * Hv + h) * dk;
        std::copy(row + kh * dk, row + (kh + 1) * dk, qh);
        std::copy(row + key_dim + kh * dk, row + key_dim + (kh + 1) * dk, kh_row);
        l2_normalize(qh, dk, 1e-6f);
        l2_normalize(kh_row, dk, 1e-6f);
        for (int i = 0; i < dk; ++i) qh[i] *= q_scale;
        const float* vh = row + 2 * key_dim + h * dv;
        std::copy(vh, vh + dv, v + (static_cast<size_t>(t) * Hv + h) * dv);

        const size_t th = static_cast<size_t>(t) * Hv + h;
        beta[th] = math::deltanet_beta(b[th]);
        g[th] = math::deltanet_log_decay(a[th], w.A_log[h], w.dt_bias[h]);
      }
    }

    const size_t off = static_cast<size_t>(first) * Hv;
    const DeltaRuleInputs inputs{q + off * dk,
                                 k + off * dk,
                                 v + off * dv,
                                 g + off,
                                 beta + off,
                                 rows,
                                 Hv,
                                 dk,
                                 dv};
    // A one-token run always takes the recurrence, so a decoding sequence gets the same bits
    // whether or not another sequence in its step is prefilling (batch invariance).
    if (chunk_size > 0 && rows > 1) {
      delta_rule_chunked_heads(inputs, run.recurrent_state, core + off * dv, chunk_size, h_begin, h_end);
    } else {
      delta_rule_recurrent_heads(inputs, run.recurrent_state, core + off * dv, h_begin, h_end);
    }

    // Gated RMSNorm per value head: rmsnorm(o) * weight * silu(z), weight used as stored.
    for (int t = first; t < first + rows; ++t) {
      for (int h = h_begin; h < h_end; ++h) {
        const size_t head_row = static_cast<size_t>(t) * Hv + h;
        float* o = core + head_row * dv;
        const float* zh = z + head_row * dv;  // z is [rows, Hv, dv] like core
        const float inv = math::inverse_rms(math::sum_of_squares(o, dv), dv, eps);
        detail::gated_rms_row(o, inv, w.norm, zh, dv);  // SIMD SiLU: a scalar exp each was ~4% of a prefill
      }
    }
  };

  // One piece per unit: a unit is at least a d_k x d_v state update per token, far
  // more than the cost of claiming it, and single units balance uneven lengths best.
  const int Hk = d.key_heads;
  const int64_t units = static_cast<int64_t>(runs.size()) * Hk;
  for_each_piece(pool, units, 1, [&](int64_t begin, int64_t end) {
    for (int64_t u = begin; u < end; ++u) {
      const DeltaNetRun& run = runs[static_cast<size_t>(u / Hk)];
      if (run.rows > 0) run_unit(run, static_cast<int>(u % Hk));
    }
  });
}

}  // namespace quanteval::runtime
