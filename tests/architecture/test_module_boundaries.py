#!/usr/bin/env python3
"""The boundary check catches what it is meant to catch.

Copies the modules of the checkout (sources and CMake files only) into a
temporary tree, checks that the copy passes, then adds one violation at a
time -- an internal header, a forbidden dependency through a public header, a
relative include, a forbidden CMake link, an include of the harness -- and
checks that each one fails with the file and line named. An internal include
in tests/ must still pass (tests are exempt).

Usage: test_module_boundaries.py REPO_ROOT
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "check_module_boundaries.py")
MODULES = ("runtime", "sandbox", "datasets", "reports", "harness")
KEEP = (".h", ".hh", ".hpp", ".c", ".cc", ".cpp", ".cu", ".cuh", ".cmake", "CMakeLists.txt")

failures = []


def check(tree):
    result = subprocess.run([sys.executable, CHECKER, tree], capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def expect(name, tree, code, *fragments):
    got, output = check(tree)
    missing = [f for f in fragments if f not in output]
    if got != code or missing:
        failures.append(f"{name}: expected exit {code} with {missing or list(fragments)}, got exit {got}:\n{output}")
    else:
        print(f"ok: {name}")


def copy_modules(source_root, tree):
    def ignore(directory, names):
        return [n for n in names
                if not os.path.isdir(os.path.join(directory, n)) and not n.endswith(KEEP)]
    for module in MODULES:
        shutil.copytree(os.path.join(source_root, module), os.path.join(tree, module), ignore=ignore)


def with_file(tree, relative, text):
    """Writes a file into the tree; returns a function that takes it out again."""
    path = os.path.join(tree, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    existed = os.path.exists(path)
    before = open(path).read() if existed else None
    with open(path, "w") as out:
        out.write(text if before is None else before + text)

    def restore():
        if before is None:
            os.remove(path)
        else:
            with open(path, "w") as out:
                out.write(before)
    return restore


def main(argv):
    source_root = os.path.abspath(argv[1])
    with tempfile.TemporaryDirectory(prefix="quanteval-boundaries-") as tree:
        copy_modules(source_root, tree)
        expect("the checkout's modules pass", tree, 0, "module boundaries hold")

        cases = [
            ("harness including a runtime internal", "harness/cli/zz_violation.cpp",
             '#include <string>\n#include "runtime/model/model.hpp"\n',
             ["harness/cli/zz_violation.cpp:2:", "runtime/model/model.hpp is internal to module runtime"]),
            ("reports including the runtime, even its public header", "reports/summary/zz_violation.cpp",
             '#include "runtime/runtime.hpp"\n',
             ["reports/summary/zz_violation.cpp:1:", "module reports may not depend on module runtime"]),
            ("the sandbox including the harness", "sandbox/zz_violation.hpp",
             '#pragma once\n#include "harness/cli/cli.hpp"\n',
             ["sandbox/zz_violation.hpp:2:", "module sandbox may not depend on module harness"]),
            ("a relative include across modules", "datasets/zz_violation.cpp",
             '#include "../sandbox/sandbox.hpp"\n',
             ["datasets/zz_violation.cpp:1:", "module datasets may not depend on module sandbox"]),
            ("angle brackets count too", "harness/run/zz_violation.cpp",
             '#include <reports/summary/status.hpp>\n',
             ["harness/run/zz_violation.cpp:1:", "reports/summary/status.hpp is internal to module reports"]),
            ("a CMake link to a module it may not use", "reports/CMakeLists.txt",
             "\ntarget_link_libraries(quanteval_reports PRIVATE quanteval_sandbox)\n",
             ["reports/CMakeLists.txt:", "quanteval_sandbox: module reports may not depend on module sandbox"]),
        ]
        for name, relative, text, fragments in cases:
            restore = with_file(tree, relative, text)
            expect(name, tree, 1, *fragments)
            restore()

        restore = with_file(tree, "tests/harness/zz_internal_test.cpp", '#include "runtime/model/model.hpp"\n')
        expect("tests may include internals", tree, 0, "module boundaries hold")
        restore()

        shutil.rmtree(os.path.join(tree, "datasets"))
        expect("a missing module folder is an error, not a pass", tree, 2, "module folder missing")

    for failure in failures:
        print("FAILED: " + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: test_module_boundaries.py REPO_ROOT", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv))
