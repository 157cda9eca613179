#include "reports/summary/run_report.hpp"

#include <fmt/format.h>

#include <cmath>

#include "reports/charts/svg.hpp"
#include "reports/summary/budget_curve.hpp"

namespace quanteval::reports {

using nlohmann::ordered_json;

namespace {

double round_to(double value, double unit) { return std::round(value / unit) * unit; }

std::string percent(double fraction) { return fmt::format("{:.2f}%", 100.0 * fraction); }

std::vector<NamedCurve> budget_curves(const RunReport& r) {
  std::vector<NamedCurve> curves;
  for (const auto& m : r.modes)
    if (!m.generations.empty()) curves.push_back({m.name, budget_curve(m.verdicts, m.generations, m.max_new_tokens)});
  return curves;
}

}  // namespace

ordered_json to_json(const RunReport& r) {
  ordered_json j;
  j["tool"] = {{"name", "quanteval"}, {"version", r.tool_version}};
  j["created_utc"] = r.created_utc;
  j["config_hash"] = r.config_hash;
  j["resumed"] = r.resumed;
  j["model"] = {{"id", r.model.id},
                {"path", r.model.path},
                {"revision", r.model.revision},
                {"commit", r.model.commit},
                {"architecture", r.model.architecture},
                {"quantization", r.model.quantization},
                {"bits_per_weight", round_to(r.model.bits_per_weight, 1e-4)},
                {"parameters", r.model.parameters},
                {"size_bytes", r.model.size_bytes}};
  j["decoding"] = r.decoding;
  j["chat_template_sha256"] = r.chat_template_hash;
  j["dataset"] = to_json(r.dataset);
  ordered_json modes = ordered_json::object();
  for (const auto& m : r.modes) {
    ordered_json mode = summary_json(summarize(m.verdicts));
    mode["prompt_tokens"] = m.prompt_tokens;
    mode["generated_tokens"] = m.generated_tokens;
    mode["mean_generated_tokens"] =
        m.verdicts.empty()
            ? 0.0
            : round_to(static_cast<double>(m.generated_tokens) / static_cast<double>(m.verdicts.size()), 0.1);
    if (!m.extraction_rules.empty()) mode["extraction_rules"] = m.extraction_rules;
    mode["prompt_sha256"] = m.prompt_hash;
    if (!m.generations.empty())
      mode["budget_curve"] = to_json(budget_curve(m.verdicts, m.generations, m.max_new_tokens));
    modes[m.name] = mode;
  }
  j["modes"] = modes;
  j["speed"] = {{"prefill_tok_s", round_to(r.prefill_tokens_per_second, 0.1)},
                {"decode_tok_s", round_to(r.decode_tokens_per_second, 0.1)}};
  j["device"] = r.device;
  if (!r.backend.is_null()) j["backend"] = r.backend;
  j["generation"] = {{"batch_invariant", r.batch_invariant ? ordered_json(*r.batch_invariant) : ordered_json(nullptr)}};
  j["wall_s"] = round_to(r.wall_seconds, 0.001);
  j["sandbox"] = to_json(r.sandbox);
  return j;
}

std::string to_markdown(const RunReport& r) {
  std::string md = fmt::format("# quanteval run: {}\n\n", r.model.id);
  md += fmt::format("{} · {} · {:.3f} bits/weight · {:.2f} GB · {:.2f} B parameters\n\n", r.model.architecture,
                    r.model.quantization, r.model.bits_per_weight, r.model.size_bytes / 1e9, r.model.parameters / 1e9);
  md +=
      "| mode | pass@1 | 95% CI (Wilson) | tasks | passed | failed | error | timeout | no_code | truncated | other |\n";
  md += "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& m : r.modes) {
    const Summary s = summarize(m.verdicts);
    const auto count = [&](Status st) { return s.counts.at(st); };
    const std::size_t other = count(Status::oom) + count(Status::signal) + count(Status::sandbox_error);
    md += fmt::format("| {} | {} | {} – {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", m.name,
                      s.pass_at_k.count(1) ? percent(s.pass_at_k.at(1)) : "-", percent(s.pass_at_1_interval.low),
                      percent(s.pass_at_1_interval.high), s.tasks.size(), count(Status::passed), count(Status::failed),
                      count(Status::error), count(Status::timeout), count(Status::no_code), count(Status::truncated),
                      other);
  }
  for (const auto& m : r.modes) {
    const Summary s = summarize(m.verdicts);
    for (const auto& [k, value] : s.pass_at_k)
      if (k != 1) md += fmt::format("\n{} pass@{}: {}", m.name, k, percent(value));
  }
  const bool remote = r.backend.is_object() && r.backend.value("kind", "") == "openai";
  // A server's prefill and decode are not visible from outside: its rates are tokens over wall time.
  md += fmt::format("\n\n{} on {}: {} {:.1f} tok/s, {} {:.1f} tok/s; wall time {:.1f} s{}.\n",
                    remote ? "Throughput" : "Speed", r.device, remote ? "prompt" : "prefill",
                    r.prefill_tokens_per_second, remote ? "generated" : "decode", r.decode_tokens_per_second,
                    r.wall_seconds, r.resumed ? " (resumed run: speed covers the last part only)" : "");
  if (remote) {
    md += fmt::format("\nGenerated through {} OpenAI-compatible endpoint(s):", r.backend["endpoints"].size());
    for (const auto& e : r.backend["endpoints"])
      md += fmt::format(" {} (model `{}`, server {}, {} attempts, {} retried, {} failed);", e.value("url", ""),
                        e.value("served_model", ""), e.value("server_version", ""), e.value("attempts", 0),
                        e.value("retried", 0), e.value("failed", 0));
    md.back() = '.';
    for (const auto& [kind, w] : r.backend["warnings"].items())
      md += fmt::format("\n\n**Server warning** ({} x): {}{}", w.value("count", 0), kind,
                        w.value("first", "").empty() ? "" : " -- e.g. " + w.value("first", ""));
    md += "\n";
  }
  md += fmt::format("\nDecoding: `{}`; batch-invariant generation: {}.\n", r.decoding.dump(),
                    !r.batch_invariant   ? "not recorded"
                    : *r.batch_invariant ? "yes"
                                         : "not promised");
  md += fmt::format("\nDataset {} (SHA-256 `{}`), configuration hash `{}`.\n", r.dataset.name,
                    r.dataset.sha256.substr(0, 16), r.config_hash.substr(0, 16));
  for (const auto& m : r.modes) {
    if (m.extraction_rules.empty()) continue;
    md += fmt::format("\n{} code extraction:", m.name);
    for (const auto& [rule, n] : m.extraction_rules) md += fmt::format(" {} {},", rule, n);
    md.pop_back();
    md += "\n";
  }
  const std::vector<NamedCurve> curves = budget_curves(r);
  if (!curves.empty())
    md += "\npass@1 by token budget (a sample not finished within the budget counts as failed; docs/compare.md):\n\n" +
          budget_table_markdown(curves);
  md += fmt::format("\nSandbox: Python {}, {} workers, time limit {}; protections: {}.\n", r.sandbox.python_version,
                    r.sandbox.workers, time_limit_text(r.sandbox), fmt::join(r.sandbox.protections, ", "));
  md += fmt::format("\nquanteval {} · {}\n", r.tool_version, r.created_utc);
  return md;
}

std::string to_html(const RunReport& r) {
  std::vector<std::string> categories;
  svg::BarSeries series{r.model.id, svg::kPalette[1], {}};
  for (const auto& m : r.modes) {
    const Summary s = summarize(m.verdicts);
    categories.push_back(m.name);
    if (s.pass_at_k.count(1))
      series.values.push_back(svg::IntervalBar{s.pass_at_k.at(1), s.pass_at_1_interval.low, s.pass_at_1_interval.high});
    else
      series.values.push_back(std::nullopt);
  }
  std::string body =
      svg::interval_bar_chart("pass@1 per mode", "pass@1 with Wilson 95% intervals", categories, {series});
  // Status of every task, per mode: where the failures are.
  const std::vector<svg::GridCategory> grid_categories = {
      {"passed", "#009E73", "", "#000000", false},       {"failed", "#D55E00", "×", "#ffffff", false},
      {"error", "#CC79A7", "!", "#000000", true},        {"timeout", "#E69F00", "⌛", "#000000", true},
      {"oom / signal", "#56B4E9", "M", "#000000", true}, {"no_code", "#999999", "∅", "#000000", true},
      {"truncated", "#444444", "…", "#ffffff", true},    {"sandbox_error", "#ffffff", "?", "#000000", true}};
  auto category_of = [](Status s) -> std::size_t {
    switch (s) {
      case Status::passed: return 0;
      case Status::failed: return 1;
      case Status::error: return 2;
      case Status::timeout: return 3;
      case Status::oom:
      case Status::signal: return 4;
      case Status::no_code: return 5;
      case Status::truncated: return 6;
      case Status::sandbox_error: return 7;
    }
    return 7;
  };
  for (const auto& m : r.modes) {
    std::vector<svg::GridCell> cells;
    for (const auto& v : m.verdicts)
      cells.push_back({fmt::format("{} #{}: {} — {}", v.task_id, v.sample_index, to_string(v.status), v.detail),
                       category_of(v.status)});
    body += svg::category_grid(m.name + ": every sample", "one cell per sample in task order, coloured by verdict",
                               cells, grid_categories);
  }
  const std::vector<NamedCurve> curves = budget_curves(r);
  body += budget_chart(curves);
  const std::string table = svg::escape(to_markdown(r));
  return fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>quanteval run: {0}</title>\n"
      "<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#111}}"
      "pre{{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:1em;border-radius:6px}}svg{{max-"
      "width:100%;height:auto}}</style>"
      "</head><body>\n<h1>quanteval run: {0}</h1>\n{1}\n<h2>Report</h2>\n<pre>{2}</pre>\n</body></html>\n",
      svg::escape(r.model.id), body, table);
}

}  // namespace quanteval::reports
