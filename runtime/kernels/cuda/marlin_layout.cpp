#include "runtime/kernels/cuda/marlin_layout.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/gptq.hpp"

namespace quanteval::runtime::marlin {
namespace {

std::string describe(const GptqWeight& w) {
  return fmt::format("GPTQ weight '{}' (K={}, N={}, group_size={})", w.name.empty() ? "(unnamed)" : w.name,
                     w.in_features, w.out_features, w.group_size);
}

float round_to(float value, bool bf16) {
  return bf16 ? bf16_to_float(float_to_bf16(value)) : f16_to_float(float_to_f16(value));
}

float decode(uint16_t bits, bool bf16) { return bf16 ? bf16_to_float(bits) : f16_to_float(bits); }

}  // namespace

int effective_group_size(const GptqWeight& weight) {
  return weight.group_size == -1 ? weight.in_features : weight.group_size;
}

void validate_for_kernel(const GptqWeight& weight) {
  weight.validate();  // tensor sizes, g_idx range, bits == 4
  const int k = weight.in_features, n = weight.out_features;
  if (k % kRequiredKMultiple != 0 || n % kRequiredNMultiple != 0) {
    throw std::invalid_argument(fmt::format("{}: the CUDA INT4 GEMM needs K a multiple of {} and N a multiple of {}",
                                            describe(weight), kRequiredKMultiple, kRequiredNMultiple));
  }
  const int group = effective_group_size(weight);
  // k-blocks are 64 or 128 rows: a group must tile a k-block (16/32/64) or be tiled by one (x128).
  const bool group_ok = group == 16 || group == 32 || group == 64 || group % 128 == 0;
  if (!group_ok || k % group != 0) {
    throw std::invalid_argument(
        fmt::format("{}: the CUDA INT4 GEMM needs a group size of 16, 32, 64, a multiple of 128 dividing K, or -1",
                    describe(weight)));
  }
  // The kernel is symmetric-only: the zero is the constant 8 folded into the dequantizer.
  for (int g = 0; g < weight.num_groups(); ++g) {
    for (int col = 0; col < n; ++col) {
      if (weight.zero(g, col) != 8) {
        throw std::invalid_argument(
            fmt::format("{}: the CUDA INT4 GEMM takes symmetric weights only (zero 8); group {} column {} has zero {}",
                        describe(weight), g, col, weight.zero(g, col)));
      }
    }
  }
  // After sorting by group every group must fill exactly `group` consecutive rows, so the
  // group of packed row kp is kp / group (what the kernel assumes).
  if (!weight.g_idx.empty()) {
    std::vector<int> rows_per_group(weight.num_groups(), 0);
    for (int row = 0; row < k; ++row) ++rows_per_group[weight.g_idx[row]];
    for (int g = 0; g < weight.num_groups(); ++g) {
      if (rows_per_group[g] != group) {
        throw std::invalid_argument(
            fmt::format("{}: g_idx gives group {} {} rows; the CUDA INT4 GEMM needs exactly {} per group",
                        describe(weight), g, rows_per_group[g], group));
      }
    }
  }
}

std::vector<int32_t> group_sorted_rows(const GptqWeight& weight) {
  std::vector<int32_t> perm(weight.in_features);
  std::iota(perm.begin(), perm.end(), 0);
  if (!weight.g_idx.empty()) {
    std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return weight.g_idx[a] < weight.g_idx[b]; });
  }
  return perm;
}

bool is_identity(const std::vector<int32_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int32_t>(i)) return false;
  return true;
}

PreparedWeight prepare_for_kernel(const GptqWeight& weight) {
  validate_for_kernel(weight);
  PreparedWeight out;
  out.in_features = weight.in_features;
  out.out_features = weight.out_features;
  out.group_size = effective_group_size(weight);
  out.groups = weight.num_groups();
  out.scales_bf16 = weight.scale_format == ScaleFormat::bf16;
  out.qweight = weight.qweight.data();
  out.scales = weight.scales.data();
  out.row_order = group_sorted_rows(weight);
  out.gathers = !is_identity(out.row_order);
  return out;
}

std::vector<uint32_t> repack_weights(const GptqWeight& weight, const std::vector<int32_t>& perm) {
  const int k_total = weight.in_features, n_total = weight.out_features;
  std::vector<uint32_t> packed(static_cast<size_t>(k_total / kTileK) * (n_total / kTileN) * kWordsPerTile, 0u);
  for (int kp = 0; kp < k_total; ++kp) {
    const int k = perm[kp];
    for (int n = 0; n < n_total; ++n) {
      const NibbleSlot slot = packed_slot(kp, n, n_total);
      packed[slot.word] |= static_cast<uint32_t>(weight.quant(k, n)) << slot.shift;
    }
  }
  return packed;
}

std::vector<uint16_t> repack_scales(const GptqWeight& weight, bool to_bf16) {
  const int n_total = weight.out_features, groups = weight.num_groups();
  std::vector<uint16_t> out(static_cast<size_t>(groups) * n_total);
  for (int g = 0; g < groups; ++g) {
    for (int n = 0; n < n_total; ++n) {
      const float value = weight.scale(g, n);  // exact (a 16-bit float)
      out[scale_slot(g, n, n_total)] = to_bf16 ? float_to_bf16(value) : float_to_f16(value);
    }
  }
  return out;
}

void dequantize_pair_emulated(uint32_t word, int pair, bool bf16, float& low, float& high) {
  if (bf16) {
    // bf16 has 7 mantissa bits, so 128.0 (0x4300) has a unit last place of 1: OR-ing a
    // nibble into the mantissa gives 128 + q; subtracting 136 gives q - 8 exactly.
    const uint32_t bits = ((word >> (4 * pair)) & 0x000f000fu) | 0x43004300u;
    low = bf16_to_float(static_cast<uint16_t>(bits)) - 136.0f;
    high = bf16_to_float(static_cast<uint16_t>(bits >> 16)) - 136.0f;
    return;
  }
  // f16 has 10 mantissa bits, so 1024.0 (0x6400) has a unit last place of 1. Pairs 0/2
  // sit in mantissa bits 0-3 (1024 + q, minus 1032); pairs 1/3 in bits 4-7
  // (1024 + 16q, times 1/16 minus 72), which saves a shift per word.
  const uint32_t source = pair >= 2 ? word >> 8 : word;
  const bool upper_nibble = pair % 2 == 1;
  const uint32_t bits = (source & (upper_nibble ? 0x00f000f0u : 0x000f000fu)) | 0x64006400u;
  const float a = f16_to_float(static_cast<uint16_t>(bits)), b = f16_to_float(static_cast<uint16_t>(bits >> 16));
  if (upper_nibble) {
    low = a * 0.0625f - 72.0f;
    high = b * 0.0625f - 72.0f;
  } else {
    low = a - 1032.0f;
    high = b - 1032.0f;
  }
}

std::vector<float> unpack_as_kernel(const std::vector<uint32_t>& packed, const std::vector<uint16_t>& scales,
                                    const std::vector<int32_t>& perm, int in_features, int out_features, int group_size,
                                    bool bf16) {
  const int k_tiles = in_features / kTileK, n_tiles = out_features / kTileN;
  std::vector<float> dense(static_cast<size_t>(out_features) * in_features, 0.0f);
  for (int kt = 0; kt < k_tiles; ++kt) {
    const int group = kt * kTileK / group_size;  // groups are whole multiples of 16 rows
    for (int nt = 0; nt < n_tiles; ++nt) {
      const size_t tile_base = (static_cast<size_t>(kt) * n_tiles + nt) * kWordsPerTile;
      const size_t scale_base = (static_cast<size_t>(group) * n_tiles + nt) * kScalesPerTile;
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        for (int word = 0; word < kWordsPerLane; ++word) {
          const uint32_t bits = packed[tile_base + lane * kWordsPerLane + word];
          for (int pair = 0; pair < 4; ++pair) {
            const int sub_tile = 2 * word + pair / 2, reg = pair % 2;
            // The lane's 16-byte scale vector is the 8 scales of row g; element sub_tile is ours.
            const float scale = decode(scales[scale_base + g * 8 + sub_tile], bf16);
            float low = 0.0f, high = 0.0f;
            dequantize_pair_emulated(bits, pair, bf16, low, high);
            const int n = nt * kTileN + 8 * sub_tile + g;
            const int kp = kt * kTileK + 2 * t + 8 * reg;  // fragment rule: low half k=2t(+8), high k+1
            dense[static_cast<size_t>(n) * in_features + perm[kp]] = round_to(low * scale, bf16);
            dense[static_cast<size_t>(n) * in_features + perm[kp + 1]] = round_to(high * scale, bf16);
          }
        }
      }
    }
  }
  return dense;
}

}  // namespace quanteval::runtime::marlin
