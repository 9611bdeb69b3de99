"""The ingestion rules that API.md leaves open and src/ingest.c's opening comment (and
docs/semantics.md) state: ids as integers, country case, empty strings and null as absent,
booleans and arrays in properties, first of duplicate fields, BOM, NDJSON detection and line
numbering, time forms and bounds, and the size, depth and property-count limits (an event over
a limit is rejected alone; a body nested far too deep is refused whole)."""

import json

import tally
from tally import Server, check, check_eq, day_add, event, now_ms, today_utc

P, WK, RK = "demo", "wk_demo", "rk_demo"


def day_ms(day, hour=12):
    import datetime
    d = datetime.datetime.fromisoformat(day).replace(hour=hour, tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


def q(s, d, **kw):
    body = {"project": P, "kind": "trends", "metric": "events", "interval": "day", "from": d, "to": d, "tz": "UTC"}
    body.update(kw)
    return s.query_ok(body, key=RK)["rows"]


def total(s, d, **kw):
    return sum(r[-1] for r in q(s, d, **kw))


def post_raw(s, body, ctype="application/json"):
    return s.collect(body=body, key=WK, headers={"Content-Type": ctype})


def test_field_normalisation():
    d = day_add(today_utc(), -1)
    ts = day_ms(d)
    # events from 2000 are kept: a retention longer than they are old
    with Server(config_extra={"retention_days": 36500}) as s:
        evs = [
            {"event": "ints", "anonymous_id": 12345, "event_id": 77, "timestamp": ts},
            {"event": "ints", "anonymous_id": "12345", "event_id": "77", "timestamp": ts},   # same id: duplicate
            {"event": "ints", "anonymous_id": "12345", "event_id": "78", "timestamp": ts},
            {"event": "cc", "anonymous_id": "c1", "country": "np", "timestamp": ts},
            {"event": "cc", "anonymous_id": "c2", "country": "NP", "timestamp": ts},
            {"event": "empty", "anonymous_id": "e1", "platform": "", "url": "", "session_id": "",
             "timestamp": ts},
            {"event": "props", "anonymous_id": "p1", "timestamp": ts,
             "properties": {"flag": True, "tags": [1, "a"], "gone": None, "cart": {"total": 5}}},
            {"event": "props", "anonymous_id": "p2", "timestamp": ts, "properties": {"flag": False}},
            {"event": "sess", "anonymous_id": "s1", "session_id": "S-1", "timestamp": ts},
        ]
        j = s.collect_ok(evs, key=WK)
        check_eq(j.get("accepted", 0) + j.get("duplicates", 0), len(evs), "accepted + duplicates")
        s.wait_count(P, d, d, RK, len(evs) - 1, tz="UTC")
        check_eq(total(s, d, event="ints"), 2, "event_id 77 (number) and \"77\" are one event")
        check_eq(total(s, d, event="ints", metric="persons"), 1, "anonymous_id 12345 and \"12345\" are one id")
        check_eq(q(s, d, event="cc", breakdown="country"), [[d, "NP", 2]], "country upper-cased")
        check_eq(q(s, d, event="empty", breakdown="platform"), [[d, None, 1]], "empty platform is absent")
        check_eq(total(s, d, event="empty", where=[{"prop": "url", "op": "is_not_set"}]), 1, "empty url is absent")
        check_eq(total(s, d, event="props", where=[{"prop": "properties.flag", "op": "=", "value": True}]), 1,
                 "boolean true stored as \"true\"")
        check_eq(q(s, d, event="props", breakdown="properties.flag"), [[d, "false", 1], [d, "true", 1]],
                 "booleans as strings in a breakdown")
        check_eq(q(s, d, event="props", breakdown="properties.tags"), [[d, None, 1], [d, '[1,"a"]', 1]],
                 "an array as its compact JSON text")
        check_eq(total(s, d, event="props", where=[{"prop": "properties.gone", "op": "is_set"}]), 0, "null is absent")
        check_eq(total(s, d, metric="sum:properties.cart.total"), 5.0, "nested keys flattened with dots")
        check_eq(total(s, d, where=[{"prop": "session_id", "op": "=", "value": "S-1"}]), 1, "session_id kept")


def test_body_details():
    d = day_add(today_utc(), -1)
    ts = day_ms(d)
    with Server() as s:
        # first of duplicate fields wins
        r = post_raw(s, '{"event":"first","event":"second","anonymous_id":"x","timestamp":%d}' % ts)
        check_eq((r.status, r.json().get("accepted")), (200, 1), "duplicate field")
        # a UTF-8 byte order mark is skipped
        r = post_raw(s, b"\xef\xbb\xbf" + json.dumps([event("bom", ts=ts)]).encode())
        check_eq((r.status, r.json().get("accepted")), (200, 1), "body with a BOM")
        # NDJSON detected without its content type; blank lines skipped; indexes among
        # non-blank lines; a bad line rejects that event only
        lines = [json.dumps(event("nd", ts=ts)), "", json.dumps(event("nd", ts=ts)), "{bad json", "",
                 json.dumps({"event": "nd"}), json.dumps(event("nd", ts=ts))]
        r = post_raw(s, "\n".join(lines) + "\n")
        check_eq(r.status, 200, "NDJSON without its content type")
        j = r.json()
        check_eq((j.get("accepted"), j.get("rejected")), (3, 2), "NDJSON accepted/rejected %r" % j)
        check_eq(sorted(e["index"] for e in j["errors"]), [2, 3], "NDJSON error indexes (non-blank lines)")
        s.wait_count(P, d, d, RK, 5, tz="UTC")
        check_eq(total(s, d, event="first"), 1, "first of duplicate fields")
        check_eq(total(s, d, event="second"), 0, "second of duplicate fields")


def test_time_rules():
    d = day_add(today_utc(), -1)
    ts = day_ms(d)
    with Server() as s:
        evs = [
            event("t_ok", ts=str(ts)),                       # digits in a string: ms
            event("t_ok", ts=ts / 1000.0 + 0.25),            # seconds with a fraction
            event("t_old", ts="1999-12-31T23:59:59Z"),       # before 2000-01-01: rejected
            event("t_old", ts=946684799000),
            event("t_nozone", ts="2026-11-01T10:00:00"),     # no zone: refused
            event("t_ok", ts=ts, sent_at="garbage"),         # a bad sent_at rejects the event
        ]
        r = s.collect(evs, key=WK)
        check_eq(r.status, 200, "status")
        j = r.json()
        check_eq(sorted(e["index"] for e in j["errors"]), [2, 3, 4, 5], "rejected: %r" % j["errors"])
        for e in j["errors"]:
            check("timestamp" in e["error"] or "sent_at" in e["error"], "error names the field: %r" % e)
        s.wait_count(P, d, d, RK, 2, tz="UTC")
        rows = q(s, d, event="t_ok", interval="hour")
        check_eq(rows[12][1], 2, "ms as digits and seconds with a fraction land at 12:00")
        # exactly 2000-01-01 is fine
        s.collect_ok([event("t_2000", ts="2000-01-01T00:00:00Z")], key=WK)
        check_eq(total(s, "2000-01-01", event="t_2000"), 1, "2000-01-01T00:00:00Z accepted")


def test_limits():
    d = day_add(today_utc(), -1)
    ts = day_ms(d)
    with Server() as s:
        def nested(depth):
            v = 1
            for _ in range(depth - 1):
                v = {"k": v}
            return v

        evs = [
            event("lim_ok", ts=ts),
            event("lim_big", ts=ts, properties={"pad": "x" * 8000, "pad2": "y" * 8000, "pad3": "z" * 8000,
                                                "pad4": "w" * 8000, "pad5": "v" * 2000}),   # > 32 KiB
            event("lim_url", ts=ts, url="https://x/" + "a" * 9000),                    # > 8 KiB string
            event("lim_props", ts=ts, properties={"p%d" % i: i for i in range(1001)}),  # > 1000 props
            event("lim_deep", ts=ts, properties={"a": nested(17)}),                     # > 16 levels
            event("lim_ip", ts=ts, ip="999.1.1.1"),
            event("lim_cc", ts=ts, country="Nepal"),
            event("lim_ok", ts=ts, properties={"a": nested(15)}),                       # 16 levels: fine
            event("lim_ok", ts=ts, properties={"p%d" % i: i for i in range(1000)}),     # 1000: fine
        ]
        r = s.collect(evs, key=WK)
        check_eq(r.status, 200, "status")
        j = r.json()
        check_eq(sorted(e["index"] for e in j["errors"]), [1, 2, 3, 4, 5, 6], "rejected: %r" % j["errors"])
        check_eq(j["accepted"], 3, "accepted")
        # a body nested far deeper than the limit is refused whole
        deep = json.dumps([event("lim_deeper", ts=ts, properties={"a": nested(60)})])
        r = post_raw(s, deep)
        check_eq(r.status, 400, "body nested 60 deep")
        s.wait_count(P, d, d, RK, 3, tz="UTC")
        check_eq(total(s, d, event="lim_ok"), 3, "events within the limits")
