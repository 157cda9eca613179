#pragma once
// Enumerations that files spell by name (run.json, samples.jsonl, ...): one
// table per enum serves both directions, so a name cannot be written one way
// and read another.
//
//   constexpr EnumName<Mode> kModeNames[] = {{Mode::standard, "standard"}, {Mode::thinking, "thinking"}};
//   name_of(kModeNames, Mode::thinking)  -> "thinking"
//   value_named(kModeNames, "standard")  -> Mode::standard
#include <cstddef>
#include <optional>
#include <string_view>

namespace quanteval::harness {

template <typename Enum>
struct EnumName {
  Enum value;
  std::string_view name;  // a string literal (so name.data() is NUL-terminated)
};

template <typename Enum, std::size_t N>
constexpr std::string_view name_of(const EnumName<Enum> (&table)[N], Enum value) {
  for (const auto& entry : table)
    if (entry.value == value) return entry.name;
  return "unknown";
}

template <typename Enum, std::size_t N>
constexpr std::optional<Enum> value_named(const EnumName<Enum> (&table)[N], std::string_view name) {
  for (const auto& entry : table)
    if (entry.name == name) return entry.value;
  return std::nullopt;
}

}  // namespace quanteval::harness
