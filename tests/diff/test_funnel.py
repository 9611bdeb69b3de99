"""Differential test of funnels and retention: the seeded events of gen.py (late events,
duplicates, anonymous-then-identified persons with several devices, so merges fall in the middle
of funnels; events on local midnights; a DST change inside the range) plus equal timestamps on
purpose, sent to a real server, and every answer compared with ref_funnel.py (SQLite +
zoneinfo + brute force per person). Zones: the project's Asia/Kathmandu and the others of
test_diff. Clock skew is left out here (the server corrects it only to the request latency,
and funnel times are compared to the millisecond).
"""

import datetime
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen  # noqa: E402
from jsondiff import diff  # noqa: E402
import ref_funnel  # noqa: E402
import reference  # noqa: E402
import tally  # noqa: E402
import test_diff  # noqa: E402
from tally import Server, check  # noqa: E402

TIMEOUT = 900
ZONES = test_diff.ZONES
P, WK, RK = test_diff.P, test_diff.WK, test_diff.RK
SEEDS = [101, 202, 303]
QUICK_SEEDS = [101]
EVENTS = ["pageview", "signup", "add_to_cart", "purchase", "search", "app_open", "screen_view"]


def step(rng):
    s = {"event": rng.choice(EVENTS)}
    x = rng.random()
    if x < 0.15:
        s["where"] = [{"prop": "platform", "op": "=", "value": rng.choice(["web", "ios", "android"])}]
    elif x < 0.25:
        s["where"] = [{"prop": "country", "op": "in", "value": rng.sample(gen.COUNTRIES, 3)}]
    elif x < 0.3:
        s = {"where": [{"prop": "platform", "op": "!=", "value": "web"}]}  # any app event
    elif x < 0.34:
        s = {}  # any event at all
    return s


def query_matrix(rng, first, last, quick):
    qs = []
    n = 30 if quick else 70
    days = (last - first).days
    for i in range(n):
        zone = rng.choice(ZONES)
        a = first + datetime.timedelta(days=rng.randrange(days // 2))
        b = a + datetime.timedelta(days=rng.randrange(1, days))
        if i % 10 == 9:  # an empty range (before any data)
            a = first - datetime.timedelta(days=400)
            b = a + datetime.timedelta(days=3)
        b = min(b, last + datetime.timedelta(days=1))
        q = {"project": P, "kind": "funnel", "from": a.isoformat(), "to": b.isoformat(),
             "steps": [step(rng) for _ in range(rng.choice([2, 2, 3, 3, 4]))],
             "window_s": rng.choice([60, 1800, 3600, 86400, 3 * 86400, 14 * 86400])}
        if zone != test_diff.PROJECT_TZ:
            q["tz"] = zone
        q["order"] = rng.choice(["ordered", "ordered", "strict", "any"])
        if q["order"] != "any" and rng.random() < 0.25:
            S = len(q["steps"])
            fa = rng.randrange(1, S)
            q["exclusions"] = [{"event": rng.choice(EVENTS), "from_step": fa,
                                "to_step": rng.randrange(fa + 1, S + 1)}]
        if rng.random() < 0.3:
            q["breakdown"] = rng.choice(["country", "platform", "properties.plan", "app_version"])
        if rng.random() < 0.2:
            q["where"] = [{"prop": "country", "op": "!=", "value": rng.choice(gen.COUNTRIES)}]
        qs.append((zone, q))
    for i in range(n // 2):
        zone = rng.choice(ZONES)
        a = first + datetime.timedelta(days=rng.randrange(days // 2))
        b = a + datetime.timedelta(days=rng.randrange(1, days))
        q = {"project": P, "kind": "retention", "from": a.isoformat(), "to": b.isoformat(),
             "period": rng.choice(["day", "day", "week", "month"]),
             "periods": rng.choice([3, 5, 8, 12])}
        if zone != test_diff.PROJECT_TZ:
            q["tz"] = zone
        if rng.random() < 0.5:
            q["start_event"] = rng.choice(EVENTS)
        if rng.random() < 0.5:
            q["return_event"] = rng.choice(EVENTS)
        if rng.random() < 0.3:
            q["mode"] = "unbounded"
        if rng.random() < 0.3:
            q["breakdown"] = rng.choice(["country", "platform", "properties.plan"])
        if rng.random() < 0.2:
            q["where"] = [{"prop": "platform", "op": "=", "value": "web"}]
        qs.append((zone, q))
    return qs


def run_seed(seed):
    quick = tally.QUICK
    rng = random.Random(seed * 104729)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    first, last, change = gen.ny_dst_range(today)
    ds = gen.Dataset(seed, first, last, tally.now_ms(), ZONES, quick=quick)
    for e in ds.stored:
        e.skew = None
    # equal timestamps on purpose: a device's event takes the time of another of its events
    by_dev = {}
    for e in ds.stored:
        by_dev.setdefault(e.anon or e.user, []).append(e)
    for evs in by_dev.values():
        if len(evs) >= 2 and rng.random() < 0.3:
            a, b = rng.sample(evs, 2)
            b.ts = a.ts
    ref = reference.Reference(ds.stored, ZONES)
    queries = query_matrix(rng, first, last, quick)
    failures = []
    nonzero = 0
    extra = {"retention_days": 3650}
    if seed % 2:
        extra.update({"seal_rows": 700, "checkpoint_ms": 300})
    lo = (first - datetime.timedelta(days=2)).isoformat()
    hi = (last + datetime.timedelta(days=2)).isoformat()
    # even seeds: test builds split every query among 3 threads however small
    env = {} if seed % 2 else {"TALLY_TEST_QUERY_THREADS": "1"}
    with Server(projects={P: (test_diff.PROJECT_TZ, WK, RK)}, config_extra=extra, env=env) as s:
        test_diff.send_batches(s, ds.batches, rng)
        s.wait_count(P, lo, hi, RK, len(ds.stored), tz="UTC", timeout=60)
        for zone, q in queries:
            if q["kind"] == "funnel":
                exp = ref_funnel.funnel(ref, q, zone)
            else:
                exp = ref_funnel.retention(ref, q, zone)
            r = s.query(q, key=RK, timeout=120)
            if r.status != 200:
                failures.append((q, ["status %d: %r" % (r.status, r.body[:300])]))
                continue
            nonzero += bool(exp.get("steps") and exp["steps"][1]["persons"]) or bool(
                exp.get("cohorts") and any(c["retained"][1:] != [0] * (len(c["retained"]) - 1)
                                           for c in exp["cohorts"]))
            probs = diff(exp, r.json())
            if probs:
                failures.append((q, probs[:10]))
    print("seed %d: %d events, %d queries compared (%d with conversions or returns)"
          % (seed, len(ds.stored), len(queries), nonzero))
    check(nonzero >= len(queries) // 3, "too few queries with conversions: the test is too weak")
    if failures:
        lines = ["seed %d: %d of %d queries differ" % (seed, len(failures), len(queries))]
        for q, probs in failures[:8]:
            lines.append("")
            lines.append("query %s" % json.dumps(q, ensure_ascii=False))
            lines += ["    " + p for p in probs]
        raise tally.TestFailure("\n".join(lines))


def generate_tests(quick):
    return [("test_funnel_seed_%d" % sd, run_seed, (sd,)) for sd in (QUICK_SEEDS if quick else SEEDS)]
