#include "runtime/text/jinja/lexer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "runtime/text/jinja/value.hpp"

namespace quanteval::runtime::jinja {

SyntaxError::SyntaxError(const std::string& message, int line_, int column_)
    : std::runtime_error(fmt::format("template syntax error at line {}, column {}: {}", line_, column_, message)),
      line(line_),
      column(column_),
      bare_message(message) {}

namespace {

// jinja2 splits the source on \r\n, \r and \n and rejoins with \n before lexing,
// and (keep_trailing_newline=False) drops one final newline.
std::string normalize_newlines(std::string_view source, bool keep_trailing_newline) {
  std::string out;
  out.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Python's str.rstrip() on the text before a {%- / {{- / {#- tag.
void rstrip_python(std::string& text) {
  auto chars = decode_utf8(text);
  while (!chars.empty() && is_python_whitespace(chars.back())) chars.pop_back();
  text = encode_utf8(chars);
}

// Python-style escapes in string literals (jinja2 decodes them with "unicode-escape").
std::string unescape(std::string_view body) {
  std::string out;
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 >= body.size()) {
      out.push_back(body[i]);
      continue;
    }
    const char c = body[++i];
    const auto hex = [&](std::size_t digits) {
      if (i + digits >= body.size()) {
        throw std::invalid_argument("truncated escape in string literal");
      }
      const std::string h(body.substr(i + 1, digits));
      if (!std::all_of(h.begin(), h.end(), [](char x) { return std::isxdigit(static_cast<unsigned char>(x)); })) {
        throw std::invalid_argument("bad escape in string literal");
      }
      i += digits;
      return static_cast<char32_t>(std::stoul(h, nullptr, 16));
    };
    switch (c) {
      case '\n': break;  // backslash-newline continues the line
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x': append_code_point(out, hex(2)); break;
      case 'u': append_code_point(out, hex(4)); break;
      case 'U': append_code_point(out, hex(8)); break;
      default:
        if (c >= '0' && c <= '7') {
          char32_t value = static_cast<char32_t>(c - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
            value = value * 8 + static_cast<char32_t>(body[++i] - '0');
          }
          append_code_point(out, value);
        } else {
          // Unknown escapes stay as written, as in Python.
          out.push_back('\\');
          out.push_back(c);
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(std::string_view source, const LexerOptions& options)
      : src_(normalize_newlines(source, options.keep_trailing_newline)), options_(options) {
    line_starts_.push_back(0);
    for (std::size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const std::size_t tag = find_tag_start(pos_);
      std::string text = src_.substr(pos_, tag == std::string::npos ? std::string::npos : tag - pos_);
      if (tag == std::string::npos) {
        emit_text(pos_, std::move(text));
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char marker = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (marker == '-') {
        rstrip_python(text);
      } else if (options_.lstrip_blocks && kind != '{' && marker != '+') {
        lstrip_before_tag(text, pos_);
      }
      emit_text(pos_, std::move(text));
      pos_ = tag + 2 + ((marker == '-' || marker == '+') ? 1 : 0);
      if (kind == '#') {
        skip_comment(tag);
      } else if (kind == '%' && is_raw_block(pos_)) {
        lex_raw(tag);
      } else {
        lex_tag(tag, kind == '{');
      }
    }
    tokens_.push_back(Token{TokenType::end_of_input, "", line_of(src_.size()), column_of(src_.size())});
    return std::move(tokens_);
  }

 private:
  int line_of(std::size_t offset) const {
    return static_cast<int>(std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - line_starts_.begin());
  }
  int column_of(std::size_t offset) const { return static_cast<int>(offset - line_starts_[line_of(offset) - 1]) + 1; }
  [[noreturn]] void fail(const std::string& message, std::size_t offset) const {
    throw SyntaxError(message, line_of(offset), column_of(offset));
  }

  std::size_t find_tag_start(std::size_t from) const {
    for (std::size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  // lstrip_blocks: spaces and tabs between the start of a line and a block or
  // comment tag are removed (jinja2 checks only ' ' and '\t').
  void lstrip_before_tag(std::string& text, std::size_t text_start) const {
    const std::size_t last_newline = text.rfind('\n');
    const std::size_t line_start = last_newline == std::string::npos ? 0 : last_newline + 1;
    const bool line_starting = text_start == 0 || src_[text_start - 1] == '\n';
    if (line_start == 0 && !line_starting) return;
    for (std::size_t i = line_start; i < text.size(); ++i) {
      if (text[i] != ' ' && text[i] != '\t') return;
    }
    text.resize(line_start);
  }

  void emit_text(std::size_t offset, std::string text) {
    if (text.empty()) return;
    tokens_.push_back(Token{TokenType::text, std::move(text), line_of(offset), column_of(offset)});
  }

  // After a block or comment end: `-` eats all following whitespace, otherwise
  // trim_blocks eats one newline (unless `+`).
  void after_block_end(char marker) {
    if (marker == '-') {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    } else if (marker != '+' && options_.trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
  }

  void skip_comment(std::size_t tag) {
    const std::size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) fail("missing end of comment tag", tag);
    const char marker = (end > pos_ && (src_[end - 1] == '-' || src_[end - 1] == '+')) ? src_[end - 1] : '\0';
    pos_ = end + 2;
    after_block_end(marker);
  }

  std::size_t skip_spaces(std::size_t p) const {
    while (p < src_.size() && is_space(src_[p])) ++p;
    return p;
  }

  bool word_at(std::size_t p, std::string_view word) const {
    if (src_.compare(p, word.size(), word) != 0) return false;
    const std::size_t after = p + word.size();
    return after >= src_.size() || !(std::isalnum(static_cast<unsigned char>(src_[after])) || src_[after] == '_');
  }

  // `{% raw %}` (with optional markers): the text up to `{% endraw %}` is literal.
  bool is_raw_block(std::size_t p) const {
    p = skip_spaces(p);
    if (!word_at(p, "raw")) return false;
    p = skip_spaces(p + 3);
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    return src_.compare(p, 2, "%}") == 0;
  }

  void lex_raw(std::size_t tag) {
    std::size_t p = skip_spaces(pos_) + 3;
    p = skip_spaces(p);
    char marker = '\0';
    if (src_[p] == '-' || src_[p] == '+') marker = src_[p++];
    pos_ = p + 2;
    after_block_end(marker);
    // Find {%[-+]? endraw [-+]?%}
    std::size_t search = pos_;
    while (true) {
      const std::size_t open = src_.find("{%", search);
      if (open == std::string::npos) fail("missing endraw for raw block", tag);
      std::size_t q = open + 2;
      char open_marker = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) open_marker = src_[q++];
      q = skip_spaces(q);
      if (!word_at(q, "endraw")) {
        search = open + 2;
        continue;
      }
      q = skip_spaces(q + 6);
      char close_marker = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) close_marker = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) fail("malformed endraw tag", open);
      std::string text = src_.substr(pos_, open - pos_);
      if (open_marker == '-') {
        rstrip_python(text);
      } else if (options_.lstrip_blocks && open_marker != '+') {
        lstrip_before_tag(text, pos_);
      }
      emit_text(pos_, std::move(text));
      pos_ = q + 2;
      after_block_end(close_marker);
      return;
    }
  }

  void push(TokenType type, std::string value, std::size_t offset) {
    tokens_.push_back(Token{type, std::move(value), line_of(offset), column_of(offset)});
  }

  void lex_tag(std::size_t tag, bool is_variable) {
    push(is_variable ? TokenType::variable_begin : TokenType::block_begin, "", tag);
    const char close = is_variable ? '}' : '%';
    int bracket_depth = 0;  // jinja2 ignores end markers inside open brackets
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size())
        fail(is_variable ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'",
             tag);
      const char c = src_[pos_];
      if (bracket_depth == 0) {
        char marker = '\0';
        std::size_t p = pos_;
        if ((c == '-' || c == '+') && p + 2 < src_.size() && src_[p + 1] == close && src_[p + 2] == '}') {
          marker = c;
          ++p;
        }
        if (p + 1 < src_.size() && src_[p] == close && src_[p + 1] == '}') {
          push(is_variable ? TokenType::variable_end : TokenType::block_end, "", pos_);
          pos_ = p + 2;
          if (is_variable) {
            if (marker == '-') after_block_end('-');
          } else {
            after_block_end(marker);
          }
          return;
        }
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t end = pos_;
        while (end < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[end])) || src_[end] == '_')) ++end;
        push(TokenType::name, src_.substr(pos_, end - pos_), pos_);
        pos_ = end;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        static constexpr std::string_view two_char_ops[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (auto candidate : two_char_ops) {
          if (src_.compare(pos_, 2, candidate) == 0) op = std::string(candidate);
        }
        if (op.empty()) {
          if (std::string_view("+-*/%~()[]{},.:|=<>").find(c) == std::string_view::npos) {
            fail(fmt::format("unexpected character '{}'", c), pos_);
          }
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++bracket_depth;
        if ((op == ")" || op == "]" || op == "}") && bracket_depth > 0) --bracket_depth;
        push(TokenType::op, op, pos_);
        pos_ += op.size();
      }
    }
  }

  void lex_number() {
    const std::size_t start = pos_;
    const auto digits = [&] {
      while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) ||
                                    (src_[pos_] == '_' && pos_ + 1 < src_.size() &&
                                     std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))))) {
        ++pos_;
      }
    };
    digits();
    bool is_float = false;
    // "x.0.1" is attribute access, not a float: jinja2 refuses a float right after a dot.
    const bool after_dot = start > 0 && src_[start - 1] == '.';
    if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (!after_dot && pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      std::size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        is_float = true;
        pos_ = p;
        digits();
      }
    }
    std::string text;
    for (std::size_t i = start; i < pos_; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    push(is_float ? TokenType::floating : TokenType::integer, text, start);
  }

  void lex_string(char quote) {
    const std::size_t start = pos_;
    std::size_t p = pos_ + 1;
    while (p < src_.size() && src_[p] != quote) {
      if (src_[p] == '\\') ++p;
      ++p;
    }
    if (p >= src_.size()) fail("unterminated string literal", start);
    try {
      push(TokenType::string, unescape(std::string_view(src_).substr(start + 1, p - start - 1)), start);
    } catch (const std::invalid_argument& error) {
      fail(error.what(), start);
    }
    pos_ = p + 1;
  }

  std::string src_;
  LexerOptions options_;
  std::vector<std::size_t> line_starts_;
  std::size_t pos_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const LexerOptions& options) {
  return Lexer(source, options).run();
}

}  // namespace quanteval::runtime::jinja
