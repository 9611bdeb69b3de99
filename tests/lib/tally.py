"""Helpers for tally's end-to-end tests: start the real `tally serve` binary as a subprocess on
127.0.0.1 with a temporary data directory and a config file of fixed project keys, talk to it
over HTTP (urllib only), run the CLI, and stop it (SIGTERM, checked for a clean exit and for
sanitizer reports) or kill it (SIGKILL).

Python 3 standard library only: the CI machine has no PyPI.

The test runner (tests/run.py) sets TALLY_BIN, TALLY_TEST_QUICK and TALLY_TEST_VERBOSE in the
environment of each test process; the helpers read them from there.
"""

import atexit
import datetime
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BIN = os.environ.get("TALLY_BIN", "build/san/tally")
QUICK = os.environ.get("TALLY_TEST_QUICK", "") == "1"
VERBOSE = os.environ.get("TALLY_TEST_VERBOSE", "") == "1"
KEEP = os.environ.get("TALLY_KEEP", "") == "1"  # keep temp dirs for post-mortems

HOST = "127.0.0.1"

# Fixed projects of the test config: name -> (timezone, write key, read key).
PROJECTS = {
    "demo": ("UTC", "wk_demo", "rk_demo"),
    "ktm": ("Asia/Kathmandu", "wk_ktm", "rk_ktm"),
    "ny": ("America/New_York", "wk_ny", "rk_ny"),
}

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "ERROR: ThreadSanitizer",
    "SUMMARY: UndefinedBehaviorSanitizer",
)

SAN_ENV = {
    "ASAN_OPTIONS": "halt_on_error=1:abort_on_error=0:detect_leaks=1:allocator_may_return_null=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": "",
}

_live_servers = []


def server_env(extra=None):
    """The environment for tally processes: ours without TALLY_* (tally reads its settings
    from TALLY_* variables), plus the sanitizer options and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALLY_")}
    env.update(SAN_ENV)
    env.update(extra or {})
    return env

_temp_dirs = []


def log(*a):
    if VERBOSE:
        print(*a, flush=True)


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


def wait_until(fn, timeout=20.0, interval=0.1, what="condition"):
    """Calls fn() until it returns a true value (returned) or timeout seconds pass (raises)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    n = 0
    while n < 100000:
        n += 1
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last_exc = e
        if time.monotonic() > deadline:
            raise TestFailure("timed out after %.1fs waiting for %s (last error: %r)"
                              % (timeout, what, last_exc))
        time.sleep(interval)
    raise TestFailure("gave up waiting for %s" % what)


def tempdir(prefix="tally-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _temp_dirs.append(d)
    return d


def write_config(path, projects=None, extra=None):
    """Writes a tally.conf with `[project NAME]` sections (API.md "Projects and keys")."""
    projects = PROJECTS if projects is None else projects
    lines = ["# written by tests/lib/tally.py"]
    for k, v in (extra or {}).items():
        lines.append("%s = %s" % (k, v))
    for name, (tz, wk, rk) in projects.items():
        lines += ["", "[project %s]" % name, "timezone  = %s" % tz, "write_key = %s" % wk,
                  "read_key  = %s" % rk]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------- HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception as e:
            raise TestFailure("response (status %d) is not JSON: %r (%s)"
                              % (self.status, self.body[:500], e))

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:300])


def http(method, url, body=None, headers=None, timeout=30.0):
    """One HTTP request; returns a Response for every status (never raises on 4xx/5xx).
    Connection errors raise OSError (urllib.error.URLError is one)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    req = urllib.request.Request(url, data=body, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, list(r.headers.items()), r.read())
    except urllib.error.HTTPError as e:
        data = e.read() if e.fp else b""
        return Response(e.code, list(e.headers.items()) if e.headers else [], data)


class Server:
    """One `tally serve` process on 127.0.0.1 with port 0, a data directory and a config file.

    Use as a context manager, or call start()/stop() yourself. restart() keeps the data dir.
    """

    def __init__(self, data_dir=None, config=None, projects=None, config_extra=None,
                 extra_args=None, env=None, start_timeout=60.0):
        self.root = tempdir()
        self.data_dir = data_dir or os.path.join(self.root, "data")
        if config is None:
            config = write_config(os.path.join(self.root, "tally.conf"), projects, config_extra)
        self.config = config
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.n_starts = 0
        self.log_path = None
        self.logs = []

    # -- lifecycle

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.stop()
        else:
            self.kill()
        return False

    @property
    def url(self):
        return "http://%s:%d" % (HOST, self.port)

    def argv(self):
        return [BIN, "serve", "--data", self.data_dir, "--listen", "%s:0" % HOST,
                "--config", self.config] + self.extra_args

    def start(self):
        assert self.proc is None, "already running"
        self.n_starts += 1
        self.log_path = os.path.join(self.root, "server-%d.log" % self.n_starts)
        self.logs.append(self.log_path)
        env = server_env(self.env)
        logf = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, env=env)
        finally:
            logf.close()
        _live_servers.append(self)
        log("started", " ".join(self.argv()), "pid", self.proc.pid)
        deadline = time.monotonic() + self.start_timeout
        port = None
        n = 0
        while port is None and n < 100000:
            n += 1
            port = self._find_port()
            if port is not None:
                break
            if self.proc.poll() is not None:
                raise TestFailure("tally serve exited with %s during start-up:\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.kill()
                raise TestFailure("tally serve printed no 'listening on' line in %.0fs:\n%s"
                                  % (self.start_timeout, self.log_tail()))
            time.sleep(0.05)
        self.port = port
        self.started_at = time.monotonic()
        wait_until(self._healthy, timeout=max(5.0, deadline - time.monotonic()),
                   interval=0.05, what="/healthz of %s" % self.url)
        return self

    def _find_port(self):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return None
        m = re.search(r"listening on https?://[^\s:]+:(\d+)", text)
        if not m:
            m = re.search(r"listening on [^\s:]+:(\d+)", text)
        return int(m.group(1)) if m else None

    def _healthy(self):
        if self.proc.poll() is not None:
            raise TestFailure("tally serve exited with %s:\n%s"
                              % (self.proc.returncode, self.log_tail()))
        try:
            return http("GET", self.url + "/healthz", timeout=5).status == 200
        except OSError:
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=30.0, check_clean=True):
        """SIGTERM; waits for exit; fails on a non-zero status or a sanitizer report."""
        if self.proc is None:
            return
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
                self.proc = None
                self._forget()
                raise TestFailure("tally serve did not exit within %.0fs of SIGTERM:\n%s"
                                  % (timeout, self.log_tail()))
        self.proc = None
        self._forget()
        if check_clean:
            self.check_log_clean()
            if p.returncode != 0:
                raise TestFailure("tally serve exited with status %s after SIGTERM:\n%s"
                                  % (p.returncode, self.log_tail()))

    def kill(self):
        """SIGKILL, no questions asked (the crash test's weapon)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        self._forget()

    def restart(self):
        self.stop()
        self.start()

    def _forget(self):
        if self in _live_servers:
            _live_servers.remove(self)

    def log_text(self, path=None):
        try:
            with open(path or self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def log_tail(self, n=40):
        lines = self.log_text().splitlines()
        return "\n".join("    | " + l for l in lines[-n:])

    def check_log_clean(self):
        for path in self.logs:
            text = self.log_text(path)
            for m in SANITIZER_MARKERS:
                if m in text:
                    i = text.index(m)
                    raise TestFailure("sanitizer report in %s:\n%s" % (path, text[max(0, i - 2000):i + 6000]))

    # -- requests

    def request(self, method, path, body=None, headers=None, timeout=30.0):
        return http(method, self.url + path, body, headers, timeout)

    def collect(self, events=None, key="wk_demo", body=None, headers=None, form="envelope",
                gz=False, gz_header=True, params=None, timeout=60.0):
        """POST /collect. `events` is encoded in `form` (envelope|array|single|ndjson) unless
        `body` (bytes/str) is given. key: Bearer header unless None (or put in params)."""
        h = {}
        if body is None:
            if form == "envelope":
                body = json.dumps({"events": events})
                h["Content-Type"] = "application/json"
            elif form == "array":
                body = json.dumps(events)
                h["Content-Type"] = "application/json"
            elif form == "single":
                assert len(events) == 1
                body = json.dumps(events[0])
                h["Content-Type"] = "application/json"
            elif form == "ndjson":
                body = "".join(json.dumps(e) + "\n" for e in events)
                h["Content-Type"] = "application/x-ndjson"
            else:
                raise ValueError(form)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if gz:
            body = gzip.compress(body)
            if gz_header:
                h["Content-Encoding"] = "gzip"
        if key is not None:
            h["Authorization"] = "Bearer " + key
        h.update(headers or {})
        path = "/collect"
        if params:
            path += "?" + urllib.parse.urlencode(params)
        return self.request("POST", path, body, h, timeout=timeout)

    def collect_ok(self, events, key="wk_demo", **kw):
        r = self.collect(events, key=key, **kw)
        check(r.status == 200, "POST /collect: status %d: %r" % (r.status, r.body[:500]))
        j = r.json()
        check(j.get("rejected", 0) == 0, "POST /collect rejected events: %r" % j)
        return j

    def query(self, q, key="rk_demo", timeout=60.0):
        """POST /api/v1/query; returns the Response."""
        h = {"Content-Type": "application/json"}
        if key is not None:
            h["Authorization"] = "Bearer " + key
        return self.request("POST", "/api/v1/query", json.dumps(q), h, timeout=timeout)

    def query_ok(self, q, key="rk_demo", timeout=60.0):
        r = self.query(q, key=key, timeout=timeout)
        check(r.status == 200, "query %s: status %d: %r" % (json.dumps(q), r.status, r.body[:800]))
        j = r.json()
        check("took_ms" in j, "query answer without took_ms: %r" % j)
        return j

    def trend_values(self, q, key="rk_demo"):
        """A trends query without breakdown → list of (bucket, value)."""
        j = self.query_ok(q, key=key)
        return [(row[0], row[-1]) for row in j["rows"]]

    def count_events(self, project, day_from, day_to, key, event=None, tz=None, where=None):
        q = {"project": project, "kind": "trends", "metric": "events", "interval": "day",
             "from": day_from, "to": day_to}
        if event:
            q["event"] = event
        if tz:
            q["tz"] = tz
        if where:
            q["where"] = where
        return sum(v for _, v in self.trend_values(q, key=key))

    def wait_count(self, project, day_from, day_to, key, want, timeout=30.0, **kw):
        """Polls until the events count over the range equals want (queries may lag ingestion
        by the indexer's latency). Returns the last count (raises on timeout)."""
        deadline = time.monotonic() + timeout
        last = None
        for _ in range(100000):
            last = self.count_events(project, day_from, day_to, key, **kw)  # raises on a 4xx
            if last == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if last != want:
            raise TestFailure("events count over %s..%s: got %r, want %d (after %.0fs)"
                              % (day_from, day_to, last, want, timeout))
        return last


# ---------------------------------------------------------------- CLI


def run_cli(args, input=None, timeout=120.0, env=None, check_status=True):
    """Runs `BIN args...`; returns CompletedProcess (stdout/stderr bytes)."""
    e = server_env(env)
    log("run", BIN, " ".join(args))
    if isinstance(input, str):
        input = input.encode("utf-8")
    try:
        p = subprocess.run([BIN] + list(args), input=input, capture_output=True, timeout=timeout,
                           env=e, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as x:
        raise TestFailure("tally %s did not finish within %.0fs (stderr: %r)"
                          % (" ".join(args), timeout, (x.stderr or b"")[-500:]))
    err = p.stderr.decode("utf-8", "replace")
    for m in SANITIZER_MARKERS:
        if m in err:
            raise TestFailure("sanitizer report from tally %s:\n%s" % (" ".join(args), err[-8000:]))
    if check_status and p.returncode != 0:
        raise TestFailure("tally %s exited %d:\nstdout: %s\nstderr: %s"
                          % (" ".join(args), p.returncode, p.stdout[-2000:], err[-3000:]))
    return p


# ---------------------------------------------------------------- time helpers


def now_ms():
    return int(time.time() * 1000)


def ms_of(dt):
    return int(dt.timestamp() * 1000)


def utc_day(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def parse_time(s):
    """ms of an ISO-8601 string with a zone (Z or ±HH:MM)."""
    d = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return int(round(d.timestamp() * 1000))


def today_utc():
    return utc_day(now_ms())


def day_add(day, n):
    d = datetime.date.fromisoformat(day) + datetime.timedelta(days=n)
    return d.isoformat()


# ---------------------------------------------------------------- cleanup


def cleanup(success):
    """Kills servers still running and removes temp dirs (kept on failure with TALLY_KEEP)."""
    for s in list(_live_servers):
        s.kill()
    if success or not KEEP:
        for d in _temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
    del _temp_dirs[:]


def all_server_logs():
    """(path, text) of every server log written in this process (for failure reports)."""
    out = []
    for d in _temp_dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            if n.startswith("server-") and n.endswith(".log"):
                p = os.path.join(d, n)
                try:
                    with open(p, "rb") as f:
                        out.append((p, f.read().decode("utf-8", "replace")))
                except OSError:
                    pass
    return out


atexit.register(lambda: [s.kill() for s in list(_live_servers)])


# ---------------------------------------------------------------- events

_seq = [0]


def uid(prefix="e"):
    """A unique id (event_id, anonymous_id...) for this test process."""
    _seq[0] += 1
    return "%s-%d-%d-%s" % (prefix, os.getpid(), _seq[0], os.urandom(4).hex())


def event(name="pageview", anon=None, user=None, ts=None, eid=True, **fields):
    """A native event; anon defaults to a fresh anonymous_id unless user is given; eid=True
    gives a fresh event_id, a string sets it, None leaves it out. ts in ms (default: 1 h ago)."""
    e = {"event": name}
    if eid is True:
        e["event_id"] = uid("ev")
    elif eid is not None:
        e["event_id"] = eid
    if anon is None and user is None:
        anon = uid("anon")
    if anon is not None:
        e["anonymous_id"] = anon
    if user is not None:
        e["user_id"] = user
    e["timestamp"] = now_ms() - 3600 * 1000 if ts is None else ts
    e.update(fields)
    return e


def recent_range(days_back=3):
    """(from, to) dates in UTC covering the last days_back days and tomorrow."""
    t = today_utc()
    return day_add(t, -days_back), day_add(t, 1)
