#!/usr/bin/env python3
"""bench/bench.py — the query half of the benchmark and its report (Python stdlib only).

  bench.py wait    (--tally-port P --read-key K | --ch-port P) --meta META [--since T] --timeout S
      polls the server until it counts the generated number of unique events over the range
      (ingested ≠ queryable: tally's indexer may lag behind its log; after a restart either
      server may need time); prints the seconds since T (epoch seconds, default: now).
  bench.py queries --tally-port P --read-key K --ch-port P --meta META --runs N --out JSON
      runs each benchmark query on both systems (one warm-up, then N timed runs each; the
      latency is the client's wall time of the whole HTTP request), compares the answers and
      writes latencies, medians and mismatches to JSON.
      Then the other reads (API.md): the person timeline of 20 persons of every activity level
      (picked from ClickHouse's table; ClickHouse's side is the same person's events by time,
      LIMIT 100), each asked once (a person not asked before) and RUNS times more (the same
      person again), answers compared (the count, and the events when they fit one page); and
      GET /api/v1/realtime. The persons are written to PERSONS (default: beside JSON).
  bench.py timeline-restart --tally-port P --read-key K --persons PERSONS --queries JSON
      right after a restart of tally (nothing decoded in its column cache): the first call of
      each of those persons; appended to the queries' JSON as one more row.
  bench.py report  --stats ENV --queries JSON --md FILE --command CMD
      prints the side-by-side table and writes it as markdown.

Why the answers are compared: exactness is the product. ClickHouse gets the canonical person
precomputed by the generator and duplicates already removed, so its answers are the reference;
any difference is printed as a WARNING line.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse


def read_env(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                out[k] = v.strip("\"")
    return out


class Http:
    """One keep-alive connection; the timed request is exactly one round trip."""

    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def get(self, path, headers):
        return self.post(path, None, headers, method="GET")

    def post(self, path, body, headers, method="POST"):
        for attempt in range(2):
            try:
                t = time.perf_counter()
                self.conn.request(method, path, body=body.encode() if body is not None else None,
                                  headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, data.decode("utf-8", "replace"), time.perf_counter() - t
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                if attempt:
                    raise
        raise RuntimeError("unreachable")


def tally_query(conn, key, q):
    status, body, secs = conn.post(
        "/api/v1/query", json.dumps(q),
        {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    return status, body, secs


def ch_query(conn, sql):
    return conn.post("/?database=default", sql + " FORMAT TSV", {})


# ---- the benchmark queries -------------------------------------------------------------

FUNNEL = ["view_item", "add_to_cart", "checkout", "purchase"]
FUNNEL_WINDOW_S = 86400
RET_PERIODS = 12


def queries(meta):
    frm, to = meta["from"], meta["to"]
    t0 = int(meta["from_epoch"])
    t1 = t0 + int(meta["days"]) * 86400
    rng = f"time >= toDateTime({t0}) AND time < toDateTime({t1})"
    base = {"project": "bench", "from": frm, "to": to, "tz": "UTC"}
    conds = ", ".join(f"event = '{e}'" for e in FUNNEL)
    evs = ", ".join(f"'{e}'" for e in FUNNEL)
    return [
        {
            "name": "dau",
            "title": "DAU per day, 90 days",
            "tally": dict(base, kind="trends", metric="persons", interval="day"),
            "ch": f"SELECT toDate(time, 'UTC') AS d, uniqExact(person) FROM events "
                  f"WHERE {rng} GROUP BY d ORDER BY d",
            "shape": "series",
        },
        {
            "name": "dau_by_country",
            "title": "persons per day by country",
            "tally": dict(base, kind="trends", metric="persons", interval="day",
                          breakdown="country"),
            "ch": f"SELECT toDate(time, 'UTC') AS d, country, uniqExact(person) FROM events "
                  f"WHERE {rng} GROUP BY d, country ORDER BY d, country",
            "shape": "series",
        },
        {
            "name": "purchases_de",
            "title": "purchase events in DE per day",
            "tally": dict(base, kind="trends", metric="events", interval="day",
                          where=[{"prop": "event", "op": "=", "value": "purchase"},
                                 {"prop": "country", "op": "=", "value": "DE"}]),
            "ch": f"SELECT toDate(time, 'UTC') AS d, count() FROM events "
                  f"WHERE {rng} AND event = 'purchase' AND country = 'DE' "
                  f"GROUP BY d ORDER BY d",
            "shape": "series",
        },
        {
            "name": "revenue",
            "title": "revenue per day (sum of properties.price of purchases)",
            "tally": dict(base, kind="trends", metric="sum:properties.price", interval="day",
                          where=[{"prop": "event", "op": "=", "value": "purchase"}]),
            "ch": f"SELECT toDate(time, 'UTC') AS d, sum(price) FROM events "
                  f"WHERE {rng} AND event = 'purchase' GROUP BY d ORDER BY d",
            "shape": "series",
        },
        {
            "name": "funnel",
            "title": "funnel view→cart→checkout→purchase, 1-day window",
            "tally": dict(base, kind="funnel", window_s=FUNNEL_WINDOW_S,
                          steps=[{"event": e} for e in FUNNEL]),
            "ch": f"SELECT level, count() FROM (SELECT person, windowFunnel({FUNNEL_WINDOW_S})"
                  f"(time, {conds}) AS level FROM events WHERE {rng} AND event IN ({evs}) "
                  f"GROUP BY person) GROUP BY level ORDER BY level",
            "shape": "funnel",
        },
        {
            "name": "retention",
            "title": "weekly retention, 12 weeks (cohort: first event ever)",
            "tally": dict(base, kind="retention", period="week", periods=RET_PERIODS),
            "ch": f"SELECT cohort, toRelativeWeekNum(toDate(time, 'UTC')) - cw AS k, "
                  f"uniqExact(person) FROM events ANY INNER JOIN (SELECT person, "
                  f"toMonday(toDate(min(time), 'UTC')) AS cohort, "
                  f"toRelativeWeekNum(toDate(min(time), 'UTC')) AS cw FROM events "
                  f"GROUP BY person) USING person WHERE cohort >= toDate('{frm}') AND "
                  f"cohort <= toDate('{to}') AND k >= 0 AND k < {RET_PERIODS} "
                  f"GROUP BY cohort, k ORDER BY cohort, k",
            "shape": "retention",
        },
    ]


def norm_tally(q, body):
    """The answer as {key tuple: number}, zero values dropped."""
    j = json.loads(body)
    out = {}
    if q["shape"] == "series":
        for row in j["rows"]:
            key = tuple(str(x) for x in row[:-1])
            key = (key[0][:10],) + key[1:]
            if row[-1]:
                out[key] = float(row[-1])
    elif q["shape"] == "retention":
        for c in j["cohorts"]:
            for k, n in enumerate(c["retained"]):
                if n:
                    out[(c["cohort"], str(k))] = float(n)
    else:
        for i, s in enumerate(j["steps"]):
            out[(str(i + 1),)] = float(s["persons"])
    return out


def norm_ch(q, body):
    out = {}
    rows = [line.split("\t") for line in body.splitlines() if line]
    if q["shape"] in ("series", "retention"):
        for r in rows:
            if float(r[-1]):
                out[tuple(r[:-1])] = float(r[-1])
    else:  # persons whose deepest level is L → persons reaching each step
        deepest = {int(r[0]): int(r[1]) for r in rows}
        for k in range(1, len(FUNNEL) + 1):
            out[(str(k),)] = float(sum(n for lvl, n in deepest.items() if lvl >= k))
    return out


def diff(a, b, limit=5):
    keys = sorted(set(a) | set(b))
    bad = [(k, a.get(k, 0.0), b.get(k, 0.0)) for k in keys
           if abs(a.get(k, 0.0) - b.get(k, 0.0)) > 1e-9 * max(1.0, abs(b.get(k, 0.0)))]
    return len(bad), bad[:limit]


# ---- the other reads: person timeline and realtime -------------------------------------

TIMELINE_PERSONS = 20
TIMELINE_LIMIT = 100  # tally's default page


def pick_persons(cconn, meta, n=TIMELINE_PERSONS):
    """n persons spread over activity (by events: quantiles from the lightest to the
    heaviest, the heaviest included), each with one of its distinct ids and its events."""
    rows = []
    try:
        st, body, _ = ch_query(cconn, "SELECT person, count() AS c, anyIf(anonymous_id, "
                               "anonymous_id != ''), any(user_id) FROM events GROUP BY person")
        if st == 200:
            for line in body.splitlines():
                p, c, a, u = line.split("\t")
                rows.append((int(c), int(p), a or u))
    except (OSError, http.client.HTTPException):
        pass
    if not rows:  # no ClickHouse: the generator's TSV (same persons, same counts)
        cnt, did = {}, {}
        with open(os.path.join(os.path.dirname(meta["_path"]), "events.tsv")) as f:
            for line in f:
                c = line.split("\t", 6)
                cnt[c[1]] = cnt.get(c[1], 0) + 1
                if not did.get(c[1]):
                    did[c[1]] = c[4] or c[5]
        rows = [(k, int(p), did[p]) for p, k in cnt.items()]
    rows.sort()
    idx = [int((i + 0.5) / n * len(rows)) for i in range(n - 1)] + [len(rows) - 1]
    return [{"person": rows[i][1], "events": rows[i][0], "distinct_id": rows[i][2]} for i in idx]


def timeline_path(p):
    return ("/api/v1/persons/" + urllib.parse.quote(p["distinct_id"], safe="")
            + "/events?project=bench&limit=%d" % TIMELINE_LIMIT)


def tally_get(conn, key, path):
    return conn.get(path, {"Authorization": "Bearer " + key})


def ch_timeline_sql(p):
    return (f"SELECT event_id, time, event FROM events WHERE person = {p['person']} "
            f"ORDER BY time, event_id LIMIT {TIMELINE_LIMIT}")


def ms(xs):
    return [round(x * 1000, 2) for x in xs]


def timeline_rows(args, tconn, cconn, meta):
    """The timeline and realtime rows of the query results (same fields as the queries')."""
    persons = pick_persons(cconn, meta)
    with open(args.persons, "w") as f:
        json.dump(persons, f, indent=1)
    first, again, took, ch_first, ch_again, bad, sample = [], [], [], [], [], 0, []
    ch_ok = True
    for p in persons:
        # tally: a person not asked before (its columns may be decoded for other queries),
        # then the same person again
        st, body, secs = tally_get(tconn, args.read_key, timeline_path(p))
        if st != 200:
            return [{"name": "timeline", "title": "person timeline",
                     "tally_error": " ".join(f"HTTP {st} {body[:300]}".split())}]
        first.append(secs)
        j = json.loads(body)
        for _ in range(args.runs):
            s2, b2, secs = tally_get(tconn, args.read_key, timeline_path(p))
            again.append(secs)
            took.append(json.loads(b2).get("took_ms"))
        # ClickHouse: the same person's first page (the person is not in its sort key)
        try:
            cst, cbody, csecs = ch_query(cconn, ch_timeline_sql(p))
            if cst != 200:
                raise OSError(cbody[:200])
            ch_first.append(csecs)
            ch_again += [ch_query(cconn, ch_timeline_sql(p))[2] for _ in range(args.runs)]
            cst, cnt, _ = ch_query(cconn, f"SELECT count() FROM events WHERE person = {p['person']}")
            want_ids = sorted(line.split("\t")[0] for line in cbody.splitlines() if line)
            want_n = int(cnt.strip())
        except (OSError, http.client.HTTPException, ValueError):
            ch_ok = False
            want_n, want_ids = p["events"], None
        got_ids = sorted(e["event_id"] for e in j["events"])
        # the count always; the events when all of them fit one page (ClickHouse's times are
        # whole seconds, so the order within a second is not compared)
        if j["total"] != want_n or (want_ids is not None and want_n <= TIMELINE_LIMIT
                                    and got_ids != want_ids):
            bad += 1
            sample.append([p["distinct_id"], j["total"], want_n])
    med = lambda xs: round(statistics.median(xs) * 1000, 2) if xs else None  # noqa: E731
    n = len(persons)
    counts = [p["events"] for p in persons]
    rows = [
        {"name": "timeline_new", "title": f"person timeline, a person not asked before "
         f"({n} persons, {min(counts)}..{max(counts)} events)",
         "tally_json": "GET " + timeline_path(persons[0]).replace(
             urllib.parse.quote(persons[0]["distinct_id"], safe=""), "<distinct_id>"),
         "ch_sql": ch_timeline_sql({"person": "<person>"}),
         "tally_ms": ms(first), "tally_median_ms": med(first),
         "mismatches": bad, "mismatch_sample": sample[:5], "runs_label": f"median of {n}"},
        {"name": "timeline_again", "title": "person timeline, the same person again",
         "tally_json": "(the same calls again)", "ch_sql": "(the same queries again)",
         "tally_ms": ms(again), "tally_median_ms": med(again), "tally_took_ms": took,
         "runs_label": f"median of {len(again)}"},
    ]
    if ch_ok:
        rows[0].update(ch_ms=ms(ch_first), ch_median_ms=med(ch_first))
        rows[1].update(ch_ms=ms(ch_again), ch_median_ms=med(ch_again))
    else:
        rows[0]["ch_error"] = rows[1]["ch_error"] = "ClickHouse did not answer"
    if bad:
        print(f"bench: WARNING: timeline: {bad} of {n} persons differ from ClickHouse, e.g. "
              f"(distinct_id, tally, clickhouse): {sample[:3]}", file=sys.stderr)
    elif ch_ok:
        print(f"bench: timeline: tally equals ClickHouse ({n} persons)", file=sys.stderr)
    # realtime: the state the ingest left (every id of the last 5 minutes, all pages)
    st, body, _ = tally_get(tconn, args.read_key, "/api/v1/realtime?project=bench")
    r = {"name": "realtime", "title": "realtime (GET /api/v1/realtime)",
         "tally_json": "GET /api/v1/realtime?project=bench",
         "ch_sql": "(no equivalent: ClickHouse has no realtime counters)",
         "ch_error": "no equivalent"}
    if st != 200:
        r["tally_error"] = " ".join(f"HTTP {st} {body[:300]}".split())
    else:
        times = [tally_get(tconn, args.read_key, "/api/v1/realtime?project=bench")[2]
                 for _ in range(max(args.runs, 7) * 3)]
        r.update(tally_ms=ms(times), tally_median_ms=med(times),
                 runs_label=f"median of {len(times)}",
                 note=f"active_persons_5m {json.loads(body).get('active_persons_5m')}")
    rows.append(r)
    return rows


def cmd_timeline_restart(args):
    persons = json.load(open(args.persons))
    conn = Http(args.tally_port)
    first = []
    for p in persons:
        st, body, secs = tally_get(conn, args.read_key, timeline_path(p))
        first.append(secs if st == 200 else float("nan"))
    res = json.load(open(args.queries))
    ok = [x for x in first if x == x]
    res.append({
        "name": "timeline_restart",
        "title": "person timeline, first call after a restart (the very first "
                 f"{first[0] * 1000:.1f} ms)",
        "tally_json": "(the same persons, each once)", "ch_sql": "-",
        "ch_error": "not measured", "tally_ms": ms(first),
        "tally_median_ms": round(statistics.median(ok) * 1000, 2) if ok else None,
        "runs_label": f"median of {len(first)}"})
    with open(args.queries, "w") as f:
        json.dump(res, f, indent=1)
    print(f"bench: timeline after a restart: the first call {first[0] * 1000:.1f} ms, median of "
          f"{len(first)} persons {statistics.median(ok) * 1000:.1f} ms" if ok else
          "bench: timeline after a restart failed", file=sys.stderr)
    return 0


def cmd_wait(args):
    meta = read_env(args.meta)
    want = int(meta["events_unique"])
    since = args.since if args.since else time.time()
    if args.ch_port:
        conn = Http(args.ch_port)
        poll = lambda: ch_query(conn, "SELECT count() FROM events")  # noqa: E731
        count = lambda body: int(body.strip())  # noqa: E731
    else:
        q = {"project": "bench", "kind": "trends", "metric": "events", "interval": "month",
             "from": meta["from"], "to": meta["to"], "tz": "UTC"}
        conn = Http(args.tally_port)
        poll = lambda: tally_query(conn, args.read_key, q)  # noqa: E731
        count = lambda body: sum(int(r[-1]) for r in json.loads(body)["rows"])  # noqa: E731
    last = None
    while time.time() - since < args.timeout:
        try:
            status, body, _ = poll()
        except Exception as e:  # noqa: BLE001 — the server may be starting; keep polling
            status, body = 0, str(e)
        if status == 200:
            got = count(body)
            if got == want:
                print(f"{time.time() - since:.3f}")
                return 0
            last = got
        elif status != 0 and (status in (400, 404, 501) or "not implemented" in body):
            print(f"bench: cannot answer the count query: HTTP {status} {body[:200]}",
                  file=sys.stderr)
            print("nan")
            return 0
        time.sleep(0.05)
    print(f"bench: WARNING: the server counts {last} events after {args.timeout}s, "
          f"the generator made {want} unique ones", file=sys.stderr)
    print("nan")
    return 0


def cmd_queries(args):
    meta = read_env(args.meta)
    tconn, cconn = Http(args.tally_port), Http(args.ch_port)
    results = []
    for q in queries(meta):
        r = {"name": q["name"], "title": q["title"], "tally_json": q["tally"], "ch_sql": q["ch"]}
        # ClickHouse
        st, cbody, _ = ch_query(cconn, q["ch"])
        if st != 200:
            r["ch_error"] = " ".join(cbody[:300].split())
        else:
            times = [ch_query(cconn, q["ch"])[2] for _ in range(args.runs)]
            r["ch_ms"] = [round(x * 1000, 2) for x in times]
            r["ch_median_ms"] = round(statistics.median(times) * 1000, 2)
        # tally
        st, tbody, _ = tally_query(tconn, args.read_key, q["tally"])
        if st != 200:
            r["tally_error"] = " ".join(f"HTTP {st} {tbody[:300]}".split())
        else:
            times, took = [], []
            for _ in range(args.runs):
                s2, b2, secs = tally_query(tconn, args.read_key, q["tally"])
                times.append(secs)
                try:
                    took.append(json.loads(b2).get("took_ms"))
                except ValueError:
                    pass
            r["tally_ms"] = [round(x * 1000, 2) for x in times]
            r["tally_median_ms"] = round(statistics.median(times) * 1000, 2)
            r["tally_took_ms"] = took
        # exactness
        if "ch_error" not in r and "tally_error" not in r:
            try:
                n, sample = diff(norm_tally(q, tbody), norm_ch(q, cbody))
            except (ValueError, KeyError, TypeError, IndexError) as e:
                n, sample = -1, [f"cannot read tally's answer: {e}: {tbody[:200]}"]
            r["mismatches"] = n
            r["mismatch_sample"] = [list(map(str, s)) if isinstance(s, tuple) else s
                                    for s in sample]
            if n:
                print(f"bench: WARNING: {q['name']}: tally and ClickHouse differ in {n} "
                      f"values, e.g. (key, tally, clickhouse): {sample}", file=sys.stderr)
            else:
                print(f"bench: {q['name']}: tally equals ClickHouse "
                      f"({len(norm_ch(q, cbody))} values)", file=sys.stderr)
        for side in ("ch", "tally"):
            if side + "_error" in r:
                print(f"bench: {q['name']}: {side} failed: {r[side + '_error']}",
                      file=sys.stderr)
        results.append(r)
    meta["_path"] = args.meta
    if not args.persons:
        args.persons = os.path.join(os.path.dirname(os.path.abspath(args.out)), "persons.json")
    results += timeline_rows(args, tconn, cconn, meta)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    return 0


# ---- the report --------------------------------------------------------------------------

def fnum(x, unit=""):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if unit == "B":
        for u, d in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
            if x >= d:
                return f"{x / d:.1f} {u}"
        return f"{x:.0f} B"
    if unit == "ms":
        return f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"
    if unit == "s":
        return f"{x:.1f} s"
    if unit == "ev/s":
        return f"{x:,.0f} ev/s"
    return f"{x}"


def verdict(t, c, higher_is_better):
    if not isinstance(t, (int, float)) or not isinstance(c, (int, float)) or not t or not c:
        return "n/a", "n/a"
    ratio = t / c
    good = ratio > 1 if higher_is_better else ratio < 1
    f = ratio if ratio >= 1 else 1 / ratio
    if higher_is_better:
        word = "faster" if good else "slower"
    else:
        word = ("faster" if good else "slower")
    return f"{ratio:.2f}", f"tally {f:.1f}× {word}" if abs(ratio - 1) > 0.005 else "same"


def verdict_size(t, c):
    if not isinstance(t, (int, float)) or not isinstance(c, (int, float)) or not t or not c:
        return "n/a", "n/a"
    ratio = t / c
    f = ratio if ratio >= 1 else 1 / ratio
    return f"{ratio:.2f}", f"tally {f:.1f}× {'smaller' if ratio < 1 else 'larger'}"


def num(env, k):
    v = env.get(k)
    try:
        x = float(v)
        return None if x != x else x
    except (TypeError, ValueError):
        return None


def cmd_report(args):
    st = read_env(args.stats)
    qs = json.load(open(args.queries)) if args.queries else []
    rows = []

    def add(metric, t, c, unit, kind):
        if kind == "size":
            ratio, v = verdict_size(t, c)
        else:
            ratio, v = verdict(t, c, kind == "higher")
        rows.append((metric, fnum(t, unit), fnum(c, unit), ratio, v))

    add("ingest (events sent / s)", num(st, "tally_ingest_eps"), num(st, "ch_ingest_eps"),
        "ev/s", "higher")
    add("ingest + settle (all queryable)", num(st, "tally_ingest_total_s"),
        num(st, "ch_ingest_total_s"), "s", "lower")
    for q in qs:
        runs = q.get("runs_label") or f"median of {len(q.get('ch_ms') or q.get('tally_ms') or [])}"
        kind = "query" if q["name"] not in ("realtime",) and "timeline" not in q["name"] else "read"
        add(f"{kind}: {q['title']} ({runs})", q.get("tally_median_ms"), q.get("ch_median_ms"),
            "ms", "lower")
    add("peak memory (VmHWM of the server)", num(st, "tally_hwm_bytes"), num(st, "ch_hwm_bytes"),
        "B", "size")
    add("bytes on disk (du of the data dir)", num(st, "tally_disk_bytes"),
        num(st, "ch_disk_bytes"), "B", "size")
    add("restart until all counted", num(st, "tally_restart_s"), num(st, "ch_restart_s"), "s",
        "lower")

    head = ("metric", "tally", "ClickHouse 18.16", "tally/ClickHouse", "")
    w = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    line = lambda r: " | ".join(str(r[i]).ljust(w[i]) for i in range(5))  # noqa: E731
    print()
    print(line(head))
    print("-+-".join("-" * x for x in w))
    for r in rows:
        print(line(r))

    exact = []
    for q in qs:
        if "mismatches" in q:
            exact.append(f"{q['name']}: " + ("equal" if q["mismatches"] == 0
                                             else f"DIFFERENT in {q['mismatches']} values"))
        elif q["name"] not in ("timeline_again", "timeline_restart"):
            exact.append(f"{q['name']}: not compared ("
                         + (q.get("tally_error") or q.get("ch_error") or "?")[:120] + ")")
    print()
    print("answers: " + "; ".join(exact))

    md = []
    md.append("# Benchmark results: tally vs ClickHouse 18.16\n")
    md.append(f"Command: `{args.command}`  ")
    md.append(f"Run: {st.get('date', '?')} on {st.get('machine', '?')}  ")
    md.append(f"tally commit: `{st.get('commit', '?')}`  ")
    md.append(f"Load average (1, 5, 15 min) at the start: {st.get('load_start', '?')}, "
              f"before stopping: {st.get('load_end', '?')} — other work on the machine skews "
              f"every number.\n")
    md.append(f"Data: {int(float(st.get('events_sent', 0))):,} events sent "
              f"({int(float(st.get('events_unique', 0))):,} unique, "
              f"{int(float(st.get('duplicates', 0))):,} resent duplicates, "
              f"{int(float(st.get('late_over_1h', 0))):,} arriving over 1 h late), "
              f"{int(float(st.get('persons', 0))):,} persons, {st.get('days', '?')} days "
              f"{st.get('from', '?')} .. {st.get('to', '?')}, scale {st.get('scale', '?')}.\n")
    md.append("| " + " | ".join(head[:4]) + " | |")
    md.append("|---|---:|---:|---:|---|")
    for r in rows:
        md.append("| " + " | ".join(str(x) for x in r) + " |")
    md.append("")
    md.append("Answers compared value by value: " + "; ".join(exact) + ".\n")
    md.append("Details:\n")
    md.append(f"- tally ingest: {st.get('tally_load', '')}")
    md.append(f"- ClickHouse ingest: {st.get('ch_rows', '?')} rows in "
              f"{st.get('ch_insert_s', '?')} s (clickhouse-client, TSV), then OPTIMIZE FINAL "
              f"{st.get('ch_optimize_s', '?')} s")
    for q in qs:
        md.append(f"- {q['name']}: tally runs (ms) {q.get('tally_ms', q.get('tally_error'))}, "
                  f"tally took_ms {q.get('tally_took_ms', '')}; "
                  f"ClickHouse runs (ms) {q.get('ch_ms', q.get('ch_error'))}")
    md.append("")
    md.append("Queries (tally JSON, ClickHouse SQL):\n")
    for q in qs:
        md.append(f"- {q['title']}:  ")
        md.append(f"  `{json.dumps(q['tally_json'])}`  ")
        md.append(f"  `{q['ch_sql']}`")
    md.append("")
    with open(args.md, "w") as f:
        f.write("\n".join(md))
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--tally-port", type=int)
    w.add_argument("--read-key", default="")
    w.add_argument("--ch-port", type=int, help="poll ClickHouse's count instead")
    w.add_argument("--since", type=float, help="epoch seconds the wait is timed from")
    w.add_argument("--meta", required=True)
    w.add_argument("--timeout", type=float, default=600)
    q = sub.add_parser("queries")
    q.add_argument("--tally-port", type=int, required=True)
    q.add_argument("--read-key", required=True)
    q.add_argument("--ch-port", type=int, required=True)
    q.add_argument("--meta", required=True)
    q.add_argument("--runs", type=int, default=7)
    q.add_argument("--out", required=True)
    q.add_argument("--persons", help="where the timeline's persons go (default: beside --out)")
    tr = sub.add_parser("timeline-restart")
    tr.add_argument("--tally-port", type=int, required=True)
    tr.add_argument("--read-key", required=True)
    tr.add_argument("--persons", required=True)
    tr.add_argument("--queries", required=True)
    r = sub.add_parser("report")
    r.add_argument("--stats", required=True)
    r.add_argument("--queries")
    r.add_argument("--md", required=True)
    r.add_argument("--command", default="make bench")
    a = p.parse_args()
    return {"wait": cmd_wait, "queries": cmd_queries, "timeline-restart": cmd_timeline_restart,
            "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
