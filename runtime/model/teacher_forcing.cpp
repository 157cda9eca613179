#include "runtime/model/teacher_forcing.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace quanteval::runtime {

TeacherForcedLogits::TeacherForcedLogits(Model& model, std::span<const TokenId> ids, std::int64_t chunk_tokens)
    : model_(model), ids_(ids.begin(), ids.end()), chunk_tokens_(chunk_tokens) {
  if (chunk_tokens < 1)
    throw std::invalid_argument(fmt::format("teacher forcing: chunk of {} tokens (need >= 1)", chunk_tokens));
  model_.check_tokens(ids_);
  state_ = model_.open_sequence(size());
}

std::vector<float> TeacherForcedLogits::next_chunk() {
  if (done()) throw std::logic_error("teacher forcing: next_chunk() after the last position");
  const std::int64_t rows = std::min(chunk_tokens_, size() - position_);
  const Model::Step step{
      state_.get(),
      std::span<const TokenId>(ids_).subspan(static_cast<std::size_t>(position_), static_cast<std::size_t>(rows)),
      true};
  std::vector<float> logits = model_.forward(std::span<const Model::Step>(&step, 1));
  position_ += rows;
  return logits;
}

}  // namespace quanteval::runtime
