// The pool: a set of workers, each a zygote process in its own namespaces,
// handed out one program at a time. Infrastructure failures (a worker that
// died, did not answer before the backstop, or could not be started) are
// retried on a fresh worker and, when they persist, reported as sandbox_error,
// never as something the program did.
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sandbox/sandbox.hpp"
#include "sandbox/text.hpp"
#include "sandbox/worker.hpp"

namespace quanteval::sandbox {
namespace {

using Clock = std::chrono::steady_clock;
using detail::bounded_text;
using detail::valid_utf8;

// Time the zygote may need beyond the program's own wall limit: killing and
// reaping its tree and sending the reply. Past that the pool assumes the
// worker is stuck and replaces it. Cleaning up comes after the verdict and has
// a bound of its own.
constexpr auto kBackstopGrace = std::chrono::seconds(5);
constexpr auto kCleanupTimeout = std::chrono::seconds(30);
// How much of the exception a Result keeps (bytes of UTF-8).
constexpr std::size_t kExceptionTypeBytes = 256;
constexpr std::size_t kExceptionMessageBytes = 4000;
// A loaded machine can take a while to start Python and create namespaces.
constexpr auto kHelloTimeout = std::chrono::seconds(30);

bool is_executable_file(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::string resolve_python(const std::string& python) {
  if (python.empty()) throw SandboxError("Config::python is empty");
  if (python.find('/') != std::string::npos) {
    if (!is_executable_file(python))
      throw SandboxError(fmt::format("Python interpreter not found or not executable: {}", python));
    return python;
  }
  const char* search_path = std::getenv("PATH");
  std::string path = search_path ? search_path : "/usr/bin:/bin";
  std::size_t begin = 0;
  while (begin <= path.size()) {
    std::size_t end = path.find(':', begin);
    if (end == std::string::npos) end = path.size();
    std::string folder = path.substr(begin, end - begin);
    std::string candidate = (folder.empty() ? std::string(".") : folder) + "/" + python;
    if (is_executable_file(candidate)) return candidate;
    begin = end + 1;
  }
  throw SandboxError(fmt::format("Python interpreter '{}' not found on PATH ({})", python, path));
}

void validate(const Limits& limits) {
  if (!(limits.wall_seconds > 0.0)) throw SandboxError("Limits::wall_seconds must be positive");
  if (limits.cpu_seconds < 0.0) throw SandboxError("Limits::cpu_seconds must not be negative");
  if (limits.address_space_bytes < (64ull << 20))
    throw SandboxError("Limits::address_space_bytes below 64 MiB cannot run Python");
  if (limits.max_processes < 1) throw SandboxError("Limits::max_processes must be at least 1");
  if (limits.max_open_files < 16) throw SandboxError("Limits::max_open_files below 16 cannot run Python");
  if (limits.memory_bytes != 0 && limits.memory_bytes < (64ull << 20)) {
    throw SandboxError("Limits::memory_bytes below 64 MiB cannot run Python");
  }
}

std::string fresh_nonce() {
  unsigned char bytes[16];
  std::size_t filled = 0;
  while (filled < sizeof bytes) {
    const ssize_t n = getrandom(bytes + filled, sizeof bytes - filled, 0);
    if (n > 0)
      filled += static_cast<std::size_t>(n);
    else if (errno != EINTR)
      throw SandboxError(fmt::format("getrandom: {}", std::strerror(errno)));
  }
  std::string hex;
  for (unsigned char byte : bytes) hex += fmt::format("{:02x}", byte);
  return hex;
}

std::string from_hex(std::string_view hex, bool& ok) {
  std::string bytes;
  ok = hex.size() % 2 == 0;
  for (std::size_t i = 0; ok && i < hex.size(); i += 2) {
    int value = 0;
    for (char digit : hex.substr(i, 2)) {
      value <<= 4;
      if (digit >= '0' && digit <= '9')
        value |= digit - '0';
      else if (digit >= 'a' && digit <= 'f')
        value |= digit - 'a' + 10;
      else
        ok = false;
    }
    bytes.push_back(static_cast<char>(value));
  }
  return bytes;
}

// What the marker pipe says. Lines not starting with the nonce are noise (the
// program may write anything to any fd it finds).
struct MarkerReport {
  bool started = false;       // "<nonce> start": the runner was about to compile the program
  std::string setup_failure;  // "<nonce> setup ...", only before start
  enum class Verdict { none, ok, exception, memory } verdict = Verdict::none;
  std::string exception_type, exception_message;  // raw UTF-8 (surrogates passed through)
};

MarkerReport read_marker(std::string_view bytes, const std::string& nonce) {
  MarkerReport report;
  const std::string prefix = nonce + " ";
  std::size_t begin = 0;
  while (begin < bytes.size()) {
    std::size_t end = bytes.find('\n', begin);
    if (end == std::string_view::npos) end = bytes.size();
    const std::string_view line = bytes.substr(begin, end - begin);
    begin = end + 1;
    if (line.substr(0, prefix.size()) != prefix) continue;
    const std::string_view rest = line.substr(prefix.size());
    if (!report.started) {
      if (rest == "start") {
        report.started = true;
      } else if (rest.substr(0, 6) == "setup ") {
        report.setup_failure = bounded_text(rest.substr(6), 1000);
        break;
      }
      continue;
    }
    if (rest == "ok") {
      report.verdict = MarkerReport::Verdict::ok;
    } else if (rest == "memory") {
      report.verdict = MarkerReport::Verdict::memory;
    } else if (rest.substr(0, 4) == "exc ") {
      // "exc <hex type> <hex message>"; anything malformed still counts as an exception.
      const std::string_view fields = rest.substr(4);
      const std::size_t space = fields.find(' ');
      bool type_ok = false, message_ok = false;
      report.exception_type = from_hex(fields.substr(0, space), type_ok);
      report.exception_message =
          space == std::string_view::npos ? std::string() : from_hex(fields.substr(space + 1), message_ok);
      if (!type_ok || report.exception_type.empty()) report.exception_type = "<unreadable exception>";
      if (!message_ok) report.exception_message.clear();
      report.verdict = MarkerReport::Verdict::exception;
    } else {
      continue;  // a malformed line after start: keep looking
    }
    break;
  }
  return report;
}

// How a program ended, from the pool's side of the pipes and the zygote's
// report. Once the runner said "start", whatever follows is the program's
// verdict; only a failure before that is the sandbox's.
struct Interpretation {
  bool program_ran = false;
  Result result;
  std::string infrastructure_failure;  // when !program_ran
};

Interpretation interpret(const detail::ProgramRun& run, const std::string& nonce, const Limits& limits) {
  Interpretation out;
  const MarkerReport marker = read_marker(run.marker_bytes, nonce);
  if (!marker.started) {
    out.infrastructure_failure =
        !marker.setup_failure.empty()
            ? "runner setup failed: " + marker.setup_failure
            : fmt::format("the runner ended before the program started (wait status {})", run.wait_status.value_or(-1));
    return out;
  }
  out.program_ran = true;
  Result& result = out.result;
  result.duration_seconds = run.duration_seconds;
  const int status = run.wait_status.value_or(SIGKILL);
  switch (marker.verdict) {
    case MarkerReport::Verdict::ok: result.outcome = Outcome::completed; break;
    case MarkerReport::Verdict::memory:
      result.outcome = Outcome::memory;
      result.exception_type = "MemoryError";
      break;
    case MarkerReport::Verdict::exception:
      result.exception_type = bounded_text(marker.exception_type, kExceptionTypeBytes);
      result.exception_message = bounded_text(marker.exception_message, kExceptionMessageBytes);
      result.outcome = result.exception_type == "MemoryError" ? Outcome::memory : Outcome::exception;
      break;
    case MarkerReport::Verdict::none:
      if (run.timed_out) {
        result.outcome = Outcome::timeout;
      } else if (WIFEXITED(status)) {
        result.outcome = Outcome::exited;
        result.exit_code = WEXITSTATUS(status);
      } else if (WIFSIGNALED(status)) {
        // SIGXCPU: RLIMIT_CPU ran out, which is a time limit.
        result.outcome = WTERMSIG(status) == SIGXCPU ? Outcome::timeout : Outcome::signaled;
        result.signal = WTERMSIG(status);
      } else {
        result.outcome = Outcome::signaled;
        result.signal = SIGKILL;
      }
      break;
  }
  // The kernel killed part of the tree for exceeding the memory cgroup: the
  // program went over its total memory, whatever its first process said after.
  if (run.oom_kills > 0) {
    result.outcome = Outcome::memory;
    result.memory_cgroup_kills = static_cast<int>(std::min<std::uint64_t>(run.oom_kills, 1 << 20));
    if (result.exception_type.empty()) result.exception_type = "MemoryError";
  }
  bool stdout_cut = false, stderr_cut = false;
  result.stdout_text = bounded_text(run.stdout_bytes, limits.output_cap_bytes, &stdout_cut);
  result.stderr_text = bounded_text(run.stderr_bytes, limits.output_cap_bytes, &stderr_cut);
  result.output_truncated = run.output_truncated || stdout_cut || stderr_cut;
  return out;
}

std::string describe(const Result& result, const Limits& limits) {
  switch (result.outcome) {
    case Outcome::completed: return "completed";
    case Outcome::exception:
      return result.exception_message.empty() ? result.exception_type
                                              : result.exception_type + ": " + result.exception_message;
    case Outcome::timeout:
      return fmt::format("timed out after {:.2f} s (wall limit {:.3g} s; CPU limit {:.3g} s)", result.duration_seconds,
                         limits.wall_seconds,
                         limits.cpu_seconds > 0.0 ? limits.cpu_seconds : limits.wall_seconds + 1.0);
    case Outcome::exited: return fmt::format("exited with code {} before the end of the program", result.exit_code);
    case Outcome::signaled: {
      const char* name = sigabbrev_np(result.signal);
      return fmt::format("killed by signal {} (SIG{})", result.signal, name ? name : "?");
    }
    case Outcome::memory:
      if (result.memory_cgroup_kills > 0) {
        return fmt::format("the program's processes together exceeded the memory limit ({} MiB); the kernel killed {}",
                           (limits.memory_bytes ? limits.memory_bytes : limits.address_space_bytes) >> 20,
                           result.memory_cgroup_kills == 1 ? std::string("one of them")
                                                           : fmt::format("{} of them", result.memory_cgroup_kills));
      }
      return result.exception_message.empty() ? "MemoryError" : "MemoryError: " + result.exception_message;
    case Outcome::sandbox_error: return result.detail;
  }
  return {};
}

}  // namespace

const char* to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::completed: return "completed";
    case Outcome::exception: return "exception";
    case Outcome::timeout: return "timeout";
    case Outcome::exited: return "exited";
    case Outcome::signaled: return "signaled";
    case Outcome::memory: return "memory";
    case Outcome::sandbox_error: return "sandbox_error";
  }
  return "unknown";
}

std::vector<std::string> Protections::active() const {
  std::vector<std::string> names;
  auto add = [&names](bool on, const char* name) {
    if (on) names.emplace_back(name);
  };
  add(pid_namespace, "pid_namespace");
  add(mount_namespace, "mount_namespace");
  add(network_namespace, "network_namespace");
  add(ipc_namespace, "ipc_namespace");
  add(uts_namespace, "uts_namespace");
  add(user_namespace, "user_namespace");
  add(distinct_uid, "distinct_uid");
  add(readonly_filesystem, "readonly_filesystem");
  add(filesystem_allowlist, "filesystem_allowlist");
  add(private_dev, "private_dev");
  add(ipc_cleanup, "ipc_cleanup");
  add(memory_cgroup, "memory_cgroup");
  add(seccomp, "seccomp");
  add(rlimits, "rlimits");
  return names;
}

struct Pool::Impl {
  Config config;
  detail::IsolationPlan plan;
  Protections protections;
  std::vector<std::unique_ptr<detail::WorkerProcess>> workers;

  std::mutex idle_mutex;
  std::condition_variable idle_changed;
  std::vector<int> idle;  // indexes of workers nobody is using

  int acquire() {
    std::unique_lock lock(idle_mutex);
    idle_changed.wait(lock, [this] { return !idle.empty(); });
    int index = idle.back();
    idle.pop_back();
    return index;
  }
  void release(int index) {
    {
      std::lock_guard lock(idle_mutex);
      idle.push_back(index);
    }
    idle_changed.notify_one();
  }

  void start_all();
  void describe_protections();
  Result run_on(detail::WorkerProcess& worker, const std::string& source, const Limits& limits);
};

void Pool::Impl::start_all() {
  // Workers boot in parallel: most of the time goes to Python start-up.
  std::vector<std::exception_ptr> failures(workers.size());
  std::vector<std::thread> starters;
  for (std::size_t i = 0; i < workers.size(); ++i) {
    starters.emplace_back([this, i, &failures] {
      try {
        workers[i]->start(kHelloTimeout);
      } catch (...) {
        failures[i] = std::current_exception();
      }
    });
  }
  for (auto& starter : starters) starter.join();
  for (auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

void Pool::Impl::describe_protections() {
  const auto& report = workers.front()->setup_report();
  nlohmann::json hello = nlohmann::json::parse(workers.front()->hello());
  Protections& p = protections;
  p.notes = plan.notes;
  auto note_failure = [&p](std::int32_t code, const char* what) {
    if (code > 0) {
      const char* name = strerrorname_np(code);
      p.notes.push_back(fmt::format("{}: {}", what, name ? name : std::to_string(code)));
    }
  };
  const int flags = plan.clone_flags;
  p.user_namespace = plan.user_namespace && report.uid_map == 0;
  note_failure(report.uid_map, "writing uid_map/gid_map");
  p.pid_namespace = (flags & CLONE_NEWPID) && hello.value("pid1", false);
  p.mount_namespace = (flags & CLONE_NEWNS) && report.mount_private == 0;
  note_failure(report.mount_private, "making mounts private");
  p.network_namespace = (flags & CLONE_NEWNET) != 0;
  p.ipc_namespace = (flags & CLONE_NEWIPC) != 0;
  p.uts_namespace = (flags & CLONE_NEWUTS) && report.hostname == 0;
  note_failure(report.hostname, "sethostname");
  note_failure(report.proc, "mounting a private /proc (host processes stay visible)");
  note_failure(report.tmpfs, "mounting the private /tmp");
  note_failure(report.shm, "mounting the private /dev/shm");
  p.filesystem_allowlist = report.view == 0;
  if (report.view > 0) {
    p.notes.push_back(fmt::format(
        "building the allow-list view failed ({}: {}); programs see the whole host "
        "filesystem read-only instead",
        workers.front()->view_failure(), strerrorname_np(report.view) ? strerrorname_np(report.view) : "?"));
  }
  p.visible_paths = p.filesystem_allowlist ? plan.view.binds : std::vector<std::string>{};
  p.private_dev = p.filesystem_allowlist && report.ptys == 0;
  note_failure(report.ptys, "mounting a private devpts instance");
  note_failure(report.mqueue, "mounting the private POSIX message queue folder (queues are not removed)");
  // SysV objects are removed after every program; POSIX queues where their
  // folder is mounted. Without an IPC namespace they would be the host's.
  p.ipc_cleanup = (flags & CLONE_NEWIPC) && report.mqueue == 0;
  if (!(flags & CLONE_NEWIPC)) p.notes.push_back("no IPC namespace: SysV and POSIX IPC objects are the host's");
  p.memory_cgroup = std::all_of(workers.begin(), workers.end(), [](const auto& w) { return w->memory_cgroup(); });
  p.readonly_filesystem = report.readonly == 0;
  note_failure(report.readonly, "mount_setattr(/, AT_RECURSIVE, RDONLY)");
  if (report.readonly_fallback == 0) p.notes.push_back("only / itself is read-only; other mounts stay writable");
  if (!(flags & CLONE_NEWNS))
    p.notes.push_back("no mount namespace: the filesystem is only protected by the worker's uid");
  p.distinct_uid = plan.started_as_root && !plan.user_namespace && report.credentials == 0;
  note_failure(report.credentials, "dropping to the worker uid");
  if (plan.user_namespace) {
    p.notes.push_back(fmt::format("user namespace: every worker maps to the host uid {}", plan.outer_uid));
  } else if (!plan.started_as_root) {
    p.notes.push_back(fmt::format("programs run as the pool's own uid {}", plan.outer_uid));
  }
  p.seccomp = report.seccomp == 0;
  note_failure(report.seccomp, "installing the seccomp filter");
  note_failure(report.no_new_privs, "PR_SET_NO_NEW_PRIVS");
  p.rlimits = true;  // set by the runner before every program; a failure there fails the program as sandbox_error
  if (!hello.value("dumpable_off", false)) p.notes.push_back("could not make the zygote non-dumpable");
  if (!p.pid_namespace) {
    p.notes.push_back(
        "no PID namespace: a program can signal its worker and setsid daemons are found by scanning /proc");
  }
}

Pool::Pool(Config config) : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  if (config.workers < 1) throw SandboxError("Config::workers must be at least 1");
  validate(config.limits);
  config.python = resolve_python(config.python);
  config.max_attempts = std::max(config.max_attempts, 1);
  impl.config = std::move(config);
  impl.plan = detail::plan_isolation(impl.config);
  impl.plan.scratch_bytes = std::max<std::uint64_t>(64ull << 20, 4 * impl.config.limits.file_size_bytes);
  for (int i = 0; i < impl.config.workers; ++i) {
    impl.workers.push_back(std::make_unique<detail::WorkerProcess>(impl.plan, impl.config.python, i));
    impl.idle.push_back(impl.config.workers - 1 - i);
  }
  impl.start_all();
  impl.describe_protections();
  const Protections& p = impl.protections;
  if (impl.config.require_isolation &&
      !(p.pid_namespace && p.mount_namespace && p.network_namespace && p.ipc_namespace && p.uts_namespace)) {
    std::string why;
    for (const auto& note : p.notes) why += "; " + note;
    throw SandboxError("isolation required but not every namespace could be created" + why);
  }
}

Pool::~Pool() = default;

Result Pool::Impl::run_on(detail::WorkerProcess& worker, const std::string& source, const Limits& limits) {
  std::string last_failure;
  for (int attempt = 1; attempt <= config.max_attempts; ++attempt) {
    // A worker still owing its cleanup report (only after an interrupted run)
    // is replaced; no attempt is spent on that.
    std::string why;
    if (worker.running() && !worker.wait_until_clean(Clock::now() + kCleanupTimeout, why)) worker.stop();
    if (!worker.running()) {
      try {
        worker.start(kHelloTimeout);
      } catch (const SandboxError& error) {
        last_failure = error.what();
        continue;
      }
    }
    const std::string nonce = fresh_nonce();
    detail::ProgramRun run;
    std::string failure;
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits.wall_seconds)) +
        kBackstopGrace;
    if (!worker.run_program(source, limits, nonce, deadline, run, failure)) {
      worker.stop();  // SIGKILL to the namespace's PID 1 takes every process in it along
      last_failure = failure;
      continue;
    }
    Interpretation verdict = interpret(run, nonce, limits);
    if (!verdict.program_ran) {
      worker.stop();
      last_failure = verdict.infrastructure_failure;
      continue;
    }
    // The verdict stands whatever happens next. The zygote wipes the scratch
    // areas and IPC objects only now, after reporting, so nothing the program
    // left behind can turn into a sandbox failure; a worker that cannot get
    // clean (or not in time) is replaced before the next program.
    if (!worker.wait_until_clean(Clock::now() + kCleanupTimeout, why)) worker.stop();
    Result& result = verdict.result;
    result.attempts = attempt;
    result.detail = valid_utf8(describe(result, limits));
    return result;
  }
  Result failed;
  failed.outcome = Outcome::sandbox_error;
  failed.attempts = config.max_attempts;
  failed.detail = valid_utf8(fmt::format("sandbox error after {} attempt(s): {}", config.max_attempts, last_failure));
  return failed;
}

Result Pool::run(const std::string& source, const Limits* limits_override) {
  const Limits limits = limits_override ? *limits_override : impl_->config.limits;
  validate(limits);
  const int index = impl_->acquire();
  struct Release {
    Impl& impl;
    int index;
    ~Release() { impl.release(index); }
  } release{*impl_, index};
  return impl_->run_on(*impl_->workers[static_cast<std::size_t>(index)], source, limits);
}

std::vector<Result> Pool::run_all(const std::vector<std::string>& sources,
                                  const std::function<void(std::size_t, const Result&)>& on_done,
                                  const std::vector<Limits>& limits) {
  if (!limits.empty() && limits.size() != sources.size())
    throw std::invalid_argument(fmt::format("Pool::run_all: {} limits for {} programs", limits.size(), sources.size()));
  std::vector<Result> results(sources.size());
  std::atomic<std::size_t> next{0};
  std::mutex callback_mutex;
  std::exception_ptr failure;
  std::atomic<bool> stop{false};
  auto serve = [&] {
    for (;;) {
      if (stop) return;
      const std::size_t index = next.fetch_add(1);
      if (index >= sources.size()) return;
      try {
        results[index] = run(sources[index], limits.empty() ? nullptr : &limits[index]);
        if (on_done) {
          std::lock_guard lock(callback_mutex);
          on_done(index, results[index]);
        }
      } catch (...) {
        std::lock_guard lock(callback_mutex);
        if (!failure) failure = std::current_exception();
        stop = true;
        return;
      }
    }
  };
  const std::size_t thread_count =
      std::min<std::size_t>(static_cast<std::size_t>(impl_->config.workers), sources.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < thread_count; ++t) threads.emplace_back(serve);
  for (auto& thread : threads) thread.join();
  if (failure) std::rethrow_exception(failure);
  return results;
}

const Protections& Pool::protections() const { return impl_->protections; }
const Config& Pool::config() const { return impl_->config; }

}  // namespace quanteval::sandbox
