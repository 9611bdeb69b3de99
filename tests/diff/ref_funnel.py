"""Reference answers for funnel and retention queries, from the test's own stored events: rows
and filters through SQLite (reference.Reference's table and where_sql), local dates through
Python's zoneinfo, and the funnel and retention rules of docs/semantics.md written out by
brute force, per person, without tally's algorithms:

  - a person's events are ordered by (time, lowest step they match, the steps they match,
    breakdown value in answer order);
  - ordered: for every possible first step, the greedy earliest chain (the next step is the
    first later event that matches it, within window_s of the first); with exclusions, every
    chain is searched exhaustively instead;
  - strict: the chain must take consecutive events;
  - any: for every event that matches a step, the steps matched from it through window_s;
  - the person counts at its deepest level; its times and breakdown value come from the chain
    that reaches that level first (the earliest completing event), and among those from the
    latest start (then the earliest start event).
"""

import datetime
import math
from zoneinfo import ZoneInfo

import reference


def _value(n, s):
    if n is not None:
        return float(n)
    return s


def _vorder(v):
    return reference.slot_order(v)


def _lowbit(m):
    if m == 0:
        return 99
    return (m & -m).bit_length() - 1


def _range_ms(q, zone):
    """[from, to) in ms for a query's from/to (dates in zone, or instants)."""
    z = ZoneInfo(zone)

    def day_start(d):
        return int(datetime.datetime(d.year, d.month, d.day, tzinfo=z).timestamp() * 1000)

    f, t = q["from"], q["to"]
    if isinstance(f, str) and len(f) == 10:
        lo = day_start(datetime.date.fromisoformat(f))
    else:
        lo = reference.to_ms_of(f)
    if isinstance(t, str) and len(t) == 10:
        hi = day_start(datetime.date.fromisoformat(t) + datetime.timedelta(days=1))
    else:
        hi = reference.to_ms_of(t) + 1
    return lo, hi


def _rows(ref, conds, bd, lo, hi, where, keep_all):
    """{person: [(ts, mask, value)]} for rows in [lo, hi) passing `where`, each with the mask of
    the conditions (a list of (event, where)) it matches."""
    args = []
    terms = []
    for ev, w in conds:
        a = []
        terms.append("CASE WHEN %s THEN 1 ELSE 0 END" % ref.where_sql(w, ev, a))
        args += a
    if bd is not None:
        cols = ref.prop_cols(bd) or (None, "NULL", None)
        bsel = "%s, %s" % (cols[0] or "NULL", cols[1])
    else:
        bsel = "NULL, NULL"
    wargs = []
    wsql = ref.where_sql(where, None, wargs)
    sql = "SELECT person, ts, %s, %s FROM ev WHERE ts >= ? AND ts < ? AND %s" % (
        bsel, ", ".join(terms) if terms else "0", wsql)
    out = {}
    for row in ref.db.execute(sql, args + [lo, hi] + wargs):
        person, ts, bn, bs = row[:4]
        mask = 0
        for i, m in enumerate(row[4:4 + len(conds)]):
            if m:
                mask |= 1 << i
        if mask == 0 and not keep_all:
            continue
        out.setdefault(person, []).append((ts, mask, _value(bn, bs)))
    for p in out:
        out[p].sort(key=lambda r: (r[0], _lowbit(r[1]), r[1], _vorder(r[2])))
    return out


def _nearest_rank(xs, p):
    xs = sorted(xs)
    r = max(1, math.ceil(p * len(xs)))
    return xs[r - 1] / 1000.0


def funnel(ref, q, zone):
    """The expected answer (the same JSON shape as tally's, without took_ms)."""
    steps = q["steps"]
    S = len(steps)
    window = q.get("window_s", 14 * 86400) * 1000
    order = q.get("order", "ordered")
    excl = q.get("exclusions", [])
    conds = [(s.get("event"), s.get("where")) for s in steps]
    conds += [(x.get("event"), x.get("where")) for x in excl]
    exr = [(x.get("from_step", 1) - 1, x.get("to_step", S) - 1) for x in excl]
    lo, hi = _range_ms(q, zone)
    bd = q.get("breakdown")
    rows = _rows(ref, conds, bd, lo, hi, q.get("where"), order == "strict")
    allm = (1 << S) - 1
    results = []  # (level, times, value)
    for person, ev in rows.items():
        n = len(ev)
        best = None  # (level, -completion, start_ts, -start_pos, times, value)
        for i in range(n):
            if order == "any":
                if not ev[i][1] & allm:
                    continue
                seen, got, when = 0, -1, []
                for e in range(i, n):
                    if ev[e][0] > ev[i][0] + window:
                        break
                    add = ev[e][1] & allm & ~seen
                    if not add:
                        continue
                    seen |= add
                    c = bin(seen).count("1") - 1
                    while got < c:
                        when.append(ev[e][0])
                        got += 1
                cand = (got, 0, 0, 0, when, ev[i][2])
                if best is None or got > best[0]:
                    best = cand
                continue
            if not ev[i][1] & 1:
                continue
            t0 = ev[i][0]
            if order == "strict":
                chain = [i]
                while len(chain) < S:
                    p = chain[-1] + 1
                    if (p < n and ev[p][1] >> len(chain) & 1 and ev[p][0] - t0 <= window
                            and not _broken(ev, S, exr, chain, p)):
                        chain.append(p)
                    else:
                        break
                chains = [chain]
            elif not excl:
                chain = [i]
                p = i + 1
                while len(chain) < S and p < n:
                    if ev[p][0] - t0 > window:
                        break
                    if ev[p][1] >> len(chain) & 1:
                        chain.append(p)
                    p += 1
                chains = [chain]
            else:
                chains = _all_chains(ev, i, S, window, exr)
            for chain in chains:
                lvl = len(chain) - 1
                cand = (lvl, -chain[-1], t0, -i, [ev[x][0] for x in chain], ev[i][2])
                if best is None or cand[:4] > best[:4]:
                    best = cand
        if best is not None and best[0] >= 0:
            results.append((best[0], best[4], best[5]))

    def steps_of(res):
        persons = [0] * S
        times = [[] for _ in range(S)]
        for lvl, t, _ in res:
            for k in range(lvl + 1):
                persons[k] += 1
                if k:
                    times[k].append(t[k] - t[k - 1])
        out = []
        for k in range(S):
            out.append({
                "step": k + 1, "event": steps[k].get("event"), "persons": persons[k],
                "conversion_from_first": persons[k] / persons[0] if persons[0] else 0,
                "conversion_from_previous": (persons[k] / persons[k - 1] if k and persons[k - 1]
                                             else (1 if not k and persons[0] else 0)),
                "median_s_from_previous": _nearest_rank(times[k], 0.5) if k and times[k] else None,
                "p90_s_from_previous": _nearest_rank(times[k], 0.9) if k and times[k] else None,
            })
        return out

    ans = {"steps": steps_of(results)}
    if bd is not None:
        groups = {}
        for r in results:
            groups.setdefault(r[2], []).append(r)
        ranked = sorted(groups, key=lambda v: (-len(groups[v]), _vorder(v)))
        kept = ranked[:100]
        vals = sorted(kept, key=_vorder)
        out = [{"value": v, "steps": steps_of(groups[v])} for v in vals]
        if len(ranked) > 100:
            other = [r for v in ranked[100:] for r in groups[v]]
            out.append({"value": "$other", "steps": steps_of(other)})
        ans["breakdowns"] = out
    return ans


def _broken(ev, S, exr, chain, p):
    """Would taking event p as the next step break the chain (an exclusion x between the
    chain's from step and p: pos(from) < pos(x) <= p)?"""
    k = len(chain)  # the step p would be
    for x, (a, b) in enumerate(exr):
        if not (a < k <= b):
            continue
        for y in range(chain[a] + 1, p + 1):
            if ev[y][1] >> (S + x) & 1:
                return True
    return False


def _all_chains(ev, i, S, window, exr):
    """Every maximal unbroken chain from start i (exclusions: pos(from) < pos(x) <= pos(to))."""
    n = len(ev)
    t0 = ev[i][0]
    out = []

    def dfs(chain):
        k = len(chain)
        extended = False
        if k < S:
            for p in range(chain[-1] + 1, n):
                if ev[p][0] - t0 > window:
                    break
                if ev[p][1] >> k & 1 and not _broken(ev, S, exr, chain, p):
                    extended = True
                    dfs(chain + [p])
        if not extended:
            out.append(chain)

    dfs([i])
    return out


# ---------------------------------------------------------------- retention

def _period(period, d):
    if period == "day":
        return d.toordinal()
    if period == "week":
        return (d.toordinal() - 1) // 7  # ordinal 1 is a Monday
    return d.year * 12 + d.month - 1


def _period_first(period, p):
    if period == "day":
        return datetime.date.fromordinal(p)
    if period == "week":
        return datetime.date.fromordinal(p * 7 + 1)
    return datetime.date(p // 12, p % 12 + 1, 1)


def retention(ref, q, zone):
    period = q.get("period", "week")
    N = q.get("periods", 8)
    unbounded = q.get("mode") == "unbounded"
    z = ZoneInfo(zone)
    conds = [(q.get("start_event"), q.get("where")), (q.get("return_event"), q.get("return_where"))]
    d_from = datetime.date.fromisoformat(q["from"])
    d_to = datetime.date.fromisoformat(q["to"])
    pf, pt = _period(period, d_from), _period(period, d_to)
    if _period_first(period, pf) < d_from:
        pf += 1
    nc = max(0, pt - pf + 1)
    bd = q.get("breakdown")
    rows = _rows(ref, conds, bd, -(1 << 62), 1 << 62, None, False)

    def local(ts):
        return datetime.datetime.fromtimestamp(ts / 1000, z).date()

    tot = [[0] * N for _ in range(nc)]
    groups = {}
    for person, ev in rows.items():
        first = next((r for r in ev if r[1] & 1), None)
        if first is None:
            continue
        pc = _period(period, local(first[0]))
        if not (pf <= pc < pf + nc):
            continue
        hit = [0] * N
        hit[0] = 1
        for ts, m, _ in ev:
            if m & 2 and ts >= first[0]:
                k = _period(period, local(ts)) - pc
                if 1 <= k < N:
                    hit[k] = 1
        if unbounded:
            for k in range(N - 2, 0, -1):
                hit[k] |= hit[k + 1]
        for k in range(N):
            tot[pc - pf][k] += hit[k]
        if bd is not None:
            g = groups.setdefault(first[2], [[0] * N for _ in range(nc)])
            for k in range(N):
                g[pc - pf][k] += hit[k]

    def cohorts(t):
        return [{"cohort": _period_first(period, pf + i).isoformat(), "persons": t[i][0],
                 "retained": t[i]} for i in range(nc)]

    ans = {"cohorts": cohorts(tot)}
    if bd is not None:
        total = {v: sum(r[0] for r in g) for v, g in groups.items()}
        ranked = sorted(groups, key=lambda v: (-total[v], _vorder(v)))
        kept = sorted(ranked[:100], key=_vorder)
        out = [{"value": v, "cohorts": cohorts(groups[v])} for v in kept]
        if len(ranked) > 100:
            o = [[0] * N for _ in range(nc)]
            for v in ranked[100:]:
                for i in range(nc):
                    for k in range(N):
                        o[i][k] += groups[v][i][k]
            out.append({"value": "$other", "cohorts": cohorts(o)})
        ans["breakdowns"] = out
    return ans
