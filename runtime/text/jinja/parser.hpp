#pragma once
// Parser of the Jinja2 subset: tokens from jinja_lexer into the tree of
// jinja_ast.hpp, with jinja2's operator precedence (filters and tests bind
// tighter than arithmetic; `not` looser than comparisons).
#include <memory>
#include <string_view>

#include "runtime/text/jinja/ast.hpp"
#include "runtime/text/jinja/lexer.hpp"

namespace quanteval::runtime::jinja {

// Throws SyntaxError (line, column) for anything outside the supported subset.
std::unique_ptr<SequenceStmt> parse_template(std::string_view source, const LexerOptions& options = {});

}  // namespace quanteval::runtime::jinja
