"""Retention (docs/lifecycle.md): with retention_days = N, a checkpoint drops every UTC day
that ended more than N days ago, whole: its rows leave the answers and its part files are
deleted (the event ids of those days are in no file of the store, part columns decompressed);
newer days are untouched, also after a restart."""

import time

from tally import Server, check, check_eq, day_add, event, today_utc, uid, wait_until
from test_erase import day_ms, files_holding, metric

P, WK, RK = "demo", "wk_demo", "rk_demo"


def count(s, d):
    j = s.query_ok({"project": P, "kind": "trends", "interval": "day", "metric": "events",
                    "from": d, "to": d}, key=RK)
    return j["rows"][0][1]


def test_old_days_are_dropped_with_their_files():
    t = today_utc()
    ago = [0, 1, 2, 3, 5, 40]
    tag = uid("rt")
    with Server(extra_args=["--retention-days", "2", "--checkpoint-ms", "300"]) as s:
        evs = []
        for a in ago:
            d = day_add(t, -a)
            for i in range(5):
                ts = min(day_ms(d) + (8 + i) * 3600000, int(time.time() * 1000) - 60000)
                evs.append(event("pageview", anon="p%d" % i, ts=ts,
                                 eid="%s-day%d-%d" % (tag, a, i)))
        s.collect_ok(evs, key=WK)
        # Kept: today and the two days before; the rest goes at the next checkpoint.
        for a in ago:
            d = day_add(t, -a)
            want = 5 if a <= 2 else 0
            wait_until(lambda: count(s, d) == want, timeout=30,
                       what="day -%d answering %d" % (a, want))
        wait_until(lambda: metric(s, "tally_store_parts") == 3, timeout=30,
                   what="one part per kept day")
        store = s.data_dir + "/store"
        found = files_holding(store, ["%s-day%d-" % (tag, a) for a in ago])
        for a in ago:
            where = found["%s-day%d-" % (tag, a)]
            if a <= 2:
                check(any(p.endswith(".part") for p in where),
                      "day -%d is in a part file: %r" % (a, where))
            else:
                check_eq(where, [], "files holding day -%d" % a)
        s.restart()
        for a in ago:
            check_eq(count(s, day_add(t, -a)), 5 if a <= 2 else 0, "day -%d after restart" % a)
