#pragma once
// Content hashes of the harness: the run configuration (run.json), prompt sets,
// chat templates, checkpoint identities, per-sample seeds and cache keys.
#include <string>
#include <string_view>

namespace quanteval::harness {

// SHA-256 of bytes, lower-case hex.
std::string sha256_hex(std::string_view bytes);

}  // namespace quanteval::harness
