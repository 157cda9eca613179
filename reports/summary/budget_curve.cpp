#include "reports/summary/budget_curve.hpp"

#include <fmt/format.h>

#include <set>

#include "reports/charts/svg.hpp"
#include "reports/summary/score_report.hpp"

namespace quanteval::reports {

std::vector<int> budget_grid(int max_new_tokens) {
  std::vector<int> budgets;
  for (int t = 512; t < max_new_tokens; t *= 2) budgets.push_back(t);
  if (max_new_tokens > 0) budgets.push_back(max_new_tokens);
  return budgets;
}

std::vector<BudgetPoint> budget_curve(const std::vector<SampleVerdict>& verdicts, const Generations& generations,
                                      int max_new_tokens) {
  std::vector<const SampleGeneration*> generation_of;
  for (const auto& v : verdicts) {
    const auto it = generations.find({v.task_id, v.sample_index});
    if (it == generations.end())
      throw RunInputError(fmt::format("budget curve: {} sample {} (mode {}) has a verdict but no samples.jsonl line",
                                      v.task_id, v.sample_index, v.mode));
    generation_of.push_back(&it->second);
  }
  std::vector<BudgetPoint> curve;
  for (const int budget : budget_grid(max_new_tokens)) {
    // The run at this budget, as the run at max_new_tokens implies it; pass@1 by
    // the one summarize (sandbox_error excluded, per-task rates with n > 1).
    std::vector<SampleVerdict> at_budget, upper, finished;
    std::size_t uncertain = 0;
    for (std::size_t i = 0; i < verdicts.size(); ++i) {
      const SampleGeneration& g = *generation_of[i];
      SampleVerdict v = verdicts[i];
      const bool within = g.generated_tokens <= budget;
      SampleVerdict best = v;
      // A sandbox_error says nothing about the model at any budget: left as is (excluded).
      if (!within && v.status != Status::sandbox_error) {
        v.status = Status::truncated;
        v.detail = fmt::format("not finished within {} tokens", budget);
        // Thinking that never closed in the whole generation was still open at the cut:
        // certainly truncated. Anything else would have had its partial code run.
        const bool cut_inside_thinking = g.thinking_closed.has_value() && !*g.thinking_closed;
        best.status = cut_inside_thinking ? Status::truncated : Status::passed;
        if (!cut_inside_thinking) ++uncertain;
      }
      if (within && g.finish_reason != "length") finished.push_back(v);
      upper.push_back(std::move(best));
      at_budget.push_back(std::move(v));
    }
    const Summary all = summarize(at_budget), done = summarize(finished), most = summarize(upper);
    BudgetPoint point;
    point.budget = budget;
    point.samples = all.scored_samples;
    point.finished = done.scored_samples;
    point.uncertain = uncertain;
    if (all.pass_at_k.count(1)) point.pass_at_1 = all.pass_at_k.at(1);
    if (most.pass_at_k.count(1)) point.pass_at_1_upper = most.pass_at_k.at(1);
    if (done.pass_at_k.count(1)) point.pass_at_1_finished = done.pass_at_k.at(1);
    curve.push_back(point);
  }
  return curve;
}

nlohmann::ordered_json to_json(const std::vector<BudgetPoint>& curve) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& p : curve)
    out.push_back({{"budget", p.budget},
                   {"pass@1", p.pass_at_1},
                   {"pass@1_upper", p.pass_at_1_upper},
                   {"uncertain", p.uncertain},
                   {"pass@1_finished", p.finished ? nlohmann::ordered_json(p.pass_at_1_finished) : nullptr},
                   {"finished", p.finished},
                   {"samples", p.samples}});
  return out;
}

std::string budget_table_markdown(const std::vector<NamedCurve>& curves) {
  std::set<int> budgets;
  for (const auto& c : curves)
    for (const auto& p : c.curve) budgets.insert(p.budget);
  if (budgets.empty()) return {};
  std::string md = "| budget (tokens) |";
  std::string rule = "| ---: |";
  for (const auto& c : curves) {
    md += fmt::format(" {0} pass@1 | {0} finished | {0} pass@1 of finished |", c.name);
    rule += " ---: | ---: | ---: |";
  }
  md += "\n" + rule + "\n";
  for (const int budget : budgets) {
    md += fmt::format("| {} |", budget);
    for (const auto& c : curves) {
      const BudgetPoint* point = nullptr;
      for (const auto& p : c.curve)
        if (p.budget == budget) point = &p;
      if (!point) {
        md += " — | — | — |";
        continue;
      }
      const std::string upper = point->uncertain ? fmt::format(" (≤ {:.2f}%, {} cut uncertain)",
                                                               100 * point->pass_at_1_upper, point->uncertain)
                                                 : std::string();
      md += fmt::format(" {:.2f}%{} | {}/{} | {} |", 100 * point->pass_at_1, upper, point->finished, point->samples,
                        point->finished ? fmt::format("{:.2f}%", 100 * point->pass_at_1_finished) : "—");
    }
    md += "\n";
  }
  return md;
}

std::string budget_chart(const std::vector<NamedCurve>& curves) {
  std::vector<svg::ScatterSeries> series;
  std::size_t slot = 0;
  for (const auto& c : curves) {
    if (c.curve.empty()) continue;
    const char* colour = svg::kPalette[slot++ % svg::kPaletteSize];
    svg::ScatterSeries all{c.name + ": pass@1", colour, {}, true, ""};
    svg::ScatterSeries finished{c.name + ": pass@1 of finished", colour, {}, true, "6 4"};
    for (const auto& p : c.curve) {
      all.points.push_back({"", static_cast<double>(p.budget), p.pass_at_1, std::nullopt, std::nullopt});
      if (p.finished)
        finished.points.push_back(
            {"", static_cast<double>(p.budget), p.pass_at_1_finished, std::nullopt, std::nullopt});
    }
    series.push_back(std::move(all));
    if (!finished.points.empty()) series.push_back(std::move(finished));
  }
  if (series.empty()) return {};
  return svg::scatter_chart("pass@1 by token budget",
                            "pass@1 had generation stopped at each budget, from the run at its full budget: a sample "
                            "not finished within the budget counts as failed (solid); dashed: pass@1 among the "
                            "samples that finished within it.",
                            "token budget", "pass@1 (%)", series);
}

}  // namespace quanteval::reports
