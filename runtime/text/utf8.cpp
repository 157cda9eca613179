// UTF-8 decoding with replacement, shared by Tokenizer::decode and the
// streaming decoder. The rule is the one Rust's String::from_utf8_lossy (and
// Python's bytes.decode(errors="replace")) follow, "substitution of maximal
// subparts": each maximal prefix of a would-be-valid sequence that cannot be
// completed becomes exactly one U+FFFD. Matching that rule exactly is what
// makes our decode of a partial multibyte character equal to transformers'.
#include "runtime/text/utf8.hpp"

#include <utf8proc.h>

namespace quanteval::runtime {

namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

struct LeadByteRule {
  int length = 0;                    // 0: never valid as a lead byte
  unsigned char second_low = 0x80;   // allowed range of the second byte; narrower
  unsigned char second_high = 0xBF;  // than 80..BF where overlongs/surrogates hide
};

LeadByteRule lead_byte_rule(unsigned char lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};  // excludes overlong 3-byte forms
  if (lead == 0xED) return {3, 0x80, 0x9F};  // excludes UTF-16 surrogates
  if (lead >= 0xE1 && lead <= 0xEF) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};  // excludes overlong 4-byte forms
  if (lead >= 0xF1 && lead <= 0xF3) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};  // caps at U+10FFFF
  return {};
}

}  // namespace

void append_code_point(std::string& out, char32_t code_point) {
  utf8proc_uint8_t bytes[4];
  const auto value = static_cast<utf8proc_int32_t>(code_point);
  if (!utf8proc_codepoint_valid(value)) {
    out += kReplacementCharacter;
    return;
  }
  const utf8proc_ssize_t length = utf8proc_encode_char(value, bytes);
  out.append(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(length));
}

std::size_t append_utf8_lossy(std::string_view bytes, std::string& out, bool final) {
  const std::size_t size = bytes.size();
  std::size_t position = 0;
  while (position < size) {
    const auto lead = static_cast<unsigned char>(bytes[position]);
    if (lead < 0x80) {
      // Copy the whole ASCII run at once; it is the common case.
      std::size_t run_end = position + 1;
      while (run_end < size && static_cast<unsigned char>(bytes[run_end]) < 0x80) ++run_end;
      out.append(bytes.substr(position, run_end - position));
      position = run_end;
      continue;
    }
    const LeadByteRule rule = lead_byte_rule(lead);
    if (rule.length == 0) {
      out.append(kReplacementCharacter);
      ++position;
      continue;
    }
    int valid_length = 1;  // bytes of this sequence checked so far
    bool truncated = false;
    while (valid_length < rule.length) {
      if (position + valid_length >= size) {
        truncated = true;
        break;
      }
      const auto continuation = static_cast<unsigned char>(bytes[position + valid_length]);
      const unsigned char low = valid_length == 1 ? rule.second_low : 0x80;
      const unsigned char high = valid_length == 1 ? rule.second_high : 0xBF;
      if (continuation < low || continuation > high) break;
      ++valid_length;
    }
    if (valid_length == rule.length) {
      out.append(bytes.substr(position, valid_length));
      position += valid_length;
    } else if (truncated && !final) {
      return position;  // may still be completed by bytes that come later
    } else {
      out.append(kReplacementCharacter);
      position += valid_length;
    }
  }
  return position;
}

}  // namespace quanteval::runtime
