#include "runtime/text/jinja/render.hpp"

#include <fmt/format.h>

#include <ctime>

#include "runtime/text/jinja/builtins.hpp"

namespace quanteval::runtime::jinja {

RenderError::RenderError(const std::string& message, SourcePosition where)
    : std::runtime_error(fmt::format("line {}, column {}: {}", where.line, where.column, message)),
      bare_message(message),
      position(where) {}

// ---- Renderer -------------------------------------------------------------------------

Renderer::Renderer(std::shared_ptr<Scope> globals) : scope_(std::make_shared<Scope>(std::move(globals))) {}

std::string Renderer::render(const SequenceStmt& root) {
  std::string out;
  output_ = &out;
  root.render(*this);
  output_ = nullptr;
  return out;
}

Value Renderer::lookup(const std::string& name) const {
  for (const Scope* scope = scope_.get(); scope; scope = scope->parent.get()) {
    auto found = scope->variables.find(name);
    if (found != scope->variables.end()) return found->second;
  }
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

void Renderer::assign(const std::string& name, Value value) { scope_->variables[name] = std::move(value); }

Flow Renderer::render_body(const Body& body) {
  for (const auto& statement : body) {
    Flow flow;
    try {
      flow = statement->render(*this);
    } catch (const EvalError& error) {
      // Innermost statement wins: RenderError is not an EvalError, so enclosing
      // statements let it pass unchanged.
      throw RenderError(error.what(), statement->position);
    }
    if (flow != Flow::normal) return flow;
  }
  return Flow::normal;
}

std::string Renderer::capture(const Body& body, std::shared_ptr<Scope> scope) {
  std::string buffer;
  std::string* saved_output = output_;
  output_ = &buffer;
  ScopeGuard guard(*this, std::move(scope));
  try {
    render_body(body);
  } catch (...) {
    output_ = saved_output;
    throw;
  }
  output_ = saved_output;
  return buffer;
}

Renderer::ScopeGuard::ScopeGuard(Renderer& renderer, std::shared_ptr<Scope> scope)
    : renderer_(renderer), saved_(std::move(renderer.scope_)) {
  renderer_.scope_ = std::move(scope);
}

Renderer::ScopeGuard::~ScopeGuard() { renderer_.scope_ = std::move(saved_); }

// ---- helpers ----------------------------------------------------------------------------

namespace {

CallArgs evaluate_arguments(Renderer& renderer, const Arguments& arguments) {
  CallArgs args;
  args.positional.reserve(arguments.positional.size());
  for (const auto& expression : arguments.positional) args.positional.push_back(expression->evaluate(renderer));
  for (const auto& keyword : arguments.keyword)
    args.keyword.emplace_back(keyword.name, keyword.value->evaluate(renderer));
  return args;
}

Value call_value(const Value& callee, const CallArgs& args) {
  callee.require_defined();
  if (!callee.is_callable()) throw EvalError(fmt::format("TypeError: '{}' is not callable", callee.type_description()));
  return callee.as_callable().invoke(args);
}

// Binds a macro's (or caller's) parameters in `scope` from a call's arguments.
void bind_parameters(Renderer& renderer, const std::shared_ptr<Scope>& scope_ptr, const std::string& macro_name,
                     const std::vector<MacroParameter>& parameters, const CallArgs& args) {
  Scope& scope = *scope_ptr;
  if (args.positional.size() > parameters.size()) {
    throw EvalError(
        fmt::format("TypeError: macro '{}' takes not more than {} argument(s)", macro_name, parameters.size()));
  }
  std::vector<bool> bound(parameters.size(), false);
  for (std::size_t i = 0; i < args.positional.size(); ++i) {
    scope.variables[parameters[i].name] = args.positional[i];
    bound[i] = true;
  }
  for (const auto& [name, value] : args.keyword) {
    if (name == "caller") {
      scope.variables["caller"] = value;
      continue;
    }
    bool matched = false;
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      if (parameters[i].name != name) continue;
      if (bound[i])
        throw EvalError(fmt::format("TypeError: macro '{}' got multiple values for argument '{}'", macro_name, name));
      scope.variables[name] = value;
      bound[i] = true;
      matched = true;
    }
    if (!matched)
      throw EvalError(fmt::format("TypeError: macro '{}' takes no keyword argument '{}'", macro_name, name));
  }
  // Defaults are evaluated at call time inside the macro's scope, as jinja2 does.
  Renderer::ScopeGuard guard(renderer, scope_ptr);
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    if (bound[i]) continue;
    scope.variables[parameters[i].name] =
        parameters[i].default_value
            ? parameters[i].default_value->evaluate(renderer)
            : Value::undefined(fmt::format("parameter '{}' was not provided", parameters[i].name));
  }
}

// A callable that renders `body` in a fresh scope below `defining_scope`. The
// scope is held weakly: the macro is itself stored in that scope, and a strong
// reference would keep both alive forever.
Value make_macro(Renderer& renderer, std::string name, const std::vector<MacroParameter>& parameters, const Body& body,
                 const std::shared_ptr<Scope>& defining_scope) {
  std::weak_ptr<Scope> weak_scope = defining_scope;
  Renderer* renderer_ptr = &renderer;
  const auto* parameters_ptr = &parameters;
  const auto* body_ptr = &body;
  return Value::function(name, [=](const CallArgs& args) -> Value {
    auto parent = weak_scope.lock();
    if (!parent) throw EvalError(fmt::format("macro '{}' was called after its defining scope ended", name));
    auto scope = std::make_shared<Scope>(parent);
    bind_parameters(*renderer_ptr, scope, name, *parameters_ptr, args);
    return Value(renderer_ptr->capture(*body_ptr, scope));
  });
}

void unpack_into(Renderer& renderer, const std::vector<std::string>& names, const Value& value) {
  if (names.size() == 1) {
    renderer.assign(names[0], value);
    return;
  }
  ValueList items = iterate(value);
  if (items.size() != names.size()) {
    throw EvalError(fmt::format("ValueError: {} values to unpack (expected {}, got {})",
                                items.size() < names.size() ? "not enough" : "too many", names.size(), items.size()));
  }
  for (std::size_t i = 0; i < names.size(); ++i) renderer.assign(names[i], items[i]);
}

}  // namespace

// ---- expressions -------------------------------------------------------------------------

Value LiteralExpr::evaluate(Renderer&) const { return value; }

Value ListExpr::evaluate(Renderer& renderer) const {
  ValueList values;
  values.reserve(items.size());
  for (const auto& item : items) values.push_back(item->evaluate(renderer));
  return Value(std::move(values), is_tuple);
}

Value DictExpr::evaluate(Renderer& renderer) const {
  Dict dict;
  for (const auto& [key, value] : items) {
    Value k = key->evaluate(renderer);
    dict.set(k.is_string() ? k.as_string() : to_python_str(k), value->evaluate(renderer));
  }
  return Value(std::move(dict));
}

Value NameExpr::evaluate(Renderer& renderer) const { return renderer.lookup(name); }

Value AttributeExpr::evaluate(Renderer& renderer) const {
  return get_attribute(object->evaluate(renderer).require_defined(), name);
}

Value SubscriptExpr::evaluate(Renderer& renderer) const {
  Value container = object->evaluate(renderer);
  container.require_defined();
  return get_item(container, key->evaluate(renderer));
}

Value SliceExpr::evaluate(Renderer& renderer) const {
  Value container = object->evaluate(renderer);
  container.require_defined();
  const auto part = [&](const ExpressionPtr& e) { return e ? e->evaluate(renderer) : Value(nullptr); };
  return get_slice(container, part(start), part(stop), part(step));
}

Value CallExpr::evaluate(Renderer& renderer) const {
  Value function = callee->evaluate(renderer);
  return call_value(function, evaluate_arguments(renderer, arguments));
}

Value FilterExpr::evaluate(Renderer& renderer) const { return apply(renderer, operand->evaluate(renderer)); }

Value FilterExpr::apply(Renderer& renderer, Value input) const {
  return apply_filter(name, input, evaluate_arguments(renderer, arguments));
}

Value TestExpr::evaluate(Renderer& renderer) const {
  const bool result = apply_test(name, operand->evaluate(renderer), evaluate_arguments(renderer, arguments));
  return Value(negated ? !result : result);
}

Value UnaryExpr::evaluate(Renderer& renderer) const {
  Value value = operand->evaluate(renderer);
  switch (op) {
    case Op::logical_not: return Value(!value.truthy());
    case Op::negate:
      value.require_defined();
      if (value.is_float()) return Value(-value.as_number());
      if (value.is_number()) return Value(-value.as_int());
      throw EvalError(fmt::format("TypeError: bad operand type for unary -: '{}'", value.type_description()));
    case Op::plus:
      value.require_defined();
      if (value.is_bool()) return Value(value.as_int());
      if (value.is_number()) return value;
      throw EvalError(fmt::format("TypeError: bad operand type for unary +: '{}'", value.type_description()));
  }
  return value;
}

namespace {
bool compare(const std::string& op, const Value& l, const Value& r) {
  if (op == "==") return python_equal(l, r);
  if (op == "!=") return !python_equal(l, r);
  if (op == "<") return python_less(l, r);
  if (op == ">") return python_less(r, l);
  if (op == "<=") return python_less(l, r) || python_equal(l, r);
  if (op == ">=") return python_less(r, l) || python_equal(l, r);
  if (op == "in") return python_contains(r, l);
  if (op == "not in") return !python_contains(r, l);
  throw EvalError(fmt::format("unknown comparison operator '{}'", op));
}

bool is_comparison(const std::string& op) {
  return op == "==" || op == "!=" || op == "<" || op == ">" || op == "<=" || op == ">=" || op == "in" || op == "not in";
}
}  // namespace

Value CompareChainExpr::evaluate(Renderer& renderer) const {
  Value left = first->evaluate(renderer);
  for (const auto& [op, operand] : rest) {
    Value right = operand->evaluate(renderer);
    if (!compare(op, left, right)) return Value(false);
    left = std::move(right);
  }
  return Value(true);
}

Value BinaryExpr::evaluate(Renderer& renderer) const {
  // and/or short-circuit and yield an operand, like Python.
  if (op == "and") {
    Value l = left->evaluate(renderer);
    return l.truthy() ? right->evaluate(renderer) : l;
  }
  if (op == "or") {
    Value l = left->evaluate(renderer);
    return l.truthy() ? l : right->evaluate(renderer);
  }
  Value l = left->evaluate(renderer);
  Value r = right->evaluate(renderer);
  if (op == "~") return Value(to_python_str(l) + to_python_str(r));
  if (is_comparison(op)) return Value(compare(op, l, r));
  return arithmetic(op, l, r);
}

Value ConditionalExpr::evaluate(Renderer& renderer) const {
  if (condition->evaluate(renderer).truthy()) return if_true->evaluate(renderer);
  if (if_false) return if_false->evaluate(renderer);
  return Value::undefined(fmt::format(
      "the inline if-expression on line {} evaluated to false and no else section was defined.", position.line));
}

// ---- statements ---------------------------------------------------------------------------

Flow TextStmt::render(Renderer& renderer) const {
  renderer.write(text);
  return Flow::normal;
}

Flow OutputStmt::render(Renderer& renderer) const {
  renderer.write(to_python_str(expression->evaluate(renderer)));
  return Flow::normal;
}

Flow IfStmt::render(Renderer& renderer) const {
  for (const auto& branch : branches) {
    if (branch.condition->evaluate(renderer).truthy()) return renderer.render_body(branch.body);
  }
  return renderer.render_body(else_body);
}

Flow ForStmt::render(Renderer& renderer) const {
  const Value iterable_value = iterable->evaluate(renderer);
  ValueList items = iterate(iterable_value);

  if (filter) {
    // `for x in y if cond`: the condition sees the loop variables but not `loop`,
    // and loop.length/index count only the items that pass.
    ValueList kept;
    for (auto& item : items) {
      Renderer::ScopeGuard guard(renderer, std::make_shared<Scope>(renderer.current_scope()));
      unpack_into(renderer, targets, item);
      if (filter->evaluate(renderer).truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }

  const auto length = static_cast<std::int64_t>(items.size());
  for (std::int64_t i = 0; i < length; ++i) {
    Renderer::ScopeGuard guard(renderer, std::make_shared<Scope>(renderer.current_scope()));
    unpack_into(renderer, targets, items[i]);
    Dict loop;
    loop.set("index", Value(i + 1));
    loop.set("index0", Value(i));
    loop.set("revindex", Value(length - i));
    loop.set("revindex0", Value(length - i - 1));
    loop.set("first", Value(i == 0));
    loop.set("last", Value(i == length - 1));
    loop.set("length", Value(length));
    loop.set("depth", Value(1));
    loop.set("depth0", Value(0));
    loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
    loop.set("nextitem", i + 1 < length ? items[i + 1] : Value::undefined("there is no next item"));
    loop.set("cycle", Value::function("cycle", [i](const CallArgs& args) -> Value {
               if (args.positional.empty()) throw EvalError("TypeError: no items for cycling given");
               return args.positional[static_cast<std::size_t>(i) % args.positional.size()];
             }));
    renderer.assign("loop", Value(std::move(loop)));
    if (renderer.render_body(body) == Flow::break_loop) break;
  }
  if (length == 0) return renderer.render_body(else_body);
  return Flow::normal;
}

Flow SetStmt::render(Renderer& renderer) const {
  Value result;
  if (value) {
    result = value->evaluate(renderer);
  } else {
    result = Value(renderer.capture(body, std::make_shared<Scope>(renderer.current_scope())));
    for (const auto& filter : body_filters) result = filter->apply(renderer, std::move(result));
  }
  if (!target.namespace_attribute.empty()) {
    Value ns = renderer.lookup(target.names[0]);
    if (!ns.is_namespace()) throw EvalError("TemplateRuntimeError: cannot assign attribute on non-namespace object");
    ns.as_namespace().attributes.set(target.namespace_attribute, std::move(result));
    return Flow::normal;
  }
  unpack_into(renderer, target.names, result);
  return Flow::normal;
}

Flow MacroStmt::render(Renderer& renderer) const {
  renderer.assign(name, make_macro(renderer, name, parameters, body, renderer.current_scope()));
  return Flow::normal;
}

Flow CallBlockStmt::render(Renderer& renderer) const {
  Value caller = make_macro(renderer, "caller", caller_parameters, body, renderer.current_scope());
  Value function = call->callee->evaluate(renderer);
  CallArgs args = evaluate_arguments(renderer, call->arguments);
  args.keyword.emplace_back("caller", caller);
  renderer.write(to_python_str(call_value(function, args)));
  return Flow::normal;
}

Flow FilterBlockStmt::render(Renderer& renderer) const {
  Value result(renderer.capture(body, std::make_shared<Scope>(renderer.current_scope())));
  for (const auto& filter : filters) result = filter->apply(renderer, std::move(result));
  renderer.write(to_python_str(result));
  return Flow::normal;
}

Flow LoopControlStmt::render(Renderer&) const { return flow; }

Flow SequenceStmt::render(Renderer& renderer) const { return renderer.render_body(body); }

Flow DoStmt::render(Renderer& renderer) const {
  expression->evaluate(renderer);
  return Flow::normal;
}

// ---- globals --------------------------------------------------------------------------------

void install_builtin_globals(Scope& scope) {
  scope.variables["raise_exception"] = Value::function("raise_exception", [](const CallArgs& args) -> Value {
    throw RaisedByTemplate(args.positional.empty() ? std::string() : to_python_str(args.positional[0]));
  });

  scope.variables["namespace"] = Value::function("namespace", [](const CallArgs& args) -> Value {
    auto ns = std::make_shared<Namespace>();
    for (const auto& initial : args.positional) {
      if (!initial.is_dict()) throw EvalError("TypeError: namespace() positional argument must be a dict");
      for (const auto& [key, value] : initial.as_dict().entries()) ns->attributes.set(key, value);
    }
    for (const auto& [key, value] : args.keyword) ns->attributes.set(key, value);
    return Value(std::move(ns));
  });

  scope.variables["dict"] = Value::function("dict", [](const CallArgs& args) -> Value {
    Dict dict;
    for (const auto& initial : args.positional) {
      if (!initial.is_dict()) throw EvalError("TypeError: dict() positional argument must be a dict");
      for (const auto& [key, value] : initial.as_dict().entries()) dict.set(key, value);
    }
    for (const auto& [key, value] : args.keyword) dict.set(key, value);
    return Value(std::move(dict));
  });

  scope.variables["range"] = Value::function("range", [](const CallArgs& args) -> Value {
    std::int64_t start = 0, stop = 0, step = 1;
    const auto integer = [](const Value& v) {
      if (!v.is_int() && !v.is_bool())
        throw EvalError(fmt::format("TypeError: '{}' cannot be interpreted as an integer", v.type_description()));
      return v.as_int();
    };
    if (args.positional.size() == 1) {
      stop = integer(args.positional[0]);
    } else if (args.positional.size() == 2 || args.positional.size() == 3) {
      start = integer(args.positional[0]);
      stop = integer(args.positional[1]);
      if (args.positional.size() == 3) step = integer(args.positional[2]);
    } else {
      throw EvalError("TypeError: range expected 1 to 3 arguments");
    }
    if (step == 0) throw EvalError("ValueError: range() arg 3 must not be zero");
    ValueList items;
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      // jinja2's sandbox caps ranges at 100000 items.
      if (items.size() >= 100000)
        throw EvalError("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
      items.push_back(Value(i));
    }
    return Value(std::move(items));
  });

  // transformers: strftime_now(format) = datetime.now().strftime(format)
  scope.variables["strftime_now"] = Value::function("strftime_now", [](const CallArgs& args) -> Value {
    if (args.positional.empty() || !args.positional[0].is_string())
      throw EvalError("TypeError: strftime_now() needs a format string");
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char buffer[256];
    const std::size_t n = std::strftime(buffer, sizeof buffer, args.positional[0].as_string().c_str(), &local);
    return Value(std::string(buffer, n));
  });
}

}  // namespace quanteval::runtime::jinja
