// The GPTQ representation: validation, the reference dequantizer checked by hand,
// and the quantize -> dequantize round trip.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/gptq.hpp"
#include "tests/cpu_kernels/test_helpers.hpp"

using namespace quanteval::runtime;

namespace {

// Packs nibbles the GPTQ way (element j of 8 at bits 4j) without sharing code with the library.
int32_t pack8(const int (&nibbles)[8]) {
  uint32_t word = 0;
  for (int j = 0; j < 8; ++j) word |= static_cast<uint32_t>(nibbles[j] & 0xf) << (4 * j);
  return static_cast<int32_t>(word);
}

std::string message_of(const GptqWeight& weight) {
  try {
    weight.validate();
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "";
}

}  // namespace

TEST_CASE("dequantize_reference: hand-computed v1 and v2 values, act-order g_idx") {
  // K = 16, N = 8, group_size 8 -> G = 2. Rows 0..7 and 8..15 form the two qweight rows.
  std::vector<int32_t> qweight(2 * 8), qzeros(2 * 1);
  for (int n = 0; n < 8; ++n) {
    const int first[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    const int second[8] = {15, 14, 13, 12, 11, 10, 9, n};
    qweight[0 * 8 + n] = pack8(first);
    qweight[1 * 8 + n] = pack8(second);
  }
  const int zeros_g0[8] = {7, 7, 7, 7, 7, 7, 7, 7};   // v1 stored 7 = real zero 8
  const int zeros_g1[8] = {0, 1, 2, 3, 4, 5, 6, 14};  // v1 stored z-1
  qzeros[0] = pack8(zeros_g0);
  qzeros[1] = pack8(zeros_g1);
  std::vector<uint16_t> scales(2 * 8);
  for (int n = 0; n < 8; ++n) {
    scales[0 * 8 + n] = float_to_f16(0.5f);
    scales[1 * 8 + n] = float_to_f16(0.25f * static_cast<float>(n + 1));
  }
  GptqWeight w;
  w.name = "hand";
  w.in_features = 16;
  w.out_features = 8;
  w.group_size = 8;
  w.qweight = qweight;
  w.qzeros = qzeros;
  w.scales = scales;

  auto dense = dequantize_reference(w);  // [N, K]
  CHECK(dense[0 * 16 + 0] == 0.5f * (0 - 8));
  CHECK(dense[3 * 16 + 7] == 0.5f * (7 - 8));
  CHECK(dense[2 * 16 + 8] == 0.75f * (15 - 3));  // group 1, column 2: stored zero 2 -> real 3
  CHECK(dense[7 * 16 + 15] == 2.0f * (7 - 15));  // q = n = 7, stored zero 14 -> real 15

  w.format = GptqFormat::v2;  // same bits, the stored zero is now the real zero
  dense = dequantize_reference(w);
  CHECK(dense[0 * 16 + 0] == 0.5f * (0 - 7));
  CHECK(dense[2 * 16 + 8] == 0.75f * (15 - 2));

  // Act-order: row 0 uses group 1's scale/zero, row 8 group 0's.
  std::vector<int32_t> g_idx(16);
  for (int k = 0; k < 16; ++k) g_idx[k] = k < 8 ? 1 : 0;
  g_idx[0] = 1;
  w.format = GptqFormat::v1;
  w.g_idx = g_idx;
  dense = dequantize_reference(w);
  CHECK(dense[2 * 16 + 0] == 0.75f * (0 - 3));
  CHECK(dense[2 * 16 + 8] == 0.5f * (15 - 8));

  w.scale_format = ScaleFormat::bf16;
  for (int n = 0; n < 8; ++n) scales[n] = float_to_bf16(0.5f), scales[8 + n] = float_to_bf16(0.25f * (n + 1));
  dense = dequantize_reference(w);
  CHECK(dense[2 * 16 + 0] == 0.75f * (0 - 3));
}

TEST_CASE("GptqWeight::validate rejects inconsistent tensors, naming the field") {
  QuantizeOptions options;
  options.group_size = 32;
  options.act_order = true;
  std::mt19937_64 rng(quanteval::test::test_seed());
  const auto dense = quanteval::test::random_floats(rng, 16 * 64);
  auto owned = quantize_reference(dense, 16, 64, options);
  CHECK(message_of(owned.weight).empty());

  auto broken = owned.weight;
  broken.qweight = broken.qweight.subspan(1);
  CHECK(message_of(broken).find("qweight") != std::string::npos);
  broken = owned.weight;
  broken.scales = broken.scales.subspan(0, 10);
  CHECK(message_of(broken).find("scales") != std::string::npos);
  broken = owned.weight;
  broken.qzeros = {};
  CHECK(message_of(broken).find("qzeros") != std::string::npos);
  broken = owned.weight;
  broken.g_idx = broken.g_idx.subspan(0, 63);
  CHECK(message_of(broken).find("g_idx") != std::string::npos);
  broken = owned.weight;
  broken.group_size = 48;  // does not divide 64
  CHECK(message_of(broken).find("group_size") != std::string::npos);
  broken = owned.weight;
  broken.bits = 8;
  CHECK(message_of(broken).find("bits") != std::string::npos);
  broken = owned.weight;
  broken.in_features = 60;
  CHECK(message_of(broken).find("in_features") != std::string::npos);
  broken = owned.weight;
  broken.out_features = 12;
  CHECK(message_of(broken).find("out_features") != std::string::npos);

  owned.g_idx[5] = 2;  // G = 2: out of range
  CHECK(message_of(owned.weight).find("g_idx[5] = 2") != std::string::npos);
  owned.g_idx[5] = -1;
  CHECK(message_of(owned.weight).find("g_idx") != std::string::npos);
  CHECK_THROWS_AS(dequantize_reference(owned.weight), std::invalid_argument);
}

TEST_CASE("quantize_reference -> dequantize_reference stays within scale/2") {
  std::mt19937_64 rng(quanteval::test::test_seed() + 1);
  const int n = 24, k = 256;
  auto dense = quanteval::test::random_floats(rng, static_cast<size_t>(n) * k, -2.0f, 2.0f);
  for (int i = 0; i < 8; ++i) dense[i] = std::fabs(dense[i]);  // part of a group all positive (v1 zero edge)
  for (int group_size : {32, 64, 128, -1}) {
    for (bool act_order : {false, true}) {
      for (bool sym : {true, false}) {
        for (GptqFormat format : {GptqFormat::v1, GptqFormat::v2}) {
          for (ScaleFormat scale_format : {ScaleFormat::f16, ScaleFormat::bf16}) {
            QuantizeOptions options{group_size, act_order, sym, format, scale_format, rng()};
            CAPTURE(group_size);
            CAPTURE(act_order);
            CAPTURE(sym);
            CAPTURE(static_cast<int>(format));
            CAPTURE(static_cast<int>(scale_format));
            const auto owned = quantize_reference(dense, n, k, options);
            CHECK(owned.weight.g_idx.empty() == !act_order);
            const auto restored = dequantize_reference(owned.weight);
            int bad = 0;
            for (int row = 0; row < n; ++row) {
              for (int col = 0; col < k; ++col) {
                const int g = owned.weight.group_of(col);
                const float half_step = owned.weight.scale(g, row) * 0.5f;
                const float error = std::fabs(restored[row * k + col] - dense[row * k + col]);
                if (!(error <= half_step * (1.0f + 1e-6f))) ++bad;
                if (sym && owned.weight.zero(g, row) != 8) ++bad;
              }
            }
            CHECK(bad == 0);
          }
        }
      }
    }
  }
}
