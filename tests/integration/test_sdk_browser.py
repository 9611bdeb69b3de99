"""The first-party JS SDK (GET /tally.js, sdk/tally.src.js, docs/sdk.md).

test_sdk_served: the script as served (type, ETag and 304, gzip, caching) and the CORS answers
of /collect (OPTIONS preflight, Access-Control-Allow-Origin on POST answers), over plain HTTP.

test_sdk_browser: Debian's chromium, driven by playwright-core from sdk/node_modules
(sdk/test/browser.js), loads test pages from a python http.server on another loopback port
(so every send is cross-origin, as on a real site) that use tally.js against a real tally:
page views, a click, single-page-app navigation, identify, a page closed with events pending
(sendBeacon), an offline period, 503s with Retry-After from a stub proxy in front of tally
(one of them after tally stored the batch), an event the server rejects, events left by a
page whose beacon was refused (adopted by the next page), two tabs sending at once, the
README's queued snippet, reset(), a client clock 2 hours fast, and a page's own fetch with an
Authorization header (the CORS preflight of /collect). Every event must arrive exactly once:
the counts of POST /api/v1/query and the rows of `tally export` equal what the browser did,
and every stored time lies within the test's run.

The browser test skips (saying so) only when chromium cannot be installed; `make deps`
installs it (mk/sdk.mk adds it to DEB_DEPS)."""

import gzip
import http.server
import json
import os
import shutil
import socketserver
import subprocess
import threading
import urllib.error
import urllib.request

import tally
from tally import Server, check, check_eq, recent_range, run_cli, wait_until

TIMEOUT = 300
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SDK = os.path.join(ROOT, "sdk")
CHROMIUM = "/usr/bin/chromium"
P, WK, RK = "demo", "wk_demo", "rk_demo"


# ---------------------------------------------------------------- served


def test_sdk_served():
    with Server() as s:
        r = s.request("GET", "/tally.js")
        check_eq(r.status, 200, "GET /tally.js")
        check_eq(r.header("Content-Type"), "application/javascript; charset=utf-8", "type")
        check_eq(r.header("Cache-Control"), "public, max-age=3600", "Cache-Control")
        body = r.body.decode("utf-8")
        check(body.startswith("/* tally.js ") and "sendBeacon" in body and len(body) < 16384,
              "not the minified SDK: %r" % body[:200])
        etag = r.header("ETag")
        check(etag and etag.startswith('"') and etag.endswith('"'), "ETag: %r" % etag)
        check_eq(len(gzip.compress(r.body, 9)) < 5 * 1024, True, "under 5 KB gzipped")

        for inm in (etag, "W/" + etag, '"other", ' + etag, "*"):
            r2 = s.request("GET", "/tally.js", headers={"If-None-Match": inm})
            check_eq(r2.status, 304, "If-None-Match %s" % inm)
            check_eq(r2.body, b"", "304 body")
            check_eq(r2.header("ETag"), etag, "ETag of the 304")
        r2 = s.request("GET", "/tally.js", headers={"If-None-Match": '"other"'})
        check_eq(r2.status, 200, "If-None-Match of another version")

        r3 = s.request("GET", "/tally.js", headers={"Accept-Encoding": "gzip, deflate"})
        check_eq(r3.header("Content-Encoding"), "gzip", "gzip when accepted")
        check_eq(gzip.decompress(r3.body), r.body, "gzip body")
        etag_gz = r3.header("ETag")
        check(etag_gz not in (None, etag), "the gzip representation's ETag: %r" % etag_gz)
        for inm in (etag, etag_gz):
            r4 = s.request("GET", "/tally.js", headers={"If-None-Match": inm,
                                                         "Accept-Encoding": "gzip"})
            check_eq(r4.status, 304, "gzip If-None-Match %s" % inm)
        r3 = s.request("GET", "/tally.js", headers={"Accept-Encoding": "gzip;q=0, br"})
        check_eq(r3.header("Content-Encoding"), None, "gzip;q=0 refuses gzip")
        check_eq(s.request("HEAD", "/tally.js").status, 200, "HEAD")
        check_eq(s.request("POST", "/tally.js", body="x").status, 405, "POST /tally.js")

        pre = s.request("OPTIONS", "/collect", headers={
            "Origin": "http://example.test", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        check(pre.status in (200, 204), "preflight status %d" % pre.status)
        check_eq(pre.header("Access-Control-Allow-Origin"), "*", "preflight ACAO")
        check("POST" in (pre.header("Access-Control-Allow-Methods") or ""), "Allow-Methods")
        hdrs = (pre.header("Access-Control-Allow-Headers") or "").lower()
        check("authorization" in hdrs and "content-type" in hdrs, "Allow-Headers: %r" % hdrs)

        # The SDK's own form: text/plain JSON with the key in the body.
        ev = tally.event("served_evt")
        r4 = s.request("POST", "/collect", body=json.dumps({"api_key": WK, "events": [ev]}),
                       headers={"Content-Type": "text/plain;charset=UTF-8",
                                "Origin": "http://example.test"})
        check_eq(r4.status, 200, "POST /collect text/plain with api_key")
        check_eq(r4.header("Access-Control-Allow-Origin"), "*", "ACAO on /collect")
        r5 = s.request("POST", "/collect", body="{", headers={"Origin": "http://example.test",
                                                             "Authorization": "Bearer " + WK})
        check_eq(r5.status, 400, "bad body")
        check_eq(r5.header("Access-Control-Allow-Origin"), "*", "ACAO on a /collect error")


# ---------------------------------------------------------------- browser


def chromium_ok():
    """True when chromium runs; tries to install it once (tools/deps.sh) when it does not."""
    def runs():
        try:
            p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--version"],
                               capture_output=True, timeout=60)
            return p.returncode == 0 and b"Chromium" in p.stdout
        except (OSError, subprocess.TimeoutExpired):
            return False
    if runs():
        return True
    print("chromium missing: trying tools/deps.sh chromium")
    subprocess.run(["bash", os.path.join(ROOT, "tools", "deps.sh"), "chromium"], cwd=ROOT,
                   timeout=900)
    return runs()


def ensure_playwright():
    if not os.path.isdir(os.path.join(SDK, "node_modules", "playwright-core")):
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SDK, capture_output=True,
                           timeout=600)
        check(p.returncode == 0, "npm ci in sdk/ failed: %s" % p.stderr[-2000:])


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>tally sdk test</title>
<script src="%(tally)s/tally.js"></script>
<script>
  var q = new URLSearchParams(location.search);
  tally.init("%(key)s", {host: q.get("host"), flushInterval: +q.get("fi"), flushAt: +q.get("fa")});
</script></head>
<body>
<button id="buy" onclick="tally.track('clicked', {sku: 'A1', price: 9.5})">buy</button>
<button id="nav" onclick="history.pushState({}, '', '/spa/2')">nav</button>
<button id="replace" onclick="history.replaceState({x: 1}, '', location.href)">replace</button>
<button id="pending" onclick="tally.track('pending', {i: 1})">pending</button>
<button id="pending2" onclick="tally.track('pending2', {i: 2})">pending2</button>
</body></html>
"""

# The README's snippet, then calls made before tally.js has loaded.
SNIPPET = """<!doctype html>
<html><head><meta charset="utf-8"><title>snippet</title>
%(snippet)s
<script>window.wasQueued = Array.isArray(tally);
tally.track("early_evt", {before: true}); tally.identify("user-snippet");</script>
</head><body>snippet</body></html>
"""


def readme_snippet():
    """The one-line snippet of README.md (the line that defines window.tally)."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("<script>") and "tally.js" in line and "tally.init" in line:
                return line.strip()
    raise tally.TestFailure("README.md has no one-line <script> snippet")


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve(handler):
    srv = ThreadingServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def make_proxy(target, n_fail):
    """A stub in front of tally: the first n_fail POST /collect get 503 + Retry-After: 1 (the
    last of them after forwarding the batch to tally, as when an answer is lost); the rest
    and everything else are forwarded."""
    state = {"collect": 0, "forwarded": 0}

    class Proxy(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def forward(self, body):
            req = urllib.request.Request(target + self.path, data=body, method=self.command)
            for k in ("Content-Type", "Authorization", "Origin", "Content-Encoding", "User-Agent"):
                if self.headers.get(k):
                    req.add_header(k, self.headers[k])
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read()

        def answer(self, status, headers, body):
            self.send_response(status)
            for k in ("Content-Type", "Retry-After", "Access-Control-Allow-Origin",
                      "Access-Control-Expose-Headers", "Access-Control-Allow-Methods",
                      "Access-Control-Allow-Headers"):
                if headers.get(k):
                    self.send_header(k, headers[k])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/collect":
                state["collect"] += 1
                if state["collect"] <= n_fail:
                    if state["collect"] == n_fail:
                        st, _, _ = self.forward(body)
                        state["forwarded"] += st == 200
                    self.answer(503, {"Content-Type": "application/json", "Retry-After": "1",
                                      "Access-Control-Allow-Origin": "*",
                                      "Access-Control-Expose-Headers": "Retry-After"},
                                b'{"error":"overloaded (stub)"}')
                    return
            self.answer(*self.forward(body))

        do_OPTIONS = do_GET = lambda self: self.answer(*self.forward(None))

    return serve(Proxy), state


def test_sdk_browser():
    if not chromium_ok():
        print("SKIP: chromium cannot be installed here (tools/deps.sh chromium failed); "
              "the browser test of tally.js did not run")
        return
    ensure_playwright()
    with Server() as s:
        pages = tally.tempdir("tally-sdk-pages-")
        snippet = readme_snippet().replace("https://tally.example.com", s.url) \
                                  .replace("WRITE_KEY", WK)
        check(s.url in snippet and WK in snippet, "README snippet placeholders: %s" % snippet)
        with open(os.path.join(pages, "page.html"), "w") as f:
            f.write(PAGE % {"tally": s.url, "key": WK})
        with open(os.path.join(pages, "snippet.html"), "w") as f:
            f.write(SNIPPET % {"snippet": snippet})
        static = serve(lambda *a, **kw: Quiet(*a, directory=pages, **kw))
        proxy, pstate = make_proxy(s.url, 2)
        try:
            cfg = {"chromium": CHROMIUM, "pages": "http://127.0.0.1:%d" % static.server_port,
                   "tally": s.url, "proxy": "http://127.0.0.1:%d" % proxy.server_port, "key": WK}
            t_start = tally.now_ms()
            p = subprocess.run(["node", os.path.join(SDK, "test", "browser.js"), json.dumps(cfg)],
                               capture_output=True, timeout=240, cwd=ROOT)
            t_end = tally.now_ms()
            out = p.stdout.decode("utf-8", "replace").strip().splitlines()
            res = json.loads(out[-1]) if out else {}
            for n in res.get("notes", []):
                print("note:", n)
            check(p.returncode == 0 and "error" not in res,
                  "browser driver failed (%d): %s\nstderr: %s"
                  % (p.returncode, res.get("error") or p.stdout[-3000:], p.stderr[-3000:]))
        finally:
            static.shutdown()
            proxy.shutdown()
        sc = res["scenarios"]
        check_eq(pstate["forwarded"], 1, "the proxy stored one batch and still answered 503")

        # Expected events per (anonymous id, event name), and totals per name.
        want = {}
        for name, r in sc.items():
            for ev, n in r["events"].items():
                want[(r["anon"], ev)] = want.get((r["anon"], ev), 0) + n
            for ev, n in r.get("events_after", {}).items():
                want[(r["after"], ev)] = want.get((r["after"], ev), 0) + n
        totals = {}
        for (_, ev), n in want.items():
            totals[ev] = totals.get(ev, 0) + n

        d0, d1 = recent_range(1)
        # Every event has arrived (the beacon ones maybe a little later) and none twice.
        s.wait_count(P, d0, d1, RK, sum(totals.values()), timeout=30)
        for ev, n in sorted(totals.items()):
            check_eq(s.count_events(P, d0, d1, RK, event=ev), n, "count of %s" % ev)
        check_eq(s.count_events(P, d0, d1, RK, event="clicked",
                                where=[{"prop": "properties.sku", "op": "=", "value": "A1"}]),
                 1, "clicked with its properties")
        pv = s.query_ok({"project": P, "kind": "trends", "metric": "events", "interval": "day",
                         "from": d0, "to": d1, "event": "$pageview", "breakdown": "platform"})
        check_eq(sorted({row[1] for row in pv["rows"] if row[-1]}), ["web"], "platform")
        s.stop()

    got = run_cli(["export", "--data", s.data_dir, "--config", s.config, "--project", P])
    rows = [json.loads(l) for l in got.stdout.decode("utf-8").splitlines() if l.strip()]
    ids = [r["event_id"] for r in rows]
    check_eq(len(ids), len(set(ids)), "distinct event ids in the export")
    by = {}
    for r in rows:
        k = (r.get("anonymous_id"), r["event"])
        by[k] = by.get(k, 0) + 1
    check_eq(by, want, "exported events per (anonymous_id, event)")
    for r in rows:
        if r["event"] == "preflight_evt":
            continue  # posted by the page's own fetch, not by tally.js
        check_eq(r.get("platform"), "web", "platform of %s" % r["event"])
        check(r.get("url", "").startswith("http://127.0.0.1:"), "url of %r" % r)
        props = r.get("properties", {})
        for k in ("$lib", "$screen_width", "$viewport_width", "$locale", "$timezone"):
            check(k in props, "%s missing from %s's properties: %r" % (k, r["event"], props))
    for r in rows:
        ts = r["timestamp"]
        ts = tally.parse_time(ts) if isinstance(ts, str) else ts
        check(t_start - 1000 <= ts <= t_end + 1000,
              "%s of %s at %s, outside the test's run (%s..%s): clock skew not corrected?"
              % (r["event"], r.get("anonymous_id"), tally.iso(ts), tally.iso(t_start),
                 tally.iso(t_end)))
    spa = sc["spa"]
    urls = [r["url"] for r in rows if r.get("anonymous_id") == spa["anon"]
            and r["event"] == "$pageview"]
    check_eq(sorted(u.split("?")[0].split(":", 2)[2].split("/", 1)[1] for u in urls),
             ["page.html", "page.html", "spa/2"], "the SPA's page views")
    for name in ("spa", "snippet", "reset"):
        r = sc[name]
        ident = [x for x in rows
                 if x.get("anonymous_id") == r["anon"] and x["event"] == "$identify"]
        check_eq([x.get("user_id") for x in ident], [r["user"]], "%s: $identify user" % name)
    after = [x for x in rows if x["event"] == "after_identify"]
    check_eq([x.get("user_id") for x in after], ["user-spa"], "user id on later events")
    check_eq(after[0].get("user_properties"), None, "no user properties on a plain event")
    reset = [x for x in rows if x["event"] == "after_reset"]
    check_eq([x.get("user_id") for x in reset], [None], "no user id after reset()")


# ---------------------------------------------------------------- node unit test


def test_sdk_queue_unit():
    """sdk/test/queue.test.js: the queue, batching, backoff, beacon and page-view logic of
    tally.src.js in node with stubbed browser objects and a fake clock."""
    p = subprocess.run(["node", "--test", os.path.join(SDK, "test", "queue.test.js")],
                       capture_output=True, timeout=120, cwd=SDK)
    out = p.stdout.decode("utf-8", "replace")
    check(p.returncode == 0, "node --test sdk/test/queue.test.js failed:\n%s\n%s"
          % (out[-6000:], p.stderr[-2000:]))
    check("# fail 0" in out, "node test output: %s" % out[-2000:])
