#pragma once
// One line of a run's samples.jsonl: what the model produced for one sample
// and the code taken from it. This header is the schema: to_json is the only
// writer, generation_record_from_json the only reader (--resume). The verdict
// lines of results.jsonl are reports::SampleVerdict (reports/reports.hpp).
//
//   {"mode": "thinking", "task_id": "HumanEval/3", "sample_index": 0,
//    "prompt_tokens": 182, "generated_tokens": 911,
//    "finish_reason": "eos",              length | stop | eos
//    "raw_output": "<think>...",          the decoded new tokens, cut before a stop string
//    "completion": "def f(...): ...",     standard: the continuation cut at a stop sequence; thinking: the code
//    "extraction_rule": "fenced_python",  how the completion was found (prompt_continuation in standard mode)
//    "thinking_closed": true}             thinking mode only: false when </think> never came
#include <nlohmann/json.hpp>
#include <string>

#include "harness/extraction/extraction.hpp"
#include "harness/generation/backend.hpp"
#include "harness/prompts/mode.hpp"
#include "harness/run/run_directory.hpp"
#include "reports/reports.hpp"

namespace quanteval::harness {

struct GenerationRecord {
  Mode mode = Mode::standard;
  std::string task_id;
  int sample_index = 0;
  int prompt_tokens = 0;
  int generated_tokens = 0;
  FinishReason finish = FinishReason::length;
  std::string raw_output;
  std::string completion;
  ExtractionRule extraction_rule = ExtractionRule::none;
  bool thinking_closed = true;

  SampleKey key() const;
};

nlohmann::ordered_json to_json(const GenerationRecord& record);

// Reads one samples.jsonl line; `where` starts each error message. Throws
// std::runtime_error naming the field for anything missing or malformed.
GenerationRecord generation_record_from_json(const nlohmann::json& line, const std::string& where);

// What reports need of a record (reports never read samples.jsonl themselves).
reports::SampleGeneration to_sample_generation(const GenerationRecord& record);

// Reads RUN/samples.jsonl, when the run directory has one, into each mode of
// `run` (compare's flip causes and budget curves). Lines of a mode the run has
// no verdicts for are ignored. Throws reports::RunInputError naming file:line.
void attach_generations(reports::RunResults& run);

}  // namespace quanteval::harness
