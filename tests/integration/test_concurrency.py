"""Concurrent clients: many threads posting at once (group commit), the same events raced by
several threads (dedup between requests that are in flight together), and queries running
while events arrive (read-your-writes: an answer counts at least every event acknowledged
before the query was sent, and never more than were sent)."""

import json
import random
import threading
import time

import tally
from tally import Server, check, check_eq, day_add, event, now_ms, today_utc

P, WK, RK = "demo", "wk_demo", "rk_demo"


def test_racing_duplicates_counted_once():
    rng = random.Random(7)
    base = now_ms() - 2 * 86400000
    evs = [event("race", anon="r%d" % (i % 97), user=("ru%d" % (i % 97)) if i % 5 == 0 else None,
                 ts=base + i * 1000, properties={"i": i}) for i in range(3000)]
    n_threads = 6
    errors = []
    answers = []

    def worker(k):
        r = random.Random(k)
        order = list(range(0, len(evs), 100))
        r.shuffle(order)
        with_dups = 0
        for start in order:
            batch = evs[start:start + 100]
            res = s.collect(batch, key=WK, form=r.choice(["envelope", "array", "ndjson"]))
            if res.status != 200:
                errors.append("thread %d: status %d %r" % (k, res.status, res.body[:200]))
                return
            j = res.json()
            if j.get("accepted", 0) + j.get("duplicates", 0) != len(batch) or j.get("rejected"):
                errors.append("thread %d: %r" % (k, j))
                return
            answers.append(j)
            with_dups += j.get("duplicates", 0)

    with Server() as s:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        check(not any(t.is_alive() for t in threads), "threads did not finish")
        check(not errors, "; ".join(errors[:5]))
        t0 = today_utc()
        f = day_add(t0, -4)
        s.wait_count(P, f, t0, RK, len(evs), tz="UTC")
        accepted = sum(j["accepted"] for j in answers)
        check(accepted >= len(evs), "accepted in all %d < %d events" % (accepted, len(evs)))
        # every r<k> is merged with ru<k>: one person per k
        want = {}
        for i, e in enumerate(evs):
            want.setdefault(tally.utc_day(e["timestamp"]), set()).add(i % 97)
        rows = s.query_ok({"project": P, "kind": "trends", "metric": "persons", "interval": "day",
                           "from": f, "to": t0, "tz": "UTC"}, key=RK)["rows"]
        check_eq({b: v for b, v in rows if v}, {d: len(x) for d, x in want.items()}, "persons per day")
        s.restart()
        s.wait_count(P, f, t0, RK, len(evs), tz="UTC")
        rng.shuffle(evs)
        s.collect_ok(evs[:500], key=WK)
        s.wait_count(P, f, t0, RK, len(evs), tz="UTC")


def test_queries_during_ingest_read_your_writes():
    t0 = today_utc()
    f = day_add(t0, -3)
    lock = threading.Lock()
    state = {"acked": 0, "sent": 0}
    stop = threading.Event()
    problems = []

    def writer(k):
        r = random.Random(k)
        i = 0
        while not stop.is_set() and i < 400:
            batch = [event("ryw", anon="w%d-%d" % (k, r.randrange(50)), ts=now_ms() - r.randrange(86400000) - 60000)
                     for _ in range(r.choice([1, 20, 80]))]
            with lock:
                state["sent"] += len(batch)
            res = s.collect(batch, key=WK)
            if res.status != 200:
                problems.append("writer %d: status %d" % (k, res.status))
                return
            with lock:
                state["acked"] += len(batch)
            i += 1

    def reader():
        i = 0
        prev = 0
        while not stop.is_set() and i < 2000:
            with lock:
                lo = state["acked"]
            got = s.count_events(P, f, day_add(t0, 1), RK, tz="UTC")
            with lock:
                hi = state["sent"]
            if not lo <= got <= hi:
                problems.append("query answered %d events; %d were acknowledged before it and %d sent"
                                " by the time it answered" % (got, lo, hi))
                return
            if got < prev:
                problems.append("a later query answered fewer events: %d after %d" % (got, prev))
                return
            prev = got
            i += 1

    with Server() as s:
        ws = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
        rs = [threading.Thread(target=reader) for _ in range(2)]
        for t in ws + rs:
            t.start()
        time.sleep(6 if tally.QUICK else 10)
        stop.set()
        for t in ws + rs:
            t.join(timeout=60)
        check(not problems, "; ".join(problems[:5]))
        check(state["acked"] > 100, "writers made progress: %d" % state["acked"])
        s.wait_count(P, f, day_add(t0, 1), RK, state["acked"], tz="UTC")


def test_many_connections_at_once():
    """100 clients connect and post at the same moment; each is answered."""
    t0 = today_utc()
    results = []
    barrier = threading.Barrier(100, timeout=30)

    def client(k):
        try:
            barrier.wait()
            r = s.collect([event("many", anon="m%d" % k) for _ in range(5)], key=WK, timeout=60)
            results.append(r.status)
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))

    with Server() as s:
        ts = [threading.Thread(target=client, args=(k,)) for k in range(100)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=90)
        check_eq(sorted(set(map(str, results))), ["200"], "statuses of 100 simultaneous clients")
        s.wait_count(P, day_add(t0, -2), t0, RK, 500)
