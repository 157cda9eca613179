#pragma once
// A GPTQ-quantized linear weight exactly as a checkpoint stores it, its plain
// reference dequantizer (the ground truth every fast kernel is tested against),
// and a reference quantizer that builds such weights from floats for tests.
//
// Notation: K = in_features (reduction), N = out_features, G = number of groups.
// The linear computes y[n] = sum_k x[k] * W[n, k] with
//   W[n, k] = scale[g, n] * (q[k, n] - zero[g, n]),   g = g_idx[k] (or k / group_size)
// where zero is the stored zero + 1 in GPTQ v1 and the stored zero in v2.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/checkpoint/quant_config.hpp"

namespace quanteval::runtime {

// GptqFormat (quant_config.hpp) -- v1: qzeros hold (zero - 1), symmetric 4-bit
// stores 7; v2: qzeros hold the real zero, symmetric 4-bit stores 8.

// Raw 16-bit encoding of the scales tensor (fp16 in GPTQ checkpoints; bf16 allowed).
enum class ScaleFormat { f16, bf16 };

// Non-owning views of one quantized linear's tensors (e.g. straight from an mmap).
struct GptqWeight {
  std::string name;      // tensor prefix, used only in error messages
  int in_features = 0;   // K
  int out_features = 0;  // N
  int bits = 4;          // only 4 is supported
  int group_size = -1;   // K rows per scale/zero group; -1 = one group over all of K
  GptqFormat format = GptqFormat::v1;
  bool sym = true;  // metadata; zeros are always read from qzeros
  ScaleFormat scale_format = ScaleFormat::f16;

  std::span<const int32_t> qweight;  // [K/8, N]: word (r, n) holds rows k = 8r..8r+7, row 8r+j at bits 4j
  std::span<const int32_t> qzeros;   // [G, N/8]: word (g, c) holds columns n = 8c..8c+7, column 8c+j at bits 4j
  std::span<const uint16_t> scales;  // [G, N]: raw fp16 or bf16 bits per scale_format
  std::span<const int32_t> g_idx;    // [K] group of each input row, or empty (then g = k / group_size)

  int num_groups() const;           // G = K / group_size, or 1 when group_size == -1
  int group_of(int k) const;        // g_idx[k] when present, else k / group_size
  int quant(int k, int n) const;    // q[k, n] in 0..15
  int zero(int g, int n) const;     // the real zero (format applied)
  float scale(int g, int n) const;  // the scale as float (exact)

  // Throws std::invalid_argument naming the tensor and field on any inconsistency:
  // unsupported bits, K or N not a multiple of 8, group_size not dividing K,
  // tensor sizes not matching their shapes, g_idx values outside [0, G).
  void validate() const;
};

// W as [N, K] row-major floats, computed with the obvious loops. Validates first.
std::vector<float> dequantize_reference(const GptqWeight& weight);

// Storage for a GptqWeight (what quantize_reference returns). Move-only, and a
// move keeps the vectors' buffers, so views into them stay valid. A view may
// also point elsewhere (view_gptq_weight leaves aligned tensors in the
// checkpoint's mapping and fills only the vectors it had to copy).
struct OwnedGptqWeight {
  std::vector<int32_t> qweight;
  std::vector<int32_t> qzeros;
  std::vector<uint16_t> scales;
  std::vector<int32_t> g_idx;
  GptqWeight weight;

  OwnedGptqWeight() = default;
  OwnedGptqWeight(OwnedGptqWeight&&) = default;
  OwnedGptqWeight& operator=(OwnedGptqWeight&&) = default;
  OwnedGptqWeight(const OwnedGptqWeight&) = delete;
  OwnedGptqWeight& operator=(const OwnedGptqWeight&) = delete;

  void refresh_views();  // re-point `weight`'s spans at the vectors (after editing them)
};

struct QuantizeOptions {
  int group_size = 128;    // -1 = one group over K
  bool act_order = false;  // random permutation of K into groups (g_idx not monotonic)
  bool sym = true;         // symmetric: zero 8, scale = max|w| / 7.5; else min/max asymmetric
  GptqFormat format = GptqFormat::v1;
  ScaleFormat scale_format = ScaleFormat::f16;
  uint64_t seed = 0;  // for the act-order permutation
};

// Round-to-nearest quantization (not the GPTQ error-feedback algorithm: tests only
// need weights with known values). `weights` is [N, K] row-major. Scales are rounded
// *up* to the 16-bit format so the grid covers the group's range, hence
// |dequantized - original| <= stored_scale / 2 for every element.
OwnedGptqWeight quantize_reference(std::span<const float> weights, int out_features, int in_features,
                                   const QuantizeOptions& options);

}  // namespace quanteval::runtime
