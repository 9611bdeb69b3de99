"""Funnel and retention requests end to end: validation errors naming the field, a project
without data, and breakdowns past 100 values (the rest under "$other"). The semantics
themselves are pinned by the differential test (tests/diff/test_funnel.py)."""

import time

from tally import Server, check, check_eq

DAY = "2026-01-01"


def q(**kw):
    base = {"project": "demo", "kind": "funnel", "from": "2025-11-01", "to": "2026-12-31",
            "steps": [{"event": "a"}, {"event": "b"}]}
    base.update(kw)
    return base


def test_funnel_and_retention_errors_name_the_field():
    with Server(config_extra={"retention_days": 3650}) as s:  # DAY is older than 90 days
        for body, field in [
            (q(steps=[{"event": "a"}]), "steps"),
            (q(steps=[{"event": "a"}] * 21), "steps"),
            (q(steps="a"), "steps"),
            (q(steps=[{"event": "a"}, {"event": 3}]), "steps[1].event"),
            (q(steps=[{"event": "a"}, {"event": "b", "where": [{"prop": "x", "op": "="}]}]),
             "steps[1].where[0]"),
            (q(window_s=0), "window_s"),
            (q(window_s=1.5), "window_s"),
            (q(order="sideways"), "order"),
            (q(order="any", exclusions=[{"event": "x"}]), "exclusions"),
            (q(exclusions=[{"event": "x", "from_step": 2, "to_step": 2}]), "exclusions[0]"),
            (dict(q(), kind="retention", period="year"), "period"),
            (dict(q(), kind="retention", periods=0), "periods"),
            (dict(q(), kind="retention", mode="sometimes"), "mode"),
            (dict(q(), kind="retention", start_event=5), "start_event"),
        ]:
            r = s.query(body)
            check_eq(r.status, 400, "%r: status" % body)
            msg = r.json()["error"]
            check(msg.startswith(field), "%r: error %r should name %s" % (body, msg, field))


def test_funnel_and_retention_without_data():
    with Server(config_extra={"retention_days": 3650}) as s:  # DAY is older than 90 days
        j = s.query_ok(q())
        check_eq([x["persons"] for x in j["steps"]], [0, 0], "empty funnel")
        check(j["steps"][1]["median_s_from_previous"] is None, "no times")
        j = s.query_ok(dict(q(), kind="retention", period="week", periods=3,
                            **{"from": "2026-01-05", "to": "2026-01-18"}))
        check_eq([(c["cohort"], c["retained"]) for c in j["cohorts"]],
                 [("2026-01-05", [0, 0, 0]), ("2026-01-12", [0, 0, 0])], "empty cohorts")


def test_breakdown_keeps_100_values_and_other():
    with Server(config_extra={"retention_days": 3650}) as s:  # DAY is older than 90 days
        T = int(time.time() * 1000) - 86400_000
        evs = []
        for p in range(130):
            # value v130..v001: persons with a lower number have more persons per value
            v = "v%03d" % (p if p < 100 else 100 + p % 10)
            evs.append({"event": "a", "anonymous_id": "p%d" % p, "timestamp": T + p,
                        "properties": {"v": v}})
            if p % 2:
                evs.append({"event": "b", "anonymous_id": "p%d" % p, "timestamp": T + 1000 + p})
        s.collect_ok(evs)
        j = s.query_ok(q(breakdown="properties.v"))
        vals = [b["value"] for b in j["breakdowns"]]
        check_eq(len(vals), 101, "100 values and $other")
        check_eq(vals[-1], "$other", "$other last")
        # v100..v109 have 3 persons each: kept; v000..v099 have 1: the top 100 by persons keep
        # the ten with 3, then 90 of the ones with 1 in value order (v000..v089)
        check_eq(vals[:3], ["v000", "v001", "v002"], "value order")
        check("v109" in vals and "v089" in vals and "v090" not in vals, "ranking: %r" % vals[85:100])
        other = j["breakdowns"][-1]["steps"]
        check_eq(other[0]["persons"], 10, "$other: v090..v099")
        check_eq(sum(b["steps"][0]["persons"] for b in j["breakdowns"]), 130, "everyone once")
        check_eq(sum(b["steps"][1]["persons"] for b in j["breakdowns"]), 65, "step 2 everyone once")
        r = s.query_ok({"project": "demo", "kind": "retention", "from": "2025-11-01",
                        "to": "2026-12-31", "period": "month", "periods": 2,
                        "breakdown": "properties.v"})
        check_eq(len(r["breakdowns"]), 101, "retention: 100 values and $other")
        check_eq(sum(c["persons"] for b in r["breakdowns"] for c in b["cohorts"]), 130,
                 "retention: everyone once")
