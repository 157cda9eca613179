// Step 5 of a run: the run directory -> report.json, report.md, report.html.
#include "harness/common/files.hpp"
#include "harness/common/version.hpp"
#include "harness/execution/scoring.hpp"
#include "harness/run/pipeline.hpp"

namespace quanteval::harness {

reports::RunReport build_run_report(const RunReportSources& s) {
  const RunRecords records = read_records(s.run);
  reports::RunReport report;
  report.tool_version = tool_version();
  report.created_utc = utc_timestamp();
  report.config_hash = s.run.config_hash();
  report.resumed = s.run.resumed();
  report.model = model_info(s.model);
  report.decoding = to_json(s.decoding);
  report.chat_template_hash = s.model.chat_template_sha256;
  report.dataset = describe_dataset(s.dataset);
  report.sandbox = s.sandbox;
  for (const Mode mode : s.prompts.modes) {
    reports::ModeReport m;
    m.name = std::string(to_string(mode));
    m.prompt_hash = s.prompts.sha256_by_mode.at(mode);
    m.max_new_tokens = s.decoding.max_new_tokens(mode);
    for (const auto& prompt : s.prompts.prompts) {
      if (prompt.mode != mode) continue;
      // Every sample has both records once steps 3 and 4 are done: .at() failing is a bug.
      const SampleKey key = sample_key(prompt);
      const GenerationRecord& generation = records.generations.at(key);
      m.verdicts.push_back(records.verdicts.at(key));
      m.generations[{key.task_id, key.sample_index}] = to_sample_generation(generation);
      m.prompt_tokens += static_cast<std::uint64_t>(generation.prompt_tokens);
      m.generated_tokens += static_cast<std::uint64_t>(generation.generated_tokens);
      if (mode == Mode::thinking) ++m.extraction_rules[to_string(generation.extraction_rule)];
    }
    report.modes.push_back(std::move(m));
  }
  report.prefill_tokens_per_second = s.speed.prefill_tok_s;
  report.decode_tokens_per_second = s.speed.decode_tok_s;
  report.device = s.device;
  report.backend = s.backend;
  report.batch_invariant = s.batch_invariant;
  report.wall_seconds = s.wall_seconds;
  return report;
}

void write_run_report(const std::filesystem::path& dir, const reports::RunReport& report) {
  write_file_atomically(dir / "report.json", reports::to_json(report).dump(2) + "\n");
  write_file_atomically(dir / "report.md", reports::to_markdown(report));
  write_file_atomically(dir / "report.html", reports::to_html(report));
}

}  // namespace quanteval::harness
