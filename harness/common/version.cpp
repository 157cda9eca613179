#include "harness/common/version.hpp"

namespace quanteval::harness {

std::string tool_version() { return QUANTEVAL_VERSION; }

}  // namespace quanteval::harness
