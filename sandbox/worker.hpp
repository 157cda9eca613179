#pragma once
// Internal: one worker process (the zygote) and how it is started.
#include <linux/filter.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/memory_cgroup.hpp"
#include "sandbox/sandbox.hpp"
#include "sandbox/view.hpp"

namespace quanteval::sandbox::detail {

// Decided once per pool: which namespaces the kernel lets us create, how the
// workers' credentials are arranged, what the programs see and where their
// memory is accounted.
struct IsolationPlan {
  int clone_flags = 0;          // CLONE_NEW* that worked when probed
  bool user_namespace = false;  // CLONE_NEWUSER is among them (not started as root)
  bool started_as_root = false;
  uid_t outer_uid = 0;
  gid_t outer_gid = 0;
  std::uint64_t scratch_bytes = 64ull << 20;  // size of each worker's private /tmp
  std::vector<sock_filter> seccomp_program;   // empty when libseccomp failed
  ViewPlan view;                              // unusable: the read-only host view instead
  CgroupHost cgroups;                         // version none: no memory cgroups
  std::vector<std::string> notes;
};

// Probes clone() with the namespaces we want and returns what works.
IsolationPlan plan_isolation(const Config& config);

// The zygote's environment, built from nothing.
std::vector<std::string> worker_environment(const std::string& scratch);

// Sizes of the worker's tmpfs mounts. nr_inodes bounds what a program can leave
// behind (and the memory of tmpfs extended attributes, which count against it).
inline constexpr std::uint64_t kScratchInodes = 16384;   // /tmp
inline constexpr std::uint64_t kShmBytes = 16ull << 20;  // /dev/shm
inline constexpr std::uint64_t kShmInodes = 1024;
inline constexpr int kMaxPtys = 16;  // the private devpts instance

// What the freshly cloned child managed to set up before exec'ing Python.
// Each field: 0 = done, >0 = errno of the failure, -1 = not attempted.
struct SetupReport {
  std::int32_t magic = 0;
  std::int32_t uid_map = -1;
  std::int32_t mount_private = -1;
  std::int32_t view = -1;              // the allow-list view (else the read-only host view)
  std::int32_t view_failed_step = -1;  // index of the view step that failed
  std::int32_t proc = -1;
  std::int32_t tmpfs = -1;
  std::int32_t shm = -1;
  std::int32_t ptys = -1;    // private devpts instance
  std::int32_t mqueue = -1;  // private POSIX message queue mount
  std::int32_t readonly = -1;
  std::int32_t readonly_fallback = -1;  // bind-remount of / alone when mount_setattr failed
  std::int32_t hostname = -1;
  std::int32_t credentials = -1;
  std::int32_t no_new_privs = -1;
  std::int32_t seccomp = -1;
};
inline constexpr std::int32_t kSetupReportMagic = 0x71657363;  // "qesc"

// Worker uids/gids (when started as root) come from this range. Each worker
// leases one for its lifetime with an exclusive flock on a lock file, so two
// pools on one host (two quanteval runs side by side) never share a uid -- and
// with it neither RLIMIT_NPROC's count nor the right to signal each other.
inline constexpr uid_t kWorkerUidBase = 61000;
inline constexpr uid_t kWorkerUidCount = 4096;

class UidLease {
 public:
  UidLease() = default;
  ~UidLease();
  UidLease(UidLease&& other) noexcept;
  UidLease& operator=(UidLease&& other) noexcept;
  // Claims a free uid of the range; throws SandboxError when all are taken.
  static UidLease acquire();
  uid_t uid() const { return uid_; }

 private:
  int lock_fd_ = -1;
  uid_t uid_ = 0;
};

// What one program did, as the pool's side of the pipes and the zygote's
// report saw it. Nothing here has been interpreted yet.
struct ProgramRun {
  std::optional<int> wait_status;  // of the program's first process
  bool timed_out = false;          // the wall-clock limit ended it
  double duration_seconds = 0.0;
  std::string stdout_bytes, stderr_bytes, marker_bytes;  // each up to its cap
  bool output_truncated = false;
  std::uint64_t oom_kills = 0;  // processes the memory cgroup's OOM killer took during the program
};

class WorkerProcess {
 public:
  WorkerProcess(const IsolationPlan& plan, const std::string& python, int index);
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // Starts the zygote and waits for its hello; throws SandboxError with the
  // worker's own error output when it does not come up.
  void start(std::chrono::milliseconds hello_timeout);
  // Kills the zygote (its whole PID namespace dies with it) and reaps it.
  void stop();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int index() const { return index_; }
  bool memory_cgroup() const { return cgroup_.active(); }

  // Waits until the zygote has cleaned up after the previous program. False
  // when it could not (it asked to be replaced, or took too long): the caller
  // replaces the worker, and no program is blamed.
  bool wait_until_clean(std::chrono::steady_clock::time_point deadline, std::string& why);

  // Runs one program: sends it with fresh pipes, drains them, and waits for
  // the zygote's report until the deadline. Returns false (and leaves the
  // worker for the caller to stop) on any infrastructure failure; `failure`
  // then says what happened.
  bool run_program(const std::string& source, const Limits& limits, const std::string& nonce,
                   std::chrono::steady_clock::time_point deadline, ProgramRun& run, std::string& failure);

  const SetupReport& setup_report() const { return setup_; }
  const std::string& hello() const { return hello_; }
  // Which step of the allow-list view failed in the last start ("" when none).
  const std::string& view_failure() const { return view_failure_; }

 private:
  bool fill_inbox(std::size_t wanted, std::chrono::steady_clock::time_point deadline, std::string& failure);
  bool read_frame(std::string& frame, std::chrono::steady_clock::time_point deadline, std::string& failure);
  bool take_frame(std::string& frame);  // a whole frame already in the inbox
  bool read_exact(char* data, std::size_t size, std::chrono::steady_clock::time_point deadline, std::string& failure);
  std::string drain_error_output();

  const IsolationPlan& plan_;
  std::string python_;
  int index_;
  UidLease uid_lease_;  // held only when the worker runs under a uid of its own
  ProgramCgroup cgroup_;
  pid_t pid_ = -1;
  int channel_ = -1;       // our end of the socketpair (fd 3 in the zygote)
  int error_output_ = -1;  // read end of the zygote's stderr
  std::string inbox_;      // bytes read from the channel, not yet taken as frames
  bool cleaning_ = false;  // the zygote still owes the "ready" report of the last program
  std::uint64_t oom_kills_seen_ = 0;
  std::string host_scratch_;  // only without a mount namespace
  SetupReport setup_;
  std::string hello_;
  std::string view_failure_;
};

}  // namespace quanteval::sandbox::detail
