#pragma once
// pass@1 as a function of the token budget, from one run at budget T alone.
// With greedy decoding (or sampling from a per-sample RNG stream) and a
// batch-invariant generator, the run at a budget t < T would produce exactly
// the first t tokens of each sample: a sample that finished within t tokens
// keeps its verdict, one that did not is cut at t and counted as failed
// (`truncated`). That is exact for a thinking sample whose thinking never
// closed (cut inside <think>, the run marks it truncated); a sample cut after
// its </think> or in standard mode would have its partial code executed, which
// could pass, so pass_at_1 is a lower bound and pass_at_1_upper (those samples
// counted as passed) an upper one. docs/compare.md, "Thinking-budget curve".
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reports/records/sample_generation.hpp"
#include "reports/records/verdict_record.hpp"

namespace quanteval::reports {

struct BudgetPoint {
  int budget = 0;
  double pass_at_1 = 0.0;           // every sample; those not finished within `budget` count as truncated
  double pass_at_1_upper = 0.0;     // the same, with the uncertain cut samples counted as passed
  std::size_t uncertain = 0;        // cut samples whose verdict at `budget` is not known (see above)
  double pass_at_1_finished = 0.0;  // among the samples that finished within `budget` (0 when none did)
  std::size_t samples = 0;          // scored samples (sandbox_error excluded, as in summarize)
  std::size_t finished = 0;         // of them, finished within `budget`
};

// The budgets of a curve: 512, 1024, 2048, ... below max_new_tokens, then max_new_tokens.
std::vector<int> budget_grid(int max_new_tokens);

// One point per budget of budget_grid(max_new_tokens). A sample "finished
// within t" when its generated_tokens <= t and it did not end by the length
// limit. Throws RunInputError when a verdict has no generation record.
std::vector<BudgetPoint> budget_curve(const std::vector<SampleVerdict>& verdicts, const Generations& generations,
                                      int max_new_tokens);

// The writers every report shares: report.json / compare.json's array, a
// Markdown table (one pair of columns per curve) and one SVG chart with every
// curve (pass@1 solid, pass@1 among finished dashed).
nlohmann::ordered_json to_json(const std::vector<BudgetPoint>& curve);

struct NamedCurve {
  std::string name;  // "thinking", "demo-int4 thinking"
  std::vector<BudgetPoint> curve;
};
std::string budget_table_markdown(const std::vector<NamedCurve>& curves);
std::string budget_chart(const std::vector<NamedCurve>& curves);

}  // namespace quanteval::reports
