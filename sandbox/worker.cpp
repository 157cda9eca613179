// Starting a worker: clone() straight into the new namespaces (so the child is
// PID 1 of its PID namespace and the pool's own child, which it can reap),
// build the filesystem view, drop credentials, install seccomp, exec Python.
//
// The pool may be multi-threaded when a worker is (re)started, so between
// clone() and execve() the child runs only raw system calls on data prepared
// beforehand: no allocation, no locks, no stdio (another thread may have held
// the malloc lock at the moment of the clone).
#include "sandbox/worker.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <set>

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

constexpr std::array kDeniedSyscalls = {"ptrace",
                                        "mount",
                                        "umount",
                                        "umount2",
                                        "unshare",
                                        "setns",
                                        "pivot_root",
                                        "chroot",
                                        "kexec_load",
                                        "kexec_file_load",
                                        "bpf",
                                        "perf_event_open",
                                        "keyctl",
                                        "add_key",
                                        "request_key",
                                        "init_module",
                                        "finit_module",
                                        "delete_module",
                                        "reboot",
                                        "swapon",
                                        "swapoff",
                                        "acct",
                                        "syslog",
                                        "userfaultfd",
                                        "open_by_handle_at",
                                        "name_to_handle_at",
                                        "process_vm_readv",
                                        "process_vm_writev",
                                        "io_uring_setup",
                                        "io_uring_enter",
                                        "io_uring_register",
                                        "fsopen",
                                        "fsmount",
                                        "fsconfig",
                                        "fspick",
                                        "move_mount",
                                        "open_tree",
                                        "mount_setattr",
                                        "sethostname",
                                        "setdomainname",
                                        "settimeofday",
                                        "clock_settime",
                                        "clock_adjtime",
                                        "adjtimex",
                                        "quotactl",
                                        "lookup_dcookie",
                                        "iopl",
                                        "ioperm",
                                        "vhangup",
                                        "nfsservctl",
                                        "uselib"};

constexpr int kWantedNamespaces = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;

// The host device nodes bound into the private /dev.
constexpr std::array kDeviceNodes = {"null", "zero", "full", "random", "urandom"};

std::string errno_name(int error) {
  return fmt::format("{} ({})", strerrorname_np(error) ? strerrorname_np(error) : "?", std::strerror(error));
}

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
  for (int flag :
       {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP}) {
    seccomp_rule_add(context, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                     SCMP_A0(SCMP_CMP_MASKED_EQ, static_cast<scmp_datum_t>(flag), static_cast<scmp_datum_t>(flag)));
  }
  // Sockets only of the families a Python program has a use for. The network
  // namespace has no route anywhere, but netlink, packet, vsock, bluetooth, ...
  // sockets reach kernel code (and, for vsock, the hypervisor) regardless.
  // Allowed: AF_UNIX (1), AF_INET (2), AF_INET6 (10). The comparisons are on
  // the whole 64-bit register, so a family with garbage in its upper half is
  // refused too (the kernel would read only the low half).
  for (int call : {SCMP_SYS(socket), SCMP_SYS(socketpair)}) {
    for (scmp_datum_t family : {0, 3, 4, 5, 6, 7, 8, 9}) {
      seccomp_rule_add(context, SCMP_ACT_ERRNO(EAFNOSUPPORT), call, 1, SCMP_A0(SCMP_CMP_EQ, family));
    }
    seccomp_rule_add(context, SCMP_ACT_ERRNO(EAFNOSUPPORT), call, 1, SCMP_A0(SCMP_CMP_GE, scmp_datum_t{11}));
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

// One step of building the view, replayed by the child with raw system calls.
// Paths are absolute host paths below the build point.
struct ViewStep {
  enum class Op { make_dir, make_file, make_link, bind, remount_readonly, mount } op;
  const char* target;
  const char* source;   // bind: host path; make_link: link text; mount: device name
  const char* fs_type;  // mount only
  const char* data;     // mount only
  unsigned long flags;
  bool optional;                            // a failure is recorded in `report_field` but does not abandon the view
  std::int32_t SetupReport::*report_field;  // nullptr: none
};

// Which zygote argument lists the child may choose from, by what it managed
// to mount: the extra scratch areas the zygote wipes after each program.
enum ExtraScratch { kExtraNone = 0, kExtraShm = 1, kExtraMqueue = 2 };

struct ChildPlan {
  int clone_flags;
  bool user_namespace;
  bool change_credentials;
  uid_t uid;
  gid_t gid;
  const char* uid_map;
  const char* gid_map;
  const char* tmpfs_options;  // the read-only host view's scratch mounts
  const char* shm_options;
  const ViewStep* view_steps;  // nullptr: no allow-list view
  std::size_t view_step_count;
  const char* build_point;
  const char* const* writable_in_view;  // nullptr-terminated: mounts that stay writable
  const sock_fprog* seccomp;            // nullptr: none
  int channel_fd;
  int error_fd;
  const char* python;
  char** argv;                       // argv[kExtraArgument] is chosen by the child from extra_scratch
  const char* const* extra_scratch;  // indexed by ExtraScratch bits
  char* const* envp;
};
constexpr std::size_t kExtraArgument = 6;

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

int run_view_step(const ViewStep& step) {
  switch (step.op) {
    case ViewStep::Op::make_dir:
      if (mkdir(step.target, 0755) == 0 || errno == EEXIST) return 0;
      return errno;
    case ViewStep::Op::make_file: {
      const int fd = open(step.target, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd >= 0) {
        close(fd);
        return 0;
      }
      return errno == EEXIST ? 0 : errno;
    }
    case ViewStep::Op::make_link:
      if (symlink(step.source, step.target) == 0 || errno == EEXIST) return 0;
      return errno;
    case ViewStep::Op::bind: return result_of(mount(step.source, step.target, nullptr, MS_BIND | MS_REC, nullptr));
    case ViewStep::Op::remount_readonly:
      // Right after its bind, so that nothing done while building the view can
      // write through it to the host.
      return result_of(mount(nullptr, step.target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | step.flags, nullptr));
    case ViewStep::Op::mount: return result_of(mount(step.source, step.target, step.fs_type, step.flags, step.data));
  }
  return EINVAL;
}

// Builds the allow-list view and makes it the root. 0 on success; otherwise
// nothing of it is left mounted and the host view stays in place.
int build_view(const ChildPlan& plan, SetupReport& report) {
  for (std::size_t i = 0; i < plan.view_step_count; ++i) {
    const ViewStep& step = plan.view_steps[i];
    const int error = run_view_step(step);
    if (step.report_field) report.*(step.report_field) = error;
    if (error != 0 && !step.optional) {
      report.view_failed_step = static_cast<std::int32_t>(i);
      umount2(plan.build_point, MNT_DETACH);
      return error;
    }
  }
  // pivot_root(".", "."): the new root goes on top of the old one, which is
  // then detached -- no host path stays reachable.
  int error = 0;
  if (chdir(plan.build_point) != 0 || syscall(SYS_pivot_root, ".", ".") != 0) {
    error = errno ? errno : EINVAL;
  } else if (umount2(".", MNT_DETACH) != 0) {
    error = errno ? errno : EINVAL;
  }
  if (chdir("/") != 0 && error == 0) error = errno;
  if (error != 0) {
    report.view_failed_step = static_cast<std::int32_t>(plan.view_step_count);  // the pivot
    umount2(plan.build_point, MNT_DETACH);
    return error;
  }
  mount_attr read_only{};
  read_only.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;
  report.readonly = result_of(mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &read_only, sizeof read_only));
  mount_attr writable{};
  writable.attr_clr = MOUNT_ATTR_RDONLY;
  for (const char* const* path = plan.writable_in_view; *path; ++path) {
    const int rc = result_of(mount_setattr(AT_FDCWD, *path, 0, &writable, sizeof writable));
    if (rc != 0 && std::strcmp(*path, "/tmp") == 0) report.tmpfs = rc;
  }
  return 0;
}

// The view of the older design, used when the allow-list view cannot be
// built: the host's whole filesystem read-only, private /tmp and /dev/shm.
void build_readonly_host_view(const ChildPlan& plan, SetupReport& report) {
  if (plan.clone_flags & CLONE_NEWPID) {
    // A fresh /proc shows only this namespace's processes.
    report.proc = result_of(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
  }
  report.tmpfs = result_of(mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, plan.tmpfs_options));
  report.shm = result_of(mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, plan.shm_options));
  if (report.tmpfs != 0) return;
  // Everything read-only (recursively: every submount), then the two scratch
  // areas writable again.
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

  int extra = kExtraNone;
  if (plan.clone_flags & CLONE_NEWNS) {
    // Private propagation first, or our mounts would appear on the host.
    report.mount_private = result_of(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
    if (report.mount_private == 0) {
      if (plan.view_steps) report.view = build_view(plan, report);
      if (report.view == 0) {
        if (report.shm == 0) extra |= kExtraShm;
        if (report.mqueue == 0) extra |= kExtraMqueue;
      } else {
        report.proc = report.tmpfs = report.shm = report.ptys = report.mqueue = -1;
        build_readonly_host_view(plan, report);
        if (report.shm == 0) extra |= kExtraShm;
      }
    }
  }
  plan.argv[kExtraArgument] = const_cast<char*>(plan.extra_scratch[extra]);
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

// Closes the descriptors it holds when it goes out of scope.
struct FdSet {
  std::vector<int> fds;
  ~FdSet() {
    for (int fd : fds)
      if (fd >= 0) close(fd);
  }
  int add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  void close_now(int& fd) {
    for (int& held : fds)
      if (held == fd) held = -1;
    close_fd(fd);
  }
};

// Everything below `folder` on the way to `path`, outermost first
// ("/a/b/c" under "/" -> "/a", "/a/b").
std::vector<std::string> parents_of(const std::string& path) {
  std::vector<std::string> parents;
  for (std::size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    parents.push_back(path.substr(0, slash));
  }
  return parents;
}

// The allow-list view (see view.hpp) as raw steps for the cloned child, with
// the strings they point to (a deque: pointers stay valid while it grows).
struct ViewSteps {
  std::deque<std::string> text;
  std::vector<ViewStep> steps;
  std::vector<const char*> writable;  // nullptr-terminated: mounts that stay writable
};

void build_view_steps(const IsolationPlan& plan, const std::string& tmpfs_options, const std::string& shm_options,
                      ViewSteps& out) {
  auto keep = [&out](std::string value) { return out.text.emplace_back(std::move(value)).c_str(); };
  std::vector<ViewStep>& steps = out.steps;
  std::vector<const char*>& writable_in_view = out.writable;
  const std::string& build = plan.view.build_point;
  std::set<std::string> made;
  auto in_view = [&](const std::string& path) { return build + path; };
  auto make_parents = [&](const std::string& path) {
    for (const auto& parent : parents_of(path)) {
      if (made.insert(parent).second) {
        steps.push_back({ViewStep::Op::make_dir, keep(in_view(parent)), nullptr, nullptr, nullptr, 0, false, nullptr});
      }
    }
  };
  auto add_mount = [&](const std::string& path, const char* device, const char* type, const std::string& data,
                       unsigned long flags, bool optional, std::int32_t SetupReport::*field) {
    make_parents(path);
    steps.push_back({ViewStep::Op::make_dir, keep(in_view(path)), nullptr, nullptr, nullptr, 0, optional, field});
    made.insert(path);
    steps.push_back({ViewStep::Op::mount, keep(in_view(path)), device, type, keep(data), flags, optional, field});
  };
  steps.push_back({ViewStep::Op::mount, keep(build), "tmpfs", "tmpfs", "size=16m,nr_inodes=4096,mode=0755",
                   MS_NOSUID | MS_NODEV, false, nullptr});
  for (const auto& entry : plan.view.entries) {
    make_parents(entry.path);
    const char* target = keep(in_view(entry.path));
    switch (entry.kind) {
      case ViewPlan::Entry::Kind::bind_dir:
      case ViewPlan::Entry::Kind::bind_file:
        steps.push_back(
            {entry.kind == ViewPlan::Entry::Kind::bind_dir ? ViewStep::Op::make_dir : ViewStep::Op::make_file, target,
             nullptr, nullptr, nullptr, 0, false, nullptr});
        made.insert(entry.path);
        steps.push_back({ViewStep::Op::bind, target, keep(entry.path), nullptr, nullptr, 0, false, nullptr});
        steps.push_back(
            {ViewStep::Op::remount_readonly, target, nullptr, nullptr, nullptr, MS_NOSUID | MS_NODEV, false, nullptr});
        break;
      case ViewPlan::Entry::Kind::mask:
        steps.push_back({ViewStep::Op::make_dir, target, nullptr, nullptr, nullptr, 0, false, nullptr});
        made.insert(entry.path);
        steps.push_back({ViewStep::Op::mount, target, "tmpfs", "tmpfs", "size=4k,nr_inodes=64,mode=0755",
                         MS_NOSUID | MS_NODEV, false, nullptr});
        break;
      case ViewPlan::Entry::Kind::symlink:
        steps.push_back({ViewStep::Op::make_link, target, keep(entry.target), nullptr, nullptr, 0, false, nullptr});
        break;
    }
  }
  // Empty, read-only stand-ins for the usual top-level folders.
  for (const char* folder : {"/etc", "/home", "/root", "/run", "/var"}) {
    if (made.insert(folder).second) {
      steps.push_back({ViewStep::Op::make_dir, keep(in_view(folder)), nullptr, nullptr, nullptr, 0, false, nullptr});
    }
  }
  // A fresh /proc (showing only this namespace's processes where there is a PID namespace).
  add_mount("/proc", "proc", "proc", "", MS_NOSUID | MS_NODEV | MS_NOEXEC, false, &SetupReport::proc);
  // A private /dev: a few host device nodes, a devpts instance of its own
  // (ptys counted against our small max, not the host's), shm and mqueue.
  add_mount("/dev", "tmpfs", "tmpfs", "size=64k,nr_inodes=64,mode=0755", MS_NOSUID | MS_NOEXEC, false, nullptr);
  for (const char* node : kDeviceNodes) {
    const std::string path = std::string("/dev/") + node;
    steps.push_back({ViewStep::Op::make_file, keep(in_view(path)), nullptr, nullptr, nullptr, 0, false, nullptr});
    steps.push_back({ViewStep::Op::bind, keep(in_view(path)), keep(path), nullptr, nullptr, 0, false, nullptr});
  }
  add_mount("/dev/pts", "devpts", "devpts", fmt::format("newinstance,ptmxmode=0666,mode=0620,max={}", kMaxPtys),
            MS_NOSUID | MS_NOEXEC, true, &SetupReport::ptys);
  steps.push_back(
      {ViewStep::Op::make_link, keep(in_view("/dev/ptmx")), "pts/ptmx", nullptr, nullptr, 0, false, nullptr});
  for (const auto& [name, link] : std::array<std::pair<const char*, const char*>, 4>{{{"fd", "/proc/self/fd"},
                                                                                      {"stdin", "/proc/self/fd/0"},
                                                                                      {"stdout", "/proc/self/fd/1"},
                                                                                      {"stderr", "/proc/self/fd/2"}}}) {
    steps.push_back({ViewStep::Op::make_link, keep(in_view(std::string("/dev/") + name)), link, nullptr, nullptr, 0,
                     false, nullptr});
  }
  add_mount("/dev/shm", "tmpfs", "tmpfs", shm_options, MS_NOSUID | MS_NODEV | MS_NOEXEC, true, &SetupReport::shm);
  if (plan.clone_flags & CLONE_NEWIPC) {
    // This IPC namespace's POSIX message queues, so the cleaner can remove them.
    add_mount("/dev/mqueue", "mqueue", "mqueue", "", MS_NOSUID | MS_NODEV | MS_NOEXEC, true, &SetupReport::mqueue);
  }
  add_mount("/tmp", "tmpfs", "tmpfs", tmpfs_options, MS_NOSUID | MS_NODEV, false, &SetupReport::tmpfs);
  writable_in_view = {"/tmp", "/dev/shm", "/dev/pts"};
  if (plan.clone_flags & CLONE_NEWIPC) writable_in_view.push_back("/dev/mqueue");
  writable_in_view.push_back(nullptr);
}

IsolationPlan plan_namespaces();

}  // namespace

std::vector<std::string> worker_environment(const std::string& scratch) {
  // The environment is built from nothing: no variable of this process leaks.
  return {"PATH=/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=" + scratch, "TMPDIR=" + scratch,
          // One BLAS/OpenMP thread: fits RLIMIT_AS and RLIMIT_NPROC, and several
          // workers already share the cores.
          "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1",
          // Fixed hash seed: set/dict iteration order repeats from run to run.
          "PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1"};
}

IsolationPlan plan_isolation(const Config& config) {
  IsolationPlan plan = plan_namespaces();
  plan.seccomp_program = build_seccomp_program(plan.notes, !(plan.clone_flags & CLONE_NEWPID));
  if (plan.clone_flags & CLONE_NEWNS) {
    plan.view = plan_view(config.python, worker_environment("/tmp"), config.hidden_paths);
    for (const auto& note : plan.view.notes) plan.notes.push_back(note);
  }
  // Memory cgroups need the host's cgroup files, which only root may normally
  // write; in a user namespace (not root) they are rarely delegated.
  plan.cgroups = detect_memory_cgroups();
  if (plan.cgroups.version == CgroupHost::Version::none) {
    plan.notes.push_back(
        "no memory cgroup (the program tree's total memory is not bounded, only each process's "
        "address space): " +
        plan.cgroups.note);
  }
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
  std::filesystem::path dir =
      std::filesystem::exists("/run/lock") ? "/run/lock/quanteval-sandbox" : "/tmp/quanteval-sandbox-locks";
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
  cgroup_ = ProgramCgroup::create(plan_.cgroups, fmt::format("w{}", index_));
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
  inbox_.clear();
  cleaning_ = false;
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
  if (!(plan_.clone_flags & CLONE_NEWNS)) {
    // No private tmpfs possible: a host directory of our own instead.
    char pattern[] = "/tmp/quanteval-sandbox-XXXXXX";
    if (!mkdtemp(pattern)) throw SandboxError(fmt::format("mkdtemp: {}", std::strerror(errno)));
    host_scratch_ = pattern;
    if (plan_.started_as_root && chown(pattern, uid, gid) != 0) {
      throw SandboxError(fmt::format("chown {}: {}", pattern, std::strerror(errno)));
    }
    scratch = host_scratch_;
  }
  const std::string uid_map = fmt::format("{} {} 1\n", uid, plan_.outer_uid);
  const std::string gid_map = fmt::format("{} {} 1\n", gid, plan_.outer_gid);
  // Every tmpfs has a size and an inode limit: nothing a program leaves behind
  // (files, directories, extended attributes) can grow without bound.
  const std::string tmpfs_options =
      fmt::format("size={},nr_inodes={},mode=0700,uid={},gid={}", plan_.scratch_bytes, kScratchInodes, uid, gid);
  const std::string shm_options =
      fmt::format("size={},nr_inodes={},mode=0700,uid={},gid={}", kShmBytes, kShmInodes, uid, gid);

  ViewSteps view;
  const bool with_view = (plan_.clone_flags & CLONE_NEWNS) && plan_.view.usable();
  if (with_view) {
    build_view_steps(plan_, tmpfs_options, shm_options, view);
  } else {
    view.writable.push_back(nullptr);
  }
  const std::vector<ViewStep>& steps = view.steps;

  const std::vector<std::string> environment = worker_environment(scratch);
  // argv[kExtraArgument] (the extra scratch areas) is picked by the child.
  const bool sweep_ipc = (plan_.clone_flags & CLONE_NEWIPC) != 0;
  std::vector<std::string> arguments = {
      python_, "-s", "-B", "-c", kZygoteSource, scratch, "", kPreloadModules, sweep_ipc ? "1" : "0"};
  const std::array<const char*, 4> extra_scratch = {"", "/dev/shm", "/dev/mqueue", "/dev/shm:/dev/mqueue"};
  std::vector<char*> argv, envp;
  for (auto& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> environment_copy = environment;
  for (auto& e : environment_copy) envp.push_back(e.data());
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
  ChildPlan child{plan_.clone_flags,
                  plan_.user_namespace,
                  own_ids,
                  uid,
                  gid,
                  uid_map.c_str(),
                  gid_map.c_str(),
                  tmpfs_options.c_str(),
                  shm_options.c_str(),
                  with_view ? steps.data() : nullptr,
                  steps.size(),
                  plan_.view.build_point.c_str(),
                  view.writable.data(),
                  seccomp.len ? &seccomp : nullptr,
                  channel_pair[1],
                  error_pipe[1],
                  python_.c_str(),
                  argv.data(),
                  extra_scratch.data(),
                  envp.data()};

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
  oom_kills_seen_ = cgroup_.oom_kills();
  view_failure_.clear();
  if (setup_.view > 0 && setup_.view_failed_step >= 0) {
    const auto step = static_cast<std::size_t>(setup_.view_failed_step);
    view_failure_ = step < steps.size() ? fmt::format("step {} on {}", step, steps[step].target)
                                        : std::string("pivot_root into the view");
  }
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

bool WorkerProcess::fill_inbox(std::size_t wanted, std::chrono::steady_clock::time_point deadline,
                               std::string& failure) {
  char buffer[8192];
  while (inbox_.size() < wanted) {
    ssize_t n = recv(channel_, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      inbox_.append(buffer, static_cast<std::size_t>(n));
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

bool WorkerProcess::read_exact(char* data, std::size_t size, std::chrono::steady_clock::time_point deadline,
                               std::string& failure) {
  if (!fill_inbox(size, deadline, failure)) return false;
  std::memcpy(data, inbox_.data(), size);
  inbox_.erase(0, size);
  return true;
}

bool WorkerProcess::take_frame(std::string& frame) {
  std::uint32_t length = 0;
  if (inbox_.size() < sizeof length) return false;
  std::memcpy(&length, inbox_.data(), sizeof length);
  if (inbox_.size() < sizeof length + length) return false;
  frame.assign(inbox_, sizeof length, length);
  inbox_.erase(0, sizeof length + length);
  return true;
}

bool WorkerProcess::read_frame(std::string& frame, std::chrono::steady_clock::time_point deadline,
                               std::string& failure) {
  std::uint32_t length = 0;
  if (!fill_inbox(sizeof length, deadline, failure)) return false;
  std::memcpy(&length, inbox_.data(), sizeof length);
  if (length > (64u << 20)) {
    failure = fmt::format("implausible frame length {}", length);
    return false;
  }
  if (!fill_inbox(sizeof length + length, deadline, failure)) return false;
  return take_frame(frame);
}

bool WorkerProcess::wait_until_clean(std::chrono::steady_clock::time_point deadline, std::string& why) {
  if (!running()) return false;
  if (!cleaning_) return true;
  std::string frame;
  if (!read_frame(frame, deadline, why)) return false;
  cleaning_ = false;
  try {
    const auto report = nlohmann::json::parse(frame);
    if (report.at("ready").get<bool>()) return true;
    why = report.value("why", std::string("the worker asked to be replaced"));
  } catch (const std::exception& error) {
    why = fmt::format("unreadable cleanup report from worker: {}", error.what());
  }
  return false;
}

bool WorkerProcess::run_program(const std::string& source, const Limits& limits, const std::string& nonce,
                                std::chrono::steady_clock::time_point deadline, ProgramRun& run, std::string& failure) {
  if (pid_ <= 0 || cleaning_) {
    failure = "worker not ready";
    return false;
  }
  try {
    cgroup_.set_limit(limits.memory_bytes ? limits.memory_bytes : limits.address_space_bytes);
  } catch (const SandboxError& error) {
    failure = error.what();
    return false;
  }
  FdSet held;
  // The source in a memfd the child reads: it never passes through the zygote.
  int source_fd = held.add(memfd_create("quanteval-program", MFD_CLOEXEC));
  if (source_fd < 0) {
    failure = fmt::format("memfd_create: {}", std::strerror(errno));
    return false;
  }
  for (std::size_t written = 0; written < source.size();) {
    const ssize_t n = write(source_fd, source.data() + written, source.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = fmt::format("writing the program to its memfd: {}", std::strerror(errno));
      return false;
    }
    written += static_cast<std::size_t>(n);
  }
  // stdout, stderr and the marker: the read ends stay here.
  int pipes[3][2];
  for (auto& pipe_fds : pipes) {
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
      failure = fmt::format("pipe2: {}", std::strerror(errno));
      return false;
    }
    held.add(pipe_fds[0]);
    held.add(pipe_fds[1]);
    fcntl(pipe_fds[0], F_SETFL, fcntl(pipe_fds[0], F_GETFL) | O_NONBLOCK);
  }

  const nlohmann::json header = {
      {"nonce", nonce},
      {"limits",
       {{"wall_seconds", limits.wall_seconds},
        {"cpu_seconds", limits.cpu_seconds > 0.0 ? limits.cpu_seconds : limits.wall_seconds + 1.0},
        {"address_space_bytes", limits.address_space_bytes},
        {"file_size_bytes", limits.file_size_bytes},
        {"max_processes", limits.max_processes},
        {"max_open_files", limits.max_open_files}}}};
  const std::string text = header.dump();
  std::string frame(sizeof(std::uint32_t), '\0');
  const auto length = static_cast<std::uint32_t>(text.size());
  std::memcpy(frame.data(), &length, sizeof length);  // little-endian hosts only (x86-64, arm64)
  frame += text;

  std::vector<int> passed = {source_fd, pipes[0][1], pipes[1][1], pipes[2][1]};
  if (cgroup_.active()) passed.push_back(cgroup_.procs_fd());
  std::vector<char> control(CMSG_SPACE(passed.size() * sizeof(int)), 0);
  iovec chunk{frame.data(), frame.size()};
  msghdr message{};
  message.msg_iov = &chunk;
  message.msg_iovlen = 1;
  message.msg_control = control.data();
  message.msg_controllen = control.size();
  cmsghdr* rights = CMSG_FIRSTHDR(&message);
  rights->cmsg_level = SOL_SOCKET;
  rights->cmsg_type = SCM_RIGHTS;
  rights->cmsg_len = CMSG_LEN(passed.size() * sizeof(int));
  std::memcpy(CMSG_DATA(rights), passed.data(), passed.size() * sizeof(int));
  ssize_t sent = -1;
  do {
    sent = sendmsg(channel_, &message, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) {
    failure = fmt::format("sendmsg: {}", std::strerror(errno));
    return false;
  }
  for (std::size_t done = static_cast<std::size_t>(sent); done < frame.size();) {
    const ssize_t n = send(channel_, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = fmt::format("send: {}", std::strerror(errno));
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  // Only the program holds the write ends now: the pipes end when it does.
  held.close_now(source_fd);
  for (auto& pipe_fds : pipes) held.close_now(pipe_fds[1]);

  struct Stream {
    int fd;
    std::string* kept;
    std::size_t cap;
    bool counts_as_output;
  };
  std::array<Stream, 3> streams = {{{pipes[0][0], &run.stdout_bytes, limits.output_cap_bytes, true},
                                    {pipes[1][0], &run.stderr_bytes, limits.output_cap_bytes, true},
                                    {pipes[2][0], &run.marker_bytes, std::size_t{1} << 20, false}}};
  std::string reply;
  bool replied = false;
  // cgroup v1 kills one process at a time at the limit (v2 the whole group,
  // memory.oom.group); so the counter is watched and the zygote told to end
  // the whole tree at the first kill.
  bool stop_sent = false;
  const auto memory_check = std::chrono::milliseconds(100);
  std::size_t open_streams = streams.size();
  char buffer[1 << 16];
  while (!replied || open_streams > 0) {
    if (!replied && take_frame(reply)) {
      replied = true;
      continue;
    }
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) {
      failure = replied ? "the program's output did not end after it was killed" : "worker did not answer in time";
      return false;
    }
    std::array<pollfd, 4> waiting{};
    std::size_t count = 0;
    if (!replied) waiting[count++] = {channel_, POLLIN, 0};
    for (const auto& stream : streams) {
      if (stream.fd >= 0) waiting[count++] = {stream.fd, POLLIN, 0};
    }
    long long wait_ms = std::min<long long>(remaining.count() + 1, 1 << 30);
    if (cgroup_.active() && !replied && !stop_sent) wait_ms = std::min<long long>(wait_ms, memory_check.count());
    if (poll(waiting.data(), count, static_cast<int>(wait_ms)) < 0 && errno != EINTR) {
      failure = fmt::format("poll: {}", std::strerror(errno));
      return false;
    }
    if (cgroup_.active() && !replied && !stop_sent && cgroup_.oom_kills() > oom_kills_seen_) {
      static constexpr char kStop[] = "{\"stop\": 1}";
      std::string stop(sizeof(std::uint32_t), '\0');
      const auto stop_length = static_cast<std::uint32_t>(sizeof kStop - 1);
      std::memcpy(stop.data(), &stop_length, sizeof stop_length);
      stop += kStop;
      // A few bytes on an idle socket: they fit in its buffer at once.
      stop_sent =
          send(channel_, stop.data(), stop.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(stop.size());
    }
    if (!replied) {
      const ssize_t n = recv(channel_, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        inbox_.append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        std::string output = drain_error_output();
        failure = "worker closed its channel (it died)" + (output.empty() ? "" : ": " + output);
        return false;
      }
    }
    for (auto& stream : streams) {
      if (stream.fd < 0) continue;
      // Beyond the cap the output is read and dropped, so a flood never blocks.
      for (;;) {
        const ssize_t n = read(stream.fd, buffer, sizeof buffer);
        if (n > 0) {
          const std::size_t room = stream.cap - std::min(stream.cap, stream.kept->size());
          if (static_cast<std::size_t>(n) > room && stream.counts_as_output) run.output_truncated = true;
          stream.kept->append(buffer, std::min(room, static_cast<std::size_t>(n)));
          continue;
        }
        if (n == 0) {
          held.close_now(stream.fd);
          --open_streams;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          held.close_now(stream.fd);
          --open_streams;
        }
        break;
      }
    }
  }
  cleaning_ = true;  // whatever the reply says, the zygote sends its cleanup report next
  try {
    const auto parsed = nlohmann::json::parse(reply);
    if (parsed.contains("error")) {
      failure = parsed["error"].get<std::string>();
      return false;
    }
    if (parsed.at("status").is_number_integer()) run.wait_status = parsed["status"].get<int>();
    run.timed_out = parsed.value("timed_out", false);
    run.duration_seconds = parsed.value("duration", 0.0);
  } catch (const std::exception& error) {
    failure = fmt::format("unreadable reply from worker: {}", error.what());
    return false;
  }
  const std::uint64_t oom_kills = cgroup_.oom_kills();
  run.oom_kills = oom_kills - std::min(oom_kills, oom_kills_seen_);
  oom_kills_seen_ = oom_kills;
  return true;
}

}  // namespace quanteval::sandbox::detail
