#include "harness/generation/backend.hpp"

namespace quanteval::harness {

std::string_view to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::length: return "length";
    case FinishReason::stop: return "stop";
    case FinishReason::eos: return "eos";
  }
  return "unknown";
}

std::optional<FinishReason> parse_finish_reason(std::string_view name) {
  for (FinishReason reason : {FinishReason::length, FinishReason::stop, FinishReason::eos})
    if (to_string(reason) == name) return reason;
  return std::nullopt;
}

}  // namespace quanteval::harness
