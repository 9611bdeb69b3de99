"""The web dashboard (web/, src/http/web.c, docs/dashboard.md).

test_web_served: over plain HTTP — the single-page routes give index.html (no-cache, ETag,
304), hashed assets are immutable with the right content types and gzip, unknown assets are
404, every answer has the Content-Security-Policy and nosniff, the page weight is within the
budget, and the API and ingest routes are not shadowed.

test_web_dashboards_store: GET/PUT /api/v1/dashboards (read key, JSON object only, atomic file
in the data directory, kept across a restart) and GET /api/v1/project.

test_web_browser_*: Debian's chromium driven by playwright-core (web/tests/browser.mjs) against
a real tally loaded with generated data: every page loads without console errors (pages whose
query kind the server does not answer yet show the designed "not available" state); the
numbers the overview and trends show equal the API's answers for the same queries; a trends
view set up through the controls round-trips through its URL; a funnel built through the UI
gives the API's funnel; the realtime page updates when events arrive; a pinned view appears on
a dashboard. Screenshots go to build/screenshots/.
"""

import datetime
import gzip
import json
import os
import random
import re
import subprocess
import urllib.parse

import tally
from tally import Server, check, check_eq

TIMEOUT = 240
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB = os.path.join(ROOT, "web")
SHOTS = os.path.join(ROOT, "build", "screenshots")
CHROMIUM = "/usr/bin/chromium"
P, WK, RK = "demo", "wk_demo", "rk_demo"

PAGES = ["/overview", "/realtime", "/trends", "/funnels", "/retention", "/sessions", "/paths",
         "/persons", "/dashboards"]
URLS = ["/", "/home", "/pricing", "/docs", "/signup", "/checkout"]
COUNTRIES = ["NP", "US", "DE", "IN", "BR", "JP"]
PLATFORMS = ["web", "web", "web", "ios", "android"]
VERSIONS = ["1.0.0", "1.1.0", "1.2.0", "2.0.0"]


# ---------------------------------------------------------------- data


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def generate(seed=5, persons=80, days=30):
    """Events of `persons` people over the last `days` days (UTC), all in the past: page views,
    some sign-ups and purchases (a funnel), identified users with properties."""
    rnd = random.Random(seed)
    now = tally.now_ms()
    out = []
    for i in range(persons):
        anon = "anon-%d" % i
        plat = rnd.choice(PLATFORMS)
        country = rnd.choice(COUNTRIES)
        ver = rnd.choice(VERSIONS) if plat != "web" else None
        first = now - rnd.randint(0, days - 1) * 86400000 - rnd.randint(60, 20 * 3600) * 1000
        first = max(first, now - (days - 1) * 86400000)
        n_sessions = rnd.randint(1, 4)
        t = first
        for s in range(n_sessions):
            for k in range(rnd.randint(1, 5)):
                e = {"event": "pageview", "anonymous_id": anon, "timestamp": min(t, now - 1000),
                     "url": rnd.choice(URLS), "platform": plat, "country": country,
                     "event_id": "ev-%d-%d-%d" % (i, s, k)}
                if ver:
                    e["app_version"] = ver
                out.append(e)
                t += rnd.randint(5, 300) * 1000
            if s == 0 and rnd.random() < 0.5:
                t += rnd.randint(10, 600) * 1000
                e = {"event": "signup", "anonymous_id": anon, "user_id": "user-%d" % i,
                     "timestamp": min(t, now - 1000), "platform": plat, "country": country,
                     "event_id": "su-%d" % i,
                     "user_properties": {"plan": rnd.choice(["free", "pro"]), "name": "User %d" % i}}
                out.append(e)
                if rnd.random() < 0.5:
                    t += rnd.randint(10, 3600) * 1000
                    out.append({"event": "purchase", "user_id": "user-%d" % i,
                                "timestamp": min(t, now - 1000), "platform": plat,
                                "country": country, "event_id": "pu-%d" % i,
                                "properties": {"amount": rnd.randint(5, 200)}})
            t += rnd.randint(2, 48) * 3600 * 1000
            if t > now:
                break
    return out


def loaded_server():
    s = Server()
    s.start()
    ev = generate()
    for i in range(0, len(ev), 500):
        s.collect_ok(ev[i:i + 500])
    return s


# ---------------------------------------------------------------- the browser driver


def have_browser():
    return os.path.exists(CHROMIUM) and os.path.isdir(os.path.join(WEB, "node_modules",
                                                                    "playwright-core"))


def drive(srv, scenario, args=None, timeout=150):
    """Runs web/tests/browser.mjs SCENARIO against srv; returns its JSON report. Fails on a
    driver error, a console error, a page error or a failed request."""
    check(have_browser(), "chromium or web/node_modules missing: run `make deps build/san/tally`")
    env = dict(os.environ)
    env.update({"TALLY_URL": srv.url, "TALLY_PROJECT": P, "TALLY_KEY": RK, "TALLY_WRITE_KEY": WK,
                "SHOTS": SHOTS, "ARGS": json.dumps(args or {}), "CHROMIUM": CHROMIUM})
    try:
        p = subprocess.run(["node", "tests/browser.mjs", scenario], cwd=WEB, env=env,
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise tally.TestFailure("browser scenario %s: no answer in %ds (%r)"
                                % (scenario, timeout, (e.stderr or b"")[-2000:]))
    lines = p.stdout.decode("utf-8", "replace").strip().splitlines()
    check(lines, "browser scenario %s printed nothing (exit %d): %s"
          % (scenario, p.returncode, p.stderr.decode("utf-8", "replace")[-3000:]))
    out = json.loads(lines[-1])
    tally.log(json.dumps(out, indent=1)[:20000])
    check(out.get("ok"), "browser scenario %s failed: %s" % (scenario, out.get("error")))
    check_eq(out["page_errors"], [], "%s: page errors" % scenario)
    check_eq(out["console_errors"], [], "%s: console errors" % scenario)
    check_eq(out["failed_requests"], [], "%s: failed requests" % scenario)
    bad = [r for r in out["bad_responses"] if not expected_error(r)]
    check_eq(bad, [], "%s: HTTP errors the page did not expect" % scenario)
    return out


def expected_error(r):
    """HTTP errors a page may meet by design: the sign-in test's wrong key, and the answer of
    a server without a query kind or endpoint (the page then shows its "not available" state)."""
    if r["status"] == 401 and r["url"].startswith("/api/v1/project"):
        return True
    if r["status"] == 400 and re.search(r"kind: unknown|not (yet )?implemented", r["body"]):
        return True
    return r["status"] == 404 and r["url"].startswith("/api/v1/realtime")


def supported(srv, kind, extra=None):
    """True when the server answers this query kind (it is being built in parallel)."""
    q = {"project": P, "kind": kind, "from": tally.day_add(today(), -7), "to": today()}
    q.update(extra or {})
    r = srv.query(q)
    return r.status == 200


def num(v):
    """A cell's data-value as the API's number."""
    if v is None or v == "":
        return None
    f = float(v)
    return int(f) if f == int(f) else f


# ---------------------------------------------------------------- served


def test_web_served():
    with Server() as s:
        r = s.request("GET", "/")
        check_eq(r.status, 200, "GET /")
        check_eq(r.header("Content-Type"), "text/html; charset=utf-8", "type of /")
        check_eq(r.header("Cache-Control"), "no-cache", "Cache-Control of /")
        csp = r.header("Content-Security-Policy") or ""
        for part in ("default-src 'self'", "script-src 'self'", "connect-src 'self'",
                     "object-src 'none'", "frame-ancestors 'none'"):
            check(part in csp, "CSP lacks %s: %r" % (part, csp))
        check("unsafe-inline" not in csp and "unsafe-eval" not in csp, "CSP: %r" % csp)
        check_eq(r.header("X-Content-Type-Options"), "nosniff", "nosniff")
        html = r.body.decode("utf-8")
        check(not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script in index.html")
        assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
        check(len(assets) >= 3, "index.html names its assets: %r" % assets)
        etag = r.header("ETag")
        check_eq(s.request("GET", "/", headers={"If-None-Match": etag}).status, 304, "304 of /")
        for route in PAGES + ["/signin", "/persons/anon-1"]:
            r2 = s.request("GET", route + "?range=7d")
            check_eq((r2.status, r2.body), (200, r.body), "SPA route %s" % route)

        total = len(gzip.compress(r.body, 9))
        types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml"}
        for a in assets:
            check(re.match(r"^/assets/[A-Za-z0-9_-]+-[A-Za-z0-9]{6,}\.[a-z0-9]+$", a),
                  "asset name without a content hash: %s" % a)
            r2 = s.request("GET", a)
            check_eq(r2.status, 200, "GET %s" % a)
            check_eq(r2.header("Content-Type"), types[os.path.splitext(a)[1]], "type of %s" % a)
            check_eq(r2.header("Cache-Control"), "public, max-age=31536000, immutable",
                     "Cache-Control of %s" % a)
            check_eq(r2.header("X-Content-Type-Options"), "nosniff", "nosniff of %s" % a)
            check(r2.header("Content-Security-Policy"), "CSP of %s" % a)
            gz = s.request("GET", a, headers={"Accept-Encoding": "gzip, deflate"})
            if gz.header("Content-Encoding") == "gzip":
                check_eq(gzip.decompress(gz.body), r2.body, "gzip of %s" % a)
                total += len(gz.body)
            else:
                total += len(r2.body)
            check_eq(s.request("GET", a, headers={"If-None-Match": r2.header("ETag")}).status,
                     304, "304 of %s" % a)
        check(total <= 300 * 1024, "page weight %d B gzipped is over 300 KB" % total)
        tally.log("page weight: %d B gzipped" % total)

        for bad in ("/assets/nope-AAAAAAAA.js", "/assets/", "/assets/../index.html",
                    "/favicon.ico", "/nope", "/overview/x/y"):
            check_eq(s.request("GET", bad).status, 404, "GET %s" % bad)
        # Not shadowed: the API and ingest answer as before.
        check_eq(s.request("GET", "/api/v1/query").status, 405, "GET /api/v1/query")
        check_eq(s.request("GET", "/healthz").status, 200, "/healthz")
        s.collect_ok([tally.event("pageview")])
        check_eq(s.request("POST", "/overview", b"{}").status, 404, "POST to a page")


def test_web_dashboards_store():
    s = Server()
    s.start()
    try:
        u = "/api/v1/dashboards?project=" + P
        h = {"Authorization": "Bearer " + RK, "Content-Type": "application/json"}
        check_eq(s.request("GET", u).status, 401, "no key")
        check_eq(s.request("GET", u, headers={"Authorization": "Bearer rk_ktm"}).status, 401,
                 "another project's key")
        r = s.request("GET", u, headers=h)
        check_eq((r.status, r.json()), (200, {"dashboards": []}), "before the first save")
        doc = {"dashboards": [{"id": "a1", "name": "Main ✓", "tiles": [
            {"id": "t1", "title": "DAU", "page": "trends", "params": {"metric": "persons"}}]}]}
        r = s.request("PUT", u, json.dumps(doc), headers=h)
        check_eq(r.status, 200, "PUT: %r" % r.body)
        check_eq(s.request("GET", u, headers=h).json(), doc, "read back")
        for bad in (b"[1]", b"{", b"", b'"x"'):
            check_eq(s.request("PUT", u, bad, headers=h).status, 400, "PUT %r" % bad)
        check_eq(s.request("DELETE", u, headers=h).status, 405, "DELETE")
        check_eq(s.request("GET", u, headers=h).json(), doc, "unchanged by bad PUTs")
        path = os.path.join(s.data_dir, "dashboards", P + ".json")
        check(os.path.exists(path), "kept in %s" % path)
        check(not os.path.exists(path + ".tmp"), "temp file left")
        # Projects are separate.
        r = s.request("GET", "/api/v1/dashboards?project=ktm",
                      headers={"Authorization": "Bearer rk_ktm"})
        check_eq(r.json(), {"dashboards": []}, "ktm's dashboards")
        r = s.request("GET", "/api/v1/project", headers={"Authorization": "Bearer rk_ktm"})
        check_eq(r.json(), {"name": "ktm", "timezone": "Asia/Kathmandu"}, "/api/v1/project")
        check_eq(s.request("GET", "/api/v1/project?project=demo",
                           headers={"Authorization": "Bearer rk_ktm"}).status, 401,
                 "project of another key")
        s.restart()
        check_eq(s.request("GET", u, headers=h).json(), doc, "after a restart")
    finally:
        s.stop()


# ---------------------------------------------------------------- browser


def test_web_browser_pages():
    """Every page loads without console errors; screenshots of each."""
    s = loaded_server()
    try:
        out = drive(s, "pages")
        check_eq(out["signin_redirect"], "/signin", "signed out: redirected")
        check("refused" in out["signin_bad_key"], "bad key: %r" % out["signin_bad_key"])
        check_eq(out["keyboard_nav"], "/trends", "g t")
        check_eq(out["dark_theme"], "dark", "dark mode from the system setting")
        kinds = {"/funnels": "funnel", "/retention": "retention", "/sessions": "sessions",
                 "/paths": "paths"}
        for path, v in out["pages"].items():
            check_eq(v["errors"], [], "%s: error states" % path)
            check_eq(v["unlabelled"], [], "%s: controls without an accessible name" % path)
            check_eq(v["uncaptioned_charts"], 0, "%s: charts without a caption naming the zone"
                     % path)
            check(v["csv_buttons"] >= len(v["tables"]), "%s: a CSV download per table" % path)
            kind = kinds.get(path)
            if kind and path != "/funnels" and not supported(s, kind):
                check(v["unsupported"], "%s: kind %s unsupported, but no designed state: %r"
                      % (path, kind, v))
            else:
                check_eq(v["unsupported"], [], "%s: unsupported state" % path)
        ov = out["pages"]["/overview"]
        check(ov["charts"] >= 2 and len(ov["tables"]) == 4, "overview: %r" % ov)
        pp = out["pages"]["/persons?id=anon-1"]
        check(pp["empty"] == [] and "Persons" in pp["h1"], "person page: %r" % pp)
        check(all("time zone UTC" in c for c in ov["captions"] if c), "overview captions: %r"
              % ov["captions"])
        tr = out["pages"]["/trends"]
        check(tr["charts"] == 1 and tr["csv_buttons"] == 1, "trends: %r" % tr)
        check_eq(out["pages"]["/funnels"]["empty"][:1], ["Add at least two steps.Type an event "
                 "name in each step; suggestions come from the last 30 days."], "funnels: empty")
    finally:
        s.stop()


def test_web_browser_numbers():
    """The overview's and trends' numbers equal the API's answers for the same queries."""
    s = loaded_server()
    try:
        t = today()
        f = tally.day_add(t, -29)
        out = drive(s, "overview")
        k = out["view"]["kpis"]
        perf = out["perf"]
        print("overview: ready in %d ms (DOMContentLoaded %d ms), app %d B transferred, %d queries"
              % (perf["ready_ms"], perf["dom_content_loaded_ms"], perf["app_transfer_bytes"],
                 perf["api_requests"]))
        check(perf["app_transfer_bytes"] <= 300 * 1024, "page weight over the wire: %r" % perf)

        def last(q):
            q = dict(q, project=P, kind="trends", tz="UTC")
            rows = s.query_ok(q)["rows"]
            return rows[-1][-1]

        dau = s.query_ok({"project": P, "kind": "trends", "metric": "persons", "interval": "day",
                          "from": f, "to": t, "tz": "UTC"})["rows"]
        check_eq(num(k["kpi-dau"]), dau[-1][1], "DAU")
        check_eq(num(k["kpi-wau"]), last({"metric": "wau", "interval": "day", "from": t, "to": t}),
                 "WAU")
        mau = last({"metric": "mau", "interval": "day", "from": t, "to": t})
        check_eq(num(k["kpi-mau"]), mau, "MAU")
        check(abs(float(k["kpi-stickiness"]) - sum(r[1] for r in dau) / len(dau) / mau) < 1e-9,
              "stickiness %r" % k["kpi-stickiness"])
        ev = s.query_ok({"project": P, "kind": "trends", "metric": "events", "interval": "day",
                         "from": f, "to": t, "tz": "UTC"})["rows"]
        check_eq(num(k["kpi-events"]), sum(r[1] for r in ev), "events, 30 days")
        check(mau > 10 and sum(r[1] for r in ev) > 100, "generated data present")
        for tid, bd in (("top-countries", "country"), ("platforms", "platform"),
                        ("app-versions", "app_version")):
            rows = s.query_ok({"project": P, "kind": "trends", "metric": "mau", "interval": "day",
                               "from": t, "to": t, "tz": "UTC", "breakdown": bd})["rows"]
            want = sorted(((r[1], r[2]) for r in rows if r[2] > 0), key=lambda x: (-x[1], x[0]))
            got = [(r[0] or None, num(r[1])) for r in out["tops"][tid]]
            check_eq(sorted(got, key=lambda x: (-x[1], x[0])), want[:10], tid)
        rows = s.query_ok({"project": P, "kind": "trends", "metric": "events", "interval": "month",
                           "from": f, "to": t, "tz": "UTC", "breakdown": "url",
                           "where": [{"prop": "url", "op": "is_set"}]})["rows"]
        tot = {}
        for r in rows:
            tot[r[1]] = tot.get(r[1], 0) + r[2]
        got = {r[0]: num(r[1]) for r in out["tops"]["top-pages"]}
        check_eq(got, {u: n for u, n in tot.items() if u in got}, "top pages")
        check_eq(len(got), min(10, len(tot)), "top pages count")

        # Drill-down: the top country opens persons per day in that country.
        c = out["drill_value"]
        rows = s.query_ok({"project": P, "kind": "trends", "metric": "persons", "interval": "day",
                           "from": f, "to": t, "tz": "UTC",
                           "where": [{"prop": "country", "op": "=", "value": c}]})["rows"]
        check_eq([[r[0], num(r[1])] for r in out["drill"]["tables"][0]["rows"]], rows,
                 "drill-down to country %s" % c)

        # Trends at a URL: the table equals the API's rows.
        where = [{"prop": "country", "op": "not_in", "value": ["JP"]},
                 {"prop": "url", "op": "contains", "value": "p"}]
        path = ("/trends?metric=persons&event=pageview&interval=day&range=14d&tz=Asia%2FKathmandu"
                "&breakdown=platform&where=" + urllib.parse.quote(json.dumps(where)))
        out = drive(s, "view", {"path": path})
        from_, to_ = tally.day_add(ktm_today(), -13), ktm_today()
        want = s.query_ok({"project": P, "kind": "trends", "metric": "persons", "event": "pageview",
                           "interval": "day", "from": from_, "to": to_, "tz": "Asia/Kathmandu",
                           "breakdown": "platform", "where": where})
        tb = out["view"]["tables"][0]
        check_eq(tb["columns"], ["bucket", "platform", "persons"], "trends columns")
        check_eq([[r[0], r[1], num(r[2])] for r in tb["rows"]], want["rows"], "trends rows")
        check(any("time zone Asia/Kathmandu" in c for c in out["view"]["captions"]),
              "caption names the zone: %r" % out["view"]["captions"])

        # Compare with the previous period, with a breakdown: the previous value of each row
        # is the API's answer for the 7 days before.
        out = drive(s, "view", {"path": "/trends?breakdown=platform&compare=1&range=7d"})
        cur = s.query_ok({"project": P, "kind": "trends", "metric": "events", "interval": "day",
                          "from": tally.day_add(t, -6), "to": t, "tz": "UTC",
                          "breakdown": "platform"})["rows"]
        prev = s.query_ok({"project": P, "kind": "trends", "metric": "events", "interval": "day",
                           "from": tally.day_add(t, -13), "to": tally.day_add(t, -7), "tz": "UTC",
                           "breakdown": "platform"})["rows"]
        pmap = {(r[0], r[1]): r[2] for r in prev}
        tb = out["view"]["tables"][0]
        check_eq(tb["columns"], ["bucket", "platform", "events", "previous bucket", "previous",
                                 "change"], "compare columns with a breakdown")
        got = [[r[0], r[1], num(r[2]), r[3], num(r[4])] for r in tb["rows"]]
        want = [[r[0], r[1], r[2], tally.day_add(r[0], -7), pmap.get((tally.day_add(r[0], -7), r[1]))]
                for r in cur]
        check_eq(got, want, "compare rows with a breakdown")
    finally:
        s.stop()


def ktm_today():
    ktm = datetime.timezone(datetime.timedelta(hours=5, minutes=45))
    return datetime.datetime.now(ktm).strftime("%Y-%m-%d")


def test_web_browser_url_roundtrip():
    """A trends view set up through the controls: its URL reproduces it in a new page."""
    s = loaded_server()
    try:
        out = drive(s, "trends_roundtrip")
        a, b = out["first"], out["second"]
        check_eq(b["tables"], a["tables"], "same table from the URL")
        check_eq(b["captions"], a["captions"], "same captions")
        for k in ("metric", "interval", "event", "breakdown", "filter-prop", "filter-op",
                  "filter-value", "range"):
            check_eq(out["controls_again"].get(k), out["controls"].get(k), "control %s" % k)
        check_eq(out["controls"]["metric"], "persons", "metric")
        check_eq(out["controls"]["range"], "14d", "range")
        # The same query through the API.
        t = today()
        want = s.query_ok({"project": P, "kind": "trends", "metric": "persons",
                           "event": "pageview", "interval": "week", "from": tally.day_add(t, -13),
                           "to": t, "tz": "UTC", "breakdown": "country",
                           "where": [{"prop": "platform", "op": "in", "value": ["web", "ios"]}]})
        check_eq([[r[0], r[1], num(r[2])] for r in a["tables"][0]["rows"]], want["rows"],
                 "table = API")
        cmp_cols = out["compare"]["tables"][0]["columns"]
        check_eq(cmp_cols, ["bucket", "persons", "previous bucket", "previous", "change"],
                 "compare columns")
        check("compare=1" not in out["after_back"], "back: %r" % out["after_back"])
    finally:
        s.stop()


def test_web_browser_funnel():
    """A funnel built through the UI gives the API's funnel (when the server has funnels)."""
    s = loaded_server()
    try:
        steps = ["pageview", "signup", "purchase"]
        if not supported(s, "funnel", {"steps": [{"event": e} for e in steps], "window_s": 86400}):
            out = drive(s, "funnel", {"steps": steps})
            check(out["view"]["unsupported"], "funnel unsupported: designed state: %r"
                  % out["view"])
            return
        out = drive(s, "funnel", {"steps": steps, "window": 604800})
        t = today()
        want = s.query_ok({"project": P, "kind": "funnel", "from": tally.day_add(t, -29), "to": t,
                           "tz": "UTC", "window_s": 604800,
                           "steps": [{"event": e} for e in steps]})
        check_eq(out["bars"], [x["persons"] for x in want["steps"]], "funnel bars")
        rows = out["view"]["tables"][0]["rows"]
        check_eq([(r[1], num(r[2])) for r in rows], [(x["event"], x["persons"])
                                                     for x in want["steps"]], "funnel table")
        check(want["steps"][0]["persons"] > want["steps"][2]["persons"] > 0, "a real funnel: %r"
              % want)
        # A step with its own filter, and a breakdown, from a URL.
        steps = [{"event": "pageview", "where": [{"prop": "url", "op": "=", "value": "/pricing"}]},
                 "signup"]
        path = "/funnels?breakdown=platform&steps=" + urllib.parse.quote(json.dumps(steps))
        out = drive(s, "view", {"path": path, "shot": "funnels_breakdown"})
        want = s.query_ok({"project": P, "kind": "funnel", "from": tally.day_add(t, -29), "to": t,
                           "tz": "UTC", "window_s": 86400, "breakdown": "platform",
                           "steps": [steps[0], {"event": "signup"}]})
        rows = out["view"]["tables"][0]["rows"]
        check_eq([(r[0] or None, r[2], num(r[3])) for r in rows],
                 [(b["value"], x["event"], x["persons"]) for b in want["breakdowns"]
                  for x in b["steps"]], "funnel by platform with a step filter")
        check(want["breakdowns"], "breakdowns present: %r" % want)
    finally:
        s.stop()


def test_web_browser_realtime():
    """The realtime page updates when events arrive (server-sent events)."""
    s = loaded_server()
    try:
        r = s.request("GET", "/api/v1/realtime?project=" + P,
                      headers={"Authorization": "Bearer " + RK})
        out = drive(s, "realtime")
        if r.status != 200:
            check(out["view_before"]["unsupported"], "realtime missing: designed state: %r"
                  % out["view_before"])
            return
        check_eq(out["collect_status"], 200, "POST /collect")
        check(out["active_after"] >= out["active_before"] + 5, "active persons went %r -> %r"
              % (out["active_before"], out["active_after"]))
        live = [x for x in out["feed"] if "/live-" in x]
        check(len(live) == 5 or "recent" not in r.json(),
              "the feed shows the 5 new events: %r" % out["feed"][:10])
        pages = [row[0] for row in out["view_after"]["tables"][0]["rows"]]
        check(any(u.startswith("/live-") for u in pages), "top pages: %r" % pages)
    finally:
        s.stop()


def test_web_browser_pin():
    """A trends view pinned to a new dashboard is on it after a reload (saved on the server)."""
    s = loaded_server()
    try:
        out = drive(s, "pin")
        check_eq(out["tiles"], ["Persons by platform"], "tiles")
        check_eq(out["view"]["unsupported"] + out["view"]["errors"], [], "dashboard states")
        doc = s.request("GET", "/api/v1/dashboards?project=" + P,
                        headers={"Authorization": "Bearer " + RK}).json()
        check_eq([d["name"] for d in doc["dashboards"]], ["Leadership"], "saved on the server")
        check_eq(doc["dashboards"][0]["tiles"][0]["params"]["breakdown"], "platform", "params")
    finally:
        s.stop()


def test_web_browser_analyses():
    """Retention, sessions, paths (both directions) and the stickiness and lifecycle trends
    show the API's answers for the same queries (each
    once the server has that kind; until then the page's "not available" state)."""
    s = loaded_server()
    try:
        t = today()
        f30, f90 = tally.day_add(t, -29), tally.day_add(t, -89)
        cases = [
            ("retention", "/retention?period=week&periods=6&return_event=pageview",
             {"kind": "retention", "period": "week", "periods": 6, "return_event": "pageview",
              "from": f90, "to": t}),
            ("sessions", "/sessions?interval=week",
             {"kind": "sessions", "interval": "week", "from": f30, "to": t}),
            ("lifecycle", "/trends?metric=lifecycle&interval=week",
             {"kind": "trends", "metric": "lifecycle", "interval": "week", "from": f30, "to": t}),
            ("stickiness", "/trends?metric=stickiness&interval=day&range=7d",
             {"kind": "trends", "metric": "stickiness", "interval": "day",
              "from": tally.day_add(t, -6), "to": t}),
            ("paths-previous", "/paths?direction=previous&start_event=purchase&depth=3",
             {"kind": "paths", "direction": "previous", "end_event": "purchase", "depth": 3,
              "from": f30, "to": t}),
            ("paths", "/paths?start_event=pageview&depth=3",
             {"kind": "paths", "start_event": "pageview", "depth": 3, "from": f30, "to": t}),
        ]
        out = drive(s, "views", {"views": [[path, kind] for kind, path, _ in cases]})
        for (kind, path, q), v in zip(cases, out["views"]):
            r = s.query(dict(q, project=P, tz="UTC"))
            if r.status != 200:
                check(v["unsupported"], "%s: no answer from the API (%r) but no designed state: "
                      "%r" % (kind, r.body[:200], v))
                continue
            want = r.json()
            check_eq(v["unsupported"] + v["errors"], [], "%s: states" % kind)
            check(any("time zone UTC" in c for c in v["captions"]), "%s: caption %r"
                  % (kind, v["captions"]))
            rows = v["tables"][0]["rows"]
            if kind == "retention":
                got = [(r_[0], num(r_[1])) for r_ in rows]
                check_eq(got, [(c["cohort"], c["persons"]) for c in want["cohorts"]],
                         "retention cohorts")
                for row, c in zip(rows, want["cohorts"]):
                    shown = [num(x) for x in row[2:2 + len(c["retained"])]]
                    for k, (a, b) in enumerate(zip(shown, c["retained"])):
                        check(a is None or a == b, "retention %s period %d: %r vs %r"
                              % (c["cohort"], k, a, b))
                    check_eq(shown[0], c["retained"][0], "retention %s period 0" % c["cohort"])
            elif kind in ("sessions", "lifecycle", "stickiness"):
                check_eq(v["tables"][0]["columns"], want["columns"], "%s columns" % kind)
                first = (lambda x: num(x)) if kind == "stickiness" else (lambda x: x)
                check_eq([[num(x) if i else first(x) for i, x in enumerate(r_)] for r_ in rows],
                         want["rows"], "%s rows" % kind)
            else:
                got = [(r_[0], num(r_[1])) for r_ in rows]
                check_eq(got, [(" → ".join(x["path"]), x["persons"]) for x in want["paths"]],
                         "paths")
    finally:
        s.stop()
