#pragma once
// One function per verb: each parses its own options (argv[first..]) and
// returns the process exit code. Input errors are thrown with context and
// become exit code 2 at the CLI boundary.
#include <string>
#include <vector>

#include "datasets/datasets.hpp"
#include "harness/cli/args.hpp"
#include "harness/common/version.hpp"
#include "harness/execution/python.hpp"
#include "harness/execution/time_limits.hpp"
#include "sandbox/sandbox.hpp"

namespace quanteval::harness {

int command_score(int argc, char** argv, int first);
int command_selftest(int argc, char** argv, int first);
int command_inspect(int argc, char** argv, int first);
int command_tokenize(int argc, char** argv, int first);
int command_detokenize(int argc, char** argv, int first);
int command_render_chat(int argc, char** argv, int first);
int command_compare(int argc, char** argv, int first);
int command_gate(int argc, char** argv, int first);
int command_generate(int argc, char** argv, int first);
int command_logits(int argc, char** argv, int first);
int command_divergence(int argc, char** argv, int first);
int command_run(int argc, char** argv, int first);
int command_bench(int argc, char** argv, int first);
int command_serve(int argc, char** argv, int first);

// Options every verb that executes code shares: --python, --workers,
// --timeout, --memory-mb.
void add_sandbox_options(Args& args);
sandbox::Config sandbox_config(const Args& args, const datasets::Dataset& dataset, PythonChoice& python);
// The per-program time limits those options ask for (execution/time_limits.hpp);
// may measure the canonical solutions on `pool` once.
TimeLimits time_limits_from_args(const Args& args, const datasets::Dataset& dataset, sandbox::Pool& pool);

// --dataset, shared by every verb that reads problems.
void add_dataset_option(Args& args);
// --limit and --tasks, the options select_tasks reads; returns args to go on chaining.
Args& add_task_options(Args& args);
// The problems --tasks (ids or numbers) and --limit select, in dataset order
// unless --tasks gives one; UsageError for an unknown task.
std::vector<const datasets::Problem*> select_tasks(const datasets::Dataset& dataset, const Args& args);

}  // namespace quanteval::harness
