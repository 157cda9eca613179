// Portable kernels: the same packed layout and loop order as the SIMD ones,
// written plainly. Used where the CPU has no AVX2 and as a readable spec.
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/base/numeric.hpp"
#include "runtime/kernels/cpu/isa.hpp"
#include "runtime/kernels/cpu/kernel_detail.hpp"
#include "runtime/model/math.hpp"

namespace quanteval::runtime::detail {

void quantize_block_scalar(const float* values, int rows, int16_t* out, int64_t line_stride, QuantBlockScale* block) {
  constexpr int kLineOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // position of row j within its line
  // max |x| on the bit patterns: for non-negative floats the integer order is the float
  // order, and inf / NaN patterns are above every finite one -- one integer max finds
  // both the maximum and whether all values are finite.
  uint32_t amax_bits = 0;
  for (int j = 0; j < rows; ++j) {
    uint32_t bits;
    std::memcpy(&bits, values + j, sizeof bits);
    bits &= 0x7fffffffu;
    amax_bits = bits > amax_bits ? bits : amax_bits;
  }
  const bool finite = amax_bits < 0x7f800000u;
  float amax;
  std::memcpy(&amax, &amax_bits, sizeof amax);
  if (!finite) {
    for (int j = 0; j < rows; ++j) out[j / 8 * line_stride + kLineOrder[j & 7]] = 0;
    *block = {std::numeric_limits<float>::quiet_NaN(), 0};
    return;
  }
  const float scale = amax / 32767.0f;
  const double inverse = scale > 0.0f ? 1.0 / static_cast<double>(scale) : 0.0;
  // Round to nearest-even by adding and removing 1.5 * 2^52: for |value| < 2^51 (here
  // <= 32767 * (1 + 2^-23)) exactly the default-mode rounding of the product, no libm call.
  constexpr double kRound = 6755399441055744.0;
  int32_t sum = 0;
  for (int j = 0; j < rows; ++j) {
    double scaled = (static_cast<double>(values[j]) * inverse + kRound) - kRound;
    scaled = scaled > 32767.0 ? 32767.0 : scaled < -32767.0 ? -32767.0 : scaled;
    const int32_t q = static_cast<int32_t>(scaled);
    out[j / 8 * line_stride + kLineOrder[j & 7]] = static_cast<int16_t>(q);
    sum += q;
  }
  *block = {scale, sum};
}

namespace {

// The int16-activation arithmetic, which every ISA reproduces bit for bit: per
// activation block b and column c, the integer dot I = sum q * x_q and
// t = I - zero * sum_b(x_q), both exact in int32 (|I| <= 15 * 32767 * 128 < 2^31),
// then acc = fma(float(t), scale_c * scale_b, acc) in block order (float(t) rounds
// to nearest-even when |t| > 2^24, as cvtdq2ps does), then y = acc + bias.
void int4_blocks_int16_scalar(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
  constexpr int C = kInt4BlockColumns;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const PackedLine* block_lines = p.lines + block * p.lines_per_block;
    for (int i = 0; i < p.m; ++i) {
      const int16_t* xq = p.x_q + 8 * i;
      const QuantBlockScale* xb = p.x_blocks + i * p.x_blocks_stride;
      float acc[C] = {};
      const PackedLine* line = block_lines;
      for (int g = 0; g < p.num_groups; ++g) {
        uint16_t header[2 * C];
        std::memcpy(header, line->words, sizeof header);
        ++line;
        float scale[C];
        int32_t zero[C];
        for (int c = 0; c < C; ++c) {
          scale[c] = p.scales_bf16 ? bf16_to_float(header[c]) : f16_to_float(header[c]);
          zero[c] = header[C + c];
        }
        for (int r0 = 0; r0 < p.group_rows[g]; r0 += kQuantBlockLines, ++xb) {
          const int lines = p.group_rows[g] - r0 < kQuantBlockLines ? p.group_rows[g] - r0 : kQuantBlockLines;
          int32_t dot[C] = {};
          for (int r = 0; r < lines; ++r, ++line, xq += p.x_q_line_stride) {
            for (int c = 0; c < C; ++c) {
              for (int j = 0; j < 8; ++j) {
                // Row j of the line sits at element 2j (j < 4) or 2(j - 4) + 1 of x_q.
                const int q = static_cast<int>((line->words[c] >> (4 * j)) & 0xfu);
                dot[c] += q * xq[j < 4 ? 2 * j : 2 * (j - 4) + 1];
              }
            }
          }
          for (int c = 0; c < C; ++c) {
            const float t = static_cast<float>(dot[c] - zero[c] * xb->sum);
            acc[c] = std::fma(t, scale[c] * xb->scale, acc[c]);
          }
        }
      }
      for (int c = 0; c < C; ++c) {
        const int64_t n = block * C + c;
        if (n >= p.n) break;
        p.y[i * static_cast<int64_t>(p.n) + n] = acc[c] + (p.bias ? p.bias[n] : 0.0f);
      }
    }
  }
}

}  // namespace

void int4_blocks_scalar(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
  if (p.x_q != nullptr) return int4_blocks_int16_scalar(p, block_begin, block_end);
  constexpr int C = kInt4BlockColumns;
  for (int64_t block = block_begin; block < block_end; ++block) {
    const PackedLine* block_lines = p.lines + block * p.lines_per_block;
    for (int i = 0; i < p.m; ++i) {
      const float* x = p.x + i * p.x_stride;
      float acc[C] = {};
      const PackedLine* line = block_lines;
      int64_t k = 0;
      for (int g = 0; g < p.num_groups; ++g) {
        uint16_t header[2 * C];
        std::memcpy(header, line->words, sizeof header);
        ++line;
        float scale[C], zero[C];
        for (int c = 0; c < C; ++c) {
          scale[c] = p.scales_bf16 ? bf16_to_float(header[c]) : f16_to_float(header[c]);
          zero[c] = static_cast<float>(header[C + c]);
        }
        for (int r = 0; r < p.group_rows[g]; ++r, ++line, k += 8) {
          for (int j = 0; j < 8; ++j) {
            for (int c = 0; c < C; ++c) {
              const float q = static_cast<float>((line->words[c] >> (4 * j)) & 0xfu);
              acc[c] += x[k + j] * (scale[c] * (q - zero[c]));  // the weight is exact: |q - zero| <= 16
            }
          }
        }
      }
      for (int c = 0; c < C; ++c) {
        const int64_t n = block * C + c;
        if (n >= p.n) break;
        p.y[i * static_cast<int64_t>(p.n) + n] = acc[c] + (p.bias ? p.bias[n] : 0.0f);
      }
    }
  }
}

namespace {
float dense_weight(const DenseProblem& p, int64_t index) {
  switch (p.type) {
    case DenseType::bf16: return bf16_to_float(static_cast<const uint16_t*>(p.w)[index]);
    case DenseType::f16: return f16_to_float(static_cast<const uint16_t*>(p.w)[index]);
    case DenseType::f32: break;
  }
  return static_cast<const float*>(p.w)[index];
}
}  // namespace

void dense_rows_scalar(const DenseProblem& p, int64_t row_begin, int64_t row_end) {
  for (int64_t row = row_begin; row < row_end; ++row) {
    for (int i = 0; i < p.m; ++i) {
      const float* x = p.x + static_cast<int64_t>(i) * p.k;
      float acc = 0.0f;
      for (int k = 0; k < p.k; ++k) acc += x[k] * dense_weight(p, row * p.k + k);
      p.y[static_cast<int64_t>(i) * p.n + row] = acc + (p.bias ? p.bias[row] : 0.0f);
    }
  }
}

void attention_scores(const float* queries, int heads, int head_dim, const float* keys, int64_t key_stride, int count,
                      float scale, float* scores, int64_t score_stride) {
  if (head_dim % 8 == 0 && heads >= 2 && cpu_supports(CpuIsa::avx512))
    return attention_scores_avx512(queries, heads, head_dim, keys, key_stride, count, scale, scores, score_stride);
  if (head_dim % 8 == 0 && cpu_supports(CpuIsa::avx2))
    return attention_scores_avx2(queries, heads, head_dim, keys, key_stride, count, scale, scores, score_stride);
  for (int j = 0; j < count; ++j)
    for (int h = 0; h < heads; ++h)
      scores[h * score_stride + j] =
          math::attention_score(queries + static_cast<int64_t>(h) * head_dim, keys + j * key_stride, head_dim, scale);
}

// The plain loop is the spec the SIMD tiles restate (each C element: its products in inner
// order, each one fused multiply-add, c + a b or c - a b rounded once). Fused rather than mul
// then add: half the vector instructions in the tiles, which are bound by them (the delta
// rule's products were ~28% of a 512-token Qwen3.5 prefill at AVX2), and one rounding less.
// Here it is std::fma (the FMA instruction where the CPU has one, else glibc's exact emulation).
void multiply_accumulate(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, int rows,
                         int cols, int inner, bool subtract) {
  if (rows <= 0 || inner <= 0) return;
  if (cols % 16 == 0 && cpu_supports(CpuIsa::avx512))
    return multiply_accumulate_avx512(c, ldc, a, lda, b, ldb, rows, cols, inner, subtract);
  if (cols % 8 == 0 && cpu_supports(CpuIsa::avx2))
    return multiply_accumulate_avx2(c, ldc, a, lda, b, ldb, rows, cols, inner, subtract);
  for (int i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    for (int x = 0; x < inner; ++x) {
      const float scalar = a[i * lda + x];
      const float* bx = b + x * ldb;
      const float signed_scalar = subtract ? -scalar : scalar;  // fma(-a, b, c) = c - a b, one rounding
      for (int j = 0; j < cols; ++j) ci[j] = std::fma(signed_scalar, bx[j], ci[j]);
    }
  }
}

void exp_shifted(float* values, size_t count, float shift) {
  if (cpu_supports(CpuIsa::avx512)) return exp_shifted_avx512(values, count, shift);
  if (cpu_supports(CpuIsa::avx2)) return exp_shifted_avx2(values, count, shift);
  for (size_t i = 0; i < count; ++i) values[i] = math::exp_float(values[i] - shift);
}

void softmax(float* values, size_t count) {
  const bool avx512 = cpu_supports(CpuIsa::avx512), avx2 = cpu_supports(CpuIsa::avx2);
  float max = values[0];
  if (avx512)
    max = max_value_avx512(values, count);
  else if (avx2)
    max = max_value_avx2(values, count);
  else
    for (size_t i = 1; i < count; ++i) max = values[i] > max ? values[i] : max;
  exp_shifted(values, count, max);
  const float total = math::lane_sum(values, static_cast<int>(count));
  if (avx512) return divide_avx512(values, count, total);
  if (avx2) return divide_avx2(values, count, total);
  for (size_t i = 0; i < count; ++i) values[i] /= total;
}

void swiglu(const float* gate, const float* up, float* out, size_t count) {
  if (cpu_supports(CpuIsa::avx512)) return swiglu_avx512(gate, up, out, count);
  if (cpu_supports(CpuIsa::avx2)) return swiglu_avx2(gate, up, out, count);
  for (size_t i = 0; i < count; ++i) out[i] = math::swiglu(gate[i], up[i]);
}

void gated_rms_row(float* o, float inverse_rms, const float* weight, const float* z, int count) {
  if (cpu_supports(CpuIsa::avx512)) return gated_rms_row_avx512(o, inverse_rms, weight, z, count);
  if (cpu_supports(CpuIsa::avx2)) return gated_rms_row_avx2(o, inverse_rms, weight, z, count);
  for (int i = 0; i < count; ++i) o[i] = math::gated_rms_scaled(o[i], inverse_rms, weight[i], z[i]);
}

void conv1d_silu_row(const float* const* window, int kernel, const float* taps, int64_t tap_stride, const float* bias,
                     int count, float* out) {
  if (cpu_supports(CpuIsa::avx512)) return conv1d_silu_row_avx512(window, kernel, taps, tap_stride, bias, count, out);
  if (cpu_supports(CpuIsa::avx2)) return conv1d_silu_row_avx2(window, kernel, taps, tap_stride, bias, count, out);
  for (int i = 0; i < count; ++i) {
    float acc = bias ? bias[i] : 0.0f;
    for (int j = 0; j < kernel; ++j) acc += taps[j * tap_stride + i] * window[j][i];
    out[i] = math::silu(acc);
  }
}

}  // namespace quanteval::runtime::detail
