// The UTF-8 repair every Result text field goes through (sandbox/text.hpp).
#include <doctest/doctest.h>

#include <string>

#include "sandbox/text.hpp"

using quanteval::sandbox::detail::bounded_text;
using quanteval::sandbox::detail::utf8_prefix;
using quanteval::sandbox::detail::valid_utf8;

namespace {
const std::string kFffd = "\xef\xbf\xbd";
}

TEST_CASE("valid UTF-8 passes unchanged, every length of character included") {
  const std::string text = "a \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf";
  CHECK(valid_utf8(text) == text);
  CHECK(valid_utf8("") == "");
}

TEST_CASE("ill-formed sequences become U+FFFD, one per maximal subpart") {
  CHECK(valid_utf8("\xff") == kFffd);
  CHECK(valid_utf8("a\x80z") == "a" + kFffd + "z");                        // stray continuation
  CHECK(valid_utf8("\xc0\xaf") == kFffd + kFffd);                          // overlong '/': C0 is never valid
  CHECK(valid_utf8("\xe0\x80\xaf") == kFffd + kFffd + kFffd);              // overlong: E0 needs A0..BF next
  CHECK(valid_utf8("\xf4\x90\x80\x80") == kFffd + kFffd + kFffd + kFffd);  // above U+10FFFF
  CHECK(valid_utf8("\xe2\x82") == kFffd);                                  // cut short: one subpart
  CHECK(valid_utf8("\xe2\x82z") == kFffd + "z");
  CHECK(valid_utf8("\xf0\x9f\x98") == kFffd);
}

TEST_CASE("a surrogate written as UTF-8 (lone surrogate from Python) is one U+FFFD") {
  CHECK(valid_utf8("a\xed\xb3\xbf"
                   "b") == "a" + kFffd + "b");                     // U+DCFF
  CHECK(valid_utf8("\xed\xa0\x80\xed\xb0\x80") == kFffd + kFffd);  // a pair written separately
  CHECK(valid_utf8("\xed\x9f\xbf") == "\xed\x9f\xbf");             // U+D7FF is an ordinary character
}

TEST_CASE("prefixes end on a character boundary") {
  const std::string text = "\xc3\xa9\xc3\xa9\xe2\x82\xac";  // e e euro: 2 + 2 + 3 bytes
  CHECK(utf8_prefix(text, 100) == text);
  CHECK(utf8_prefix(text, 7) == text);
  CHECK(utf8_prefix(text, 6) == "\xc3\xa9\xc3\xa9");
  CHECK(utf8_prefix(text, 5) == "\xc3\xa9\xc3\xa9");
  CHECK(utf8_prefix(text, 3) == "\xc3\xa9");
  CHECK(utf8_prefix(text, 1) == "");
  bool cut = false;
  CHECK(bounded_text("\xff\xff", 4, &cut) == kFffd);
  CHECK(cut);
  CHECK(bounded_text("abc", 3, &cut) == "abc");
  CHECK_FALSE(cut);
}
