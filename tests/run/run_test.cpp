// `quanteval run`: both modes end to end, resume after SIGKILL at a random
// point equals an uninterrupted run, refusal of a changed configuration,
// compare/gate on the two checkpoints' runs, and the noise floor: one
// checkpoint run at --max-batch 1 --threads 1 and at --max-batch 16 --threads 2
// gives identical samples, and compare of the two flips nothing.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using quanteval::test::read_jsonl;
using quanteval::test::run_quanteval;

namespace {

// Built once per test binary: BF16 and GPTQ tiny checkpoints with the real tokenizer.
const fs::path& models_dir() {
  static quanteval::test::TempDir dir;
  static const bool built = [] {
    // "varied": GPTQ with a small embedding scale, so its outputs change from token to
    // token (the others mostly repeat one token): the batch-invariance test needs that.
    for (const char* kind : {"bf16", "gptq", "varied"}) {
      const std::string flags = std::string(kind) == "gptq"     ? "--gptq"
                                : std::string(kind) == "varied" ? "--gptq --embed-scale 0.05"
                                                                : "";
      const std::string command =
          fmt::format("'{}' '{}' --tokenizer '{}' --out '{}' {}", quanteval::test::python(), QUANTEVAL_MAKE_TINY_MODEL,
                      quanteval::test::qwen3_tokenizer_dir().string(), (dir.path() / kind).string(), flags);
      if (std::system(command.c_str()) != 0) return false;
    }
    return true;
  }();
  REQUIRE(built);
  return dir.path();
}

std::string key(const json& row) {
  return fmt::format("{} {} {}", row.at("mode").get<std::string>(), row.at("task_id").get<std::string>(),
                     row.at("sample_index").get<int>());
}

// key -> the fields that must not depend on interruption.
std::map<std::string, std::string> outcome(const fs::path& run) {
  std::map<std::string, std::string> out;
  for (const auto& s : read_jsonl(run / "samples.jsonl")) {
    REQUIRE_MESSAGE(out.count(key(s)) == 0, "duplicate sample " << key(s));
    out[key(s)] = s.at("raw_output").get<std::string>() + "\x1f" + s.at("finish_reason").get<std::string>();
  }
  std::size_t results = 0;
  for (const auto& r : read_jsonl(run / "results.jsonl")) {
    REQUIRE_MESSAGE(out.count(key(r)) == 1, "result without sample " << key(r));
    out[key(r)] += "\x1f" + r.at("status").get<std::string>();
    ++results;
  }
  CHECK(results == out.size());
  return out;
}

std::vector<std::string> run_args(const fs::path& model, const fs::path& out, const std::string& limit) {
  return {"run",
          "--model",
          model.string(),
          "--out",
          out.string(),
          "--mode",
          "both",
          "--limit",
          limit,
          "--max-new-tokens",
          "40",
          "--dataset",
          quanteval::test::dataset_file("humaneval").string(),
          "--python",
          quanteval::test::python(),
          "--device",
          "cpu",
          "--quiet"};
}

}  // namespace

TEST_CASE("run: both modes produce every file, every status is accounted for") {
  quanteval::test::TempDir tmp;
  const fs::path out = tmp.path() / "run";
  const auto r = run_quanteval(run_args(models_dir() / "gptq", out, "4"));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  for (const char* f : {"samples.jsonl", "results.jsonl", "report.json", "report.md", "report.html", "run.json"})
    CHECK(fs::exists(out / f));
  const auto samples = read_jsonl(out / "samples.jsonl");
  CHECK(samples.size() == 8);
  for (const auto& s : samples) {
    CHECK(s.at("prompt_tokens").get<int>() > 0);
    CHECK(s.at("generated_tokens").get<int>() <= 40);
    if (s.at("mode") == "thinking") CHECK(s.contains("extraction_rule"));
  }
  std::ifstream in(out / "report.json");
  const json report = json::parse(in);
  CHECK(report["modes"].contains("standard"));
  CHECK(report["modes"].contains("thinking"));
  CHECK(report["modes"]["thinking"]["tasks"] == 4);
  // A random model passes nothing; every sample still has exactly one verdict.
  std::size_t counted = 0;
  for (const auto& [status, n] : report["modes"]["standard"]["status_counts"].items()) counted += n.get<std::size_t>();
  CHECK(counted == 4);
  CHECK(report["modes"]["standard"]["pass_at_k"]["pass@1"].get<double>() == 0.0);
  CHECK(report["model"]["quantization"].get<std::string>().find("GPTQ 4-bit") != std::string::npos);
  CHECK(report["chat_template_sha256"].get<std::string>().size() == 64);
  // The CPU runtime promises batch invariance; each mode has its budget curve, ending at the budget.
  CHECK(report["generation"]["batch_invariant"] == true);
  for (const char* mode : {"standard", "thinking"}) {
    const json& curve = report["modes"][mode]["budget_curve"];
    REQUIRE(curve.size() == 1);  // a budget of 40 is below the first doubling (512)
    CHECK(curve[0]["budget"] == 40);
    CHECK(curve[0]["pass@1"] == report["modes"][mode]["pass_at_k"]["pass@1"]);
    CHECK(curve[0]["samples"] == 4);
  }
  // The prompts of the thinking mode come from the real chat template.
  std::ifstream run_json(out / "run.json");
  CHECK(json::parse(run_json)["config"]["prompts"].contains("thinking"));
}

TEST_CASE("run: killed at a random point and resumed equals an uninterrupted run") {
  quanteval::test::TempDir tmp;
  const fs::path model = models_dir() / "bf16";
  const fs::path whole = tmp.path() / "whole", killed = tmp.path() / "killed";
  const std::string limit = "12";
  REQUIRE(run_quanteval(run_args(model, whole, limit)).exit_code == 0);

  // Start the same run and SIGKILL it once a random number of results is on disk.
  std::mt19937 rng(std::random_device{}());
  const std::size_t kill_after = std::uniform_int_distribution<std::size_t>(1, 20)(rng);
  MESSAGE("killing after " << kill_after << " results");
  const std::string binary = quanteval::test::quanteval_binary().string();
  auto args = run_args(model, killed, limit);
  std::vector<char*> argv = {const_cast<char*>(binary.c_str())};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  bool killed_mid_way = false;
  for (int i = 0; i < 20000; ++i) {
    if (fs::exists(killed / "results.jsonl")) {
      std::ifstream in(killed / "results.jsonl");
      const auto lines = std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
      if (static_cast<std::size_t>(lines) >= kill_after) {
        ::kill(pid, SIGKILL);
        killed_mid_way = true;
        break;
      }
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) break;  // finished before the kill point
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::waitpid(pid, nullptr, 0);
  CHECK(killed_mid_way);
  CHECK_FALSE(fs::exists(killed / "report.json"));

  // Resuming without --resume is refused; with a changed configuration too.
  CHECK(run_quanteval(run_args(model, killed, limit)).exit_code == 2);
  auto changed = run_args(model, killed, limit);
  changed.push_back("--resume");
  changed.push_back("--seed");
  changed.push_back("5");
  const auto refused = run_quanteval(changed);
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("decoding") != std::string::npos);

  auto resume = run_args(model, killed, limit);
  resume.push_back("--resume");
  const auto r = run_quanteval(resume);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto a = outcome(whole), b = outcome(killed);
  CHECK(a.size() == 24);
  CHECK(a == b);
}

TEST_CASE("run --baseline compares; gate and compare read run directories") {
  quanteval::test::TempDir tmp;
  const fs::path base = tmp.path() / "bf16", quant = tmp.path() / "gptq";
  REQUIRE(run_quanteval(run_args(models_dir() / "bf16", base, "3")).exit_code == 0);
  auto args = run_args(models_dir() / "gptq", quant, "3");
  args.push_back("--baseline");
  args.push_back(base.string());
  const auto r = run_quanteval(args);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fs::exists(quant / "compare" / "compare.md"));
  CHECK(fs::exists(quant / "compare" / "compare.html"));
  // Both score 0: no drop, the gate passes.
  const auto gate = run_quanteval({"gate", quant.string(), base.string(), "--max-drop", "1"});
  INFO(gate.out << gate.err);
  CHECK(gate.exit_code == 0);
}

TEST_CASE("run: --max-batch 1 --threads 1 and --max-batch 16 --threads 2 give identical samples") {
  quanteval::test::TempDir tmp;
  const fs::path model = models_dir() / "varied";
  // Every field of a sample but the timing-free ones must match: text, code, token counts, finish.
  auto samples = [](const fs::path& run) {
    std::map<std::string, json> out;
    for (auto s : read_jsonl(run / "samples.jsonl")) out[key(s)] = s;
    return out;
  };
  for (const char* preset : {"greedy", "qwen-thinking"}) {
    CAPTURE(preset);
    const fs::path one = tmp.path() / (std::string(preset) + "-b1"),
                   sixteen = tmp.path() / (std::string(preset) + "-b16");
    auto args_one = run_args(model, one, "10");
    auto args_sixteen = run_args(model, sixteen, "10");
    for (auto* args : {&args_one, &args_sixteen}) args->insert(args->end(), {"--preset", preset});
    args_one.insert(args_one.end(), {"--max-batch", "1", "--threads", "1"});
    args_sixteen.insert(args_sixteen.end(), {"--max-batch", "16", "--threads", "2"});
    REQUIRE(run_quanteval(args_one).exit_code == 0);
    REQUIRE(run_quanteval(args_sixteen).exit_code == 0);
    const auto a = samples(one), b = samples(sixteen);
    REQUIRE(a.size() == 20);
    std::set<std::string> distinct;
    for (const auto& [k, s] : a) distinct.insert(s.at("raw_output").get<std::string>());
    CHECK(distinct.size() > 10);  // the fixture is not degenerate: a changed logit could show
    CHECK(a == b);
    CHECK(outcome(one) == outcome(sixteen));

    // compare: zero flips, every guarantee holds (batch invariance as the runs record it).
    const auto r = run_quanteval({"compare", one.string(), sixteen.string(), "--out", (tmp.path() / "cmp").string()});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    std::ifstream in(tmp.path() / "cmp" / "compare.json");
    const json c = json::parse(in);
    for (const char* mode : {"standard", "thinking"}) {
      CHECK(c["comparisons"][0]["modes"][mode]["counts"]["regressed"] == 0);
      CHECK(c["comparisons"][0]["modes"][mode]["counts"]["improved"] == 0);
    }
    for (const auto& g : c["comparisons"][0]["guarantees"]) CHECK_MESSAGE(g["state"] == "holds", g.dump());
  }
}
