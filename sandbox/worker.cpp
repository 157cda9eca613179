// Starting a worker: clone() straight into the new namespaces (so the child is
// PID 1 of its PID namespace and the pool's own child, which it can reap),
// build the filesystem view, drop credentials, install seccomp, exec Python.
//
// The pool may be multi-threaded when a worker is (re)started, so between
// clone() and execve() the child runs only raw system calls on data prepared
// beforehand: no allocation, no locks, no stdio (another thread may have held
// the malloc lock at the moment of the clone).
#include "sandbox/worker.hpp"
#include <sys/file.h>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>
#include <linux/seccomp.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sandbox/zygote.hpp"

namespace quanteval::sandbox::detail {
namespace {

// Modules the zygote imports once so that programs do not pay for them. Chosen
// from what HumanEval solutions and tests import; numpy is left out because it
// is rarely used there and would make every fork copy a larger heap.
constexpr const char* kPreloadModules =
    "math,re,string,itertools,collections,functools,heapq,bisect,typing,hashlib,"
    "json,copy,operator,fractions,decimal,statistics,datetime,random";

constexpr std::array kDeniedSyscalls = {
    "ptrace", "mount", "umount", "umount2", "unshare", "setns", "pivot_root", "chroot",
    "kexec_load", "kexec_file_load", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "syslog",
    "userfaultfd", "open_by_handle_at", "name_to_handle_at", "process_vm_readv", "process_vm_writev",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fsopen", "fsmount", "fsconfig", "fspick",
    "move_mount", "open_tree", "mount_setattr", "sethostname", "setdomainname", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "quotactl", "lookup_dcookie", "iopl", "ioperm",
    "vhangup", "nfsservctl", "uselib"};

constexpr int kWantedNamespaces = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

std::string errno_name(int error) { return fmt::format("{} ({})", strerrorname_np(error) ? strerrorname_np(error) : "?", std::strerror(error)); }

// Builds the seccomp program in the parent (libseccomp allocates) and exports
// it as raw BPF so the cloned child only needs one prctl().
std::vector<sock_filter> build_seccomp_program(std::vector<std::string>& notes, bool refuse_kill_all) {
  scmp_filter_ctx context = seccomp_init(SCMP_ACT_ALLOW);
  if (!context) {
    notes.push_back("seccomp_init failed; no seccomp filter");
    return {};
  }
  auto release = [&] { seccomp_release(context); };
  for (const char* name : kDeniedSyscalls) {
    int number = seccomp_syscall_resolve_name(name);
    if (number == __NR_SCMP_ERROR) continue;  // not on this architecture
    if (int rc = seccomp_rule_add(context, SCMP_ACT_ERRNO(EPERM), number, 0); rc < 0) {
      notes.push_back(fmt::format("seccomp rule for {} failed: {}", name, -rc));
    }
  }
  // New namespaces via clone(): a program holding CAP_SYS_ADMIN in a user
  // namespace of its own could mount over the read-only view. clone3 passes its
  // flags in memory seccomp cannot inspect, so it reports ENOSYS and libc falls
  // back to clone, whose flags we can check.
  for (int flag : {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP}) {
    seccomp_rule_add(context, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                     SCMP_A0(SCMP_CMP_MASKED_EQ, static_cast<scmp_datum_t>(flag), static_cast<scmp_datum_t>(flag)));
  }
  if (refuse_kill_all) {
    // Without a PID namespace kill(-1) would reach every process of the uid --
    // the pool's own process included when not started as root. The kernel
    // reads the pid as a 32-bit int, so compare only the low 32 bits.
    seccomp_rule_add(context, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                     SCMP_A0(SCMP_CMP_MASKED_EQ, scmp_datum_t{0xffffffffu}, scmp_datum_t{0xffffffffu}));
  }
  int clone3 = seccomp_syscall_resolve_name("clone3");
  if (clone3 != __NR_SCMP_ERROR) seccomp_rule_add(context, SCMP_ACT_ERRNO(ENOSYS), clone3, 0);

  int memory_file = memfd_create("quanteval-seccomp", MFD_CLOEXEC);
  std::vector<sock_filter> program;
  if (memory_file < 0 || seccomp_export_bpf(context, memory_file) < 0) {
    notes.push_back("seccomp_export_bpf failed; no seccomp filter");
  } else {
    off_t size = lseek(memory_file, 0, SEEK_END);
    program.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
    if (pread(memory_file, program.data(), program.size() * sizeof(sock_filter), 0) !=
        static_cast<ssize_t>(program.size() * sizeof(sock_filter))) {
      notes.push_back("reading the exported seccomp program failed; no seccomp filter");
      program.clear();
    }
  }
  if (memory_file >= 0) close(memory_file);
  release();
  return program;
}

long raw_clone(int flags) { return syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr); }

// 0 when clone() with these flags works, else its errno.
int probe_clone(int flags) {
  long pid = raw_clone(flags);
  if (pid < 0) return errno;
  if (pid == 0) _exit(0);
  int status = 0;
  while (waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
  }
  return 0;
}

const char* namespace_name(int flag) {
  switch (flag) {
    case CLONE_NEWPID: return "CLONE_NEWPID";
    case CLONE_NEWNS: return "CLONE_NEWNS";
    case CLONE_NEWNET: return "CLONE_NEWNET";
    case CLONE_NEWIPC: return "CLONE_NEWIPC";
    case CLONE_NEWUTS: return "CLONE_NEWUTS";
    case CLONE_NEWUSER: return "CLONE_NEWUSER";
  }
  return "?";
}

// ---- the cloned child -------------------------------------------------------

struct ChildPlan {
  int clone_flags;
  bool user_namespace;
  bool change_credentials;
  uid_t uid;
  gid_t gid;
  const char* uid_map;
  const char* gid_map;
  const char* tmpfs_options;
  const char* shm_options;
  const sock_fprog* seccomp;  // nullptr: none
  int channel_fd;
  int error_fd;
  const char* python;
  char* const* argv;
  char* const* envp;
};

int write_small_file(const char* path, const char* text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t length = static_cast<ssize_t>(std::strlen(text));
  int result = write(fd, text, static_cast<std::size_t>(length)) == length ? 0 : errno;
  close(fd);
  return result;
}

int result_of(int rc) { return rc == 0 ? 0 : (errno ? errno : EINVAL); }

void write_text(int fd, const char* text) {
  ssize_t ignored = write(fd, text, std::strlen(text));
  (void)ignored;
}

void write_number(int fd, int value) {
  char digits[16];
  int n = 0;
  unsigned magnitude = value < 0 ? static_cast<unsigned>(-value) : static_cast<unsigned>(value);
  do {
    digits[n++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude && n < 15);
  if (value < 0) write_text(fd, "-");
  while (n) {
    ssize_t ignored = write(fd, &digits[--n], 1);
    (void)ignored;
  }
}

[[noreturn]] void run_child(const ChildPlan& plan) {
  SetupReport report;
  report.magic = kSetupReportMagic;
  int dev_null = open("/dev/null", O_RDWR | O_CLOEXEC);

  if (plan.user_namespace) {
    // An unprivileged process may map exactly its own uid/gid, and only after
    // giving up setgroups().
    int a = write_small_file("/proc/self/setgroups", "deny");
    int b = write_small_file("/proc/self/uid_map", plan.uid_map);
    int c = write_small_file("/proc/self/gid_map", plan.gid_map);
    report.uid_map = a ? a : (b ? b : c);
  }

  if (plan.clone_flags & CLONE_NEWNS) {
    // Private propagation first, or our mounts would appear on the host.
    report.mount_private = result_of(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
    if (report.mount_private == 0) {
      if (plan.clone_flags & CLONE_NEWPID) {
        // A fresh /proc shows only this namespace's processes.
        report.proc = result_of(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
      }
      report.tmpfs = result_of(mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, plan.tmpfs_options));
      report.shm = result_of(mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, plan.shm_options));
      if (report.tmpfs == 0) {
        // Everything read-only (recursively: every submount), then the two
        // scratch areas writable again.
        mount_attr read_only{};
        read_only.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;
        report.readonly = result_of(mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &read_only, sizeof read_only));
        if (report.readonly != 0) {
          report.readonly_fallback =
              result_of(mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID, nullptr));
          if (report.readonly_fallback == 0) {
            mount(nullptr, "/tmp", nullptr, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV, nullptr);
          }
        } else {
          mount_attr writable{};
          writable.attr_clr = MOUNT_ATTR_RDONLY;
          int tmp_rw = result_of(mount_setattr(AT_FDCWD, "/tmp", 0, &writable, sizeof writable));
          if (report.shm == 0) mount_setattr(AT_FDCWD, "/dev/shm", 0, &writable, sizeof writable);
          if (tmp_rw != 0) report.tmpfs = tmp_rw;
        }
      }
    }
  }
  if (plan.clone_flags & CLONE_NEWUTS) report.hostname = result_of(sethostname("sandbox", 7));
  if (chdir("/") != 0) {
  }

  if (plan.change_credentials) {
    // Raw system calls: glibc's setresuid() in a process it believes to be
    // multi-threaded signals every other thread and waits for them -- threads
    // that do not exist in this child, so it would wait forever.
    int groups = plan.user_namespace ? 0 : result_of(static_cast<int>(syscall(SYS_setgroups, 0, nullptr)));
    int gid = result_of(static_cast<int>(syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid)));
    int uid = result_of(static_cast<int>(syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid)));
    report.credentials = groups ? groups : (gid ? gid : uid);
  }
  report.no_new_privs = result_of(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  if (plan.seccomp) report.seccomp = result_of(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, plan.seccomp));

  // fds: 0 and 1 /dev/null, 2 the error pipe, 3 the channel, nothing else.
  int channel = fcntl(plan.channel_fd, F_DUPFD_CLOEXEC, 10);
  int errors = fcntl(plan.error_fd, F_DUPFD_CLOEXEC, 10);
  int null_fd = fcntl(dev_null, F_DUPFD_CLOEXEC, 10);
  dup2(null_fd, 0);
  dup2(null_fd, 1);
  dup2(errors, 2);
  dup2(channel, 3);
  if (syscall(SYS_close_range, 4u, ~0u, 0u) != 0) {
    for (int fd = 4; fd < 4096; ++fd) close(fd);
  }
  ssize_t sent = write(3, &report, sizeof report);
  (void)sent;
  execve(plan.python, plan.argv, plan.envp);
  int error = errno;
  write_text(2, "quanteval sandbox: cannot execute ");
  write_text(2, plan.python);
  write_text(2, ": errno ");
  write_number(2, error);
  write_text(2, "\n");
  _exit(127);
}

void close_fd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

IsolationPlan plan_namespaces();

}  // namespace

IsolationPlan plan_isolation() {
  IsolationPlan plan = plan_namespaces();
  plan.seccomp_program = build_seccomp_program(plan.notes, !(plan.clone_flags & CLONE_NEWPID));
  return plan;
}

namespace {
IsolationPlan plan_namespaces() {
  IsolationPlan plan;
  plan.started_as_root = geteuid() == 0;
  plan.outer_uid = geteuid();
  plan.outer_gid = getegid();

  // As root we create the namespaces directly; otherwise (or when root lacks
  // CAP_SYS_ADMIN, as in some containers) through a user namespace.
  std::vector<int> attempts;
  if (plan.started_as_root) attempts.push_back(kWantedNamespaces);
  attempts.push_back(kWantedNamespaces | CLONE_NEWUSER);
  for (int flags : attempts) {
    int error = probe_clone(flags);
    if (error == 0) {
      plan.clone_flags = flags;
      plan.user_namespace = (flags & CLONE_NEWUSER) != 0;
      if (plan.user_namespace && plan.started_as_root) {
        plan.notes.push_back("running as root but namespaces need a user namespace here");
      }
      return plan;
    }
    plan.notes.push_back(fmt::format("clone(all namespaces{}): {}", (flags & CLONE_NEWUSER) ? " + CLONE_NEWUSER" : "",
                                     errno_name(error)));
  }
  // Something is refused: find out which namespaces can be had one by one.
  int base = 0;
  if (!plan.started_as_root) {
    if (int error = probe_clone(CLONE_NEWUSER); error == 0) {
      base = CLONE_NEWUSER;
    } else {
      plan.notes.push_back(fmt::format("clone(CLONE_NEWUSER): {}", errno_name(error)));
    }
  }
  int granted = base;
  for (int flag : {CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS}) {
    int error = probe_clone(base | flag);
    if (error == 0) {
      granted |= flag;
    } else {
      plan.notes.push_back(fmt::format("clone({}): {}", namespace_name(flag), errno_name(error)));
    }
  }
  if (granted != base && probe_clone(granted) != 0) {
    plan.notes.push_back("the namespaces work one at a time but not together; running without them");
    granted = 0;
  }
  plan.clone_flags = granted;
  plan.user_namespace = (granted & CLONE_NEWUSER) != 0;
  if (granted == 0) plan.notes.push_back("no namespaces: programs run with rlimits and seccomp only");
  return plan;
}
}  // namespace

UidLease::~UidLease() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

UidLease::UidLease(UidLease&& other) noexcept : lock_fd_(other.lock_fd_), uid_(other.uid_) { other.lock_fd_ = -1; }

UidLease& UidLease::operator=(UidLease&& other) noexcept {
  if (this != &other) {
    if (lock_fd_ >= 0) ::close(lock_fd_);
    lock_fd_ = other.lock_fd_;
    uid_ = other.uid_;
    other.lock_fd_ = -1;
  }
  return *this;
}

UidLease UidLease::acquire() {
  // /run/lock is a root-owned tmpfs on Debian: leases vanish with a reboot and
  // with the process holding them (flock is released when the fd closes).
  std::filesystem::path dir = std::filesystem::exists("/run/lock") ? "/run/lock/quanteval-sandbox" : "/tmp/quanteval-sandbox-locks";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  for (uid_t offset = 0; offset < kWorkerUidCount; ++offset) {
    const uid_t uid = kWorkerUidBase + offset;
    const std::string path = (dir / fmt::format("uid-{}", uid)).string();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw SandboxError(fmt::format("cannot create the uid lease file {}: {}", path, std::strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      UidLease lease;
      lease.lock_fd_ = fd;
      lease.uid_ = uid;
      return lease;
    }
    ::close(fd);
  }
  throw SandboxError(fmt::format("all {} sandbox worker uids from {} are in use", kWorkerUidCount, kWorkerUidBase));
}

WorkerProcess::WorkerProcess(const IsolationPlan& plan, const std::string& python, int index)
    : plan_(plan), python_(python), index_(index) {
  if (plan_.started_as_root && !plan_.user_namespace) uid_lease_ = UidLease::acquire();
}

WorkerProcess::~WorkerProcess() { stop(); }

void WorkerProcess::stop() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  close_fd(channel_);
  close_fd(error_output_);
  if (!host_scratch_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(host_scratch_, ignored);
    host_scratch_.clear();
  }
}

void WorkerProcess::start(std::chrono::milliseconds hello_timeout) {
  stop();
  const bool own_ids = plan_.started_as_root || plan_.user_namespace;
  // As root each worker has a leased uid of its own; in a user namespace the
  // inner id only needs to differ from 0 (it maps to our own uid outside).
  const uid_t inner_id = uid_lease_.uid() != 0 ? uid_lease_.uid() : kWorkerUidBase + static_cast<uid_t>(index_);
  const uid_t uid = own_ids ? inner_id : plan_.outer_uid;
  const gid_t gid = own_ids ? static_cast<gid_t>(inner_id) : plan_.outer_gid;

  std::string scratch = "/tmp";
  std::string extra_scratch = "/dev/shm";
  if (!(plan_.clone_flags & CLONE_NEWNS)) {
    // No private tmpfs possible: a host directory of our own instead.
    char pattern[] = "/tmp/quanteval-sandbox-XXXXXX";
    if (!mkdtemp(pattern)) throw SandboxError(fmt::format("mkdtemp: {}", std::strerror(errno)));
    host_scratch_ = pattern;
    if (plan_.started_as_root && chown(pattern, uid, gid) != 0) {
      throw SandboxError(fmt::format("chown {}: {}", pattern, std::strerror(errno)));
    }
    scratch = host_scratch_;
    extra_scratch.clear();
  }
  const std::string uid_map = fmt::format("{} {} 1\n", uid, plan_.outer_uid);
  const std::string gid_map = fmt::format("{} {} 1\n", gid, plan_.outer_gid);
  const std::string tmpfs_options = fmt::format("size={},mode=0700,uid={},gid={}", plan_.scratch_bytes, uid, gid);
  const std::string shm_options = fmt::format("size={},mode=0700,uid={},gid={}", 16 << 20, uid, gid);

  // The environment is built from nothing: no variable of this process leaks.
  std::vector<std::string> environment = {
      "PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=" + scratch, "TMPDIR=" + scratch,
      // One BLAS/OpenMP thread: fits RLIMIT_AS and RLIMIT_NPROC, and several
      // workers already share the cores.
      "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
      // Fixed hash seed: set/dict iteration order repeats from run to run.
      "PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1"};
  std::vector<std::string> arguments = {python_, "-s", "-B", "-c", kZygoteSource, scratch, extra_scratch,
                                        kPreloadModules};
  std::vector<char*> argv, envp;
  for (auto& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);

  sock_fprog seccomp{};
  seccomp.len = static_cast<unsigned short>(plan_.seccomp_program.size());
  seccomp.filter = const_cast<sock_filter*>(plan_.seccomp_program.data());

  int channel_pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel_pair) != 0) {
    throw SandboxError(fmt::format("socketpair: {}", std::strerror(errno)));
  }
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) {
    int error = errno;
    close(channel_pair[0]);
    close(channel_pair[1]);
    throw SandboxError(fmt::format("pipe2: {}", std::strerror(error)));
  }
  ChildPlan child{plan_.clone_flags, plan_.user_namespace, own_ids, uid, gid, uid_map.c_str(), gid_map.c_str(),
                  tmpfs_options.c_str(), shm_options.c_str(), seccomp.len ? &seccomp : nullptr, channel_pair[1],
                  error_pipe[1], python_.c_str(), argv.data(), envp.data()};

  long pid = raw_clone(plan_.clone_flags);
  if (pid == 0) run_child(child);
  int clone_error = errno;
  close(channel_pair[1]);
  close(error_pipe[1]);
  channel_ = channel_pair[0];
  error_output_ = error_pipe[0];
  if (pid < 0) {
    close_fd(channel_);
    close_fd(error_output_);
    throw SandboxError(fmt::format("clone: {}", errno_name(clone_error)));
  }
  pid_ = static_cast<pid_t>(pid);
  fcntl(channel_, F_SETFL, fcntl(channel_, F_GETFL) | O_NONBLOCK);
  fcntl(error_output_, F_SETFL, fcntl(error_output_, F_GETFL) | O_NONBLOCK);

  const auto deadline = std::chrono::steady_clock::now() + hello_timeout;
  std::string failure;
  if (!read_exact(reinterpret_cast<char*>(&setup_), sizeof setup_, deadline, failure) ||
      setup_.magic != kSetupReportMagic || !read_frame(hello_, deadline, failure)) {
    std::string output = drain_error_output();
    stop();
    // The usual cause: an interpreter the worker uid may not read or run (e.g.
    // a pyenv shim under /root); say so instead of leaving a bare errno.
    const bool exec_failed = output.find("cannot execute") != std::string::npos;
    throw SandboxError(fmt::format("sandbox worker {} did not start ({}){}{}{}", index_,
                                   failure.empty() ? "bad setup report" : failure, output.empty() ? "" : ": ", output,
                                   exec_failed ? " -- the worker runs as an unprivileged uid without access to the "
                                                 "caller's home; use a system interpreter such as /usr/bin/python3"
                                               : ""));
  }
  drain_error_output();
}

std::string WorkerProcess::drain_error_output() {
  std::string output;
  if (error_output_ < 0) return output;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(error_output_, buffer, sizeof buffer);
    if (n <= 0) break;
    if (output.size() < 4000) output.append(buffer, static_cast<std::size_t>(n));
  }
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return output;
}

bool WorkerProcess::read_exact(char* data, std::size_t size, std::chrono::steady_clock::time_point deadline,
                               std::string& failure) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = recv(channel_, data + done, size - done, MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {
      failure = "worker closed its channel (it died)";
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      failure = fmt::format("recv: {}", std::strerror(errno));
      return false;
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      failure = "worker did not answer in time";
      return false;
    }
    pollfd waiting{channel_, POLLIN, 0};
    poll(&waiting, 1, static_cast<int>(std::min<long long>(remaining.count() + 1, 1 << 30)));
  }
  return true;
}

bool WorkerProcess::read_frame(std::string& header, std::chrono::steady_clock::time_point deadline,
                               std::string& failure) {
  std::uint32_t length = 0;
  if (!read_exact(reinterpret_cast<char*>(&length), sizeof length, deadline, failure)) return false;
  if (length > (64u << 20)) {
    failure = fmt::format("implausible frame length {}", length);
    return false;
  }
  header.resize(length);
  return read_exact(header.data(), length, deadline, failure);
}

bool WorkerProcess::exchange(const std::string& request, std::chrono::steady_clock::time_point deadline, Reply& reply,
                             std::string& failure) {
  if (pid_ <= 0) {
    failure = "worker not running";
    return false;
  }
  std::size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(channel_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      failure = fmt::format("send: {}", std::strerror(errno));
      return false;
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      failure = "worker did not take the request in time";
      return false;
    }
    pollfd waiting{channel_, POLLOUT, 0};
    poll(&waiting, 1, static_cast<int>(remaining.count() + 1));
  }
  if (!read_frame(reply.header, deadline, failure)) {
    std::string output = drain_error_output();
    if (!output.empty()) failure += ": " + output;
    return false;
  }
  std::size_t stdout_length = 0, stderr_length = 0;
  try {
    auto parsed = nlohmann::json::parse(reply.header);
    stdout_length = parsed.value("stdout_len", std::size_t{0});
    stderr_length = parsed.value("stderr_len", std::size_t{0});
  } catch (const std::exception& error) {
    failure = fmt::format("unreadable reply from worker: {}", error.what());
    return false;
  }
  if (stdout_length > (64u << 20) || stderr_length > (64u << 20)) {
    failure = "implausible output length in reply";
    return false;
  }
  reply.stdout_bytes.resize(stdout_length);
  reply.stderr_bytes.resize(stderr_length);
  return read_exact(reply.stdout_bytes.data(), stdout_length, deadline, failure) &&
         read_exact(reply.stderr_bytes.data(), stderr_length, deadline, failure);
}

}  // namespace quanteval::sandbox::detail
