#pragma once
// What a paired comparison may take for granted, checked from the two runs'
// report.json: the same prompts (per mode), chat template, decoding and
// dataset -- without them a flip may be a change of conditions rather than a
// quantization effect -- and whether each run's generator promised batch
// invariance (its samples do not depend on --max-batch or --threads), which
// is what makes a rerun of one checkpoint flip nothing.
#include <string>
#include <string_view>
#include <vector>

#include "reports/comparison/run_results.hpp"

namespace quanteval::reports {

enum class GuaranteeState {
  holds,    // both runs record it and it is the same (or, for batch invariance, both promise it)
  differs,  // both record it and it differs (batch invariance: a run does not promise it)
  unknown,  // a run does not record it (no report.json, a `score` directory, a published number)
};
std::string_view to_string(GuaranteeState state);

struct Guarantee {
  std::string name;   // "same prompts (thinking)", "same chat template", "same decoding", ...
  std::string field;  // report.json field checked, e.g. "modes.thinking.prompt_sha256"
  GuaranteeState state = GuaranteeState::unknown;
  std::string detail;    // the values, or what differs (e.g. "decoding.temperature: 0.6 vs 0")
  bool required = true;  // a difference refuses the comparison (batch invariance is informative only)
};

// The guarantees of `run` paired with `baseline` over `modes`, in a fixed order:
// prompts per mode, chat template, decoding, dataset, batch invariance. Decoding
// compares the keys that concern the compared modes: another mode's budget
// (max_new_tokens_<mode>) or stop list (<mode>_stop) is ignored.
std::vector<Guarantee> check_guarantees(const RunResults& run, const RunResults& baseline,
                                        const std::vector<std::string>& modes);

}  // namespace quanteval::reports
