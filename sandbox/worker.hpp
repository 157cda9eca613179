#pragma once
// Internal: one worker process (the zygote) and how it is started.
#include <linux/filter.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "sandbox/sandbox.hpp"

namespace quanteval::sandbox::detail {

// Decided once per pool: which namespaces the kernel lets us create and how
// the workers' credentials are arranged.
struct IsolationPlan {
  int clone_flags = 0;           // CLONE_NEW* that worked when probed
  bool user_namespace = false;   // CLONE_NEWUSER is among them (not started as root)
  bool started_as_root = false;
  uid_t outer_uid = 0;
  gid_t outer_gid = 0;
  std::uint64_t scratch_bytes = 64ull << 20;  // size of each worker's private /tmp
  std::vector<sock_filter> seccomp_program;  // empty when libseccomp failed
  std::vector<std::string> notes;
};

// Probes clone() with the namespaces we want and returns what works.
IsolationPlan plan_isolation();

// What the freshly cloned child managed to set up before exec'ing Python.
// Each field: 0 = done, >0 = errno of the failure, -1 = not attempted.
struct SetupReport {
  std::int32_t magic = 0;
  std::int32_t uid_map = -1;
  std::int32_t mount_private = -1;
  std::int32_t proc = -1;
  std::int32_t tmpfs = -1;
  std::int32_t shm = -1;
  std::int32_t readonly = -1;
  std::int32_t readonly_fallback = -1;  // bind-remount of / alone when mount_setattr failed
  std::int32_t hostname = -1;
  std::int32_t credentials = -1;
  std::int32_t no_new_privs = -1;
  std::int32_t seccomp = -1;
};
inline constexpr std::int32_t kSetupReportMagic = 0x71657362;  // "qesb"

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

  // Sends a request frame and waits for the reply frame until the deadline.
  // Returns false (and leaves the worker for the caller to stop) on any
  // infrastructure failure; `failure` then says what happened.
  struct Reply {
    std::string header;  // JSON
    std::string stdout_bytes;
    std::string stderr_bytes;
  };
  bool exchange(const std::string& request, std::chrono::steady_clock::time_point deadline, Reply& reply,
                std::string& failure);

  const SetupReport& setup_report() const { return setup_; }
  const std::string& hello() const { return hello_; }

 private:
  bool read_frame(std::string& header, std::chrono::steady_clock::time_point deadline, std::string& failure);
  bool read_exact(char* data, std::size_t size, std::chrono::steady_clock::time_point deadline,
                  std::string& failure);
  std::string drain_error_output();

  const IsolationPlan& plan_;
  std::string python_;
  int index_;
  UidLease uid_lease_;  // held only when the worker runs under a uid of its own
  pid_t pid_ = -1;
  int channel_ = -1;       // our end of the socketpair (fd 3 in the zygote)
  int error_output_ = -1;  // read end of the zygote's stderr
  std::string host_scratch_;  // only without a mount namespace
  SetupReport setup_;
  std::string hello_;
};

}  // namespace quanteval::sandbox::detail
