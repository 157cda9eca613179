#include "harness/generation/backend.hpp"

namespace quanteval::harness {

std::optional<FinishReason> parse_finish_reason(std::string_view name) {
  for (FinishReason reason : {FinishReason::length, FinishReason::stop, FinishReason::eos})
    if (name == runtime::to_string(reason)) return reason;
  return std::nullopt;
}

}  // namespace quanteval::harness
