#include "harness/run/run_directory.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "datasets/datasets.hpp"
#include "runtime/runtime.hpp"  // QE_CHECK

namespace quanteval::harness {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

std::string SampleKey::text() const { return fmt::format("{} {} #{}", mode, task_id, sample_index); }

namespace {

// Reads a JSONL file written line by line. A last line without its newline
// is what a kill mid-write leaves: it is dropped and the file cut back to the
// last complete line, so appending continues cleanly.
std::vector<json> read_and_repair_jsonl(const fs::path& file) {
  std::vector<json> rows;
  if (!fs::exists(file)) return rows;
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (complete < text.size()) {
    if (::truncate(file.c_str(), static_cast<off_t>(complete)) != 0)
      throw std::runtime_error(fmt::format("{}: cannot cut off the incomplete last line", file.string()));
  }
  std::size_t start = 0, line_number = 0;
  while (start < complete) {
    const std::size_t end = text.find('\n', start);
    ++line_number;
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    try {
      rows.push_back(json::parse(line));
    } catch (const json::parse_error& e) {
      throw std::runtime_error(fmt::format("{}:{}: invalid JSON ({})", file.string(), line_number, e.what()));
    }
  }
  return rows;
}

// Names of the top-level fields whose values differ, for the refusal message.
std::vector<std::string> differing_fields(const json& a, const json& b) {
  std::vector<std::string> names;
  for (const auto& [key, value] : a.items())
    if (!b.contains(key) || b.at(key) != value) names.push_back(key);
  for (const auto& [key, value] : b.items())
    if (!a.contains(key)) names.push_back(key);
  return names;
}

}  // namespace

std::string RunDirectory::config_hash_of(const ordered_json& config) {
  // nlohmann::json (not ordered) sorts keys: the hash does not depend on the
  // order fields were added in.
  return datasets::sha256_hex(json(config).dump());
}

SampleKey RunDirectory::key_of(const json& line, const std::string& where) {
  try {
    return {line.at("mode").get<std::string>(), line.at("task_id").get<std::string>(),
            line.at("sample_index").get<int>()};
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: a line lacks mode/task_id/sample_index ({})", where, e.what()));
  }
}

RunDirectory::RunDirectory(const fs::path& dir, const ordered_json& config, bool resume)
    : dir_(dir), hash_(config_hash_of(config)) {
  const fs::path run_file = dir / "run.json";
  if (fs::exists(run_file)) {
    if (!resume)
      throw std::runtime_error(
          fmt::format("{} already holds a run; pass --resume to continue it, or choose another --out", dir.string()));
    std::ifstream in(run_file);
    json stored;
    try {
      stored = json::parse(in);
    } catch (const json::parse_error& e) {
      throw std::runtime_error(fmt::format("{}: invalid JSON ({})", run_file.string(), e.what()));
    }
    if (stored.value("config_hash", "") != hash_) {
      const auto fields = differing_fields(stored.value("config", json::object()), json(config));
      throw std::runtime_error(fmt::format(
          "--resume refused: {} was produced with a different configuration (differs in: {}); "
          "resume with the same model, decoding, prompts, template, dataset and limits, or choose another --out",
          dir.string(), fields.empty() ? std::string("hash") : fmt::format("{}", fmt::join(fields, ", "))));
    }
    resumed_ = true;
  } else {
    if (fs::exists(dir) && fs::exists(dir / "results.jsonl"))
      throw std::runtime_error(
          fmt::format("{} holds results of another kind of run; choose another --out", dir.string()));
    fs::create_directories(dir);
    ordered_json record;
    record["config_hash"] = hash_;
    record["config"] = config;
    write_file_atomically(run_file, record.dump(2) + "\n");
  }
  samples_.path = dir / "samples.jsonl";
  results_.path = dir / "results.jsonl";
  open(samples_, resumed_);
  open(results_, resumed_);
}

void RunDirectory::open(LineFile& file, bool read_existing) {
  if (read_existing)
    for (auto& row : read_and_repair_jsonl(file.path)) {
      auto key = key_of(row, file.path.string());
      file.lines[key] = std::move(row);
    }
  file.writer = std::make_unique<JsonlWriter>(file.path, true);
}

void RunDirectory::append_sample(const ordered_json& line) { append(samples_, line); }

void RunDirectory::append_result(const ordered_json& line) { append(results_, line); }

void RunDirectory::append(LineFile& file, const ordered_json& line) {
  std::lock_guard lock(mutex_);
  const std::string name = file.path.filename().string();
  const auto key = key_of(json(line), name);
  QE_CHECK(!file.lines.count(key), "written twice to " + name + ": " + key.text());
  // Replace, never throw: one odd field must not end a run.
  file.writer->write_line(line.dump(-1, ' ', false, ordered_json::error_handler_t::replace));
  file.lines[key] = json(line);
}

}  // namespace quanteval::harness
