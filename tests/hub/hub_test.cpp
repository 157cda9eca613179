// Hub downloads against a local server that serves a fixture checkpoint under
// the hub's URL shapes (tests/hub/hub_server.py).
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/checkpoint/hub.hpp"
#include "tests/support/test_data.hpp"

using quanteval::test::read_text;

namespace fs = std::filesystem;
namespace hub = quanteval::runtime::hub;

namespace {

class LocalHub {
 public:
  explicit LocalHub(const std::vector<std::string>& extra) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    folder_ = quanteval::test::fixture("models/qwen3-tiny-gptq-g64-actorder");
    std::vector<std::string> args = {
        quanteval::test::python(), QUANTEVAL_HUB_SERVER, "--folder", folder_.string(), "--repo", "test/tiny"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(pipe_fds[1], 1);
      ::close(pipe_fds[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    char buffer[32] = {0};
    const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer - 1);
    port_pipe_ = pipe_fds[0];  // kept open: the server must never see a broken pipe
    REQUIRE(n > 0);
    endpoint_ = fmt::format("http://127.0.0.1:{}", std::atoi(buffer));
  }
  ~LocalHub() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    ::close(port_pipe_);
  }
  const std::string& endpoint() const { return endpoint_; }
  const fs::path& folder() const { return folder_; }
  nlohmann::json stats() const {
    std::string command =
        fmt::format("{} -c \"import urllib.request;print(urllib.request.urlopen('{}/stats').read().decode())\"",
                    quanteval::test::python(), endpoint_);
    FILE* p = ::popen(command.c_str(), "r");
    std::string out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
    return nlohmann::json::parse(out);
  }

 private:
  pid_t pid_ = -1;
  int port_pipe_ = -1;
  std::string endpoint_;
  fs::path folder_;
};

std::string error_of(const std::string& model, const hub::Options& o) {
  try {
    hub::resolve(model, o);
  } catch (const hub::HubError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("hub ids are told apart from paths") {
  CHECK(hub::is_hub_id("Qwen/Qwen2.5-Coder-0.5B-Instruct-GPTQ-Int4"));
  CHECK(hub::is_hub_id("Qwen/Qwen3-8B@v1.0"));
  CHECK_FALSE(hub::is_hub_id("just-a-name"));
  CHECK_FALSE(hub::is_hub_id("a/b/c"));
  CHECK_FALSE(hub::is_hub_id("../x"));
  CHECK_FALSE(hub::is_hub_id("/abs/path"));
  CHECK_FALSE(hub::is_hub_id(""));
}

TEST_CASE("download once, verify, then serve from the cache") {
  LocalHub server({});
  quanteval::test::TempDir cache;
  hub::Options o;
  o.endpoint = server.endpoint();
  o.cache_dir = cache.path();
  const auto first = hub::resolve("test/tiny", o);
  CHECK(first.downloaded);
  CHECK(first.commit == "0123456789abcdef0123456789abcdef01234567");
  for (const char* name : {"config.json", "model.safetensors", "quantize_config.json"})
    CHECK(read_text(first.directory / name) == read_text(server.folder() / name));
  CHECK_FALSE(fs::exists(first.directory / "pytorch_model.bin"));
  const auto second = hub::resolve("test/tiny@main", o);
  CHECK_FALSE(second.downloaded);
  CHECK(second.directory == first.directory);
  CHECK(server.stats()["downloads"].get<int>() > 0);
  // Offline afterwards: the cache answers.
  hub::Options offline = o;
  offline.offline = true;
  CHECK(hub::resolve("test/tiny", offline).directory == first.directory);
  // A revision never downloaded is a clear offline error.
  CHECK(error_of("test/tiny@v2", offline).find("not in the cache") != std::string::npos);
}

TEST_CASE("an interrupted download resumes with a Range request") {
  LocalHub server({"--cut-after", "100000"});
  quanteval::test::TempDir cache;
  hub::Options o;
  o.endpoint = server.endpoint();
  o.cache_dir = cache.path();
  const auto r = hub::resolve("test/tiny", o);
  CHECK(read_text(r.directory / "model.safetensors") == read_text(server.folder() / "model.safetensors"));
  CHECK(server.stats()["range_requests"].get<int>() >= 1);
}

TEST_CASE("tokens, size checks and unreachable hubs") {
  {
    LocalHub server({"--token", "sekrit"});
    quanteval::test::TempDir cache;
    hub::Options o;
    o.endpoint = server.endpoint();
    o.cache_dir = cache.path();
    CHECK(error_of("test/tiny", o).find("HF_TOKEN") != std::string::npos);
    o.token = "sekrit";
    CHECK(fs::exists(hub::resolve("test/tiny", o).directory / "config.json"));
  }
  {
    LocalHub server({"--lie-size"});
    quanteval::test::TempDir cache;
    hub::Options o;
    o.endpoint = server.endpoint();
    o.cache_dir = cache.path();
    const std::string message = error_of("test/tiny", o);
    CHECK(message.find("does not match") != std::string::npos);
  }
  quanteval::test::TempDir cache;
  hub::Options o;
  o.endpoint = "http://127.0.0.1:9";
  o.cache_dir = cache.path();
  const std::string message = error_of("test/tiny", o);
  CHECK(message.find("not in the cache") != std::string::npos);
  CHECK(message.find("--model FOLDER") != std::string::npos);
}
