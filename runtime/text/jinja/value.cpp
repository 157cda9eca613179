#include "runtime/text/jinja/value.hpp"

#include <fmt/format.h>
#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace quanteval::runtime::jinja {

// ---- Dict ----------------------------------------------------------------------

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::set(std::string key, Value value) {
  for (auto& [k, v] : entries_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

// ---- Value ---------------------------------------------------------------------

Value::Value(ValueList list, bool is_tuple)
    : data_(std::make_shared<const ListBox>(ListBox{std::move(list), is_tuple})) {}

Value::Value(Dict dict) : data_(std::make_shared<const Dict>(std::move(dict))) {}

Value Value::function(std::string name, std::function<Value(const CallArgs&)> fn) {
  return Value(std::make_shared<const Callable>(Callable{std::move(name), std::move(fn)}));
}

Value::Kind Value::kind() const {
  // The variant's alternatives are declared in Kind's order.
  return static_cast<Kind>(data_.index());
}

bool Value::is_tuple() const { return is_list() && std::get<std::shared_ptr<const ListBox>>(data_)->is_tuple; }

std::int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::get<std::int64_t>(data_);
}

double Value::as_number() const {
  if (is_float()) return std::get<double>(data_);
  return static_cast<double>(as_int());
}

const ValueList& Value::as_list() const { return std::get<std::shared_ptr<const ListBox>>(data_)->items; }

const Dict& Value::as_dict() const { return *std::get<std::shared_ptr<const Dict>>(data_); }

bool Value::truthy() const {
  switch (kind()) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return as_bool();
    case Kind::integer: return as_int() != 0;
    case Kind::floating: return as_number() != 0.0;
    case Kind::string: return !as_string().empty();
    case Kind::list: return !as_list().empty();
    case Kind::dict: return as_dict().size() != 0;
    case Kind::name_space:
    case Kind::callable: return true;
  }
  return false;
}

const Value& Value::require_defined() const {
  if (is_undefined()) throw EvalError(undefined_message());
  return *this;
}

std::string Value::type_description() const {
  switch (kind()) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "None";
    case Kind::boolean: return "bool object";
    case Kind::integer: return "int object";
    case Kind::floating: return "float object";
    case Kind::string: return "str object";
    case Kind::list: return is_tuple() ? "tuple object" : "list object";
    case Kind::dict: return "dict object";
    case Kind::name_space: return "Namespace object";
    case Kind::callable: return "function object";
  }
  return "object";
}

// ---- UTF-8 -----------------------------------------------------------------------

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    int extra = 0;
    char32_t cp = lead;
    if (lead >= 0xF0) {
      extra = 3;
      cp = lead & 0x07;
    } else if (lead >= 0xE0) {
      extra = 2;
      cp = lead & 0x0F;
    } else if (lead >= 0xC0) {
      extra = 1;
      cp = lead & 0x1F;
    }
    // Malformed input cannot come from JSON strings; keep bytes as code points
    // rather than failing so that any text still renders.
    if (i + extra >= text.size() && extra > 0) {
      out.push_back(lead);
      ++i;
      continue;
    }
    for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    out.push_back(cp);
    i += 1 + extra;
  }
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_code_point(out, cp);
  return out;
}

std::size_t count_code_points(std::string_view text) {
  std::size_t n = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool is_python_whitespace(char32_t c) {
  // str.isspace(): the characters Python's str.strip()/split() treat as blanks.
  switch (c) {
    case ' ':
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000: return true;
    default: return c >= 0x2000 && c <= 0x200A;
  }
}

// ---- conversions -------------------------------------------------------------------

Value from_json(const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::ordered_json::value_t::null: return Value(nullptr);
    case nlohmann::ordered_json::value_t::boolean: return Value(json.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(json.get<std::int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value(static_cast<std::int64_t>(json.get<std::uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: return Value(json.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(json.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      items.reserve(json.size());
      for (const auto& element : json) items.push_back(from_json(element));
      return Value(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict dict;
      for (const auto& [key, element] : json.items()) dict.set(key, from_json(element));
      return Value(std::move(dict));
    }
    default: return Value(nullptr);  // binary / discarded: nothing a template can use
  }
}

std::string format_python_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then laid out with Python's repr rule:
  // positional when -4 <= exponent < 16, scientific otherwise.
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
  std::string sci(buffer, end);
  std::string sign;
  if (!sci.empty() && sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const auto e_pos = sci.find('e');
  std::string mantissa = sci.substr(0, e_pos);
  const int exponent = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();

  if (exponent >= -4 && exponent < 16) {
    std::string out;
    if (exponent >= 0) {
      std::string integer_part = digits.substr(0, std::min<std::size_t>(digits.size(), exponent + 1));
      while (static_cast<int>(integer_part.size()) < exponent + 1) integer_part.push_back('0');
      std::string fraction = digits.size() > static_cast<std::size_t>(exponent + 1) ? digits.substr(exponent + 1) : "0";
      out = integer_part + "." + fraction;
    } else {
      out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
    }
    return sign + out;
  }
  std::string out = digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  return sign + out;
}

namespace {

bool is_python_printable(char32_t c) {
  if (c == ' ') return true;
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
  }
}

std::string python_string_repr(const std::string& text) {
  const bool has_single = text.find('\'') != std::string::npos;
  const bool has_double = text.find('"') != std::string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : decode_utf8(text)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (is_python_printable(c)) {
      append_code_point(out, c);
    } else if (c < 0x100) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(c));
    } else if (c < 0x10000) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += fmt::format("\\U{:08x}", static_cast<unsigned>(c));
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace

std::string to_python_repr(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::undefined: return "Undefined";
    case Value::Kind::string: return python_string_repr(value.as_string());
    case Value::Kind::list: {
      const bool tuple = value.is_tuple();
      std::string out = tuple ? "(" : "[";
      const auto& items = value.as_list();
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += to_python_repr(items[i]);
      }
      if (tuple && items.size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return out;
    }
    case Value::Kind::dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, element] : value.as_dict().entries()) {
        if (!first) out += ", ";
        first = false;
        out += python_string_repr(key) + ": " + to_python_repr(element);
      }
      return out + "}";
    }
    default: return to_python_str(value);
  }
}

std::string to_python_str(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::undefined: return "";
    case Value::Kind::none: return "None";
    case Value::Kind::boolean: return value.as_bool() ? "True" : "False";
    case Value::Kind::integer: return std::to_string(value.as_int());
    case Value::Kind::floating: return format_python_float(value.as_number());
    case Value::Kind::string: return value.as_string();
    case Value::Kind::list:
    case Value::Kind::dict: return to_python_repr(value);
    case Value::Kind::name_space: {
      std::string out = "<Namespace {";
      bool first = true;
      for (const auto& [key, element] : value.as_namespace().attributes.entries()) {
        if (!first) out += ", ";
        first = false;
        out += python_string_repr(key) + ": " + to_python_repr(element);
      }
      return out + "}>";
    }
    case Value::Kind::callable: return "<function " + value.as_callable().name + ">";
  }
  return "";
}

// ---- json.dumps --------------------------------------------------------------------

namespace {

void dump_json_string(std::string& out, const std::string& text, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : decode_utf8(text)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else if (ensure_ascii && c > 0x7E) {
          if (c >= 0x10000) {
            const char32_t v = c - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
          } else {
            out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
          }
        } else {
          append_code_point(out, c);
        }
    }
  }
  out.push_back('"');
}

void dump_json_into(std::string& out, const Value& value, const JsonDumpOptions& options, int depth) {
  const auto newline_indent = [&](int level) {
    if (!options.indent) return std::string();
    std::string s = "\n";
    for (int i = 0; i < level; ++i) s += *options.indent;
    return s;
  };
  switch (value.kind()) {
    case Value::Kind::none: out += "null"; return;
    case Value::Kind::boolean: out += value.as_bool() ? "true" : "false"; return;
    case Value::Kind::integer: out += std::to_string(value.as_int()); return;
    case Value::Kind::floating: {
      const double d = value.as_number();
      if (std::isnan(d))
        out += "NaN";
      else if (std::isinf(d))
        out += d > 0 ? "Infinity" : "-Infinity";
      else
        out += format_python_float(d);
      return;
    }
    case Value::Kind::string: dump_json_string(out, value.as_string(), options.ensure_ascii); return;
    case Value::Kind::list: {
      const auto& items = value.as_list();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += "[" + newline_indent(depth + 1);
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += options.item_separator + newline_indent(depth + 1);
        dump_json_into(out, items[i], options, depth + 1);
      }
      out += newline_indent(depth) + "]";
      return;
    }
    case Value::Kind::dict:
    case Value::Kind::name_space: {
      const Dict& dict = value.is_dict() ? value.as_dict() : value.as_namespace().attributes;
      std::vector<const Dict::Entry*> entries;
      for (const auto& entry : dict.entries()) entries.push_back(&entry);
      if (options.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      if (entries.empty()) {
        out += "{}";
        return;
      }
      out += "{" + newline_indent(depth + 1);
      for (std::size_t i = 0; i < entries.size(); ++i) {
        if (i) out += options.item_separator + newline_indent(depth + 1);
        dump_json_string(out, entries[i]->first, options.ensure_ascii);
        out += options.key_separator;
        dump_json_into(out, entries[i]->second, options, depth + 1);
      }
      out += newline_indent(depth) + "}";
      return;
    }
    case Value::Kind::undefined: throw EvalError("TypeError: Object of type Undefined is not JSON serializable");
    case Value::Kind::callable: throw EvalError("TypeError: Object of type function is not JSON serializable");
  }
}

}  // namespace

std::string dump_json(const Value& value, const JsonDumpOptions& options) {
  std::string out;
  dump_json_into(out, value, options, 0);
  return out;
}

// ---- comparisons -------------------------------------------------------------------

bool python_equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_number() == b.as_number();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::undefined:
    case Value::Kind::none: return true;
    case Value::Kind::string: return a.as_string() == b.as_string();
    case Value::Kind::list: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!python_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::dict: {
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [key, element] : x.entries()) {
        const Value* other = y.find(key);
        if (!other || !python_equal(element, *other)) return false;
      }
      return true;
    }
    case Value::Kind::name_space: return &a.as_namespace() == &b.as_namespace();
    case Value::Kind::callable: return &a.as_callable() == &b.as_callable();
    default: return false;
  }
}

namespace {
std::string python_type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::none: return "NoneType";
    case Value::Kind::boolean: return "bool";
    case Value::Kind::integer: return "int";
    case Value::Kind::floating: return "float";
    case Value::Kind::string: return "str";
    case Value::Kind::list: return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::dict: return "dict";
    case Value::Kind::name_space: return "Namespace";
    case Value::Kind::callable: return "function";
    case Value::Kind::undefined: return "Undefined";
  }
  return "object";
}
}  // namespace

bool python_less(const Value& a, const Value& b) {
  a.require_defined();
  b.require_defined();
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_number() < b.as_number();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order = code point order
  if (a.is_list() && b.is_list()) {
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!python_equal(x[i], y[i])) return python_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  throw EvalError(fmt::format("TypeError: '<' not supported between instances of '{}' and '{}'", python_type_name(a),
                              python_type_name(b)));
}

bool python_contains(const Value& haystack, const Value& needle) {
  switch (haystack.kind()) {
    case Value::Kind::undefined: return false;  // jinja2's Undefined iterates as empty
    case Value::Kind::string:
      if (!needle.is_string()) {
        throw EvalError(
            fmt::format("TypeError: 'in <string>' requires string as left operand, not {}", python_type_name(needle)));
      }
      return haystack.as_string().find(needle.as_string()) != std::string::npos;
    case Value::Kind::list:
      return std::any_of(haystack.as_list().begin(), haystack.as_list().end(),
                         [&](const Value& item) { return python_equal(item, needle); });
    case Value::Kind::dict: return needle.is_string() && haystack.as_dict().find(needle.as_string()) != nullptr;
    case Value::Kind::name_space:
      return needle.is_string() && haystack.as_namespace().attributes.find(needle.as_string()) != nullptr;
    default:
      throw EvalError(fmt::format("TypeError: argument of type '{}' is not iterable", python_type_name(haystack)));
  }
}

}  // namespace quanteval::runtime::jinja
