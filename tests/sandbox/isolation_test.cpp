// The second hostile battery (issue 12): programs written against this
// sandbox's own source. None may crash the pool, make itself a sandbox_error,
// leave anything a later program can see (files, IPC objects, memory), reach a
// host socket or FIFO, or take more memory than its limit.
//
// Programs that must meet an earlier one's leftovers run on a one-worker pool:
// each check runs the planting program and then the looking one on the same
// worker.
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tests/sandbox/sandbox_test_support.hpp"
#include "tests/support/test_data.hpp"

using namespace quanteval::sandbox;
using namespace quanteval::sandbox::testing;
namespace fs = std::filesystem;

namespace {

// A pool of one worker and that worker's pid (a direct child of this process).
struct SingleWorkerPool {
  std::vector<pid_t> others = worker_processes();
  Pool pool{test_config(1)};

  pid_t zygote() const {
    for (pid_t pid : worker_processes()) {
      if (std::find(others.begin(), others.end(), pid) == others.end()) return pid;
    }
    return -1;
  }
};

// True when every text field could be written as strict JSON.
bool serializes_strictly(const Result& result) {
  nlohmann::json j = {{"type", result.exception_type},
                      {"message", result.exception_message},
                      {"stdout", result.stdout_text},
                      {"stderr", result.stderr_text},
                      {"detail", result.detail}};
  try {
    (void)j.dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

std::string random_token() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}{:08x}{:08x}", rd(), rd(), rd(), rd());
}

}  // namespace

TEST_CASE("a long non-ASCII exception message is kept as valid UTF-8, cut on a character boundary") {
  const Result result = shared_pool().run("raise ValueError('\xc3\xa9' * 3000)\n");
  REQUIRE_MESSAGE(result.outcome == Outcome::exception, result.detail);
  CHECK(result.exception_type == "ValueError");
  CHECK(result.exception_message.size() <= 4000);
  CHECK(result.exception_message.size() % 2 == 0);  // whole two-byte characters only
  CHECK(result.exception_message.substr(0, 4) == "\xc3\xa9\xc3\xa9");
  CHECK(serializes_strictly(result));
}

TEST_CASE("lone surrogates and invalid bytes become U+FFFD in every text field") {
  const Result raised = shared_pool().run("raise ValueError('a\\udcffb\\ud800')\n");
  REQUIRE_MESSAGE(raised.outcome == Outcome::exception, raised.detail);
  CHECK(raised.exception_message ==
        "a\xef\xbf\xbd"
        "b\xef\xbf\xbd");
  CHECK(serializes_strictly(raised));

  const Result printed = shared_pool().run(
      "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe \\xed\\xa0\\x80 \\xc3')\n"
      "sys.stderr.buffer.write(b'\\xc0\\xaf')\n");
  REQUIRE_MESSAGE(printed.outcome == Outcome::completed, printed.detail);
  CHECK(printed.stdout_text == "ok \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd");
  CHECK(printed.stderr_text == "\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(serializes_strictly(printed));
}

TEST_CASE("exception objects that misbehave still give the program an exception verdict") {
  struct Case {
    const char* name;
    const char* source;
  };
  const Case cases[] = {
      {"a type whose name is not a string",
       "class M(type):\n"
       "    def __getattribute__(cls, name):\n"
       "        return 42 if name in ('__qualname__', '__name__') else super().__getattribute__(name)\n"
       "class E(Exception, metaclass=M):\n    pass\n"
       "raise E('x')\n"},
      {"a module that cannot be printed, a __str__ returning an int",
       "class Bad:\n    def __str__(self):\n        raise RuntimeError('no')\n"
       "class F(Exception):\n    def __str__(self):\n        return 7\n"
       "F.__module__ = Bad()\nraise F('y')\n"},
      {"a __str__ that raises SystemExit",
       "class G(Exception):\n    def __str__(self):\n        raise SystemExit(0)\nraise G()\n"},
      {"a str subclass as message that lies about slicing",
       "class S(str):\n    def __getitem__(self, i):\n        raise RuntimeError\n    def __len__(self):\n"
       "        return -1\n"
       "class H(Exception):\n    def __str__(self):\n        return S('sneaky')\nraise H()\n"},
      {"builtins replaced before raising",
       "import builtins\nbuiltins.str = None\nbuiltins.type = None\nbuiltins.getattr = None\nraise KeyError('k')\n"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const Result result = shared_pool().run(c.source);
    CHECK_MESSAGE(result.outcome == Outcome::exception, result.detail);
    CHECK(result.attempts == 1);
    CHECK(serializes_strictly(result));
  }
}

TEST_CASE("a program that knows the nonce cannot turn itself into a sandbox error") {
  // The runner lives in the program's process, so a program can find the
  // nonce (documented: the marker is not a boundary). What it writes with it
  // after "start" is still its own verdict, never the infrastructure's.
  const std::string find_nonce =
      "import sys, os\n"
      "f = sys._getframe()\n"
      "while f is not None and 'nonce' not in f.f_locals:\n    f = f.f_back\n"
      "n = f.f_locals['nonce']\n";
  for (const char* forged :
       {"' setup pretend the runner failed\\n'", "' exc zz-not-hex \\n'", "' exc  \\n'", "' garbage\\n'"}) {
    CAPTURE(forged);
    const Result result =
        shared_pool().run(find_nonce + fmt::format("os.write(3, (n + {}).encode())\nos._exit(0)\n", forged));
    CHECK(result.outcome != Outcome::sandbox_error);
    CHECK(result.attempts == 1);
    CHECK(serializes_strictly(result));
  }
}

TEST_CASE("a program that closes its output channels still gets a verdict") {
  const Result result = shared_pool().run("import os\nfor fd in (1, 2, 3):\n    os.close(fd)\nraise ValueError\n");
  CHECK_MESSAGE(result.outcome == Outcome::exited, result.detail);
  CHECK(result.attempts == 1);
  const Result replaced =
      shared_pool().run("import os\nfd = os.open('/dev/null', os.O_WRONLY)\nos.dup2(fd, 3)\nprint('hi')\n");
  CHECK_MESSAGE(replaced.outcome == Outcome::exited, replaced.detail);
  CHECK(replaced.stdout_text == "hi\n");
  check_pool_still_works(shared_pool());
}

TEST_CASE("1200 nested directories with long names are wiped in place, depth and path length notwithstanding") {
  SingleWorkerPool single;
  const pid_t zygote = single.zygote();
  REQUIRE(zygote > 0);
  // 1200 levels of 200-character names: a 240 KB path, far past PATH_MAX.
  const Result result = single.pool.run(
      "import os\nname = 'd' * 200\n"
      "for _ in range(1200):\n    os.mkdir(name)\n    os.chdir(name)\n"
      "os.chmod('.', 0)\nraise AssertionError('wrong answer')\n",
      nullptr);
  CHECK_MESSAGE(result.outcome == Outcome::exception, result.detail);
  CHECK(result.exception_type == "AssertionError");
  CHECK(result.attempts == 1);
  CHECK(single.zygote() == zygote);  // within the cleanup budget: cleaned, not replaced
  const Result next = single.pool.run("import os\nprint(os.listdir('/tmp'), os.listdir('.'))\n");
  CHECK_MESSAGE(next.outcome == Outcome::completed, next.detail);
  CHECK(next.stdout_text == "['program'] []\n");
}

TEST_CASE("a program leaving more than the cleanup budget keeps its verdict; its worker is replaced") {
  SingleWorkerPool single;
  const pid_t zygote = single.zygote();
  REQUIRE(zygote > 0);
  // Tries 200 000 empty directories; the tmpfs inode limit (16384) stops it
  // well before, and what it did create is more than the cleaner removes in
  // place (4096 entries): the worker is replaced, which empties everything.
  const Limits patient = quick_limits(60.0);
  const Result result = single.pool.run(
      "import os\nmade = 0\n"
      "try:\n    for i in range(200000):\n        os.mkdir(str(i))\n        made += 1\n"
      "except OSError as e:\n    print(made, e.errno)\n"
      "raise AssertionError('wrong answer')\n",
      &patient);
  CHECK_MESSAGE(result.outcome == Outcome::exception, result.detail);
  CHECK(result.exception_type == "AssertionError");
  CHECK(result.attempts == 1);
  int made = 0, error = 0;
  REQUIRE(std::sscanf(result.stdout_text.c_str(), "%d %d", &made, &error) == 2);
  CHECK(error == ENOSPC);
  CHECK(made > 4096);   // past the cleanup budget...
  CHECK(made < 16384);  // ...and stopped by the inode limit
  const Result next = single.pool.run("import os\nprint(os.listdir('/tmp'), os.listdir('.'))\n");
  CHECK_MESSAGE(next.outcome == Outcome::completed, next.detail);
  CHECK(next.stdout_text == "['program'] []\n");
  CHECK(next.attempts == 1);
  CHECK(single.zygote() != zygote);  // the bound was hit: a fresh worker
}

TEST_CASE("SysV and POSIX IPC objects planted by one program are gone for the next") {
  SingleWorkerPool single;
  if (!single.pool.protections().ipc_cleanup) {
    MESSAGE("no IPC namespace with a private mqueue mount here; skipped");
    return;
  }
  const std::string token = random_token().substr(0, 16);
  const Result plant = single.pool.run(
      fmt::format("import ctypes, os\n"
                  "libc = ctypes.CDLL(None, use_errno=True)\n"
                  "libc.shmat.restype = ctypes.c_void_p\n"
                  "shm = libc.shmget(0x51e12, 1 << 20, 0o1666)\n"  // IPC_CREAT | 0666
                  "address = libc.shmat(shm, None, 0)\n"
                  "ctypes.memmove(address, b'{0}', 16)\n"
                  "queue = libc.msgget(0x51e13, 0o1666)\n"
                  "message = ctypes.create_string_buffer(b'\\x01\\0\\0\\0\\0\\0\\0\\0{0}')\n"
                  "sent = libc.msgsnd(queue, message, 16, 0)\n"
                  "sem = libc.semget(0x51e14, 1, 0o1666)\n"
                  "mq = libc.mq_open(b'/planted', os.O_CREAT | os.O_RDWR, 0o666, None)\n"
                  "mq_sent = libc.mq_send(mq, b'{0}', 16, 0)\n"
                  "print(shm >= 0, address is not None, queue >= 0, sent, sem >= 0, mq >= 0, mq_sent)\n",
                  token));
  REQUIRE_MESSAGE(plant.outcome == Outcome::completed, (plant.detail + plant.stderr_text));
  REQUIRE(plant.stdout_text == "True True True 0 True True 0\n");
  const Result look = single.pool.run(
      "import ctypes, os\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "found = [libc.shmget(0x51e12, 0, 0), libc.msgget(0x51e13, 0), libc.semget(0x51e14, 0, 0),\n"
      "         libc.mq_open(b'/planted', os.O_RDONLY)]\n"
      "rows = [len(open('/proc/sysvipc/' + k).read().splitlines()) - 1 for k in ('shm', 'msg', 'sem')]\n"
      "print(found, rows, os.listdir('/dev/mqueue'))\n");
  REQUIRE_MESSAGE(look.outcome == Outcome::completed, (look.detail + look.stderr_text));
  CHECK(look.stdout_text == "[-1, -1, -1, -1] [0, 0, 0] []\n");
}

TEST_CASE("an earlier program's output, exception and source are not in a later program's memory") {
  SingleWorkerPool single;
  // The secret is 64 characters; the looking program only carries its first
  // half and a hash of the second, so finding both halves together in its
  // memory proves the bytes came from elsewhere.
  const std::string secret = "SECRET-" + random_token() + random_token().substr(0, 25);
  REQUIRE(secret.size() == 64);
  const std::string head = secret.substr(0, 32), tail = secret.substr(32);
  const Result plant =
      single.pool.run(fmt::format("import sys\nsecret = '{0}'\n"
                                  "for _ in range(200):\n    print(secret)\n    print(secret, file=sys.stderr)\n"
                                  "open('/tmp/left', 'w').write(secret)\nraise ValueError(secret)\n",
                                  secret));
  REQUIRE(plant.outcome == Outcome::exception);
  REQUIRE(plant.stdout_text.find(secret) != std::string::npos);
  const Result look = single.pool.run(fmt::format(
      "import hashlib, re\nhead = '{0}'.encode()\nwanted = '{1}'\nfound = 0\n"
      "with open('/proc/self/maps') as maps, open('/proc/self/mem', 'rb', 0) as mem:\n"
      "    for line in maps.read().splitlines():\n"
      "        fields = line.split()\n"
      "        if 'r' not in fields[1] or line.endswith(('[vvar]', '[vsyscall]', '[vvar_vclock]')):\n"
      "            continue\n"
      "        start, end = (int(x, 16) for x in fields[0].split('-'))\n"
      "        try:\n"
      "            mem.seek(start)\n            data = mem.read(end - start)\n"
      "        except OSError:\n            continue\n"
      "        for match in re.finditer(re.escape(head), data):\n"
      "            following = data[match.end():match.end() + 32]\n"
      "            if hashlib.sha256(following).hexdigest() == wanted:\n"
      "                found += 1\n"
      "print('found', found)\n",
      head, [&] {
        // sha256 of the tail, computed by the host's Python to keep this test free of a C++ SHA-256.
        const std::string command = fmt::format("{} -c \"import hashlib; print(hashlib.sha256(b'{}').hexdigest())\"",
                                                quanteval::test::python(), tail);
        std::string digest;
        if (FILE* pipe = ::popen(command.c_str(), "r")) {
          char buffer[128] = {};
          if (std::fgets(buffer, sizeof buffer, pipe)) digest = buffer;
          ::pclose(pipe);
        }
        while (!digest.empty() && digest.back() == '\n') digest.pop_back();
        return digest;
      }()));
  REQUIRE_MESSAGE(look.outcome == Outcome::completed, (look.detail + look.stderr_text));
  CHECK(look.stdout_text == "found 0\n");
}

TEST_CASE("host unix sockets and FIFOs are not reachable, wherever they are") {
  Pool& pool = shared_pool();
  quanteval::test::TempDir host_temp;
  // The build tree (the user's working tree) and the host /tmp: both were
  // visible, read-only, before the allow-list view.
  // Not root and the build tree not ours: a second temporary folder stands in.
  quanteval::test::TempDir fallback_dir;
  // A socket path has to fit in sun_path (108 bytes): a deep build folder stands back too.
  fs::path build_dir = fs::current_path() / fmt::format("sandbox-sockets-{}", getpid());
  std::error_code cannot_create;
  if ((build_dir / "listener.sock").string().size() < sizeof(sockaddr_un::sun_path)) {
    fs::create_directories(build_dir, cannot_create);
  } else {
    cannot_create = std::make_error_code(std::errc::filename_too_long);
  }
  if (cannot_create) build_dir = fallback_dir.path();
  std::vector<int> listeners;
  std::vector<int> fifo_readers;
  std::vector<std::string> paths;
  for (const fs::path& dir : {host_temp.path(), build_dir}) {
    fs::permissions(dir, fs::perms::all);
    const std::string socket_path = (dir / "listener.sock").string();
    const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(listener >= 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(socket_path.size() < sizeof address.sun_path);
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(listen(listener, 4) == 0);
    chmod(socket_path.c_str(), 0777);
    listeners.push_back(listener);
    const std::string fifo_path = (dir / "pipe.fifo").string();
    REQUIRE(mkfifo(fifo_path.c_str(), 0666) == 0);
    chmod(fifo_path.c_str(), 0666);
    const int reader = open(fifo_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(reader >= 0);
    fifo_readers.push_back(reader);
    paths.push_back(socket_path);
    paths.push_back(fifo_path);
  }
  // An abstract socket too: they live in the network namespace.
  const std::string abstract_name = fmt::format("quanteval-test-{}", getpid());
  const int abstract_listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_un abstract_address{};
  abstract_address.sun_family = AF_UNIX;
  std::memcpy(abstract_address.sun_path + 1, abstract_name.c_str(), abstract_name.size());
  REQUIRE(bind(abstract_listener, reinterpret_cast<sockaddr*>(&abstract_address),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract_name.size())) == 0);
  REQUIRE(listen(abstract_listener, 4) == 0);
  listeners.push_back(abstract_listener);

  const Result result = pool.run(fmt::format(
      "import os, socket\n"
      "for path in {0}:\n"
      "    try:\n"
      "        if path.endswith('.sock'):\n"
      "            s = socket.socket(socket.AF_UNIX)\n            s.connect(path)\n            s.send(b'escaped')\n"
      "        else:\n"
      "            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)\n            os.write(fd, b'escaped')\n"
      "        print(path, 'reached')\n"
      "    except OSError as e:\n"
      "        print(path, 'refused', e.errno)\n"
      "s = socket.socket(socket.AF_UNIX)\n"
      "try:\n    s.connect('\\0{1}')\n    print('abstract reached')\n"
      "except OSError as e:\n    print('abstract refused', e.errno)\n",
      nlohmann::json(paths).dump(), abstract_name));
  CHECK_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  CHECK(result.stdout_text.find("reached") == std::string::npos);
  for (const auto& path : paths) CHECK(result.stdout_text.find(path + " refused 2") != std::string::npos);  // ENOENT
  for (int listener : listeners) {
    CHECK(accept(listener, nullptr, nullptr) < 0);
    close(listener);
  }
  for (int reader : fifo_readers) {
    char byte = 0;
    CHECK(read(reader, &byte, 1) <= 0);
    close(reader);
  }
  if (build_dir != fallback_dir.path()) fs::remove_all(build_dir);
  check_pool_still_works(pool);
}

TEST_CASE("the view holds the interpreter's folders only: no dataset, no checkout, no home, no /sys") {
  Pool& pool = shared_pool();
  if (!pool.protections().filesystem_allowlist) {
    MESSAGE("no allow-list view here; skipped");
    return;
  }
  const std::string dataset = fs::absolute(quanteval::test::dataset_file("humaneval")).string();
  // The working tree, unless the tests run from a folder the view has anyway.
  std::string checkout = fs::current_path().string();
  if (checkout == "/" || checkout == "/tmp" || checkout.rfind("/proc", 0) == 0) checkout = dataset;
  const Result result = pool.run(fmt::format(
      "import os\n"
      "for path in ['{0}', os.path.dirname('{0}'), '{1}', '/sys', '/work', '/srv', '/opt', '/mnt', '/boot']:\n"
      "    print(path, os.path.exists(path))\n"
      "for path in ['/home', '/root', '/run', '/var']:\n"
      "    print(path, os.listdir(path))\n"
      "print(sorted(set(os.listdir('/etc')) - {{'alternatives', 'ld.so.cache', 'localtime'}}))\n"
      "print(sorted(os.listdir('/dev')))\n"
      "import numpy, sqlite3, decimal, ctypes\nprint('imports ok')\n",
      dataset, checkout));
  REQUIRE_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  const std::string& out = result.stdout_text;
  CHECK(out.find(" True") == std::string::npos);
  for (const char* folder : {"/home", "/root", "/run", "/var"}) {
    CHECK(out.find(std::string(folder) + " []") != std::string::npos);
  }
  CHECK(out.find("\n[]\n") != std::string::npos);  // nothing else in /etc
  CHECK(out.find("['fd', 'full', 'mqueue', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', "
                 "'urandom', 'zero']") != std::string::npos);
  CHECK(out.find("imports ok") != std::string::npos);
  const auto& visible = pool.protections().visible_paths;
  CHECK(std::find(visible.begin(), visible.end(), "/usr") != visible.end());
}

TEST_CASE("a folder named private is hidden even inside an allowed one") {
  if (!fs::is_directory("/usr/share/doc") || fs::is_empty("/usr/share/doc")) {
    MESSAGE("no /usr/share/doc to hide; skipped");
    return;
  }
  Config config = test_config(1);
  config.hidden_paths = {"/usr/share/doc"};
  Pool pool(config);
  if (!pool.protections().filesystem_allowlist) return;
  const Result result = pool.run("import os\nprint(os.listdir('/usr/share/doc'), len(os.listdir('/usr/share')) > 1)\n");
  REQUIRE_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  CHECK(result.stdout_text == "[] True\n");
}

TEST_CASE("/dev/ptmx opens ptys of a private devpts instance with a small limit of its own") {
  Pool& pool = shared_pool();
  if (!pool.protections().private_dev) {
    MESSAGE("no private /dev here; skipped");
    return;
  }
  struct stat host_devpts {};
  REQUIRE(stat("/dev/pts/ptmx", &host_devpts) == 0);
  const Result result =
      pool.run(fmt::format("import os\nptys = []\n"
                           "try:\n    for _ in range(64):\n        ptys.append(os.openpty())\n"
                           "except OSError as e:\n    print('stopped', e.errno)\n"
                           "print(len(ptys), os.fstat(ptys[0][1]).st_dev != {})\n",
                           static_cast<unsigned long long>(host_devpts.st_dev)));
  REQUIRE_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  CHECK(result.stdout_text == "stopped 28\n16 True\n");  // ENOSPC at the instance's max
}

TEST_CASE("socket() is refused for every family but AF_UNIX, AF_INET and AF_INET6") {
  Pool& pool = shared_pool();
  if (!pool.protections().seccomp) return;
  const Result result = pool.run(
      "import socket, ctypes\n"
      "def attempt(family, kind=socket.SOCK_STREAM):\n"
      "    try:\n        socket.socket(family, kind).close()\n        return 0\n"
      "    except OSError as e:\n        return e.errno\n"
      "print(attempt(socket.AF_UNIX), attempt(socket.AF_INET), attempt(socket.AF_INET6))\n"
      "print(attempt(40), attempt(16, socket.SOCK_RAW), attempt(17, socket.SOCK_RAW), attempt(0), attempt(31))\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "fd = libc.syscall(41, ctypes.c_long((1 << 32) | 40), 1, 0)\n"  // AF_VSOCK with upper bits set
      "print(fd, ctypes.get_errno())\n"
      "pair = (ctypes.c_int * 2)()\n"
      "print(libc.socketpair(16, 3, 0, pair), ctypes.get_errno())\n");
  REQUIRE_MESSAGE(result.outcome == Outcome::completed, (result.detail + result.stderr_text));
  CHECK(result.stdout_text == "0 0 0\n97 97 97 97 97\n-1 97\n-1 97\n");  // EAFNOSUPPORT
}

TEST_CASE("RLIMIT_NOFILE is the sandbox's own, not inherited from the pool") {
  rlimit original{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &original) == 0);
  rlimit raised = original;
  raised.rlim_cur = std::min<rlim_t>(original.rlim_max, 20000);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &raised) == 0);
  Limits few = quick_limits(10.0);
  few.max_open_files = 64;
  Pool pool(test_config(1));
  const Result standard = pool.run("import resource\nprint(resource.getrlimit(resource.RLIMIT_NOFILE))\n");
  const Result limited = pool.run(
      "import os\nfds = []\ntry:\n    while True:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
      "except OSError as e:\n    print(len(fds) < 64, e.errno)\n",
      &few);
  setrlimit(RLIMIT_NOFILE, &original);
  CHECK_MESSAGE(standard.outcome == Outcome::completed, standard.detail);
  // 1024, or the pool's own hard limit where that is lower (the worker cannot raise it).
  const rlim_t expected = original.rlim_max == RLIM_INFINITY ? 1024 : std::min<rlim_t>(1024, original.rlim_max);
  CHECK(standard.stdout_text == fmt::format("({0}, {0})\n", expected));
  CHECK_MESSAGE(limited.outcome == Outcome::completed, limited.detail);
  CHECK(limited.stdout_text == "True 24\n");  // EMFILE
}

TEST_CASE("chmod, extended attributes and timestamps of /tmp do not reach the next program") {
  SingleWorkerPool single;
  const pid_t zygote = single.zygote();
  const Result spoil = single.pool.run(
      "import os\n"
      "for path in ('/tmp', '/dev/shm'):\n"
      "    try:\n        os.setxattr(path, 'user.note', b'left for the next one')\n"
      "    except OSError:\n        pass\n"
      "    os.utime(path, (1, 1))\n"
      "os.chmod('/dev/shm', 0)\nos.chmod('/tmp', 0o500)\nprint('done')\n");
  REQUIRE_MESSAGE(spoil.outcome == Outcome::completed, (spoil.detail + spoil.stderr_text));
  const Result next = single.pool.run(
      "import os, stat\n"
      "open('/tmp/mine', 'w').write('x')\nopen('here', 'w').write('y')\nopen('/dev/shm/s', 'w').write('z')\n"
      "for path in ('/tmp', '/dev/shm'):\n"
      "    info = os.stat(path)\n"
      "    print(oct(stat.S_IMODE(info.st_mode)), os.listxattr(path), info.st_mtime > 1)\n");
  CHECK_MESSAGE(next.outcome == Outcome::completed, (next.detail + next.stderr_text));
  CHECK(next.attempts == 1);
  CHECK(next.stdout_text == "0o700 [] True\n0o700 [] True\n");
  CHECK(single.zygote() == zygote);  // reset in place, not by replacing the worker
}

TEST_CASE("a program's processes together cannot exceed its memory limit (memory cgroup)") {
  SingleWorkerPool single;
  if (!single.pool.protections().memory_cgroup) {
    MESSAGE("no memory cgroup on this host; skipped");
    return;
  }
  const pid_t zygote = single.zygote();
  Limits limits = quick_limits(30.0);
  limits.memory_bytes = 256ull << 20;  // the total, while each process may map 4 GiB
  // Four children of 128 MiB each, every page written; each is well within
  // RLIMIT_AS, together they are twice the limit.
  const Result forked = single.pool.run(
      "import os, time\nchildren = []\n"
      "for _ in range(4):\n"
      "    pid = os.fork()\n"
      "    if pid == 0:\n        block = b'\\x01' * (128 << 20)\n        time.sleep(30)\n        os._exit(0)\n"
      "    children.append(pid)\n"
      "statuses = [os.waitpid(pid, 0)[1] for pid in children]\n"
      "print('all children ended', statuses)\n",
      &limits);
  CHECK_MESSAGE(forked.outcome == Outcome::memory, forked.detail);
  CHECK(forked.memory_cgroup_kills >= 1);
  CHECK(forked.attempts == 1);
  // Memory no process maps: memfds (each under RLIMIT_FSIZE) written past the limit.
  const Result memfd = single.pool.run(
      "import os\nchunk = b'\\x02' * (15 << 20)\nfds = []\n"
      "for _ in range(32):\n    fds.append(os.memfd_create('hoard'))\n    os.write(fds[-1], chunk)\n"
      "print('kept 480 MiB')\n",
      &limits);
  CHECK_MESSAGE(memfd.outcome == Outcome::memory, memfd.detail);
  CHECK(single.zygote() == zygote);  // the zygote is outside the group: never the OOM killer's victim
  check_pool_still_works(single.pool);
}
