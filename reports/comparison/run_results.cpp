#include "reports/comparison/run_results.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

namespace quanteval::reports {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string type_name(const json& value) { return value.type_name(); }

// Field readers for report.json: absent (or null) is fine, present with the
// wrong type is an error naming the dotted field path.
class FieldReader {
 public:
  FieldReader(std::string file, const json& object, std::string prefix)
      : file_(std::move(file)), object_(object), prefix_(std::move(prefix)) {}

  const json* find(const std::string& name) const {
    if (!object_.is_object()) return nullptr;
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::string where(const std::string& name) const { return fmt::format("{}: field '{}{}'", file_, prefix_, name); }

  std::string text(const std::string& name) const {
    const json* value = find(name);
    if (!value) return {};
    if (!value->is_string())
      throw RunInputError(fmt::format("{}: expected a string, got {}", where(name), type_name(*value)));
    return value->get<std::string>();
  }
  std::optional<double> number(const std::string& name) const {
    const json* value = find(name);
    if (!value) return std::nullopt;
    if (!value->is_number())
      throw RunInputError(fmt::format("{}: expected a number, got {}", where(name), type_name(*value)));
    const double result = value->get<double>();
    if (!std::isfinite(result)) throw RunInputError(fmt::format("{}: not a finite number", where(name)));
    return result;
  }
  std::optional<bool> boolean(const std::string& name) const {
    const json* value = find(name);
    if (!value) return std::nullopt;
    if (!value->is_boolean())
      throw RunInputError(fmt::format("{}: expected true or false, got {}", where(name), type_name(*value)));
    return value->get<bool>();
  }
  FieldReader object(const std::string& name) const {
    const json* value = find(name);
    if (value && !value->is_object())
      throw RunInputError(fmt::format("{}: expected an object, got {}", where(name), type_name(*value)));
    return FieldReader(file_, value ? *value : empty_object(), prefix_ + name + ".");
  }

 private:
  static const json& empty_object() {
    static const json kEmpty = json::object();
    return kEmpty;
  }
  std::string file_;
  const json& object_;
  std::string prefix_;
};

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw RunInputError(fmt::format("{}: cannot be read", file.string()));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// One results.jsonl line: its JSON parsed here, its fields by the one reader.
SampleVerdict parse_result_line(const std::string& line, const std::string& where) {
  json row;
  try {
    row = json::parse(line);
  } catch (const json::parse_error& e) {
    throw RunInputError(fmt::format("{}: not valid JSON ({})", where, e.what()));
  }
  return verdict_from_json(row, where);
}

ModelInfo read_model(const FieldReader& model) {
  ModelInfo info;
  info.id = model.text("id");
  info.path = model.text("path");
  info.revision = model.text("revision");
  info.architecture = model.text("architecture");
  info.quantization = model.text("quantization");
  info.bits_per_weight = model.number("bits_per_weight");
  info.parameters = model.number("parameters");
  info.size_bytes = model.number("size_bytes");
  return info;
}

// The pass@1 a report.json states for a mode, if any: modes.M.pass_at_k["pass@1"]
// for run reports, top-level pass_at_k["pass@1"] for score reports.
std::optional<double> stated_pass_at_1(const FieldReader& block) { return block.object("pass_at_k").number("pass@1"); }

}  // namespace

double ModeResults::pass_at_1() const {
  if (published_pass_at_1) return *published_pass_at_1;
  auto it = summary.pass_at_k.find(1);
  return it == summary.pass_at_k.end() ? 0.0 : it->second;
}

std::optional<int> RunResults::max_new_tokens(const std::string& mode) const {
  if (!decoding) return std::nullopt;
  const auto it = decoding->find("max_new_tokens_" + mode);
  if (it == decoding->end() || !it->is_number_integer() || it->get<long long>() <= 0) return std::nullopt;
  return static_cast<int>(it->get<long long>());
}

RunResults load_run(const fs::path& directory) {
  if (!fs::is_directory(directory))
    throw RunInputError(
        fmt::format("{}: not a run directory (expected a folder with results.jsonl)", directory.string()));
  RunResults run;
  run.directory = directory;
  const fs::path results_file = directory / "results.jsonl";
  const fs::path report_file = directory / "report.json";
  if (!fs::exists(results_file))
    throw RunInputError(
        fmt::format("{}: missing (a run directory holds results.jsonl and report.json)", results_file.string()));

  // report.json first: its top-level `mode` names the verdicts that carry none.
  json report = json::object();
  if (fs::exists(report_file)) {
    try {
      report = json::parse(read_text(report_file));
    } catch (const json::parse_error& e) {
      throw RunInputError(fmt::format("{}: not valid JSON ({})", report_file.string(), e.what()));
    }
    if (!report.is_object())
      throw RunInputError(fmt::format("{}: expected a JSON object, got {}", report_file.string(), type_name(report)));
  } else {
    run.warnings.push_back(fmt::format("{} is missing: model, size and speed are unknown", report_file.string()));
  }
  const FieldReader top(report_file.string(), report, "");
  run.model = read_model(top.object("model"));
  run.speed.prefill_tokens_per_second = top.object("speed").number("prefill_tok_s");
  run.speed.decode_tokens_per_second = top.object("speed").number("decode_tok_s");
  if (const json* device = top.find("device"))
    run.device = device->is_string() ? device->get<std::string>() : device->dump();
  run.dataset_name = top.object("dataset").text("name");
  run.dataset_sha256 = top.object("dataset").text("sha256");
  if (top.find("chat_template_sha256")) run.chat_template_sha256 = top.text("chat_template_sha256");
  if (const json* decoding = top.find("decoding")) {
    if (!decoding->is_object())
      throw RunInputError(fmt::format("{}: expected an object, got {}", top.where("decoding"), type_name(*decoding)));
    run.decoding = *decoding;
  }
  run.batch_invariant = top.object("generation").boolean("batch_invariant");
  std::string unnamed_mode(kUnnamedMode);
  if (const json* mode = top.find("mode");
      mode && mode->is_string() && !mode->get<std::string>().empty() && mode->get<std::string>() != "both")
    unnamed_mode = mode->get<std::string>();

  const std::string text = read_text(results_file);
  std::istringstream lines(text);
  std::string line;
  std::size_t line_number = 0;
  std::map<std::pair<std::string, std::string>, int> next_index;          // (mode, task) -> next implicit sample index
  std::map<std::tuple<std::string, std::string, int>, std::size_t> seen;  // (mode, task, index) -> line
  while (std::getline(lines, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", results_file.string(), line_number);
    SampleVerdict verdict = parse_result_line(line, where);
    const std::string mode = verdict.mode.empty() ? unnamed_mode : verdict.mode;
    int& implicit = next_index[{mode, verdict.task_id}];
    if (verdict.sample_index < 0) verdict.sample_index = implicit;
    implicit = std::max(implicit, verdict.sample_index + 1);
    const auto key = std::make_tuple(mode, verdict.task_id, verdict.sample_index);
    if (auto [it, inserted] = seen.emplace(key, line_number); !inserted)
      throw RunInputError(
          fmt::format("{}: field 'sample_index': task {} sample {} (mode {}) already appears on line {}", where,
                      verdict.task_id, verdict.sample_index, mode, it->second));
    run.modes[mode].verdicts.push_back(std::move(verdict));
  }
  if (run.modes.empty()) throw RunInputError(fmt::format("{}: no verdicts (the file is empty)", results_file.string()));

  for (auto& [name, mode] : run.modes) {
    mode.summary = summarize(mode.verdicts);
    mode.prompt_sha256 = top.object("modes").object(name).text("prompt_sha256");
    if (mode.summary.tasks.empty())
      run.warnings.push_back(fmt::format("mode {}: every sample is a sandbox_error; nothing was scored", name));
    // Cross-check the stated pass@1 (the writer rounds nothing, so any gap is real).
    const FieldReader stated_modes = top.object("modes");
    std::optional<double> stated;
    if (stated_modes.find(name))
      stated = stated_pass_at_1(stated_modes.object(name));
    else if (run.modes.size() == 1)
      stated = stated_pass_at_1(top);
    if (stated && !mode.summary.tasks.empty() && std::fabs(*stated - mode.pass_at_1()) > 1e-6)
      run.warnings.push_back(
          fmt::format("mode {}: report.json states pass@1 {:.4f} but results.jsonl gives {:.4f}; "
                      "using results.jsonl",
                      name, *stated, mode.pass_at_1()));
  }
  run.label = !run.model.id.empty() ? run.model.id : fs::absolute(directory).lexically_normal().filename().string();
  if (run.label.empty()) run.label = fs::absolute(directory).lexically_normal().parent_path().filename().string();
  return run;
}

RunResults published_run(std::string label, const std::map<std::string, double>& pass_at_1_percent) {
  if (pass_at_1_percent.empty()) throw std::invalid_argument("published baseline: no mode values given");
  RunResults run;
  run.label = std::move(label);
  run.published_only = true;
  for (const auto& [mode, percent] : pass_at_1_percent) {
    if (!(percent >= 0.0 && percent <= 100.0))
      throw std::invalid_argument(
          fmt::format("published pass@1 for mode {} must be a percentage in [0, 100], got {}", mode, percent));
    run.modes[mode].published_pass_at_1 = percent / 100.0;
  }
  return run;
}

std::map<std::string, double> parse_mode_values(std::string_view text) {
  std::map<std::string, double> values;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string_view item = text.substr(start, end - start);
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size())
      throw std::invalid_argument(fmt::format("'{}': expected MODE=PERCENT, e.g. thinking=97.56", item));
    const std::string mode(item.substr(0, eq));
    const std::string_view number = item.substr(eq + 1);
    double value = 0;
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || ptr != number.data() + number.size())
      throw std::invalid_argument(fmt::format("'{}': '{}' is not a number", item, number));
    if (!values.emplace(mode, value).second) throw std::invalid_argument(fmt::format("mode {} given twice", mode));
    start = end + 1;
  }
  return values;
}

bool task_order_less(const std::string& a, const std::string& b) {
  auto split = [](const std::string& id) {
    std::size_t digits = id.size();
    while (digits > 0 && std::isdigit(static_cast<unsigned char>(id[digits - 1]))) --digits;
    return std::make_pair(std::string_view(id).substr(0, digits), std::string_view(id).substr(digits));
  };
  const auto [prefix_a, number_a] = split(a);
  const auto [prefix_b, number_b] = split(b);
  if (prefix_a != prefix_b) return prefix_a < prefix_b;
  // Equal prefixes: shorter digit strings are smaller numbers (leading zeros aside).
  if (number_a.size() != number_b.size()) return number_a.size() < number_b.size();
  if (number_a != number_b) return number_a < number_b;
  return a < b;
}

}  // namespace quanteval::reports
