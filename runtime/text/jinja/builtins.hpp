#pragma once
// jinja2's filters and tests, Python's str/dict/list methods, and jinja2's
// attribute/item lookup rules, over jinja::Value.
#include <string>

#include "runtime/text/jinja/value.hpp"

namespace quanteval::runtime::jinja {

// obj.name: a method of obj's type when it has one, else the dict item / namespace
// attribute; Undefined (with jinja2's message) when neither exists.
Value get_attribute(const Value& object, const std::string& name);

// obj[key]: the item (negative indices count from the end), falling back to an
// attribute for string keys; Undefined when missing.
Value get_item(const Value& object, const Value& key);

// obj[start:stop:step] with Python's slice rules, on lists and strings.
Value get_slice(const Value& object, const Value& start, const Value& stop, const Value& step);

// Throws EvalError "no filter named 'x'" / "no test named 'x'" for unknown names.
Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);
bool apply_test(const std::string& name, const Value& input, const CallArgs& args);

// The items a for-loop visits: list items, dict keys, string characters; nothing for Undefined.
ValueList iterate(const Value& iterable);

// Python's len(); TypeError for values without one.
std::int64_t python_len(const Value& value);

// Binary arithmetic with Python's rules: + - * / // % **.
Value arithmetic(const std::string& op, const Value& left, const Value& right);

}  // namespace quanteval::runtime::jinja
