// Step 2 of a run, and the configuration that decides whether a resume may continue.
#include "harness/run/pipeline.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

ordered_json run_config(const EvaluatedModel& model, const Decoding& decoding, const PromptSet& prompts,
                        const datasets::Dataset& dataset, const std::vector<const datasets::Problem*>& tasks,
                        const TimeLimits& limits, const sandbox::Config& sandbox) {
  ordered_json config;
  config["model"] = model.resolved.id.empty() ? fs::absolute(model.resolved.directory).string() : model.resolved.id;
  config["model_commit"] = model.resolved.commit;
  config["weights"] = checkpoint_identity(model.checkpoint);
  config["decoding"] = to_json(decoding);
  ordered_json modes = ordered_json::array();
  ordered_json prompt_hashes = ordered_json::object();
  for (const Mode mode : prompts.modes) {
    modes.push_back(to_string(mode));
    prompt_hashes[std::string(to_string(mode))] = prompts.sha256_by_mode.at(mode);
  }
  config["modes"] = modes;
  config["prompts"] = prompt_hashes;
  config["chat_template"] = model.chat_template_sha256;
  config["dataset"] = dataset.sha256;
  ordered_json task_ids = ordered_json::array();
  for (const auto* task : tasks) task_ids.push_back(task->task_id);
  config["tasks"] = task_ids;
  config["sandbox"] = {{"time_limit", limits.rule}, {"memory_bytes", sandbox.limits.address_space_bytes}};
  return config;
}

RunRecords read_records(const RunDirectory& run) {
  RunRecords records;
  const std::string samples_file = (run.path() / "samples.jsonl").string();
  const std::string results_file = (run.path() / "results.jsonl").string();
  for (const auto& [key, line] : run.samples())
    records.generations.emplace(key, generation_record_from_json(line, samples_file + " (" + key.text() + ")"));
  for (const auto& [key, line] : run.results())
    records.verdicts.emplace(key, reports::verdict_from_json(line, results_file + " (" + key.text() + ")"));
  return records;
}

SampleKey sample_key(const PreparedPrompt& prompt) {
  return {std::string(to_string(prompt.mode)), prompt.problem->task_id, prompt.sample_index};
}

RunPlan plan_run(const PromptSet& prompts, const RunRecords& records) {
  RunPlan plan;
  plan.total = prompts.prompts.size();
  for (const auto& [key, verdict] : records.verdicts) {
    ++plan.done;
    if (verdict.status == reports::Status::passed) ++plan.passed;
  }
  for (const auto& prompt : prompts.prompts) {
    const SampleKey key = sample_key(prompt);
    if (records.verdicts.count(key)) continue;
    if (const auto it = records.generations.find(key); it != records.generations.end())
      plan.to_execute.push_back(it->second);
    else
      plan.to_generate.push_back(&prompt);
  }
  return plan;
}

}  // namespace quanteval::harness
