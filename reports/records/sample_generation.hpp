#pragma once
// What a run's samples.jsonl says about one sample, as far as reports need it:
// token count, how it ended, how the code was found, the code and the raw
// text. The harness owns samples.jsonl (harness/run/generation_record.hpp is
// its one reader and writer) and fills these; reports never parse that file.
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace quanteval::reports {

struct SampleGeneration {
  int generated_tokens = 0;             // new tokens, a final end-of-sequence token included
  std::string finish_reason;            // eos | stop | length
  std::string extraction_rule;          // e.g. fenced_python; prompt_continuation in standard mode
  std::optional<bool> thinking_closed;  // thinking mode only: false when </think> never came
  std::string completion;               // the code that was executed
  std::string raw_output;               // the decoded new tokens
};

// One mode's generations by (task_id, sample_index).
using Generations = std::map<std::pair<std::string, int>, SampleGeneration>;

}  // namespace quanteval::reports
