#pragma once
// Values of the Jinja2-subset interpreter behind the chat-template renderer.
//
// The interpreter has to reproduce what jinja2 does on top of Python objects,
// so a Value models the Python types that chat templates meet: None, bool,
// int, float, str, list (and tuple), dict (insertion ordered, like Python 3.7+),
// jinja2's Undefined, namespace() objects, and callables (macros, globals,
// bound methods). Containers are immutable once built and shared by pointer:
// transformers renders in jinja2's ImmutableSandboxedEnvironment, so a template
// can never mutate a list or dict in place; only namespace objects are mutable.
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/text/utf8.hpp"  // append_code_point

namespace quanteval::runtime::jinja {

// An error raised while evaluating a template (TypeError, UndefinedError,
// raise_exception...). The renderer adds the template position.
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// raise_exception(msg) from inside a template: the message is the template's own.
struct RaisedByTemplate : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Value;
using ValueList = std::vector<Value>;
using KeywordArgs = std::vector<std::pair<std::string, Value>>;

// Python dict with string keys, insertion ordered.
class Dict {
 public:
  using Entry = std::pair<std::string, Value>;
  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);  // replaces in place, or appends
  const std::vector<Entry>& entries() const { return entries_; }
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

// Arguments of a call as written: f(a, b, key=c).
struct CallArgs {
  ValueList positional;
  KeywordArgs keyword;
};

struct Callable {
  std::string name;
  std::function<Value(const CallArgs&)> invoke;
};

// jinja2's Undefined remembers why it is undefined so that using it in a way
// that fails produces jinja2's message ("'x' is undefined",
// "'dict object' has no attribute 'y'").
struct Undefined {
  std::string message;
};

// A namespace() object: the one mutable container templates can assign into
// ({% set ns.attr = ... %}), which is how values escape a for-loop scope.
struct Namespace {
  Dict attributes;
};

class Value {
 public:
  enum class Kind { undefined, none, boolean, integer, floating, string, list, dict, name_space, callable };

  Value() : data_(Undefined{}) {}
  Value(std::nullptr_t) : data_(nullptr) {}
  Value(bool b) : data_(b) {}
  Value(int i) : data_(static_cast<std::int64_t>(i)) {}
  Value(std::int64_t i) : data_(i) {}
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(std::string_view s) : data_(std::string(s)) {}
  Value(const char* s) : data_(std::string(s)) {}
  Value(ValueList list, bool is_tuple = false);
  Value(Dict dict);
  Value(std::shared_ptr<Namespace> ns) : data_(std::move(ns)) {}
  Value(std::shared_ptr<const Callable> fn) : data_(std::move(fn)) {}

  static Value undefined(std::string why) { return Value(Undefined{std::move(why)}); }
  static Value function(std::string name, std::function<Value(const CallArgs&)> fn);

  Kind kind() const;
  bool is_undefined() const { return kind() == Kind::undefined; }
  bool is_none() const { return kind() == Kind::none; }
  bool is_bool() const { return kind() == Kind::boolean; }
  bool is_int() const { return kind() == Kind::integer; }
  bool is_float() const { return kind() == Kind::floating; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  // bool is an int in Python
  bool is_string() const { return kind() == Kind::string; }
  bool is_list() const { return kind() == Kind::list; }
  bool is_dict() const { return kind() == Kind::dict; }
  bool is_namespace() const { return kind() == Kind::name_space; }
  bool is_callable() const { return kind() == Kind::callable; }
  bool is_tuple() const;

  bool as_bool() const { return std::get<bool>(data_); }
  std::int64_t as_int() const;  // bool or int
  double as_number() const;     // bool, int or float
  const std::string& as_string() const { return std::get<std::string>(data_); }
  const ValueList& as_list() const;
  const Dict& as_dict() const;
  Namespace& as_namespace() const { return *std::get<std::shared_ptr<Namespace>>(data_); }
  const Callable& as_callable() const { return *std::get<std::shared_ptr<const Callable>>(data_); }
  const std::string& undefined_message() const { return std::get<Undefined>(data_).message; }

  // Python truthiness (Undefined is false).
  bool truthy() const;

  // Raises jinja2's UndefinedError when this is Undefined; for operations that
  // jinja2's Undefined refuses (attribute access, arithmetic, calls).
  const Value& require_defined() const;

  // Python-facing names used in error messages: "dict object", "str object".
  std::string type_description() const;

 private:
  explicit Value(Undefined u) : data_(std::move(u)) {}
  struct ListBox {
    ValueList items;
    bool is_tuple = false;
  };
  std::variant<Undefined, std::nullptr_t, bool, std::int64_t, double, std::string, std::shared_ptr<const ListBox>,
               std::shared_ptr<const Dict>, std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>
      data_;
};

// ---- conversions -------------------------------------------------------------

Value from_json(const nlohmann::ordered_json& json);

// Python str(value) as jinja2 prints it ({{ x }}, ~, |string): Undefined -> "",
// None -> "None", True -> "True", 1.0 -> "1.0", lists and dicts as repr.
std::string to_python_str(const Value& value);

// Python repr(value): strings quoted the way Python chooses.
std::string to_python_repr(const Value& value);

// Python float repr: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf".
std::string format_python_float(double value);

struct JsonDumpOptions {
  std::optional<std::string> indent;  // None, or the string used per level
  std::string item_separator = ", ";  // json.dumps defaults: ", " (or "," with indent)
  std::string key_separator = ": ";
  bool ensure_ascii = false;
  bool sort_keys = false;
};

// json.dumps(value, ...) as transformers' tojson filter calls it.
std::string dump_json(const Value& value, const JsonDumpOptions& options);

// ---- Python semantics --------------------------------------------------------

bool python_equal(const Value& a, const Value& b);
// a < b, raising TypeError like Python for unorderable operands.
bool python_less(const Value& a, const Value& b);
// `needle in haystack`.
bool python_contains(const Value& haystack, const Value& needle);

// ---- UTF-8 helpers (Python strings index by code point) -----------------------

std::u32string decode_utf8(std::string_view text);
std::string encode_utf8(std::u32string_view text);
std::size_t count_code_points(std::string_view text);
bool is_python_whitespace(char32_t c);

}  // namespace quanteval::runtime::jinja
