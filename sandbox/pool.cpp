// The pool: a set of workers, each a zygote process in its own namespaces,
// handed out one program at a time. Infrastructure failures (a worker that
// died, did not answer before the backstop, or could not be started) are
// retried on a fresh worker and, when they persist, reported as sandbox_error,
// never as something the program did.
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
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
#include "sandbox/worker.hpp"

namespace quanteval::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

// Time the zygote may need beyond the program's own wall limit: killing and
// reaping its tree, wiping the scratch area, sending the reply. Past that the
// pool assumes the worker is stuck and replaces it.
constexpr auto kBackstopGrace = std::chrono::seconds(5);
// A loaded machine can take a while to start Python and create namespaces.
constexpr auto kHelloTimeout = std::chrono::seconds(30);

bool is_executable_file(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::string resolve_python(const std::string& python) {
  if (python.empty()) throw SandboxError("Config::python is empty");
  if (python.find('/') != std::string::npos) {
    if (!is_executable_file(python)) throw SandboxError(fmt::format("Python interpreter not found or not executable: {}", python));
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
  if (limits.address_space_bytes < (64ull << 20)) throw SandboxError("Limits::address_space_bytes below 64 MiB cannot run Python");
  if (limits.max_processes < 1) throw SandboxError("Limits::max_processes must be at least 1");
}

std::string encode_request(const std::string& source, const Limits& limits) {
  nlohmann::json header = {
      {"wall_seconds", limits.wall_seconds},
      {"cpu_seconds", limits.cpu_seconds > 0.0 ? limits.cpu_seconds : limits.wall_seconds + 1.0},
      {"address_space_bytes", limits.address_space_bytes},
      {"file_size_bytes", limits.file_size_bytes},
      {"max_processes", limits.max_processes},
      {"output_cap_bytes", limits.output_cap_bytes},
  };
  const std::string text = header.dump();
  std::string frame;
  auto append_length = [&frame](std::size_t length) {
    const auto value = static_cast<std::uint32_t>(length);
    frame.append(reinterpret_cast<const char*>(&value), sizeof value);  // little-endian hosts only (x86-64, arm64)
  };
  if (source.size() > 0xffffffffu) throw SandboxError("program source larger than 4 GiB");
  append_length(text.size());
  frame += text;
  append_length(source.size());
  frame += source;
  return frame;
}

Outcome parse_outcome(const std::string& name) {
  if (name == "completed") return Outcome::completed;
  if (name == "exception") return Outcome::exception;
  if (name == "timeout") return Outcome::timeout;
  if (name == "exited") return Outcome::exited;
  if (name == "signaled") return Outcome::signaled;
  if (name == "memory") return Outcome::memory;
  return Outcome::sandbox_error;
}

std::string describe(const Result& result, const Limits& limits) {
  switch (result.outcome) {
    case Outcome::completed: return "completed";
    case Outcome::exception:
      return result.exception_message.empty() ? result.exception_type
                                              : result.exception_type + ": " + result.exception_message;
    case Outcome::timeout:
      return fmt::format("timed out after {:.2f} s (wall limit {:.3g} s; CPU limit {:.3g} s)", result.duration_seconds,
                         limits.wall_seconds, limits.cpu_seconds > 0.0 ? limits.cpu_seconds : limits.wall_seconds + 1.0);
    case Outcome::exited:
      return fmt::format("exited with code {} before the end of the program", result.exit_code);
    case Outcome::signaled: {
      const char* name = sigabbrev_np(result.signal);
      return fmt::format("killed by signal {} (SIG{})", result.signal, name ? name : "?");
    }
    case Outcome::memory:
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
  p.readonly_filesystem = report.readonly == 0;
  note_failure(report.readonly, "mount_setattr(/, AT_RECURSIVE, RDONLY)");
  if (report.readonly_fallback == 0) p.notes.push_back("only / itself is read-only; other mounts stay writable");
  if (!(flags & CLONE_NEWNS)) p.notes.push_back("no mount namespace: the filesystem is only protected by the worker's uid");
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
    p.notes.push_back("no PID namespace: a program can signal its worker and setsid daemons are found by scanning /proc");
  }
}

Pool::Pool(Config config) : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  if (config.workers < 1) throw SandboxError("Config::workers must be at least 1");
  validate(config.limits);
  config.python = resolve_python(config.python);
  config.max_attempts = std::max(config.max_attempts, 1);
  impl.config = std::move(config);
  impl.plan = detail::plan_isolation();
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
  const std::string request = encode_request(source, limits);
  std::string last_failure;
  for (int attempt = 1; attempt <= config.max_attempts; ++attempt) {
    if (!worker.running()) {
      try {
        worker.start(kHelloTimeout);
      } catch (const SandboxError& error) {
        last_failure = error.what();
        continue;
      }
    }
    detail::WorkerProcess::Reply reply;
    std::string failure;
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(limits.wall_seconds)) + kBackstopGrace;
    if (!worker.exchange(request, deadline, reply, failure)) {
      worker.stop();  // SIGKILL to the namespace's PID 1 takes every process in it along
      last_failure = failure;
      continue;
    }
    Result result;
    bool recycle = true;
    try {
      auto header = nlohmann::json::parse(reply.header);
      result.outcome = parse_outcome(header.at("outcome").get<std::string>());
      result.exception_type = header.value("exception_type", "");
      result.exception_message = header.value("exception_message", "");
      result.exit_code = header.value("exit_code", 0);
      result.signal = header.value("signal", 0);
      result.duration_seconds = header.value("duration", 0.0);
      result.output_truncated = header.value("truncated", false);
      result.detail = header.value("detail", "");
      recycle = header.value("recycle", false);
    } catch (const std::exception& error) {
      worker.stop();
      last_failure = fmt::format("unreadable reply from worker: {}", error.what());
      continue;
    }
    if (recycle) worker.stop();  // e.g. its scratch area could not be wiped: start clean next time
    if (result.outcome == Outcome::sandbox_error) {
      worker.stop();
      last_failure = result.detail;
      continue;
    }
    result.stdout_text = std::move(reply.stdout_bytes);
    result.stderr_text = std::move(reply.stderr_bytes);
    result.attempts = attempt;
    result.detail = describe(result, limits);
    return result;
  }
  Result failed;
  failed.outcome = Outcome::sandbox_error;
  failed.attempts = config.max_attempts;
  failed.detail = fmt::format("sandbox error after {} attempt(s): {}", config.max_attempts, last_failure);
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
  const std::size_t thread_count = std::min<std::size_t>(static_cast<std::size_t>(impl_->config.workers), sources.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < thread_count; ++t) threads.emplace_back(serve);
  for (auto& thread : threads) thread.join();
  if (failure) std::rethrow_exception(failure);
  return results;
}

const Protections& Pool::protections() const { return impl_->protections; }
const Config& Pool::config() const { return impl_->config; }

}  // namespace quanteval::sandbox
