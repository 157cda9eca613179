// CPU-only checks of the CUDA INT4 GEMM's packed layout (runtime/kernels/cuda/marlin_layout.hpp):
// the index maps are a bijection that agrees with the mma fragment rule, a weight
// repacked on the host and read back the way the kernel reads it equals the GPTQ
// reference dequantization (act-order included), the magic-number dequantizer is
// exact for every nibble, invalid shapes are rejected, and the stream-K partition
// covers every iteration exactly once with consistent reduction bookkeeping.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/base/numeric.hpp"
#include "runtime/checkpoint/gptq.hpp"
#include "runtime/kernels/cuda/marlin_layout.hpp"

using namespace quanteval::runtime;
namespace mk = quanteval::runtime::marlin;

namespace {

uint64_t fresh_seed() {
  const uint64_t seed = std::random_device{}();
  std::printf("test_marlin_layout seed %llu\n", static_cast<unsigned long long>(seed));
  return seed;
}

std::vector<float> random_weights(int n, int k, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n) * k);
  for (float& v : w) v = normal(rng);
  return w;
}

float round_to(float v, bool bf16) { return bf16 ? bf16_to_float(float_to_bf16(v)) : f16_to_float(float_to_f16(v)); }

std::string rejection(const GptqWeight& w) {
  try {
    mk::validate_for_kernel(w);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("tile_coordinate is the inverse of packed_slot and follows the mma B fragment rule") {
  std::set<std::pair<int, int>> seen;
  for (int lane = 0; lane < 32; ++lane) {
    for (int word = 0; word < mk::kWordsPerLane; ++word) {
      for (int nibble = 0; nibble < 8; ++nibble) {
        const mk::TileCoordinate c = mk::tile_coordinate(lane, word, nibble);
        REQUIRE(c.k >= 0);
        REQUIRE(c.k < 16);
        REQUIRE(c.n >= 0);
        REQUIRE(c.n < 64);
        seen.insert({c.k, c.n});
        // Fragment rule, written independently: B column = lane / 4; register r of
        // sub-tile holds k = 2 (lane % 4) + 8 r (+1 for the high half).
        const int pair = nibble % 4, half = nibble / 4;
        CHECK(c.n % 8 == lane / 4);
        CHECK(c.n / 8 == 2 * word + pair / 2);
        CHECK(c.k == 2 * (lane % 4) + 8 * (pair % 2) + half);
        // The forward map sends it back to the same slot (tile 0 of a 64-wide matrix).
        const mk::NibbleSlot slot = mk::packed_slot(c.k, c.n, 64);
        CHECK(slot.word == lane * mk::kWordsPerLane + word);
        CHECK(slot.shift == 4 * nibble);
      }
    }
  }
  CHECK(seen.size() == 16u * 64u);  // every (k, n) of the tile exactly once
}

TEST_CASE("packed_slot and scale_slot are bijections over whole matrices") {
  const int k_total = 256, n_total = 192;
  std::vector<int> hits(static_cast<size_t>(k_total) * n_total / 8 * 8, 0);
  std::vector<int> word_hits(static_cast<size_t>(k_total) * n_total / 8, 0);
  std::set<int64_t> nibble_slots;
  for (int k = 0; k < k_total; ++k)
    for (int n = 0; n < n_total; ++n) {
      const mk::NibbleSlot s = mk::packed_slot(k, n, n_total);
      REQUIRE(s.word >= 0);
      REQUIRE(s.word < static_cast<int64_t>(word_hits.size()));
      nibble_slots.insert(s.word * 8 + s.shift / 4);
    }
  CHECK(nibble_slots.size() == static_cast<size_t>(k_total) * n_total);
  std::set<int64_t> scale_slots;
  for (int g = 0; g < 3; ++g)
    for (int n = 0; n < n_total; ++n) {
      const int64_t s = mk::scale_slot(g, n, n_total);
      scale_slots.insert(s);
      CHECK(mk::scale_column_in_tile(static_cast<int>(s % 64)) == n % 64);
      CHECK(s / 64 == g * (n_total / 64) + n / 64);
    }
  CHECK(scale_slots.size() == 3u * n_total);
  CHECK(*scale_slots.rbegin() == 3 * n_total - 1);
}

TEST_CASE("magic-number dequantization is exact for every nibble in both types") {
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    for (int q = 0; q < 16; ++q) {
      for (int position = 0; position < 8; ++position) {
        // A word with q at `position` and a different value everywhere else, so a
        // pair that reads the wrong nibble shows.
        uint32_t word = 0;
        for (int i = 0; i < 8; ++i) word |= static_cast<uint32_t>(i == position ? q : (q + 5 + i) % 16) << (4 * i);
        const int pair = position % 4;
        float low = 0, high = 0;
        mk::dequantize_pair_emulated(word, pair, bf16 != 0, low, high);
        CHECK((position < 4 ? low : high) == static_cast<float>(q - 8));
      }
    }
  }
}

TEST_CASE("repack on the host, read back as the kernel does, equals the GPTQ reference") {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  struct Case {
    int k, n, group;
    bool act_order;
    GptqFormat format;
    ScaleFormat scale_format;
  };
  const std::vector<Case> cases = {
      {128, 64, 32, false, GptqFormat::v1, ScaleFormat::f16},  {256, 128, 64, true, GptqFormat::v1, ScaleFormat::f16},
      {384, 192, 128, true, GptqFormat::v2, ScaleFormat::f16}, {256, 64, -1, false, GptqFormat::v1, ScaleFormat::bf16},
      {512, 320, 16, true, GptqFormat::v2, ScaleFormat::bf16}, {256, 128, 256, false, GptqFormat::v1, ScaleFormat::f16},
  };
  for (const Case& c : cases) {
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      CAPTURE(c.k);
      CAPTURE(c.n);
      CAPTURE(c.group);
      CAPTURE(c.act_order);
      CAPTURE(bf16);
      QuantizeOptions options;
      options.group_size = c.group;
      options.act_order = c.act_order;
      options.format = c.format;
      options.scale_format = c.scale_format;
      options.seed = rng();
      const std::vector<float> original = random_weights(c.n, c.k, rng);
      const OwnedGptqWeight owned = quantize_reference(original, c.n, c.k, options);
      const GptqWeight& w = owned.weight;
      REQUIRE_NOTHROW(mk::validate_for_kernel(w));

      const std::vector<int32_t> perm = mk::group_sorted_rows(w);
      CHECK(mk::is_identity(perm) == !c.act_order);
      const int group = mk::effective_group_size(w);
      for (int kp = 0; kp < c.k; ++kp) REQUIRE(w.group_of(perm[kp]) == kp / group);  // groups contiguous

      const std::vector<uint32_t> packed = mk::repack_weights(w, perm);
      const std::vector<uint16_t> scales = mk::repack_scales(w, bf16 != 0);
      const std::vector<float> seen = mk::unpack_as_kernel(packed, scales, perm, c.k, c.n, group, bf16 != 0);
      const std::vector<float> reference = dequantize_reference(w);
      REQUIRE(seen.size() == reference.size());
      int mismatches = 0;
      for (int n = 0; n < c.n; ++n) {
        for (int k = 0; k < c.k; ++k) {
          const size_t i = static_cast<size_t>(n) * c.k + k;
          // Exactly what the kernel multiplies: scale rounded to the activation type,
          // times (q - 8), rounded once more.
          const int g = w.group_of(k);
          const float scale = round_to(w.scale(g, n), bf16 != 0);
          const float expected = round_to(scale * static_cast<float>(w.quant(k, n) - 8), bf16 != 0);
          if (seen[i] != expected) ++mismatches;
          // And within two roundings of the fp32 reference.
          const float unit = bf16 ? 0x1p-8f : 0x1p-11f;
          if (std::fabs(seen[i] - reference[i]) > 2.01f * unit * std::fabs(reference[i])) ++mismatches;
        }
      }
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("validate_for_kernel rejects shapes the kernel cannot take, naming the shape") {
  std::mt19937_64 rng(7);
  auto make = [&](int k, int n, int group, bool sym) {
    QuantizeOptions options;
    options.group_size = group;
    options.sym = sym;
    return quantize_reference(random_weights(n, k, rng), n, k, options);
  };
  {
    const OwnedGptqWeight w = make(192, 64, 64, true);  // K not a multiple of 128
    const std::string message = rejection(w.weight);
    CHECK(message.find("K=192") != std::string::npos);
    CHECK(message.find("multiple of 128") != std::string::npos);
  }
  {
    const OwnedGptqWeight w = make(128, 72, 32, true);  // N not a multiple of 64
    CHECK(rejection(w.weight).find("N=72") != std::string::npos);
  }
  {
    const OwnedGptqWeight w = make(384, 64, 48, true);  // group 48 does not tile a k-block
    CHECK(rejection(w.weight).find("group size") != std::string::npos);
  }
  {
    const OwnedGptqWeight w = make(256, 64, 64, false);  // asymmetric zeros
    CHECK(rejection(w.weight).find("symmetric") != std::string::npos);
  }
  {
    OwnedGptqWeight w = make(256, 64, 128, true);  // act-order with unequal groups
    w.g_idx.assign(256, 0);
    w.g_idx[0] = 1;
    w.refresh_views();
    CHECK(rejection(w.weight).find("exactly 128 per group") != std::string::npos);
  }
  {
    const OwnedGptqWeight w = make(256, 128, -1, true);
    CHECK(rejection(w.weight).empty());
  }
}

TEST_CASE("stream-K partition: every iteration once, reduction slots and counts consistent") {
  for (int64_t strips : {1, 3, 40, 136}) {
    for (int64_t ktiles : {1, 2, 40, 136}) {
      for (int64_t blocks : {1, 7, 132, 264}) {
        // The kernel's partition carries reciprocals (division-free on the GPU); every map must
        // equal the plain integer-division one.
        const mk::StreamKPartition plain{strips, ktiles, std::min<int64_t>(blocks, strips * ktiles)};
        const mk::StreamKPartition p = plain.with_reciprocals();
        for (int64_t b = 0; b <= p.blocks; ++b) REQUIRE(p.begin(b) == plain.begin(b));
        for (int64_t i = 0; i < p.total(); ++i) REQUIRE(p.block_of(i) == plain.block_of(i));
        CAPTURE(strips);
        CAPTURE(ktiles);
        CAPTURE(p.blocks);
        std::vector<int> covered(p.total(), 0);
        for (int64_t b = 0; b < p.blocks; ++b) {
          REQUIRE(p.end(b) > p.begin(b));  // no empty block when blocks <= total
          for (int64_t i = p.begin(b); i < p.end(b); ++i) {
            ++covered[i];
            REQUIRE(p.block_of(i) == b);
          }
        }
        for (int c : covered) REQUIRE(c == 1);
        for (int64_t s = 0; s < strips; ++s) {
          const int64_t first = p.first_block(s), last = p.last_block(s);
          // Every block in [first, last] touches the strip; the slots are distinct per block,
          // and a block uses slot 1 only for a segment that ends its range.
          if (first == last) continue;  // one block covers the whole strip: written directly
          std::set<std::pair<int64_t, int>> slots;
          for (int64_t b = first; b <= last; ++b) {
            REQUIRE(p.begin(b) < (s + 1) * ktiles);
            REQUIRE(p.end(b) > s * ktiles);
            const int slot = p.slot(b, s);
            if (slot == 1) REQUIRE(p.end(b) <= (s + 1) * ktiles);
            slots.insert({b, slot});
          }
          REQUIRE(slots.size() == static_cast<size_t>(last - first + 1));
        }
        // A block's partial segments must use different slots, or one would overwrite the other.
        for (int64_t b = 0; b < p.blocks; ++b) {
          int zero_slots = 0, one_slots = 0;
          for (int64_t s = p.begin(b) / ktiles; s <= (p.end(b) - 1) / ktiles; ++s) {
            const bool partial = p.first_block(s) != p.last_block(s);
            if (!partial) continue;
            (p.slot(b, s) == 0 ? zero_slots : one_slots)++;
          }
          REQUIRE(zero_slots <= 1);
          REQUIRE(one_slots <= 1);
        }
      }
    }
  }
}

TEST_CASE("StreamKPartition::divide is exact across the kernel's range") {
  std::mt19937_64 rng(fresh_seed());
  // Divisors up to 2^31 - 1 and dividends up to 2^62 (block * total, the largest product the
  // kernel forms), plus the edges where a double estimate would round across an integer.
  for (int trial = 0; trial < 200000; ++trial) {
    const int64_t d = 1 + static_cast<int64_t>(rng() % ((int64_t(1) << 31) - 1));
    const int64_t q = static_cast<int64_t>(rng() % (int64_t(1) << 31));
    const int64_t r = static_cast<int64_t>(rng() % d);
    for (const int64_t x : {q * d + r, q * d, q * d + d - 1}) {
      if (x < 0 || x >= (int64_t(1) << 62)) continue;
      REQUIRE(mk::StreamKPartition::divide(x, d, 1.0 / static_cast<double>(d)) == x / d);
    }
  }
}

TEST_CASE("plan_stream_k: one wave at most, small layers get fewer blocks, the cap wins") {
  // Qwen3.5-27B k_proj at M <= 16: 8 strips of 128 columns x 40 k-blocks of 128 rows.
  const mk::StreamKPartition fill = mk::plan_stream_k(8, 40, 132, 2, 1, 0);
  CHECK(fill.blocks == 264);  // the first version: every SM, ~1.2 k-blocks per block
  const mk::StreamKPartition four = mk::plan_stream_k(8, 40, 132, 2, 4, 0);
  CHECK(four.blocks == 80);  // >= 4 k-blocks per block
  // A wide layer is unaffected: gate_up fused, 272 strips x 40.
  CHECK(mk::plan_stream_k(272, 40, 132, 2, 4, 0).blocks == 264);
  // The test-only cap, and never more blocks than iterations.
  CHECK(mk::plan_stream_k(272, 40, 132, 2, 4, 7).blocks == 7);
  CHECK(mk::plan_stream_k(1, 1, 132, 2, 1, 0).blocks == 1);
  CHECK(mk::plan_stream_k(1, 3, 132, 2, 8, 0).blocks == 1);
  // Reciprocals are set: the kernel's divisions need them.
  CHECK(four.inverse_total > 0.0);
  CHECK(four.inverse_blocks > 0.0);
  CHECK_THROWS_AS(mk::plan_stream_k(8, 40, 132, 2, 0, 0), std::invalid_argument);
  CHECK_THROWS_AS(mk::plan_stream_k(8, 40, 132, 2, 1, -1), std::invalid_argument);
  CHECK_THROWS_AS(mk::plan_stream_k(0, 40, 132, 2, 1, 0), std::invalid_argument);
  CHECK_THROWS_AS(mk::plan_stream_k(1 << 20, 1 << 12, 132, 2, 1, 0), std::invalid_argument);  // 2^32 iterations
}

TEST_CASE("check_gemm_arguments rejects what marlin_gemm cannot take, naming the argument") {
  auto message = [](auto&& call) -> std::string {
    try {
      call();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  CHECK(message([] { mk::check_gemm_arguments(1, 5120, 1024, 4, 0, 256); }).empty());
  CHECK(message([] { mk::check_gemm_arguments(0, 5120, 1024, 4, 0, 256); }).find("m must be >= 1, got 0") !=
        std::string::npos);
  CHECK(message([] { mk::check_gemm_arguments(-5, 5120, 1024, 4, 0, 256); }).find("got -5") != std::string::npos);
  CHECK(message([] { mk::check_gemm_arguments(1, 5120, 1024, 0, 0, 256); }).find("min_kblocks_per_block") !=
        std::string::npos);
  CHECK(message([] { mk::check_gemm_arguments(1, 5120, 1024, 4, -1, 256); }).find("max_blocks") != std::string::npos);
  CHECK(message([] { mk::check_gemm_arguments(1, 5120, 1024, 4, 0, -1); }).find("dense_handover_m") !=
        std::string::npos);
}

TEST_CASE("KBlockCursor advanced one k-block at a time equals the division it replaces") {
  for (int ktiles : {1, 2, 3, 40, 80, 136}) {
    for (int ktiles_per_group : {1, 2, 5, 8, 40, 136}) {
      if (ktiles % ktiles_per_group != 0) continue;  // groups tile K
      for (int start : {0, 1, ktiles - 1, ktiles, 3 * ktiles + ktiles / 2}) {
        CAPTURE(ktiles);
        CAPTURE(ktiles_per_group);
        CAPTURE(start);
        mk::KBlockCursor c = mk::KBlockCursor::at(start, ktiles, ktiles_per_group);
        for (int i = start; i < start + 5 * ktiles + 7; ++i) {
          REQUIRE(c.strip == i / ktiles);
          REQUIRE(c.ktile == i % ktiles);
          REQUIRE(c.group == (i % ktiles) / ktiles_per_group);
          REQUIRE(c.ktile_in_group == (i % ktiles) % ktiles_per_group);
          c.advance(ktiles, ktiles_per_group);
        }
      }
    }
  }
}
