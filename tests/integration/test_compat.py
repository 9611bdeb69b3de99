"""SDK-compatible endpoints (API.md "Compatible endpoints", docs/compat.md): the same scenario
(anonymous events, page views, identify/merge with traits, a refused merge of two users,
repeated client ids, and a request the client retries after tally stored it) sent through each
official client library from the npm registry — @segment/analytics-node, posthog-node,
@snowplow/node-tracker (tests/compat/send.mjs) — into one project, and the same scenario as
native /collect events into another, must give the same answers: events and persons per day,
breakdowns by event and by the built-in fields, a property filter, merges refused, and the
`tally export` rows. posthog-js and plausible-tracker run in Debian's chromium on a page of
another origin (tests/compat/browser.mjs) and are compared with native twins too, as is
Segment's analytics.js, which takes its settings from tally; and so are
Plausible and GA4 bodies sent from Python. Also: the encodings and start-up calls of
PostHog's browser library, CORS, keys, and the answers each SDK expects."""

import base64
import datetime
import gzip
import json
import os
import re
import shutil
import subprocess
import urllib.parse
import uuid

import tally
from tally import Server, TestFailure, check, check_eq, run_cli, tempdir

TIMEOUT = 240

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPAT = os.path.join(ROOT, "tests", "compat")

CLIENTS = ("segment", "posthog", "snowplow")
# Projects: one per client and one for its native twin.
PROJECTS = {}
for _c in CLIENTS + ("plausible", "ga4"):
    for _n in (_c, _c + "_native"):
        PROJECTS[_n] = ("UTC", "wk_" + _n, "rk_" + _n)
PROJECTS["demo"] = ("UTC", "wk_demo", "rk_demo")


def days_ago(n):
    d = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=n)
    return d.isoformat()


def at(day_back, minute):
    return "%sT09:%02d:00Z" % (days_ago(day_back), minute)


def scenario():
    """The steps of tests/compat/send.mjs. Events carry one of anon / user; identify steps
    link them. Steps with "dup" repeat an earlier client id."""
    ids = {}

    def eid(key):
        if key not in ids:
            ids[key] = str(uuid.uuid4())
        return ids[key]

    s = []
    # day 3: a1 browses anonymously, signs up, identifies as u1
    s.append(dict(op="page", anon="a1", ts=at(3, 0), url="https://x.io/", referrer="https://g.co/",
                  id=eid(1)))
    s.append(dict(op="event", event="signup", anon="a1", ts=at(3, 1), url="https://x.io/signup",
                  app_version="1.0", os="iOS", props={"plan": "pro", "n": 1}, id=eid(2)))
    s.append(dict(op="identify", anon="a1", user="u1", traits={"email": "u1@x.io", "plan": "pro"}))
    s.append(dict(op="event", event="purchase", user="u1", ts=at(3, 2), app_version="1.0",
                  os="iOS", props={"plan": "pro", "amount": 9.5}, id=eid(3)))
    # a repeat of the same client id (an SDK's own retry of one event)
    s.append(dict(s[-1], dup=True))
    s.append(dict(op="page", user="u1", ts=at(3, 3), url="https://x.io/thanks", id=eid(4)))
    # day 2: a2 only browses; a3 identifies as u2; u1 comes back
    s.append(dict(op="page", anon="a2", ts=at(2, 0), url="https://x.io/", referrer="https://b.io/",
                  id=eid(5)))
    s.append(dict(op="page", anon="a3", ts=at(2, 1), url="https://x.io/pricing", id=eid(6)))
    s.append(dict(op="event", event="trial", anon="a3", ts=at(2, 2), os="Android",
                  app_version="2.0", props={"plan": "free"}, id=eid(7)))
    s.append(dict(op="identify", anon="a3", user="u2", traits={"email": "u2@x.io"}))
    s.append(dict(op="event", event="purchase", user="u2", ts=at(2, 3), os="Android",
                  app_version="2.0", props={"plan": "free", "amount": 3}, id=eid(8)))
    s.append(dict(op="event", event="purchase", user="u1", ts=at(2, 4), props={"plan": "pro"},
                  id=eid(9)))
    # day 1: a1 (already u1's) is linked to u2: refused, two identified users
    s.append(dict(op="identify", anon="a1", user="u2", traits={}))
    s.append(dict(op="event", event="login", user="u2", ts=at(1, 0), id=eid(10)))
    s.append(dict(op="page", user="u2", ts=at(1, 1), url="https://x.io/app", id=eid(11)))
    s.append(dict(op="event", event="signup", anon="a4", ts=at(1, 2), url="https://x.io/signup",
                  props={"plan": "pro"}, id=eid(12)))
    s.append(dict(s[-1], dup=True))
    return s


def client_steps(client, steps):
    """What a client can express: Snowplow cannot set event ids, so it sends no repeats."""
    if client == "snowplow":
        return [x for x in steps if not x.get("dup")]
    return steps


def native_events(client, steps):
    """The native twin: identify folds into the user's next event (both ids, traits as
    user_properties), page → "$pageview", fields the client cannot send are left out."""
    pending = {}
    out = []
    for x in steps:
        if x["op"] == "identify":
            pending[x["user"]] = (x["anon"], x.get("traits") or {})
            continue
        e = {"event": "$pageview" if x["op"] == "page" else x["event"], "timestamp": x["ts"],
             "event_id": x["id"]}
        if x.get("anon"):
            e["anonymous_id"] = x["anon"]
        if x.get("user"):
            e["user_id"] = x["user"]
            if x["user"] in pending:
                anon, traits = pending.pop(x["user"])
                e["anonymous_id"] = anon
                if traits and client != "snowplow":
                    e["user_properties"] = traits
        fields = ("url", "referrer") if x["op"] == "page" else ("url", "referrer", "app_version", "os")
        if client == "snowplow":
            fields = ("url", "referrer") if x["op"] == "page" else ()
        for f in fields:
            if x.get(f):
                e[f] = x[f]
        if x["op"] == "event" and x.get("props"):
            e["properties"] = x["props"]
        out.append(e)
    return out


def metric(s, name):
    r = s.request("GET", "/metrics")
    m = re.search(r"^tally_%s (\d+)$" % name, r.body.decode(), re.M)
    return int(m.group(1)) if m else 0


def answers(s, project):
    """Every answer compared between a client's project and its native twin."""
    rk = PROJECTS[project][2]
    base = {"project": project, "kind": "trends", "interval": "day", "from": days_ago(5),
            "to": days_ago(0)}
    qs = [dict(metric="events"), dict(metric="persons"), dict(metric="mau"),
          dict(metric="events", breakdown="event"), dict(metric="persons", breakdown="event"),
          dict(metric="events", breakdown="url"), dict(metric="events", breakdown="referrer"),
          dict(metric="events", breakdown="app_version"), dict(metric="events", breakdown="os"),
          dict(metric="persons", where=[{"prop": "properties.plan", "op": "=", "value": "pro"}]),
          dict(metric="events", event="purchase"), dict(metric="sum:properties.amount")]
    out = []
    for q in qs:
        j = s.query_ok(dict(base, **q), key=rk)
        out.append((json.dumps(q, sort_keys=True), j["columns"], j["rows"]))
    return out


def compare_answers(s, project, twin):
    a, b = answers(s, project), answers(s, twin)
    for (q, ca, ra), (_, cb, rb) in zip(a, b):
        check_eq((ca, ra), (cb, rb), "answer of %s: %s vs %s" % (q, project, twin))
    # a scenario that counted nothing would compare equal too
    total = sum(r[-1] for r in a[0][2])
    check(total > 5, "%s: only %r events stored" % (project, total))


def person(s, project, did):
    """The person of a distinct id as comparable data: its distinct ids, its events (name
    and minute) and the scenario's traits among its properties."""
    r = s.request("GET", "/api/v1/persons/%s/events?project=%s&from=%s&to=%s&limit=1000"
                  % (did, project, days_ago(5), days_ago(0)),
                  headers={"Authorization": "Bearer " + PROJECTS[project][2]})
    check_eq(r.status, 200, "person %s of %s (%r)" % (did, project, r))
    j = r.json()
    props = j["person"].get("properties") or {}
    return (sorted(set(j["person"]["distinct_ids"])),
            sorted((e["event"], minute(e["timestamp"])) for e in j["events"]),
            {k: v for k, v in props.items() if k in ("email", "plan")})


def minute(ts):
    t = tally.parse_time(ts) if isinstance(ts, str) else ts
    return int(round(t / 60000.0))


def export_rows(s, project, prop_keys):
    p = run_cli(["export", "--data", s.data_dir, "--config", s.config, "--project", project])
    rows = []
    for line in p.stdout.decode().splitlines():
        e = json.loads(line)
        props = {k: v for k, v in (e.get("properties") or {}).items() if k in prop_keys}
        rows.append((e["event"], minute(e["timestamp"]), e.get("url"), e.get("referrer"),
                     e.get("app_version"), e.get("os"), json.dumps(props, sort_keys=True)))
    return sorted(rows, key=repr)


def node_bin():
    node = shutil.which("node") or shutil.which("nodejs")
    check(node is not None, "node is not installed (mk/compat.mk adds nodejs to DEB_DEPS)")
    check(os.path.isdir(os.path.join(COMPAT, "node_modules", "posthog-node")),
          "tests/compat/node_modules missing: run `make deps` or `cd tests/compat && npm ci`")
    return node


def run_client(s, client, steps, fail):
    root = tempdir()
    path = os.path.join(root, "scenario.json")
    with open(path, "w") as f:
        json.dump(steps, f)
    p = subprocess.run([node_bin(), "send.mjs", client, s.url, "wk_" + client, path, str(fail)],
                       cwd=COMPAT, capture_output=True, timeout=120)
    check(p.returncode == 0, "node send.mjs %s exited %d:\n%s\n%s"
          % (client, p.returncode, p.stdout.decode()[-2000:], p.stderr.decode()[-4000:]))
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    check_eq(out["failed"], fail, "%s: requests the proxy failed (%r)" % (client, out))
    return out


def check_client(client):
    steps = client_steps(client, scenario())
    prop_keys = {"plan", "n", "amount"}
    with Server(projects=PROJECTS) as s:
        refused0, dups0 = metric(s, "identity_merges_refused_total"), metric(s, "events_duplicate_total")
        # Two runs of the client. A retried request arrives after the requests sent while it
        # waited, and merges depend on their order (the first user to claim an anonymous id
        # gets it): so the refused merge comes in a second run, after the first has
        # delivered everything, retry included.
        k = next(i for i, x in enumerate(steps) if x["op"] == "identify" and x["user"] == "u2"
                 and x["anon"] == "a1")
        run_client(s, client, steps[:k], 1)
        run_client(s, client, steps[k:], 0)
        refused1, dups1 = metric(s, "identity_merges_refused_total"), metric(s, "events_duplicate_total")
        check(dups1 - dups0 >= 1, "%s: the retried request gave no duplicates" % client)
        nat = native_events(client, steps)
        s.collect_ok(nat[:7], key="wk_%s_native" % client)
        s.collect_ok(nat[7:], key="wk_%s_native" % client)
        s.collect_ok(nat[:3], key="wk_%s_native" % client)  # a native retry
        compare_answers(s, client, client + "_native")
        refused2 = metric(s, "identity_merges_refused_total")
        # One refused merge each way. Identify calls are not deduplicated by the indexer (it
        # keeps ids of event rows only), so when the request the proxy failed held the refused
        # identify, the client's retry applies it again and it is counted again.
        check_eq(refused2 - refused1, 1, "merges refused natively")
        # Person by person: the same ids merged, the same events, the same traits.
        for did in ("a1", "u1", "a2", "a3", "u2", "a4"):
            a, b = person(s, client, did), person(s, client + "_native", did)
            check_eq(a, b, "%s: person of %s (ids, events, traits) vs native" % (client, did))
        check(1 <= refused1 - refused0 <= 2, "%s: merges refused through the client: %d, want 1"
              % (client, refused1 - refused0))
        s.stop()
        a = export_rows(s, client, prop_keys)
        b = export_rows(s, client + "_native", prop_keys)
        check_eq(len(a), len(b), "%s: exported rows" % client)
        for x, y in zip(a, b):
            check_eq(x, y, "%s: exported row (event, minute, url, referrer, app_version, os, props)"
                     % client)


def test_compat_segment_client():
    check_client("segment")


def test_compat_posthog_client():
    check_client("posthog")


def test_compat_snowplow_client():
    check_client("snowplow")


# ---------------------------------------------------------------- Plausible and GA4


def test_compat_plausible_and_ga4_equal_native():
    with Server(projects=PROJECTS) as s:
        ua1 = {"User-Agent": "Mozilla/5.0 (X11) Firefox/120", "Content-Type": "text/plain"}
        ua2 = {"User-Agent": "Mozilla/5.0 (Mac) Safari/17", "Content-Type": "text/plain"}
        # plausible-tracker's short keys, props as a JSON string; the domain names the
        # project (plausible.example → project "plausible" via its write key here)
        sent = [(ua1, {"n": "pageview", "u": "https://p.io/", "d": "wk_plausible", "r": "https://g.co/"}),
                (ua1, {"n": "Signup", "u": "https://p.io/signup#x", "d": "wk_plausible",
                       "p": json.dumps({"plan": "pro", "l": [1]})}),
                (ua2, {"name": "pageview", "url": "https://p.io/pricing", "domain": "wk_plausible",
                       "props": {"plan": "free"}})]
        for h, body in sent:
            r = s.request("POST", "/api/event", json.dumps(body), h)
            check_eq(r.status, 202, "plausible status (%r)" % r)
            check_eq(r.body, b"ok", "plausible answer")
        s.collect_ok([{"event": "$pageview", "anonymous_id": "v1", "url": "https://p.io/",
                       "referrer": "https://g.co/"},
                      {"event": "Signup", "anonymous_id": "v1", "url": "https://p.io/signup",
                       "properties": {"plan": "pro"}},
                      {"event": "$pageview", "anonymous_id": "v2", "url": "https://p.io/pricing",
                       "properties": {"plan": "free"}}], key="wk_plausible_native")
        compare_answers_small(s, "plausible", "plausible_native")

        # GA4 Measurement Protocol
        body = {"client_id": "555.1", "user_id": "g1", "events": [
            {"name": "page_view", "params": {"page_location": "https://g.io/", "page_referrer": "https://b.io/"}},
            {"name": "purchase", "params": {"plan": "pro", "amount": 4, "session_id": "s1"}}]}
        r = s.request("POST", "/mp/collect?measurement_id=G-1&api_secret=wk_ga4", json.dumps(body))
        check_eq(r.status, 204, "ga4 status (%r)" % r)
        body2 = {"client_id": "555.2", "events": [{"name": "page_view", "params": {"page_location": "https://g.io/x"}}]}
        r = s.request("POST", "/mp/collect?api_secret=wk_ga4", json.dumps(body2))
        check_eq(r.status, 204, "ga4 status (%r)" % r)
        s.collect_ok([{"event": "$pageview", "anonymous_id": "555.1", "user_id": "g1",
                       "url": "https://g.io/", "referrer": "https://b.io/"},
                      {"event": "purchase", "anonymous_id": "555.1", "user_id": "g1",
                       "session_id": "s1", "properties": {"plan": "pro", "amount": 4}},
                      {"event": "$pageview", "anonymous_id": "555.2", "url": "https://g.io/x"}],
                     key="wk_ga4_native")
        compare_answers_small(s, "ga4", "ga4_native")
        # the debug endpoint validates and stores nothing
        r = s.request("POST", "/debug/mp/collect?api_secret=wk_ga4",
                      json.dumps({"client_id": "9", "events": [{"params": {}}]}))
        check_eq(r.status, 200, "ga4 debug status")
        check_eq(len(r.json()["validationMessages"]), 1, "ga4 debug messages")
        compare_answers_small(s, "ga4", "ga4_native")


def compare_answers_small(s, project, twin):
    base = {"kind": "trends", "interval": "day", "from": days_ago(2), "to": days_ago(0)}
    for q in (dict(metric="events"), dict(metric="persons"), dict(metric="events", breakdown="event"),
              dict(metric="events", breakdown="url"), dict(metric="events", breakdown="referrer"),
              dict(metric="persons", where=[{"prop": "properties.plan", "op": "=", "value": "pro"}])):
        a = s.query_ok(dict(base, project=project, **q), key=PROJECTS[project][2])
        b = s.query_ok(dict(base, project=twin, **q), key=PROJECTS[twin][2])
        check_eq(a["rows"], b["rows"], "answer of %s: %s vs %s" % (json.dumps(q), project, twin))


def run_browser(s, client, key):
    """tests/compat/browser.mjs: the browser SDK in chromium on a page of another origin."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    check(chromium is not None, "chromium is not installed (mk/compat.mk adds it to DEB_DEPS)")
    p = subprocess.run([node_bin(), "browser.mjs", client, s.url, key, chromium], cwd=COMPAT,
                       capture_output=True, timeout=120)
    check(p.returncode == 0, "node browser.mjs %s exited %d:\n%s\n%s"
          % (client, p.returncode, p.stdout.decode()[-2000:], p.stderr.decode()[-4000:]))
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    check_eq(out["failed"], [], "failed requests from %s" % client)
    bad = [r for r in out["requests"] if r["status"] >= 400]
    check_eq(bad, [], "requests answered with an error")
    return out


def compare_browser(s, project, queries, f, t):
    base = {"kind": "trends", "interval": "day", "from": f, "to": t}
    twin = project + "_native"
    for q in queries:
        a = s.query_ok(dict(base, project=project, **q), key=PROJECTS[project][2])
        b = s.query_ok(dict(base, project=twin, **q), key=PROJECTS[twin][2])
        check_eq(a["rows"], b["rows"], "answer of %s: %s vs native" % (json.dumps(q), project))


def test_compat_posthog_js_in_chromium():
    """posthog-js itself, in Debian's chromium, on a page of another origin (CORS): remote
    config, /flags, batched gzip requests, identify, and a last event sent as the page is
    left. Its events, persons and merges must equal the native twin's."""
    with Server(projects=PROJECTS) as s:
        out = run_browser(s, "posthog", "wk_posthog")
        paths = {r["path"] for r in out["requests"]}
        check("/e/" in paths, "posthog-js sent no events: %r" % out["requests"])
        check("/flags/" in paths or "/decide/" in paths, "no /flags call: %r" % out["requests"])
        anon, url = out["anon"], out["page"]
        s.collect_ok([
            {"event": "$pageview", "anonymous_id": anon, "url": url},
            {"event": "signup", "anonymous_id": anon, "url": url, "properties": {"plan": "pro"}},
            {"event": "purchase", "user_id": "u1", "anonymous_id": anon, "url": url,
             "properties": {"amount": 9.5}, "user_properties": {"email": "u1@x.io"}}],
            key="wk_posthog_native")
        ours = {"prop": "event", "op": "in", "value": ["$pageview", "signup", "purchase"]}
        f, t = days_ago(1), days_ago(0)
        s.wait_count("posthog", f, t, "rk_posthog", 3, where=[ours])
        compare_browser(s, "posthog", (
            dict(metric="events", breakdown="event", where=[ours]), dict(metric="persons"),
            dict(metric="events", breakdown="url", where=[ours]),
            dict(metric="persons", where=[{"prop": "properties.plan", "op": "=", "value": "pro"}]),
            dict(metric="sum:properties.amount")), f, t)
        j = s.query_ok({"project": "posthog", "kind": "trends", "metric": "persons",
                        "interval": "day", "from": f, "to": t}, key="rk_posthog")
        check_eq(sum(r[-1] for r in j["rows"]), 1, "posthog-js: one person after identify")


def test_compat_analytics_js_in_chromium():
    """Segment's analytics.js (@segment/analytics-next) in chromium with cdnURL = tally: it
    takes its settings from tally (GET /v1/projects/<key>/settings) and then sends to tally's
    /v1/p, /v1/t, /v1/i; the same answers as the native twin."""
    with Server(projects=PROJECTS) as s:
        out = run_browser(s, "segment", "wk_segment")
        check(("GET", "/v1/projects/wk_segment/settings", 200) in
              [(r["method"], r["path"], r["status"]) for r in out["requests"]],
              "analytics.js loaded no settings from tally: %r" % out["requests"])
        anon, url = out["anon"], out["page"]
        s.collect_ok([
            {"event": "$pageview", "anonymous_id": anon, "url": url},
            {"event": "signup", "anonymous_id": anon, "url": url, "properties": {"plan": "pro"}},
            {"event": "purchase", "user_id": "u1", "anonymous_id": anon, "url": url,
             "properties": {"amount": 9.5}, "user_properties": {"email": "u1@x.io"}}],
            key="wk_segment_native")
        f, t = days_ago(1), days_ago(0)
        s.wait_count("segment", f, t, "rk_segment", 3)
        compare_browser(s, "segment", (
            dict(metric="events", breakdown="event"), dict(metric="persons"),
            dict(metric="events", breakdown="url"),
            dict(metric="persons", where=[{"prop": "properties.plan", "op": "=", "value": "pro"}]),
            dict(metric="sum:properties.amount")), f, t)
        check_eq(person(s, "segment", "u1")[0], sorted([anon, "u1"]), "analytics.js person ids")
        check_eq(person(s, "segment", "u1")[2], {"email": "u1@x.io"}, "analytics.js traits")
        r = s.request("GET", "/v1/projects/nope/settings")
        check_eq(r.status, 404, "settings of an unknown key")


def test_compat_plausible_tracker_in_chromium():
    """plausible-tracker (npm) in chromium: its text/plain short-key bodies with props as a
    JSON string; one visitor, the same answers as the native twin."""
    with Server(projects=PROJECTS) as s:
        out = run_browser(s, "plausible", "wk_plausible")
        check_eq([(r["method"], r["path"], r["status"]) for r in out["requests"]],
                 [("POST", "/api/event", 202)] * 2, "plausible-tracker requests")
        url = out["page"]
        s.collect_ok([{"event": "$pageview", "anonymous_id": "v", "url": url},
                      {"event": "Signup", "anonymous_id": "v", "url": url,
                       "properties": {"plan": "pro"}}], key="wk_plausible_native")
        f, t = days_ago(1), days_ago(0)
        s.wait_count("plausible", f, t, "rk_plausible", 2)
        compare_browser(s, "plausible", (
            dict(metric="events", breakdown="event"), dict(metric="persons"),
            dict(metric="events", breakdown="url"),
            dict(metric="persons", where=[{"prop": "properties.plan", "op": "=", "value": "pro"}])),
            f, t)


# ---------------------------------------------------------------- wire details


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def test_compat_posthog_browser_forms():
    """What posthog-js sends: gzip-js as text/plain, sendBeacon's data= base64 form, GET with
    ?data=, plus /flags and /decide at start-up and CORS preflights."""
    with Server(projects=PROJECTS) as s:
        def ev(n):
            return {"event": "e%d" % n, "distinct_id": "anon-1", "uuid": str(uuid.uuid4()),
                    "properties": {"$user_state": "anonymous", "$current_url": "https://x/%d" % n,
                                   "$lib": "web"}}
        origin = {"Origin": "https://app.example"}
        batch = json.dumps({"api_key": "wk_posthog", "batch": [ev(1), ev(2)],
                            "sent_at": tally.iso(tally.now_ms())})
        r = s.request("POST", "/e/?compression=gzip-js&ver=1.449.2&_=%d" % tally.now_ms(),
                      gzip.compress(batch.encode()), dict(origin, **{"Content-Type": "text/plain"}))
        check_eq((r.status, r.json()), (200, {"status": 1}), "gzip-js answer")
        check_eq(r.header("Access-Control-Allow-Origin"), "https://app.example", "CORS origin")
        form = "data=" + urllib.parse.quote(b64(json.dumps([dict(ev(3), api_key="wk_posthog")])))
        r = s.request("POST", "/e/?compression=base64", form,
                      {"Content-Type": "application/x-www-form-urlencoded"})
        check_eq(r.status, 200, "beacon form status (%r)" % r)
        q = urllib.parse.urlencode({"data": b64(json.dumps(dict(ev(4), token="wk_posthog")))})
        r = s.request("GET", "/i/v0/e/?" + q)
        check_eq(r.status, 200, "GET status (%r)" % r)
        # /decide and /flags: an empty valid configuration
        for path in ("/decide/?v=4", "/flags/?v=2&config=true"):
            r = s.request("POST", path, json.dumps({"token": "wk_posthog", "distinct_id": "x"}))
            check_eq(r.status, 200, path)
            j = r.json()
            check_eq(j.get("featureFlags"), {}, path + " featureFlags")
            check_eq(j.get("flags"), {}, path + " flags")
            check_eq(j.get("sessionRecording"), False, path + " sessionRecording")
        r = s.request("GET", "/array/wk_posthog/config")
        check_eq(r.status, 200, "remote config")
        r = s.request("OPTIONS", "/e/", None, dict(origin, **{
            "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}))
        check_eq(r.status, 204, "preflight")
        check_eq(r.header("Access-Control-Allow-Origin"), "https://app.example", "preflight origin")
        check("POST" in (r.header("Access-Control-Allow-Methods") or ""), "preflight methods")
        check_eq(r.header("Access-Control-Allow-Headers"), "content-type", "preflight headers")
        f, t = days_ago(1), days_ago(0)
        s.wait_count("posthog", f, t, "rk_posthog", 4)
        j = s.query_ok({"project": "posthog", "kind": "trends", "metric": "events", "interval": "day",
                        "from": f, "to": t, "breakdown": "url"}, key="rk_posthog")
        urls = sorted({row[1] for row in j["rows"] if row[-1]})
        check_eq(urls, ["https://x/1", "https://x/2", "https://x/3", "https://x/4"], "urls")
        j = s.query_ok({"project": "posthog", "kind": "trends", "metric": "persons", "interval": "day",
                        "from": f, "to": t}, key="rk_posthog")
        check_eq(sum(r[-1] for r in j["rows"]), 1, "one anonymous person")


def test_compat_keys_and_errors():
    with Server(projects=PROJECTS) as s:
        track = json.dumps({"userId": "u", "event": "e"})
        basic = {"Authorization": "Basic " + b64("wk_segment:")}
        check_eq(s.request("POST", "/v1/track", track, basic).status, 200, "Basic auth")
        check_eq(s.request("POST", "/v1/track", track).status, 401, "no key")
        check_eq(s.request("POST", "/v1/track", track,
                           {"Authorization": "Basic " + b64("nope:")}).status, 401, "bad key")
        check_eq(s.request("POST", "/v1/track?key=wk_segment", track).status, 200, "?key=")
        r = s.request("POST", "/v1/batch", json.dumps({"writeKey": "wk_segment", "batch": [
            {"type": "track", "userId": "u", "event": "ok"}, {"type": "track", "userId": "u"},
            {"type": "page", "anonymousId": "a", "properties": {"url": "https://s/"}}]}))
        check_eq(r.status, 200, "batch status")
        j = r.json()
        check_eq((j["success"], j["accepted"], j["rejected"]), (True, 2, 1), "batch counts")
        check_eq(j["errors"][0]["index"], 1, "rejected index")
        check_eq(s.request("POST", "/v1/track", "{nope", basic).status, 400, "bad JSON")
        check_eq(s.request("GET", "/v1/track", None, basic).status, 405, "GET segment")
        # PostHog: personal keys refused; token in the query
        r = s.request("POST", "/batch/", json.dumps({"api_key": "phx_secret", "batch": []}))
        check_eq(r.status, 401, "phx_ key")
        r = s.request("POST", "/capture/?token=wk_posthog", json.dumps({"event": "q", "distinct_id": "d"}))
        check_eq(r.status, 200, "token in the query (%r)" % r)
        r = s.request("POST", "/e/?compression=lz64", "N4Ig", {"Content-Type": "text/plain"})
        check_eq(r.status, 401, "lz64 without a key")
        r = s.request("POST", "/e/?compression=lz64&token=wk_posthog", "N4Ig")
        check_eq(r.status, 400, "lz64")
        # Snowplow: the app id as key, or ?key=, or Bearer; GET /i answers a GIF
        r = s.request("GET", "/i?e=pv&aid=wk_snowplow&duid=d1&url=https%3A%2F%2Fs%2F")
        check_eq((r.status, r.header("Content-Type")), (200, "image/gif"), "snowplow pixel")
        r = s.request("POST", "/com.snowplowanalytics.snowplow/tp2",
                      json.dumps({"schema": "x", "data": [{"e": "pv", "duid": "d", "aid": "website"}]}),
                      {"Authorization": "Bearer wk_snowplow"})
        check_eq((r.status, r.body), (200, b"ok"), "snowplow bearer")
        r = s.request("POST", "/com.snowplowanalytics.snowplow/tp2",
                      json.dumps({"schema": "x", "data": [{"e": "pv", "duid": "d", "aid": "website"}]}))
        check_eq(r.status, 401, "snowplow unknown aid")
        # Plausible: unknown domain; project by name (dots → _ or -)
        r = s.request("POST", "/api/event", json.dumps({"n": "pageview", "u": "https://a/", "d": "nope.io"}))
        check_eq(r.status, 401, "plausible unknown domain")
        r = s.request("POST", "/api/event", json.dumps({"n": "pageview", "u": "https://a/", "d": "plausible"}))
        check_eq(r.status, 202, "plausible by project name")
        r = s.request("POST", "/api/event", json.dumps(
            {"n": "pageview", "u": "https://a/", "d": "plausible, wk_ga4 ,plausible_native"}))
        check_eq(r.status, 202, "plausible domain list")
        # GA4: api_secret
        r = s.request("POST", "/mp/collect?api_secret=nope", json.dumps({"client_id": "c", "events": []}))
        check_eq(r.status, 401, "ga4 bad secret")
        f, t = days_ago(1), days_ago(0)
        s.wait_count("segment", f, t, "rk_segment", 4)
        s.wait_count("posthog", f, t, "rk_posthog", 1)
        s.wait_count("snowplow", f, t, "rk_snowplow", 2)
        s.wait_count("plausible", f, t, "rk_plausible", 2)
        s.wait_count("plausible_native", f, t, "rk_plausible_native", 1)
        s.wait_count("ga4", f, t, "rk_ga4", 1)
        # rejected events are counted
        check(metric(s, "events_rejected_total") >= 1, "rejections in /metrics")


def test_compat_page_views_are_pageview_events():
    """Every format's page views are stored as "$pageview" and its screen views as
    "$screen" (docs/compat.md), the names tally.js sends and /api/v1/report?metric=pageviews
    counts: one page view (and one screen where the format has them) through each endpoint
    of one project, then the events by name and the pageviews report."""
    with Server(projects=PROJECTS) as s:
        sent = [
            ("POST", "/v1/page", {"anonymousId": "sg", "properties": {"url": "https://x/sg"}}),
            ("POST", "/v1/screen", {"anonymousId": "sg", "name": "Home"}),
            ("POST", "/capture/", {"event": "$pageview", "distinct_id": "ph",
                                   "properties": {"$current_url": "https://x/ph"}}),
            ("POST", "/capture/", {"event": "$screen", "distinct_id": "ph",
                                   "properties": {"$screen_name": "Home"}}),
            ("POST", "/com.snowplowanalytics.snowplow/tp2",
             {"schema": "x", "data": [{"e": "pv", "duid": "sp", "url": "https://x/sp"}]}),
            ("POST", "/com.snowplowanalytics.snowplow/tp2", {"schema": "x", "data": [{
                "e": "ue", "duid": "sp", "ue_pr": json.dumps({"schema": "s", "data": {
                    "schema": "iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0",
                    "data": {"name": "Home", "id": "1"}}})}]}),
            ("POST", "/api/event", {"n": "pageview", "u": "https://x/pl", "d": "wk_demo"}),
            ("POST", "/mp/collect?api_secret=wk_demo", {"client_id": "ga", "events": [
                {"name": "page_view", "params": {"page_location": "https://x/ga"}},
                {"name": "screen_view", "params": {"firebase_screen": "Home"}}]}),
        ]
        for method, path, body in sent:
            r = s.request(method, path, json.dumps(body), {"Authorization": "Bearer wk_demo",
                                                          "Content-Type": "text/plain"})
            check(r.status in (200, 202, 204), "%s %s: %r" % (method, path, r))
        f, t = days_ago(1), days_ago(0)
        s.wait_count("demo", f, t, "rk_demo", 9)
        j = s.query_ok({"project": "demo", "kind": "trends", "metric": "events", "interval": "day",
                        "from": f, "to": t, "breakdown": "event"})
        got = {}
        for row in j["rows"]:
            got[row[1]] = got.get(row[1], 0) + row[-1]
        check_eq({k: v for k, v in got.items() if v}, {"$pageview": 5, "$screen": 4},
                 "events by name")
        r = s.request("GET", "/api/v1/report?project=demo&metric=pageviews&from=%s&to=%s" % (f, t),
                      None, {"Authorization": "Bearer rk_demo"})
        check_eq(r.status, 200, "report status (%r)" % r)
        check_eq(sum(row[-1] for row in r.json()["rows"]), 5, "pageviews report: every format's")
