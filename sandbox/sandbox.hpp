#pragma once
// The sandbox: runs untrusted Python programs, each in an isolated,
// resource-limited process tree, and says how each one ended. It knows nothing
// of HumanEval or models: a program is Python source text, and "completed"
// means the source ran to its last statement without raising -- proved by a
// marker the runner writes on a private channel after exec() returns, never by
// an exit code or by anything printed.
//
// Isolation (each part detected at start and reported in Protections):
//   new PID, mount, network, IPC and UTS namespaces; an unprivileged uid
//   distinct per worker; a read-only filesystem view built from an allow-list
//   (the interpreter, its standard library and packages, the shared libraries
//   it loads; a private /dev and /proc; nothing else of the host) with private
//   scratch tmpfs mounts of bounded size and inode count; scrubbed environment;
//   stdin closed; stdout/stderr captured up to a cap; rlimits (address space,
//   CPU time, file size, process count, open files, no core dumps); a memory
//   cgroup bounding the whole process tree; a seccomp filter; a wall-clock
//   limit enforced from outside the program, killing its whole tree.
// After each program no process of it survives and no zombie is left; its
// scratch areas and SysV/POSIX IPC objects are removed before the next program
// runs on the worker, and nothing of it stays in memory a later program could
// inherit (see docs/sandbox.md).
//
// Verdicts: once a program has started, whatever it does to its own process,
// files, output or memory ends in a program outcome (completed, exception,
// timeout, exited, signaled, memory). sandbox_error means the sandbox itself
// failed (a worker that died or could not start, runner setup failing before
// the program ran) on every attempt.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace quanteval::sandbox {

struct SandboxError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Limits {
  double wall_seconds = 3.0;                       // per program, enforced from outside
  double cpu_seconds = 0.0;                        // RLIMIT_CPU; 0 = wall_seconds + 1
  std::uint64_t address_space_bytes = 4ull << 30;  // RLIMIT_AS
  std::uint64_t file_size_bytes = 16ull << 20;     // RLIMIT_FSIZE
  int max_processes = 64;                          // per worker uid (RLIMIT_NPROC where it applies)
  int max_open_files = 1024;                       // RLIMIT_NOFILE (not inherited from the pool)
  std::uint64_t memory_bytes = 0;                  // the whole process tree (memory cgroup, where the host
                                                   // allows one); 0 = address_space_bytes
  std::size_t output_cap_bytes = 16 << 10;         // kept of stdout and of stderr each
};

struct Config {
  std::string python = "python3";  // resolved on PATH when not absolute
  int workers = 2;
  Limits limits;
  int max_attempts = 3;            // infrastructure failures are retried this many times
  bool require_isolation = false;  // throw at start when a namespace cannot be created
  // Host folders programs must not see even where they lie inside a folder the
  // interpreter needs (e.g. the dataset's, with its canonical solutions). The
  // pool adds its own working tree and $HOME.
  std::vector<std::string> hidden_paths;
};

// How a program ended.
enum class Outcome {
  completed,      // ran to the end of the source: the marker arrived
  exception,      // raised; exception_type / exception_message say what
  timeout,        // wall-clock limit hit; the tree was killed
  exited,         // process ended (any exit code) without the marker: sys.exit, os._exit, ...
  signaled,       // killed by a signal (other than the sandbox's own timeout kill)
  memory,         // MemoryError or killed for exceeding the memory limit
  sandbox_error,  // infrastructure failure after all retries; not the program's fault
};
const char* to_string(Outcome outcome);

// Every text field is valid UTF-8 whatever the program produced (ill-formed
// bytes and lone surrogates become U+FFFD), and is cut on a character boundary.
struct Result {
  Outcome outcome = Outcome::sandbox_error;
  std::string exception_type;     // e.g. "AssertionError" (outcome == exception or memory), at most 256 bytes
  std::string exception_message;  // str(exception), at most 4000 bytes
  int exit_code = 0;              // outcome == exited
  int signal = 0;                 // outcome == signaled
  int memory_cgroup_kills = 0;    // outcome == memory: processes of the tree the kernel killed at the limit
  double duration_seconds = 0.0;  // wall time of the program itself
  std::string stdout_text;        // at most Limits::output_cap_bytes bytes
  std::string stderr_text;
  bool output_truncated = false;
  int attempts = 1;    // >1 when infrastructure failures were retried
  std::string detail;  // one human line, e.g. "AssertionError: expected 3"
};

struct Protections {
  bool pid_namespace = false;
  bool mount_namespace = false;
  bool network_namespace = false;
  bool ipc_namespace = false;
  bool uts_namespace = false;
  bool user_namespace = false;  // used when not started as root
  bool distinct_uid = false;    // each worker runs as its own unprivileged uid
  bool readonly_filesystem = false;
  bool filesystem_allowlist = false;  // the view holds only what the interpreter needs (else the host, read-only)
  bool private_dev = false;           // /dev: a few device nodes and a devpts instance of its own
  bool ipc_cleanup = false;           // SysV and POSIX IPC objects removed after every program
  bool memory_cgroup = false;         // the process tree's total memory is bounded (Limits::memory_bytes)
  bool seccomp = false;
  bool rlimits = false;
  std::vector<std::string> notes;           // why something is off, e.g. "unshare(CLONE_NEWNET): EPERM"
  std::vector<std::string> visible_paths;   // host paths the allow-list view shows, read-only
  std::vector<std::string> active() const;  // names of the protections that are on
};

// A pool of worker processes that run programs. Thread-safe: run() may be
// called from several threads at once; each call takes a free worker.
class Pool {
 public:
  explicit Pool(Config config);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs one program and blocks until it ended.
  Result run(const std::string& source, const Limits* limits_override = nullptr);

  // Runs all programs on all workers; on_done(index, result) is called as each
  // finishes (from worker threads, one call at a time). Returns results in input order.
  // `limits` (empty, or one per program) overrides the pool's limits program by program.
  std::vector<Result> run_all(const std::vector<std::string>& sources,
                              const std::function<void(std::size_t, const Result&)>& on_done = {},
                              const std::vector<Limits>& limits = {});

  const Protections& protections() const;
  const Config& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quanteval::sandbox
