#include "reports/comparison/guarantees.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace quanteval::reports {

std::string_view to_string(GuaranteeState state) {
  switch (state) {
    case GuaranteeState::holds: return "holds";
    case GuaranteeState::differs: return "differs";
    case GuaranteeState::unknown: return "unknown";
  }
  return "unknown";
}

namespace {

std::string short_hash(const std::string& hash) {
  if (hash.empty()) return "(none)";
  return hash.size() > 16 ? hash.substr(0, 16) + "…" : hash;
}

// Two recorded hashes: equal, different, or unknown when either is missing.
Guarantee hash_guarantee(std::string name, std::string field, const std::optional<std::string>& a,
                         const std::optional<std::string>& b) {
  Guarantee g;
  g.name = std::move(name);
  g.field = std::move(field);
  if (!a || !b) {
    g.detail = fmt::format("not recorded by {}", !a && !b ? "either run" : !a ? "the run" : "the baseline");
    return g;
  }
  g.state = *a == *b ? GuaranteeState::holds : GuaranteeState::differs;
  g.detail = *a == *b ? short_hash(*a) : fmt::format("{} vs {}", short_hash(*a), short_hash(*b));
  return g;
}

std::optional<std::string> recorded(const std::string& value) {
  return value.empty() ? std::nullopt : std::optional<std::string>(value);
}

// Whether a decoding key matters to the compared modes: a mode's own budget
// (max_new_tokens_<mode>) and stop list (<mode>_stop) only when that mode is compared.
bool concerns(const std::string& key, const std::vector<std::string>& modes) {
  const auto compared = [&](const std::string& mode) {
    return std::find(modes.begin(), modes.end(), mode) != modes.end();
  };
  const std::string budget = "max_new_tokens_", stop = "_stop";
  if (key.starts_with(budget)) return compared(key.substr(budget.size()));
  if (key.ends_with(stop)) return compared(key.substr(0, key.size() - stop.size()));
  return true;
}

// The decoding fields that differ, "decoding.temperature: 0.6 vs 0", in the run's key order.
std::vector<std::string> decoding_differences(const nlohmann::json& a, const nlohmann::json& b,
                                              const std::vector<std::string>& modes) {
  std::vector<std::string> out;
  for (const auto& [key, value] : a.items()) {
    if (!concerns(key, modes)) continue;
    const auto it = b.find(key);
    if (it == b.end())
      out.push_back(fmt::format("decoding.{}: {} vs (absent)", key, value.dump()));
    else if (*it != value)
      out.push_back(fmt::format("decoding.{}: {} vs {}", key, value.dump(), it->dump()));
  }
  for (const auto& [key, value] : b.items())
    if (concerns(key, modes) && !a.contains(key))
      out.push_back(fmt::format("decoding.{}: (absent) vs {}", key, value.dump()));
  return out;
}

}  // namespace

std::vector<Guarantee> check_guarantees(const RunResults& run, const RunResults& baseline,
                                        const std::vector<std::string>& modes) {
  std::vector<Guarantee> out;
  for (const auto& mode : modes) {
    auto prompt_hash = [&](const RunResults& r) -> std::optional<std::string> {
      const auto it = r.modes.find(mode);
      return it == r.modes.end() ? std::nullopt : recorded(it->second.prompt_sha256);
    };
    out.push_back(hash_guarantee(fmt::format("same prompts ({})", mode), fmt::format("modes.{}.prompt_sha256", mode),
                                 prompt_hash(run), prompt_hash(baseline)));
  }
  Guarantee chat_template = hash_guarantee("same chat template", "chat_template_sha256", run.chat_template_sha256,
                                           baseline.chat_template_sha256);
  out.push_back(std::move(chat_template));

  Guarantee decoding;
  decoding.name = "same decoding";
  decoding.field = "decoding";
  if (run.decoding && baseline.decoding) {
    const auto differences = decoding_differences(*run.decoding, *baseline.decoding, modes);
    decoding.state = differences.empty() ? GuaranteeState::holds : GuaranteeState::differs;
    decoding.detail = differences.empty() ? run.decoding->dump() : fmt::format("{}", fmt::join(differences, "; "));
  } else {
    decoding.detail = "not recorded by both runs";
  }
  out.push_back(std::move(decoding));

  out.push_back(hash_guarantee("same dataset", "dataset.sha256", recorded(run.dataset_sha256),
                               recorded(baseline.dataset_sha256)));

  Guarantee invariance;
  invariance.name = "batch-invariant generation";
  invariance.field = "generation.batch_invariant";
  invariance.required = false;
  if (run.batch_invariant && baseline.batch_invariant) {
    const bool both = *run.batch_invariant && *baseline.batch_invariant;
    invariance.state = both ? GuaranteeState::holds : GuaranteeState::differs;
    invariance.detail =
        both ? "both generators promise samples independent of batch size and threads"
             : fmt::format("not promised by {}", !*run.batch_invariant && !*baseline.batch_invariant ? "either run"
                                                 : !*run.batch_invariant                             ? "the run"
                                                                                                     : "the baseline");
  } else {
    invariance.detail = "not recorded by both runs";
  }
  out.push_back(std::move(invariance));
  return out;
}

}  // namespace quanteval::reports
