#include "harness/cli/args.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdio>

#include "runtime/runtime.hpp"  // QE_FAIL

namespace quanteval::harness {

Args::Args(std::string synopsis, std::string summary) : synopsis_(std::move(synopsis)), summary_(std::move(summary)) {
  flag("help", "show this help and exit");
}

Args& Args::option(const std::string& name, const std::string& metavar, const std::string& help,
                   std::optional<std::string> default_value) {
  specs_.push_back({name, metavar, help, std::move(default_value), false, false});
  return *this;
}

Args& Args::repeated(const std::string& name, const std::string& metavar, const std::string& help) {
  specs_.push_back({name, metavar, help, std::nullopt, false, true});
  return *this;
}

Args& Args::flag(const std::string& name, const std::string& help) {
  specs_.push_back({name, "", help, std::nullopt, true, false});
  return *this;
}

Args& Args::epilog(const std::string& text) {
  epilog_ = text;
  return *this;
}

const Args::Spec& Args::spec(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return s;
  QE_FAIL("option not declared: --" + name);
}

bool Args::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string token = argv[i];
    if (!token.starts_with("--") || token.size() == 2)
      throw UsageError(fmt::format("unexpected argument '{}' (options start with --; see --help)", token));
    std::string name = token.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const Spec* found = nullptr;
    for (const auto& s : specs_)
      if (s.name == name) found = &s;
    if (!found) throw UsageError(fmt::format("unknown option --{} (see --help)", name));
    if (found->is_flag) {
      if (value) throw UsageError(fmt::format("--{} takes no value", name));
      values_[name].push_back("1");
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) throw UsageError(fmt::format("--{} needs a value ({})", name, found->metavar));
      value = argv[++i];
    }
    if (!found->is_repeated && values_.count(name)) throw UsageError(fmt::format("--{} given more than once", name));
    values_[name].push_back(*value);
  }
  if (is_set("help")) {
    std::fputs(help().c_str(), stdout);
    return false;
  }
  return true;
}

bool Args::has(const std::string& name) const {
  return values_.count(name) > 0 || spec(name).default_value.has_value();
}

std::optional<std::string> Args::maybe(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second.back();
  return spec(name).default_value;
}

std::string Args::get(const std::string& name) const {
  auto value = maybe(name);
  if (!value) throw UsageError(fmt::format("--{} is required (see --help)", name));
  return *value;
}

std::vector<std::string> Args::all(const std::string& name) const {
  if (auto it = values_.find(name); it != values_.end()) return it->second;
  return {};
}

bool Args::is_set(const std::string& flag_name) const { return values_.count(flag_name) > 0; }

int Args::get_int(const std::string& name, int min_value, int max_value) const {
  const std::string text = get(name);
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min_value || value > max_value)
    throw UsageError(fmt::format("--{}: expected an integer in [{}, {}], got '{}'", name, min_value, max_value, text));
  return value;
}

double Args::get_double(const std::string& name, double min_value, double max_value) const {
  const std::string text = get(name);
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || !(value >= min_value && value <= max_value))
    throw UsageError(fmt::format("--{}: expected a number in [{}, {}], got '{}'", name, min_value, max_value, text));
  return value;
}

std::string Args::help() const {
  std::string out = fmt::format("usage: {}\n\n{}\n\noptions:\n", synopsis_, summary_);
  for (const auto& s : specs_) {
    std::string left = "  --" + s.name + (s.metavar.empty() ? "" : " " + s.metavar);
    std::string right = s.help;
    if (s.default_value && !s.default_value->empty()) right += fmt::format(" (default: {})", *s.default_value);
    if (s.is_repeated) right += " (repeatable)";
    out += left.size() < 28 ? fmt::format("{:<28}{}\n", left, right) : fmt::format("{}\n{:<28}{}\n", left, "", right);
  }
  if (!epilog_.empty()) out += "\n" + epilog_ + "\n";
  return out;
}

}  // namespace quanteval::harness
