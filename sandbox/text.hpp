#pragma once
// Internal: program-controlled bytes made safe to hand on as text. Everything
// the sandbox puts into a Result's text fields goes through here, so a report
// writer that insists on valid UTF-8 (nlohmann::json::dump does) never throws
// because of what a program printed or raised.
#include <cstddef>
#include <string>
#include <string_view>

namespace quanteval::sandbox::detail {

// `bytes` with every ill-formed sequence replaced by U+FFFD, one per maximal
// ill-formed subpart (the Unicode "substitution of maximal subparts" practice,
// as Python's decode('utf-8', 'replace') does). Overlong forms and code points
// above U+10FFFF are ill-formed; a surrogate encoded as if it were a code point
// (ED A0..BF xx, how a lone surrogate leaves Python with 'surrogatepass') is
// ill-formed too and becomes a single U+FFFD.
std::string valid_utf8(std::string_view bytes);

// The longest prefix of valid UTF-8 `text` that fits in max_bytes and ends on a
// character boundary.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

// valid_utf8(bytes) cut to at most max_bytes on a character boundary; `cut` is
// set when something was dropped.
std::string bounded_text(std::string_view bytes, std::size_t max_bytes, bool* cut = nullptr);

}  // namespace quanteval::sandbox::detail
