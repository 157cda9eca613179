// `quanteval divergence` end to end on two tiny checkpoints that carry the real
// Qwen3 tokenizer (tests/run/make_tiny_model.py): outputs, a model against
// itself (KL exactly 0), run samples, and the refusals.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <fstream>

#include "harness/divergence/divergence.hpp"
#include "harness/prompts/prompts.hpp"
#include "runtime/runtime.hpp"
#include "tests/compare/run_fixtures.hpp"
#include "tests/support/test_data.hpp"

using namespace quanteval;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path& tiny_models() {
  static const test::TempDir dir;
  static const bool built = [] {
    for (const char* kind : {"bf16", "gptq"}) {
      const std::string command =
          fmt::format("'{}' '{}' --tokenizer '{}' --out '{}' {}", test::python(), QUANTEVAL_MAKE_TINY_MODEL,
                      test::qwen3_tokenizer_dir().string(), (dir.path() / kind).string(),
                      std::string(kind) == "gptq" ? "--gptq --seed 2" : "");
      if (std::system(command.c_str()) != 0) return false;
    }
    return true;
  }();
  REQUIRE(built);
  return dir.path();
}

std::string he() { return test::dataset_file("humaneval").string(); }

json read_json(const fs::path& file) {
  std::ifstream in(file);
  return json::parse(in);
}

}  // namespace

TEST_CASE("divergence of a GPTQ checkpoint from its baseline on canonical solutions; a model against itself is 0") {
  const fs::path models = tiny_models();
  test::TempDir out;
  const auto r = test::run_quanteval({"divergence", "--model", (models / "gptq").string(), "--baseline",
                                      (models / "bf16").string(), "--out", out.path().string(), "--limit", "2",
                                      "--dataset", he(), "--threads", "2", "--chunk", "16"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json j = read_json(out.path() / "divergence.json");
  REQUIRE(j.at("sources").size() == 1);
  const json& canonical = j.at("sources")[0];
  CHECK(canonical.at("source") == "canonical");
  // Every position but the last of prompt + solution, for both tasks.
  const auto tokenizer = runtime::Tokenizer::from_file(models / "bf16");
  const auto dataset = datasets::load(he());
  std::size_t expected = 0;
  for (int i = 0; i < 2; ++i)
    expected += tokenizer.encode(dataset.problems[i].prompt + dataset.problems[i].canonical_solution).size() - 1;
  CHECK(canonical.at("all").at("positions") == expected);
  CHECK(canonical.at("tasks").size() == 2);
  CHECK(canonical.at("regions").contains("prompt"));
  CHECK(canonical.at("regions").contains("answer"));
  CHECK(canonical.at("all").at("mean_kl").get<double>() > 0.01);  // different random weights
  CHECK(j.at("info").at("tokenizer").get<std::string>().find("same id -> bytes") != std::string::npos);
  CHECK(j.at("info").at("memory").at("chunk_logits_bytes") == 2 * 16 * 151936 * 4);
  CHECK(fs::exists(out.path() / "divergence.md"));
  // The largest divergences, with their text decoded: the true next token is the one after `position`.
  const json& worst = canonical.at("worst_positions");
  REQUIRE(worst.size() == 20);
  CHECK(worst[0].at("kl").get<double>() >= worst[19].at("kl").get<double>());
  CHECK(worst[0].at("kl").get<double>() == canonical.at("all").at("max_kl").get<double>());
  const auto& problem = *dataset.find(worst[0].at("task_id").get<std::string>());
  const auto ids = tokenizer.encode(problem.prompt + problem.canonical_solution);
  const auto position = worst[0].at("position").get<std::size_t>();
  CHECK(worst[0].at("next") == tokenizer.decode(std::vector<runtime::TokenId>{ids.at(position + 1)}));
  CHECK(worst[0].at("top1_b") ==
        tokenizer.decode(std::vector<runtime::TokenId>{worst[0].at("top1_b_id").get<runtime::TokenId>()}));
  CHECK(r.out.find("canonical: mean KL") != std::string::npos);

  // The same checkpoint twice: identical logits, so KL is exactly 0 and top-1 always agrees.
  test::TempDir self;
  const auto s = test::run_quanteval({"divergence", "--model", (models / "bf16").string(), "--baseline",
                                      (models / "bf16").string(), "--out", self.path().string(), "--tasks", "3",
                                      "--dataset", he(), "--threads", "1", "--quiet"});
  REQUIRE(s.exit_code == 0);
  const json self_report = read_json(self.path() / "divergence.json");
  const json& zero = self_report.at("sources")[0].at("all");
  CHECK(zero.at("mean_kl") == 0.0);
  CHECK(zero.at("max_kl") == 0.0);
  CHECK(zero.at("same_top1") == 1.0);
}

TEST_CASE("divergence --runs scores the run's samples by mode and region") {
  const fs::path models = tiny_models();
  const auto dataset = datasets::load(he());
  const auto tokenizer = runtime::Tokenizer::from_file(models / "bf16");
  const auto chat = runtime::ChatTemplate::from_model_dir(models / "bf16");
  test::TempDir tmp;
  const fs::path run = tmp.path() / "run";
  fs::create_directories(run);
  const std::vector<const datasets::Problem*> tasks = {&dataset.problems[0], &dataset.problems[1]};
  const std::vector<harness::Mode> modes = {harness::Mode::standard, harness::Mode::thinking};
  const auto prompts = harness::prepare_prompts(tasks, modes, 1, tokenizer, &chat);
  json config = {{"modes", {"standard", "thinking"}},
                 {"prompts",
                  {{"standard", prompts.sha256_by_mode.at(harness::Mode::standard)},
                   {"thinking", prompts.sha256_by_mode.at(harness::Mode::thinking)}}},
                 {"tasks", {"HumanEval/0", "HumanEval/1"}},
                 {"dataset", dataset.sha256},
                 {"model", "tiny"},
                 {"weights", "other"}};
  std::ofstream(run / "run.json") << json{{"config", config}}.dump();
  {
    std::ofstream samples(run / "samples.jsonl");
    for (const char* task : {"HumanEval/0", "HumanEval/1"}) {
      samples << json{{"mode", "standard"},
                      {"task_id", task},
                      {"sample_index", 0},
                      {"prompt_tokens", 1},
                      {"generated_tokens", 1},
                      {"finish_reason", "stop"},
                      {"raw_output", "    return True\n"},
                      {"completion", "    return True\n"},
                      {"extraction_rule", "prompt_continuation"}}
                     .dump()
              << "\n";
      samples << json{{"mode", "thinking"},
                      {"task_id", task},
                      {"sample_index", 0},
                      {"prompt_tokens", 1},
                      {"generated_tokens", 1},
                      {"finish_reason", "eos"},
                      {"raw_output", "<think>\nEasy.\n</think>\n\n```python\ndef f():\n    return 1\n```"},
                      {"completion", "def f():\n    return 1\n"},
                      {"extraction_rule", "fenced_python"},
                      {"thinking_closed", true}}
                     .dump()
              << "\n";
    }
  }
  test::TempDir out;
  const auto r = test::run_quanteval({"divergence", "--model", (models / "gptq").string(), "--baseline",
                                      (models / "bf16").string(), "--out", out.path().string(), "--runs", run.string(),
                                      "--dataset", he(), "--threads", "2", "--limit", "1"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("was not generated by the baseline") != std::string::npos);
  const json j = read_json(out.path() / "divergence.json");
  REQUIRE(j.at("sources").size() == 3);
  CHECK(j.at("sources")[0].at("source") == "canonical");
  CHECK(j.at("sources")[1].at("source") == "standard");
  CHECK(j.at("sources")[2].at("source") == "thinking");
  CHECK_FALSE(j.at("sources")[1].at("regions").contains("thinking"));
  const json& thinking = j.at("sources")[2].at("regions");
  CHECK(thinking.at("thinking").at("positions") == tokenizer.encode("<think>\nEasy.\n</think>").size());
  CHECK(thinking.at("answer").at("positions") == tokenizer.encode("\n\n```python\ndef f():\n    return 1\n```").size());
  CHECK(j.at("sources")[2].at("tasks").size() == 1);  // --limit 1
}

TEST_CASE("divergence refuses models whose tokenizers differ, and bad usage") {
  const fs::path models = tiny_models();
  test::TempDir tmp;
  const fs::path other = tmp.path() / "other";
  fs::copy(models / "bf16", other);
  {
    std::ifstream in(other / "tokenizer.json");
    json t = json::parse(in);
    auto& vocab = t.at("model").at("vocab");
    const int a = vocab.at("def").get<int>(), b = vocab.at("return").get<int>();
    vocab["def"] = b;
    vocab["return"] = a;
    std::ofstream(other / "tokenizer.json") << t.dump();
  }
  test::TempDir out;
  const auto r = test::run_quanteval({"divergence", "--model", other.string(), "--baseline", (models / "bf16").string(),
                                      "--out", out.path().string(), "--limit", "1", "--dataset", he()});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("tokenizers differ") != std::string::npos);
  CHECK_FALSE(fs::exists(out.path() / "divergence.json"));

  const auto u = test::run_quanteval({"divergence", "--model", (models / "bf16").string(), "--baseline",
                                      (models / "bf16").string(), "--out", out.path().string(), "--no-canonical",
                                      "--dataset", he()});
  CHECK(u.exit_code == 2);
  CHECK(u.err.find("--no-canonical") != std::string::npos);
}

TEST_CASE("compare --divergence: mean KL of regressed vs unchanged tasks with a rank test") {
  test::TempDir tmp;
  // Ten thinking tasks: the baseline passes 0..8, the quantized run fails 1 and 3
  // (regressed) and passes 9 (improved).
  test::SyntheticRun a{.modes = {"thinking"}, .tasks = 10};
  a.passes = [](const std::string&, int task, int) { return task != 1 && task != 3; };
  test::SyntheticRun b{.modes = {"thinking"}, .tasks = 10};
  b.passes = [](const std::string&, int task, int) { return task != 9; };
  test::write_run(tmp.path() / "a", a);
  test::write_run(tmp.path() / "b", b);
  // The two regressed tasks diverge most.
  json tasks = json::array();
  for (int t = 0; t < 10; ++t)
    tasks.push_back({{"task_id", test::task_name(t)}, {"mean_kl", t == 1 ? 0.9 : t == 3 ? 0.8 : 0.01 * (t + 1)}});
  fs::create_directories(tmp.path() / "div");
  std::ofstream(tmp.path() / "div" / "divergence.json")
      << json{{"sources", {{{"source", "thinking"}, {"tasks", tasks}}}}}.dump();

  const auto r = test::run_quanteval({"compare", (tmp.path() / "a").string(), (tmp.path() / "b").string(), "--out",
                                      (tmp.path() / "cmp").string(), "--divergence", (tmp.path() / "div").string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fs::exists(tmp.path() / "cmp" / "compare.md"));
  const json j = read_json(tmp.path() / "cmp" / "divergence_association.json");
  REQUIRE(j.size() == 1);
  CHECK(j[0].at("mode") == "thinking");
  CHECK(j[0].at("regressed").at("task_ids") == json{"HumanEval/1", "HumanEval/3"});
  CHECK(j[0].at("unchanged").at("tasks") == 7);
  CHECK(j[0].at("improved").at("task_ids") == json{"HumanEval/9"});
  // Both regressed tasks above all 7 unchanged ones: U = 14, and that arrangement
  // (the top two of nine ranks) has probability 1 / C(9, 2); two-sided p = 2 / 36.
  CHECK(j[0].at("mann_whitney").at("u") == 14.0);
  CHECK(j[0].at("mann_whitney").at("p_value_two_sided").get<double>() == doctest::Approx(2.0 / 36.0));
  CHECK(r.out.find("Mann-Whitney p") != std::string::npos);

  const auto missing =
      test::run_quanteval({"compare", (tmp.path() / "a").string(), (tmp.path() / "b").string(), "--out",
                           (tmp.path() / "cmp2").string(), "--divergence", (tmp.path() / "nowhere").string()});
  CHECK(missing.exit_code == 2);
  CHECK(missing.err.find("--divergence") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path() / "cmp2" / "compare.md"));  // refused before any output
}

TEST_CASE("divergence --ids-file scores every row of a fixture's input_ids, as `logits` returns them") {
  const fs::path gptq = test::fixture("models/qwen3-tiny-gptq-g64-actorder"),
                 bf16 = test::fixture("models/qwen3-tiny-bf16");
  const auto ids = read_json(bf16 / "reference.json").at("input_ids").get<std::vector<runtime::TokenId>>();
  test::TempDir out;
  const auto r = test::run_quanteval({"divergence", "--model", gptq.string(), "--baseline", bf16.string(), "--ids-file",
                                      (bf16 / "reference.json").string(), "--out", out.path().string(), "--threads",
                                      "2", "--chunk", "5", "--quiet"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::ifstream in(out.path() / "positions.jsonl");
  const json line = json::parse(in);
  REQUIRE(line.at("kl").size() == ids.size());  // T rows, the last without a next token
  CHECK(line.at("delta_p").back().is_null());
  CHECK(read_json(out.path() / "divergence.json")
            .at("info")
            .at("tokenizer")
            .get<std::string>()
            .find("only the vocabulary size") != std::string::npos);

  // The same numbers as the library on the same models, ids and chunking.
  auto a = runtime::Model::load(gptq, {.threads = 2, .kv_cache_bytes = 64ull << 20});
  auto b = runtime::Model::load(bf16, {.threads = 2, .kv_cache_bytes = 64ull << 20});
  harness::DivergenceSequence s;
  s.ids = ids;
  s.regions.assign(ids.size(), reports::Region::prompt);
  const reports::ScoredSequence expected = harness::score_sequence(*a, *b, s, 5, true);
  REQUIRE(expected.positions.size() == ids.size());
  for (std::size_t t = 0; t < ids.size(); ++t) {
    CHECK(line.at("kl")[t].get<double>() == doctest::Approx(expected.positions[t].kl).epsilon(1e-12));
    CHECK(line.at("kl")[t].get<double>() > 0.05);
  }

  // A model against itself: exactly 0 at every row.
  test::TempDir self;
  REQUIRE(test::run_quanteval({"divergence", "--model", bf16.string(), "--baseline", bf16.string(), "--ids",
                               "5,17,300,2,9", "--out", self.path().string(), "--quiet"})
              .exit_code == 0);
  std::ifstream self_in(self.path() / "positions.jsonl");
  const json zero = json::parse(self_in);
  REQUIRE(zero.at("kl").size() == 5);
  for (const auto& v : zero.at("kl")) CHECK(v.get<double>() == 0.0);

  // Bad combinations and ids outside the vocabulary: exit 2.
  CHECK(test::run_quanteval({"divergence", "--model", bf16.string(), "--baseline", bf16.string(), "--ids", "1,2",
                             "--limit", "3", "--out", self.path().string()})
            .exit_code == 2);
  const auto outside = test::run_quanteval({"divergence", "--model", bf16.string(), "--baseline", bf16.string(),
                                            "--ids", "1,5000", "--out", self.path().string()});
  CHECK(outside.exit_code == 2);
  CHECK(outside.err.find("vocabulary") != std::string::npos);
}
