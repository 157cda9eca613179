#include "reports/comparison/html_comparison.hpp"

#include <fmt/format.h>

#include "reports/charts/svg.hpp"
#include "reports/comparison/line_diff.hpp"
#include "reports/summary/budget_curve.hpp"

namespace quanteval::reports {

namespace {

using svg::escape;

constexpr const char* kStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #111;
       background: #fff; max-width: 1100px; margin: 24px auto; padding: 0 16px; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #eef2f6; }
tbody tr:nth-child(even) { background: #f7f7f7; }
.note { color: #444; font-size: 0.92em; }
.charts svg { display: block; margin: 12px 0; max-width: 100%; height: auto; }
code { background: #f1f1f1; padding: 0 3px; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.diff { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.85em; white-space: pre-wrap;
        overflow-wrap: anywhere; background: #f7f7f7; padding: 6px; margin: 0; }
.diff .del { background: #fde2d4; } .diff .add { background: #d6e9f8; }
pre.trace { white-space: pre-wrap; overflow-wrap: anywhere; background: #f7f7f7; padding: 6px; font-size: 0.85em; }
.mismatch { border: 2px solid #D55E00; background: #fff1e8; padding: 8px 12px; }
)";

// Outcome colours: Okabe-Ito vermillion and blue for the two directions that
// matter, a muted green and a light grey for the agreements, yellow for ties.
// Each also has a glyph, so the grid reads without colour vision.
std::vector<svg::GridCategory> outcome_categories() {
  return {
      {"both pass", "#9AD3BC", "", "#000000"},
      {"both fail", "#D9D9D9", "", "#000000"},
      {"tied (equal partial rates)", "#F0E442", "=", "#000000", true},
      {"regressed (A fails, baseline passes)", "#D55E00", "−", "#FFFFFF"},
      {"improved (A passes, baseline fails)", "#0072B2", "+", "#FFFFFF"},
  };
}

std::size_t category_of(Flip flip) {
  switch (flip) {
    case Flip::both_pass: return 0;
    case Flip::both_fail: return 1;
    case Flip::tied: return 2;
    case Flip::regressed: return 3;
    case Flip::improved: return 4;
  }
  return 1;
}

std::string rate_text(double rate) {
  return rate == 1.0 ? "pass" : rate == 0.0 ? "fail" : fmt::format("{:.0f}%", 100 * rate);
}

std::string table_html(const Table& table) {
  std::string html = "<table>\n<thead><tr>";
  for (const auto& cell : table.header) html += "<th scope=\"col\">" + escape(cell) + "</th>";
  html += "</tr></thead>\n<tbody>\n";
  for (const auto& row : table.rows) {
    html += "<tr>";
    for (std::size_t i = 0; i < row.size(); ++i)
      html += i == 0 ? "<th scope=\"row\">" + escape(row[i]) + "</th>" : "<td>" + escape(row[i]) + "</td>";
    html += "</tr>\n";
  }
  html += "</tbody></table>\n";
  return html;
}

std::string pass_chart(const Comparison& c) {
  std::vector<std::size_t> order;
  for (const auto& contender : c.contenders) order.push_back(contender.run_index);
  order.push_back(c.baseline_index);
  std::vector<svg::BarSeries> series;
  for (std::size_t slot = 0; slot < order.size(); ++slot) {
    const RunResults& run = c.runs[order[slot]];
    svg::BarSeries s{run.label + (order[slot] == c.baseline_index ? " (baseline)" : ""),
                     svg::kPalette[slot % svg::kPaletteSize],
                     {}};
    for (const auto& mode : c.modes) {
      auto it = run.modes.find(mode);
      if (it == run.modes.end()) {
        s.values.emplace_back();
        continue;
      }
      svg::IntervalBar bar{it->second.pass_at_1(), std::nullopt, std::nullopt};
      if (it->second.has_verdicts()) {
        bar.low = it->second.summary.pass_at_1_interval.low;
        bar.high = it->second.summary.pass_at_1_interval.high;
      }
      s.values.push_back(bar);
    }
    series.push_back(std::move(s));
  }
  return svg::interval_bar_chart("pass@1 per mode",
                                 "Bars: pass@1 of each run per mode; whiskers: Wilson 95% intervals over tasks. "
                                 "A published baseline has no interval.",
                                 c.modes, series);
}

std::string grid_chart(const Comparison& c, const Contender& contender, const ModeComparison& m) {
  const std::string& a = c.runs[contender.run_index].label;
  std::vector<svg::GridCell> cells;
  for (const auto& task : m.tasks)
    cells.push_back({fmt::format("{}: {} ({} {}, baseline {})", task.task_id, to_string(task.flip), a,
                                 rate_text(task.rate_a), rate_text(task.rate_b)),
                     category_of(task.flip)});
  return svg::category_grid(fmt::format("Per-problem outcomes, {}: {} vs {}", m.mode, a, c.baseline().label),
                            fmt::format("One square per problem in problem order ({} shared problems); hover a square "
                                        "for its task id. {} regressed, {} improved.",
                                        m.tasks.size(), m.regressed, m.improved),
                            cells, outcome_categories());
}

std::string size_chart(const Comparison& c) {
  std::vector<svg::ScatterSeries> series;
  std::size_t slot = 0;
  for (const auto& mode : c.modes) {
    svg::ScatterSeries s{mode, svg::kPalette[slot++ % svg::kPaletteSize], {}};
    for (const auto& run : c.runs) {
      auto it = run.modes.find(mode);
      if (!run.model.size_bytes || it == run.modes.end()) continue;
      svg::ScatterPoint point{run.label, *run.model.size_bytes / 1e9, it->second.pass_at_1(), std::nullopt,
                              std::nullopt};
      if (it->second.has_verdicts()) {
        point.y_low = it->second.summary.pass_at_1_interval.low;
        point.y_high = it->second.summary.pass_at_1_interval.high;
      }
      s.points.push_back(point);
    }
    if (!s.points.empty()) series.push_back(std::move(s));
  }
  if (series.empty()) return {};
  return svg::scatter_chart("Quality vs size",
                            "pass@1 against checkpoint size on disk, one point per run and mode, "
                            "with Wilson 95% intervals.",
                            "checkpoint size (GB)", "pass@1 (%)", series);
}

std::string statistics_html(const Comparison& c, const Contender& contender, const ModeComparison& m) {
  const std::string& a = c.runs[contender.run_index].label;
  const std::string& b = c.baseline().label;
  auto pp = [](double fraction) { return fmt::format("{:+.2f} pp", 100 * fraction); };
  auto ci = [](const Interval& i) { return fmt::format("[{:+.2f}, {:+.2f}] pp", 100 * i.low, 100 * i.high); };
  auto ids = [](const std::vector<std::string>& list) {
    return list.empty() ? std::string("none") : escape(fmt::format("{}", fmt::join(list, ", ")));
  };
  std::string html = fmt::format("<h3>{}: {} vs {}</h3>\n<ul>\n", escape(m.mode), escape(a), escape(b));
  if (!m.paired) {
    html += fmt::format(
        "<li>The baseline is a published number: no per-problem pairing and no McNemar test.</li>"
        "<li>Delta pass@1 {}; unpaired 95% interval {} (Newcombe, baseline read as a count out of the "
        "same {} problems).</li>\n</ul>\n",
        pp(m.delta()), ci(m.unpaired_ci), m.tasks_a);
    return html;
  }
  html += fmt::format("<li>{} problems in both runs; only in {}: {}; only in {}: {}.</li>\n", m.tasks.size(), escape(a),
                      ids(m.only_in_a), escape(b), ids(m.only_in_b));
  html +=
      fmt::format("<li>Both pass {}, both fail {}, <strong>regressed {}</strong>, improved {}{}.</li>\n", m.both_pass,
                  m.both_fail, m.regressed, m.improved, m.tied ? fmt::format(", tied {}", m.tied) : "");
  html += fmt::format(
      "<li>Delta pass@1 {} — paired bootstrap 95% interval {} ({} resamples, seed {}); "
      "normal approximation {}.</li>\n",
      pp(m.paired_delta), ci(m.bootstrap_ci), c.options.bootstrap_resamples, c.options.seed, ci(m.normal_ci));
  html += fmt::format("<li>McNemar exact two-sided p = {:.4g} (b = {}, c = {}).</li>\n", m.mcnemar_p, m.regressed,
                      m.improved);
  html += fmt::format(
      "<li>Smallest delta these {} problems can detect: {:.2f} pp (α = 0.05, power 0.8, "
      "(z<sub>0.975</sub> + z<sub>0.8</sub>)·√(D/n), D = {:.4f}{}).</li>\n",
      m.tasks.size(), 100 * m.detectable.delta, m.detectable.discordance,
      m.detectable.discordance_assumed ? " assumed: none observed" : " observed");
  html += fmt::format("<li>Regressed: {}</li>\n<li>Improved: {}</li>\n</ul>\n", ids(m.task_ids(Flip::regressed)),
                      ids(m.task_ids(Flip::improved)));
  return html;
}

// The thinking trace of a raw output: the text before </think> (all of it when it never closed).
std::string thinking_trace(const SampleGeneration& g) {
  const auto end = g.raw_output.find("</think>");
  return end == std::string::npos ? g.raw_output : g.raw_output.substr(0, end);
}

std::string side_html(const std::string& label, const FlipSide& side) {
  std::string html = "<div><h5>" + escape(label) + "</h5><ul>";
  html += fmt::format("<li>status <strong>{}</strong> (sample {}){}</li>", to_string(side.status), side.sample_index,
                      side.detail.empty() ? "" : ": " + escape(side.detail));
  if (side.generation) {
    const SampleGeneration& g = *side.generation;
    html += fmt::format("<li>extraction: {}</li><li>generated tokens: {} (finish: {})</li>", escape(g.extraction_rule),
                        g.generated_tokens, escape(g.finish_reason));
    if (g.thinking_closed) html += fmt::format("<li>thinking {}</li>", *g.thinking_closed ? "closed" : "not closed");
  } else {
    html += "<li>no samples.jsonl: generation unknown</li>";
  }
  html += "</ul>";
  if (side.generation && side.generation->thinking_closed) {
    const std::string trace = thinking_trace(*side.generation);
    html +=
        fmt::format("<details><summary>thinking trace ({} characters)</summary><pre class=\"trace\">{}</pre></details>",
                    trace.size(), escape(trace));
  }
  return html + "</div>";
}

// Each flip: both sides' facts side by side, the diff of the extracted code
// (baseline -> A), the thinking traces collapsed.
std::string flips_html(const Comparison& c, const Contender& contender, const ModeComparison& m) {
  if (m.flips.empty()) return {};
  const std::string& a = c.runs[contender.run_index].label;
  const std::string& b = c.baseline().label;
  std::string html = fmt::format("<h4>{}: regressions by cause on each side</h4>\n", escape(m.mode));
  html += table_html(flip_cause_table(m));
  html += fmt::format("<h4>{}: flipped tasks</h4>\n", escape(m.mode)) + table_html(flip_table(m, a, b));
  for (const auto& flip : m.flips) {
    html += fmt::format("<details class=\"flip\"><summary>{} — {} ({} {}, {} {})</summary>\n", escape(flip.task_id),
                        to_string(flip.flip), escape(a), to_string(flip.a.status), escape(b), to_string(flip.b.status));
    html += "<div class=\"sides\">" + side_html(a, flip.a) + side_html(b, flip.b) + "</div>\n";
    if (flip.a.generation && flip.b.generation) {
      html += fmt::format("<p class=\"note\">Extracted code, {} (−) → {} (+):</p>\n<pre class=\"diff\">", escape(b),
                          escape(a));
      for (const auto& line : line_diff(flip.b.generation->completion, flip.a.generation->completion)) {
        const char* cls = line.kind == DiffLine::Kind::removed ? "del"
                          : line.kind == DiffLine::Kind::added ? "add"
                                                               : "";
        const char* mark = line.kind == DiffLine::Kind::removed ? "− "
                           : line.kind == DiffLine::Kind::added ? "+ "
                                                                : "  ";
        html += fmt::format("<span class=\"{}\">{}{}</span>\n", cls, mark, escape(line.text));
      }
      html += "</pre>\n";
    }
    html += "</details>\n";
  }
  return html;
}

std::string guarantees_html(const Comparison& c) {
  std::string html =
      "<h2>Guarantees</h2>\n<p class=\"note\">What lets a flip be read as a quantization effect, checked from "
      "both runs' report.json. A required one that differs refuses the comparison unless --allow-mismatch is "
      "given.</p>\n";
  for (const auto& contender : c.contenders) {
    if (c.contenders.size() > 1)
      html += "<h3>" + escape(c.runs[contender.run_index].label + " vs " + c.baseline().label) + "</h3>\n";
    html += table_html(guarantees_table(contender));
  }
  return html;
}

}  // namespace

std::string comparison_html(const Comparison& c) {
  const std::string title = fmt::format("quanteval compare: {} vs {}", c.runs[0].label, c.baseline().label);
  std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<style>{}</style>\n</head>\n<body>\n"
      "<h1>{}</h1>\n",
      escape(title), kStyle, escape(title));
  if (const std::string warning = mismatch_warning(c); !warning.empty())
    html += "<p class=\"mismatch\" role=\"alert\"><strong>" + escape(warning) + "</strong></p>\n";
  html += "<h2>Model card</h2>\n" + table_html(model_card_table(c));
  html +=
      "<p class=\"note\">pass@1 cells: value [Wilson 95% interval over problems]. Delta: run − baseline in "
      "percentage points.</p>\n";
  html += "<h2>Charts</h2>\n<div class=\"charts\">\n" + pass_chart(c);
  for (const auto& contender : c.contenders)
    for (const auto& m : contender.modes)
      if (m.paired) html += grid_chart(c, contender, m);
  for (const auto& contender : c.contenders)
    for (const auto& m : contender.modes)
      if (!m.budget_a.empty() || !m.budget_b.empty())
        html += budget_chart({{c.runs[contender.run_index].label + " " + m.mode, m.budget_a},
                              {c.baseline().label + " " + m.mode, m.budget_b}});
  html += size_chart(c) + "</div>\n";
  html += guarantees_html(c);
  html += "<h2>Paired statistics</h2>\n";
  for (const auto& contender : c.contenders)
    for (const auto& m : contender.modes) html += statistics_html(c, contender, m) + flips_html(c, contender, m);
  if (!c.notes.empty()) {
    html += "<h2>Notes</h2>\n<ul>\n";
    for (const auto& note : c.notes) html += "<li>" + escape(note) + "</li>\n";
    html += "</ul>\n";
  }
  html +=
      "<p class=\"note\">Greedy decoding makes each problem's outcome a single draw: the intervals express "
      "uncertainty over which problems were asked. Formulas and caveats: docs/compare.md.</p>\n</body>\n</html>\n";
  return html;
}

}  // namespace quanteval::reports
