#pragma once
// Internal: a memory cgroup per worker that holds its programs (never the
// zygote), so that the memory of a program's whole process tree -- forked
// children, memfd, SysV and POSIX shared memory, tmpfs pages -- is bounded
// together, which RLIMIT_AS (per process, address space only) cannot do.
//
// The host decides what is possible: cgroup v2 (`memory.max`) where the memory
// controller is available below the pool's own cgroup, else cgroup v1
// (`memory.limit_in_bytes`), else nothing (the reason goes into the pool's
// notes). Each program joins the group itself, first thing after its fork, by
// writing "0" to a cgroup.procs descriptor the pool opened (the kernel checks
// the opener's credentials), so the zygote stays outside and is never the
// memory-cgroup OOM killer's victim.
#include <cstdint>
#include <string>

namespace quanteval::sandbox::detail {

struct CgroupHost {
  enum class Version { none, v1, v2 };
  Version version = Version::none;
  std::string parent;  // the folder worker groups are created in
  std::string note;    // why there is none
};

// Finds where this process may create memory cgroups, removing groups left by
// earlier pools that died. Never throws.
CgroupHost detect_memory_cgroups();

class ProgramCgroup {
 public:
  ProgramCgroup() = default;
  ~ProgramCgroup();
  ProgramCgroup(ProgramCgroup&& other) noexcept;
  ProgramCgroup& operator=(ProgramCgroup&& other) noexcept;

  // Creates a group named after this process and `label`; throws SandboxError.
  static ProgramCgroup create(const CgroupHost& host, const std::string& label);

  bool active() const { return procs_fd_ >= 0; }
  // Total memory (and swap, where accounted) of everything in the group. Only
  // writes when the value changes; throws SandboxError.
  void set_limit(std::uint64_t bytes);
  // How many processes the kernel's OOM killer has killed in the group so far.
  std::uint64_t oom_kills() const;
  // cgroup.procs opened for writing by the pool (the runner joins through it).
  int procs_fd() const { return procs_fd_; }
  const std::string& path() const { return path_; }

 private:
  void release();
  CgroupHost::Version version_ = CgroupHost::Version::none;
  std::string path_;
  int procs_fd_ = -1;
  std::uint64_t limit_ = 0;
};

}  // namespace quanteval::sandbox::detail
