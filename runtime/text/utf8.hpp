#pragma once
// UTF-8 for the text folder (the tokenizer and the chat-template engine):
// encoding code points, and decoding untrusted bytes with replacement.
#include <cstddef>
#include <string>
#include <string_view>

namespace quanteval::runtime {

// Appends the UTF-8 encoding of `code_point` (through utf8proc); a value that
// is not a Unicode scalar value (a surrogate, or past U+10FFFF) becomes U+FFFD.
void append_code_point(std::string& out, char32_t code_point);

// Appends `bytes` to `out`, replacing each maximal invalid subpart with U+FFFD.
// When `final` is false, a trailing sequence that is a valid but incomplete
// prefix of a character is not consumed; the return value is the number of
// bytes consumed.
std::size_t append_utf8_lossy(std::string_view bytes, std::string& out, bool final);

}  // namespace quanteval::runtime
