"""Ingestion over HTTP (API.md "Ingestion"): every body form and key form of POST /collect,
the error statuses, partial batches, duplicates, clock skew, future timestamps, the pixel, and
that bad input never stops the server. Each test runs its own `tally serve`."""

import gzip
import json
import urllib.parse

import tally
from tally import Server, check, check_eq, event, now_ms, recent_range

P, WK, RK = "demo", "wk_demo", "rk_demo"


def count(s, name=None, tz=None):
    f, t = recent_range(5)
    return s.count_events(P, f, t, RK, event=name, tz=tz)


def wait_count(s, want, name=None, timeout=30):
    f, t = recent_range(5)
    return s.wait_count(P, f, t, RK, want, event=name, timeout=timeout)


def settle(s, total):
    """Waits until everything sent is visible (the total is known), so a later 'not counted'
    check is meaningful."""
    wait_count(s, total)


def test_body_forms():
    with Server() as s:
        cases = [
            ("form_envelope", dict(form="envelope"), 2),
            ("form_array", dict(form="array"), 3),
            ("form_single", dict(form="single"), 1),
            ("form_ndjson", dict(form="ndjson"), 4),
            ("form_gzip_header", dict(form="envelope", gz=True), 2),
            ("form_gzip_magic", dict(form="array", gz=True, gz_header=False), 3),
            ("form_gzip_ndjson", dict(form="ndjson", gz=True), 2),
        ]
        total = 0
        for name, kw, n in cases:
            evs = [event(name) for _ in range(n)]
            r = s.collect(evs, key=WK, **kw)
            check(r.status == 200, "%s: status %d %r" % (name, r.status, r.body[:300]))
            j = r.json()
            check_eq((j.get("accepted"), j.get("rejected")), (n, 0), "%s accepted/rejected" % name)
            total += n
        # gzip magic bytes with a misleading content type
        evs = [event("form_gzip_textplain") for _ in range(2)]
        r = s.collect(body=gzip.compress(json.dumps({"events": evs}).encode()), key=WK,
                      headers={"Content-Type": "text/plain"})
        check(r.status == 200, "gzip text/plain: %r" % r)
        check_eq(r.json().get("accepted"), 2, "gzip text/plain accepted")
        total += 2
        wait_count(s, total)
        for name, _, n in cases:
            check_eq(count(s, name), n, "count of %s" % name)
        check_eq(count(s, "form_gzip_textplain"), 2, "count of form_gzip_textplain")


def test_key_forms():
    with Server() as s:
        ok = []
        r = s.collect([event("key_bearer")], key=WK)
        ok.append(("bearer", r))
        r = s.collect([event("key_query")], key=None, params={"key": WK})
        ok.append(("?key=", r))
        r = s.collect(body=json.dumps({"api_key": WK, "events": [event("key_body_env")]}), key=None,
                      headers={"Content-Type": "application/json"})
        ok.append(("api_key in envelope", r))
        e = event("key_body_single")
        e["api_key"] = WK
        r = s.collect(body=json.dumps(e), key=None, headers={"Content-Type": "application/json"})
        ok.append(("api_key in single event", r))
        for what, r in ok:
            check(r.status == 200, "%s: status %d %r" % (what, r.status, r.body[:300]))
            check_eq(r.json().get("accepted"), 1, what + " accepted")
        # the ktm project's write key puts the event into ktm, not demo
        r = s.collect([event("key_other_project")], key="wk_ktm")
        check(r.status == 200, "ktm key: %r" % r)
        wait_count(s, 4)
        for n in ("key_bearer", "key_query", "key_body_env", "key_body_single"):
            check_eq(count(s, n), 1, "count of " + n)
        f, t = recent_range(5)
        s.wait_count("ktm", f, t, "rk_ktm", 1)
        check_eq(count(s, "key_other_project"), 0, "ktm's event in demo")


def test_bad_key_401():
    with Server() as s:
        bad = [
            ("wrong bearer", dict(key="wk_nope")),
            ("no key", dict(key=None)),
            ("wrong ?key=", dict(key=None, params={"key": "wk_nope"})),
            ("read key as write key", dict(key=RK)),
        ]
        for what, kw in bad:
            r = s.collect([event("bad_key")], **kw)
            check_eq(r.status, 401, what + " status")
        r = s.collect(body=json.dumps({"api_key": "nope", "events": [event("bad_key")]}), key=None)
        check_eq(r.status, 401, "wrong api_key in body status")
        r = s.collect([event("good_key")], key=WK)
        check_eq(r.status, 200, "good key status")
        wait_count(s, 1)
        check_eq(count(s, "bad_key"), 0, "events stored despite 401")


def test_too_large_413():
    with Server(config_extra={"max_body_bytes": 1048576}) as s:
        big = [event("big", properties={"pad": "x" * 1000}) for _ in range(3000)]  # ~3.3 MB
        r = s.collect(big, key=WK)
        check_eq(r.status, 413, "3 MB body status")
        # small on the wire, 8 MB after decompression
        bomb = gzip.compress(json.dumps({"events": [event("bomb", properties={"pad": " " * (8 << 20)})]}).encode())
        check(len(bomb) < 100000, "bomb is small")
        r = s.collect(body=bomb, key=WK, headers={"Content-Encoding": "gzip",
                                                  "Content-Type": "application/json"})
        check_eq(r.status, 413, "gzip bomb status")
        r = s.collect(body=bomb, key=WK, headers={"Content-Type": "application/json"})
        check_eq(r.status, 413, "gzip bomb by magic status")
        s.collect_ok([event("after_413")], key=WK)
        wait_count(s, 1)
        check_eq(count(s, "big"), 0, "events of the 413 body")
        check_eq(count(s, "bomb"), 0, "events of the gzip bomb")


def test_unparseable_400():
    with Server() as s:
        bodies = [
            ("not json", b"{not json", "application/json"),
            ("truncated", b'{"events":[{"event":"x","anonymous_id":"a"}', "application/json"),
            ("invalid utf-8", b'{"events":[{"event":"caf\xc3\x28","anonymous_id":"a"}]}', "application/json"),
            ("invalid utf-8 2", b'[{"event":"\xff\xfe","anonymous_id":"a"}]', "application/json"),
            ("corrupt gzip", b"\x1f\x8b\x08\x00" + b"garbage" * 20, "application/json"),
            ("a number", b"42", "application/json"),
            ("a string", b'"hello"', "application/json"),
        ]
        for what, body, ctype in bodies:
            r = s.collect(body=body, key=WK, headers={"Content-Type": ctype})
            check_eq(r.status, 400, what + " status")
            j = r.json()
            check(isinstance(j.get("error"), str) and j["error"], "%s: no error message: %r" % (what, j))
        r = s.collect(body=b"\x1f\x8b\x08\x00garbage", key=WK,
                      headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
        check_eq(r.status, 400, "corrupt gzip with header status")
        s.collect_ok([event("after_400")], key=WK)
        wait_count(s, 1)


def test_partial_batch():
    with Server() as s:
        good = lambda: event("partial_good")  # noqa: E731
        no_name = event("x")
        del no_name["event"]
        no_ids = event("x")
        del no_ids["anonymous_id"]
        bad_ts = event("x", ts="yesterday-ish")
        long_name = event("x" * 201)
        bad_type = event("x")
        bad_type["event"] = 17
        props_not_obj = event("x", properties="nope")
        evs = [good(), no_name, good(), no_ids, bad_ts, long_name, good(), bad_type, "not an object",
               props_not_obj, good()]
        bad_idx = [1, 3, 4, 5, 7, 8, 9]
        r = s.collect(evs, key=WK)
        check_eq(r.status, 200, "status")
        j = r.json()
        check_eq(j.get("accepted"), 4, "accepted (%r)" % j)
        check_eq(j.get("rejected"), len(bad_idx), "rejected (%r)" % j)
        errs = j.get("errors")
        check(isinstance(errs, list), "errors list: %r" % j)
        check_eq(sorted(e.get("index") for e in errs), bad_idx, "error indexes")
        for e in errs:
            check(isinstance(e.get("error"), str) and e["error"], "error without message: %r" % e)
        wait_count(s, 4)
        check_eq(count(s, "partial_good"), 4, "good events kept")
        # an event name of exactly 200 bytes is fine
        s.collect_ok([event("y" * 200)], key=WK)
        wait_count(s, 5)
        # all rejected: still 200
        r = s.collect([no_name, no_ids], key=WK)
        check_eq(r.status, 200, "all-rejected status")
        check_eq((r.json().get("accepted"), r.json().get("rejected")), (0, 2), "all rejected")
        # more than 100 bad events: errors capped at 100, rejected exact
        r = s.collect([no_name] * 150 + [good()], key=WK)
        check_eq(r.status, 200, "150 bad status")
        j = r.json()
        check_eq((j.get("accepted"), j.get("rejected")), (1, 150), "150 bad counts")
        check(len(j.get("errors", [])) <= 100, "errors capped at 100: %d" % len(j.get("errors", [])))
        wait_count(s, 6)


def test_duplicates_counted_once():
    with Server() as s:
        evs = [event("dup") for _ in range(5)]
        j = s.collect_ok(evs, key=WK)
        check_eq(j.get("accepted", 0) + j.get("duplicates", 0), 5, "first send %r" % j)
        wait_count(s, 5)
        # resend the same batch, and each event again with a later sent_at
        j = s.collect_ok(evs, key=WK)
        check_eq(j.get("accepted", 0) + j.get("duplicates", 0), 5, "resend %r" % j)
        again = [dict(e, sent_at=now_ms()) for e in evs]
        s.collect_ok(again, key=WK)
        # duplicates inside one batch
        e = event("dup_in_batch")
        s.collect_ok([e, dict(e), dict(e, properties={"changed": 1})], key=WK)
        # no event_id: identical content is one event, different content two
        t = now_ms() - 7200 * 1000
        noid = event("dup_noid", anon="anon-noid", ts=t, eid=None)
        s.collect_ok([noid], key=WK)
        s.collect_ok([dict(noid)], key=WK)
        s.collect_ok([dict(noid, timestamp=t + 1)], key=WK)
        wait_count(s, 5 + 1 + 2)
        check_eq(count(s, "dup"), 5, "dup count")
        check_eq(count(s, "dup_in_batch"), 1, "dup_in_batch count")
        check_eq(count(s, "dup_noid"), 2, "dup_noid count")
        # and after a restart the ids are still known
        s.restart()
        s.collect_ok(evs, key=WK, form="ndjson")
        s.collect_ok([event("after_restart")], key=WK)
        wait_count(s, 9)
        check_eq(count(s, "dup"), 5, "dup count after restart")


def _midday(days_ago):
    """ms of 12:00 UTC, days_ago days before today."""
    t = now_ms()
    return t - t % 86400000 - days_ago * 86400000 + 12 * 3600000


def test_clock_skew_sent_at():
    with Server() as s:
        real = _midday(2)
        day = tally.utc_day(real)
        cases = []
        for name, skew in (("skew_ahead", 5 * 86400000), ("skew_behind", -3 * 86400000),
                           ("skew_small", 90 * 1000)):
            n = now_ms()
            cases.append(event(name, ts=real + skew, sent_at=n + skew))
        n = now_ms()
        iso_ev = event("skew_iso", ts=tally.iso(real + 4 * 86400000), sent_at=tally.iso(n + 4 * 86400000))
        cases.append(iso_ev)
        s.collect_ok(cases, key=WK)
        # envelope-level sent_at applies to every event of the batch
        n = now_ms()
        body = {"sent_at": n - 86400000, "events": [event("skew_env", ts=real - 86400000) for _ in range(2)]}
        r = s.collect(body=json.dumps(body), key=WK, headers={"Content-Type": "application/json"})
        check(r.status == 200 and r.json().get("accepted") == 2, "envelope sent_at: %r" % r)
        wait_count(s, 6)
        for name, want in (("skew_ahead", 1), ("skew_behind", 1), ("skew_small", 1), ("skew_iso", 1),
                           ("skew_env", 2)):
            rows = s.trend_values({"project": P, "kind": "trends", "metric": "events",
                                   "interval": "day", "event": name, "tz": "UTC",
                                   "from": day, "to": day}, key=RK)
            check_eq(rows, [(day, want)], "%s: buckets (event time corrected to %s)" % (name, day))


def test_future_timestamp_rejected():
    with Server() as s:
        fut = event("future", ts=now_ms() + 3 * 86400000)
        fut_iso = event("future", ts=tally.iso(now_ms() + 10 * 86400000))
        r = s.collect([event("present"), fut, fut_iso], key=WK)
        check_eq(r.status, 200, "status")
        j = r.json()
        check_eq((j.get("accepted"), j.get("rejected")), (1, 2), "accepted/rejected %r" % j)
        check_eq(sorted(e["index"] for e in j.get("errors", [])), [1, 2], "error indexes")
        # the same future timestamp is fine when sent_at says the client clock is ahead
        n = now_ms()
        s.collect_ok([event("future_skewed", ts=n + 3 * 86400000 - 3600000, sent_at=n + 3 * 86400000)], key=WK)
        f, t = tally.day_add(tally.today_utc(), -3), tally.day_add(tally.today_utc(), 20)
        s.wait_count(P, f, t, RK, 2)
        check_eq(s.count_events(P, f, t, RK, event="future"), 0, "future events stored")


def test_timestamp_forms():
    with Server() as s:
        real = _midday(1)
        day = tally.utc_day(real)
        evs = [
            event("tsform", ts=real),                      # ms
            event("tsform", ts=real // 1000),              # seconds (below 1e11)
            event("tsform", ts=tally.iso(real)),           # ISO Z
            event("tsform", ts=tally.iso(real)[:-1] + "+00:00"),   # ISO +00:00
        ]
        # 12:00Z written as 17:45+05:45
        loc = tally.iso(real + (5 * 3600 + 45 * 60) * 1000)[:19] + "+05:45"
        evs.append(event("tsform", ts=loc))
        s.collect_ok(evs, key=WK)
        no_ts = event("tsform_default")
        del no_ts["timestamp"]
        s.collect_ok([no_ts], key=WK)
        wait_count(s, 6)
        rows = s.trend_values({"project": P, "kind": "trends", "metric": "events", "interval": "hour",
                               "event": "tsform", "tz": "UTC", "from": day, "to": day}, key=RK)
        check_eq(len(rows), 24, "hour buckets in a UTC day")
        check_eq([v for _, v in rows], [0] * 12 + [5] + [0] * 11,
                 "all five forms of 12:00Z in the 12:00 bucket (%r)" % rows)
        check_eq(count(s, "tsform_default"), 1, "event without timestamp (receive time)")


def test_keeps_serving_after_bad_input():
    with Server() as s:
        junk = [
            b"", b"null", b"[]", b"{}", b"[[[[[[[[[[", b"[" * 100000, b'{"events":' * 5000,
            b'{"events":[1,2,3]}', b'{"events":"x"}', b"\x00\x01\x02\x03", b"\x1f\x8b",
            b'{"event":"a","anonymous_id":"b","timestamp":1e400}',
            b'{"event":"a","anonymous_id":"b","timestamp":-99999999999999999999}',
            b'{"event":"a","anonymous_id":"b","properties":{"' + b"k" * 100000 + b'":1}}',
            b'{"event":"a","anonymous_id":"b","properties":' + b'{"a":' * 2000 + b"1" + b"}" * 2001,
            b'{"event":"a\\u0000b","anonymous_id":"\\ud800"}',
            b'{"event":"a","anonymous_id":"b","event":"dup-key"}',
            b'\n\n{"event":"a","anonymous_id":"b"}\n{bad}\n',
            b'{"event":"a","anonymous_id":"b","timestamp":"2026-13-45T99:99:99Z"}',
            b'{"event":"a","anonymous_id":"b","sent_at":"garbage","timestamp":5}',
        ]
        for i, b in enumerate(junk):
            for ctype in ("application/json", "application/x-ndjson"):
                r = s.collect(body=b, key=WK, headers={"Content-Type": ctype})
                check(r.status in (200, 400, 413), "junk %d (%r...) status %d" % (i, b[:40], r.status))
                check(s.running(), "server died on junk %d (%r...)" % (i, b[:40]))
        # odd requests
        for method, path in (("GET", "/collect"), ("PUT", "/collect"), ("GET", "/nope"),
                             ("POST", "/api/v1/query"), ("GET", "/api/v1/query"),
                             ("GET", "/collect.gif"), ("GET", "/collect.gif?event=x"),
                             ("GET", "/" + "a" * 5000)):
            r = s.request(method, path, body=b"" if method in ("POST", "PUT") else None)
            check(400 <= r.status < 500 or (path.startswith("/collect.gif") and r.status == 200), "%s %s: status %d" % (method, path[:40], r.status))
        check_eq(s.request("GET", "/healthz").status, 200, "healthz after junk")
        f, t = recent_range(5)
        before = s.count_events(P, f, t, RK)
        s.collect_ok([event("after_junk") for _ in range(3)], key=WK)
        s.wait_count(P, f, t, RK, before + 3)


def test_pixel_gif():
    with Server() as s:
        q = urllib.parse.urlencode({"key": WK, "event": "pixel_view", "anonymous_id": "px-1",
                                    "url": "https://example.com/a?b=c"})
        r = s.request("GET", "/collect.gif?" + q)
        check_eq(r.status, 200, "pixel status")
        ct = (r.header("Content-Type") or "").lower()
        check("image/gif" in ct, "pixel content type %r" % ct)
        check(r.body[:6] in (b"GIF89a", b"GIF87a"), "pixel body is a GIF: %r" % r.body[:10])
        check(len(r.body) < 100, "a 1x1 GIF is tiny: %d bytes" % len(r.body))
        r = s.request("GET", "/collect.gif?" + urllib.parse.urlencode(
            {"key": WK, "event": "pixel_view", "anonymous_id": "px-2"}))
        check_eq(r.status, 200, "second pixel")
        wait_count(s, 2)
        f, t = recent_range(5)
        rows = s.query_ok({"project": P, "kind": "trends", "metric": "events", "interval": "day",
                           "from": f, "to": t, "event": "pixel_view",
                           "where": [{"prop": "url", "op": "contains", "value": "example.com/a"}]},
                          key=RK)["rows"]
        check_eq(sum(r[-1] for r in rows), 1, "pixel url stored")
