#include "harness/execution/python.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace quanteval::harness {
namespace fs = std::filesystem;

namespace {

std::string find_on_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

std::string real_executable(const std::string& python) {
  const std::string command = "'" + python + "' -c 'import sys; print(sys.executable)' 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return {};
  std::array<char, 4096> buffer{};
  std::string out;
  while (std::fgets(buffer.data(), buffer.size(), pipe.get())) out += buffer.data();
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// True when every folder on the way can be searched and the file executed by
// any user ("other" permission bits): the sandbox user is nobody in particular.
bool reachable_by_anyone(const fs::path& file) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(file, ec);
  if (ec) return false;
  struct stat st {};
  fs::path walk;
  for (const auto& part : canonical.parent_path()) {
    walk /= part;
    if (::stat(walk.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
  }
  return ::stat(canonical.c_str(), &st) == 0 && (st.st_mode & S_IXOTH);
}

}  // namespace

PythonChoice resolve_python(const std::string& requested) {
  PythonChoice choice;
  std::string wanted = requested;
  bool explicit_choice = !wanted.empty();
  if (wanted.empty())
    if (const char* env = std::getenv("QUANTEVAL_PYTHON"); env && *env) {
      wanted = env;
      explicit_choice = true;
    }
  if (wanted.empty()) wanted = "python3";
  const std::string found = find_on_path(wanted);
  if (found.empty())
    throw std::runtime_error(fmt::format("Python interpreter '{}' not found on PATH (use --python PATH)", wanted));
  std::string real = real_executable(found);
  if (real.empty()) throw std::runtime_error(fmt::format("'{}' does not run as a Python interpreter", found));
  if (real != found) choice.notes.push_back(fmt::format("{} runs {}", found, real));
  if (!reachable_by_anyone(real) && !explicit_choice && reachable_by_anyone("/usr/bin/python3")) {
    choice.notes.push_back(fmt::format(
        "{} is not reachable by the unprivileged sandbox user; using /usr/bin/python3 (choose with --python)", real));
    real = "/usr/bin/python3";
  }
  choice.executable = real;
  return choice;
}

}  // namespace quanteval::harness
