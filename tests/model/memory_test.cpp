// The hybrid memory's plan and admission rule: one budget for K/V blocks and
// recurrent state slots, never exceeded; a sequence is admitted only with its
// blocks and (for recurrent models) a slot, and both come back when it ends.
#include <doctest/doctest.h>

#include <vector>

#include "runtime/model/memory.hpp"

using namespace quanteval::runtime;

namespace {

MemoryShape hybrid_shape() {
  MemoryShape shape;
  shape.block_tokens = 16;
  shape.kv_layers = 2;
  shape.kv_heads = 2;
  shape.head_dim = 64;  // 2 x 2 x 2 x 64 x 4 = 2 KiB per token, 32 KiB per block
  shape.state_layers = 3;
  shape.conv_floats = 3 * 384;
  shape.recurrent_floats = 4 * 32 * 32;  // 3 x (1152 + 4096) x 4 = 62976 bytes per slot
  return shape;
}

}  // namespace

TEST_CASE("plan_memory: the plan never exceeds the budget; slots are capped by the sequences that may run") {
  const MemoryShape shape = hybrid_shape();
  CHECK(shape.kv_bytes_per_block() == 32768);
  CHECK(shape.slot_bytes() == 62976);
  for (const std::uint64_t budget :
       std::vector<std::uint64_t>{shape.slot_bytes() + shape.kv_bytes_per_block(), 1ull << 20, 5ull << 20, 64ull << 20})
    for (int sequences : {1, 4, 64}) {
      CAPTURE(budget);
      CAPTURE(sequences);
      const MemoryPlan plan = plan_memory(shape, budget, sequences);
      CHECK(plan.bytes() <= budget);
      CHECK(plan.slots >= 1);
      CHECK(plan.slots <= sequences);
      CHECK(plan.blocks >= 1);
      // The state never takes more than half of a budget that can spare it.
      if (plan.slots > 1) CHECK(static_cast<std::uint64_t>(plan.slots) * shape.slot_bytes() <= budget / 2);
    }
  CHECK_THROWS_AS(plan_memory(shape, shape.slot_bytes(), 4), std::invalid_argument);
  MemoryShape attention_only = shape;
  attention_only.state_layers = 0;
  const MemoryPlan plan = plan_memory(attention_only, 1ull << 20, 8);
  CHECK(plan.slots == 0);
  CHECK(plan.blocks == 32);
}

TEST_CASE("HybridMemory: admission needs blocks and a slot; release gives both back") {
  const MemoryShape shape = hybrid_shape();
  const MemoryPlan plan = plan_memory(shape, 8 * shape.slot_bytes(), 2);  // 2 slots, the rest (11) blocks
  REQUIRE(plan.slots == 2);
  HybridMemory memory(plan);
  CHECK(memory.fits(plan.capacity_tokens()));
  CHECK_FALSE(memory.fits(plan.capacity_tokens() + 1));
  auto a = memory.try_admit(20);  // 2 blocks
  auto b = memory.try_admit(20);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->slot() != b->slot());
  CHECK(memory.free_slots() == 0);
  CHECK_FALSE(memory.try_admit(1));  // blocks free, but no slot
  const std::int64_t free_blocks = memory.free_blocks();
  a.reset();
  CHECK(memory.free_slots() == 1);
  CHECK(memory.free_blocks() == free_blocks + 2);
  auto c = memory.try_admit(20);
  REQUIRE(c);
  CHECK(c->blocks().size() == 2);
}

TEST_CASE("device_memory_budget: utilization of the total, minus what is in use and the scratch reserve") {
  using quanteval::runtime::device_memory_budget;
  constexpr std::uint64_t GiB = std::uint64_t{1} << 30;
  // An H200-sized device with a 16 GiB model loaded: 90% of 140 GiB = 126, minus 16 + 1 (context) used, minus 2.
  CHECK(device_memory_budget(123 * GiB, 140 * GiB, 0.9, 2 * GiB) == 107 * GiB);
  CHECK(device_memory_budget(140 * GiB, 140 * GiB, 1.0, 0) == 140 * GiB);
  // Another process holding memory counts as used.
  CHECK(device_memory_budget(60 * GiB, 140 * GiB, 0.9, 2 * GiB) == 44 * GiB);
  // Nothing left: a clear error naming the numbers.
  CHECK_THROWS_WITH_AS(device_memory_budget(10 * GiB, 140 * GiB, 0.9, 2 * GiB),
                       doctest::Contains("--gpu-memory-utilization"), std::invalid_argument);
  CHECK_THROWS_AS(device_memory_budget(10 * GiB, 140 * GiB, 0.0, 0), std::invalid_argument);
  CHECK_THROWS_AS(device_memory_budget(10 * GiB, 140 * GiB, 1.5, 0), std::invalid_argument);
  CHECK_THROWS_AS(device_memory_budget(150 * GiB, 140 * GiB, 0.9, 0), std::invalid_argument);
}
