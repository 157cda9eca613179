// The noise floor of `compare`: two runs made under the same conditions state
// every guarantee; runs whose prompts, chat template, decoding or dataset
// differ are refused (exit 2, each differing field named) unless
// --allow-mismatch, which then heads every output.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/compare/run_fixtures.hpp"
#include "tests/support/test_data.hpp"

using quanteval::test::contains;
using quanteval::test::read_text;
using quanteval::test::run_quanteval;
using quanteval::test::SyntheticRun;
using quanteval::test::TempDir;
using quanteval::test::write_run;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// What `quanteval run` records about the conditions of a run.
json conditions() {
  return {
      {"model", {{"id", "demo"}}},
      {"decoding", {{"preset", "greedy"}, {"temperature", 0.0}, {"seed", 0}, {"max_new_tokens_thinking", 4096}}},
      {"chat_template_sha256", "c0ffee00c0ffee00c0ffee00"},
      {"dataset", {{"name", "humaneval"}, {"sha256", "da7a5e7da7a5e7da7a5e7"}}},
      {"generation", {{"batch_invariant", true}}},
      {"modes",
       {{"standard", {{"prompt_sha256", "57a4da2d57a4da2d"}}}, {"thinking", {{"prompt_sha256", "7h1nk7h1nk7h1nk"}}}}}};
}

bool passes_odd(const std::string&, int task, int) { return task % 2 == 1; }

SyntheticRun run_with(json report) {
  SyntheticRun run{.tasks = 20, .passes = passes_odd};
  run.report = std::move(report);
  return run;
}

}  // namespace

TEST_CASE("compare: two runs of one checkpoint flip nothing and state every guarantee") {
  TempDir tmp;
  write_run(tmp.path() / "a", run_with(conditions()));
  write_run(tmp.path() / "b", run_with(conditions()));
  const auto r = run_quanteval(
      {"compare", (tmp.path() / "a").string(), (tmp.path() / "b").string(), "--out", (tmp.path() / "out").string()});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json j = json::parse(read_text(tmp.path() / "out" / "compare.json"));
  CHECK_FALSE(j.contains("mismatch_allowed"));
  const json& comparison = j["comparisons"][0];
  for (const char* mode : {"standard", "thinking"}) {
    CHECK(comparison["modes"][mode]["counts"]["regressed"] == 0);
    CHECK(comparison["modes"][mode]["counts"]["improved"] == 0);
  }
  std::map<std::string, std::string> states;
  for (const auto& g : comparison["guarantees"]) states[g["field"]] = g["state"];
  CHECK(states == std::map<std::string, std::string>{{"modes.standard.prompt_sha256", "holds"},
                                                     {"modes.thinking.prompt_sha256", "holds"},
                                                     {"chat_template_sha256", "holds"},
                                                     {"decoding", "holds"},
                                                     {"dataset.sha256", "holds"},
                                                     {"generation.batch_invariant", "holds"}});
  const std::string md = read_text(tmp.path() / "out" / "compare.md");
  CHECK(contains(md, "## Guarantees"));
  CHECK(contains(md, "| same decoding | holds | decoding |"));
  CHECK_FALSE(contains(md, "MISMATCH"));
  const std::string html = read_text(tmp.path() / "out" / "compare.html");
  CHECK(contains(html, "<h2>Guarantees</h2>"));
  CHECK(contains(html, "<td>generation.batch_invariant</td>"));
}

TEST_CASE("compare: differing conditions are refused naming each field, or allowed and announced") {
  TempDir tmp;
  json changed = conditions();
  changed["decoding"]["temperature"] = 0.6;
  changed["chat_template_sha256"] = "0therte3p1a7e";
  changed["dataset"]["sha256"] = "07herda7a5e7";
  changed["modes"]["thinking"]["prompt_sha256"] = "07herpr0mp75";
  changed["generation"]["batch_invariant"] = false;
  write_run(tmp.path() / "a", run_with(changed));
  write_run(tmp.path() / "b", run_with(conditions()));
  const std::vector<std::string> base = {"compare", (tmp.path() / "a").string(), (tmp.path() / "b").string(), "--out",
                                         (tmp.path() / "out").string()};
  const auto refused = run_quanteval(base);
  INFO(refused.out << refused.err);
  CHECK(refused.exit_code == 2);
  for (const char* field : {"decoding.temperature", "chat_template_sha256", "dataset.sha256",
                            "modes.thinking.prompt_sha256", "--allow-mismatch"})
    CHECK_MESSAGE(contains(refused.err, field), field);
  // Same standard prompts and a promise that is only informative: neither is named.
  CHECK_FALSE(contains(refused.err, "modes.standard.prompt_sha256"));
  CHECK_FALSE(contains(refused.err, "generation.batch_invariant"));
  CHECK_FALSE(fs::exists(tmp.path() / "out" / "compare.md"));

  auto allowed_args = base;
  allowed_args.push_back("--allow-mismatch");
  const auto allowed = run_quanteval(allowed_args);
  INFO(allowed.out << allowed.err);
  REQUIRE(allowed.exit_code == 0);
  CHECK(allowed.out.starts_with("MISMATCH ALLOWED"));
  const std::string md = read_text(tmp.path() / "out" / "compare.md");
  const std::string first_lines = md.substr(0, md.find("| Metric"));
  CHECK(contains(first_lines, "MISMATCH ALLOWED"));
  CHECK(contains(first_lines, "decoding.temperature"));
  const json j = json::parse(read_text(tmp.path() / "out" / "compare.json"));
  CHECK(nlohmann::ordered_json::parse(read_text(tmp.path() / "out" / "compare.json")).begin().key() ==
        "mismatch_allowed");
  CHECK(j["mismatch_allowed"]["fields"].size() == 4);
  std::map<std::string, std::string> states;
  for (const auto& g : j["comparisons"][0]["guarantees"]) states[g["field"]] = g["state"];
  CHECK(states["modes.standard.prompt_sha256"] == "holds");
  CHECK(states["modes.thinking.prompt_sha256"] == "differs");
  CHECK(states["decoding"] == "differs");
  CHECK(states["generation.batch_invariant"] == "differs");
  const std::string html = read_text(tmp.path() / "out" / "compare.html");
  const auto banner = html.find("MISMATCH ALLOWED");
  REQUIRE(banner != std::string::npos);
  CHECK(banner < html.find("<h2>Model card</h2>"));

  // The gate refuses the same pair, and takes --allow-mismatch too.
  CHECK(
      run_quanteval({"gate", (tmp.path() / "a").string(), (tmp.path() / "b").string(), "--max-drop", "1"}).exit_code ==
      2);
  const auto gate = run_quanteval(
      {"gate", (tmp.path() / "a").string(), (tmp.path() / "b").string(), "--max-drop", "1", "--allow-mismatch"});
  CHECK(gate.exit_code == 0);
  CHECK(gate.out.starts_with("MISMATCH ALLOWED"));
}

TEST_CASE("compare: conditions a run does not record are unknown, not refused") {
  TempDir tmp;
  write_run(tmp.path() / "a", run_with(json::object()));
  write_run(tmp.path() / "b", run_with(conditions()));
  const auto r = run_quanteval(
      {"compare", (tmp.path() / "a").string(), (tmp.path() / "b").string(), "--out", (tmp.path() / "out").string()});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const json j = json::parse(read_text(tmp.path() / "out" / "compare.json"));
  for (const auto& g : j["comparisons"][0]["guarantees"]) CHECK(g["state"] == "unknown");
}

TEST_CASE("compare: another mode's budget does not matter to the compared mode") {
  TempDir tmp;
  json changed = conditions();
  changed["decoding"]["max_new_tokens_standard"] = 512;
  json base = conditions();
  base["decoding"]["max_new_tokens_standard"] = 1024;
  write_run(tmp.path() / "a", run_with(changed));
  write_run(tmp.path() / "b", run_with(base));
  const std::string a = (tmp.path() / "a").string(), b = (tmp.path() / "b").string();
  const auto both = run_quanteval({"compare", a, b, "--out", (tmp.path() / "out").string()});
  CHECK(both.exit_code == 2);
  CHECK(contains(both.err, "decoding.max_new_tokens_standard: 512 vs 1024"));
  const auto thinking = run_quanteval({"compare", a, b, "--mode", "thinking", "--out", (tmp.path() / "out").string()});
  INFO(thinking.out << thinking.err);
  CHECK(thinking.exit_code == 0);
}
