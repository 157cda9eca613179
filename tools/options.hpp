#pragma once
// Command-line options of the benchmark programs under tools/: `--name VALUE` and `--flag`,
// nothing else. Every argument is checked up front, so a typo (`--decode-token 100`) or a
// value that is not a number stops the program with a message instead of silently running
// a long benchmark with the defaults; `--help` is always known.
#include <cstddef>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace quanteval::tools {

class ToolOptions {
 public:
  // The input is wrong: the message names the argument.
  struct Error : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
  };

  ToolOptions(int argc, char** argv, const std::set<std::string>& valued, const std::set<std::string>& flags) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      const std::string name = arg.starts_with("--") ? arg.substr(2) : "";
      if (name == "help" || flags.count(name)) {
        flags_.insert(name);
      } else if (valued.count(name)) {
        if (i + 1 >= argc) throw Error(fmt::format("{} needs a value", arg));
        values_[name] = argv[++i];
      } else {
        throw Error(fmt::format("unknown argument '{}'", arg));
      }
    }
  }

  bool help() const { return flags_.count("help") > 0; }
  bool flag(const std::string& name) const { return flags_.count(name) > 0; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string text(const std::string& name, const std::string& fallback) const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  // A whole decimal integer ("12x" and "" are errors, not 12 and 0).
  long long integer(const std::string& name, long long fallback) const {
    return has(name) ? parse_integer(name, text(name, "")) : fallback;
  }
  double number(const std::string& name, double fallback) const {
    if (!has(name)) return fallback;
    return parse<double>(name, text(name, ""), "a number",
                         [](const std::string& v, std::size_t* used) { return std::stod(v, used); });
  }
  // A comma-separated list of integers ("128,512").
  std::vector<long long> integers(const std::string& name, const std::string& fallback) const {
    const std::string list = text(name, fallback);
    std::vector<long long> values;
    for (std::size_t at = 0; at <= list.size();) {
      const std::size_t comma = std::min(list.find(',', at), list.size());
      values.push_back(parse_integer(name, list.substr(at, comma - at)));
      at = comma + 1;
    }
    return values;
  }

 private:
  // convert(value, &used) as std::stoll / std::stod; the whole value must be consumed.
  template <typename T, typename Convert>
  static T parse(const std::string& name, const std::string& value, const char* expected, Convert convert) {
    std::size_t used = 0;
    T parsed{};
    try {
      parsed = convert(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != value.size())
      throw Error(fmt::format("--{}: expected {}, got '{}'", name, expected, value));
    return parsed;
  }
  static long long parse_integer(const std::string& name, const std::string& value) {
    return parse<long long>(name, value, "an integer",
                            [](const std::string& v, std::size_t* used) { return std::stoll(v, used); });
  }

  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
};

}  // namespace quanteval::tools
