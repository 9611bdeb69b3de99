"""Person timeline cost: the did set of sealed parts (part format version 3) keeps the search
to the parts that hold one of the person's distinct ids, so the did columns of every other
part stay unread, also right after a restart (nothing cached)."""

import re
import time
import urllib.parse

from tally import Server, check, check_eq, wait_until

AUTH = {"Authorization": "Bearer rk_demo"}
DAY = 86400_000


def timeline(s, did, **args):
    q = urllib.parse.urlencode(dict({"project": "demo"}, **args))
    r = s.request("GET", "/api/v1/persons/%s/events?%s" % (urllib.parse.quote(did, safe=""), q),
                  headers=AUTH)
    check_eq(r.status, 200, "timeline of %s: %s" % (did, r.body[:200]))
    return r.json()


def cache_bytes(s):
    r = s.request("GET", "/metrics")
    check_eq(r.status, 200, "/metrics")
    m = re.search(r"^tally_store_cache_bytes (\d+)", r.body.decode(), re.M)
    check(m is not None, "tally_store_cache_bytes in /metrics")
    return int(m.group(1))


def test_timeline_reads_only_the_parts_holding_the_person():
    """30 days of noise (one part each, 300 rows of 3 ids: 1.2 kB of did column), a person
    on 2 other days (1-row parts). After a restart the person's timeline decodes the 30 noise
    parts' did sets (12 bytes each) and the 2 small parts, never a noise part's did column: the
    column cache grows by far less than those did columns (36 kB) would take. Then a person
    whose ids are in some noise parts: exactly its rows."""
    T0 = (int(time.time() * 1000) // DAY - 40) * DAY
    noise = [{"event": "n", "anonymous_id": "noise%d" % (i % 3),
              "timestamp": T0 + d * DAY + 1000 * i, "event_id": "n%02d-%03d" % (d, i)}
             for d in range(30) for i in range(300)]
    mine = [{"event": "hello", "anonymous_id": "needle", "timestamp": T0 + 35 * DAY + 5,
             "event_id": "m1", "url": "https://x/1"},
            {"event": "bye", "anonymous_id": "needle", "user_id": "needle-user",
             "timestamp": T0 + 37 * DAY + 9, "event_id": "m2"}]
    with Server(config_extra={"checkpoint_ms": 3600000}) as s:
        for i in range(0, len(noise), 1000):
            s.collect_ok(noise[i:i + 1000])
        s.collect_ok(mine)
        wait_until(lambda: timeline(s, "needle")["total"] == 2, what="needle indexed")
        s.restart()  # every part sealed, the cache empty
        before = cache_bytes(s)
        j = timeline(s, "needle-user")
        grew = cache_bytes(s) - before
        check_eq([e["event_id"] for e in j["events"]], ["m1", "m2"], "needle's events")
        check_eq(sorted(j["person"]["distinct_ids"]), ["needle", "needle-user"], "its ids")
        check(grew < 12_000, "cache grew by %d bytes: the noise parts' did columns were read"
              % grew)
        # a person in every noise part: all its rows, in order
        want = [e["event_id"] for e in sorted(noise, key=lambda e: (e["timestamp"], e["event_id"]))
                if e["anonymous_id"] == "noise1"]
        got, off = [], 0
        while off is not None:
            j = timeline(s, "noise1", limit=1000, offset=off)
            check_eq(j["total"], len(want), "noise1 total")
            got += [e["event_id"] for e in j["events"]]
            off = j["next_offset"]
        check(got == want, "noise1: %d rows, not the %d wanted in order" % (len(got), len(want)))
