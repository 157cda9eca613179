#!/usr/bin/env python3
"""Fails when a module of quanteval reaches into another module's internals.

The rule:
  - code in module M may include another module N only when M may depend on N,
    and then only N's public header;
  - harness -> runtime, sandbox, datasets, reports; reports, runtime, sandbox and
    datasets depend on no other module; nothing depends on harness;
  - the same holds for the libraries a module's CMake files link;
  - tests/ and tools/ are exempt (they test and measure internals).

Usage: check_module_boundaries.py REPO_ROOT
Prints one line per violation (file:line: what and why) and exits 1 when there
is any, 0 otherwise; exits 2 when the tree does not look like quanteval's.
"""
import os
import re
import sys

# module -> its public header (None: nothing outside the module may include it)
PUBLIC_HEADER = {
    "runtime": "runtime/runtime.hpp",
    "sandbox": "sandbox/sandbox.hpp",
    "datasets": "datasets/datasets.hpp",
    "reports": "reports/reports.hpp",
    "harness": None,
}
ALLOWED_DEPENDENCIES = {
    "harness": {"runtime", "sandbox", "datasets", "reports"},
    "reports": set(),
    "runtime": set(),
    "sandbox": set(),
    "datasets": set(),
}
SOURCE_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".c", ".cc", ".cpp", ".cxx", ".cu", ".cuh", ".inc", ".ipp", ".tpp")
INCLUDE = re.compile(r'^\s*#\s*include\s*(([<"])([^>"]+)[>"])')
# CMake targets are named quanteval_<module>[_<part>] (quanteval_runtime_cuda is the runtime's).
TARGET = re.compile(r"\bquanteval_(" + "|".join(PUBLIC_HEADER) + r")\w*")


def module_of(relative_path):
    first = relative_path.split("/", 1)[0]
    return first if first in PUBLIC_HEADER else None


def resolve(root, including_file, delimiter, target):
    """The repository-relative path an include names, or None for a header outside the repository."""
    target = target.replace("\\", "/")
    if module_of(target) is not None:
        return os.path.normpath(target).replace(os.sep, "/")
    if delimiter == '"':
        beside = os.path.normpath(os.path.join(os.path.dirname(including_file), target))
        if os.path.isfile(beside):
            relative = os.path.relpath(beside, root).replace(os.sep, "/")
            if not relative.startswith("../"):
                return relative
    return None


def dependency_problem(own, target_module, target_path):
    """Why `own` may not include/link `target_module` (target_path: the header, or None for a link)."""
    if target_module == own:
        return None
    if target_module not in ALLOWED_DEPENDENCIES[own]:
        allowed = ", ".join(sorted(ALLOWED_DEPENDENCIES[own])) or "no other module"
        return f"module {own} may not depend on module {target_module} ({own} may use: {allowed})"
    public = PUBLIC_HEADER[target_module]
    if target_path is not None and target_path != public:
        return f"{target_path} is internal to module {target_module}; include its public header {public}"
    return None


def check_sources(root, module, path, violations):
    relative_file = os.path.relpath(path, root).replace(os.sep, "/")
    with open(path, encoding="utf-8", errors="replace") as source:
        for number, line in enumerate(source, 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            spelled, delimiter, name = match.groups()
            target = resolve(root, path, delimiter, name)
            target_module = module_of(target) if target else None
            if target_module is None:
                continue
            why = dependency_problem(module, target_module, target)
            if why:
                violations.append(f"{relative_file}:{number}: #include {spelled}: {why}")


def check_cmake(root, module, path, violations):
    relative_file = os.path.relpath(path, root).replace(os.sep, "/")
    with open(path, encoding="utf-8", errors="replace") as script:
        for number, line in enumerate(script, 1):
            code = line.split("#", 1)[0]
            for match in TARGET.finditer(code):
                why = dependency_problem(module, match.group(1), None)
                if why:
                    violations.append(f"{relative_file}:{number}: {match.group(0)}: {why}")


def check_tree(root):
    violations = []
    files_read = 0
    for module, public in PUBLIC_HEADER.items():
        folder = os.path.join(root, module)
        if not os.path.isdir(folder):
            raise SystemExit(f"{folder}: module folder missing (is {root} a quanteval checkout?)")
        if public is not None and not os.path.isfile(os.path.join(root, public)):
            violations.append(f"{public}:1: the public header of module {module} is missing")
        for directory, subdirectories, files in os.walk(folder):
            subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
            for name in sorted(files):
                path = os.path.join(directory, name)
                if name.endswith(SOURCE_SUFFIXES):
                    check_sources(root, module, path, violations)
                    files_read += 1
                elif name == "CMakeLists.txt" or name.endswith(".cmake"):
                    check_cmake(root, module, path, violations)
                    files_read += 1
    return violations, files_read


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: check_module_boundaries.py REPO_ROOT", file=sys.stderr)
        return 2
    root = os.path.abspath(argv[1])
    try:
        violations, files_read = check_tree(root)
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    for violation in violations:
        print(violation)
    if violations:
        print(f"{len(violations)} module boundary violation(s) in {files_read} files (the rule: {__file__})")
        return 1
    print(f"module boundaries hold in {files_read} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
