"""Queries over HTTP (API.md "Queries: trends", "Identity"): answer shape, errors naming the
field, read-key auth, project time zones, retroactive identity, the refused merge of two
identified users, and erasure."""

import json

import tally
from tally import Server, check, check_eq, day_add, event, now_ms, today_utc

P, WK, RK = "demo", "wk_demo", "rk_demo"


def day_ms(day, hour=12, minute=0):
    """ms of day (YYYY-MM-DD) at hour:minute UTC."""
    import datetime
    d = datetime.datetime.fromisoformat(day).replace(hour=hour, minute=minute,
                                                      tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


def trends(**kw):
    q = {"project": P, "kind": "trends", "metric": "events", "interval": "day"}
    q.update(kw)
    return q


def test_trends_shape():
    t = today_utc()
    d = [day_add(t, -i) for i in range(8)]  # d[0] today, d[7] a week ago
    with Server() as s:
        evs = [event("shape", ts=day_ms(d[5], 9), platform="web") for _ in range(3)]
        evs += [event("shape", ts=day_ms(d[2], 23, 59), platform="ios")]
        evs += [event("other", ts=day_ms(d[2], 1), platform="web")]
        s.collect_ok(evs, key=WK)
        s.wait_count(P, d[6], d[1], RK, 5)
        j = s.query_ok(trends(event="shape", **{"from": d[6], "to": d[1]}), key=RK)
        check_eq(j.get("columns"), ["bucket", "value"], "columns")
        check_eq(j["rows"], [[d[6], 0], [d[5], 3], [d[4], 0], [d[3], 0], [d[2], 1], [d[1], 0]], "rows")
        check(isinstance(j["took_ms"], (int, float)), "took_ms is a number: %r" % j["took_ms"])
        j = s.query_ok(trends(breakdown="platform", **{"from": d[6], "to": d[1]}), key=RK)
        check_eq(j.get("columns"), ["bucket", "platform", "value"], "breakdown columns")
        got = {(r[0], r[1]): r[2] for r in j["rows"] if r[2]}
        check_eq(got, {(d[5], "web"): 3, (d[2], "ios"): 1, (d[2], "web"): 1}, "breakdown rows")
        keys = [(r[0], r[1]) for r in j["rows"]]
        check_eq(keys, sorted(keys), "rows ordered by bucket then breakdown value")
        check_eq(sorted(set(r[0] for r in j["rows"])), [d[i] for i in range(6, 0, -1)],
                 "every bucket present with a breakdown")
        # a project without data answers zeros in every bucket
        j = s.query_ok({"project": "ktm", "kind": "trends", "metric": "events", "interval": "day",
                        "from": d[3], "to": d[1]}, key="rk_ktm")
        check_eq(j["rows"], [[d[3], 0], [d[2], 0], [d[1], 0]], "empty project rows")
        # from/to as timestamps
        j = s.query_ok(trends(event="shape", **{"from": day_ms(d[5], 0), "to": day_ms(d[5], 10)}), key=RK)
        check_eq(sum(r[-1] for r in j["rows"]), 3, "timestamps as from/to")


def test_metrics_small():
    t = today_utc()
    d1, d2 = day_add(t, -3), day_add(t, -2)
    with Server() as s:
        evs = [
            event("buy", anon="a1", ts=day_ms(d1, 10), properties={"price": 10, "plan": "pro"}),
            event("buy", anon="a1", ts=day_ms(d1, 11), properties={"price": 5.5}),
            event("buy", anon="a2", ts=day_ms(d1, 12), properties={"price": "n/a"}),
            event("buy", anon="a3", ts=day_ms(d2, 12), properties={"price": 2, "plan": "free"}),
            event("view", anon="a3", ts=day_ms(d2, 13)),
        ]
        s.collect_ok(evs, key=WK)
        s.wait_count(P, d1, d2, RK, 5)
        rng = {"from": d1, "to": d2}

        def vals(**kw):
            return [r[-1] for r in s.query_ok(trends(**dict(rng, **kw)), key=RK)["rows"]]

        check_eq(vals(), [3, 2], "events")
        check_eq(vals(event="buy"), [3, 1], "events of buy")
        check_eq(vals(metric="persons"), [2, 1], "persons")
        check_eq(vals(metric="sum:properties.price"), [15.5, 2], "sum:properties.price")
        check_eq(vals(metric="avg:properties.price"), [7.75, 2], "avg:properties.price")
        check_eq(vals(where=[{"prop": "properties.plan", "op": "=", "value": "pro"}]), [1, 0], "where =")
        check_eq(vals(where=[{"prop": "properties.plan", "op": "is_set"}]), [1, 1], "where is_set")
        check_eq(vals(where=[{"prop": "properties.price", "op": ">", "value": 5}]), [2, 0], "where >")
        check_eq(vals(interval="month", metric="persons", to=d1), [2], "persons, one month bucket")


def test_query_errors_name_the_field():
    t = today_utc()
    base = trends(**{"from": day_add(t, -3), "to": t})
    cases = [
        ({k: v for k, v in base.items() if k != "project"}, "project"),
        (dict(base, kind="nope"), "kind"),
        ({k: v for k, v in base.items() if k != "kind"}, "kind"),
        (dict(base, metric="nope"), "metric"),
        (dict(base, metric="sum:"), "metric"),
        (dict(base, interval="year"), "interval"),
        (dict(base, **{"from": "2026-13-01"}), "from"),
        ({k: v for k, v in base.items() if k != "from"}, "from"),
        (dict(base, to="garbage"), "to"),
        (dict(base, tz="Mars/Olympus_Mons"), "tz"),
        (dict(base, tz="../../etc/passwd"), "tz"),
        (dict(base, where="nope"), "where"),
        (dict(base, where=[{"prop": "platform", "op": "~~", "value": "x"}]), "op"),
        (dict(base, where=[{"prop": "no_such_field", "op": "=", "value": "x"}]), "prop"),
        (dict(base, where=[{"op": "=", "value": "x"}]), "prop"),
        (dict(base, breakdown="no_such_field"), "breakdown"),
        (dict(base, event=7), "event"),
        (dict(base, metric="wau", interval="hour"), "metric"),
        (dict(base, interval="hour", **{"from": "2020-01-01", "to": "2026-01-01"}), "bucket"),
        (dict(base, where=[{"prop": "properties.n", "op": ">", "value": "abc"}]), "value"),
        (dict(base, where=[{"prop": "properties.n", "op": "=", "value": None}]), "value"),
    ]
    with Server() as s:
        s.collect_ok([event("warm-up")], key=WK)  # (a query on a server without events is slow)
        for q, field in cases:
            r = s.query(q, key=RK)
            check_eq(r.status, 400, "query %s: status" % json.dumps(q))
            j = r.json()
            msg = j.get("error")
            if field == "metric" and q.get("interval") == "hour":
                field = "interval" if "interval" in (msg or "") else "metric"
            if field == "bucket":  # over 10000 buckets: the message may name from, to or interval
                field = next((x for x in ("bucket", "interval", "from", "to") if x in (msg or "")), "bucket")
            check(isinstance(msg, str) and field in msg,
                  "query %s: error %r does not name %r" % (json.dumps(q), msg, field))
        for body in (b"{not json", b"[]", b"42"):
            r = s.request("POST", "/api/v1/query", body, {"Authorization": "Bearer " + RK,
                                                           "Content-Type": "application/json"})
            check_eq(r.status, 400, "query body %r status" % body)
            check(isinstance(r.json().get("error"), str), "error message for body %r" % body)
        check_eq(s.request("GET", "/healthz").status, 200, "healthz after bad queries")


def test_query_needs_read_key():
    t = today_utc()
    q = trends(**{"from": day_add(t, -1), "to": t})
    with Server() as s:
        s.collect_ok([event("warm-up")], key=WK)
        check_eq(s.query(q, key=None).status, 401, "no key")
        check_eq(s.query(q, key="rk_nope").status, 401, "wrong key")
        check_eq(s.query(q, key=WK).status, 401, "write key used as read key")
        r = s.query(q, key="rk_ktm")
        check(r.status in (401, 403), "another project's read key: status %d" % r.status)
        check_eq(s.query(q, key=RK).status, 200, "right key")


def test_project_timezone_is_the_default():
    t = today_utc()
    x = day_add(t, -3)
    with Server() as s:
        # 20:00Z is 01:45 the next day in Kathmandu; 03:00Z is the previous evening in New York
        s.collect_ok([event("tz", ts=day_ms(x, 20))], key="wk_ktm")
        s.collect_ok([event("tz", ts=day_ms(x, 3))], key="wk_ny")
        rng = {"from": day_add(x, -1), "to": day_add(x, 1)}
        s.wait_count("ktm", rng["from"], rng["to"], "rk_ktm", 1)
        s.wait_count("ny", rng["from"], rng["to"], "rk_ny", 1)

        def rows(project, key, **kw):
            q = {"project": project, "kind": "trends", "metric": "events", "interval": "day"}
            q.update(rng)
            q.update(kw)
            return s.query_ok(q, key=key)["rows"]

        check_eq(rows("ktm", "rk_ktm"), [[rng["from"], 0], [x, 0], [rng["to"], 1]], "ktm default tz")
        check_eq(rows("ktm", "rk_ktm", tz="UTC"), [[rng["from"], 0], [x, 1], [rng["to"], 0]], "ktm tz=UTC")
        check_eq(rows("ny", "rk_ny"), [[rng["from"], 1], [x, 0], [rng["to"], 0]], "ny default tz")
        check_eq(rows("ny", "rk_ny", tz="Asia/Kolkata"), [[rng["from"], 0], [x, 1], [rng["to"], 0]],
                 "ny tz=Asia/Kolkata")


def test_identity_retroactive_and_refused_merge():
    t = today_utc()
    d1, d2, d3 = day_add(t, -4), day_add(t, -3), day_add(t, -2)
    with Server() as s:
        evs = [
            # person 1: device a1 anonymous on d1, identifies as u1 on d2; a second device a3
            event("id", anon="a1", ts=day_ms(d1, 8)),
            event("id", anon="a1", ts=day_ms(d1, 9)),
            event("id", anon="a1", user="u1", ts=day_ms(d2, 8)),
            event("id", anon="a3", ts=day_ms(d2, 9)),
            event("id", user="u1", ts=day_ms(d3, 10)),
            # person 2: a2 + u2
            event("id", anon="a2", ts=day_ms(d1, 10)),
            event("id", anon="a2", user="u2", ts=day_ms(d2, 10)),
        ]
        s.collect_ok(evs, key=WK)
        s.wait_count(P, d1, d3, RK, 7)
        q = {"project": P, "kind": "trends", "metric": "persons", "interval": "day", "from": d1, "to": d3}

        def persons(**kw):
            return [r[-1] for r in s.query_ok(dict(q, **kw), key=RK)["rows"]]

        # a3 is still its own person
        check_eq(persons(), [2, 3, 1], "persons per day before a3 identifies")
        # a3 identifies as u1 (later than its anonymous event): retroactively one person
        s.collect_ok([event("id", anon="a3", user="u1", ts=day_ms(d3, 11))], key=WK)
        s.wait_count(P, d1, d3, RK, 8)
        tally.wait_until(lambda: persons() == [2, 2, 1], timeout=10, what="retroactive merge")
        # a1 (person of u1) now claims u2: merging two identified users is refused
        s.collect_ok([event("id", anon="a1", user="u2", ts=day_ms(d3, 12))], key=WK)
        s.collect_ok([event("id", anon="a2", user="u1", ts=day_ms(d3, 13))], key=WK)
        s.wait_count(P, d1, d3, RK, 10)
        check_eq(persons(), [2, 2, 2], "persons per day after refused merges")
        check_eq(persons(interval="month", to=d1), [2], "persons on d1 by month")
        s.restart()
        check_eq(persons(), [2, 2, 2], "persons per day after restart")


def test_erase_person():
    t = today_utc()
    d = day_add(t, -2)
    with Server() as s:
        evs = [event("er", anon="er-a", ts=day_ms(d, 8)), event("er", anon="er-a", user="er-u", ts=day_ms(d, 9)),
               event("er", user="er-u", ts=day_ms(d, 10)), event("er", anon="keep", ts=day_ms(d, 11))]
        s.collect_ok(evs, key=WK)
        s.wait_count(P, d, d, RK, 4)
        r = s.request("DELETE", "/api/v1/persons/er-u?project=" + P, headers={"Authorization": "Bearer " + RK})
        check(200 <= r.status < 300, "DELETE person: status %d %r" % (r.status, r.body[:300]))
        q = {"project": P, "kind": "trends", "interval": "day", "from": d, "to": d}
        check_eq(s.query_ok(dict(q, metric="events"), key=RK)["rows"], [[d, 1]], "events after erasure")
        check_eq(s.query_ok(dict(q, metric="persons"), key=RK)["rows"], [[d, 1]], "persons after erasure")
        r = s.request("DELETE", "/api/v1/persons/keep?project=" + P, headers={"Authorization": "Bearer " + WK})
        check(r.status in (401, 403), "DELETE with the write key: status %d" % r.status)
        s.restart()
        check_eq(s.query_ok(dict(q, metric="events"), key=RK)["rows"], [[d, 1]], "erasure after restart")


def test_query_is_fast_on_a_new_server():
    """Nothing was ever acknowledged, so a query has nothing to wait for."""
    import time
    t = today_utc()
    with Server() as s:
        for i in range(3):
            t0 = time.monotonic()
            s.query_ok(trends(**{"from": day_add(t, -1), "to": t}), key=RK)
            took = time.monotonic() - t0
            check(took < 1.0, "query %d on a server without events took %.2fs" % (i, took))


def test_breakdown_without_matching_rows_and_namespaces():
    t = today_utc()
    d = day_add(t, -1)
    with Server() as s:
        # the same text as an anonymous id and as a user id: two distinct ids, two persons
        s.collect_ok([event("ns", anon="same", ts=day_ms(d, 8)), event("ns", user="same", ts=day_ms(d, 9))], key=WK)
        s.wait_count(P, d, d, RK, 2)
        j = s.query_ok(trends(metric="persons", **{"from": d, "to": d}), key=RK)
        check_eq(j["rows"], [[d, 2]], "anonymous id and user id with the same text")
        j = s.query_ok(trends(breakdown="platform", event="nope", **{"from": d, "to": d}), key=RK)
        check_eq(j["rows"], [], "breakdown without any matching row")
        j = s.query_ok(trends(breakdown="platform", **{"from": d, "to": d}), key=RK)
        check_eq(j["rows"], [[d, None, 2]], "breakdown by an absent field is null")
