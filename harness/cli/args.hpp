#pragma once
// A small declarative option parser for the verbs: `--name value`,
// `--name=value`, flags, repeatable options, and a generated --help.
// Errors are UsageError (exit code 2 at the CLI boundary).
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace quanteval::harness {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  // synopsis: "quanteval score --samples FILE [options]"; summary: one paragraph.
  Args(std::string synopsis, std::string summary);

  Args& option(const std::string& name, const std::string& metavar, const std::string& help,
               std::optional<std::string> default_value = std::nullopt);
  Args& repeated(const std::string& name, const std::string& metavar, const std::string& help);
  Args& flag(const std::string& name, const std::string& help);
  Args& epilog(const std::string& text);

  // Parses argv[first..argc). Returns false when --help was given (help printed to stdout).
  bool parse(int argc, char** argv, int first);

  bool has(const std::string& name) const;
  std::string get(const std::string& name) const;  // value or default; UsageError when neither
  std::optional<std::string> maybe(const std::string& name) const;
  std::vector<std::string> all(const std::string& name) const;
  bool is_set(const std::string& flag_name) const;

  int get_int(const std::string& name, int min_value, int max_value) const;
  double get_double(const std::string& name, double min_value, double max_value) const;

  std::string help() const;

 private:
  struct Spec {
    std::string name, metavar, help;
    std::optional<std::string> default_value;
    bool is_flag = false;
    bool is_repeated = false;
  };
  const Spec& spec(const std::string& name) const;
  std::string synopsis_, summary_, epilog_;
  std::vector<Spec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace quanteval::harness
