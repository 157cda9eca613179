// `quanteval run --endpoint` and `quanteval serve` as real processes on
// loopback (every server binds port 0 and prints the port it got):
//   - run through serve gives the embedded run's samples, verdicts and pass@1;
//   - two servers behind two --endpoint share the requests;
//   - a server killed mid-run, restarted, then --resume: nothing lost or doubled;
//   - misbehaving servers (fake_openai_server.py): clear errors and retries,
//     never a crash, never a recorded sample that the server did not give;
//   - serve survives hostile clients (abuse_server.py) and exits 0 on SIGTERM.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "tests/support/test_data.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using quanteval::test::read_jsonl;
using quanteval::test::run_quanteval;

namespace {

// A tiny random-weight Qwen3 checkpoint with the real tokenizer and chat template, built once.
const fs::path& tiny_model() {
  static quanteval::test::TempDir dir;
  static const bool built = [] {
    const std::string command =
        fmt::format("'{}' '{}' --tokenizer '{}' --out '{}'", quanteval::test::python(), QUANTEVAL_MAKE_TINY_MODEL,
                    quanteval::test::qwen3_tokenizer_dir().string(), (dir.path() / "tiny").string());
    return std::system(command.c_str()) == 0;
  }();
  REQUIRE(built);
  static const fs::path model = dir.path() / "tiny";
  return model;
}

// A child process whose stdout is read line by line (the port line) and whose
// stderr goes to a file (shown when a check fails). Killed if still running at the end.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const fs::path& stderr_file) : stderr_file_(stderr_file) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      const int err = ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(err, 2);
      ::close(out[0]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = out[0];
  }
  ~Child() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The next stdout line as JSON; fails the test after `timeout_s`.
  json read_json_line(double timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    std::string line;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c = 0;
      if (::read(out_, &c, 1) != 1) break;
      if (c == '\n') return json::parse(line);
      line += c;
    }
    FAIL("no line on stdout within " << timeout_s << " s; stderr: " << log());
    return {};
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit code (-signal when killed); fails the test after `timeout_s`.
  int wait(double timeout_s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() > deadline) {
        FAIL("still running after " << timeout_s << " s; stderr: " << log());
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }
  bool running() {
    int status = 0;
    if (exited_ || ::waitpid(pid_, &status, WNOHANG) != pid_) return !exited_;
    exited_ = true;
    return false;
  }
  std::string log() const {
    std::ifstream in(stderr_file_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  fs::path stderr_file_;
};

// `quanteval serve` on the tiny model; port() once it listens.
struct Server {
  Server(const fs::path& dir, const std::string& name, std::vector<std::string> extra = {})
      : child(
            [&] {
              std::vector<std::string> argv = {quanteval::test::quanteval_binary().string(),
                                               "serve",
                                               "--model",
                                               tiny_model().string(),
                                               "--threads",
                                               "1",
                                               "--device",
                                               "cpu"};
              // Any free port unless the test names one.
              if (std::find(extra.begin(), extra.end(), "--port") == extra.end())
                extra.insert(extra.end(), {"--port", "0"});
              argv.insert(argv.end(), extra.begin(), extra.end());
              return argv;
            }(),
            dir / (name + ".stderr")) {
    const json line = child.read_json_line(120);
    REQUIRE(line.at("event") == "listening");
    port = line.at("port").get<int>();
    REQUIRE(port > 0);
  }
  std::string url() const { return fmt::format("http://127.0.0.1:{}", port); }
  Child child;
  int port = 0;
};

// fake_openai_server.py in one of its modes; log() is every POST body it received.
struct FakeServer {
  FakeServer(const fs::path& dir, const std::string& mode)
      : log_file(dir / ("fake-" + mode + ".jsonl")),
        child({quanteval::test::python(), QUANTEVAL_FAKE_SERVER, "--mode", mode, "--model", tiny_model().string(),
               "--log", log_file.string()},
              dir / ("fake-" + mode + ".stderr")) {
    port = child.read_json_line(30).at("port").get<int>();
  }
  std::string url() const { return fmt::format("http://127.0.0.1:{}/v1", port); }
  std::vector<json> log() const { return fs::exists(log_file) ? read_jsonl(log_file) : std::vector<json>{}; }
  fs::path log_file;
  Child child;
  int port = 0;
};

std::vector<std::string> run_args(const fs::path& out, const std::string& mode, int limit, int max_new_tokens) {
  return {"run",
          "--model",
          tiny_model().string(),
          "--out",
          out.string(),
          "--mode",
          mode,
          "--limit",
          std::to_string(limit),
          "--max-new-tokens",
          std::to_string(max_new_tokens),
          "--dataset",
          quanteval::test::dataset_file("humaneval").string(),
          "--python",
          quanteval::test::python(),
          "--quiet"};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::string key(const json& row) {
  return fmt::format("{} {} {}", row.at("mode").get<std::string>(), row.at("task_id").get<std::string>(),
                     row.at("sample_index").get<int>());
}

// key -> what a sample must agree on across backends: text, token counts, finish, verdict.
std::map<std::string, std::string> outcome(const fs::path& run) {
  std::map<std::string, std::string> out;
  for (const auto& s : read_jsonl(run / "samples.jsonl")) {
    REQUIRE_MESSAGE(out.count(key(s)) == 0, "duplicate sample " << key(s));
    out[key(s)] =
        fmt::format("{}\x1f{}\x1f{}\x1f{}", s.at("raw_output").get<std::string>(), s.at("prompt_tokens").get<int>(),
                    s.at("generated_tokens").get<int>(), s.at("finish_reason").get<std::string>());
  }
  std::set<std::string> verdicts;
  for (const auto& r : read_jsonl(run / "results.jsonl")) {
    REQUIRE_MESSAGE(out.count(key(r)) == 1, "verdict without sample " << key(r));
    REQUIRE_MESSAGE(verdicts.insert(key(r)).second, "duplicate verdict " << key(r));
    out[key(r)] += "\x1f" + r.at("status").get<std::string>();
  }
  CHECK(verdicts.size() == out.size());
  return out;
}

json report_of(const fs::path& run) {
  std::ifstream in(run / "report.json");
  return json::parse(in);
}

std::size_t lines_in(const fs::path& file) {
  if (!fs::exists(file)) return 0;
  std::ifstream in(file);
  return static_cast<std::size_t>(
      std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

}  // namespace

TEST_CASE("run --endpoint through quanteval serve equals the embedded run (greedy, both modes)") {
  quanteval::test::TempDir tmp;
  Server server(tmp.path(), "serve");
  const fs::path embedded = tmp.path() / "embedded", remote = tmp.path() / "remote";
  const auto base = run_args(embedded, "both", 3, 24);
  auto r = run_quanteval(with(base, {"--device", "cpu", "--threads", "1"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  r = run_quanteval(with(run_args(remote, "both", 3, 24), {"--endpoint", server.url() + "/v1", "--concurrency", "3"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);

  const auto want = outcome(embedded), got = outcome(remote);
  CHECK(want.size() == 6);
  CHECK(got == want);
  const json a = report_of(embedded), b = report_of(remote);
  for (const char* mode : {"standard", "thinking"}) {
    CHECK(b["modes"][mode]["pass_at_k"] == a["modes"][mode]["pass_at_k"]);
    CHECK(b["modes"][mode]["status_counts"] == a["modes"][mode]["status_counts"]);
    CHECK(b["modes"][mode]["generated_tokens"] == a["modes"][mode]["generated_tokens"]);
  }
  // The report says where generation ran, and what the server said it is.
  CHECK(a["backend"]["kind"] == "embedded");
  const json& backend = b["backend"];
  CHECK(backend["kind"] == "openai");
  REQUIRE(backend["endpoints"].size() == 1);
  CHECK(backend["endpoints"][0]["url"] == server.url());
  CHECK(backend["endpoints"][0]["served_model"] == tiny_model().string());
  CHECK(backend["endpoints"][0]["server_version"].get<std::string>().rfind("quanteval ", 0) == 0);
  CHECK(backend["completions"] == 6);
  CHECK(backend["failures"] == 0);
  CHECK(backend["warnings"].empty());
  CHECK(backend["generated_tokens"] ==
        a["modes"]["standard"]["generated_tokens"].get<int>() + a["modes"]["thinking"]["generated_tokens"].get<int>());
}

TEST_CASE("sampled decoding through quanteval serve draws what the embedded runtime draws (same seeds)") {
  quanteval::test::TempDir tmp;
  Server server(tmp.path(), "serve");
  const fs::path embedded = tmp.path() / "embedded", remote = tmp.path() / "remote";
  // Hot enough that the random model's peaked logits give every sample its own tokens.
  const std::vector<std::string> sampling = {
      "--preset", "qwen-thinking", "--n-samples", "3",       "--seed", "11", "--temperature",
      "10",       "--top-p",       "1",           "--top-k", "0"};
  auto r = run_quanteval(with(with(run_args(embedded, "standard", 2, 24), sampling), {"--device", "cpu"}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  r = run_quanteval(with(with(run_args(remote, "standard", 2, 24), sampling), {"--endpoint", server.url()}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto want = outcome(embedded);
  CHECK(want.size() == 6);
  CHECK(outcome(remote) == want);
  // The samples of a task differ from one another: the seeds are per sample, not per run.
  std::set<std::string> texts;
  for (const auto& s : read_jsonl(embedded / "samples.jsonl")) texts.insert(s["raw_output"].get<std::string>());
  CHECK(texts.size() == 6);
}

TEST_CASE("two servers behind two --endpoint share the load; the API key is never written") {
  quanteval::test::TempDir tmp;
  const std::string secret = "sk-test-5ecret-never-written";
  Server one(tmp.path(), "one", {"--api-key", secret}), two(tmp.path(), "two", {"--api-key", secret});
  const fs::path out = tmp.path() / "run";
  // Credentials in a URL are accepted and never shown either.
  const std::string with_user = fmt::format("http://user:pw-in-url@127.0.0.1:{}", two.port);
  const auto r = run_quanteval(with(run_args(out, "standard", 8, 16), {"--endpoint", one.url(), "--endpoint", with_user,
                                                                       "--concurrency", "2", "--api-key", secret}));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(outcome(out).size() == 8);
  const json backend = report_of(out)["backend"];
  REQUIRE(backend["endpoints"].size() == 2);
  std::size_t total = 0;
  for (const auto& e : backend["endpoints"]) {
    CHECK(e["attempts"].get<std::size_t>() > 0);  // both got requests
    total += e["attempts"].get<std::size_t>();
  }
  CHECK(total == 8);
  CHECK(backend["endpoints"][1]["url"] == two.url());
  // And on the servers' side: each one's request log.
  std::size_t answered = 0;
  for (Server* s : {&one, &two}) {
    const std::string log = s->child.log();
    std::size_t n = 0;
    for (auto at = log.find("POST /v1/completions 200"); at != std::string::npos;
         at = log.find("POST /v1/completions 200", at + 1))
      ++n;
    CHECK(n > 0);
    answered += n;
  }
  CHECK(answered == 8);
  for (const auto& entry : fs::directory_iterator(out)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path());
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    CHECK_MESSAGE(text.find(secret) == std::string::npos, entry.path());
    CHECK_MESSAGE(text.find("pw-in-url") == std::string::npos, entry.path());
  }
  CHECK(r.out.find(secret) == std::string::npos);
  CHECK(r.err.find(secret) == std::string::npos);

  // A wrong key is refused before anything is generated.
  const auto refused = run_quanteval(with(run_args(tmp.path() / "refused", "standard", 1, 4),
                                          {"--endpoint", one.url(), "--api-key", "sk-not-the-key-7731"}));
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("401") != std::string::npos);
  CHECK(refused.err.find("sk-not-the-key-7731") == std::string::npos);
}

TEST_CASE("a server killed mid-run, restarted, then --resume: nothing lost, nothing duplicated") {
  quanteval::test::TempDir tmp;
  const fs::path embedded = tmp.path() / "embedded", remote = tmp.path() / "remote";
  REQUIRE(run_quanteval(with(run_args(embedded, "both", 4, 48), {"--device", "cpu", "--threads", "1"})).exit_code == 0);

  std::optional<Server> first(std::in_place, tmp.path(), "first", std::vector<std::string>{"--max-batch", "1"});
  Child run(with(with({quanteval::test::quanteval_binary().string()}, run_args(remote, "both", 4, 48)),
                 {"--endpoint", first->url(), "--concurrency", "1", "--retries", "1"}),
            tmp.path() / "run.stderr");
  std::size_t at_kill = 0;
  while (run.running() && (at_kill = lines_in(remote / "samples.jsonl")) < 2)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  first->child.signal(SIGKILL);
  REQUIRE_MESSAGE(at_kill < 8, "the run finished before the server could be killed");
  const int code = run.wait(120);
  INFO(run.log());
  CHECK(code == 2);  // the requests after the kill failed: an infrastructure failure, not a verdict
  CHECK(run.log().find("--resume") != std::string::npos);
  const std::size_t before = lines_in(remote / "samples.jsonl");
  CHECK(before >= 2);
  CHECK(before < 8);
  first.reset();

  Server second(tmp.path(), "second");
  const auto resumed = run_quanteval(with(run_args(remote, "both", 4, 48), {"--endpoint", second.url(), "--resume"}));
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(outcome(remote) == outcome(embedded));
  CHECK(report_of(remote)["modes"]["standard"]["pass_at_k"] == report_of(embedded)["modes"]["standard"]["pass_at_k"]);
}

TEST_CASE("a server killed and restarted on the same port mid-run: the retries bridge the gap, no --resume needed") {
  quanteval::test::TempDir tmp;
  const fs::path embedded = tmp.path() / "embedded", remote = tmp.path() / "remote";
  REQUIRE(run_quanteval(with(run_args(embedded, "standard", 6, 48), {"--device", "cpu", "--threads", "1"})).exit_code ==
          0);
  std::optional<Server> first(std::in_place, tmp.path(), "first", std::vector<std::string>{"--max-batch", "1"});
  const int port = first->port;
  Child run(with(with({quanteval::test::quanteval_binary().string()}, run_args(remote, "standard", 6, 48)),
                 {"--endpoint", first->url(), "--concurrency", "1"}),
            tmp.path() / "run.stderr");
  std::size_t at_kill = 0;
  while (run.running() && (at_kill = lines_in(remote / "samples.jsonl")) < 2)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  first->child.signal(SIGKILL);
  REQUIRE_MESSAGE(at_kill < 6, "the run finished before the server could be killed");
  first.reset();
  // The port was ours a moment ago (SO_REUSEADDR); the client is retrying meanwhile.
  Server second(tmp.path(), "second", {"--port", std::to_string(port)});
  CHECK(second.port == port);
  INFO(run.log());
  CHECK(run.wait(120) == 0);
  CHECK(outcome(remote) == outcome(embedded));
}

TEST_CASE("misbehaving servers: clear errors and retries, never a crash or a false verdict") {
  quanteval::test::TempDir tmp;
  const auto args = [&](const std::string& name, const FakeServer& fake, std::vector<std::string> more = {}) {
    auto a = with(run_args(tmp.path() / name, "standard", 2, 16), {"--endpoint", fake.url(), "--retries", "1"});
    return with(a, more);
  };
  auto samples_of = [&](const std::string& name) {
    const fs::path f = tmp.path() / name / "samples.jsonl";
    return fs::exists(f) ? read_jsonl(f) : std::vector<json>{};
  };

  SUBCASE("a valid server: every sampling field sent explicitly, prompts as token ids, finish reasons mapped") {
    for (const char* mode : {"ok", "eos", "length"}) {
      CAPTURE(mode);
      FakeServer fake(tmp.path(), mode);
      const auto r = run_quanteval(args(mode, fake));
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
      const auto samples = samples_of(mode);
      REQUIRE(samples.size() == 2);
      for (const auto& s : samples) {
        CHECK(s["raw_output"] == "    return None\n");
        const std::string finish = std::string(mode) == "ok" ? "stop" : mode;
        CHECK(s["finish_reason"] == finish);
        CHECK(s["generated_tokens"] == (finish == "length" ? 16 : 5));
      }
      for (const auto& r : read_jsonl(tmp.path() / mode / "results.jsonl")) CHECK(r["status"] == "failed");
      const auto log = fake.log();
      REQUIRE(log.size() == 2);
      std::multiset<int> sent, recorded;
      for (const auto& s : samples) recorded.insert(s["prompt_tokens"].get<int>());
      for (const auto& entry : log) {
        const json& body = entry["body"];
        CHECK(entry["path"] == "/v1/completions");
        CHECK(body["model"] == tiny_model().string());
        CHECK(body["prompt"].is_array());
        CHECK(body["prompt"][0].is_number_integer());
        CHECK(body["temperature"] == 0.0);
        CHECK(body["top_k"] == -1);
        CHECK(body["top_p"] == 1.0);
        CHECK(body["min_p"] == 0.0);
        CHECK(body["repetition_penalty"] == 1.0);
        CHECK(body["seed"].is_number_integer());
        CHECK(body["max_tokens"] == 16);
        CHECK(body["skip_special_tokens"] == false);
        CHECK(body["stop"].size() > 0);
        sent.insert(static_cast<int>(body["prompt"].size()));
      }
      CHECK(sent == recorded);
    }
  }

  SUBCASE("HTTP 500 then a valid answer: retried, recorded once") {
    FakeServer fake(tmp.path(), "flaky");
    const auto r = run_quanteval(args("flaky", fake));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(samples_of("flaky").size() == 2);
    CHECK(fake.log().size() == 4);
    CHECK(report_of(tmp.path() / "flaky")["backend"]["endpoints"][0]["retried"] == 2);
  }

  SUBCASE("garbage and truncated JSON: retried, then nothing recorded; --resume against a good server finishes") {
    for (const char* mode : {"garbage", "truncated"}) {
      CAPTURE(mode);
      FakeServer fake(tmp.path(), mode);
      const auto r = run_quanteval(args(mode, fake));
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("not JSON") != std::string::npos);
      CHECK(r.err.find("--resume") != std::string::npos);
      CHECK(samples_of(mode).empty());
      CHECK(lines_in(tmp.path() / mode / "results.jsonl") == 0);
      CHECK(fake.log().size() == 4);  // each request: the first attempt and one retry
      FakeServer good(tmp.path(), "ok");
      const auto resumed = run_quanteval(with(args(mode, good), {"--resume"}));
      INFO(resumed.err);
      CHECK(resumed.exit_code == 0);
      CHECK(samples_of(mode).size() == 2);
    }
  }

  SUBCASE("a server that keeps failing: after two requests failed every retry, the rest get one attempt each") {
    FakeServer fake(tmp.path(), "garbage");
    const auto r = run_quanteval(with(run_args(tmp.path() / "down", "standard", 6, 16),
                                      {"--endpoint", fake.url(), "--concurrency", "1", "--retries", "2"}));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("6 of 6 samples could not be generated") != std::string::npos);
    CHECK(fake.log().size() == 2 * 3 + 4 * 1);
    CHECK(samples_of("down").empty());
  }

  SUBCASE("the wrong model: refused before generating (exit 2), --served-model overrides") {
    FakeServer fake(tmp.path(), "wrong_model");
    const auto r = run_quanteval(args("wrong", fake));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("someone-else/other-model") != std::string::npos);
    CHECK(r.err.find("--served-model") != std::string::npos);
    CHECK(fake.log().empty());
    const auto named = run_quanteval(args("named", fake, {"--served-model", "someone-else/other-model"}));
    INFO(named.err);
    CHECK(named.exit_code == 0);
    CHECK(samples_of("named").size() == 2);
  }

  SUBCASE("an answer for another model than asked: not recorded") {
    FakeServer fake(tmp.path(), "answer_as_other");
    const auto r = run_quanteval(args("other", fake));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("answered as model") != std::string::npos);
    CHECK(samples_of("other").empty());
  }

  SUBCASE("more tokens than max_tokens: not recorded") {
    FakeServer fake(tmp.path(), "over_limit");
    const auto r = run_quanteval(args("over", fake));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("max_tokens") != std::string::npos);
    CHECK(samples_of("over").empty());
  }

  SUBCASE("a prompt count that differs: recorded, with a warning in the report") {
    FakeServer fake(tmp.path(), "prompt_mismatch");
    const auto r = run_quanteval(args("mismatch", fake));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.find("prompt_tokens differs") != std::string::npos);
    const json warnings = report_of(tmp.path() / "mismatch")["backend"]["warnings"];
    REQUIRE(warnings.size() == 1);
    CHECK(warnings.begin().value()["count"] == 2);
  }

  SUBCASE("no model list: generated, the answers' model still checked, a warning in the report") {
    FakeServer fake(tmp.path(), "no_models");
    const auto r = run_quanteval(args("no_models", fake));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(samples_of("no_models").size() == 2);
    const json warnings = report_of(tmp.path() / "no_models")["backend"]["warnings"];
    REQUIRE(warnings.size() == 1);
    CHECK(warnings.begin().key().find("/v1/models") != std::string::npos);
  }

  SUBCASE("a server that hangs: --request-timeout, a retry, then a clear failure") {
    FakeServer fake(tmp.path(), "hang");
    const auto start = std::chrono::steady_clock::now();
    const auto r = run_quanteval(args("hang", fake, {"--request-timeout", "1"}));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--request-timeout") != std::string::npos);
    CHECK(samples_of("hang").empty());
  }

  SUBCASE("nothing listening: a clear error") {
    FakeServer fake(tmp.path(), "ok");
    const int port = fake.port;
    fake.child.signal(SIGKILL);
    fake.child.wait(10);
    const auto r = run_quanteval(with(run_args(tmp.path() / "none", "standard", 1, 4),
                                      {"--endpoint", fmt::format("http://127.0.0.1:{}", port)}));
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("/v1/models") != std::string::npos);
  }
}

TEST_CASE("serve survives malformed, oversized and abandoned requests, and exits 0 on SIGTERM") {
  quanteval::test::TempDir tmp;
  const std::string limit = "1500", bytes = "65536";
  Server server(
      tmp.path(), "serve",
      {"--api-key", "k", "--max-concurrency", "1", "--max-request-bytes", bytes, "--max-tokens-limit", limit});
  const auto command = fmt::format("'{}' '{}' --port {} --api-key k --max-request-bytes {} --max-tokens-limit {}",
                                   quanteval::test::python(), QUANTEVAL_ABUSE_SERVER, server.port, bytes, limit);
  const int status = std::system(command.c_str());
  INFO(server.child.log());
  CHECK(status == 0);
  CHECK(server.child.running());
  server.child.signal(SIGTERM);
  CHECK(server.child.wait(60) == 0);
  CHECK(server.child.log().find("stopped") != std::string::npos);
}
