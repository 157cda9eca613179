#include "harness/execution/selftest.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "datasets/datasets.hpp"
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
  for (const auto& o : between)
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

std::vector<SelftestCase> known_bad_cases(const SelftestTraps& traps) {
  // All completions are bodies of HumanEval/0 (has_close_elements) or
  // HumanEval/2 (truncate_number) unless noted; they are appended to the prompt
  // exactly like model output.
  const std::string t0 = "HumanEval/0";
  const std::string& trap_dir = traps.trap_dir;
  std::vector<SelftestCase> cases = {
      {"wrong answer", t0, "    return False\n", {Status::failed}},
      {"exception", t0, "    raise ValueError('boom')\n", {Status::error}},
      {"syntax error", t0, "    return (\n", {Status::error}},
      {"infinite loop", t0, "    while True:\n        pass\n", {Status::timeout}},
      {"sleep forever", t0, "    import time\n    time.sleep(10**6)\n", {Status::timeout}},
      {"SIGALRM ignored + busy loop",
       t0,
       "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\n",
       {Status::timeout}},
      {"sys.exit(0)", t0, "    import sys\n    sys.exit(0)\n", {Status::error}},
      {"os._exit(0)", t0, "    import os\n    os._exit(0)\n", {Status::error}},
      {"raise SystemExit", t0, "    raise SystemExit\n", {Status::error}},
      {"exit() builtin", t0, "    exit(0)\n", {Status::error}},
      {"atexit prints passed then exit 0",
       t0,
       "    import atexit, sys\n    atexit.register(lambda: print('passed'))\n    sys.exit(0)\n",
       {Status::error}},
      {"prints passed and exits 0",
       t0,
       "    import os, sys\n    print('passed')\n    sys.stdout.flush()\n    os._exit(0)\n",
       {Status::error}},
      {"kills parent and everything",
       t0,
       "    import os, signal\n    try:\n        os.kill(os.getppid(), signal.SIGKILL)\n    except Exception:\n        "
       "pass\n"
       "    try:\n        os.kill(-1, signal.SIGKILL)\n    except Exception:\n        pass\n    return None\n",
       {Status::failed, Status::error, Status::signal}},
      {"fork bomb",
       t0,
       "    import os\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            "
       "pass\n",
       {Status::timeout, Status::error, Status::signal, Status::oom}},
      // Zero-filling memory takes time on a loaded machine; the wall limit may win the race.
      {"memory bomb",
       t0,
       "    x = []\n    while True:\n        x.append(bytearray(256 << 20))\n",
       {Status::oom, Status::signal, Status::timeout}},
      {"output flood",
       t0,
       "    import sys\n    while True:\n        sys.stdout.write('x' * 65536)\n",
       {Status::timeout}},
      {"reads stdin",
       t0,
       "    import sys\n    data = sys.stdin.read()\n    return data == 'x'\n",
       {Status::failed, Status::error}},
      {"NUL byte in source", t0, std::string("    return False\n    # ") + '\0' + "\n", {Status::error}},
      {"orphaned daemon via setsid",
       t0,
       "    import os, time\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
       "            time.sleep(10**6)\n        os._exit(0)\n    return None\n",
       {Status::failed}},
      // Wrong programs that try to make their verdict vanish (a sandbox_error
      // is excluded from pass@k) or to break the run.
      {"long non-ASCII exception message", t0, "    raise ValueError('\u00e9' * 300)\n", {Status::error}},
      {"lone surrogates in the exception message",
       t0,
       "    raise ValueError('\\udcff wrong \\ud800')\n",
       {Status::error}},
      {"exception type whose name is not a string",
       t0,
       "    class M(type):\n        def __getattribute__(cls, name):\n"
       "            return 42 if name in ('__qualname__', '__name__') else super().__getattribute__(name)\n"
       "    class E(Exception, metaclass=M):\n        pass\n    raise E('x')\n",
       {Status::error}},
      {"exception whose __str__ raises",
       t0,
       "    class E(Exception):\n        def __str__(self):\n            raise SystemExit(0)\n    raise E()\n",
       {Status::error}},
      {"forged report with the nonce (frame walk)",
       t0,
       "    import sys, os\n    f = sys._getframe()\n    while f is not None and 'nonce' not in f.f_locals:\n"
       "        f = f.f_back\n    os.write(3, (f.f_locals['nonce'] + ' setup fake\\n').encode())\n    os._exit(0)\n",
       {Status::error}},
      {"1200 nested directories, then a wrong answer",
       t0,
       "    import os\n    for _ in range(1200):\n        os.mkdir('d' * 200)\n        os.chdir('d' * 200)\n"
       "    return False\n",
       {Status::failed}},
      {"200 000 empty directories, then a wrong answer",
       t0,
       "    import os\n    try:\n        for i in range(200000):\n            os.mkdir(str(i))\n"
       "    except OSError:\n        pass\n    return False\n",
       {Status::failed, Status::timeout}},
      {"makes /tmp read-only, then a wrong answer",
       t0,
       "    import os\n    os.chmod('/dev/shm', 0)\n    os.chmod('/tmp', 0o500)\n    return False\n",
       {Status::failed}},
      // The hostile ones below pass only if they escaped: each attempts its
      // escape and then runs the canonical solution (appended by run_selftest).
      {"writes and deletes outside the working directory",
       t0,
       fmt::format("    import os\n    open({0} + '/escaped', 'w').write('x')\n    os.remove({0} + '/canary')\n",
                   python_literal(trap_dir)),
       {Status::error},
       true},
      {"connects to the host's loopback",
       t0,
       fmt::format(
           "    import socket\n    socket.create_connection(('127.0.0.1', {}), timeout=1).sendall(b'escaped')\n",
           traps.trap_port),
       {Status::error},
       true},
      {"reads the parent's environment",
       t0,
       fmt::format("    import os, glob\n    found = {0} in os.environ\n"
                   "    for path in glob.glob('/proc/*/environ'):\n        try:\n"
                   "            found = found or {1}.encode() in open(path, 'rb').read()\n"
                   "        except OSError:\n            pass\n"
                   "    assert found, 'secret not visible'\n",
                   python_literal(traps.secret_name), python_literal(traps.secret_value)),
       {Status::failed},
       true},
      {"connects to a host unix socket",
       t0,
       fmt::format("    import socket\n    s = socket.socket(socket.AF_UNIX)\n    s.connect({})\n"
                   "    s.send(b'escaped')\n",
                   python_literal(traps.unix_socket)),
       {Status::error},
       true},
      {"writes to a host FIFO",
       t0,
       fmt::format("    import os\n    os.write(os.open({}, os.O_WRONLY | os.O_NONBLOCK), b'escaped')\n",
                   python_literal(traps.fifo)),
       {Status::error},
       true},
      {"reads the dataset (canonical solutions)",
       t0,
       fmt::format("    open({}, 'rb').read(1)\n", python_literal(traps.dataset)),
       {Status::error},
       true},
      {"creates AF_VSOCK and netlink sockets",
       t0,
       "    import socket\n    socket.socket(40, socket.SOCK_STREAM).close()\n"
       "    socket.socket(16, socket.SOCK_RAW).close()\n",
       {Status::error},
       true},
      {"keeps the pool's open-file limit",
       t0,
       "    import resource\n    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 1024, 'limit set'\n",
       {Status::failed},
       true},
  };
  if (!traps.working_tree.empty()) {
    cases.push_back({"lists the user's working tree",
                     t0,
                     fmt::format("    import os\n    os.listdir({})\n", python_literal(traps.working_tree)),
                     {Status::error},
                     true});
  }
  if (traps.host_devpts != 0) {
    cases.push_back({"draws a pty from the host's devpts",
                     t0,
                     fmt::format("    import os\n    master, slave = os.openpty()\n"
                                 "    assert os.fstat(slave).st_dev == {}, 'a devpts of its own'\n",
                                 traps.host_devpts),
                     {Status::failed, Status::error},
                     true});
  }
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

// A listening unix socket and a FIFO in a host folder anyone may use: only
// the sandbox's view can keep a program from reaching them.
class UnixTraps {
 public:
  explicit UnixTraps(const fs::path& folder)
      : socket_path_((folder / "listener.sock").string()), fifo_path_((folder / "pipe.fifo").string()) {
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (listener_ < 0 || socket_path_.size() >= sizeof addr.sun_path)
      throw std::runtime_error("selftest: cannot open a unix socket listener");
    std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener_, 16) != 0 ||
        ::chmod(socket_path_.c_str(), 0777) != 0)
      throw std::runtime_error("selftest: cannot open a unix socket listener at " + socket_path_);
    if (::mkfifo(fifo_path_.c_str(), 0666) != 0 || ::chmod(fifo_path_.c_str(), 0666) != 0)
      throw std::runtime_error("selftest: cannot create a FIFO at " + fifo_path_);
    // A reader, so that a writer's open() would succeed if the FIFO were reachable.
    fifo_reader_ = ::open(fifo_path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  }
  ~UnixTraps() {
    if (listener_ >= 0) ::close(listener_);
    if (fifo_reader_ >= 0) ::close(fifo_reader_);
  }
  const std::string& socket_path() const { return socket_path_; }
  const std::string& fifo_path() const { return fifo_path_; }
  bool socket_reached() {
    const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) return false;
    ::close(client);
    return true;
  }
  bool fifo_written() {
    char byte = 0;
    return fifo_reader_ >= 0 && ::read(fifo_reader_, &byte, 1) > 0;
  }

 private:
  std::string socket_path_, fifo_path_;
  int listener_ = -1;
  int fifo_reader_ = -1;
};

// Pairs of programs run one after the other on a one-worker pool: the second
// must not see what the first left behind. Each looking program completes
// only when the worker was clean.
std::vector<SelftestOutcome> between_programs(const sandbox::Config& pool_config) {
  std::vector<SelftestOutcome> outcomes;
  sandbox::Config config = pool_config;
  config.workers = 1;
  sandbox::Pool single(config);
  const auto& protections = single.protections();
  auto add = [&](const std::string& name, const sandbox::Result& planted, const sandbox::Result& looked,
                 bool looked_clean, const std::string& why, const sandbox::Limits& limits) {
    const bool planted_ok = planted.outcome == sandbox::Outcome::completed;
    SelftestOutcome o{name, "-", classify(looked), describe(looked, limits), false, {}};
    if (!planted_ok) {
      o.surprise = true;
      o.why = "the planting program did not run: " + describe(planted, config.limits);
    } else if (!looked_clean) {
      o.surprise = true;
      o.why = why;
    }
    outcomes.push_back(o);
  };

  if (protections.ipc_cleanup) {
    const auto planted = single.run(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.shmget(0x5e1f7, 1 << 20, 0o1666) >= 0\nassert libc.msgget(0x5e1f8, 0o1666) >= 0\n"
        "assert libc.semget(0x5e1f9, 1, 0o1666) >= 0\n"
        "assert libc.mq_open(b'/selftest', os.O_CREAT | os.O_RDWR, 0o666, None) >= 0\n");
    const auto looked = single.run(
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "seen = [libc.shmget(0x5e1f7, 0, 0), libc.msgget(0x5e1f8, 0), libc.semget(0x5e1f9, 0, 0),\n"
        "        libc.mq_open(b'/selftest', os.O_RDONLY)]\n"
        "assert seen == [-1, -1, -1, -1], seen\n");
    add("SysV objects and a POSIX queue left behind", planted, looked, looked.outcome == sandbox::Outcome::completed,
        "a planted IPC object was still there", config.limits);
  }
  {
    // The looking program carries half of the secret and a hash of the other
    // half: finding both together in its memory means it inherited them.
    std::random_device rd;
    std::string secret = "SELFTEST-";
    for (int i = 0; i < 7; ++i) secret += fmt::format("{:08x}", rd());
    const std::string head = secret.substr(0, 32), tail = secret.substr(32);
    const auto planted = single.run(fmt::format(
        "import sys\nsecret = {0}\nfor _ in range(100):\n    print(secret)\n    print(secret, file=sys.stderr)\n"
        "try:\n    raise ValueError(secret)\nexcept ValueError:\n    pass\n",
        python_literal(secret)));
    const auto looked = single.run(
        fmt::format("import hashlib, re\nhead = {0}.encode()\nfound = 0\n"
                    "with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:\n"
                    "    for line in maps.read().splitlines():\n"
                    "        fields = line.split()\n"
                    "        if 'r' not in fields[1] or line.endswith(('[vvar]', '[vsyscall]', '[vvar_vclock]')):\n"
                    "            continue\n"
                    "        start, end = (int(x, 16) for x in fields[0].split('-'))\n"
                    "        try:\n            mem.seek(start)\n            data = mem.read(end - start)\n"
                    "        except OSError:\n            continue\n"
                    "        for match in re.finditer(re.escape(head), data):\n"
                    "            if hashlib.sha256(data[match.end():match.end() + {1}]).hexdigest() == {2}:\n"
                    "                found += 1\n"
                    "assert found == 0, found\n",
                    python_literal(head), tail.size(), python_literal(datasets::sha256_hex(tail))));
    add("the previous output, in inherited memory", planted, looked, looked.outcome == sandbox::Outcome::completed,
        "the next program found the previous one's output in its memory", config.limits);
  }
  {
    const auto planted = single.run(
        "import os\nos.setxattr('/tmp', 'user.note', b'for the next one')\nos.utime('/tmp', (1, 1))\n"
        "os.chmod('/tmp', 0o500)\n");
    const auto looked = single.run(
        "import os, stat\nopen('/tmp/x', 'w').write('x')\n"
        "assert stat.S_IMODE(os.stat('/tmp').st_mode) == 0o700 and not os.listxattr('/tmp')\n"
        "assert os.stat('/tmp').st_mtime > 1\n");
    add("a /tmp made read-only, tagged, backdated", planted, looked,
        looked.outcome == sandbox::Outcome::completed && looked.attempts == 1, "the next program met a spoiled /tmp",
        config.limits);
  }
  if (protections.memory_cgroup) {
    // Four children, each far below RLIMIT_AS, together twice the total limit.
    sandbox::Limits limits = config.limits;
    limits.memory_bytes = 256ull << 20;
    limits.wall_seconds = std::max(limits.wall_seconds, 10.0);
    const auto planted = single.run("pass\n");
    const auto looked = single.run(
        "import os, time\nchildren = []\n"
        "for _ in range(4):\n    pid = os.fork()\n"
        "    if pid == 0:\n        block = b'\x01' * (128 << 20)\n        time.sleep(30)\n        os._exit(0)\n"
        "    children.append(pid)\n"
        "for pid in children:\n    os.waitpid(pid, 0)\n",
        &limits);
    add("forked children together over the limit", planted, looked, looked.outcome == sandbox::Outcome::memory,
        "expected oom, the process tree was not bounded", limits);
  }
  return outcomes;
}

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
  UnixTraps unix_traps(trap_dir);
  SelftestTraps traps;
  traps.trap_dir = trap_dir.string();
  traps.trap_port = trap.port();
  traps.secret_name = "QUANTEVAL_SELFTEST_SECRET";
  traps.secret_value = fmt::format("s3cr3t-{:08x}{:08x}", rd(), rd());
  traps.unix_socket = unix_traps.socket_path();
  traps.fifo = unix_traps.fifo_path();
  traps.dataset = fs::absolute(dataset.path).string();
  const std::string cwd = fs::current_path().string();
  if (cwd != "/" && cwd != "/tmp") traps.working_tree = cwd;
  struct stat devpts {};
  if (::stat("/dev/pts/ptmx", &devpts) == 0) traps.host_devpts = devpts.st_dev;
  ::setenv(traps.secret_name.c_str(), traps.secret_value.c_str(), 1);

  const auto bad_cases = known_bad_cases(traps);
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
  ::unsetenv(traps.secret_name.c_str());

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
  add_trace("host: files outside the sandbox untouched",
            fs::exists(trap_dir / "canary") && !fs::exists(trap_dir / "escaped"),
            "a sandboxed program changed files in " + trap_dir.string());
  add_trace("host: loopback listener never reached", !trap.someone_connected(),
            "a sandboxed program connected to the host's loopback");
  add_trace("host: unix socket listener never reached", !unix_traps.socket_reached(),
            "a sandboxed program connected to a host unix socket");
  add_trace("host: FIFO never written", !unix_traps.fifo_written(), "a sandboxed program wrote to a host FIFO");
  const auto& last = verdicts.back();
  add_trace("pool still works after hostile programs", last.status == Status::passed,
            "the canonical program run last did not pass: " + last.detail);
  report.between = between_programs(pool.config());
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
  out += "between programs on one worker (nothing may carry over):\n";
  for (const auto& o : r.between)
    out += fmt::format("  {:<50} {:<14} {}{}\n", o.name, reports::to_string(o.status), o.detail,
                       o.surprise ? "  << SURPRISE: " + o.why : "");
  out += fmt::format("selftest {} in {:.1f} s\n", r.ok() ? "OK" : "FAILED", r.seconds);
  return out;
}

}  // namespace quanteval::harness
