#pragma once
// Syntax tree of the Jinja2 subset. Nodes are immutable after parsing; a
// compiled template is shared by any number of renders. Evaluation lives in
// jinja_render.cpp (the virtual methods below are defined there).
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/text/jinja/value.hpp"

namespace quanteval::runtime::jinja {

class Renderer;

struct SourcePosition {
  int line = 0;
  int column = 0;
};

// ---- expressions -----------------------------------------------------------------

struct Expression {
  explicit Expression(SourcePosition where) : position(where) {}
  virtual ~Expression() = default;
  virtual Value evaluate(Renderer& renderer) const = 0;
  SourcePosition position;
};
using ExpressionPtr = std::unique_ptr<Expression>;

struct KeywordArgument {
  std::string name;
  ExpressionPtr value;
};

struct Arguments {
  std::vector<ExpressionPtr> positional;
  std::vector<KeywordArgument> keyword;
};

struct LiteralExpr : Expression {
  LiteralExpr(SourcePosition where, Value v) : Expression(where), value(std::move(v)) {}
  Value evaluate(Renderer& renderer) const override;
  Value value;
};

struct ListExpr : Expression {
  ListExpr(SourcePosition where, std::vector<ExpressionPtr> elements, bool tuple)
      : Expression(where), items(std::move(elements)), is_tuple(tuple) {}
  Value evaluate(Renderer& renderer) const override;
  std::vector<ExpressionPtr> items;
  bool is_tuple;
};

struct DictExpr : Expression {
  using Item = std::pair<ExpressionPtr, ExpressionPtr>;
  DictExpr(SourcePosition where, std::vector<Item> pairs) : Expression(where), items(std::move(pairs)) {}
  Value evaluate(Renderer& renderer) const override;
  std::vector<Item> items;
};

struct NameExpr : Expression {
  NameExpr(SourcePosition where, std::string n) : Expression(where), name(std::move(n)) {}
  Value evaluate(Renderer& renderer) const override;
  std::string name;
};

// obj.name: attribute first (methods), then item, as jinja2's getattr.
struct AttributeExpr : Expression {
  AttributeExpr(SourcePosition where, ExpressionPtr o, std::string n)
      : Expression(where), object(std::move(o)), name(std::move(n)) {}
  Value evaluate(Renderer& renderer) const override;
  ExpressionPtr object;
  std::string name;
};

// obj[key]: item first, then attribute, as jinja2's getitem.
struct SubscriptExpr : Expression {
  SubscriptExpr(SourcePosition where, ExpressionPtr o, ExpressionPtr k)
      : Expression(where), object(std::move(o)), key(std::move(k)) {}
  Value evaluate(Renderer& renderer) const override;
  ExpressionPtr object;
  ExpressionPtr key;
};

struct SliceExpr : Expression {
  SliceExpr(SourcePosition where, ExpressionPtr o, ExpressionPtr b, ExpressionPtr e, ExpressionPtr s)
      : Expression(where), object(std::move(o)), start(std::move(b)), stop(std::move(e)), step(std::move(s)) {}
  Value evaluate(Renderer& renderer) const override;
  ExpressionPtr object, start, stop, step;  // start/stop/step may be null
};

struct CallExpr : Expression {
  CallExpr(SourcePosition where, ExpressionPtr c, Arguments a)
      : Expression(where), callee(std::move(c)), arguments(std::move(a)) {}
  Value evaluate(Renderer& renderer) const override;
  ExpressionPtr callee;
  Arguments arguments;
};

// value | name(args)
struct FilterExpr : Expression {
  FilterExpr(SourcePosition where, ExpressionPtr v, std::string n, Arguments a)
      : Expression(where), operand(std::move(v)), name(std::move(n)), arguments(std::move(a)) {}
  Value evaluate(Renderer& renderer) const override;
  Value apply(Renderer& renderer, Value input) const;  // also used by {% filter %} blocks
  ExpressionPtr operand;                               // null inside a {% filter %} block's chain
  std::string name;
  Arguments arguments;
};

// value is [not] name(args)
struct TestExpr : Expression {
  TestExpr(SourcePosition where, ExpressionPtr v, std::string n, Arguments a, bool negate)
      : Expression(where), operand(std::move(v)), name(std::move(n)), arguments(std::move(a)), negated(negate) {}
  Value evaluate(Renderer& renderer) const override;
  ExpressionPtr operand;
  std::string name;
  Arguments arguments;
  bool negated;
};

struct UnaryExpr : Expression {
  enum class Op { logical_not, negate, plus };
  UnaryExpr(SourcePosition where, Op o, ExpressionPtr v) : Expression(where), op(o), operand(std::move(v)) {}
  Value evaluate(Renderer& renderer) const override;
  Op op;
  ExpressionPtr operand;
};

struct BinaryExpr : Expression {
  // Operator spelled as in the template: "+", "-", "*", "/", "//", "%", "**", "~",
  // "==", "!=", "<", "<=", ">", ">=", "in", "not in", "and", "or".
  BinaryExpr(SourcePosition where, std::string o, ExpressionPtr l, ExpressionPtr r)
      : Expression(where), op(std::move(o)), left(std::move(l)), right(std::move(r)) {}
  Value evaluate(Renderer& renderer) const override;
  std::string op;
  ExpressionPtr left, right;
};

// a < b <= c: Python's chained comparison, each operand evaluated once.
struct CompareChainExpr : Expression {
  CompareChainExpr(SourcePosition where, ExpressionPtr first_operand)
      : Expression(where), first(std::move(first_operand)) {}
  Value evaluate(Renderer& renderer) const override;
  ExpressionPtr first;
  std::vector<std::pair<std::string, ExpressionPtr>> rest;  // (operator, operand)
};

// a if condition else b (b may be absent: undefined when the condition fails)
struct ConditionalExpr : Expression {
  ConditionalExpr(SourcePosition where, ExpressionPtr c, ExpressionPtr t, ExpressionPtr f)
      : Expression(where), condition(std::move(c)), if_true(std::move(t)), if_false(std::move(f)) {}
  Value evaluate(Renderer& renderer) const override;
  ExpressionPtr condition, if_true, if_false;
};

// ---- statements --------------------------------------------------------------------

// What a statement tells its enclosing loop.
enum class Flow { normal, break_loop, continue_loop };

struct Statement {
  explicit Statement(SourcePosition where) : position(where) {}
  virtual ~Statement() = default;
  virtual Flow render(Renderer& renderer) const = 0;
  SourcePosition position;
};
using StatementPtr = std::unique_ptr<Statement>;
using Body = std::vector<StatementPtr>;

struct TextStmt : Statement {
  TextStmt(SourcePosition where, std::string t) : Statement(where), text(std::move(t)) {}
  Flow render(Renderer& renderer) const override;
  std::string text;
};

struct OutputStmt : Statement {
  OutputStmt(SourcePosition where, ExpressionPtr e) : Statement(where), expression(std::move(e)) {}
  Flow render(Renderer& renderer) const override;
  ExpressionPtr expression;
};

struct IfStmt : Statement {
  struct Branch {
    ExpressionPtr condition;
    Body body;
  };
  explicit IfStmt(SourcePosition where) : Statement(where) {}
  Flow render(Renderer& renderer) const override;
  std::vector<Branch> branches;  // if, elif...
  Body else_body;
};

struct ForStmt : Statement {
  explicit ForStmt(SourcePosition where) : Statement(where) {}
  Flow render(Renderer& renderer) const override;
  std::vector<std::string> targets;  // one name, or several to unpack
  ExpressionPtr iterable;
  ExpressionPtr filter;  // `for x in y if cond`, may be null
  Body body;
  Body else_body;
};

// Where a {% set %} stores: a name, names to unpack, or namespace.attribute.
struct AssignTarget {
  std::vector<std::string> names;
  std::string namespace_attribute;  // non-empty: names[0] is the namespace
};

struct SetStmt : Statement {
  explicit SetStmt(SourcePosition where) : Statement(where) {}
  Flow render(Renderer& renderer) const override;
  AssignTarget target;
  ExpressionPtr value;                                    // {% set x = value %}
  Body body;                                              // {% set x %}body{% endset %} when value is null
  std::vector<std::unique_ptr<FilterExpr>> body_filters;  // {% set x | f %}
};

struct MacroParameter {
  std::string name;
  ExpressionPtr default_value;  // may be null
};

struct MacroStmt : Statement {
  explicit MacroStmt(SourcePosition where) : Statement(where) {}
  Flow render(Renderer& renderer) const override;
  std::string name;
  std::vector<MacroParameter> parameters;
  Body body;
};

// {% call(params) macro(args) %}body{% endcall %}: body is available as caller().
struct CallBlockStmt : Statement {
  explicit CallBlockStmt(SourcePosition where) : Statement(where) {}
  Flow render(Renderer& renderer) const override;
  std::vector<MacroParameter> caller_parameters;
  std::unique_ptr<CallExpr> call;
  Body body;
};

struct FilterBlockStmt : Statement {
  explicit FilterBlockStmt(SourcePosition where) : Statement(where) {}
  Flow render(Renderer& renderer) const override;
  std::vector<std::unique_ptr<FilterExpr>> filters;
  Body body;
};

// break / continue (jinja2.ext.loopcontrols)
struct LoopControlStmt : Statement {
  LoopControlStmt(SourcePosition where, Flow f) : Statement(where), flow(f) {}
  Flow render(Renderer& renderer) const override;
  Flow flow;
};

// Statements rendered in order with no scope of their own: the template root,
// and transformers' {% generation %} blocks (which only mark assistant text).
struct SequenceStmt : Statement {
  explicit SequenceStmt(SourcePosition where) : Statement(where) {}
  Flow render(Renderer& renderer) const override;
  Body body;
};

// {% do expr %}: evaluate for effect.
struct DoStmt : Statement {
  DoStmt(SourcePosition where, ExpressionPtr e) : Statement(where), expression(std::move(e)) {}
  Flow render(Renderer& renderer) const override;
  ExpressionPtr expression;
};

}  // namespace quanteval::runtime::jinja
