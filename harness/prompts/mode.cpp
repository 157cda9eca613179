#include "harness/prompts/mode.hpp"

#include "harness/common/enum_names.hpp"

namespace quanteval::harness {

namespace {
constexpr EnumName<Mode> kModeNames[] = {{Mode::standard, "standard"}, {Mode::thinking, "thinking"}};
}  // namespace

std::string_view to_string(Mode mode) { return name_of(kModeNames, mode); }
std::optional<Mode> parse_mode(std::string_view name) { return value_named(kModeNames, name); }

}  // namespace quanteval::harness
