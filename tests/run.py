#!/usr/bin/env python3
"""tally's test runner — what `make test` calls:

    python3 tests/run.py --bin build/san/tally --make make [--only SUBSTR] [--quick] [-v] [-j N]

Steps, in order, each with a timeout:
  unit          `make unit`        (cmocka unit tests; only with --make)
  fuzz-replay   `make fuzz-replay` (fuzz corpus and crashers replay; only with --make)
  integration   every `test_*` function of tests/integration/test_*.py
  diff          the differential test, tests/diff/test_*.py (random events vs SQLite)
  crash         the crash test, tests/crash/test_*.py (kill -9 under load)

Each Python test runs in its own process (its own session, so a timeout kills it together with
the servers it started), with TMPDIR pointing at a scratch directory removed afterwards. One
line per test: `PASS name 1.2s` or `FAIL name 1.2s` (followed by the test's output on failure,
or always with -v); the last line is `N passed, M failed`; the exit status is 1 on any failure.

A test module may define TIMEOUT (seconds, default 120) and `generate_tests(quick)` returning
[(name, function, args)] for parametrised tests (the differential test's seeds).
Python 3 standard library only.
"""

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
LIB = os.path.join(TESTS, "lib")
GROUPS = [("integration", 120), ("diff", 600), ("crash", 360)]
OUTPUT_LIMIT = 60000  # characters of a failed test's output printed


def load_module(path):
    name = "t_" + os.path.relpath(path, TESTS).replace(os.sep, "_").replace(".py", "")
    for d in (LIB, os.path.dirname(path)):
        if d not in sys.path:
            sys.path.insert(0, d)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def module_tests(mod, quick):
    """[(name, fn, args)] of a module, in source order."""
    out = []
    items = [(k, v) for k, v in vars(mod).items()
             if k.startswith("test_") and callable(v) and getattr(v, "__module__", None) == mod.__name__]
    items.sort(key=lambda kv: kv[1].__code__.co_firstlineno)
    for k, v in items:
        out.append((k, v, ()))
    gen = getattr(mod, "generate_tests", None)
    if gen is not None:
        for name, fn, args in gen(quick):
            out.append((name, fn, tuple(args)))
    return out


# ------------------------------------------------------------------ child: one test


def child_main(path, test_name):
    quick = os.environ.get("TALLY_TEST_QUICK") == "1"
    t0 = time.monotonic()
    ok = False
    tally = None
    try:
        sys.path.insert(0, LIB)
        import tally  # noqa: E402  (tests/lib/tally.py)
        mod = load_module(path)
        found = [t for t in module_tests(mod, quick) if t[0] == test_name]
        if not found:
            print("no test %s in %s" % (test_name, path))
            return 1
        _, fn, args = found[0]
        fn(*args)
        ok = True
    except BaseException as e:  # noqa: BLE001 - any failure is reported
        if isinstance(e, KeyboardInterrupt):
            print("interrupted")
        traceback.print_exc(file=sys.stdout)
        if tally is not None:
            for p, text in tally.all_server_logs():
                lines = text.splitlines()
                print("---- %s (last %d of %d lines)" % (p, min(60, len(lines)), len(lines)))
                for line in lines[-60:]:
                    print("    | " + line)
    finally:
        if tally is not None:
            try:
                tally.cleanup(ok)
            except Exception:  # noqa: BLE001
                traceback.print_exc(file=sys.stdout)
    sys.stdout.flush()
    if tally is not None and tally.VERBOSE:
        print("(%.2fs)" % (time.monotonic() - t0))
    return 0 if ok else 1


# ------------------------------------------------------------------ parent


class Result:
    def __init__(self, name, ok, secs, output):
        self.name, self.ok, self.secs, self.output = name, ok, secs, output


def run_process(argv, timeout, env=None, cwd=ROOT):
    """Runs argv in a new session with output to a temp file; kills the whole group on timeout.
    Returns (ok, seconds, output)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out:
        try:
            p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            return False, time.monotonic() - t0, "cannot run %s: %s" % (argv[0], e)
        timed_out = False
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # The group holds the test and every server it started; end them all.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    secs = time.monotonic() - t0
    if timed_out:
        text += "\nTIMEOUT: killed after %.0fs\n" % timeout
    return (p.returncode == 0 and not timed_out), secs, text


def report(res, verbose, lock):
    with lock:
        print("%s %s %.1fs" % ("PASS" if res.ok else "FAIL", res.name, res.secs), flush=True)
        if res.output.strip() and (verbose or not res.ok):
            text = res.output
            if len(text) > OUTPUT_LIMIT:
                text = "[... %d characters cut ...]\n" % (len(text) - OUTPUT_LIMIT) + text[-OUTPUT_LIMIT:]
            for line in text.rstrip().splitlines():
                print("    " + line)
            sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="build/san/tally", help="the tally binary under test")
    ap.add_argument("--make", default=None, help="make command: also run `make unit` and `make fuzz-replay`")
    ap.add_argument("--only", action="append", default=[],
                    help="run only tests whose name contains this (repeatable)")
    ap.add_argument("--quick", action="store_true", help="fewer seeds and iterations")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every test's output")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="integration tests in parallel")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--child", nargs=2, metavar=("FILE", "TEST"), help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.child:
        return child_main(a.child[0], a.child[1])

    binpath = a.bin if os.path.isabs(a.bin) else os.path.join(ROOT, a.bin)
    env = dict(os.environ)
    env["TALLY_BIN"] = binpath
    env["TALLY_TEST_QUICK"] = "1" if a.quick else "0"
    env["TALLY_TEST_VERBOSE"] = "1" if a.verbose else "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"

    def selected(name):
        return not a.only or any(s in name for s in a.only)

    # (group, name, kind, payload, timeout)
    plan = []
    if a.make:
        for step, tmo in (("unit", 1200), ("fuzz-replay", 900)):
            if selected(step):
                plan.append(("steps", step, "make", step, tmo))
    load_errors = []
    for group, default_timeout in GROUPS:
        d = os.path.join(TESTS, group)
        files = sorted(f for f in os.listdir(d) if f.startswith("test_") and f.endswith(".py")) \
            if os.path.isdir(d) else []
        for f in files:
            path = os.path.join(d, f)
            try:
                mod = load_module(path)
                tests = module_tests(mod, a.quick)
            except Exception:  # noqa: BLE001
                load_errors.append(Result("%s/%s" % (group, f), False, 0.0, traceback.format_exc()))
                continue
            tmo = getattr(mod, "TIMEOUT", default_timeout)
            for tname, fn, _ in tests:
                name = "%s/%s::%s" % (group, f[:-3], tname)
                if selected(name):
                    plan.append((group, name, "py", (path, tname), getattr(fn, "timeout", tmo)))

    if a.list:
        for g, name, _, _, tmo in plan:
            print("%s (timeout %ds)" % (name, tmo))
        return 0

    lock = threading.Lock()
    results = []
    for r in load_errors:
        results.append(r)
        report(r, a.verbose, lock)

    def run_one(item):
        group, name, kind, payload, tmo = item
        if kind == "make":
            argv = a.make.split() + [payload]
            ok, secs, out = run_process(argv, tmo, env=env)
        else:
            scratch = tempfile.mkdtemp(prefix="tally-run-")
            e = dict(env)
            e["TMPDIR"] = scratch
            argv = [sys.executable, os.path.abspath(__file__), "--child", payload[0], payload[1]]
            ok, secs, out = run_process(argv, tmo, env=e)
            shutil.rmtree(scratch, ignore_errors=True)
        r = Result(name, ok, secs, out)
        with lock:
            results.append(r)
        report(r, a.verbose, lock)

    t0 = time.monotonic()
    i = 0
    while i < len(plan):
        group = plan[i][0]
        if group == "integration" and a.jobs > 1:
            batch = []
            while i < len(plan) and plan[i][0] == "integration":
                batch.append(plan[i])
                i += 1
            threads = []
            queue = list(batch)
            qlock = threading.Lock()

            def worker():
                while True:
                    with qlock:
                        if not queue:
                            return
                        it = queue.pop(0)
                    run_one(it)

            for _ in range(min(a.jobs, len(batch))):
                t = threading.Thread(target=worker)
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
        else:
            run_one(plan[i])
            i += 1

    passed = sum(1 for r in results if r.ok)
    failed = len(results) - passed
    if failed:
        print("failed: " + ", ".join(r.name for r in results if not r.ok))
    print("total time %.0fs" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
