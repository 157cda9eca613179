#pragma once
#include <string>

namespace quanteval::harness {

// quanteval's version, as reports and `quanteval version` state it.
std::string tool_version();

}  // namespace quanteval::harness
