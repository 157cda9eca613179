#pragma once
// Lexer of the Jinja2 subset: splits a template into text and tag tokens with
// jinja2's whitespace rules as transformers configures them (trim_blocks,
// lstrip_blocks, `-`/`+` markers, newline normalisation, the dropped final
// newline), and tokenizes the expressions inside {{ }} and {% %}.
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace quanteval::runtime::jinja {

// A template that does not parse; the message carries line and column.
struct SyntaxError : std::runtime_error {
  SyntaxError(const std::string& message, int line, int column);
  int line;
  int column;
  std::string bare_message;
};

enum class TokenType {
  text,            // literal template text, whitespace control already applied
  variable_begin,  // {{
  variable_end,    // }}
  block_begin,     // {%
  block_end,       // %}
  name,
  string,  // value is the unescaped string
  integer,
  floating,
  op,  // operator or punctuation: + - * / // % ** ~ ( ) [ ] { } , . : | = == != < <= > >=
  end_of_input,
};

struct Token {
  TokenType type;
  std::string value;
  int line = 1;
  int column = 1;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

std::vector<Token> tokenize(std::string_view source, const LexerOptions& options = {});

}  // namespace quanteval::runtime::jinja
