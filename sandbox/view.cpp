// Planning the allow-list view (see view.hpp). The interpreter is asked once per
// pool, outside the sandbox, which paths it uses; the worker's cloned child then
// only replays the plan with raw mount calls.
#include "sandbox/view.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace quanteval::sandbox::detail {
namespace {

// Run by the interpreter under test. Paths travel hex-encoded so that names
// that are not UTF-8 survive the JSON.
constexpr const char* kProbeSource = R"PYTHON(
import sys, os, json, sysconfig
paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, sys.executable]
for key in ('stdlib', 'platstdlib', 'purelib', 'platlib'):
    try:
        paths.append(sysconfig.get_path(key))
    except Exception:
        pass
paths += [p for p in sys.path if p]
try:
    import site
    paths += site.getsitepackages()
except Exception:
    pass
libraries = []
try:
    # Every extension module of the standard library and of numpy, loaded
    # without being initialised: the loader pulls in every shared library they
    # link (cheaper than importing them, and it covers modules nobody imported).
    import ctypes, glob, importlib.util
    modules = []
    for folder in sys.path:
        if folder.endswith('lib-dynload'):
            modules += glob.glob(os.path.join(folder, '*.so'))
    spec = importlib.util.find_spec('numpy')
    if spec is not None and spec.origin:
        modules += glob.glob(os.path.join(os.path.dirname(spec.origin), '**', '*.so'), recursive=True)
    for module in modules:
        try:
            ctypes.CDLL(module, mode=os.RTLD_LAZY)
        except OSError:
            pass
except Exception:
    pass
try:
    # The names the dynamic loader opened (symbolic links such as
    # /lib/x86_64-linux-gnu/libblas.so.3 included), from its link map.
    class LinkMap(ctypes.Structure):
        pass
    LinkMap._fields_ = [('l_addr', ctypes.c_size_t), ('l_name', ctypes.c_char_p), ('l_ld', ctypes.c_void_p),
                        ('l_next', ctypes.POINTER(LinkMap)), ('l_prev', ctypes.POINTER(LinkMap))]
    libc = ctypes.CDLL(None)
    entry = ctypes.POINTER(LinkMap)()
    if libc.dlinfo(ctypes.c_void_p(libc._handle), 2, ctypes.byref(entry)) == 0:   # RTLD_DI_LINKMAP
        while entry:
            if entry.contents.l_name:
                libraries.append(os.fsdecode(entry.contents.l_name))
            entry = entry.contents.l_next
except Exception:
    pass
with open('/proc/self/maps') as maps:
    for line in maps:
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith('/'):
            libraries.append(fields[5].rstrip('\n'))
hexed = lambda items: [os.fsencode(p).hex() for p in items if p]
print(json.dumps({'paths': hexed(paths), 'libraries': hexed(libraries)}))
)PYTHON";

struct ProbeOutput {
  std::string text;
  std::string failure;
};

ProbeOutput run_probe(const std::string& python, const std::vector<std::string>& environment) {
  ProbeOutput result;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    result.failure = fmt::format("pipe2: {}", std::strerror(errno));
    return result;
  }
  std::vector<std::string> arguments = {python, "-s", "-B", "-c", kProbeSource};
  std::vector<char*> argv, envp;
  for (auto& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_copy = environment;
  for (auto& e : env_copy) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addchdir_np(&actions, "/");
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, python.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    close(out[0]);
    result.failure = fmt::format("cannot run {}: {}", python, std::strerror(spawned));
    return result;
  }
  // A loaded machine may take a while to import numpy; past that the probe is stuck.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  char buffer[8192];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      result.failure = "the interpreter did not answer the path probe within 60 s";
      kill(pid, SIGKILL);
      break;
    }
    pollfd waiting{out[0], POLLIN, 0};
    if (poll(&waiting, 1, static_cast<int>(left)) < 0 && errno != EINTR) break;
    const ssize_t n = read(out[0], buffer, sizeof buffer);
    if (n > 0) {
      if (result.text.size() < (16u << 20)) result.text.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0 || (errno != EINTR && errno != EAGAIN)) break;
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (result.failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    result.failure = fmt::format("the path probe of {} failed (wait status {})", python, status);
  }
  return result;
}

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

std::vector<std::string> split_components(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t begin = 0;
  while (begin < path.size()) {
    std::size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    if (end > begin) parts.push_back(path.substr(begin, end - begin));
    begin = end + 1;
  }
  return parts;
}

std::string parent_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

std::string join(const std::string& folder, const std::string& name) {
  return folder == "/" ? "/" + name : folder + "/" + name;
}

// The real path of `path`, recording every symbolic link met on the way
// (link location -> link text); a missing tail is kept as written.
std::string resolve_recording(const std::string& path, std::map<std::string, std::string>& links, int depth = 0) {
  if (depth > 40) return path;  // a loop: ELOOP for the program too
  std::string current = "/";
  const auto parts = split_components(path);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (part == ".") continue;
    if (part == "..") {
      current = parent_of(current);
      continue;
    }
    const std::string candidate = join(current, part);
    struct stat info {};
    if (lstat(candidate.c_str(), &info) != 0) {
      std::string rest = candidate;
      for (std::size_t j = i + 1; j < parts.size(); ++j) rest = join(rest, parts[j]);
      return rest;
    }
    if (!S_ISLNK(info.st_mode)) {
      current = candidate;
      continue;
    }
    std::string target(PATH_MAX, '\0');
    const ssize_t length = readlink(candidate.c_str(), target.data(), target.size());
    if (length <= 0) return candidate;
    target.resize(static_cast<std::size_t>(length));
    links[candidate] = target;
    current = resolve_recording(target.front() == '/' ? target : join(current, target), links, depth + 1);
  }
  return current;
}

bool is_inside(const std::string& path, const std::string& folder) {
  if (folder == "/") return true;
  return path == folder ||
         (path.size() > folder.size() && path.compare(0, folder.size(), folder) == 0 && path[folder.size()] == '/');
}

bool strictly_inside(const std::string& path, const std::string& folder) {
  return path != folder && is_inside(path, folder);
}

bool is_directory(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool is_real_directory(const std::string& path) {
  struct stat info {};
  return lstat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

// Drops every path that lies inside another one of the list.
std::vector<std::string> outermost(std::set<std::string> paths) {
  std::vector<std::string> kept;
  for (const auto& path : paths) {  // sorted: a folder comes before what it holds
    if (std::none_of(kept.begin(), kept.end(), [&](const std::string& k) { return is_inside(path, k); })) {
      kept.push_back(path);
    }
  }
  return kept;
}

// The folders enclosing the pool's working directory up to the checkout's top
// (the first one holding .git), all of which count as the user's working tree.
std::vector<std::string> working_tree_paths() {
  std::vector<std::string> found;
  char buffer[PATH_MAX];
  if (!getcwd(buffer, sizeof buffer)) return found;
  std::string folder = buffer;
  found.push_back(folder);
  for (std::string up = folder; up != "/"; up = parent_of(up)) {
    struct stat info {};
    if (lstat(join(up, ".git").c_str(), &info) == 0) {
      found.push_back(up);
      break;
    }
  }
  return found;
}

}  // namespace

ViewPlan plan_view(const std::string& python, const std::vector<std::string>& environment,
                   const std::vector<std::string>& hidden) {
  ViewPlan plan;
  const ProbeOutput probe = run_probe(python, environment);
  if (!probe.failure.empty()) {
    plan.notes.push_back("no allow-list view: " + probe.failure);
    return plan;
  }
  std::vector<std::string> named_paths = {python}, libraries;
  try {
    const auto parsed = nlohmann::json::parse(probe.text);
    for (const auto& hex : parsed.at("paths")) named_paths.push_back(from_hex(hex.get<std::string>()));
    for (const auto& hex : parsed.at("libraries")) libraries.push_back(from_hex(hex.get<std::string>()));
  } catch (const std::exception& error) {
    plan.notes.push_back(fmt::format("no allow-list view: unreadable path probe output ({})", error.what()));
    return plan;
  }

  std::map<std::string, std::string> links;
  std::set<std::string> directories, files;
  auto allow = [&](const std::string& path, bool folder_of_file) {
    if (path.empty() || path.front() != '/') return;
    const std::string real = resolve_recording(path, links);
    struct stat info {};
    if (stat(real.c_str(), &info) != 0) return;  // e.g. /usr/lib/python311.zip, which does not exist
    if (S_ISDIR(info.st_mode)) {
      directories.insert(real);
    } else if (folder_of_file) {
      // A shared object: its whole folder, so that libraries loaded later from
      // the same system folder are there too.
      directories.insert(parent_of(real));
    } else if (S_ISREG(info.st_mode)) {
      files.insert(real);
    }
  };
  for (const auto& path : named_paths) allow(path, false);
  for (const auto& path : libraries) allow(path, true);
  // The loader's cache and the time zone: public files the interpreter reads.
  for (const char* path : {"/etc/ld.so.cache", "/etc/localtime"}) allow(path, false);
  // Never the whole host: "/" as a prefix (an interpreter installed at the
  // root) is replaced by the more specific paths it came with.
  directories.erase("/");

  std::set<std::string> everything = directories;
  everything.insert(files.begin(), files.end());
  const std::vector<std::string> roots = outermost(everything);

  // Private folders that must stay hidden where an allowed folder holds them.
  std::vector<std::string> private_paths = {"/root",  "/home", "/run",  "/var",  "/tmp", "/srv", "/mnt",
                                            "/media", "/opt",  "/boot", "/proc", "/sys", "/dev", "/etc"};
  if (const char* home = std::getenv("HOME")) private_paths.push_back(home);
  for (const auto& path : working_tree_paths()) private_paths.push_back(path);
  private_paths.insert(private_paths.end(), hidden.begin(), hidden.end());
  std::set<std::string> mask_candidates;
  for (const auto& path : private_paths) {
    std::map<std::string, std::string> ignored;
    const std::string real = resolve_recording(path, ignored);
    if (!is_directory(real)) continue;
    if (std::any_of(roots.begin(), roots.end(), [&](const std::string& r) { return strictly_inside(real, r); })) {
      mask_candidates.insert(real);
    }
  }
  const std::vector<std::string> masks = outermost(mask_candidates);  // a mask inside a mask adds nothing
  // Allowed paths inside a mask are bound again on top of it.
  std::set<std::string> rebound;
  for (const auto& path : everything) {
    if (std::any_of(masks.begin(), masks.end(), [&](const std::string& m) { return is_inside(path, m); })) {
      rebound.insert(path);
    }
  }
  const std::vector<std::string> inner_roots = outermost(rebound);

  auto add_bind = [&](const std::string& path) {
    const bool folder = is_directory(path);
    plan.entries.push_back({folder ? ViewPlan::Entry::Kind::bind_dir : ViewPlan::Entry::Kind::bind_file, path, {}});
    plan.binds.push_back(path);
  };
  for (const auto& path : roots) add_bind(path);
  for (const auto& path : masks) plan.entries.push_back({ViewPlan::Entry::Kind::mask, path, {}});
  for (const auto& path : inner_roots) add_bind(path);
  // Parents first: a mask must be mounted before the binds inside it.
  std::stable_sort(plan.entries.begin(), plan.entries.end(), [](const ViewPlan::Entry& a, const ViewPlan::Entry& b) {
    return split_components(a.path).size() < split_components(b.path).size();
  });

  // Symbolic links that the view's own binds do not already contain.
  auto inside_any = [](const std::string& path, const std::vector<std::string>& folders) {
    return std::any_of(folders.begin(), folders.end(), [&](const std::string& f) { return is_inside(path, f); });
  };
  auto visible_through_bind = [&](const std::string& path) {
    return inside_any(path, inner_roots) || (inside_any(path, roots) && !inside_any(path, masks));
  };
  // Top-level links of the host (merged-/usr systems: /bin, /lib, /lib64, /sbin)
  // when they lead into the view.
  for (const char* top : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    std::map<std::string, std::string> found;
    const std::string real = resolve_recording(top, found);
    if (found.count(top) && visible_through_bind(real)) links[top] = found[top];
  }
  for (const auto& [path, target] : links) {
    if (visible_through_bind(path)) continue;
    if (is_inside(path, "/proc") || is_inside(path, "/dev") || is_inside(path, "/tmp")) continue;  // the worker's own
    plan.entries.push_back({ViewPlan::Entry::Kind::symlink, path, target});
  }

  // Where to assemble the new root: a real host folder holding none of the sources.
  for (const char* candidate : {"/tmp", "/mnt", "/media", "/srv", "/opt", "/var/tmp", "/run"}) {
    if (!is_real_directory(candidate)) continue;
    if (std::any_of(plan.binds.begin(), plan.binds.end(),
                    [&](const std::string& b) { return is_inside(b, candidate); })) {
      continue;
    }
    plan.build_point = candidate;
    break;
  }
  if (plan.build_point.empty()) {
    plan.notes.push_back("no allow-list view: no host folder to assemble it on");
    plan.entries.clear();
  }
  if (roots.empty()) {
    plan.notes.push_back("no allow-list view: the interpreter named no usable path");
    plan.entries.clear();
  }
  return plan;
}

}  // namespace quanteval::sandbox::detail
