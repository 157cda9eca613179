#pragma once
// The reports module's public surface, in one include. Reports read verdicts
// and metadata and write what they add up to; they include no other module of
// quanteval (no model, sandbox or dataset internals) -- the harness fills the
// plain structs below.
//
//   records/verdict_record.hpp      SampleVerdict: one results.jsonl line, its one writer and one reader
//   summary/status.hpp              Status: the verdict taxonomy (passed, failed, ..., sandbox_error)
//   summary/statistics.hpp          the unbiased pass@k estimator
//   summary/score_report.hpp        summarize (pass@k, Wilson interval, status counts); `score`'s report
//   summary/run_report.hpp          `run`'s report.json / report.md / report.html
//   comparison/run_results.hpp      load_run: a finished run directory read back; published baselines
//   comparison/guarantees.hpp       what pairing assumes (same prompts, template, decoding, dataset), checked
//   comparison/comparison.hpp       compare_runs (paired statistics), the model-card table, the gate
//   comparison/line_diff.hpp        an LCS line diff (the extracted code of a flip, both sides)
//   comparison/html_comparison.hpp  compare.html
//   divergence/divergence.hpp       token-level KL of two models on the same sequences (`divergence`)
//   divergence/association.hpp      KL of regressed vs unchanged tasks, Mann-Whitney U (`compare --divergence`)
//   records/sample_generation.hpp   what samples.jsonl says of a sample (filled by the harness)
//   summary/budget_curve.hpp        pass@1 as a function of the token budget, from one run
//
//   const auto a = load_run("runs/int4"), b = load_run("runs/bf16");
//   const Comparison c = compare_runs({a, b}, {});
//   std::string md = to_markdown(c);
#include "reports/comparison/comparison.hpp"
#include "reports/comparison/guarantees.hpp"
#include "reports/comparison/html_comparison.hpp"
#include "reports/comparison/line_diff.hpp"
#include "reports/comparison/run_results.hpp"
#include "reports/divergence/association.hpp"
#include "reports/divergence/divergence.hpp"
#include "reports/records/sample_generation.hpp"
#include "reports/records/verdict_record.hpp"
#include "reports/summary/budget_curve.hpp"
#include "reports/summary/run_report.hpp"
#include "reports/summary/score_report.hpp"
#include "reports/summary/statistics.hpp"
#include "reports/summary/status.hpp"
