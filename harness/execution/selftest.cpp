#include "harness/execution/selftest.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "harness/common/progress.hpp"
#include "harness/execution/executor.hpp"
#include "harness/execution/scoring.hpp"
#include "harness/samples/samples.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;
using reports::Status;

bool SelftestReport::ok() const {
  if (!canonical_unexpected.empty()) return false;
  for (const auto& o : canonical_known)
    if (o.surprise) return false;
  for (const auto& o : bad)
    if (o.surprise) return false;
  return true;
}

namespace {

// A Python string literal for text (quotes and backslashes escaped).
std::string python_literal(const std::string& text) {
  std::string out = "'";
  for (char ch : text) {
    if (ch == '\\' || ch == '\'') out += '\\';
    out += ch;
  }
  return out + "'";
}

}  // namespace

std::vector<SelftestCase> known_bad_cases(const std::string& trap_dir, int trap_port, const std::string& secret_name,
                                          const std::string& secret_value) {
  // All completions are bodies of HumanEval/0 (has_close_elements) or
  // HumanEval/2 (truncate_number) unless noted; they are appended to the prompt
  // exactly like model output.
  const std::string t0 = "HumanEval/0";
  std::vector<SelftestCase> cases = {
      {"wrong answer", t0, "    return False\n", {Status::failed}},
      {"exception", t0, "    raise ValueError('boom')\n", {Status::error}},
      {"syntax error", t0, "    return (\n", {Status::error}},
      {"infinite loop", t0, "    while True:\n        pass\n", {Status::timeout}},
      {"sleep forever", t0, "    import time\n    time.sleep(10**6)\n", {Status::timeout}},
      {"SIGALRM ignored + busy loop", t0,
       "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\n",
       {Status::timeout}},
      {"sys.exit(0)", t0, "    import sys\n    sys.exit(0)\n", {Status::error}},
      {"os._exit(0)", t0, "    import os\n    os._exit(0)\n", {Status::error}},
      {"raise SystemExit", t0, "    raise SystemExit\n", {Status::error}},
      {"exit() builtin", t0, "    exit(0)\n", {Status::error}},
      {"atexit prints passed then exit 0", t0,
       "    import atexit, sys\n    atexit.register(lambda: print('passed'))\n    sys.exit(0)\n", {Status::error}},
      {"prints passed and exits 0", t0,
       "    import os, sys\n    print('passed')\n    sys.stdout.flush()\n    os._exit(0)\n", {Status::error}},
      {"kills parent and everything", t0,
       "    import os, signal\n    try:\n        os.kill(os.getppid(), signal.SIGKILL)\n    except Exception:\n        pass\n"
       "    try:\n        os.kill(-1, signal.SIGKILL)\n    except Exception:\n        pass\n    return None\n",
       {Status::failed, Status::error, Status::signal}},
      {"fork bomb", t0,
       "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
       {Status::timeout, Status::error, Status::signal, Status::oom}},
      // Zero-filling memory takes time on a loaded machine; the wall limit may win the race.
      {"memory bomb", t0, "    x = []\n    while True:\n        x.append(bytearray(256 << 20))\n",
       {Status::oom, Status::signal, Status::timeout}},
      {"output flood", t0, "    import sys\n    while True:\n        sys.stdout.write('x' * 65536)\n", {Status::timeout}},
      {"reads stdin", t0, "    import sys\n    data = sys.stdin.read()\n    return data == 'x'\n",
       {Status::failed, Status::error}},
      {"NUL byte in source", t0, std::string("    return False\n    # ") + '\0' + "\n", {Status::error}},
      {"orphaned daemon via setsid", t0,
       "    import os, time\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
       "            time.sleep(10**6)\n        os._exit(0)\n    return None\n",
       {Status::failed}},
      // The hostile ones below pass only if they escaped: each attempts its
      // escape and then runs the canonical solution (appended by run_selftest).
      {"writes and deletes outside the working directory", t0,
       fmt::format("    import os\n    open({0} + '/escaped', 'w').write('x')\n    os.remove({0} + '/canary')\n",
                   python_literal(trap_dir)),
       {Status::error}, true},
      {"connects to the host's loopback", t0,
       fmt::format("    import socket\n    socket.create_connection(('127.0.0.1', {}), timeout=1).sendall(b'escaped')\n",
                   trap_port),
       {Status::error}, true},
      {"reads the parent's environment", t0,
       fmt::format("    import os, glob\n    found = {0} in os.environ\n"
                   "    for path in glob.glob('/proc/*/environ'):\n        try:\n"
                   "            found = found or {1}.encode() in open(path, 'rb').read()\n"
                   "        except OSError:\n            pass\n"
                   "    assert found, 'secret not visible'\n",
                   python_literal(secret_name), python_literal(secret_value)),
       {Status::failed}, true},
  };
  return cases;
}

namespace {

// A TCP listener on the host's loopback that records whether anybody connected.
class LoopbackTrap {
 public:
  LoopbackTrap() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("selftest: cannot open a loopback listener");
    port_ = ntohs(addr.sin_port);
  }
  ~LoopbackTrap() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  bool someone_connected() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client >= 0) ::close(client);
    return true;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

SelftestReport run_selftest(const datasets::Dataset& dataset, sandbox::Pool& pool, const TimeLimits& limits,
                            bool progress) {
  const auto start = std::chrono::steady_clock::now();
  SelftestReport report;

  // Traps the hostile programs would have to spring to pass.
  std::random_device rd;
  const fs::path trap_dir = fs::temp_directory_path() / fmt::format("quanteval-selftest-{}-{:08x}", ::getpid(), rd());
  fs::create_directories(trap_dir);
  std::ofstream(trap_dir / "canary") << "canary";
  fs::permissions(trap_dir, fs::perms::all);  // writable by anyone: only the sandbox may stop a write
  LoopbackTrap trap;
  const std::string secret_name = "QUANTEVAL_SELFTEST_SECRET";
  const std::string secret_value = fmt::format("s3cr3t-{:08x}{:08x}", rd(), rd());
  ::setenv(secret_name.c_str(), secret_value.c_str(), 1);

  const auto bad_cases = known_bad_cases(trap_dir.string(), trap.port(), secret_name, secret_value);
  std::vector<ProgramJob> jobs;
  for (const auto& problem : dataset.problems) {
    Sample s{problem.task_id, problem.canonical_solution, false, 0, 0};
    jobs.push_back({problem.task_id, 0, check_program(problem, s), limits.for_task(problem.task_id)});
  }
  for (const auto& c : bad_cases) {
    const auto* problem = dataset.find(c.task_id);
    if (!problem) throw std::runtime_error("selftest: dataset lacks " + c.task_id);
    Sample s{c.task_id, c.completion + (c.then_canonical ? problem->canonical_solution : ""), false, 0, 0};
    jobs.push_back({c.task_id, 0, check_program(*problem, s), limits.for_task(c.task_id)});
  }
  // One last canonical program: the pool must still work after the hostile ones.
  jobs.push_back(jobs.front());

  Progress bar("selftest", jobs.size(), progress);
  std::size_t done = 0, passed = 0;
  const auto verdicts = run_jobs(pool, jobs, [&](std::size_t, const reports::SampleVerdict& v) {
    ++done;
    if (v.status == Status::passed) ++passed;
    bar.update(done, passed);
  });
  bar.finish();
  ::unsetenv(secret_name.c_str());

  const auto& known = dataset.manifest ? dataset.manifest->known_canonical_failures : std::vector<std::string>{};
  for (std::size_t i = 0; i < dataset.problems.size(); ++i) {
    const auto& v = verdicts[i];
    const bool is_known = std::find(known.begin(), known.end(), v.task_id) != known.end();
    ++report.canonical_total;
    if (v.status == Status::passed) ++report.canonical_passed;
    SelftestOutcome o{"canonical", v.task_id, v.status, v.detail, false, {}};
    if (is_known) {
      o.surprise = v.status == Status::passed;
      if (o.surprise) o.why = "listed as a known canonical failure but passed";
      report.canonical_known.push_back(o);
    } else if (v.status != Status::passed) {
      o.surprise = true;
      o.why = "canonical solution did not pass";
      report.canonical_unexpected.push_back(o);
    }
  }
  for (std::size_t i = 0; i < bad_cases.size(); ++i) {
    const auto& c = bad_cases[i];
    const auto& v = verdicts[dataset.problems.size() + i];
    SelftestOutcome o{c.name, c.task_id, v.status, v.detail, false, {}};
    if (v.status == Status::passed) {
      o.surprise = true;
      o.why = "known-bad program passed";
    } else if (std::find(c.expected.begin(), c.expected.end(), v.status) == c.expected.end()) {
      o.surprise = true;
      std::string names;
      for (auto s : c.expected) names += (names.empty() ? "" : "|") + std::string(reports::to_string(s));
      o.why = fmt::format("expected {}", names);
    }
    report.bad.push_back(o);
  }
  // Host-side traces of the hostile programs.
  auto add_trace = [&](const std::string& name, bool clean, const std::string& why) {
    report.bad.push_back({name, "-", clean ? Status::failed : Status::passed, clean ? "no trace on the host" : why,
                          !clean, clean ? "" : why});
  };
  add_trace("host: files outside the sandbox untouched", fs::exists(trap_dir / "canary") && !fs::exists(trap_dir / "escaped"),
            "a sandboxed program changed files in " + trap_dir.string());
  add_trace("host: loopback listener never reached", !trap.someone_connected(),
            "a sandboxed program connected to the host's loopback");
  const auto& last = verdicts.back();
  add_trace("pool still works after hostile programs", last.status == Status::passed,
            "the canonical program run last did not pass: " + last.detail);
  std::error_code ignored;
  fs::remove_all(trap_dir, ignored);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

std::string format_selftest(const SelftestReport& r) {
  std::string out = fmt::format("canonical solutions: {}/{} passed\n", r.canonical_passed, r.canonical_total);
  for (const auto& o : r.canonical_known)
    out += fmt::format("  known canonical failure {}: {} ({}){}\n", o.task_id, reports::to_string(o.status), o.detail,
                       o.surprise ? "  << SURPRISE: " + o.why : "");
  for (const auto& o : r.canonical_unexpected)
    out += fmt::format("  {} {}: {}  << SURPRISE: {}\n", o.task_id, reports::to_string(o.status), o.detail, o.why);
  out += "known-bad programs (none may pass):\n";
  for (const auto& o : r.bad)
    out += fmt::format("  {:<50} {:<14} {}{}\n", o.name, reports::to_string(o.status), o.detail,
                       o.surprise ? "  << SURPRISE: " + o.why : "");
  out += fmt::format("selftest {} in {:.1f} s\n", r.ok() ? "OK" : "FAILED", r.seconds);
  return out;
}

}  // namespace quanteval::harness
