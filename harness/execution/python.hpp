#pragma once
// Which Python interpreter the sandbox runs.
#include <string>
#include <vector>

namespace quanteval::harness {

struct PythonChoice {
  std::string executable;          // absolute path of a real interpreter binary
  std::vector<std::string> notes;  // how it was chosen, when not the obvious way
};

// requested: --python value (may be empty). Order: --python, $QUANTEVAL_PYTHON,
// `python3` on PATH. Wrapper scripts (pyenv shims) are resolved to the binary
// they run (sys.executable). The sandbox runs the interpreter as an
// unprivileged user, so an interpreter that user cannot reach (e.g. under
// /root) is replaced by /usr/bin/python3 with a note, when no explicit choice
// was made. Throws std::runtime_error when no interpreter can be found.
PythonChoice resolve_python(const std::string& requested);

}  // namespace quanteval::harness
