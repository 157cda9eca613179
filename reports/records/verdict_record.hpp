#pragma once
// One line of results.jsonl: the verdict of one sample. `quanteval score` and
// `quanteval run` write these lines; `compare`, `gate` and `run --resume` read
// them back. This header is the whole schema: to_json is the only writer and
// verdict_from_json the only reader, so the two cannot drift apart.
//
//   {"mode": "thinking",                     run directories only (score files have no modes)
//    "task_id": "HumanEval/3",
//    "sample_index": 0,
//    "status": "failed",                     reports::Status by name
//    "passed": false,                        status == passed, for tools that read one field
//    "duration_s": 0.0312,                   the program's wall time, rounded to 0.1 ms
//    "time_limit_s": 3.0,                    the limit it ran under, when recorded
//    "detail": "AssertionError: ...",        one short line
//    "attempts": 2}                          only after sandbox infrastructure retries
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "reports/summary/status.hpp"

namespace quanteval::reports {

// Malformed or missing input in a run directory; the message names the file,
// the line (for JSONL) and the field.
struct RunInputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SampleVerdict {
  std::string task_id;
  int sample_index = 0;  // 0-based index of this sample among the task's samples, input order
  Status status = Status::sandbox_error;
  double duration_seconds = 0.0;
  std::string detail;               // one short line: the exception, the exit, the limit hit
  int attempts = 1;                 // sandbox attempts (>1 after infrastructure retries)
  double time_limit_seconds = 0.0;  // the wall-clock limit this program ran under (0 = not recorded)
  std::string mode = {};            // "standard" | "thinking" in run directories; "" for a scored samples file
};

// The results.jsonl line of a verdict (fields in the order above; `mode`,
// `time_limit_s` and `attempts` only when they say something).
nlohmann::ordered_json to_json(const SampleVerdict& verdict);

// Reads one results.jsonl line, checking every field; `where` ("file:line")
// starts each error message. Lenient where hand-written files may be: a
// missing `sample_index` reads as -1 (the caller numbers such lines in file
// order), missing `mode`, `passed`, `duration_s` and `detail` read as empty.
// Throws RunInputError for anything malformed, including a `passed` that
// contradicts `status`.
SampleVerdict verdict_from_json(const nlohmann::json& line, const std::string& where);

}  // namespace quanteval::reports
