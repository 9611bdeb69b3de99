"""The differential test: seeded random events (gen.py) sent to a real `tally serve` over HTTP,
and every value of many trends queries compared with the answer computed independently by the
reference (reference.py: SQLite + zoneinfo). One test per seed; a mismatch prints the query and
the differing cells.

Zones: UTC, Asia/Kathmandu (+05:45, the project's own zone, so its queries omit `tz`),
America/New_York (the range spans a DST change; see gen.ny_dst_range), Asia/Kolkata (+05:30)
and Europe/Dublin (whose zoneinfo has "negative DST": winter is its daylight-saving time; it
changes in late October, usually inside the range too).
"""

import datetime
import gzip
import json
import math
import os
import random
import sys
import time
import urllib.parse
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gen  # noqa: E402
import reference  # noqa: E402
import tally  # noqa: E402
from tally import Server, check, check_eq  # noqa: E402

TIMEOUT = 900
ZONES = ["UTC", "Asia/Kathmandu", "America/New_York", "Asia/Kolkata", "Europe/Dublin"]


def dst_change_in(zone, first, last):
    """The first day in [first, last] whose UTC offset at noon differs from the day before's,
    or None."""
    z = ZoneInfo(zone)
    d = first
    while d < last:
        n = d + datetime.timedelta(days=1)
        if (datetime.datetime(d.year, d.month, d.day, 12, tzinfo=z).utcoffset()
                != datetime.datetime(n.year, n.month, n.day, 12, tzinfo=z).utcoffset()):
            return n
        d = n
    return None
PROJECT_TZ = "Asia/Kathmandu"
P, WK, RK = "diff", "wk_diff", "rk_diff"
SEEDS = [11, 22, 33, 44, 55]
QUICK_SEEDS = [11, 22]
MAX_REPORTED = 12  # mismatching queries printed in full


class Labels:
    """Buckets as src/query.c documents them: the calendar periods that meet the range, each
    labelled by its first local day (hours: the local wall hour "YYYY-MM-DDTHH:00"; a skipped
    wall hour has no bucket, a repeated one is one bucket). Rows outside [from, to] never count,
    so a cut bucket covers only its days inside the range."""

    @staticmethod
    def buckets(interval, d_from, d_to, zone):
        one = datetime.timedelta(days=1)
        out = []
        if interval == "day":
            d = d_from
            while d <= d_to:
                out.append((d.isoformat(), d, d))
                d += one
        elif interval == "week":
            m = d_from - datetime.timedelta(days=d_from.weekday())
            while m <= d_to:
                out.append((m.isoformat(), max(m, d_from), min(m + 6 * one, d_to)))
                m += 7 * one
        elif interval == "month":
            m = d_from.replace(day=1)
            while m <= d_to:
                nxt = (m + 32 * one).replace(day=1)
                out.append((m.isoformat(), max(m, d_from), min(nxt - one, d_to)))
                m = nxt
        elif interval == "hour":
            z = ZoneInfo(zone)
            start = datetime.datetime(d_from.year, d_from.month, d_from.day,
                                      tzinfo=datetime.timezone.utc) - datetime.timedelta(hours=15)
            end = datetime.datetime(d_to.year, d_to.month, d_to.day,
                                    tzinfo=datetime.timezone.utc) + datetime.timedelta(hours=40)
            t = start
            seen = set()
            while t < end:
                loc = t.astimezone(z)
                if d_from <= loc.date() <= d_to:
                    label = loc.strftime("%Y-%m-%dT%H:00")
                    if label not in seen:
                        seen.add(label)
                        out.append((label, label, label))
                t += datetime.timedelta(minutes=15)
        else:
            raise ValueError(interval)
        return out

    @staticmethod
    def buckets_between(interval, from_ms, to_ms, zone):
        """Buckets of a range given by instants: the periods that meet [from_ms, to_ms]."""
        z = ZoneInfo(zone)
        d_from = datetime.datetime.fromtimestamp(from_ms / 1000, z).date()
        d_to = datetime.datetime.fromtimestamp(to_ms / 1000, z).date()
        if interval != "hour":
            return Labels.buckets(interval, d_from, d_to, zone)
        step = 15 * 60000  # every zone offset is a whole number of quarter hours
        instants = [from_ms] + list(range(from_ms - from_ms % step + step, to_ms, step)) + [to_ms]
        out, seen = [], set()
        for t in instants:
            label = datetime.datetime.fromtimestamp(t / 1000, z).strftime("%Y-%m-%dT%H:00")
            if label not in seen:
                seen.add(label)
                out.append((label, label, label))
        return out


# ------------------------------------------------------------------ the queries

FILTERS = [
    [{"prop": "platform", "op": "=", "value": "ios"}],
    [{"prop": "platform", "op": "!=", "value": "web"}],
    [{"prop": "country", "op": "in", "value": ["NP", "IN"]}],
    [{"prop": "country", "op": "not_in", "value": ["US", "DE"]}],
    [{"prop": "country", "op": "is_not_set"}],
    [{"prop": "url", "op": "contains", "value": "/p/"}],
    [{"prop": "url", "op": "contains", "value": "café"}],
    [{"prop": "referrer", "op": "is_set"}],
    [{"prop": "app_version", "op": "=", "value": "1.1.0"}],
    [{"prop": "event", "op": "in", "value": ["purchase", "signup", "nope"]}],
    [{"prop": "properties.plan", "op": "=", "value": "pro"}],
    [{"prop": "properties.plan", "op": "!=", "value": "pro"}],
    [{"prop": "properties.plan", "op": "not_in", "value": ["free", "team"]}],
    [{"prop": "properties.plan", "op": "is_set"}],
    [{"prop": "properties.plan", "op": "is_not_set"}],
    [{"prop": "properties.price", "op": ">", "value": 50}],
    [{"prop": "properties.price", "op": "<=", "value": 20.5}],
    [{"prop": "properties.price", "op": ">=", "value": "100"}],
    [{"prop": "properties.qty", "op": "=", "value": 2}],
    [{"prop": "properties.qty", "op": "in", "value": [1, "5"]}],
    [{"prop": "properties.qty", "op": "<", "value": 3}],
    [{"prop": "properties.cart.total", "op": ">", "value": 400}],
    [{"prop": "properties.cart.items", "op": "!=", "value": 1}],
    [{"prop": "properties.title", "op": "contains", "value": "Café"}],
    [{"prop": "properties.title", "op": "contains", "value": ["ome", "ョ"]}],
    [{"prop": "properties.title", "op": "=", "value": "home"}],
    [{"prop": "properties.ok", "op": "=", "value": True}],
    [{"prop": "properties.ok", "op": "!=", "value": "true"}],
    [{"prop": "properties.code", "op": "=", "value": 7}],
    [{"prop": "properties.code", "op": "=", "value": "7"}],
    [{"prop": "properties.code", "op": "=", "value": "12.5"}],
    [{"prop": "properties.code", "op": ">", "value": 5}],
    [{"prop": "properties.code", "op": "contains", "value": "1"}],
    [{"prop": "properties.code", "op": "not_in", "value": [3, "A1"]}],
    [{"prop": "properties.plan", "op": "in", "value": []}],
    [{"prop": "properties.plan", "op": "not_in", "value": []}],
    [{"prop": "properties.title", "op": "contains", "value": ""}],
    [{"prop": "properties.price", "op": "!=", "value": "n/a"}],
    [{"prop": "properties.sku", "op": "<", "value": 3}],
    [{"prop": "properties.sku", "op": "in", "value": ["sku-120", 24, "3", 0]}],
    [{"prop": "properties.nope", "op": "=", "value": "x"}],
    [{"prop": "properties.nope", "op": "!=", "value": "x"}],
    [{"prop": "platform", "op": "=", "value": "web"}, {"prop": "properties.plan", "op": "in", "value": ["pro", "team"]}],
    [{"prop": "country", "op": "=", "value": "NP"}, {"prop": "properties.price", "op": ">", "value": 10},
     {"prop": "properties.qty", "op": "<=", "value": 4}],
]

BREAKDOWNS = ["platform", "country", "event", "app_version", "referrer", "properties.plan",
              "properties.qty", "properties.ok", "properties.code", "properties.title", "url",
              "properties.sku"]


def query_matrix(rng, first, last, change, quick, stamps, skewed):
    """stamps: sorted times of events sent without sent_at (exact); skewed: sorted true times
    of the events sent with sent_at (the server stores them a few ms later: no range may end
    near one of those)."""
    import bisect

    def clear(t):
        i = bisect.bisect_left(skewed, t - 60000)
        return i == len(skewed) or skewed[i] > t + 60000

    """[(zone, query)] for one seed."""
    out = []
    F, L = first.isoformat(), last.isoformat()
    one = datetime.timedelta(days=1)
    for zone in ZONES:
        def q(**kw):
            d = {"project": P, "kind": "trends", "from": F, "to": L}
            if zone != PROJECT_TZ:
                d["tz"] = zone
            d.update({k: v for k, v in kw.items() if v is not None})
            out.append((zone, d))

        for m in ["events", "persons", "wau", "mau", "sum:properties.price", "avg:properties.price",
                  "sum:properties.cart.total", "avg:properties.code", "sum:properties.nope"]:
            q(metric=m, interval="day")
        for iv in ["week", "month"]:
            for m in ["events", "persons", "wau", "mau", "avg:properties.qty"]:
                q(metric=m, interval=iv)
        # a range cut inside weeks and months
        sub_f = (first + (9 + rng.randrange(5)) * one).isoformat()
        sub_t = (last - (2 + rng.randrange(5)) * one).isoformat()
        for iv in ["day", "week", "month"]:
            for m in ["events", "persons", "wau", "mau"]:
                if iv == "day" and m in ("events", "persons"):
                    continue
                q(metric=m, interval=iv, **{"from": sub_f, "to": sub_t})
        # hours around the zone's DST change in the range (New York's date where it has none)
        zc = dst_change_in(zone, first, last) or change
        hf, ht = (zc - one).isoformat(), (zc + one).isoformat()
        for m in ["events", "persons", "sum:properties.price"]:
            q(metric=m, interval="hour", **{"from": hf, "to": ht})
        q(metric="events", interval="hour", breakdown="platform", **{"from": hf, "to": hf})
        q(metric="events", interval="day", event="purchase")
        q(metric="persons", interval="week", event="pageview")
        # one event and more: read in the event's space (its rows' projections)
        for w in ([{"prop": "country", "op": "=", "value": "DE"}],
                  [{"prop": "properties.price", "op": ">", "value": 50}],
                  [{"prop": "properties.plan", "op": "is_not_set"}],
                  [{"prop": "properties.nope", "op": "!=", "value": "x"}],
                  [{"prop": "event", "op": "=", "value": "purchase"}, {"prop": "platform", "op": "!=", "value": "web"}]):
            q(metric=rng.choice(["events", "persons", "wau", "sum:properties.price"]),
              interval=rng.choice(["day", "week"]), event="purchase", where=w)
        q(metric="sum:properties.price", interval="day", event="purchase", breakdown="country")
        q(metric="persons", interval="month", event="pageview", breakdown="properties.plan")
        q(metric="events", interval="day", breakdown="platform",
          where=[{"prop": "event", "op": "=", "value": "signup"}, {"prop": "country", "op": "!=", "value": "US"}])
        filters = FILTERS if not quick else rng.sample(FILTERS, len(FILTERS) // 2)
        for w in filters:
            q(metric=rng.choice(["events", "persons", "wau", "sum:properties.price"]),
              interval=rng.choice(["day", "week"]), where=w)
        for b in BREAKDOWNS:
            q(metric=rng.choice(["events", "persons", "mau", "sum:properties.price", "avg:properties.qty"]),
              interval=rng.choice(["day", "week", "month"]), breakdown=b)
        for _ in range(4):
            q(metric=rng.choice(["events", "persons", "wau"]), interval=rng.choice(["day", "month"]),
              where=rng.choice(FILTERS), breakdown=rng.choice(BREAKDOWNS))
        # more than 100 values: the top 100 and "$other"
        for m, iv in (("events", "week"), ("persons", "month"), ("mau", "day"), ("avg:properties.price", "month"),
                      ("wau", "day")):
            q(metric=m, interval=iv, breakdown="properties.sku")
        q(metric="persons", interval="week", breakdown="properties.sku",
          where=[{"prop": "platform", "op": "!=", "value": "android"}])
        # ranges given as instants (ms, or ISO-8601 with an offset): rows in [from, to]
        z = ZoneInfo(zone)
        n_inst = 0
        for _ in range(50):
            if n_inst == 3:
                break
            a = tally.ms_of(datetime.datetime(first.year, first.month, first.day, tzinfo=datetime.timezone.utc)) \
                + rng.randrange(30 * 86400000)
            b = a + rng.choice([3 * 3600000 + 17, 86400000 * 2 + 12345, 86400000 * 9 + 7])
            if rng.random() < 0.7:
                # endpoints on events' own timestamps: both ends are inclusive
                i = rng.randrange(len(stamps) - 200)
                a, b = stamps[i], stamps[i + rng.choice([5, 60, 199])]
            if not (clear(a) and clear(b)):
                continue
            n_inst += 1
            iso_b = datetime.datetime.fromtimestamp(b / 1000, z).isoformat(timespec="milliseconds")
            iv = rng.choice(["hour", "day", "week"]) if b - a < 86400000 * 3 else rng.choice(["day", "week", "month"])
            for m in ("events", "persons", "sum:properties.price"):
                q(metric=m, interval=iv, breakdown=rng.choice([None, "platform"]), **{"from": a, "to": iso_b})
    return out


# ------------------------------------------------------------------ comparison

def norm_bval(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return float(v)
    return v


def same(a, b, exact):
    if a is None or b is None:
        return a == b
    if exact:
        return a == b and float(a) == float(b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)


slot_order = reference.slot_order


def compare(q, j, expected, labels, values):
    """List of problems (strings) of tally's answer j against the expected one."""
    probs = []
    metric = q["metric"]
    exact = metric in ("events", "persons", "wau", "mau")
    zero = 0 if exact else 0.0
    bd = q.get("breakdown")
    want_cols = ["bucket", bd, "value"] if bd else ["bucket", "value"]
    if j.get("columns") != want_cols:
        probs.append("columns %r, want %r" % (j.get("columns"), want_cols))
        return probs
    rows = j.get("rows")
    if not isinstance(rows, list):
        return ["rows missing: %r" % j]
    if not bd:
        got_labels = [r[0] for r in rows]
        if got_labels != labels:
            probs.append("buckets %r..., want %r..." % (got_labels[:6], labels[:6]))
            extra = [x for x in got_labels if x not in labels][:5]
            missing = [x for x in labels if x not in got_labels][:5]
            probs.append("  extra buckets %r, missing buckets %r" % (extra, missing))
        got = {r[0]: r[1] for r in rows}
        n_bad = 0
        for lab in labels:
            w = expected.get((lab, None), zero)
            g = got.get(lab)
            if not same(g, w, exact):
                n_bad += 1
                if n_bad <= 12:
                    probs.append("bucket %s: tally %r, expected %r" % (lab, g, w))
        if n_bad > 12:
            probs.append("... %d differing buckets in all" % n_bad)
        return probs
    # with a breakdown
    if not values:
        if rows:
            probs.append("no matching rows, yet tally answers %d rows: %r" % (len(rows), rows[:4]))
        return probs
    got = {}
    per_bucket = {}
    order = []
    for r in rows:
        if len(r) != 3:
            probs.append("row %r: want 3 cells" % (r,))
            continue
        b, v = r[0], norm_bval(r[1])
        if (b, v) in got:
            probs.append("duplicate row %r" % (r,))
        got[(b, v)] = r[2]
        per_bucket.setdefault(b, []).append(v)
        if not order or order[-1] != b:
            order.append(b)
    if order != labels:
        probs.append("buckets (in row order) %r..., want %r..." % (order[:6], labels[:6]))
    slot_sets = {tuple(vs) for vs in per_bucket.values()}
    if len(slot_sets) > 1:
        probs.append("buckets do not all list the same breakdown values: %r" % sorted(slot_sets, key=str)[:3])
    for b, vs in per_bucket.items():
        if vs != sorted(vs, key=slot_order):
            probs.append("bucket %s: breakdown values out of order: %r" % (b, vs[:10]))
            break
    tally_values = set(v for _, v in got)
    missing = values - tally_values
    if missing:
        probs.append("breakdown values missing: %r" % sorted(missing, key=slot_order)[:10])
    if "$other" in tally_values and "$other" not in values:
        probs.append("unexpected $other")
    n_bad = 0
    for key in sorted(set(got) | set(expected), key=lambda k: (k[0], slot_order(k[1]))):
        g = got.get(key, zero)
        w = expected.get(key, zero)
        if not same(g, w, exact):
            n_bad += 1
            if n_bad <= 10:
                probs.append("bucket %s, %s=%r: tally %r, expected %r" % (key[0], bd, key[1], g, w))
    if n_bad > 10:
        probs.append("... %d differing cells in all" % n_bad)
    return probs


# ------------------------------------------------------------------ sending

def send_batches(s, batches, rng, first_index=0):
    for bi, batch in enumerate(batches, first_index):
        now = tally.now_ms()
        objs = [e.wire(now) for e in batch]
        bad_idx = [i for i, e in enumerate(batch) if e.invalid]
        form = rng.choice(["envelope", "envelope", "array", "ndjson"] + (["single"] if len(batch) == 1 else []))
        gz = rng.random() < 0.2
        key_mode = rng.choice(["bearer"] * 8 + ["query", "body"])
        kw = {"form": form, "gz": gz, "gz_header": rng.random() < 0.5}
        if key_mode == "bearer":
            r = s.collect(objs, key=WK, **kw)
        elif key_mode == "query":
            r = s.collect(objs, key=None, params={"key": WK}, **kw)
        else:
            body = json.dumps({"api_key": WK, "events": objs})
            r = s.collect(key=None, body=gzip.compress(body.encode()) if gz else body,
                          headers={"Content-Type": "application/json"})
        check(r.status == 200, "batch %d (%d events, %s%s): status %d %r"
              % (bi, len(batch), form, " gzip" if gz else "", r.status, r.body[:300]))
        j = r.json()
        check_eq(j.get("rejected"), len(bad_idx), "batch %d rejected (%r)" % (bi, j))
        check_eq(j.get("accepted", 0) + j.get("duplicates", 0), len(batch) - len(bad_idx),
                 "batch %d accepted + duplicates (%r)" % (bi, j))
        check_eq(sorted(e["index"] for e in j.get("errors", [])), bad_idx, "batch %d error indexes" % bi)


SLOW_S = 1.5  # a query slower than this (on ~10k events) is a stall
MAX_SLOW = 5


def run_queries(s, ref, queries, stage, failures):
    took = []
    slow = []
    for zone, q in queries:
        exp, labels, values = ref.trends(q, zone, Labels)
        t1 = time.monotonic()
        r = s.query(q, key=RK, timeout=120)
        took.append(time.monotonic() - t1)
        if took[-1] > SLOW_S:
            slow.append((took[-1], q))
            if len(slow) >= MAX_SLOW:
                failures.append((stage, zone, q, ["%d queries took over %.1fs each (%s); stopped querying"
                                                  % (len(slow), SLOW_S, ", ".join("%.2fs" % x for x, _ in slow))]))
                break
        if r.status != 200:
            failures.append((stage, zone, q, ["status %d: %r" % (r.status, r.body[:300])]))
            continue
        probs = compare(q, r.json(), exp, labels, values)
        if probs:
            failures.append((stage, zone, q, probs))
    return max(took) if took else 0.0


# ------------------------------------------------------------------ one seed

def run_seed(seed):
    quick = tally.QUICK
    rng = random.Random(seed * 7919)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    first, last, change = gen.ny_dst_range(today)
    t0 = time.monotonic()

    def stage(what):
        print("  %6.1fs %s" % (time.monotonic() - t0, what), flush=True)

    ds = gen.Dataset(seed, first, last, tally.now_ms(), ZONES, quick=quick)
    full = reference.Reference(ds.stored, ZONES)
    # persons erased (DELETE /api/v1/persons/ID) after everything is sent, by one of their ids
    erase_ids, erased = [], set()
    for _ in range(2 if quick else 4):
        i = rng.randrange(len(ds.stored))
        e = ds.stored[i]
        if full.person_of[i] in erased:
            continue
        erased.add(full.person_of[i])
        erase_ids.append(rng.choice([x for x in (e.anon, e.user) if x is not None]))
    kept = [e for i, e in enumerate(ds.stored) if full.person_of[i] not in erased]
    ref = reference.Reference(kept, ZONES)
    print("seed %d: %d events stored (%d sent in %d batches), %d persons; %d persons (%d events) "
          "erased; range %s..%s, DST change %s"
          % (seed, len(ds.stored), sum(len(b) for b in ds.batches), len(ds.batches), full.n_persons,
             len(erased), len(ds.stored) - len(kept), first, last, change))
    projects = {P: (PROJECT_TZ, WK, RK)}
    extra = {"retention_days": 3650}
    if seed % 2:
        # small parts and frequent checkpoints: answers come from many sealed parts plus the
        # open ones (the even seeds keep everything in open parts until the restart)
        extra.update({"seal_rows": 700, "checkpoint_ms": 300})
    queries = query_matrix(rng, first, last, change, quick, sorted(e.ts for e in ds.stored if e.skew is None),
                           sorted(e.ts for e in ds.stored if e.skew is not None))
    failures = []
    lo = (first - datetime.timedelta(days=2)).isoformat()
    hi = (last + datetime.timedelta(days=2)).isoformat()
    with Server(projects=projects, config_extra=extra) as s:
        # send 60%, restart, send the rest (late events and retries cross the restart)
        cut = len(ds.batches) * 3 // 5
        send_batches(s, ds.batches[:cut], rng)
        stage("sent %d batches" % cut)
        s.restart()
        stage("restarted")
        # compare a third of the queries with what is stored so far (the persons of the first
        # part only: later merges must then apply retroactively)
        seen, part1 = set(), []
        for b in ds.batches[:cut]:
            for e in b:
                if e.invalid is None and e.eid not in seen:
                    seen.add(e.eid)
                    part1.append(e)
        ref1 = reference.Reference(part1, ZONES)
        s.wait_count(P, lo, hi, RK, len(part1), tz="UTC", timeout=60)
        run_queries(s, ref1, rng.sample(queries, len(queries) // 3), "first part", failures)
        stage("compared the first part")
        send_batches(s, ds.batches[cut:], rng, cut)
        stage("sent the rest")
        s.wait_count(P, lo, hi, RK, len(ds.stored), tz="UTC", timeout=60)
        for x in erase_ids:
            r = s.request("DELETE", "/api/v1/persons/%s?project=%s" % (urllib.parse.quote(x, safe=""), P),
                          headers={"Authorization": "Bearer " + RK})
            check(r.status == 200, "DELETE person %r: status %d %r" % (x, r.status, r.body[:200]))
        t_sent = time.monotonic()
        stage("erased %d persons" % len(erase_ids))
        s.wait_count(P, lo, hi, RK, len(kept), tz="UTC", timeout=60)
        if seed % 2:
            m = s.request("GET", "/metrics").body.decode()
            parts = [l for l in m.splitlines() if l.startswith("tally_store_parts ")]
            check(parts and float(parts[0].split()[1]) > 1, "seal_rows 700: sealed parts expected: %r" % parts)
        max_took = run_queries(s, ref, queries, "", failures)
        t_q = time.monotonic()
        stage("%d queries compared" % len(queries))
        # the same answers after a restart, and after kill -9 and a restart
        n_before = len(failures)
        s.restart()
        if len(failures) == n_before:
            run_queries(s, ref, rng.sample(queries, len(queries) // 3), "after restart", failures)
        stage("restarted, and compared again")
        s.kill()
        s.start()
        stage("killed and started")
        s.wait_count(P, lo, hi, RK, len(kept), tz="UTC", timeout=60)
        if len(failures) == n_before:
            run_queries(s, ref, rng.sample(queries, len(queries) // 3), "after kill -9", failures)
    print("seed %d: %d queries compared; send %.1fs, queries %.1fs (slowest %.3fs), total %.1fs"
          % (seed, len(queries), t_sent - t0, t_q - t_sent, max_took, time.monotonic() - t0))
    if failures:
        lines = ["seed %d: %d of %d queries differ from the reference" % (seed, len(failures), len(queries))]
        for st, zone, q, probs in failures[:MAX_REPORTED]:
            lines.append("")
            lines.append("%szone %s  query %s" % (st + ": " if st else "", zone,
                                                   json.dumps(q, ensure_ascii=False)))
            lines += ["    " + p for p in probs]
        if len(failures) > MAX_REPORTED:
            lines.append("... and %d more queries" % (len(failures) - MAX_REPORTED))
        raise tally.TestFailure("\n".join(lines))


def generate_tests(quick):
    return [("test_diff_seed_%d" % sd, run_seed, (sd,)) for sd in (QUICK_SEEDS if quick else SEEDS)]
