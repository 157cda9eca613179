#include "runtime/checkpoint/gptq.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include "runtime/base/numeric.hpp"

namespace quanteval::runtime {
namespace {

std::string label(const GptqWeight& w, const char* field) {
  return fmt::format("GPTQ weight '{}' {}", w.name.empty() ? "(unnamed)" : w.name, field);
}

uint32_t nibble(int32_t word, int index) { return (static_cast<uint32_t>(word) >> (4 * index)) & 0xfu; }

// Decodes a 16-bit scale, then rounds a float scale to that format.
float decode_scale(uint16_t bits, ScaleFormat format) {
  return format == ScaleFormat::f16 ? f16_to_float(bits) : bf16_to_float(bits);
}

uint16_t encode_scale(float value, ScaleFormat format) {
  return format == ScaleFormat::f16 ? float_to_f16(value) : float_to_bf16(value);
}

// The smallest representable 16-bit scale >= value (value > 0, finite, in range).
uint16_t encode_scale_rounding_up(float value, ScaleFormat format) {
  uint16_t bits = encode_scale(value, format);
  if (decode_scale(bits, format) < value) ++bits;  // positive values: next bit pattern is next larger
  return bits;
}

}  // namespace

int GptqWeight::num_groups() const { return group_size == -1 ? 1 : in_features / group_size; }

int GptqWeight::group_of(int k) const {
  if (!g_idx.empty()) return g_idx[k];
  return group_size == -1 ? 0 : k / group_size;
}

int GptqWeight::quant(int k, int n) const {
  return static_cast<int>(nibble(qweight[static_cast<size_t>(k / 8) * out_features + n], k % 8));
}

int GptqWeight::zero(int g, int n) const {
  const int stored = static_cast<int>(nibble(qzeros[static_cast<size_t>(g) * (out_features / 8) + n / 8], n % 8));
  return format == GptqFormat::v1 ? stored + 1 : stored;
}

float GptqWeight::scale(int g, int n) const {
  return decode_scale(scales[static_cast<size_t>(g) * out_features + n], scale_format);
}

void GptqWeight::validate() const {
  if (bits != 4) {
    throw std::invalid_argument(label(*this, fmt::format("bits={}: only 4-bit GPTQ is supported", bits).c_str()));
  }
  if (in_features <= 0 || in_features % 8 != 0) {
    throw std::invalid_argument(
        label(*this, "in_features") +
        fmt::format(" = {}: must be a positive multiple of 8 (qweight packs 8 rows per int32)", in_features));
  }
  if (out_features <= 0 || out_features % 8 != 0) {
    throw std::invalid_argument(
        label(*this, "out_features") +
        fmt::format(" = {}: must be a positive multiple of 8 (qzeros packs 8 columns per int32)", out_features));
  }
  if (group_size != -1 && (group_size <= 0 || in_features % group_size != 0)) {
    throw std::invalid_argument(
        label(*this, "group_size") +
        fmt::format(" = {}: must be -1 or a positive divisor of in_features = {}", group_size, in_features));
  }
  const size_t k = static_cast<size_t>(in_features), n = static_cast<size_t>(out_features);
  const size_t groups = static_cast<size_t>(num_groups());
  auto check_size = [&](const char* field, size_t actual, size_t expected, const std::string& shape) {
    if (actual != expected) {
      throw std::invalid_argument(label(*this, field) +
                                  fmt::format(": has {} elements, expected {} for shape {}", actual, expected, shape));
    }
  };
  check_size("qweight", qweight.size(), k / 8 * n, fmt::format("[K/8={}, N={}]", k / 8, n));
  check_size("qzeros", qzeros.size(), groups * (n / 8), fmt::format("[G={}, N/8={}]", groups, n / 8));
  check_size("scales", scales.size(), groups * n, fmt::format("[G={}, N={}]", groups, n));
  if (!g_idx.empty()) {
    check_size("g_idx", g_idx.size(), k, fmt::format("[K={}]", k));
    for (size_t i = 0; i < k; ++i) {
      if (g_idx[i] < 0 || static_cast<size_t>(g_idx[i]) >= groups) {
        throw std::invalid_argument(label(*this, "g_idx") +
                                    fmt::format(": g_idx[{}] = {} is outside [0, {})", i, g_idx[i], groups));
      }
    }
  }
}

std::vector<float> dequantize_reference(const GptqWeight& weight) {
  weight.validate();
  const int n_count = weight.out_features, k_count = weight.in_features;
  std::vector<float> dense(static_cast<size_t>(n_count) * k_count);
  for (int n = 0; n < n_count; ++n) {
    for (int k = 0; k < k_count; ++k) {
      const int g = weight.group_of(k);
      dense[static_cast<size_t>(n) * k_count + k] =
          weight.scale(g, n) * static_cast<float>(weight.quant(k, n) - weight.zero(g, n));
    }
  }
  return dense;
}

void OwnedGptqWeight::refresh_views() {
  weight.qweight = qweight;
  weight.qzeros = qzeros;
  weight.scales = scales;
  weight.g_idx = g_idx;
}

OwnedGptqWeight quantize_reference(std::span<const float> weights, int out_features, int in_features,
                                   const QuantizeOptions& options) {
  OwnedGptqWeight out;
  GptqWeight& w = out.weight;
  w.name = "quantize_reference";
  w.in_features = in_features;
  w.out_features = out_features;
  w.group_size = options.group_size;
  w.format = options.format;
  w.sym = options.sym;
  w.scale_format = options.scale_format;
  if (in_features <= 0 || in_features % 8 != 0 || out_features <= 0 || out_features % 8 != 0 ||
      (options.group_size != -1 && (options.group_size <= 0 || in_features % options.group_size != 0))) {
    throw std::invalid_argument(fmt::format("quantize_reference: unsupported shape N={} K={} group_size={}",
                                            out_features, in_features, options.group_size));
  }
  if (weights.size() != static_cast<size_t>(out_features) * in_features) {
    throw std::invalid_argument(fmt::format("quantize_reference: weights has {} elements, expected N*K = {}",
                                            weights.size(), static_cast<size_t>(out_features) * in_features));
  }
  const int groups = w.num_groups();
  const int group_len = in_features / groups;

  // members[g] = the input rows k of group g; act-order scatters them over K.
  std::vector<int> order(in_features);
  std::iota(order.begin(), order.end(), 0);
  if (options.act_order) {
    std::mt19937_64 rng(options.seed);
    std::shuffle(order.begin(), order.end(), rng);
    out.g_idx.assign(in_features, 0);
    for (int i = 0; i < in_features; ++i) out.g_idx[order[i]] = i / group_len;
  }

  const size_t n_count = static_cast<size_t>(out_features);
  std::vector<int> quants(static_cast<size_t>(in_features) * n_count);  // [K, N]
  std::vector<int> zeros(static_cast<size_t>(groups) * n_count);        // [G, N], real zeros
  out.scales.assign(static_cast<size_t>(groups) * n_count, 0);
  for (int g = 0; g < groups; ++g) {
    const std::span<const int> members(order.data() + static_cast<size_t>(g) * group_len, group_len);
    for (int n = 0; n < out_features; ++n) {
      const float* row = weights.data() + static_cast<size_t>(n) * in_features;
      float lo = 0.0f, hi = 0.0f;  // include 0 so an all-positive group still has a zero on the grid
      for (int k : members) {
        lo = std::min(lo, row[k]);
        hi = std::max(hi, row[k]);
      }
      float step;
      int zero;
      if (options.sym) {
        step = std::max(-lo, hi) / 7.5f;  // |w| <= 7.5 steps around zero 8: q in [0, 15] after clamping 16
        zero = 8;
      } else {
        step = (hi - lo) / 15.0f;
        zero = step > 0.0f ? static_cast<int>(std::lround(-lo / step)) : 8;
        if (options.format == GptqFormat::v1 && zero == 0) {
          // v1 cannot store zero 0 (it would be stored as -1); use zero 1 and a grid over [-step, 14 step].
          step = hi / 14.0f;
          zero = 1;
        }
      }
      if (!(step > 0.0f)) step = 1.0f;  // all-zero group: any positive scale
      const uint16_t scale_bits = encode_scale_rounding_up(step, options.scale_format);
      const float scale = decode_scale(scale_bits, options.scale_format);
      out.scales[static_cast<size_t>(g) * n_count + n] = scale_bits;
      zeros[static_cast<size_t>(g) * n_count + n] = zero;
      for (int k : members) {
        const long level = std::lround(row[k] / scale) + zero;
        quants[static_cast<size_t>(k) * n_count + n] = static_cast<int>(std::clamp(level, 0L, 15L));
      }
    }
  }

  out.qweight.assign(static_cast<size_t>(in_features / 8) * n_count, 0);
  for (int k = 0; k < in_features; ++k) {
    for (size_t n = 0; n < n_count; ++n) {
      uint32_t& word = reinterpret_cast<uint32_t&>(out.qweight[static_cast<size_t>(k / 8) * n_count + n]);
      word |= static_cast<uint32_t>(quants[static_cast<size_t>(k) * n_count + n]) << (4 * (k % 8));
    }
  }
  const int stored_offset = options.format == GptqFormat::v1 ? 1 : 0;
  out.qzeros.assign(static_cast<size_t>(groups) * (n_count / 8), 0);
  for (int g = 0; g < groups; ++g) {
    for (size_t n = 0; n < n_count; ++n) {
      const uint32_t stored = static_cast<uint32_t>(zeros[static_cast<size_t>(g) * n_count + n] - stored_offset);
      uint32_t& word = reinterpret_cast<uint32_t&>(out.qzeros[static_cast<size_t>(g) * (n_count / 8) + n / 8]);
      word |= (stored & 0xfu) << (4 * (n % 8));
    }
  }
  out.refresh_views();
  return out;
}

}  // namespace quanteval::runtime
