#pragma once
// The per-element math of the model's ops, written once for every backend: the
// CPU backend calls these inside its loops, the CUDA kernels inside theirs
// (they are __host__ __device__ under nvcc, and this header stays C++17 for it),
// and the CPU test suite checks them against the plain reference path. A backend
// adds only indexing, memory and launch around them.
//
// Accumulation rules (the same on every backend, so results do not depend on
// the batch, the thread count or the backend beyond fp32 rounding of the parts):
//   RMSNorm      sum of squares in double over the row, then one float scale:
//                double makes the sum independent of the summation order at
//                float precision, so any reduction tree gives the same result.
//   RoPE         angle = float(position) * inv_freq in fp32 (as transformers forms
//                it), cos and sin of that angle in double, rotation in fp32.
//   attention    q.k dot products in fp32; softmax in fp32 with the running maximum
//                subtracted (OnlineSoftmax: one pass, mergeable partial states, so a
//                split of the context over blocks gives the two-pass result within
//                fp32 rounding); values accumulated in position order per part.
//   delta rule   fp32 throughout (see qwen3_5/delta_rule.hpp), one column of the
//                [d_k, d_v] state per call of delta_rule_column (columns never interact).
//   conv1d       fp32, taps in order, bias first.
//
// GPU note: nvcc contracts a * b + c into fma by default and its exp/sin/cos are
// not glibc's, so a GPU result equals the CPU's within a few fp32 ulps per op, not
// bit for bit; the CUDA checks (tools/cuda_model_check.cpp) use tolerances.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/base/host_device.hpp"
#include "runtime/model/exp_float_coefficients.hpp"

namespace quanteval::runtime::math {

// --- float bits ------------------------------------------------------------------------------

QE_HOST_DEVICE inline std::uint32_t float_bits(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
#endif
}
QE_HOST_DEVICE inline float float_from_bits(std::uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
#endif
}

// --- scalars ---------------------------------------------------------------------------------

// exp(x) in fixed fp32 arithmetic, so SIMD loops can compute it 8 or 16 at a time with the
// same bits (kernels_avx2.cpp / kernels_avx512.cpp restate it op for op with the numbers of
// exp_float_coefficients.hpp; tested): libm's
// expf, one call per element, was ~6% of a 512-token prefill (softmax and SiLU).
// Cody-Waite reduction x = n ln2 + r (n = x log2 e rounded to nearest by adding and
// removing 1.5 * 2^23; n ln2_hi is exact, ln2_hi having 15 significant bits), then the
// degree-7 Taylor polynomial of e^r on |r| <= ln2 / 2 (truncation <= 0.35^8 / 8! = 5e-9
// relative) in Horner form, one mul and one add per step (never contracted: the SIMD files
// build with -ffp-contract=off and baseline x86-64 has no FMA), times 2^n from its bits.
// Within 2 ulp of the correctly rounded value (tests/cpu_kernels/exp_test.cpp sweeps it).
// Range: x > 88.376 (= 127.5 ln 2, where 2^n would need n = 128; expf gives 2.4e38..3.4e38
// there) is +inf, x < -87.336 (= ln FLT_MIN, where expf turns subnormal) is 0, NaN stays NaN.
QE_HOST_DEVICE inline float exp_float(float x) {
  using namespace exp_coefficients;
  if (!(x <= kOverflowAbove)) return x != x ? x : HUGE_VALF;
  if (x < kUnderflowBelow) return 0.0f;
  const float n = (x * kLog2e + kRoundMagic) - kRoundMagic;
  const float r = (x - n * kLn2High) - n * kLn2Low;
  float p = kC7;
  p = p * r + kC6;
  p = p * r + kC5;
  p = p * r + kC4;
  p = p * r + kC3;
  p = p * r + kC2;
  p = p * r + kC1;
  p = p * r + kC0;
  return p * float_from_bits(static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127) << 23);
}

QE_HOST_DEVICE inline float silu(float x) { return x / (1.0f + exp_float(-x)); }

QE_HOST_DEVICE inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// torch.nn.functional.softplus with its default threshold: linear above 20,
// where log1p(exp(x)) equals x to float precision anyway.
QE_HOST_DEVICE inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// SwiGLU of one element: silu(gate) * up.
QE_HOST_DEVICE inline float swiglu(float gate, float up) { return silu(gate) * up; }

// --- 16-bit formats --------------------------------------------------------------------------
// The same conversions as base/numeric.hpp (which is C++20 and the bit-pattern ground
// truth: tests compare these with it on every pattern), written so nvcc can compile them.


QE_HOST_DEVICE inline float bf16_to_float(std::uint16_t bits) {
  return float_from_bits(static_cast<std::uint32_t>(bits) << 16);
}

// Round to nearest even; NaN stays a (quiet) NaN.
QE_HOST_DEVICE inline std::uint16_t float_to_bf16(float value) {
  std::uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

QE_HOST_DEVICE inline float f16_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -magnitude : magnitude;
  }
  return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// Round to nearest even, subnormals included; past 65504 (half-way rule) infinity.
QE_HOST_DEVICE inline std::uint16_t float_to_f16(float value) {
  const std::uint32_t bits = float_bits(value);
  const std::uint16_t sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);
  if (magnitude >= 0x38800000u) {
    magnitude += 0xfffu + ((magnitude >> 13) & 1u);
    return static_cast<std::uint16_t>(sign | ((magnitude - 0x38000000u) >> 13));
  }
  const std::uint32_t exponent = magnitude >> 23;
  if (exponent < 101) return sign;
  const std::uint32_t full = (magnitude & 0x7fffffu) | 0x800000u, shift = 126 - exponent;
  std::uint32_t result = full >> shift;
  const std::uint32_t remainder = full & ((1u << shift) - 1u), half = 1u << (shift - 1);
  if (remainder > half || (remainder == half && (result & 1u))) ++result;
  return static_cast<std::uint16_t>(sign | result);
}

// --- norms -----------------------------------------------------------------------------------

// 1 / sqrt(mean(x^2) + eps) from the row's sum of squares (accumulated in double).
QE_HOST_DEVICE inline float inverse_rms(double sum_of_squares, int width, float eps) {
  return static_cast<float>(1.0 / std::sqrt(sum_of_squares / static_cast<double>(width) + static_cast<double>(eps)));
}

// One element of an RMSNorm row once its inverse RMS is known.
QE_HOST_DEVICE inline float rms_scaled(float x, float inverse_rms_value, float weight) {
  return x * inverse_rms_value * weight;
}

// Sum of squares of n floats in double (any order gives the same float result, see the
// rule above). A single thread keeps 8 partial sums, element i in sum i % 8: the compiler
// vectorizes that where one in-order chain waits on every add (896 values: 0.82 -> 0.21 us
// on Zen 4, on the calling thread of every decode step's norms).
QE_HOST_DEVICE inline double sum_of_squares(const float* x, long long n) {
  double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  long long i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (int j = 0; i < n; ++i, ++j) part[j] += static_cast<double>(x[i]) * x[i];
  return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

// y = x / sqrt(mean(x^2) + eps) * weight over `width` floats. x and y may alias.
QE_HOST_DEVICE inline void rms_norm_row(const float* x, const float* weight, long long width, float eps, float* y) {
  const float inv = inverse_rms(sum_of_squares(x, width), static_cast<int>(width), eps);
  for (long long i = 0; i < width; ++i) y[i] = rms_scaled(x[i], inv, weight[i]);
}

// The fla / HF `l2norm` factor 1 / sqrt(sum(x^2) + eps) (eps inside the root, not a
// clamp), the sum in fp32 in index order as the HF reference does.
QE_HOST_DEVICE inline float inverse_l2(const float* x, int n, float eps) {
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += x[i] * x[i];
  return 1.0f / std::sqrt(sum + eps);
}

// Qwen3.5's gated RMSNorm of one DeltaNet output element: rmsnorm(o) * weight * silu(z).
QE_HOST_DEVICE inline float gated_rms_scaled(float o, float inverse_rms_value, float weight, float z) {
  return o * inverse_rms_value * weight * silu(z);
}

// --- RoPE ------------------------------------------------------------------------------------

// cos and sin of one RoPE pair's angle position * inv_freq (in double, rounded to float).
// Every head of a row shares them: a caller rotating many heads computes them once.
struct RotaryAngle {
  float cos, sin;
};
QE_HOST_DEVICE inline RotaryAngle rotary_angle(long long position, float inv_freq) {
  const float angle = static_cast<float>(position) * inv_freq;
  return {static_cast<float>(std::cos(static_cast<double>(angle))),
          static_cast<float>(std::sin(static_cast<double>(angle)))};
}

// One NeoX ("rotate half") RoPE pair: dims i and i + rotary_dim / 2 of a head.
QE_HOST_DEVICE inline void rotate_pair(float& x1, float& x2, RotaryAngle angle) {
  const float a = x1, b = x2;
  x1 = a * angle.cos - b * angle.sin;
  x2 = b * angle.cos + a * angle.sin;
}
QE_HOST_DEVICE inline void rotate_pair(float& x1, float& x2, long long position, float inv_freq) {
  rotate_pair(x1, x2, rotary_angle(position, inv_freq));
}

// RoPE of one head in place: the first rotary_dim dims rotated (partial rotary leaves
// the rest), pairs (i, i + rotary_dim / 2) with inv_freq[i] -- or with angles[i] =
// rotary_angle(position, inv_freq[i]) computed beforehand (the same bits).
QE_HOST_DEVICE inline void rotate_head(float* head, int rotary_dim, const RotaryAngle* angles) {
  const int half = rotary_dim / 2;
  for (int i = 0; i < half; ++i) rotate_pair(head[i], head[i + half], angles[i]);
}
QE_HOST_DEVICE inline void rotate_head(float* head, int rotary_dim, long long position, const float* inv_freq) {
  const int half = rotary_dim / 2;
  for (int i = 0; i < half; ++i) rotate_pair(head[i], head[i + half], position, inv_freq[i]);
}

// --- attention -------------------------------------------------------------------------------

// The running state of a one-pass softmax over scores s_1, s_2, ...:
//   max = max_i s_i, sum = sum_i exp(s_i - max); the caller keeps
//   acc = sum_i exp(s_i - max) v_i and rescales it by the factor each step returns.
// Two partial states (of disjoint position ranges) merge into the state of the union,
// which is what split-K decode does across blocks.
struct OnlineSoftmax {
  float max = -INFINITY;
  float sum = 0.0f;

  // Adds one score. Returns the factor to multiply the accumulated values by
  // (exp(old max - new max)); *weight receives exp(score - new max), the weight of
  // this position's value.
  QE_HOST_DEVICE float add(float score, float* weight) {
    const float new_max = score > max ? score : max;
    const float rescale = max == -INFINITY ? 0.0f : std::exp(max - new_max);
    *weight = score == -INFINITY ? 0.0f : std::exp(score - new_max);  // a masked score weighs nothing
    sum = sum * rescale + *weight;
    max = new_max;
    return rescale;
  }
  // Merges `other` in. *self_factor / *other_factor receive the factors to apply to
  // this state's and the other's accumulated values before adding them.
  QE_HOST_DEVICE void merge(const OnlineSoftmax& other, float* self_factor, float* other_factor) {
    const float new_max = other.max > max ? other.max : max;
    *self_factor = max == -INFINITY ? 0.0f : std::exp(max - new_max);
    *other_factor = other.max == -INFINITY ? 0.0f : std::exp(other.max - new_max);
    sum = sum * *self_factor + other.sum * *other_factor;
    max = new_max;
  }
  // The final 1 / sum normaliser (the weights' sum is at least 1 once a score was added).
  QE_HOST_DEVICE float normalizer() const { return 1.0f / sum; }
};

// a . b in fp32 over 8 interleaved partial sums (lane l takes every d with d % 8 == l) and a
// fixed pairwise reduction. One serial sum made every score a chain of n dependent adds (~4
// cycles each: 21% of a 512-token CPU prefill); 8 independent lanes vectorize. The order
// depends only on n, so a result never depends on the batch, the thread or the backend.
QE_HOST_DEVICE inline float lane_dot(const float* a, const float* b, int n) {
  float lane[8] = {};
  int d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; ++l) lane[l] += a[d + l] * b[d + l];
  for (int l = 0; d < n && l < 8; ++d, ++l) lane[l] += a[d] * b[d];  // l < 8: always (n - d < 8)
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

// sum of a[0, n) in lane_dot's order (8 lanes, the same pairwise reduction): softmax's
// denominator. Its serial sum was one chain of n dependent adds per (row, head).
QE_HOST_DEVICE inline float lane_sum(const float* a, int n) {
  float lane[8] = {};
  int d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; ++l) lane[l] += a[d + l];
  for (int l = 0; d < n && l < 8; ++d, ++l) lane[l] += a[d];
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

// The scaled score of one query-key pair: lane_dot(q, k) * scale.
QE_HOST_DEVICE inline float attention_score(const float* q, const float* k, int head_dim, float scale) {
  return lane_dot(q, k, head_dim) * scale;
}

// First position a query at `position` attends to: 0 for full attention, else the window start.
QE_HOST_DEVICE inline long long attention_first_position(long long position, long long window) {
  return window > 0 && position - window + 1 > 0 ? position - window + 1 : 0;
}

// Split-K attention: a row's causal range [first, position] is cut into splits of a fixed
// number of positions (the last one shorter), so the cut depends on the row alone, never on
// the other rows of its step. Split s covers [attention_split_begin(s), that + kAttentionSplit).
inline constexpr long long kAttentionSplitPositions = 512;
QE_HOST_DEVICE inline long long attention_split_count(long long position, long long window) {
  const long long count = position - attention_first_position(position, window) + 1;
  return (count + kAttentionSplitPositions - 1) / kAttentionSplitPositions;
}
QE_HOST_DEVICE inline long long attention_split_begin(long long position, long long window, long long split) {
  return attention_first_position(position, window) + split * kAttentionSplitPositions;
}
// One past the last position of split s.
QE_HOST_DEVICE inline long long attention_split_end(long long position, long long window, long long split) {
  const long long end = attention_split_begin(position, window, split) + kAttentionSplitPositions;
  return end < position + 1 ? end : position + 1;
}

// Qwen3.5's output gate: attention output * sigmoid(gate).
QE_HOST_DEVICE inline float gated_output(float value, float gate) { return value * sigmoid(gate); }

// --- Gated DeltaNet --------------------------------------------------------------------------

// Gated DeltaNet gates of one (token, value head): the log decay g <= 0 and the
// write strength beta in (0, 1), from the in_proj_a / in_proj_b outputs.
QE_HOST_DEVICE inline float deltanet_log_decay(float a, float A_log, float dt_bias) {
  return -std::exp(A_log) * softplus(a + dt_bias);
}
QE_HOST_DEVICE inline float deltanet_beta(float b) { return sigmoid(b); }

// One token of the gated delta rule for one column c of a head's state S [d_k, d_v]
// (column = `column[a * stride]`, a < d_k): S *= decay; delta = beta (v_c - S^T k);
// S += k delta; returns o_c = (S^T q)_c. Columns never interact, so a backend may run
// them on different threads; each sums over a in ascending order.
QE_HOST_DEVICE inline float delta_rule_column(float* column, long long stride, const float* q, const float* k,
                                              int key_dim, float v_c, float decay, float beta) {
  float recalled = 0.0f;
  for (int a = 0; a < key_dim; ++a) {
    float& s = column[a * stride];
    s *= decay;
    recalled += s * k[a];
  }
  const float delta = (v_c - recalled) * beta;
  float out = 0.0f;
  for (int a = 0; a < key_dim; ++a) {
    float& s = column[a * stride];
    s += k[a] * delta;
    out += s * q[a];
  }
  return out;
}

// One output of the causal depthwise conv1d + SiLU for channel c at one time:
// silu(bias + sum_j taps[j] * window(j)), window(j) for j < kernel the input kernel-1-j
// steps back (the oldest first). `window_at(j)` supplies those values.
template <typename Window>
QE_HOST_DEVICE inline float conv1d_silu(const float* taps, int kernel, float bias, Window window_at) {
  float acc = bias;
  for (int j = 0; j < kernel; ++j) acc += taps[j] * window_at(j);
  return silu(acc);
}

// --- sampling decisions ----------------------------------------------------------------------

// The unnormalised probability of a token: exp((logit - max_logit) / temperature).
QE_HOST_DEVICE inline float tempered_weight(float logit, float max_logit, float temperature) {
  return std::exp((logit - max_logit) / temperature);
}
// The candidate order of top-k / top-p: more probable first, the smaller id on ties.
QE_HOST_DEVICE inline bool more_likely(float p_a, int id_a, float p_b, int id_b) {
  return p_a > p_b || (p_a == p_b && id_a < id_b);
}
// min-p keeps a token at least min_p times as probable as the most probable one.
QE_HOST_DEVICE inline bool min_p_keeps(float probability, float max_probability, float min_p) {
  return !(probability < min_p * max_probability);
}
// The greedy choice between two (logit, id) pairs: the larger logit, the smaller id on ties
// (torch.argmax's first index), so a reduction tree of any shape picks the same token.
QE_HOST_DEVICE inline bool argmax_prefers(float logit_a, int id_a, float logit_b, int id_b) {
  return logit_a > logit_b || (logit_a == logit_b && id_a < id_b);
}

}  // namespace quanteval::runtime::math
