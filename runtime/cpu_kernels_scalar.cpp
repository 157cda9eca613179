// Portable kernels: the same packed layout and loop order as the SIMD ones,
// written plainly. Used where the CPU has no AVX2 and as a readable spec.
#include <cstring>

#include "runtime/cpu_kernel_detail.hpp"
#include "runtime/numeric.hpp"

namespace quanteval::runtime::detail {

void int4_blocks_scalar(const Int4Problem& p, int64_t block_begin, int64_t block_end) {
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

}  // namespace quanteval::runtime::detail
