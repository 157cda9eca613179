// Hostile programs. Each one's containment is checked from the host side
// (processes, files, sockets, secrets), and after each one the pool must still
// run an ordinary program correctly.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/sandbox/sandbox_test_support.hpp"
#include "tests/support/test_data.hpp"

using namespace quanteval::sandbox;
using namespace quanteval::sandbox::testing;
namespace fs = std::filesystem;

namespace {

// The uid programs run as, seen from inside (equal to the host uid when the
// pool was started as root without a user namespace).
uid_t program_uid(Pool& pool) {
  const Result result = pool.run("import os\nprint(os.getuid())\n");
  REQUIRE(result.outcome == Outcome::completed);
  return static_cast<uid_t>(std::stoul(result.stdout_text));
}

// After a hostile program: nothing of it runs any more, anywhere on the host.
void check_nothing_left(Pool& pool) {
  CHECK(leftover_processes().empty());
  if (pool.protections().distinct_uid) {
    // Only zygotes (this pool's, or another test pool's worker with the same
    // index) may still run as the worker uid.
    const uid_t uid = program_uid(pool);
    const auto zygotes = worker_processes();
    for (pid_t pid : processes_with_uid(uid)) {
      CAPTURE(pid);
      CHECK(std::find(zygotes.begin(), zygotes.end(), pid) != zygotes.end());
    }
  }
  check_pool_still_works(pool);
}

}  // namespace

TEST_CASE("fork bomb: stopped by the process limit and the tree kill") {
  Pool& pool = shared_pool();
  const Limits limits = quick_limits(2.0);
  const Result result =
      pool.run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", &limits);
  const bool contained = result.outcome == Outcome::timeout || result.outcome == Outcome::exception;
  CHECK_MESSAGE(contained, result.detail);
  CHECK(result.attempts == 1);
  check_nothing_left(pool);
}

TEST_CASE("memory bomb: MemoryError under RLIMIT_AS, the pool survives") {
  Pool& pool = shared_pool();
  Limits limits = quick_limits(5.0);
  limits.address_space_bytes = 256ull << 20;
  const Result result = pool.run("x = []\nwhile True:\n    x.append(bytearray(8 << 20))\n", &limits);
  CHECK_MESSAGE(result.outcome == Outcome::memory, result.detail);
  check_nothing_left(pool);
}

TEST_CASE("output flood: capped, drained without blocking, stopped at the wall limit") {
  Pool& pool = shared_pool();
  const Limits limits = quick_limits(1.0);
  const Result endless = pool.run("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n", &limits);
  CHECK(endless.outcome == Outcome::timeout);
  CHECK(endless.stdout_text.size() == limits.output_cap_bytes);
  CHECK(endless.output_truncated);

  const Result finite =
      pool.run("import sys\nsys.stdout.write('z' * (32 << 20))\nsys.stderr.write('e' * (32 << 20))\n");
  CHECK_MESSAGE(finite.outcome == Outcome::completed, finite.detail);
  CHECK(finite.stdout_text.size() == Limits{}.output_cap_bytes);
  CHECK(finite.stderr_text.size() == Limits{}.output_cap_bytes);
  CHECK(finite.output_truncated);
  check_nothing_left(pool);
}

TEST_CASE("infinite loop with SIGALRM ignored and sleeping forever both time out") {
  Pool& pool = shared_pool();
  const Limits limits = quick_limits(1.0);
  const Result loop =
      pool.run("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass\n",
               &limits);
  CHECK(loop.outcome == Outcome::timeout);
  const Result sleeper = pool.run("import time\ntime.sleep(10**6)\n", &limits);
  CHECK(sleeper.outcome == Outcome::timeout);
  CHECK(sleeper.duration_seconds < 2.0);
  check_nothing_left(pool);
}

TEST_CASE("an orphaned daemon (double fork + setsid) does not survive its program") {
  Pool& pool = shared_pool();
  const Result result = pool.run(
      "import os, time\n"
      "if os.fork() == 0:\n"
      "    os.setsid()\n"
      "    if os.fork() == 0:\n"
      "        while True:\n            time.sleep(0.05)\n"
      "    os._exit(0)\n"
      "time.sleep(0.2)\n"
      "print('parent done')\n");
  CHECK_MESSAGE(result.outcome == Outcome::completed, result.detail);
  CHECK(result.stdout_text == "parent done\n");
  check_nothing_left(pool);
}

TEST_CASE("files outside the working directory can be neither created nor deleted") {
  Pool& pool = shared_pool();
  quanteval::test::TempDir host_temp;  // under the host's /tmp
  // A second probe in the build tree (outside /tmp); when the tests run as an
  // unprivileged user that cannot write there, a second temp dir stands in.
  quanteval::test::TempDir fallback_dir;
  fs::path build_dir = fs::current_path() / fmt::format("sandbox-probe-{}", getpid());
  std::error_code cannot_create;
  fs::create_directories(build_dir, cannot_create);
  if (cannot_create) build_dir = fallback_dir.path();
  for (const fs::path& dir : {host_temp.path(), build_dir}) {
    std::ofstream(dir / "keep.txt") << "precious";
    REQUIRE(fs::exists(dir / "keep.txt"));
  }
  const std::string source = fmt::format(
      "import os\n"
      "for d in ['{}', '{}']:\n"
      "    for action in ('create', 'delete', 'rename'):\n"
      "        try:\n"
      "            if action == 'create':\n"
      "                open(os.path.join(d, 'new.txt'), 'w').write('x')\n"
      "            elif action == 'delete':\n"
      "                os.remove(os.path.join(d, 'keep.txt'))\n"
      "            else:\n"
      "                os.rename(os.path.join(d, 'keep.txt'), os.path.join(d, 'moved.txt'))\n"
      "            print(d, action, 'succeeded')\n"
      "        except OSError as e:\n"
      "            print(d, action, 'failed', e.errno)\n"
      "for path in ['/etc/quanteval-probe', '/usr/quanteval-probe', os.path.expanduser('~/../probe')]:\n"
      "    try:\n        open(path, 'w')\n        print(path, 'created')\n"
      "    except OSError as e:\n        print(path, 'refused', e.errno)\n"
      "open('inside.txt', 'w').write('fine')\nprint('cwd write ok')\n",
      host_temp.path().string(), build_dir.string());
  const Result result = pool.run(source);
  CHECK_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  CHECK(result.stdout_text.find("cwd write ok") != std::string::npos);
  for (const fs::path& dir : {host_temp.path(), build_dir}) {
    CAPTURE(dir);
    CHECK(fs::exists(dir / "keep.txt"));
    CHECK_FALSE(fs::exists(dir / "new.txt"));
    CHECK_FALSE(fs::exists(dir / "moved.txt"));
  }
  CHECK_FALSE(fs::exists("/etc/quanteval-probe"));
  CHECK_FALSE(fs::exists("/usr/quanteval-probe"));
  // Writes to the build tree must fail outright (read-only view or not our uid).
  CHECK(result.stdout_text.find(build_dir.string() + " create succeeded") == std::string::npos);
  if (build_dir != fallback_dir.path()) fs::remove_all(build_dir);
  check_nothing_left(pool);
}

TEST_CASE("the working directory and /tmp are private and wiped between programs") {
  Pool& pool = shared_pool();
  for (int round = 0; round < 4; ++round) {  // more rounds than workers: every worker is checked
    const Result result = pool.run(
        "import os\n"
        "print(sorted(os.listdir('/tmp')), len(os.listdir('.')))\n"
        "open('/tmp/left-behind', 'w').write('x')\nopen('mine', 'w').write('y')\n"
        "os.mkdir('locked')\nopen('locked/f', 'w').write('z')\nos.chmod('locked', 0)\n");
    REQUIRE_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
    CHECK(result.stdout_text.find("left-behind") == std::string::npos);
    CHECK(result.stdout_text.substr(result.stdout_text.size() - 3) == " 0\n");
  }
}

TEST_CASE("no network: a listener on the host's loopback gets no connection") {
  Pool& pool = shared_pool();
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  REQUIRE(listener >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(listen(listener, 8) == 0);
  socklen_t length = sizeof address;
  REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const int port = ntohs(address.sin_port);

  const Result result = pool.run(
      fmt::format("import socket\n"
                  "for host in ('127.0.0.1', 'localhost', '8.8.8.8'):\n"
                  "    try:\n"
                  "        socket.create_connection((host, {}), timeout=0.5).close()\n"
                  "        print(host, 'connected')\n"
                  "    except OSError as e:\n"
                  "        print(host, 'failed', type(e).__name__)\n"
                  "print([line.split(':')[0].strip() for line in open('/proc/net/dev').read().splitlines()[2:]])\n",
                  port));
  CHECK_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  CHECK(result.stdout_text.find("connected") == std::string::npos);
  if (pool.protections().network_namespace) CHECK(result.stdout_text.find("['lo']") != std::string::npos);
  const int accepted = accept(listener, nullptr, nullptr);
  CHECK(accepted < 0);
  CHECK((errno == EAGAIN || errno == EWOULDBLOCK));
  if (accepted >= 0) close(accepted);
  close(listener);
  check_nothing_left(pool);
}

TEST_CASE("the pool's environment secrets are invisible: os.environ and every /proc/*/environ") {
  REQUIRE(setenv("QUANTEVAL_SANDBOX_TEST_SECRET", "hunter2-do-not-leak", 1) == 0);
  Pool pool(test_config(1));  // started after the secret was set
  const Result result = pool.run(
      "import os\n"
      "print('env', 'hunter2' in repr(dict(os.environ)))\n"
      "seen = []\n"
      "for pid in ['self', str(os.getppid()), '1'] + [p for p in os.listdir('/proc') if p.isdigit()]:\n"
      "    try:\n"
      "        seen.append(open(f'/proc/{pid}/environ', 'rb').read())\n"
      "    except OSError:\n"
      "        pass\n"
      "print('read', len(seen))\n"
      "print(b''.join(seen).decode('latin-1'))\n");
  unsetenv("QUANTEVAL_SANDBOX_TEST_SECRET");
  CHECK_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  CHECK(result.stdout_text.find("env False") == 0);
  CHECK(result.stdout_text.find("hunter2") == std::string::npos);
  CHECK(result.stderr_text.find("hunter2") == std::string::npos);
  check_nothing_left(pool);
}

TEST_CASE("killing the parent or everything it can reach does not take the worker down") {
  Pool& pool = shared_pool();
  for (const char* source :
       {"import os\nos.kill(os.getppid(), 9)\nprint('still here')\n",
        "import os\ntry:\n    os.kill(-1, 9)\nexcept ProcessLookupError:\n    pass\nprint('still here')\n",
        "import os, signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGSTOP, signal.SIGKILL):\n"
        "    os.kill(os.getppid(), s)\nprint('still here')\n",
        "import os, time\nif os.fork() == 0:\n    time.sleep(0.1)\n    os.kill(-1, 9)\n"
        "    os._exit(0)\ntime.sleep(1)\nprint('late')\n"}) {
    CAPTURE(source);
    const auto workers_before = worker_processes();
    const Result result = pool.run(source);
    CHECK(result.outcome != Outcome::sandbox_error);
    CHECK(result.attempts == 1);
    if (pool.protections().pid_namespace) {
      CHECK(worker_processes() == workers_before);  // no worker died and was replaced
    }
    check_nothing_left(pool);
  }
}

TEST_CASE("only the program's own processes are visible in /proc") {
  Pool& pool = shared_pool();
  if (!pool.protections().pid_namespace) return;
  const Result result = pool.run("import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n");
  REQUIRE(result.outcome == Outcome::completed);
  // PID 1 (the zygote) and the program itself.
  CHECK(result.stdout_text == "[1, " + result.stdout_text.substr(4, result.stdout_text.size() - 4));
  CHECK(std::count(result.stdout_text.begin(), result.stdout_text.end(), ',') == 1);
}

TEST_CASE("seccomp refuses namespace and mount system calls") {
  Pool& pool = shared_pool();
  if (!pool.protections().seccomp) return;
  const Result result = pool.run(
      "import ctypes, os\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "def errno_of(rc):\n    return 0 if rc == 0 else ctypes.get_errno()\n"
      "print(errno_of(libc.unshare(0x10000000)),\n"  // CLONE_NEWUSER
      "      errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)),\n"
      "      errno_of(libc.syscall(101, 0, 0, 0, 0)))\n");  // ptrace(PTRACE_TRACEME)
  REQUIRE_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  CHECK(result.stdout_text == "1 1 1\n");  // EPERM each
}
