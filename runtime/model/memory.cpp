#include "runtime/model/memory.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace quanteval::runtime {

std::uint64_t MemoryShape::kv_bytes_per_token() const {
  return 2ull * static_cast<std::uint64_t>(kv_layers) * static_cast<std::uint64_t>(kv_heads) *
         static_cast<std::uint64_t>(head_dim) * static_cast<std::uint64_t>(bytes_per_float);
}

std::uint64_t MemoryShape::slot_bytes() const {
  return static_cast<std::uint64_t>(state_layers) * static_cast<std::uint64_t>(conv_floats + recurrent_floats) *
         static_cast<std::uint64_t>(bytes_per_float);
}

std::uint64_t MemoryPlan::bytes() const {
  return static_cast<std::uint64_t>(blocks) * shape.kv_bytes_per_block() +
         static_cast<std::uint64_t>(slots) * shape.slot_bytes();
}

std::uint64_t device_memory_budget(std::uint64_t free_bytes, std::uint64_t total_bytes, double utilization,
                                   std::uint64_t reserve_bytes) {
  if (!(utilization > 0 && utilization <= 1))
    throw std::invalid_argument(fmt::format("GPU memory utilization must be in (0, 1] (got {})", utilization));
  if (free_bytes > total_bytes)
    throw std::invalid_argument(fmt::format("device reports {} bytes free of {}", free_bytes, total_bytes));
  const double allowed = utilization * static_cast<double>(total_bytes);
  const double used = static_cast<double>(total_bytes - free_bytes) + static_cast<double>(reserve_bytes);
  if (allowed <= used)
    throw std::invalid_argument(fmt::format(
        "no GPU memory left for the model memory: {:.0f}% of {} MiB allowed, {} MiB already in use (weights, "
        "context, other processes) and {} MiB kept for step scratch; raise --gpu-memory-utilization or use a "
        "smaller --kv-cache-mb",
        100 * utilization, total_bytes >> 20, (total_bytes - free_bytes) >> 20, reserve_bytes >> 20));
  return static_cast<std::uint64_t>(allowed - used);
}

MemoryPlan plan_memory(const MemoryShape& shape, std::uint64_t budget_bytes, int max_sequences) {
  if (shape.block_tokens <= 0 || shape.kv_layers < 0 || shape.kv_heads < 0 || shape.head_dim < 0 ||
      shape.state_layers < 0 || max_sequences < 1)
    throw std::invalid_argument("plan_memory: invalid memory shape");
  MemoryPlan plan;
  plan.shape = shape;
  const std::uint64_t block = shape.kv_bytes_per_block(), slot = shape.slot_bytes();
  if (shape.recurrent()) {
    if (budget_bytes < slot + block)
      throw std::invalid_argument(fmt::format(
          "memory budget of {} bytes cannot hold one sequence's recurrent state ({} bytes) and one K/V block of {} "
          "tokens ({} bytes)",
          budget_bytes, slot, shape.block_tokens, block));
    // One slot per sequence that may run at once, but always leave the K/V at
    // least as much room as the slots take (a slot without positions is useless).
    const std::uint64_t most_slots = budget_bytes / 2 / slot;
    plan.slots = static_cast<int>(std::clamp<std::uint64_t>(most_slots, 1, static_cast<std::uint64_t>(max_sequences)));
  }
  if (block == 0) {
    // No attention layers: blocks only count positions (2^16 blocks of bookkeeping).
    plan.blocks = 1 << 16;
  } else {
    plan.blocks = static_cast<std::int64_t>((budget_bytes - static_cast<std::uint64_t>(plan.slots) * slot) / block);
    if (plan.blocks == 0)
      throw std::invalid_argument(
          fmt::format("memory budget of {} bytes is smaller than one K/V block of {} tokens "
                      "({} bytes)",
                      budget_bytes, shape.block_tokens, block));
  }
  return plan;
}

SequenceState::~SequenceState() {
  if (memory_) memory_->release(*this);
}

HybridMemory::HybridMemory(MemoryPlan plan) : plan_(plan) {
  // Highest first so that pop_back hands out low numbers first (easier to read in a debugger).
  free_blocks_.reserve(static_cast<std::size_t>(plan_.blocks));
  for (std::int64_t b = plan_.blocks - 1; b >= 0; --b) free_blocks_.push_back(static_cast<std::int32_t>(b));
  for (int s = plan_.slots - 1; s >= 0; --s) free_slots_.push_back(s);
}

std::int64_t HybridMemory::free_blocks() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::int64_t>(free_blocks_.size());
}

int HybridMemory::free_slots() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(free_slots_.size());
}

bool HybridMemory::fits(std::int64_t tokens) const {
  return tokens > 0 && plan_.shape.blocks_for(tokens) <= plan_.blocks && (!plan_.shape.recurrent() || plan_.slots > 0);
}

std::unique_ptr<SequenceState> HybridMemory::try_admit(std::int64_t tokens) {
  const std::int64_t needed = plan_.shape.blocks_for(tokens);
  std::lock_guard lock(mutex_);
  if (needed > static_cast<std::int64_t>(free_blocks_.size())) return nullptr;
  if (plan_.shape.recurrent() && free_slots_.empty()) return nullptr;
  std::unique_ptr<SequenceState> state(new SequenceState());
  state->memory_ = this;
  state->capacity_ = tokens;
  for (std::int64_t i = 0; i < needed; ++i) {
    state->blocks_.push_back(free_blocks_.back());
    free_blocks_.pop_back();
  }
  if (plan_.shape.recurrent()) {
    state->slot_ = free_slots_.back();
    free_slots_.pop_back();
  }
  return state;
}

void HybridMemory::release(SequenceState& state) {
  std::lock_guard lock(mutex_);
  free_blocks_.insert(free_blocks_.end(), state.blocks_.begin(), state.blocks_.end());
  state.blocks_.clear();
  if (state.slot_ >= 0) free_slots_.push_back(state.slot_);
  state.slot_ = -1;
}

}  // namespace quanteval::runtime
