#pragma once
// Samples files (openai/human-eval format): JSONL, one object per line with
// `task_id` and either `completion` (body appended to the prompt, human-eval
// style) or `solution` (a whole program, evalplus style). Other fields are kept
// untouched. The whole file is validated before anything is run, so bad input
// never leaves half-written output behind.
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "datasets/datasets.hpp"

namespace quanteval::harness {

// Bad input: the message names the file, line and field.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Sample {
  std::string task_id;
  std::string code;            // completion or solution text
  bool whole_program = false;  // true: `solution`, run as is; false: `completion`, appended to the prompt
  int sample_index = 0;        // index among the task's samples, in file order
  std::size_t line = 0;        // 1-based line in the samples file
};

// Reads and validates a samples file against a dataset: malformed JSON,
// missing or non-string fields, unknown task ids, duplicates and empty files
// are InputError. Duplicate means a line whose task and code repeat an earlier
// line; a repeated sample is allowed when lines carry distinct
// `sample_index`/`completion_id` values.
std::vector<Sample> read_samples(const std::filesystem::path& file, const datasets::Dataset& dataset);

// The program the sandbox runs for a sample, exactly openai/human-eval's
// check program: prompt + completion + "\n" + test + "\n" + "check(entry_point)"
// (for `solution` samples the prompt is not prepended).
std::string check_program(const datasets::Problem& problem, const Sample& sample);

}  // namespace quanteval::harness
