"""Differential test of the sessions and paths kinds and the trends metrics stickiness and
lifecycle: the seeded events of gen.py (late events, retries and in-batch duplicates, persons
whose devices identify later so merges join their timelines, events on local midnights, a DST
change in the range) reshaped into visits — runs of events minutes apart with gaps just under,
at and just over 30 minutes, equal timestamps, and one device active every 25 minutes for 26
hours (the 24 h cut) — sent to a real server, and every answer compared with ref_sessions.py
(SQLite + zoneinfo + brute force per person). Zones: the project's Asia/Kathmandu and the
others of test_diff; empty ranges and persons active only outside the range included. Clock
skew is left out (durations are compared to the millisecond).
"""

import datetime
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen  # noqa: E402
from jsondiff import diff  # noqa: E402
import ref_sessions  # noqa: E402
import reference  # noqa: E402
import tally  # noqa: E402
import test_diff  # noqa: E402
from tally import Server, check  # noqa: E402

TIMEOUT = 900
ZONES = test_diff.ZONES
P, WK, RK = test_diff.P, test_diff.WK, test_diff.RK
SEEDS = [404, 505, 606]
QUICK_SEEDS = [404]
EVENTS = ["pageview", "signup", "add_to_cart", "purchase", "search", "app_open", "screen_view"]
MIN = 60000
GAPS = [0, 1, 20 * 1000, 3 * MIN, 10 * MIN, 29 * MIN, 30 * MIN - 1, 30 * MIN, 30 * MIN + 1,
        31 * MIN, 50 * MIN, 59 * MIN, 60 * MIN, 61 * MIN]

WHERES = [
    [{"prop": "event", "op": "=", "value": "purchase"}],
    [{"prop": "platform", "op": "!=", "value": "web"}],
    [{"prop": "country", "op": "in", "value": ["NP", "IN", "US"]}],
    [{"prop": "properties.plan", "op": "=", "value": "pro"}],
    [{"prop": "url", "op": "contains", "value": "/p/"}],
]


def reshape(ds, rng, seed):
    """Visits: each device's events (in time order) are pulled close to the one before with a
    gap from GAPS, now and then; plus a marathon device for the 24 h cut."""
    by_dev = {}
    for e in ds.stored:
        e.skew = None
        by_dev.setdefault(e.anon or e.user, []).append(e)
    for evs in by_dev.values():
        evs.sort(key=lambda e: e.ts)
        for a, b in zip(evs, evs[1:]):
            if rng.random() < 0.6:
                b.ts = a.ts + rng.choice(GAPS)
    # the marathon: every 25 minutes for 26 hours, pages on it
    t0 = ds.stored[len(ds.stored) // 2].ts
    t0 -= t0 % MIN
    batch = []
    for k in range(26 * 60 // 25 + 1):
        e = gen.Ev()
        e.eid = "marathon-%d-%d" % (seed, k)
        e.ts = t0 + k * 25 * MIN
        e.name = rng.choice(["pageview", "pageview", "search", "purchase"])
        e.anon = "marathon-%d" % seed
        e.fields = {"platform": "web", "country": "NP", "url": "https://shop.example" + rng.choice(gen.PATHS)}
        batch.append(e)
    ds.stored.extend(batch)
    ds.batches.append(batch)


def query_matrix(rng, first, last, quick):
    qs = []
    days = (last - first).days
    n = 24 if quick else 50

    def rng_range(max_days=None):
        a = first + datetime.timedelta(days=rng.randrange(days // 2))
        b = a + datetime.timedelta(days=rng.randrange(0, max_days or days))
        return a, min(b, last + datetime.timedelta(days=1))

    def add(zone, q):
        if zone != test_diff.PROJECT_TZ:
            q["tz"] = zone
        qs.append((zone, q))

    for i in range(n):
        zone = rng.choice(ZONES)
        a, b = rng_range()
        if i % 12 == 11:  # an empty range
            a = first - datetime.timedelta(days=400)
            b = a + datetime.timedelta(days=3)
        iv = rng.choice(["day", "day", "week", "month"])
        if i % 8 == 3:  # hours around the zone's DST change (or any day)
            c = test_diff.dst_change_in(zone, first, last) or (first + datetime.timedelta(days=days // 2))
            a, b, iv = c - datetime.timedelta(days=1), c, "hour"
        q = {"project": P, "kind": "sessions", "from": a.isoformat(), "to": b.isoformat(), "interval": iv}
        x = rng.random()
        if x < 0.3:
            q["session_timeout_s"] = rng.choice([60, 600, 1799, 1800, 3600, 7200])
        if rng.random() < 0.35:
            q["breakdown"] = rng.choice(["platform", "country", "properties.plan", "url", "properties.sku"])
        if rng.random() < 0.3:
            q["where"] = rng.choice(WHERES)
        add(zone, q)
    for i in range(n):
        zone = rng.choice(ZONES)
        a, b = rng_range()
        if i % 12 == 11:
            a = first - datetime.timedelta(days=400)
            b = a + datetime.timedelta(days=3)
        q = {"project": P, "kind": "paths", "from": a.isoformat(), "to": b.isoformat()}
        by = rng.choice(["event", "event", "url"])
        if by == "url":
            q["by"] = "url"
        x = rng.random()
        name = (rng.choice(EVENTS) if by == "event"
                else "https://shop.example" + rng.choice(gen.PATHS))
        if x < 0.45:
            q["start_event"] = name
        elif x < 0.75:
            q["end_event"] = name
        elif x < 0.85:
            q["direction"] = "previous"
        if rng.random() < 0.7:
            q["depth"] = rng.randint(1, 10)
        if rng.random() < 0.25:
            q["where"] = rng.choice(WHERES[1:])
        add(zone, q)
    for i in range(n):
        zone = rng.choice(ZONES)
        a, b = rng_range()
        if i % 12 == 11:
            a = first - datetime.timedelta(days=400)
            b = a + datetime.timedelta(days=3)
        iv = rng.choice(["day", "day", "week", "month"])
        if i % 8 == 5:
            c = test_diff.dst_change_in(zone, first, last) or (first + datetime.timedelta(days=days // 2))
            a, b, iv = c - datetime.timedelta(days=1), c, "hour"
        q = {"project": P, "kind": "trends", "metric": rng.choice(["stickiness", "lifecycle"]),
             "from": a.isoformat(), "to": b.isoformat(), "interval": iv}
        if rng.random() < 0.3:
            q["event"] = rng.choice(EVENTS)
        elif rng.random() < 0.2:
            q["where"] = rng.choice(WHERES[1:])
        add(zone, q)
    return qs


def labels(q, zone):
    d_from = datetime.date.fromisoformat(q["from"])
    d_to = datetime.date.fromisoformat(q["to"])
    return [b[0] for b in test_diff.Labels.buckets(q.get("interval", "day"), d_from, d_to, zone)]


def expected(ref, q, zone):
    if q["kind"] == "sessions":
        return ref_sessions.sessions(ref, q, zone, labels(q, zone))
    if q["kind"] == "paths":
        return ref_sessions.paths(ref, q, zone)
    if q["metric"] == "stickiness":
        return ref_sessions.stickiness(ref, q, zone, labels(q, zone))
    return ref_sessions.lifecycle(ref, q, zone, labels(q, zone))


def nonzero(exp):
    if "paths" in exp:
        return bool(exp["edges"])
    if "entry_pages" in exp:
        return any(r[-1] > 1 for r in exp["rows"])
    return any(any(x for x in r[1:]) for r in exp["rows"])


def run_seed(seed):
    quick = tally.QUICK
    rng = random.Random(seed * 15485863)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    first, last, change = gen.ny_dst_range(today)
    ds = gen.Dataset(seed, first, last, tally.now_ms(), ZONES, quick=quick)
    reshape(ds, rng, seed)
    ref = reference.Reference(ds.stored, ZONES)
    queries = query_matrix(rng, first, last, quick)
    failures = []
    n_nonzero = 0
    extra = {"retention_days": 3650}
    if seed % 2:
        extra.update({"seal_rows": 700, "checkpoint_ms": 300})
    lo = (first - datetime.timedelta(days=2)).isoformat()
    hi = (last + datetime.timedelta(days=2)).isoformat()
    with Server(projects={P: (test_diff.PROJECT_TZ, WK, RK)}, config_extra=extra) as s:
        test_diff.send_batches(s, ds.batches, rng)
        s.wait_count(P, lo, hi, RK, len(ds.stored), tz="UTC", timeout=60)
        for zone, q in queries:
            exp = expected(ref, q, zone)
            r = s.query(q, key=RK, timeout=120)
            if r.status != 200:
                failures.append((q, ["status %d: %r" % (r.status, r.body[:300])]))
                continue
            n_nonzero += nonzero(exp)
            probs = diff(exp, r.json())
            if probs:
                failures.append((q, probs[:10]))
    print("seed %d: %d events, %d queries compared (%d with multi-event sessions, edges or counts)"
          % (seed, len(ds.stored), len(queries), n_nonzero))
    check(n_nonzero >= len(queries) // 2, "too few queries with something to compare: the test is too weak")
    if failures:
        lines = ["seed %d: %d of %d queries differ" % (seed, len(failures), len(queries))]
        for q, probs in failures[:8]:
            lines.append("")
            lines.append("query %s" % json.dumps(q, ensure_ascii=False))
            lines += ["    " + p for p in probs]
        raise tally.TestFailure("\n".join(lines))


def generate_tests(quick):
    return [("test_sessions_seed_%d" % sd, run_seed, (sd,)) for sd in (QUICK_SEEDS if quick else SEEDS)]
