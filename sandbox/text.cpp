#include "sandbox/text.hpp"

namespace quanteval::sandbox::detail {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

// Length of the well-formed sequence starting at text[at], or 0 when the bytes
// there are ill-formed; `subpart` then receives how many bytes one U+FFFD
// replaces (at least 1). Table 3-7 of the Unicode standard, written out.
std::size_t sequence_length(std::string_view text, std::size_t at, std::size_t& subpart) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[at + i]); };
  const std::size_t left = text.size() - at;
  const unsigned char lead = byte(0);
  subpart = 1;
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char second_low = 0x80, second_high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_low = 0xA0;   // no overlong forms
    if (lead == 0xED) second_high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_low = 0x90;   // no overlong forms
    if (lead == 0xF4) second_high = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;  // C0, C1, F5..FF, or a stray continuation byte
  }
  for (std::size_t i = 1; i < length; ++i) {
    if (i >= left) return 0;  // cut short: the lead and the continuations seen form one subpart
    const unsigned char next = byte(i);
    const bool fits = i == 1 ? (next >= second_low && next <= second_high) : is_continuation(next);
    if (!fits) return 0;
    subpart = i + 1;
  }
  return length;
}

// ED A0..BF 80..BF: a UTF-16 surrogate written as if it were a code point
// (what Python's 'surrogatepass' produces for a lone surrogate). It stands for
// one character, so it becomes one U+FFFD rather than three.
bool is_encoded_surrogate(std::string_view text, std::size_t at) {
  if (at + 3 > text.size()) return false;
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[at + i]); };
  return byte(0) == 0xED && byte(1) >= 0xA0 && byte(1) <= 0xBF && is_continuation(byte(2));
}

}  // namespace

std::string valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t at = 0;
  while (at < bytes.size()) {
    if (is_encoded_surrogate(bytes, at)) {
      out.append(kReplacement);
      at += 3;
      continue;
    }
    std::size_t subpart = 1;
    const std::size_t length = sequence_length(bytes, at, subpart);
    if (length > 0) {
      out.append(bytes.substr(at, length));
      at += length;
    } else {
      out.append(kReplacement);
      at += subpart;
    }
  }
  return out;
}

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  while (end > 0 && is_continuation(static_cast<unsigned char>(text[end]))) --end;
  return text.substr(0, end);
}

std::string bounded_text(std::string_view bytes, std::size_t max_bytes, bool* cut) {
  std::string text = valid_utf8(bytes);
  const std::size_t kept = utf8_prefix(text, max_bytes).size();
  if (cut) *cut = kept < text.size();
  text.resize(kept);
  return text;
}

}  // namespace quanteval::sandbox::detail
