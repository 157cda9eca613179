#include "runtime/text/jinja/builtins.hpp"

#include <fmt/format.h>
#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <unordered_map>

namespace quanteval::runtime::jinja {

namespace {

// ---- argument access ------------------------------------------------------------------

// Reads a builtin's arguments by position or keyword, as Python would bind them
// to a signature (the filter's input value is not part of it).
class Signature {
 public:
  Signature(const CallArgs& args, std::string_view function, std::initializer_list<std::string_view> names)
      : args_(args), names_(names) {
    if (args.positional.size() > names_.size()) {
      throw EvalError(fmt::format("TypeError: {}() takes at most {} argument(s) ({} given)", function, names_.size(),
                                  args.positional.size()));
    }
    for (const auto& [name, value] : args.keyword) {
      if (std::find(names_.begin(), names_.end(), name) == names_.end()) {
        throw EvalError(fmt::format("TypeError: {}() got an unexpected keyword argument '{}'", function, name));
      }
    }
  }
  bool has(std::size_t i) const { return lookup(i) != nullptr; }
  Value get(std::size_t i, Value fallback = Value(nullptr)) const {
    const Value* v = lookup(i);
    return v ? *v : fallback;
  }

 private:
  const Value* lookup(std::size_t i) const {
    if (i < args_.positional.size()) return &args_.positional[i];
    for (const auto& [name, value] : args_.keyword) {
      if (name == names_[i]) return &value;
    }
    return nullptr;
  }
  const CallArgs& args_;
  std::vector<std::string_view> names_;
};

// By value: callers often pass a temporary (an argument read from a Signature).
std::string require_string(const Value& v, std::string_view what) {
  if (!v.is_string()) throw EvalError(fmt::format("TypeError: {} must be str, not {}", what, v.type_description()));
  return v.as_string();
}

std::int64_t require_int(const Value& v, std::string_view what) {
  if (!v.is_int() && !v.is_bool()) {
    throw EvalError(fmt::format("TypeError: {} must be an integer, not {}", what, v.type_description()));
  }
  return v.as_int();
}

// ---- strings ----------------------------------------------------------------------------

char32_t upper_cp(char32_t c) { return static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))); }
char32_t lower_cp(char32_t c) { return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))); }

bool is_alpha_cp(char32_t c) {
  if (c < 0x80) return std::isalpha(static_cast<int>(c)) != 0;
  const auto category = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return category >= UTF8PROC_CATEGORY_LU && category <= UTF8PROC_CATEGORY_LO;
}

bool is_digit_cp(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ND;
}

// \w in Python's re: letters, digits, underscore (and other alphanumerics).
bool is_word_cp(char32_t c) {
  if (c == '_' || is_alpha_cp(c) || is_digit_cp(c)) return true;
  if (c < 0x80) return false;
  const auto category = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return category == UTF8PROC_CATEGORY_NL || category == UTF8PROC_CATEGORY_NO || category == UTF8PROC_CATEGORY_MN ||
         category == UTF8PROC_CATEGORY_MC;
}

std::string map_case(const std::string& text, char32_t (*mapping)(char32_t)) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : decode_utf8(text)) append_code_point(out, mapping(c));
  return out;
}

std::string py_upper(const std::string& s) { return map_case(s, upper_cp); }
std::string py_lower(const std::string& s) { return map_case(s, lower_cp); }

std::string py_capitalize(const std::string& s) {
  auto chars = decode_utf8(s);
  for (std::size_t i = 0; i < chars.size(); ++i) chars[i] = i == 0 ? upper_cp(chars[i]) : lower_cp(chars[i]);
  return encode_utf8(chars);
}

// str.title(): a letter is upper-cased when it follows a non-letter.
std::string py_title(const std::string& s) {
  auto chars = decode_utf8(s);
  bool previous_cased = false;
  for (auto& c : chars) {
    const bool cased = is_alpha_cp(c);
    c = cased ? (previous_cased ? lower_cp(c) : upper_cp(c)) : c;
    previous_cased = cased;
  }
  return encode_utf8(chars);
}

// str.strip([chars]) and its one-sided variants.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  auto text = decode_utf8(s);
  std::u32string set;
  const bool whitespace = chars.is_none() || chars.is_undefined();
  if (!whitespace) set = decode_utf8(require_string(chars, "strip argument"));
  const auto strip_it = [&](char32_t c) {
    return whitespace ? is_python_whitespace(c) : set.find(c) != std::u32string::npos;
  };
  std::size_t begin = 0, end = text.size();
  if (left) {
    while (begin < end && strip_it(text[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip_it(text[end - 1])) --end;
  }
  return encode_utf8(std::u32string_view(text).substr(begin, end - begin));
}

ValueList py_split(const std::string& s, const Value& separator, std::int64_t max_split, bool from_right) {
  ValueList parts;
  if (separator.is_none() || separator.is_undefined()) {
    // Runs of whitespace separate; empty strings are never produced.
    auto text = decode_utf8(s);
    std::vector<std::pair<std::size_t, std::size_t>> words;
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && is_python_whitespace(text[i])) ++i;
      if (i >= text.size()) break;
      std::size_t j = i;
      while (j < text.size() && !is_python_whitespace(text[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    if (max_split >= 0 && static_cast<std::int64_t>(words.size()) > max_split + 1) {
      // The unsplit remainder keeps its inner whitespace but not its outer edge.
      if (from_right) {
        const std::size_t keep_from = words.size() - static_cast<std::size_t>(max_split);
        parts.push_back(Value(encode_utf8(std::u32string_view(text).substr(0, words[keep_from - 1].second))));
        for (std::size_t k = keep_from; k < words.size(); ++k) {
          parts.push_back(
              Value(encode_utf8(std::u32string_view(text).substr(words[k].first, words[k].second - words[k].first))));
        }
        // Python strips leading whitespace of the remainder too.
        std::string first = py_strip(parts[0].as_string(), Value(nullptr), true, false);
        parts[0] = Value(first);
      } else {
        for (std::int64_t k = 0; k < max_split; ++k) {
          parts.push_back(
              Value(encode_utf8(std::u32string_view(text).substr(words[k].first, words[k].second - words[k].first))));
        }
        parts.push_back(Value(py_strip(encode_utf8(std::u32string_view(text).substr(words[max_split].first)),
                                       Value(nullptr), false, true)));
      }
      return parts;
    }
    for (auto [a, b] : words) parts.push_back(Value(encode_utf8(std::u32string_view(text).substr(a, b - a))));
    return parts;
  }
  const std::string sep = require_string(separator, "separator");
  if (sep.empty()) throw EvalError("ValueError: empty separator");
  if (!from_right) {
    std::size_t start = 0;
    std::int64_t splits = 0;
    while (max_split < 0 || splits < max_split) {
      const std::size_t found = s.find(sep, start);
      if (found == std::string::npos) break;
      parts.push_back(Value(s.substr(start, found - start)));
      start = found + sep.size();
      ++splits;
    }
    parts.push_back(Value(s.substr(start)));
    return parts;
  }
  std::vector<std::string> reversed;
  std::size_t end = s.size();
  std::int64_t splits = 0;
  while (max_split < 0 || splits < max_split) {
    if (end < sep.size()) break;
    const std::size_t found = s.rfind(sep, end - sep.size());
    if (found == std::string::npos) break;
    reversed.push_back(s.substr(found + sep.size(), end - found - sep.size()));
    end = found;
    ++splits;
  }
  reversed.push_back(s.substr(0, end));
  for (auto it = reversed.rbegin(); it != reversed.rend(); ++it) parts.push_back(Value(*it));
  return parts;
}

std::string py_replace(const std::string& s, const std::string& old_text, const std::string& new_text,
                       std::int64_t count) {
  if (old_text.empty()) {
    // Python inserts the replacement between every character (and at both ends).
    auto chars = decode_utf8(s);
    std::string out;
    std::int64_t done = 0;
    for (std::size_t i = 0; i <= chars.size(); ++i) {
      if (count < 0 || done < count) {
        out += new_text;
        ++done;
      }
      if (i < chars.size()) append_code_point(out, chars[i]);
    }
    return out;
  }
  std::string out;
  std::size_t start = 0;
  std::int64_t done = 0;
  while (count < 0 || done < count) {
    const std::size_t found = s.find(old_text, start);
    if (found == std::string::npos) break;
    out.append(s, start, found - start);
    out += new_text;
    start = found + old_text.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

std::vector<std::string> split_lines(const std::string& s, bool keep_ends) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\n' && s[i] != '\r') continue;
    std::size_t end = i;
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
    lines.push_back(s.substr(start, (keep_ends ? i + 1 : end) - start));
    start = i + 1;
  }
  if (start < s.size()) lines.push_back(s.substr(start));
  return lines;
}

// Python code-point index of a byte offset.
std::int64_t code_point_index(const std::string& s, std::size_t byte_offset) {
  return static_cast<std::int64_t>(count_code_points(std::string_view(s).substr(0, byte_offset)));
}

// Python's "{} {name}".format(...) for plain replacement fields.
std::string py_format(const std::string& pattern, const CallArgs& args) {
  std::string out;
  std::size_t auto_index = 0;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '{' && i + 1 < pattern.size() && pattern[i + 1] == '{') {
      out.push_back('{');
      ++i;
    } else if (c == '}' && i + 1 < pattern.size() && pattern[i + 1] == '}') {
      out.push_back('}');
      ++i;
    } else if (c == '{') {
      const std::size_t close = pattern.find('}', i);
      if (close == std::string::npos) throw EvalError("ValueError: Single '{' encountered in format string");
      std::string field = pattern.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!") != std::string::npos) {
        throw EvalError("str.format(): format specs and conversions are not supported");
      }
      const Value* value = nullptr;
      if (field.empty()) {
        if (auto_index >= args.positional.size()) throw EvalError("IndexError: Replacement index out of range");
        value = &args.positional[auto_index++];
      } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
        // Any index with more digits than the arguments could need is out of range (and may overflow stoul).
        if (field.size() > 9 || std::stoul(field) >= args.positional.size())
          throw EvalError("IndexError: Replacement index out of range");
        const std::size_t index = std::stoul(field);
        value = &args.positional[index];
      } else {
        for (const auto& [name, v] : args.keyword) {
          if (name == field) value = &v;
        }
        if (!value) throw EvalError(fmt::format("KeyError: '{}'", field));
      }
      out += to_python_str(*value);
      i = close;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// ---- methods ----------------------------------------------------------------------------

std::optional<Value> string_method(const Value& self, const std::string& name) {
  const std::string s = self.as_string();
  using Fn = std::function<Value(const CallArgs&)>;
  const auto bind = [&](Fn fn) { return std::optional<Value>(Value::function("str." + name, std::move(fn))); };

  if (name == "startswith" || name == "endswith") {
    const bool starts = name == "startswith";
    return bind([s, starts](const CallArgs& args) {
      Signature sig(args, starts ? "startswith" : "endswith", {"prefix"});
      const Value affix = sig.get(0);
      ValueList candidates = affix.is_list() ? affix.as_list() : ValueList{affix};
      for (const auto& candidate : candidates) {
        const std::string a = require_string(candidate, starts ? "startswith argument" : "endswith argument");
        if (starts ? s.compare(0, a.size(), a) == 0 && s.size() >= a.size()
                   : s.size() >= a.size() && s.compare(s.size() - a.size(), a.size(), a) == 0) {
          return Value(true);
        }
      }
      return Value(false);
    });
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip", right = name != "lstrip";
    return bind([s, left, right, name](const CallArgs& args) {
      Signature sig(args, name, {"chars"});
      return Value(py_strip(s, sig.get(0), left, right));
    });
  }
  if (name == "split" || name == "rsplit") {
    const bool from_right = name == "rsplit";
    return bind([s, from_right, name](const CallArgs& args) {
      Signature sig(args, name, {"sep", "maxsplit"});
      return Value(py_split(s, sig.get(0), require_int(sig.get(1, Value(-1)), "maxsplit"), from_right));
    });
  }
  if (name == "splitlines") {
    return bind([s](const CallArgs& args) {
      Signature sig(args, "splitlines", {"keepends"});
      ValueList out;
      for (auto& line : split_lines(s, sig.get(0, Value(false)).truthy())) out.push_back(Value(std::move(line)));
      return Value(std::move(out));
    });
  }
  if (name == "upper") return bind([s](const CallArgs&) { return Value(py_upper(s)); });
  if (name == "lower" || name == "casefold") return bind([s](const CallArgs&) { return Value(py_lower(s)); });
  if (name == "title") return bind([s](const CallArgs&) { return Value(py_title(s)); });
  if (name == "capitalize") return bind([s](const CallArgs&) { return Value(py_capitalize(s)); });
  if (name == "replace") {
    return bind([s](const CallArgs& args) {
      Signature sig(args, "replace", {"old", "new", "count"});
      return Value(py_replace(s, require_string(sig.get(0), "replace() argument 1"),
                              require_string(sig.get(1), "replace() argument 2"),
                              require_int(sig.get(2, Value(-1)), "count")));
    });
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const bool reverse = name[0] == 'r';
    const bool raises = name.find("index") != std::string::npos;
    return bind([s, reverse, raises, name](const CallArgs& args) {
      Signature sig(args, name, {"sub"});
      const std::string sub = require_string(sig.get(0), name + "() argument");
      const std::size_t found = reverse ? s.rfind(sub) : s.find(sub);
      if (found == std::string::npos) {
        if (raises) throw EvalError("ValueError: substring not found");
        return Value(-1);
      }
      return Value(code_point_index(s, found));
    });
  }
  if (name == "count") {
    return bind([s](const CallArgs& args) {
      Signature sig(args, "count", {"sub"});
      const std::string sub = require_string(sig.get(0), "count() argument");
      if (sub.empty()) return Value(static_cast<std::int64_t>(count_code_points(s) + 1));
      std::int64_t n = 0;
      for (std::size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
      return Value(n);
    });
  }
  if (name == "join") {
    return bind([s](const CallArgs& args) {
      Signature sig(args, "join", {"iterable"});
      std::string out;
      bool first = true;
      for (const auto& item : iterate(sig.get(0))) {
        if (!first) out += s;
        first = false;
        out += require_string(item, "sequence item");
      }
      return Value(std::move(out));
    });
  }
  if (name == "format") return bind([s](const CallArgs& args) { return Value(py_format(s, args)); });
  if (name == "removeprefix" || name == "removesuffix") {
    const bool prefix = name == "removeprefix";
    return bind([s, prefix, name](const CallArgs& args) {
      Signature sig(args, name, {"affix"});
      const std::string a = require_string(sig.get(0), name + "() argument");
      if (prefix && s.compare(0, a.size(), a) == 0 && s.size() >= a.size()) return Value(s.substr(a.size()));
      if (!prefix && s.size() >= a.size() && s.compare(s.size() - a.size(), a.size(), a) == 0) {
        return Value(s.substr(0, s.size() - a.size()));
      }
      return Value(s);
    });
  }
  const auto predicate = [&](auto test) {
    return bind([s, test](const CallArgs&) {
      auto chars = decode_utf8(s);
      return Value(!chars.empty() && std::all_of(chars.begin(), chars.end(), test));
    });
  };
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") return predicate(is_digit_cp);
  if (name == "isalpha") return predicate(is_alpha_cp);
  if (name == "isalnum") return predicate([](char32_t c) { return is_alpha_cp(c) || is_digit_cp(c); });
  if (name == "isspace") return predicate(is_python_whitespace);
  if (name == "isupper" || name == "islower") {
    const bool upper = name == "isupper";
    return bind([s, upper](const CallArgs&) {
      bool any_cased = false;
      for (char32_t c : decode_utf8(s)) {
        if (!is_alpha_cp(c)) continue;
        if (upper_cp(c) == c && lower_cp(c) == c) continue;  // uncased letter
        any_cased = true;
        if (upper ? upper_cp(c) != c : lower_cp(c) != c) return Value(false);
      }
      return Value(any_cased);
    });
  }
  if (name == "zfill" || name == "ljust" || name == "rjust" || name == "center") {
    return bind([s, name](const CallArgs& args) {
      Signature sig(args, name, {"width", "fillchar"});
      const std::int64_t width = require_int(sig.get(0), "width");
      const std::string fill = name == "zfill" ? "0" : require_string(sig.get(1, Value(" ")), "fillchar");
      const auto length = static_cast<std::int64_t>(count_code_points(s));
      if (width <= length) return Value(s);
      const std::int64_t pad = width - length;
      const auto repeat = [&](std::int64_t n) {
        std::string r;
        for (std::int64_t i = 0; i < n; ++i) r += fill;
        return r;
      };
      if (name == "ljust") return Value(s + repeat(pad));
      if (name == "rjust") return Value(repeat(pad) + s);
      if (name == "center") {
        // CPython: left = pad/2 + (pad & width & 1)
        const std::int64_t left = pad / 2 + (pad & width & 1);
        return Value(repeat(left) + s + repeat(pad - left));
      }
      if (!s.empty() && (s[0] == '+' || s[0] == '-')) return Value(s.substr(0, 1) + repeat(pad) + s.substr(1));
      return Value(repeat(pad) + s);
    });
  }
  return std::nullopt;
}

ValueList dict_items(const Dict& dict) {
  ValueList items;
  items.reserve(dict.size());
  for (const auto& [key, value] : dict.entries()) items.push_back(Value(ValueList{Value(key), value}, true));
  return items;
}

std::optional<Value> dict_method(const Value& self, const std::string& name) {
  if (name == "items")
    return Value::function("dict.items", [self](const CallArgs&) { return Value(dict_items(self.as_dict())); });
  if (name == "keys") {
    return Value::function("dict.keys", [self](const CallArgs&) {
      ValueList keys;
      for (const auto& entry : self.as_dict().entries()) keys.push_back(Value(entry.first));
      return Value(std::move(keys));
    });
  }
  if (name == "values") {
    return Value::function("dict.values", [self](const CallArgs&) {
      ValueList values;
      for (const auto& entry : self.as_dict().entries()) values.push_back(entry.second);
      return Value(std::move(values));
    });
  }
  if (name == "get") {
    return Value::function("dict.get", [self](const CallArgs& args) {
      Signature sig(args, "get", {"key", "default"});
      const Value key = sig.get(0);
      const Value* found = key.is_string() ? self.as_dict().find(key.as_string()) : nullptr;
      return found ? *found : sig.get(1);
    });
  }
  return std::nullopt;
}

std::optional<Value> list_method(const Value& self, const std::string& name) {
  if (name == "count") {
    return Value::function("list.count", [self](const CallArgs& args) {
      Signature sig(args, "count", {"value"});
      const Value needle = sig.get(0);
      return Value(static_cast<std::int64_t>(std::count_if(self.as_list().begin(), self.as_list().end(),
                                                           [&](const Value& v) { return python_equal(v, needle); })));
    });
  }
  if (name == "index") {
    return Value::function("list.index", [self](const CallArgs& args) {
      Signature sig(args, "index", {"value"});
      const Value needle = sig.get(0);
      const auto& items = self.as_list();
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (python_equal(items[i], needle)) return Value(static_cast<std::int64_t>(i));
      }
      throw EvalError(fmt::format("ValueError: {} is not in list", to_python_repr(needle)));
    });
  }
  return std::nullopt;
}

Value missing_attribute(const Value& object, const std::string& name) {
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", object.type_description(), name));
}

// Python's sequence index with negative counting; nullopt when out of range.
std::optional<std::size_t> resolve_index(std::int64_t index, std::size_t size) {
  if (index < 0) index += static_cast<std::int64_t>(size);
  if (index < 0 || index >= static_cast<std::int64_t>(size)) return std::nullopt;
  return static_cast<std::size_t>(index);
}

// ---- filters ----------------------------------------------------------------------------

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Attribute paths like "a.b" or "0" as jinja2's make_attrgetter resolves them.
Value get_attribute_path(const Value& object, const Value& attribute) {
  if (!attribute.is_string()) return get_item(object, attribute);
  Value current = object;
  std::string path = attribute.as_string();
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool numeric = !part.empty() && part.size() <= 18 &&
                         std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    current.require_defined();
    current = numeric ? get_item(current, Value(static_cast<std::int64_t>(std::stoll(part))))
                      : get_item(current, Value(part));
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

// Sort key for sort/dictsort/unique/min/max: strings lower-cased unless case-sensitive.
Value comparable(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value(py_lower(v.as_string()));
  return v;
}

ValueList sorted(ValueList items, bool reverse, const std::function<Value(const Value&)>& key) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (auto& item : items) keyed.emplace_back(key(item), std::move(item));
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& a, const auto& b) {
    return reverse ? python_less(b.first, a.first) : python_less(a.first, b.first);
  });
  ValueList out;
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return out;
}

Value filter_tojson(const Value& input, const CallArgs& args) {
  // transformers' override: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  Signature sig(args, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions options;
  options.ensure_ascii = sig.get(0, Value(false)).truthy();
  const Value indent = sig.get(1);
  if (indent.is_string()) {
    options.indent = indent.as_string();
  } else if (indent.is_int()) {
    options.indent = std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, indent.as_int())), ' ');
  } else if (!indent.is_none()) {
    throw EvalError("TypeError: tojson indent must be an int or a string");
  }
  if (options.indent) options.item_separator = ",";
  const Value separators = sig.get(2);
  if (separators.is_list() && separators.as_list().size() == 2) {
    options.item_separator = require_string(separators.as_list()[0], "item separator");
    options.key_separator = require_string(separators.as_list()[1], "key separator");
  }
  options.sort_keys = sig.get(3, Value(false)).truthy();
  return Value(dump_json(input, options));
}

Value filter_indent(const Value& input, const CallArgs& args) {
  Signature sig(args, "indent", {"width", "first", "blank"});
  const Value width = sig.get(0, Value(4));
  const std::string indentation =
      width.is_string() ? width.as_string() : std::string(static_cast<std::size_t>(require_int(width, "width")), ' ');
  const bool first = sig.get(1, Value(false)).truthy();
  const bool blank = sig.get(2, Value(false)).truthy();
  const auto lines = split_lines(to_python_str(input) + "\n", false);
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (blank || !lines[i].empty()) out += indentation;
    }
    out += lines[i];
  }
  if (first) out = indentation + out;
  return Value(out);
}

Value filter_title(const Value& input) {
  // jinja2's own title: capitalise each chunk after runs of [-\s({[<].
  auto chars = decode_utf8(to_python_str(input));
  const auto is_boundary = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_python_whitespace(c);
  };
  bool at_start = true;
  for (auto& c : chars) {
    if (is_boundary(c)) {
      at_start = true;
      continue;
    }
    c = at_start ? upper_cp(c) : lower_cp(c);
    at_start = false;
  }
  return Value(encode_utf8(chars));
}

Value filter_int(const Value& input, const CallArgs& args) {
  Signature sig(args, "int", {"default", "base"});
  const Value fallback = sig.get(0, Value(0));
  if (input.is_bool() || input.is_int()) return Value(input.as_int());
  if (input.is_float()) return Value(static_cast<std::int64_t>(std::trunc(input.as_number())));
  if (input.is_string()) {
    const std::string text = py_strip(input.as_string(), Value(nullptr), true, true);
    const std::int64_t base = require_int(sig.get(1, Value(10)), "base");
    try {
      std::size_t used = 0;
      const long long v = std::stoll(text, &used, static_cast<int>(base));
      if (used == text.size()) return Value(static_cast<std::int64_t>(v));
    } catch (const std::exception&) {
    }
    try {
      std::size_t used = 0;
      const double d = std::stod(text, &used);
      if (used == text.size()) return Value(static_cast<std::int64_t>(std::trunc(d)));
    } catch (const std::exception&) {
    }
  }
  return fallback;
}

Value filter_float(const Value& input, const CallArgs& args) {
  Signature sig(args, "float", {"default"});
  if (input.is_number()) return Value(input.as_number());
  if (input.is_string()) {
    const std::string text = py_strip(input.as_string(), Value(nullptr), true, true);
    try {
      std::size_t used = 0;
      const double d = std::stod(text, &used);
      if (used == text.size()) return Value(d);
    } catch (const std::exception&) {
    }
  }
  return sig.get(0, Value(0.0));
}

Value filter_round(const Value& input, const CallArgs& args) {
  Signature sig(args, "round", {"precision", "method"});
  const std::int64_t precision = require_int(sig.get(0, Value(0)), "precision");
  const std::string method = require_string(sig.get(1, Value("common")), "method");
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = input.require_defined().as_number() * scale;
  double r;
  if (method == "common") {
    // Python's round(): halves to even.
    r = std::nearbyint(x);
  } else if (method == "ceil") {
    r = std::ceil(x);
  } else if (method == "floor") {
    r = std::floor(x);
  } else {
    throw EvalError("FilterArgumentError: method must be common, ceil or floor");
  }
  return Value(r / scale);
}

ValueList select_items(const Value& input, const CallArgs& args, bool keep_matching, bool by_attribute) {
  ValueList out;
  std::size_t next = 0;
  Value attribute;
  if (by_attribute) {
    if (args.positional.empty()) throw EvalError("TypeError: selectattr/rejectattr need an attribute name");
    attribute = args.positional[next++];
  }
  std::optional<std::string> test;
  if (next < args.positional.size()) test = require_string(args.positional[next++], "test name");
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next), args.positional.end());
  test_args.keyword = args.keyword;
  for (const auto& item : iterate(input)) {
    const Value subject = by_attribute ? get_attribute_path(item, attribute) : item;
    const bool passed = test ? apply_test(*test, subject, test_args) : subject.truthy();
    if (passed == keep_matching) out.push_back(item);
  }
  return out;
}

Value filter_map(const Value& input, const CallArgs& args) {
  ValueList out;
  const Value* attribute = nullptr;
  const Value* fallback = nullptr;
  for (const auto& [name, value] : args.keyword) {
    if (name == "attribute") attribute = &value;
    if (name == "default") fallback = &value;
  }
  if (attribute) {
    for (const auto& item : iterate(input)) {
      Value v = get_attribute_path(item, *attribute);
      out.push_back(v.is_undefined() && fallback ? *fallback : v);
    }
    return Value(std::move(out));
  }
  if (args.positional.empty()) throw EvalError("TypeError: map() needs a filter name or attribute=");
  const std::string filter = require_string(args.positional[0], "filter name");
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const auto& item : iterate(input)) out.push_back(apply_filter(filter, item, rest));
  return Value(std::move(out));
}

Value filter_join(const Value& input, const CallArgs& args) {
  Signature sig(args, "join", {"d", "attribute"});
  const std::string separator = to_python_str(sig.get(0, Value("")));
  const Value attribute = sig.get(1);
  std::string out;
  bool first = true;
  for (const auto& item : iterate(input)) {
    if (!first) out += separator;
    first = false;
    out += to_python_str(attribute.is_none() ? item : get_attribute_path(item, attribute));
  }
  return Value(std::move(out));
}

Value filter_wordcount(const Value& input) {
  std::int64_t count = 0;
  bool in_word = false;
  for (char32_t c : decode_utf8(to_python_str(input))) {
    const bool word = is_word_cp(c);
    if (word && !in_word) ++count;
    in_word = word;
  }
  return Value(count);
}

Value filter_minmax(const Value& input, const CallArgs& args, bool want_max) {
  Signature sig(args, want_max ? "max" : "min", {"case_sensitive", "attribute"});
  const bool case_sensitive = sig.get(0, Value(false)).truthy();
  const Value attribute = sig.get(1);
  const ValueList items = iterate(input);
  if (items.empty()) return Value::undefined(fmt::format("No aggregated item, sequence was empty."));
  const auto key = [&](const Value& v) {
    return comparable(attribute.is_none() ? v : get_attribute_path(v, attribute), case_sensitive);
  };
  std::size_t best = 0;
  for (std::size_t i = 1; i < items.size(); ++i) {
    const bool better =
        want_max ? python_less(key(items[best]), key(items[i])) : python_less(key(items[i]), key(items[best]));
    if (better) best = i;
  }
  return items[best];
}

using FilterFn = Value (*)(const Value&, const CallArgs&);

const std::unordered_map<std::string_view, FilterFn>& filter_table() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"abs",
       [](const Value& v, const CallArgs&) -> Value {
         v.require_defined();
         if (v.is_float()) return Value(std::fabs(v.as_number()));
         if (v.is_number()) return Value(std::abs(v.as_int()));
         throw EvalError(fmt::format("TypeError: bad operand type for abs(): '{}'", v.type_description()));
       }},
      {"attr",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "attr", {"name"});
         return get_attribute(v.require_defined(), require_string(sig.get(0), "attribute name"));
       }},
      {"capitalize", [](const Value& v, const CallArgs&) { return Value(py_capitalize(to_python_str(v))); }},
      {"center",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "center", {"width"});
         CallArgs call;
         call.positional.push_back(sig.get(0, Value(80)));
         return string_method(Value(to_python_str(v)), "center")->as_callable().invoke(call);
       }},
      {"count", [](const Value& v, const CallArgs&) { return Value(python_len(v)); }},
      {"length", [](const Value& v, const CallArgs&) { return Value(python_len(v)); }},
      {"default",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "default", {"default_value", "boolean"});
         const bool boolean = sig.get(1, Value(false)).truthy();
         if (v.is_undefined() || (boolean && !v.truthy())) return sig.get(0, Value(""));
         return v;
       }},
      {"dictsort",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "dictsort", {"case_sensitive", "by", "reverse"});
         if (!v.is_dict()) throw EvalError("TypeError: dictsort expects a mapping");
         const bool case_sensitive = sig.get(0, Value(false)).truthy();
         const std::string by = require_string(sig.get(1, Value("key")), "by");
         const std::size_t position = by == "key" ? 0 : by == "value" ? 1 : 2;
         if (position == 2) throw EvalError("FilterArgumentError: You can only sort by either \"key\" or \"value\"");
         return Value(sorted(dict_items(v.as_dict()), sig.get(2, Value(false)).truthy(),
                             [&](const Value& pair) { return comparable(pair.as_list()[position], case_sensitive); }));
       }},
      {"escape", [](const Value& v, const CallArgs&) { return Value(html_escape(to_python_str(v))); }},
      {"e", [](const Value& v, const CallArgs&) { return Value(html_escape(to_python_str(v))); }},
      {"forceescape", [](const Value& v, const CallArgs&) { return Value(html_escape(to_python_str(v))); }},
      {"first",
       [](const Value& v, const CallArgs&) -> Value {
         ValueList items = iterate(v);
         return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
       }},
      {"last",
       [](const Value& v, const CallArgs&) -> Value {
         ValueList items = iterate(v);
         return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
       }},
      {"float", filter_float},
      {"int", filter_int},
      {"indent", filter_indent},
      {"items",
       [](const Value& v, const CallArgs&) -> Value {
         if (v.is_undefined()) return Value(ValueList{});
         if (!v.is_dict()) throw EvalError("TypeError: items filter expects a mapping");
         return Value(dict_items(v.as_dict()));
       }},
      {"join", filter_join},
      {"list", [](const Value& v, const CallArgs&) { return Value(iterate(v)); }},
      {"lower", [](const Value& v, const CallArgs&) { return Value(py_lower(to_python_str(v))); }},
      {"upper", [](const Value& v, const CallArgs&) { return Value(py_upper(to_python_str(v))); }},
      {"map", filter_map},
      {"max", [](const Value& v, const CallArgs& a) { return filter_minmax(v, a, true); }},
      {"min", [](const Value& v, const CallArgs& a) { return filter_minmax(v, a, false); }},
      {"pprint", [](const Value& v, const CallArgs&) { return Value(to_python_repr(v)); }},
      {"reject", [](const Value& v, const CallArgs& a) { return Value(select_items(v, a, false, false)); }},
      {"rejectattr", [](const Value& v, const CallArgs& a) { return Value(select_items(v, a, false, true)); }},
      {"select", [](const Value& v, const CallArgs& a) { return Value(select_items(v, a, true, false)); }},
      {"selectattr", [](const Value& v, const CallArgs& a) { return Value(select_items(v, a, true, true)); }},
      {"replace",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "replace", {"old", "new", "count"});
         const Value count = sig.get(2);
         return Value(py_replace(to_python_str(v), to_python_str(sig.get(0)), to_python_str(sig.get(1)),
                                 count.is_none() ? -1 : require_int(count, "count")));
       }},
      {"reverse",
       [](const Value& v, const CallArgs&) -> Value {
         if (v.is_string()) {
           auto chars = decode_utf8(v.as_string());
           std::reverse(chars.begin(), chars.end());
           return Value(encode_utf8(chars));
         }
         ValueList items = iterate(v);
         std::reverse(items.begin(), items.end());
         return Value(std::move(items));
       }},
      {"round", filter_round},
      {"safe", [](const Value& v, const CallArgs&) { return v; }},
      {"sort",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "sort", {"reverse", "case_sensitive", "attribute"});
         const bool case_sensitive = sig.get(1, Value(false)).truthy();
         const Value attribute = sig.get(2);
         return Value(sorted(iterate(v), sig.get(0, Value(false)).truthy(), [&](const Value& item) {
           return comparable(attribute.is_none() ? item : get_attribute_path(item, attribute), case_sensitive);
         }));
       }},
      {"string", [](const Value& v, const CallArgs&) { return Value(to_python_str(v)); }},
      {"sum",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "sum", {"attribute", "start"});
         const Value attribute = sig.get(0);
         Value total = sig.get(1, Value(0));
         for (const auto& item : iterate(v)) {
           total = arithmetic("+", total, attribute.is_none() ? item : get_attribute_path(item, attribute));
         }
         return total;
       }},
      {"title", [](const Value& v, const CallArgs&) { return filter_title(v); }},
      {"tojson", filter_tojson},
      {"trim",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "trim", {"chars"});
         return Value(py_strip(to_python_str(v), sig.get(0), true, true));
       }},
      {"unique",
       [](const Value& v, const CallArgs& a) -> Value {
         Signature sig(a, "unique", {"case_sensitive", "attribute"});
         const bool case_sensitive = sig.get(0, Value(false)).truthy();
         const Value attribute = sig.get(1);
         ValueList seen, out;
         for (const auto& item : iterate(v)) {
           Value key = comparable(attribute.is_none() ? item : get_attribute_path(item, attribute), case_sensitive);
           if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return python_equal(s, key); })) continue;
           seen.push_back(std::move(key));
           out.push_back(item);
         }
         return Value(std::move(out));
       }},
      {"wordcount", [](const Value& v, const CallArgs&) { return filter_wordcount(v); }},
  };
  return table;
}

// ---- tests ------------------------------------------------------------------------------

using TestFn = bool (*)(const Value&, const CallArgs&);

const Value& test_argument(const CallArgs& args, std::string_view test) {
  if (args.positional.empty()) throw EvalError(fmt::format("TypeError: test '{}' needs an argument", test));
  return args.positional[0];
}

const std::unordered_map<std::string_view, TestFn>& test_table() {
  static const std::unordered_map<std::string_view, TestFn> table = {
      {"defined", [](const Value& v, const CallArgs&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const CallArgs&) { return v.is_undefined(); }},
      {"none", [](const Value& v, const CallArgs&) { return v.is_none(); }},
      {"boolean", [](const Value& v, const CallArgs&) { return v.is_bool(); }},
      {"true", [](const Value& v, const CallArgs&) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v, const CallArgs&) { return v.is_bool() && !v.as_bool(); }},
      {"integer", [](const Value& v, const CallArgs&) { return v.is_int(); }},
      {"float", [](const Value& v, const CallArgs&) { return v.is_float(); }},
      {"number", [](const Value& v, const CallArgs&) { return v.is_number(); }},
      {"string", [](const Value& v, const CallArgs&) { return v.is_string(); }},
      {"mapping", [](const Value& v, const CallArgs&) { return v.is_dict(); }},
      // jinja2's Undefined is iterable (as empty) and has __len__/__getitem__.
      {"iterable",
       [](const Value& v, const CallArgs&) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }},
      {"sequence",
       [](const Value& v, const CallArgs&) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }},
      {"callable", [](const Value& v, const CallArgs&) { return v.is_callable(); }},
      {"escaped", [](const Value&, const CallArgs&) { return false; }},
      {"odd", [](const Value& v, const CallArgs&) { return require_int(v, "odd test value") % 2 != 0; }},
      {"even", [](const Value& v, const CallArgs&) { return require_int(v, "even test value") % 2 == 0; }},
      {"divisibleby",
       [](const Value& v, const CallArgs& a) {
         const std::int64_t d = require_int(test_argument(a, "divisibleby"), "divisor");
         if (d == 0) throw EvalError("ZeroDivisionError: integer modulo by zero");
         return require_int(v, "divisibleby value") % d == 0;
       }},
      {"lower",
       [](const Value& v, const CallArgs&) { return v.is_string() && py_lower(v.as_string()) == v.as_string(); }},
      {"upper",
       [](const Value& v, const CallArgs&) { return v.is_string() && py_upper(v.as_string()) == v.as_string(); }},
      {"sameas",
       [](const Value& v, const CallArgs& a) {
         const Value& other = test_argument(a, "sameas");
         // Identity for the singletons; equal scalars of one kind are what templates mean.
         return v.kind() == other.kind() && python_equal(v, other);
       }},
      {"eq", [](const Value& v, const CallArgs& a) { return python_equal(v, test_argument(a, "eq")); }},
      {"equalto", [](const Value& v, const CallArgs& a) { return python_equal(v, test_argument(a, "equalto")); }},
      {"==", [](const Value& v, const CallArgs& a) { return python_equal(v, test_argument(a, "==")); }},
      {"ne", [](const Value& v, const CallArgs& a) { return !python_equal(v, test_argument(a, "ne")); }},
      {"!=", [](const Value& v, const CallArgs& a) { return !python_equal(v, test_argument(a, "!=")); }},
      {"lt", [](const Value& v, const CallArgs& a) { return python_less(v, test_argument(a, "lt")); }},
      {"lessthan", [](const Value& v, const CallArgs& a) { return python_less(v, test_argument(a, "lessthan")); }},
      {"<", [](const Value& v, const CallArgs& a) { return python_less(v, test_argument(a, "<")); }},
      {"gt", [](const Value& v, const CallArgs& a) { return python_less(test_argument(a, "gt"), v); }},
      {"greaterthan",
       [](const Value& v, const CallArgs& a) { return python_less(test_argument(a, "greaterthan"), v); }},
      {">", [](const Value& v, const CallArgs& a) { return python_less(test_argument(a, ">"), v); }},
      {"le", [](const Value& v, const CallArgs& a) { return !python_less(test_argument(a, "le"), v); }},
      {"<=", [](const Value& v, const CallArgs& a) { return !python_less(test_argument(a, "<="), v); }},
      {"ge", [](const Value& v, const CallArgs& a) { return !python_less(v, test_argument(a, "ge")); }},
      {">=", [](const Value& v, const CallArgs& a) { return !python_less(v, test_argument(a, ">=")); }},
      {"in", [](const Value& v, const CallArgs& a) { return python_contains(test_argument(a, "in"), v); }},
      {"filter",
       [](const Value& v, const CallArgs&) { return v.is_string() && filter_table().count(v.as_string()) != 0; }},
      {"test", [](const Value& v, const CallArgs&) { return v.is_string() && test_table().count(v.as_string()) != 0; }},
  };
  return table;
}

}  // namespace

// ---- public entry points ------------------------------------------------------------------

Value get_attribute(const Value& object, const std::string& name) {
  switch (object.kind()) {
    case Value::Kind::undefined: object.require_defined(); break;
    case Value::Kind::dict: {
      if (auto method = dict_method(object, name)) return *method;
      if (const Value* found = object.as_dict().find(name)) return *found;
      break;
    }
    case Value::Kind::string:
      if (auto method = string_method(object, name)) return *method;
      break;
    case Value::Kind::list:
      if (!object.is_tuple() || name == "count" || name == "index") {
        if (auto method = list_method(object, name)) return *method;
      }
      break;
    case Value::Kind::name_space:
      if (const Value* found = object.as_namespace().attributes.find(name)) return *found;
      break;
    default: break;
  }
  return missing_attribute(object, name);
}

Value get_item(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Value::Kind::undefined: object.require_defined(); break;
    case Value::Kind::dict:
      if (key.is_string()) {
        if (const Value* found = object.as_dict().find(key.as_string())) return *found;
      }
      break;
    case Value::Kind::list:
      if (key.is_int() || key.is_bool()) {
        const auto& items = object.as_list();
        if (auto index = resolve_index(key.as_int(), items.size())) return items[*index];
      }
      break;
    case Value::Kind::string:
      if (key.is_int() || key.is_bool()) {
        auto chars = decode_utf8(object.as_string());
        if (auto index = resolve_index(key.as_int(), chars.size())) return Value(encode_utf8(chars.substr(*index, 1)));
      }
      break;
    case Value::Kind::name_space:
      if (key.is_string()) {
        if (const Value* found = object.as_namespace().attributes.find(key.as_string())) return *found;
      }
      break;
    default: break;
  }
  // jinja2 falls back to the attribute for string keys.
  if (key.is_string()) {
    if (object.is_dict()) {
      if (auto method = dict_method(object, key.as_string())) return *method;
    } else if (object.is_string()) {
      if (auto method = string_method(object, key.as_string())) return *method;
    } else if (object.is_list()) {
      if (auto method = list_method(object, key.as_string())) return *method;
    }
    return missing_attribute(object, key.as_string());
  }
  return Value::undefined(fmt::format("'{}' has no element {}", object.type_description(), to_python_repr(key)));
}

Value get_slice(const Value& object, const Value& start_value, const Value& stop_value, const Value& step_value) {
  const auto bound = [](const Value& v, const char* what) -> std::optional<std::int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    return require_int(v, what);
  };
  const std::int64_t step = bound(step_value, "slice step").value_or(1);
  if (step == 0) throw EvalError("ValueError: slice step cannot be zero");

  const auto pick_indices = [&](std::int64_t length) {
    std::vector<std::int64_t> indices;
    const auto clamp = [&](std::optional<std::int64_t> v, std::int64_t fallback, std::int64_t low, std::int64_t high) {
      if (!v) return fallback;
      std::int64_t x = *v < 0 ? *v + length : *v;
      return std::clamp(x, low, high);
    };
    if (step > 0) {
      const std::int64_t start = clamp(bound(start_value, "slice start"), 0, 0, length);
      const std::int64_t stop = clamp(bound(stop_value, "slice stop"), length, 0, length);
      for (std::int64_t i = start; i < stop; i += step) indices.push_back(i);
    } else {
      const std::int64_t start = clamp(bound(start_value, "slice start"), length - 1, -1, length - 1);
      const std::int64_t stop = clamp(bound(stop_value, "slice stop"), -1, -1, length - 1);
      for (std::int64_t i = start; i > stop; i += step) indices.push_back(i);
    }
    return indices;
  };

  if (object.is_list()) {
    const auto& items = object.as_list();
    ValueList out;
    for (auto i : pick_indices(static_cast<std::int64_t>(items.size())))
      out.push_back(items[static_cast<std::size_t>(i)]);
    return Value(std::move(out), object.is_tuple());
  }
  if (object.is_string()) {
    const auto chars = decode_utf8(object.as_string());
    std::u32string out;
    for (auto i : pick_indices(static_cast<std::int64_t>(chars.size())))
      out.push_back(chars[static_cast<std::size_t>(i)]);
    return Value(encode_utf8(out));
  }
  throw EvalError(fmt::format("TypeError: '{}' is not subscriptable", object.type_description()));
}

Value apply_filter(const std::string& name, const Value& input, const CallArgs& args) {
  const auto& table = filter_table();
  if (name == "d") return table.at("default")(input, args);
  auto found = table.find(name);
  if (found == table.end()) throw EvalError(fmt::format("TemplateAssertionError: No filter named '{}'.", name));
  return found->second(input, args);
}

bool apply_test(const std::string& name, const Value& input, const CallArgs& args) {
  const auto& table = test_table();
  auto found = table.find(name);
  if (found == table.end()) throw EvalError(fmt::format("TemplateAssertionError: No test named '{}'.", name));
  return found->second(input, args);
}

ValueList iterate(const Value& iterable) {
  switch (iterable.kind()) {
    case Value::Kind::undefined: return {};
    case Value::Kind::list: return iterable.as_list();
    case Value::Kind::dict: {
      ValueList keys;
      for (const auto& entry : iterable.as_dict().entries()) keys.push_back(Value(entry.first));
      return keys;
    }
    case Value::Kind::string: {
      ValueList chars;
      for (char32_t c : decode_utf8(iterable.as_string())) chars.push_back(Value(encode_utf8(std::u32string(1, c))));
      return chars;
    }
    default: throw EvalError(fmt::format("TypeError: '{}' is not iterable", iterable.type_description()));
  }
}

std::int64_t python_len(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::undefined: return 0;
    case Value::Kind::string: return static_cast<std::int64_t>(count_code_points(value.as_string()));
    case Value::Kind::list: return static_cast<std::int64_t>(value.as_list().size());
    case Value::Kind::dict: return static_cast<std::int64_t>(value.as_dict().size());
    default: throw EvalError(fmt::format("TypeError: object of type '{}' has no len()", value.type_description()));
  }
}

Value arithmetic(const std::string& op, const Value& left, const Value& right) {
  left.require_defined();
  right.require_defined();
  const auto unsupported = [&]() -> EvalError {
    return EvalError(fmt::format("TypeError: unsupported operand type(s) for {}: '{}' and '{}'", op,
                                 left.type_description(), right.type_description()));
  };
  if (left.is_number() && right.is_number()) {
    const bool integral = !left.is_float() && !right.is_float();
    if (op == "/") {
      if (right.as_number() == 0.0) throw EvalError("ZeroDivisionError: division by zero");
      return Value(left.as_number() / right.as_number());
    }
    if (integral) {
      const std::int64_t a = left.as_int(), b = right.as_int();
      if (op == "+") return Value(a + b);
      if (op == "-") return Value(a - b);
      if (op == "*") return Value(a * b);
      if (op == "//" || op == "%") {
        if (b == 0) throw EvalError("ZeroDivisionError: integer division or modulo by zero");
        std::int64_t quotient = a / b, remainder = a % b;
        if (remainder != 0 && ((remainder < 0) != (b < 0))) {  // Python floors toward -infinity
          --quotient;
          remainder += b;
        }
        return Value(op == "//" ? quotient : remainder);
      }
      if (op == "**") {
        if (b < 0) return Value(std::pow(static_cast<double>(a), static_cast<double>(b)));
        std::int64_t result = 1;
        for (std::int64_t i = 0; i < b; ++i) result *= a;
        return Value(result);
      }
    } else {
      const double a = left.as_number(), b = right.as_number();
      if (op == "+") return Value(a + b);
      if (op == "-") return Value(a - b);
      if (op == "*") return Value(a * b);
      if (op == "//" || op == "%") {
        if (b == 0.0) throw EvalError("ZeroDivisionError: float modulo");
        const double quotient = std::floor(a / b);
        return Value(op == "//" ? quotient : a - quotient * b);
      }
      if (op == "**") return Value(std::pow(a, b));
    }
    throw unsupported();
  }
  if (op == "+") {
    if (left.is_string() && right.is_string()) return Value(left.as_string() + right.as_string());
    if (left.is_list() && right.is_list() && left.is_tuple() == right.is_tuple()) {
      ValueList joined = left.as_list();
      joined.insert(joined.end(), right.as_list().begin(), right.as_list().end());
      return Value(std::move(joined), left.is_tuple());
    }
    if (left.is_string() || right.is_string()) {
      const Value& other = left.is_string() ? right : left;
      throw EvalError(fmt::format(
          "TypeError: can only concatenate str (not \"{}\") to str",
          other.is_none() ? "NoneType" : other.type_description().substr(0, other.type_description().find(' '))));
    }
  }
  if (op == "*") {
    const Value* sequence = (left.is_string() || left.is_list())     ? &left
                            : (right.is_string() || right.is_list()) ? &right
                                                                     : nullptr;
    const Value* count = sequence == &left ? &right : &left;
    if (sequence && (count->is_int() || count->is_bool())) {
      const std::int64_t n = std::max<std::int64_t>(0, count->as_int());
      if (sequence->is_string()) {
        std::string out;
        for (std::int64_t i = 0; i < n; ++i) out += sequence->as_string();
        return Value(std::move(out));
      }
      ValueList out;
      for (std::int64_t i = 0; i < n; ++i)
        out.insert(out.end(), sequence->as_list().begin(), sequence->as_list().end());
      return Value(std::move(out), sequence->is_tuple());
    }
  }
  throw unsupported();
}

}  // namespace quanteval::runtime::jinja
