#include "runtime/text/jinja/parser.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

namespace quanteval::runtime::jinja {

namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  std::unique_ptr<SequenceStmt> parse_root() {
    auto root = std::make_unique<SequenceStmt>(SourcePosition{1, 1});
    root->body = parse_until({}, nullptr);
    return root;
  }

 private:
  // ---- token access ----
  const Token& peek(std::size_t ahead = 0) const { return tokens_[std::min(index_ + ahead, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& token = tokens_[index_];
    if (index_ + 1 < tokens_.size()) ++index_;
    return token;
  }
  static SourcePosition where(const Token& token) { return {token.line, token.column}; }
  bool at_op(std::string_view op, std::size_t ahead = 0) const {
    return peek(ahead).type == TokenType::op && peek(ahead).value == op;
  }
  bool at_name(std::string_view name, std::size_t ahead = 0) const {
    return peek(ahead).type == TokenType::name && peek(ahead).value == name;
  }
  [[noreturn]] void fail(const std::string& message, const Token& token) const {
    throw SyntaxError(message, token.line, token.column);
  }
  static std::string describe(const Token& token) {
    switch (token.type) {
      case TokenType::text: return "template text";
      case TokenType::variable_begin: return "'{{'";
      case TokenType::variable_end: return "'}}'";
      case TokenType::block_begin: return "'{%'";
      case TokenType::block_end: return "'%}'";
      case TokenType::end_of_input: return "end of template";
      case TokenType::string: return "string literal";
      default: return "'" + token.value + "'";
    }
  }
  void expect_op(std::string_view op) {
    if (!at_op(op)) fail(fmt::format("expected '{}', got {}", op, describe(peek())), peek());
    next();
  }
  void expect_block_end() {
    if (peek().type != TokenType::block_end)
      fail(fmt::format("expected end of statement '%}}', got {}", describe(peek())), peek());
    next();
  }
  std::string expect_name(std::string_view what) {
    if (peek().type != TokenType::name) fail(fmt::format("expected {}, got {}", what, describe(peek())), peek());
    return next().value;
  }

  // ---- statements ----

  // Parses template content until a {% <terminator> %} tag; consumes `{%` and the
  // terminator's name and reports which one ended the body.
  Body parse_until(std::initializer_list<std::string_view> terminators, std::string* which) {
    Body body;
    while (true) {
      const Token& token = peek();
      switch (token.type) {
        case TokenType::text:
          body.push_back(std::make_unique<TextStmt>(where(token), token.value));
          next();
          break;
        case TokenType::variable_begin: {
          next();
          auto expression = parse_tuple(true);
          if (peek().type != TokenType::variable_end) {
            fail(fmt::format("expected end of print statement '}}}}', got {}", describe(peek())), peek());
          }
          next();
          body.push_back(std::make_unique<OutputStmt>(where(token), std::move(expression)));
          break;
        }
        case TokenType::block_begin: {
          const Token& name = peek(1);
          if (name.type == TokenType::name &&
              std::find(terminators.begin(), terminators.end(), name.value) != terminators.end()) {
            next();
            const std::string& terminator = next().value;
            if (which) *which = terminator;
            return body;
          }
          next();
          body.push_back(parse_statement(token));
          break;
        }
        case TokenType::end_of_input:
          if (terminators.size() != 0) {
            std::string expected;
            for (auto t : terminators) expected += (expected.empty() ? "'" : " or '") + std::string(t) + "'";
            fail("unexpected end of template, expected " + expected, token);
          }
          return body;
        default: fail(fmt::format("unexpected {}", describe(token)), token);
      }
    }
  }

  StatementPtr parse_statement(const Token& opening) {
    const Token& keyword = peek();
    if (keyword.type != TokenType::name)
      fail(fmt::format("expected a statement name, got {}", describe(keyword)), keyword);
    const std::string name = keyword.value;
    next();
    if (name == "if") return parse_if(opening);
    if (name == "for") return parse_for(opening);
    if (name == "set") return parse_set(opening);
    if (name == "macro") return parse_macro(opening);
    if (name == "call") return parse_call_block(opening);
    if (name == "filter") return parse_filter_block(opening);
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside of a loop", name), keyword);
      expect_block_end();
      return std::make_unique<LoopControlStmt>(where(opening),
                                               name == "break" ? Flow::break_loop : Flow::continue_loop);
    }
    if (name == "generation") {
      expect_block_end();
      auto sequence = std::make_unique<SequenceStmt>(where(opening));
      sequence->body = parse_until({"endgeneration"}, nullptr);
      expect_block_end();
      return sequence;
    }
    if (name == "do") {
      auto expression = parse_tuple(true);
      expect_block_end();
      return std::make_unique<DoStmt>(where(opening), std::move(expression));
    }
    fail(fmt::format("unknown or unsupported tag '{}'", name), keyword);
  }

  StatementPtr parse_if(const Token& opening) {
    auto statement = std::make_unique<IfStmt>(where(opening));
    auto condition = parse_tuple(true);
    expect_block_end();
    while (true) {
      std::string which;
      Body body = parse_until({"elif", "else", "endif"}, &which);
      statement->branches.push_back(IfStmt::Branch{std::move(condition), std::move(body)});
      if (which == "elif") {
        condition = parse_tuple(true);
        expect_block_end();
        continue;
      }
      if (which == "else") {
        expect_block_end();
        statement->else_body = parse_until({"endif"}, nullptr);
      }
      expect_block_end();
      return statement;
    }
  }

  std::vector<std::string> parse_assign_names(bool& parenthesized) {
    std::vector<std::string> names;
    parenthesized = at_op("(");
    if (parenthesized) next();
    names.push_back(expect_name("a variable name"));
    while (at_op(",")) {
      next();
      if (peek().type != TokenType::name || at_name("in")) break;  // trailing comma
      names.push_back(next().value);
    }
    if (parenthesized) expect_op(")");
    return names;
  }

  StatementPtr parse_for(const Token& opening) {
    auto statement = std::make_unique<ForStmt>(where(opening));
    bool parenthesized = false;
    statement->targets = parse_assign_names(parenthesized);
    if (!at_name("in")) fail(fmt::format("expected 'in', got {}", describe(peek())), peek());
    next();
    statement->iterable = parse_tuple(false);
    if (at_name("if")) {
      next();
      statement->filter = parse_tuple(true);
    }
    if (at_name("recursive")) fail("recursive for-loops are not supported", peek());
    expect_block_end();
    ++loop_depth_;
    std::string which;
    statement->body = parse_until({"else", "endfor"}, &which);
    --loop_depth_;
    if (which == "else") {
      expect_block_end();
      statement->else_body = parse_until({"endfor"}, nullptr);
    }
    expect_block_end();
    return statement;
  }

  StatementPtr parse_set(const Token& opening) {
    auto statement = std::make_unique<SetStmt>(where(opening));
    statement->target.names.push_back(expect_name("a variable name"));
    if (at_op(".")) {
      next();
      statement->target.namespace_attribute = expect_name("an attribute name");
    } else {
      while (at_op(",")) {
        next();
        statement->target.names.push_back(expect_name("a variable name"));
      }
    }
    if (at_op("=")) {
      next();
      statement->value = parse_tuple(true);
      expect_block_end();
      return statement;
    }
    // Block assignment: {% set name | filters %}...{% endset %}
    while (at_op("|")) {
      next();
      statement->body_filters.push_back(parse_filter(nullptr));
    }
    expect_block_end();
    statement->body = parse_until({"endset"}, nullptr);
    expect_block_end();
    return statement;
  }

  std::vector<MacroParameter> parse_parameters() {
    std::vector<MacroParameter> parameters;
    expect_op("(");
    while (!at_op(")")) {
      if (!parameters.empty()) expect_op(",");
      if (at_op(")")) break;
      MacroParameter parameter;
      parameter.name = expect_name("a parameter name");
      if (at_op("=")) {
        next();
        parameter.default_value = parse_expression(true);
      }
      parameters.push_back(std::move(parameter));
    }
    next();
    return parameters;
  }

  StatementPtr parse_macro(const Token& opening) {
    auto statement = std::make_unique<MacroStmt>(where(opening));
    statement->name = expect_name("a macro name");
    statement->parameters = parse_parameters();
    expect_block_end();
    const int saved_depth = loop_depth_;
    loop_depth_ = 0;  // a macro body is not inside the caller's loop
    statement->body = parse_until({"endmacro"}, nullptr);
    loop_depth_ = saved_depth;
    if (peek().type == TokenType::name) next();  // {% endmacro name %}
    expect_block_end();
    return statement;
  }

  StatementPtr parse_call_block(const Token& opening) {
    auto statement = std::make_unique<CallBlockStmt>(where(opening));
    if (at_op("(")) statement->caller_parameters = parse_parameters();
    auto expression = parse_expression(true);
    auto* call = dynamic_cast<CallExpr*>(expression.get());
    if (!call) fail("expected a macro call after 'call'", opening);
    expression.release();
    statement->call.reset(call);
    expect_block_end();
    statement->body = parse_until({"endcall"}, nullptr);
    expect_block_end();
    return statement;
  }

  StatementPtr parse_filter_block(const Token& opening) {
    auto statement = std::make_unique<FilterBlockStmt>(where(opening));
    statement->filters.push_back(parse_filter(nullptr));
    while (at_op("|")) {
      next();
      statement->filters.push_back(parse_filter(nullptr));
    }
    expect_block_end();
    statement->body = parse_until({"endfilter"}, nullptr);
    expect_block_end();
    return statement;
  }

  // ---- expressions ----

  // An expression, or several separated by commas (a tuple).
  ExpressionPtr parse_tuple(bool with_condition) {
    const Token& first_token = peek();
    auto first = parse_expression(with_condition);
    if (!at_op(",")) return first;
    std::vector<ExpressionPtr> items;
    items.push_back(std::move(first));
    while (at_op(",")) {
      next();
      if (ends_tuple()) break;
      items.push_back(parse_expression(with_condition));
    }
    return std::make_unique<ListExpr>(where(first_token), std::move(items), true);
  }

  bool ends_tuple() const {
    const auto type = peek().type;
    return type == TokenType::variable_end || type == TokenType::block_end || at_op(")") || at_name("if") ||
           at_name("in") || at_op("=");
  }

  ExpressionPtr parse_expression(bool with_condition) {
    if (!with_condition) return parse_or();
    auto expression = parse_or();
    while (at_name("if")) {
      const Token& token = next();
      auto condition = parse_or();
      ExpressionPtr otherwise;
      if (at_name("else")) {
        next();
        otherwise = parse_expression(true);
      }
      expression = std::make_unique<ConditionalExpr>(where(token), std::move(condition), std::move(expression),
                                                     std::move(otherwise));
    }
    return expression;
  }

  ExpressionPtr parse_or() {
    auto left = parse_and();
    while (at_name("or")) {
      const Token& token = next();
      left = std::make_unique<BinaryExpr>(where(token), "or", std::move(left), parse_and());
    }
    return left;
  }

  ExpressionPtr parse_and() {
    auto left = parse_not();
    while (at_name("and")) {
      const Token& token = next();
      left = std::make_unique<BinaryExpr>(where(token), "and", std::move(left), parse_not());
    }
    return left;
  }

  ExpressionPtr parse_not() {
    if (at_name("not")) {
      const Token& token = next();
      return std::make_unique<UnaryExpr>(where(token), UnaryExpr::Op::logical_not, parse_not());
    }
    return parse_compare();
  }

  ExpressionPtr parse_compare() {
    const Token& start = peek();
    auto first = parse_math1();
    std::vector<std::pair<std::string, ExpressionPtr>> rest;
    while (true) {
      const Token& token = peek();
      std::string op;
      if (token.type == TokenType::op && (token.value == "==" || token.value == "!=" || token.value == "<" ||
                                          token.value == "<=" || token.value == ">" || token.value == ">=")) {
        op = token.value;
        next();
      } else if (at_name("in")) {
        op = "in";
        next();
      } else if (at_name("not") && at_name("in", 1)) {
        op = "not in";
        next();
        next();
      } else {
        break;
      }
      rest.emplace_back(std::move(op), parse_math1());
    }
    if (rest.empty()) return first;
    if (rest.size() == 1) {
      return std::make_unique<BinaryExpr>(where(start), rest[0].first, std::move(first), std::move(rest[0].second));
    }
    auto chain = std::make_unique<CompareChainExpr>(where(start), std::move(first));
    chain->rest = std::move(rest);
    return chain;
  }

  ExpressionPtr parse_math1() {
    auto left = parse_concat();
    while (at_op("+") || at_op("-")) {
      const Token& token = next();
      left = std::make_unique<BinaryExpr>(where(token), token.value, std::move(left), parse_concat());
    }
    return left;
  }

  ExpressionPtr parse_concat() {
    auto left = parse_math2();
    while (at_op("~")) {
      const Token& token = next();
      left = std::make_unique<BinaryExpr>(where(token), "~", std::move(left), parse_math2());
    }
    return left;
  }

  ExpressionPtr parse_math2() {
    auto left = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const Token& token = next();
      left = std::make_unique<BinaryExpr>(where(token), token.value, std::move(left), parse_pow());
    }
    return left;
  }

  ExpressionPtr parse_pow() {
    auto left = parse_unary(true);
    while (at_op("**")) {
      const Token& token = next();
      left = std::make_unique<BinaryExpr>(where(token), "**", std::move(left), parse_unary(true));
    }
    return left;
  }

  ExpressionPtr parse_unary(bool with_filter) {
    const Token& token = peek();
    ExpressionPtr node;
    if (at_op("-") || at_op("+")) {
      next();
      node = std::make_unique<UnaryExpr>(where(token), token.value == "-" ? UnaryExpr::Op::negate : UnaryExpr::Op::plus,
                                         parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_chain(std::move(node));
    return node;
  }

  ExpressionPtr parse_primary() {
    const Token& token = peek();
    switch (token.type) {
      case TokenType::name: {
        next();
        const auto& v = token.value;
        if (v == "true" || v == "True") return std::make_unique<LiteralExpr>(where(token), Value(true));
        if (v == "false" || v == "False") return std::make_unique<LiteralExpr>(where(token), Value(false));
        if (v == "none" || v == "None") return std::make_unique<LiteralExpr>(where(token), Value(nullptr));
        return std::make_unique<NameExpr>(where(token), v);
      }
      case TokenType::string: {
        std::string text;
        while (peek().type == TokenType::string) text += next().value;  // adjacent literals concatenate
        return std::make_unique<LiteralExpr>(where(token), Value(std::move(text)));
      }
      case TokenType::integer: {
        next();
        try {
          return std::make_unique<LiteralExpr>(where(token), Value(static_cast<std::int64_t>(std::stoll(token.value))));
        } catch (const std::out_of_range&) {
          fail("integer literal out of range", token);
        }
      }
      case TokenType::floating: {
        next();
        try {
          return std::make_unique<LiteralExpr>(where(token), Value(std::stod(token.value)));
        } catch (const std::out_of_range&) {
          fail("float literal out of range", token);
        }
      }
      case TokenType::op:
        if (token.value == "(") {
          next();
          if (at_op(")")) {
            next();
            return std::make_unique<ListExpr>(where(token), std::vector<ExpressionPtr>{}, true);
          }
          auto inner = parse_tuple(true);
          expect_op(")");
          return inner;
        }
        if (token.value == "[") {
          next();
          std::vector<ExpressionPtr> items;
          while (!at_op("]")) {
            if (!items.empty()) expect_op(",");
            if (at_op("]")) break;
            items.push_back(parse_expression(true));
          }
          next();
          return std::make_unique<ListExpr>(where(token), std::move(items), false);
        }
        if (token.value == "{") {
          next();
          std::vector<DictExpr::Item> items;
          while (!at_op("}")) {
            if (!items.empty()) expect_op(",");
            if (at_op("}")) break;
            auto key = parse_expression(true);
            expect_op(":");
            items.emplace_back(std::move(key), parse_expression(true));
          }
          next();
          return std::make_unique<DictExpr>(where(token), std::move(items));
        }
        break;
      default: break;
    }
    fail(fmt::format("unexpected {}", describe(token)), token);
  }

  ExpressionPtr parse_postfix(ExpressionPtr node) {
    while (true) {
      const Token& token = peek();
      if (at_op(".")) {
        next();
        const Token& attribute = peek();
        if (attribute.type == TokenType::name) {
          next();
          node = std::make_unique<AttributeExpr>(where(token), std::move(node), attribute.value);
        } else if (attribute.type == TokenType::integer) {
          next();
          node = std::make_unique<SubscriptExpr>(
              where(token), std::move(node),
              std::make_unique<LiteralExpr>(where(attribute),
                                            Value(static_cast<std::int64_t>(std::stoll(attribute.value)))));
        } else {
          fail(fmt::format("expected an attribute name after '.', got {}", describe(attribute)), attribute);
        }
      } else if (at_op("[")) {
        next();
        node = parse_subscript(token, std::move(node));
      } else if (at_op("(")) {
        node = std::make_unique<CallExpr>(where(token), std::move(node), parse_call_arguments());
      } else {
        return node;
      }
    }
  }

  ExpressionPtr parse_subscript(const Token& token, ExpressionPtr object) {
    ExpressionPtr start;
    if (!at_op(":")) {
      start = parse_expression(true);
      if (!at_op(":")) {
        expect_op("]");
        return std::make_unique<SubscriptExpr>(where(token), std::move(object), std::move(start));
      }
    }
    next();  // ':'
    ExpressionPtr stop, step;
    if (!at_op("]") && !at_op(":")) stop = parse_expression(true);
    if (at_op(":")) {
      next();
      if (!at_op("]")) step = parse_expression(true);
    }
    expect_op("]");
    return std::make_unique<SliceExpr>(where(token), std::move(object), std::move(start), std::move(stop),
                                       std::move(step));
  }

  Arguments parse_call_arguments() {
    Arguments arguments;
    expect_op("(");
    bool first = true;
    while (!at_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (at_op(")")) break;
      if (at_op("*") || at_op("**")) fail("*args / **kwargs in calls are not supported", peek());
      if (peek().type == TokenType::name && at_op("=", 1)) {
        std::string name = next().value;
        next();
        arguments.keyword.push_back(KeywordArgument{std::move(name), parse_expression(true)});
      } else {
        if (!arguments.keyword.empty()) fail("positional argument follows keyword argument", peek());
        arguments.positional.push_back(parse_expression(true));
      }
    }
    next();
    return arguments;
  }

  ExpressionPtr parse_filter_chain(ExpressionPtr node) {
    while (true) {
      if (at_op("|")) {
        next();
        auto filter = parse_filter(std::move(node));
        node = std::move(filter);
      } else if (at_name("is")) {
        node = parse_test(std::move(node));
      } else if (at_op("(")) {
        const Token& token = peek();
        node = std::make_unique<CallExpr>(where(token), std::move(node), parse_call_arguments());
      } else {
        return node;
      }
    }
  }

  std::unique_ptr<FilterExpr> parse_filter(ExpressionPtr operand) {
    const Token& token = peek();
    std::string name = expect_name("a filter name");
    while (at_op(".")) {  // dotted filter names as jinja2 allows
      next();
      name.push_back('.');
      name += expect_name("a filter name");
    }
    Arguments arguments;
    if (at_op("(")) arguments = parse_call_arguments();
    return std::make_unique<FilterExpr>(where(token), std::move(operand), std::move(name), std::move(arguments));
  }

  ExpressionPtr parse_test(ExpressionPtr operand) {
    const Token& token = next();  // 'is'
    bool negated = false;
    if (at_name("not")) {
      next();
      negated = true;
    }
    std::string name = expect_name("a test name");
    Arguments arguments;
    const Token& following = peek();
    if (at_op("(")) {
      arguments = parse_call_arguments();
    } else if ((following.type == TokenType::name || following.type == TokenType::string ||
                following.type == TokenType::integer || following.type == TokenType::floating || at_op("[") ||
                at_op("{")) &&
               !at_name("else") && !at_name("or") && !at_name("and")) {
      if (at_name("is")) fail("you cannot chain multiple tests with 'is'", following);
      arguments.positional.push_back(parse_postfix(parse_primary()));
    }
    return std::make_unique<TestExpr>(where(token), std::move(operand), std::move(name), std::move(arguments), negated);
  }

  std::vector<Token> tokens_;
  std::size_t index_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

std::unique_ptr<SequenceStmt> parse_template(std::string_view source, const LexerOptions& options) {
  return Parser(tokenize(source, options)).parse_root();
}

}  // namespace quanteval::runtime::jinja
