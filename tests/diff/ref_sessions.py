"""Reference answers for the sessions and paths kinds and the trends metrics stickiness and
lifecycle, from the test's own stored events: rows and filters through SQLite (the table and
where_sql of reference.Reference), local dates and hours through Python's zoneinfo, and the
rules of docs/semantics.md ("Sessions", "Paths", "Stickiness and lifecycle") written out per
person by brute force, without tally's algorithms:

  - sessions: the person's events inside [from, to] in the order (time, matching `where` first,
    url in answer order, breakdown value in answer order); a new session when the gap to the
    previous event is over the timeout or the event is 24 h or more after the session's first;
    a session counts when one of its events matches; it belongs to the bucket of its first
    event and to the breakdown value of that event;
  - paths: the person's matching events in the range in the order (time, step name in bytes),
    consecutive repeats collapsed, cut around the first occurrence of the start (end) step;
  - stickiness: distinct buckets per person;
  - lifecycle: a person's statuses from its first matching event ever and its active buckets,
    the previous bucket of the first one being the whole calendar period before it.
Answers are in tally's JSON shape (without took_ms).
"""

import datetime
from zoneinfo import ZoneInfo

import reference

DAY = 86400000


def range_ms(q, zone):
    """[from, to) in ms of a query's from/to (dates in zone, or instants)."""
    z = ZoneInfo(zone)

    def day_start(d):
        return int(datetime.datetime(d.year, d.month, d.day, tzinfo=z).timestamp() * 1000)

    f, t = q["from"], q["to"]
    lo = day_start(datetime.date.fromisoformat(f)) if len(str(f)) == 10 else reference.to_ms_of(f)
    if len(str(t)) == 10:
        hi = day_start(datetime.date.fromisoformat(t) + datetime.timedelta(days=1))
    else:
        hi = reference.to_ms_of(t) + 1
    return lo, hi


def label_of(ms, interval, zone):
    """The bucket label of an instant: its local hour, day, ISO week's Monday or month."""
    dt = datetime.datetime.fromtimestamp(ms / 1000, ZoneInfo(zone))
    d = dt.date()
    if interval == "hour":
        return dt.strftime("%Y-%m-%dT%H:00")
    if interval == "day":
        return d.isoformat()
    if interval == "week":
        return (d - datetime.timedelta(days=d.weekday())).isoformat()
    return d.replace(day=1).isoformat()


def _value(n, s):
    return float(n) if n is not None else s


def _url_key(u):
    return reference.slot_order(u)


def _bd_sql(ref, bd):
    if bd is None:
        return "NULL, NULL"
    cols = ref.prop_cols(bd) or (None, "NULL", None)
    return "%s, %s" % (cols[0] or "NULL", cols[1])


def _json_value(v):
    return v


# ---------------------------------------------------------------- sessions

def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return 0.0
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _top_pages(counts):
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].encode("utf-8")))
    return [{"url": u, "sessions": n} for u, n in items[:100]]


def sessions(ref, q, zone, buckets):
    """buckets: the bucket labels of the query, in order."""
    lo, hi = range_ms(q, zone)
    interval = q.get("interval", "day")
    timeout = q.get("session_timeout_s", 1800) * 1000
    bd = q.get("breakdown")
    wargs = []
    wsql = ref.where_sql(q.get("where"), q.get("event"), wargs)
    sql = ("SELECT person, ts, url, %s, CASE WHEN %s THEN 1 ELSE 0 END FROM ev "
           "WHERE ts >= ? AND ts < ?" % (_bd_sql(ref, bd), wsql))
    per = {}
    for person, ts, url, bn, bs, m in ref.db.execute(sql, wargs + [lo, hi]):
        per.setdefault(person, []).append((ts, 0 if m else 1, url, _value(bn, bs)))
    sess = []  # (label, bd value, events, duration ms, entry, exit)
    for evs in per.values():
        evs.sort(key=lambda r: (r[0], r[1], _url_key(r[2]), reference.slot_order(r[3])))
        cur = [evs[0]]
        groups = []
        for e in evs[1:]:
            if e[0] - cur[-1][0] > timeout or e[0] - cur[0][0] >= DAY:
                groups.append(cur)
                cur = [e]
            else:
                cur.append(e)
        groups.append(cur)
        for g in groups:
            if not any(e[1] == 0 for e in g):
                continue
            urls = [e[2] for e in g if e[2] is not None]
            sess.append((label_of(g[0][0], interval, zone), g[0][3], len(g), g[-1][0] - g[0][0],
                         urls[0] if urls else None, urls[-1] if urls else None))
    # breakdown slots
    if bd is not None:
        cnt = {}
        for s in sess:
            cnt[s[1]] = cnt.get(s[1], 0) + 1
        ranked = sorted(cnt, key=lambda v: (-cnt[v], reference.slot_order(v)))
        kept = set(ranked[:100])
        slots = sorted(kept, key=reference.slot_order) + (["$other"] if len(ranked) > 100 else [])
        slot_of = {v: (v if v in kept else "$other") for v in cnt}
    else:
        slots = [None]
        slot_of = {None: None}
    cells = {}
    for s in sess:
        cells.setdefault((s[0], slot_of[s[1]] if bd is not None else None), []).append(s)
    rows = []
    if bd is None or sess:
        for b in buckets:
            for sl in slots:
                ss = cells.get((b, sl), [])
                n = len(ss)
                row = [b] + ([sl] if bd is not None else [])
                if n:
                    row += [n, sum(s[3] for s in ss) / n / 1000.0, _median([s[3] for s in ss]) / 1000.0,
                            sum(1 for s in ss if s[2] == 1) / n, sum(s[2] for s in ss) / n]
                else:
                    row += [0, 0, 0, 0, 0]
                rows.append(row)
    entry, exit_ = {}, {}
    for s in sess:
        if s[4] is not None:
            entry[s[4]] = entry.get(s[4], 0) + 1
            exit_[s[5]] = exit_.get(s[5], 0) + 1
    cols = ["bucket"] + ([bd] if bd is not None else []) + [
        "sessions", "avg_duration_s", "median_duration_s", "bounce_rate", "events_per_session"]
    return {"columns": cols, "rows": rows, "entry_pages": _top_pages(entry),
            "exit_pages": _top_pages(exit_), "session_timeout_s": timeout // 1000}


# ---------------------------------------------------------------- paths

def _name_key(v):
    return (0, b"") if v is None else (1, v.encode("utf-8"))


def paths(ref, q, zone):
    lo, hi = range_ms(q, zone)
    by = q.get("by", "event")
    depth = q.get("depth", 5)
    start, end = q.get("start_event"), q.get("end_event")
    previous = end is not None or q.get("direction") == "previous"
    anchor = end if previous else start
    col = "url" if by == "url" else "event"
    wargs = []
    wsql = ref.where_sql(q.get("where"), q.get("event"), wargs)
    sql = "SELECT person, ts, %s FROM ev WHERE ts >= ? AND ts < ? AND %s" % (col, wsql)
    per = {}
    for person, ts, name in ref.db.execute(sql, [lo, hi] + wargs):
        per.setdefault(person, []).append((ts, name))
    found = []
    for evs in per.values():
        evs.sort(key=lambda r: (r[0], _name_key(r[1])))
        steps = []
        for _, name in evs:
            if name is None or (steps and steps[-1] == name):
                continue
            steps.append(name)
        if not steps:
            continue
        if anchor is not None:
            if anchor not in steps:
                continue
            at = steps.index(anchor)
        else:
            at = len(steps) - 1 if previous else 0
        if previous:
            found.append(tuple(steps[max(0, at - depth):at + 1]))
        else:
            found.append(tuple(steps[at:at + depth + 1]))
    pc = {}
    for p in found:
        pc[p] = pc.get(p, 0) + 1
    ranked = sorted(pc.items(), key=lambda kv: (-kv[1], [x.encode("utf-8") for x in kv[0]]))
    ec = {}
    for p in found:
        for d in range(1, len(p)):
            a = len(p) - 1 - d if previous else d - 1
            k = (d, p[a], p[a + 1])
            ec[k] = ec.get(k, 0) + 1
    edges = []
    for d in sorted({k[0] for k in ec}):
        items = sorted(((k, n) for k, n in ec.items() if k[0] == d),
                       key=lambda kn: (-kn[1], kn[0][1].encode("utf-8"), kn[0][2].encode("utf-8")))
        for k, n in items[:100]:
            edges.append({"depth": d, "from": k[1], "to": k[2], "persons": n})
        rest = sum(n for _, n in items[100:])
        if rest:
            edges.append({"depth": d, "from": "$other", "to": "$other", "persons": rest})
    return {"direction": "previous" if previous else "next", "by": by, "depth": depth,
            "persons": len(found), "paths": [{"path": list(p), "persons": n} for p, n in ranked[:100]],
            "edges": edges}


# ---------------------------------------------------------------- stickiness and lifecycle

def stickiness(ref, q, zone, buckets):
    lo, hi = range_ms(q, zone)
    interval = q.get("interval", "day")
    wargs = []
    wsql = ref.where_sql(q.get("where"), q.get("event"), wargs)
    act = {}
    for person, ts in ref.db.execute("SELECT person, ts FROM ev WHERE ts >= ? AND ts < ? AND %s" % wsql,
                                     [lo, hi] + wargs):
        act.setdefault(person, set()).add(label_of(ts, interval, zone))
    hist = [0] * (len(buckets) + 1)
    for s in act.values():
        hist[len(s)] += 1
    name = {"hour": "hours", "day": "days", "week": "weeks", "month": "months"}[interval]
    return {"columns": [name, "persons"], "rows": [[k, hist[k]] for k in range(1, len(buckets) + 1)]}


def _prev_period(first_label, interval, zone):
    """[P0, P1) in ms: the calendar period before the one labelled first_label."""
    z = ZoneInfo(zone)

    def start(d):
        return int(datetime.datetime(d.year, d.month, d.day, tzinfo=z).timestamp() * 1000)

    if interval == "hour":
        d = datetime.date.fromisoformat(first_label[:10])
        h = int(first_label[11:13])
        p1 = int(datetime.datetime(d.year, d.month, d.day, h, tzinfo=z).timestamp() * 1000)
        return p1 - 3600000, p1
    d = datetime.date.fromisoformat(first_label)
    if interval == "day":
        p = d - datetime.timedelta(days=1)
    elif interval == "week":
        p = d - datetime.timedelta(days=7)
    else:
        p = (d - datetime.timedelta(days=1)).replace(day=1)
    return start(p), start(d)


def lifecycle(ref, q, zone, buckets):
    lo, hi = range_ms(q, zone)
    interval = q.get("interval", "day")
    p0, p1 = _prev_period(buckets[0], interval, zone)
    wargs = []
    wsql = ref.where_sql(q.get("where"), q.get("event"), wargs)
    first = {}
    active = {}
    for person, ts in ref.db.execute("SELECT person, ts FROM ev WHERE ts < ? AND %s" % wsql, [hi] + wargs):
        first[person] = min(first.get(person, ts), ts)
        if lo <= ts:
            active.setdefault(person, set()).add(label_of(ts, interval, zone))
        elif p0 <= ts < p1:
            active.setdefault(person, set()).add("prev")
    idx = {b: i for i, b in enumerate(buckets)}
    rows = [[b, 0, 0, 0, 0] for b in buckets]
    for person, labels in active.items():
        f = first[person]
        for i, b in enumerate(buckets):
            prev = "prev" if i == 0 else buckets[i - 1]
            if b in labels:
                if f >= lo and label_of(f, interval, zone) == b:
                    rows[i][1] += 1
                elif prev in labels:
                    rows[i][2] += 1
                else:
                    rows[i][3] += 1
            elif prev in labels:
                rows[i][4] -= 1
        assert all(x == "prev" or x in idx for x in labels)
    return {"columns": ["bucket", "new", "returning", "resurrecting", "dormant"], "rows": rows}
