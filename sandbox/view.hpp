#pragma once
// Internal: the filesystem a program sees, built from an allow-list.
//
// The view is a fresh tmpfs root holding only what the interpreter needs, read
// only: the directories the interpreter itself names (sys.prefix and friends,
// its standard library, site-packages, sys.path) and the directories of every
// shared object its extension modules (the standard library's and numpy's) link,
// each bound read-only at its own path; the symbolic links met on the way to
// those (e.g. Debian's /lib -> usr/lib and /etc/alternatives/libblas.so.3-*)
// recreated as links; a private /dev, a fresh /proc and private scratch tmpfs
// mounts added by the worker. Nothing else of the host exists in the view: no
// /home, /root, /run, /var, /srv, no dataset, no checkout, no host socket or
// FIFO. Folders the caller names as private (and the pool's working tree) are
// covered by an empty tmpfs where they lie inside an allowed directory.
#include <string>
#include <vector>

namespace quanteval::sandbox::detail {

struct ViewPlan {
  // Host paths bound read-only at the same place, ordered so that every path
  // comes after the paths above it (a bind inside a mask comes after the mask).
  struct Entry {
    enum class Kind { bind_dir, bind_file, mask, symlink } kind;
    std::string path;    // absolute, as seen in the view (and on the host)
    std::string target;  // symlink only: the link's text
  };
  std::vector<Entry> entries;
  std::string build_point;         // host directory the new root is assembled on
  std::vector<std::string> binds;  // the bound host paths, for reports
  std::vector<std::string> notes;  // why no view could be planned
  bool usable() const { return !entries.empty() && !build_point.empty(); }
};

// Asks `python` (started the way the zygote is: `-s -B`, scrubbed environment,
// working directory /) which paths it uses, and plans the view. `hidden` are
// host paths that must not be visible even where they lie inside an allowed
// directory. Never throws: an unusable plan says why in notes.
ViewPlan plan_view(const std::string& python, const std::vector<std::string>& environment,
                   const std::vector<std::string>& hidden);

}  // namespace quanteval::sandbox::detail
