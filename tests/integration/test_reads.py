"""Person timelines, person properties, realtime (JSON and server-sent events) and the report
form, against a real server."""

import json
import time
import urllib.parse
import urllib.request

from tally import Server, check, check_eq, wait_until

AUTH = {"Authorization": "Bearer rk_demo"}


def get(s, path, headers=AUTH):
    return s.request("GET", path, headers=headers)


def timeline(s, did, **args):
    q = urllib.parse.urlencode(dict({"project": "demo"}, **args))
    r = get(s, "/api/v1/persons/%s/events?%s" % (urllib.parse.quote(did, safe=""), q))
    return r


def test_timeline_all_ids_in_time_order_with_paging():
    with Server() as s:
        T = int(time.time() * 1000) - 3600_000
        evs = [
            {"event": "b", "anonymous_id": "dev1", "timestamp": T + 5000, "event_id": "e2"},
            {"event": "a", "anonymous_id": "dev1", "timestamp": T, "event_id": "e1",
             "url": "https://x/a", "properties": {"n": 1, "s": "x"}},
            {"event": "c", "anonymous_id": "dev2", "timestamp": T + 7000, "event_id": "e4"},
            {"event": "login", "anonymous_id": "dev1", "user_id": "ü@x", "timestamp": T + 6000,
             "event_id": "e3"},
            {"event": "d", "user_id": "ü@x", "anonymous_id": "dev2", "timestamp": T + 6000,
             "event_id": "e0"},  # same instant as e3: ties by event_id
            {"event": "other", "anonymous_id": "stranger", "timestamp": T + 1},
        ]
        s.collect_ok(evs)
        r = timeline(s, "dev2")
        check_eq(r.status, 200, "status %r" % r.body)
        j = r.json()
        check_eq(sorted(j["person"]["distinct_ids"]), sorted(["dev1", "dev2", "ü@x"]), "ids")
        check_eq([e["event_id"] for e in j["events"]], ["e1", "e2", "e0", "e3", "e4"], "order")
        check_eq(j["events"][0]["properties"], {"n": 1, "s": "x"}, "properties")
        check_eq(j["events"][0]["url"], "https://x/a", "built-in field")
        check_eq(j["total"], 5, "total")
        # paging
        p1 = timeline(s, "ü@x", limit=2).json()
        check_eq([e["event_id"] for e in p1["events"]], ["e1", "e2"], "page 1")
        check_eq(p1["next_offset"], 2, "next_offset")
        p2 = timeline(s, "ü@x", limit=2, offset=2).json()
        p3 = timeline(s, "ü@x", limit=2, offset=4).json()
        check_eq([e["event_id"] for e in p2["events"] + p3["events"]], ["e0", "e3", "e4"], "pages")
        check(p3["next_offset"] is None, "last page")
        # a range
        j = timeline(s, "dev1", **{"from": str(T + 1000), "to": str(T + 6000)}).json()
        check_eq([e["event_id"] for e in j["events"]], ["e2", "e0", "e3"], "range (to inclusive)")
        # errors
        check_eq(timeline(s, "nobody").status, 404, "unknown id")
        check_eq(timeline(s, "dev1", limit=0).status, 400, "limit 0")
        check_eq(get(s, "/api/v1/persons/dev1/events", headers={}).status, 401, "no key")
        check_eq(get(s, "/api/v1/persons/dev1/events", headers={"Authorization": "Bearer wk_demo"}).status,
                 401, "write key")
        # erased
        r = s.request("DELETE", "/api/v1/persons/dev2?project=demo", headers=AUTH)
        check_eq(r.status, 200, "erase")
        check_eq(timeline(s, "ü@x").status, 404, "erased person")
        check_eq(timeline(s, "stranger").status, 200, "others stay")


def test_timeline_across_sealed_overlapping_parts_matches_reference():
    """Many small sealed parts (late batches make their time spans overlap), an open part,
    many equal timestamps inside and across parts: every page, range and limit equals the
    reference order (time, event_id). One person has 2 distinct ids (compared directly), the
    other 6 (through the identity map). The search is split among threads."""
    import random
    r = random.Random(7)
    day = 86400_000
    T0 = (int(time.time() * 1000) // day - 5) * day
    grid = [T0 + r.randrange(4 * day) // 600_000 * 600_000 for _ in range(60)]
    people = {"p1": ["p1a", "p1u"], "p2": ["p2a%d" % i for i in range(5)] + ["p2u"]}
    evs, n = [], 0
    for pname, dids in people.items():
        user = dids[-1]
        for a in dids[:-1]:  # the merge: an event carrying both ids
            n += 1
            evs.append({"event": "login", "anonymous_id": a, "user_id": user,
                        "timestamp": r.choice(grid), "event_id": "m%04d" % n, "_p": pname})
        for _ in range(150):
            n += 1
            evs.append({"event": r.choice("abc"), "anonymous_id": r.choice(dids[:-1]),
                        "timestamp": r.choice(grid), "event_id": "%s-%04d" % (r.choice("xyz"), n),
                        "_p": pname, "url": "https://x/%d" % n})
    for i in range(200):
        evs.append({"event": "noise", "anonymous_id": "n%d" % (i % 20),
                    "timestamp": r.choice(grid), "event_id": "n%04d" % i, "_p": None})
    r.shuffle(evs)  # arrival order unlike time order: parts overlap
    sent = [dict((k, v) for k, v in e.items() if k != "_p") for e in evs]
    # TALLY_TEST_QUERY_THREADS: test builds split the search among threads even on small data
    with Server(config_extra={"seal_rows": 30, "checkpoint_ms": 50},
                env={"TALLY_TEST_QUERY_THREADS": "1"}) as s:
        half = len(sent) * 3 // 4
        for i in range(0, half, 25):
            s.collect_ok(sent[i:i + 25])
        s.restart()  # everything so far sealed
        for i in range(half, len(sent), 40):
            s.collect_ok(sent[i:i + 40])
        for pname, dids in people.items():
            mine = sorted((e for e in evs if e["_p"] == pname),
                          key=lambda e: (e["timestamp"], e["event_id"]))
            want = [e["event_id"] for e in mine]
            wait_until(lambda: timeline(s, dids[0]).json()["total"] == len(want), timeout=30,
                       what="all of %s indexed" % pname)
            for limit in (1000, 7, 1):
                got, off = [], 0
                while off is not None:
                    j = timeline(s, r.choice(dids), limit=limit, offset=off).json()
                    check_eq(j["total"], len(want), "total")
                    got += [e["event_id"] for e in j["events"]]
                    off = j["next_offset"]
                check_eq(got, want, "%s pages of %d" % (pname, limit))
            for _ in range(10):
                a, b = sorted(r.sample(grid, 2))
                ids = [e["event_id"] for e in mine if a <= e["timestamp"] <= b]
                off = r.randrange(len(ids) + 2)
                j = timeline(s, dids[1], limit=9, offset=off,
                             **{"from": str(a), "to": str(b)}).json()
                check_eq(j["total"], len(ids), "range total")
                check_eq([e["event_id"] for e in j["events"]], ids[off:off + 9], "range page")
            j = timeline(s, dids[0], limit=3).json()
            first = mine[0]
            check_eq(j["events"][0]["timestamp"][:10],
                     time.strftime("%Y-%m-%d", time.gmtime(first["timestamp"] / 1000)), "time")
            check_eq(j["events"][0].get("url"), first.get("url"), "row fields")


def test_timeline_tie_across_touching_parts():
    """Two sealed parts where the first one's last instant is the second one's first, with a
    row of the person at that instant in each: ordered by event_id across the parts, on one
    page and split over pages."""
    day = 86400_000
    X = (int(time.time() * 1000) // day - 1) * day + 12 * 3600_000
    with Server(config_extra={"checkpoint_ms": 3600000}) as s:
        s.collect_ok([{"event": "a", "anonymous_id": "tp", "timestamp": X - 60_000 + i,
                       "event_id": "t0%d" % i} for i in range(3)] +
                     [{"event": "a", "anonymous_id": "tp", "timestamp": X, "event_id": "tb"}])
        s.restart()  # part 1: [X - 60 s, X]
        s.collect_ok([{"event": "a", "anonymous_id": "tp", "timestamp": X, "event_id": "ta"},
                      {"event": "a", "anonymous_id": "tp", "timestamp": X + 1, "event_id": "t9"}])
        s.restart()  # part 2: [X, X + 1 ms]
        want = ["t00", "t01", "t02", "ta", "tb", "t9"]
        check_eq([e["event_id"] for e in timeline(s, "tp").json()["events"]], want, "one page")
        for limit in (1, 2, 4):
            got = []
            for off in range(0, len(want), limit):
                got += [e["event_id"] for e in timeline(s, "tp", limit=limit, offset=off).json()["events"]]
            check_eq(got, want, "pages of %d" % limit)


def test_person_properties_set_and_set_once_across_merges_and_restarts():
    with Server() as s:
        T = int(time.time() * 1000) - 3600_000
        s.collect_ok([
            {"event": "a", "anonymous_id": "d1", "timestamp": T,
             "user_properties": {"plan": "free", "seen": 1},
             "user_properties_once": {"first_url": "/landing", "source": "ads"}},
            # older $set: does not win over the newer one
            {"event": "a", "anonymous_id": "d1", "timestamp": T - 5000,
             "user_properties": {"plan": "ancient"}},
            # newer $set_once: does not win over the older one
            {"event": "a", "anonymous_id": "d1", "timestamp": T + 5000,
             "user_properties_once": {"first_url": "/later"}},
        ])
        s.collect_ok([
            {"event": "signup", "anonymous_id": "d2", "user_id": "u9", "timestamp": T + 10000,
             "user_properties": {"plan": "pro", "nested": {"x": True}},
             "user_properties_once": {"source": "older?"}},
            {"event": "merge", "anonymous_id": "d1", "user_id": "u9", "timestamp": T + 20000},
        ])
        want = {"plan": "pro", "seen": 1, "first_url": "/landing", "source": "ads",
                "nested.x": "true"}
        # d2's $set_once "source" is at T+10000, d1's at T: the earliest wins
        for did in ("d1", "d2", "u9"):
            j = timeline(s, did).json()
            check_eq(j["person"]["properties"], want, "properties seen from %s" % did)
        s.restart()
        check_eq(timeline(s, "d1").json()["person"]["properties"], want, "after a restart")
        s.kill()
        s.start()
        check_eq(timeline(s, "u9").json()["person"]["properties"], want, "after kill -9")


def test_realtime_counts_pages_and_stream():
    with Server(projects={"demo": ("UTC", "wk_demo", "rk_demo"),
                          "other": ("UTC", "wk_other", "rk_other")}) as s:
        now = int(time.time() * 1000)
        evs = [{"event": "$pageview", "anonymous_id": "a%d" % (i % 7), "url": "https://x/%d" % (i % 3),
                "timestamp": now - 1000, "event_id": "r%d" % i} for i in range(30)]
        evs.append({"event": "identify", "anonymous_id": "a0", "user_id": "user0", "timestamp": now})
        s.collect_ok(evs)
        s.collect_ok(evs[:5])  # repeats: not counted again
        s.collect_ok([{"event": "x", "anonymous_id": "z", "timestamp": now}], key="wk_other")
        j = get(s, "/api/v1/realtime?project=demo").json()
        check_eq(j["active_persons_5m"], 7, "active persons (a0 and user0 are one)")
        check_eq(sum(j["events_per_s"]), 31, "events in the last 60 s")
        check_eq(len(j["events_per_s"]), 60, "60 seconds")
        check_eq(j["top_pages"], [{"url": "https://x/0", "views": 10}, {"url": "https://x/1", "views": 10},
                                  {"url": "https://x/2", "views": 10}], "top pages")
        check_eq(j["recent"][0]["event"], "identify", "newest first")
        o = get(s, "/api/v1/realtime?project=other", headers={"Authorization": "Bearer rk_other"}).json()
        check_eq(o["active_persons_5m"], 1, "projects are separate")
        check_eq(get(s, "/api/v1/realtime?project=other").status, 401, "another project's key")
        # the stream: one message a second, with the key in the query string
        f = urllib.request.urlopen(s.url + "/api/v1/realtime/stream?key=rk_demo", timeout=10)
        check_eq(f.headers.get("Content-Type"), "text/event-stream", "content type")
        msgs = []
        t0 = time.monotonic()
        while len(msgs) < 3:
            line = f.readline()
            if line.startswith(b"data: "):
                msgs.append(json.loads(line[6:]))
                if len(msgs) == 1:
                    s.collect_ok([{"event": "late", "anonymous_id": "new", "timestamp": now}])
        took = time.monotonic() - t0
        f.close()
        check(1.5 <= took <= 6, "3 messages about a second apart (%.2fs)" % took)
        check_eq(msgs[0]["active_persons_5m"], 7, "first message")
        check_eq(msgs[-1]["active_persons_5m"], 8, "the stream sees new events")
        check_eq(s.request("GET", "/api/v1/realtime/stream?key=nope").status, 401, "bad key")


def test_report_form_equals_trends():
    with Server() as s:
        T = int(time.time() * 1000) - 2 * 86400_000
        evs = [{"event": "$pageview" if i % 3 else "click", "anonymous_id": "p%d" % (i % 4),
                "country": ["NP", "DE"][i % 2], "timestamp": T + i * 1000} for i in range(40)]
        s.collect_ok(evs)
        day = time.strftime("%Y-%m-%d", time.gmtime(T / 1000))
        for metric, q in (("pageviews", {"metric": "events", "event": "$pageview"}),
                          ("persons", {"metric": "persons"}), ("events", {"metric": "events"})):
            r = get(s, "/api/v1/report?project=demo&metric=%s&from=%s&to=%s&group_by=country"
                    % (metric, day, day))
            check_eq(r.status, 200, "report %s: %r" % (metric, r.body))
            want = s.query_ok(dict({"project": "demo", "kind": "trends", "from": day, "to": day,
                                    "breakdown": "country"}, **q))
            check_eq(r.json()["rows"], want["rows"], "report %s" % metric)
        check_eq(get(s, "/api/v1/report?project=demo&metric=bogus&from=%s&to=%s" % (day, day)).status,
                 400, "bad metric")
