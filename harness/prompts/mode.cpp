#include "harness/prompts/mode.hpp"

namespace quanteval::harness {

std::string_view to_string(Mode mode) {
  switch (mode) {
    case Mode::standard: return "standard";
    case Mode::thinking: return "thinking";
  }
  return "unknown";
}

std::optional<Mode> parse_mode(std::string_view name) {
  for (Mode mode : all_modes)
    if (to_string(mode) == name) return mode;
  return std::nullopt;
}

}  // namespace quanteval::harness
