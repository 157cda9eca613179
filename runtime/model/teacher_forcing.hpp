#pragma once
// Teacher forcing in chunks: the full-vocabulary logits of every position of a
// fixed token sequence, delivered `chunk_tokens` positions at a time. The
// sequence's K/V and recurrent state carry over between chunks, so chunk k is
// exactly what one long prefill would give for its rows, while the logits held
// at any moment are [chunk, vocab] instead of [T, vocab] (151936 floats a
// position for Qwen: 0.6 MB, so a 4096-token thinking trace at once would be 2.5 GB).
//
//   TeacherForcedLogits scorer(model, ids, 64);
//   while (!scorer.done()) {
//     const std::int64_t first = scorer.next_position();
//     std::vector<float> logits = scorer.next_chunk();  // rows first.. of [rows, vocab]
//   }
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/model/model.hpp"

namespace quanteval::runtime {

class TeacherForcedLogits {
 public:
  // Opens one sequence with room for all of `ids` (throws ModelInputError when
  // the ids are bad or can never fit, or when the model's memory is full now).
  TeacherForcedLogits(Model& model, std::span<const TokenId> ids, std::int64_t chunk_tokens);

  std::int64_t size() const { return static_cast<std::int64_t>(ids_.size()); }  // T
  std::int64_t next_position() const { return position_; }
  bool done() const { return position_ == size(); }

  // Feeds the next min(chunk, T - next_position()) tokens and returns their
  // logits [rows, vocab] row-major: row r is the model's distribution of the
  // token after position next_position() + r. Throws std::logic_error when done().
  std::vector<float> next_chunk();

 private:
  Model& model_;
  std::vector<TokenId> ids_;  // [T], copied so the caller's buffer may go
  std::int64_t chunk_tokens_;
  std::int64_t position_ = 0;
  std::unique_ptr<SequenceState> state_;
};

}  // namespace quanteval::runtime
