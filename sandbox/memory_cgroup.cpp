#include "sandbox/memory_cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "sandbox/sandbox.hpp"

namespace quanteval::sandbox::detail {
namespace {

constexpr const char* kGroupPrefix = "quanteval-sandbox-";

struct MountEntry {
  std::string root;         // the mount's root within its hierarchy (field 4)
  std::string mount_point;  // field 5
  std::string type;         // after " - "
  std::string options;      // super options
};

std::vector<MountEntry> cgroup_mounts() {
  std::vector<MountEntry> mounts;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash)), tail(line.substr(dash + 3));
    std::string id, parent, device;
    MountEntry entry;
    head >> id >> parent >> device >> entry.root >> entry.mount_point;
    std::string source;
    tail >> entry.type >> source >> entry.options;
    if (entry.type == "cgroup" || entry.type == "cgroup2") mounts.push_back(entry);
  }
  return mounts;
}

bool has_option(const std::string& options, const std::string& wanted) {
  std::istringstream in(options);
  std::string option;
  while (std::getline(in, option, ',')) {
    if (option == wanted) return true;
  }
  return false;
}

// This process's path in the hierarchy that has `controller` ("" = the v2 one).
std::string own_cgroup_path(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t first = line.find(':');
    const std::size_t second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controller.empty() ? controllers.empty() : has_option(controllers, controller)) return path;
  }
  return {};
}

// mount point + (path relative to the mount's root)
std::string folder_of(const MountEntry& mount, const std::string& path) {
  std::string relative = path;
  if (mount.root != "/" && relative.compare(0, mount.root.size(), mount.root) == 0) {
    relative = relative.substr(mount.root.size());
  }
  if (relative == "/") relative.clear();
  return mount.mount_point + relative;
}

bool exists(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int write_text(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const ssize_t written = ::write(fd, text.data(), text.size());
  const int error = written == static_cast<ssize_t>(text.size()) ? 0 : (written < 0 ? errno : EIO);
  ::close(fd);
  return error;
}

// rmdir, retried briefly: a group whose last process just died can stay busy
// for a moment while the kernel finishes tearing the process down.
bool remove_group(const std::string& path) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Groups of pools whose process is gone (killed before it could clean up).
void remove_stale_groups(const std::string& parent) {
  DIR* dir = ::opendir(parent.c_str());
  if (!dir) return;
  std::vector<std::string> stale;
  while (dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.rfind(kGroupPrefix, 0) != 0) continue;
    const long pid = std::strtol(name.c_str() + std::strlen(kGroupPrefix), nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(parent + "/" + name);
  }
  ::closedir(dir);
  for (const auto& path : stale) ::rmdir(path.c_str());  // fails harmlessly when not empty
}

// Can we make a group here that has the memory files?
std::string try_group(const std::string& parent, const char* limit_file) {
  const std::string probe = fmt::format("{}/{}{}-probe", parent, kGroupPrefix, ::getpid());
  if (::mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST) {
    return fmt::format("cannot create a cgroup in {}: {}", parent, std::strerror(errno));
  }
  const bool usable = exists(probe + "/" + limit_file);
  ::rmdir(probe.c_str());
  return usable ? std::string() : fmt::format("the memory controller is not enabled below {}", parent);
}

}  // namespace

CgroupHost detect_memory_cgroups() {
  CgroupHost host;
  std::vector<std::string> reasons;
  const auto mounts = cgroup_mounts();
  for (const auto& mount : mounts) {
    if (mount.type != "cgroup2") continue;
    const std::string folder = folder_of(mount, own_cgroup_path(""));
    const std::string controllers = read_text(folder + "/cgroup.controllers");
    if (controllers.find("memory") == std::string::npos) {
      reasons.push_back(fmt::format("cgroup v2 at {}: no memory controller", folder));
      continue;
    }
    // Children get the controller only when it is in our subtree_control; a
    // non-root group with processes in it cannot enable it ("no internal processes").
    if (read_text(folder + "/cgroup.subtree_control").find("memory") == std::string::npos) {
      if (int error = write_text(folder + "/cgroup.subtree_control", "+memory"); error != 0) {
        reasons.push_back(
            fmt::format("cgroup v2 at {}: cannot enable the memory controller for children: {} "
                        "(run quanteval in a delegated cgroup of its own)",
                        folder, std::strerror(error)));
        continue;
      }
    }
    if (std::string why = try_group(folder, "memory.max"); !why.empty()) {
      reasons.push_back("cgroup v2: " + why);
      continue;
    }
    remove_stale_groups(folder);
    host.version = CgroupHost::Version::v2;
    host.parent = folder;
    return host;
  }
  for (const auto& mount : mounts) {
    if (mount.type != "cgroup" || !has_option(mount.options, "memory")) continue;
    const std::string folder = folder_of(mount, own_cgroup_path("memory"));
    if (std::string why = try_group(folder, "memory.limit_in_bytes"); !why.empty()) {
      reasons.push_back("cgroup v1: " + why);
      continue;
    }
    remove_stale_groups(folder);
    host.version = CgroupHost::Version::v1;
    host.parent = folder;
    return host;
  }
  if (reasons.empty()) reasons.push_back("no cgroup hierarchy with a memory controller is mounted");
  for (const auto& reason : reasons) host.note += (host.note.empty() ? "" : "; ") + reason;
  return host;
}

ProgramCgroup::~ProgramCgroup() { release(); }

ProgramCgroup::ProgramCgroup(ProgramCgroup&& other) noexcept
    : version_(other.version_), path_(std::move(other.path_)), procs_fd_(other.procs_fd_), limit_(other.limit_) {
  other.procs_fd_ = -1;
  other.path_.clear();
}

ProgramCgroup& ProgramCgroup::operator=(ProgramCgroup&& other) noexcept {
  if (this != &other) {
    release();
    version_ = other.version_;
    path_ = std::move(other.path_);
    procs_fd_ = other.procs_fd_;
    limit_ = other.limit_;
    other.procs_fd_ = -1;
    other.path_.clear();
  }
  return *this;
}

void ProgramCgroup::release() {
  if (procs_fd_ >= 0) ::close(procs_fd_);
  procs_fd_ = -1;
  if (!path_.empty()) remove_group(path_);
  path_.clear();
}

ProgramCgroup ProgramCgroup::create(const CgroupHost& host, const std::string& label) {
  ProgramCgroup group;
  if (host.version == CgroupHost::Version::none) return group;
  std::uint32_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) nonce = static_cast<std::uint32_t>(::getpid());
  const std::string path = fmt::format("{}/{}{}-{}-{:08x}", host.parent, kGroupPrefix, ::getpid(), label, nonce);
  if (::mkdir(path.c_str(), 0755) != 0) {
    throw SandboxError(fmt::format("cannot create the memory cgroup {}: {}", path, std::strerror(errno)));
  }
  group.version_ = host.version;
  group.path_ = path;
  if (host.version == CgroupHost::Version::v2) {
    // The whole tree goes at once when one of its processes is chosen, and no
    // swap stretches the bound.
    write_text(path + "/memory.oom.group", "1");
    if (exists(path + "/memory.swap.max")) write_text(path + "/memory.swap.max", "0");
  }
  group.procs_fd_ = ::open((path + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
  if (group.procs_fd_ < 0) {
    throw SandboxError(fmt::format("cannot open {}/cgroup.procs: {}", path, std::strerror(errno)));
  }
  return group;
}

void ProgramCgroup::set_limit(std::uint64_t bytes) {
  if (!active() || bytes == limit_) return;
  const std::string value = std::to_string(bytes);
  int error = 0;
  if (version_ == CgroupHost::Version::v2) {
    error = write_text(path_ + "/memory.max", value);
  } else {
    // v1 keeps memsw (memory + swap) >= memory at all times: raise memsw first
    // when growing, lower it last when shrinking (both start unlimited).
    const std::string memsw = path_ + "/memory.memsw.limit_in_bytes";
    const bool has_memsw = exists(memsw);
    const bool growing = limit_ != 0 && bytes > limit_;
    if (has_memsw && growing) write_text(memsw, value);
    error = write_text(path_ + "/memory.limit_in_bytes", value);
    if (has_memsw && error == 0) write_text(memsw, value);
  }
  if (error != 0) {
    throw SandboxError(fmt::format("cannot set the memory limit of {} to {}: {}", path_, bytes, std::strerror(error)));
  }
  limit_ = bytes;
}

std::uint64_t ProgramCgroup::oom_kills() const {
  if (!active()) return 0;
  const std::string text =
      read_text(path_ + (version_ == CgroupHost::Version::v2 ? "/memory.events" : "/memory.oom_control"));
  std::istringstream in(text);
  std::string key;
  std::uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill") return value;
  }
  return 0;
}

}  // namespace quanteval::sandbox::detail
