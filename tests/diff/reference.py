"""The reference for the differential test: the expected answer of a trends query, computed
from the test's own list of stored events with SQLite (python3's sqlite3) and local dates from
Python's zoneinfo — never from tally's code.

Persons are the connected components of (anonymous_id, user_id) pairs over all stored events
(union-find here; anonymous ids and user ids are separate namespaces, docs/semantics.md).

The rules mirrored where API.md is silent are tally's documented ones (the opening comment of
src/query.c, docs/semantics.md):
  - `=`/`in`: a string value matches string rows with that exact text, and numeric rows equal
    to it when the string is a JSON number; a number value matches numeric rows equal to it,
    and string rows whose whole text is a JSON number equal to it; booleans are the strings
    "true"/"false". Built-in fields are strings.
  - `contains`: string rows containing the text (case-sensitive); numeric rows never match.
  - `>`, `>=`, `<`, `<=`: numeric rows, and string rows whose text is a JSON number.
  - `is_set`: the row has the property (any type).
  - `!=`, `not_in`, `is_not_set`: the positive test inverted, so rows without the property
    match (PostHog's rule).
  - sum:/avg: over numeric rows and string rows whose text is a JSON number; the average of
    no rows is 0.
  - wau/mau: distinct persons in the 7/30 local days ending on the bucket's last day (or on
    `to` when the bucket runs past it), reaching back before `from`.
  - breakdown values: null (absent) first, then numbers ascending, then strings in byte order;
    every value with a matching row in the scanned time (for wau/mau: from the start of the
    earliest window to `to`) appears in every bucket; past 100
    values, the top 100 by matching rows (ties by that order) are kept and the rest counted
    together as "$other" (distinct persons among them for persons/wau/mau).
  - `from`/`to` given as instants (ISO-8601 or ms): rows in [from, to], buckets the calendar
    periods that meet that range.
"""

import datetime
import math
import re
import sqlite3
from zoneinfo import ZoneInfo

BUILTIN = ["event", "platform", "app_version", "country", "url", "referrer", "session_id"]
JSON_NUM = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")


def str_num(s):
    """The number of a string whose whole text is a JSON number (finite), else None."""
    if s is None or len(s) >= 64 or not JSON_NUM.match(s):
        return None
    v = float(s)
    if not math.isfinite(v):
        return None
    return v


def flatten(props, prefix=""):
    out = {}
    for k, v in props.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif v is None:
            continue
        elif isinstance(v, bool):
            out[key] = "true" if v else "false"
        elif isinstance(v, (int, float)):
            out[key] = float(v)
        else:
            out[key] = v
    return out


def colname(key):
    return "p_" + re.sub(r"[^a-zA-Z0-9]", "_", key)


class UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def local_date(ms, zone):
    return datetime.datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).date()


class Reference:
    def __init__(self, events, zones):
        """events: the stored events (gen.Ev), each counted once. zones: zone names."""
        self.zones = list(zones)
        uf = UnionFind()
        for e in events:
            a = ("a", e.anon) if e.anon is not None else None
            u = ("u", e.user) if e.user is not None else None
            if a and u:
                uf.union(u, a)
            else:
                uf.find(a or u)
        person_ids = {}
        self.person_of = []  # person number of each event
        self.uf = uf
        keys = set()
        flat = []
        for e in events:
            f = flatten(e.props)
            flat.append(f)
            keys.update(f)
        self.prop_keys = sorted(keys)
        self.db = sqlite3.connect(":memory:")
        register_functions(self.db, self)
        self._slot = {}
        cols = ["id INTEGER PRIMARY KEY", "ts INTEGER", "person INTEGER"]
        cols += ["%s TEXT" % b for b in BUILTIN]
        for k in self.prop_keys:
            cols += ["%s_n REAL" % colname(k), "%s_s TEXT" % colname(k), "%s_sn REAL" % colname(k)]
        for i, _ in enumerate(self.zones):
            cols += ["d%d TEXT" % i, "h%d TEXT" % i]
        self.db.execute("CREATE TABLE ev (%s)" % ", ".join(cols))
        rows = []
        for i, (e, f) in enumerate(zip(events, flat)):
            root = uf.find(("u", e.user) if e.user is not None else ("a", e.anon))
            pid = person_ids.setdefault(root, len(person_ids))
            self.person_of.append(pid)
            r = [i, e.ts, pid, e.name]
            r += [e.fields.get(b) for b in BUILTIN[1:-1]]
            r.append(e.session)
            for k in self.prop_keys:
                v = f.get(k)
                if isinstance(v, float):
                    r += [v, None, v]
                elif isinstance(v, str):
                    r += [None, v, str_num(v)]
                else:
                    r += [None, None, None]
            for z in self.zones:
                dt = datetime.datetime.fromtimestamp(e.ts / 1000, ZoneInfo(z))
                r.append(dt.date().isoformat())
                r.append(dt.strftime("%Y-%m-%dT%H:00"))  # the local wall hour
            rows.append(r)
        self.db.executemany("INSERT INTO ev VALUES (%s)" % ",".join("?" * len(rows[0])), rows)
        for i, _ in enumerate(self.zones):
            self.db.execute("CREATE INDEX ev_d%d ON ev(d%d)" % (i, i))
        self.n_events = len(events)
        self.n_persons = len(person_ids)

    # ---- properties and filters

    def prop_cols(self, prop):
        """(number column, string column, string-as-number column) of a prop; None when the
        property exists in no row (all its tests see 'absent')."""
        if prop in BUILTIN:
            return (None, prop, None)
        if prop.startswith("properties."):
            k = prop[len("properties."):]
            if k not in self.prop_keys:
                return None
            c = colname(k)
            return (c + "_n", c + "_s", c + "_sn")
        raise ValueError("prop %r" % prop)

    def positive_sql(self, prop, op, value, args):
        cols = self.prop_cols(prop)
        if cols is None:
            return "0"
        n, s, sn = cols
        if op in ("=", "!=", "in", "not_in"):
            vals = value if isinstance(value, list) else [value]
            terms = []
            for v in vals:
                if isinstance(v, bool):
                    terms.append("%s = ?" % s)
                    args.append("true" if v else "false")
                elif isinstance(v, (int, float)):
                    if n:
                        terms.append("%s = ?" % n)
                        args.append(float(v))
                        terms.append("%s = ?" % sn)
                        args.append(float(v))
                    else:  # a built-in field: its strings that are JSON numbers
                        terms.append("json_num(%s) = ?" % s)
                        args.append(float(v))
                else:
                    terms.append("%s = ?" % s)
                    args.append(v)
                    x = str_num(v)
                    if n and x is not None:
                        terms.append("%s = ?" % n)
                        args.append(x)
            return "(" + " OR ".join(terms or ["0"]) + ")"
        if op == "contains":
            vals = value if isinstance(value, list) else [value]
            terms = []
            for v in vals:
                terms.append("instr(%s, ?) > 0" % s)
                args.append(v)
            return "(" + " OR ".join(terms or ["0"]) + ")"
        if op in (">", ">=", "<", "<="):
            x = float(value) if not isinstance(value, str) else str_num(value)
            if n:
                args += [x, x]
                return "(%s %s ? OR %s %s ?)" % (n, op, sn, op)
            args.append(x)
            return "(json_num(%s) %s ?)" % (s, op)
        if op in ("is_set", "is_not_set"):
            if n:
                return "(%s IS NOT NULL OR %s IS NOT NULL)" % (n, s)
            return "(%s IS NOT NULL)" % s
        raise ValueError(op)

    def where_sql(self, where, event, args):
        terms = []
        if event is not None:
            terms.append("event = ?")
            args.append(event)
        for w in where or []:
            op = w["op"]
            pos = self.positive_sql(w["prop"], op, w.get("value"), args)
            if op in ("!=", "not_in", "is_not_set"):
                terms.append("NOT COALESCE(%s, 0)" % pos)
            else:
                terms.append("COALESCE(%s, 0)" % pos)
        return " AND ".join(terms) if terms else "1"

    # ---- the answer

    MAX_BREAKDOWN = 100

    def trends(self, q, zone, labels):
        """The expected answer of trends query q in zone: ({(bucket_label, breakdown_value):
        value}, [bucket labels in order], set of breakdown values shown). `labels` is the
        bucket scheme (test_diff.Labels)."""
        zi = self.zones.index(zone)
        interval = q["interval"]
        metric = q["metric"]
        instant = not (isinstance(q["from"], str) and len(q["from"]) == 10)
        if instant:
            from_ms, to_ms = to_ms_of(q["from"]), to_ms_of(q["to"])
            d_from, d_to = local_date(from_ms, zone), local_date(to_ms, zone)
            buckets = labels.buckets_between(interval, from_ms, to_ms, zone)
            rng_cond, rng_args = "ts BETWEEN ? AND ?", [from_ms, to_ms]
        else:
            d_from = datetime.date.fromisoformat(q["from"])
            d_to = datetime.date.fromisoformat(q["to"])
            buckets = labels.buckets(interval, d_from, d_to, zone)  # [(label, first, last day)]
            rng_cond, rng_args = "d%d BETWEEN ? AND ?" % zi, [q["from"], q["to"]]
        bd = q.get("breakdown")
        args = []
        where = self.where_sql(q.get("where"), q.get("event"), args)
        labels_in_order = [b[0] for b in buckets]
        window = {"wau": 7, "mau": 30}.get(metric)
        # breakdown slots: the values with a matching row in the scanned time, the top 100 by
        # rows (ties by value order) kept and the others under "$other"
        if bd is not None:
            cols = self.prop_cols(bd) or (None, "NULL", None)
            braw = "%s, %s" % (cols[0] or "NULL", cols[1])
            if window:
                # from the start of the earliest window to `to` (for month buckets that start
                # can be after `from`: days before it are in no window)
                start = min(hi - datetime.timedelta(days=window - 1) for _, _, hi in buckets)
                scan = ("d%d BETWEEN ? AND ?" % zi, [start.isoformat(), d_to.isoformat()])
            else:
                scan = (rng_cond, rng_args)
            counts = {}
            sql = "SELECT %s, COUNT(*) FROM ev WHERE %s AND %s GROUP BY 1, 2" % (braw, scan[0], where)
            for bn, bs, c in self.db.execute(sql, scan[1] + args):
                counts[bkey(bn, bs)] = counts.get(bkey(bn, bs), 0) + c
            ranked = sorted(counts, key=lambda v: (-counts[v], slot_order(v)))
            kept = set(ranked[:self.MAX_BREAKDOWN])
            self._slot = {enc(v): (enc(v) if v in kept else "$other") for v in counts}
            values = {v if v in kept else "$other" for v in counts}
            bsel = "slot(%s)" % braw
        else:
            bsel = "NULL"
            values = set()
        out = {}

        def put(label, slotv, v):
            key = (label, dec(slotv) if bd else None)
            out[key] = v

        if window:
            for label, lo, hi in buckets:
                last = hi  # the bucket's last day, or the range's last day when cut by it
                first = last - datetime.timedelta(days=window - 1)  # reaches back before `from`
                sql = ("SELECT %s, COUNT(DISTINCT person) FROM ev WHERE d%d BETWEEN ? AND ? AND %s "
                       "GROUP BY 1" % (bsel, zi, where))
                for sl, v in self.db.execute(sql, [first.isoformat(), last.isoformat()] + args):
                    put(label, sl, v)
            return out, labels_in_order, values
        if metric == "events":
            agg = "COUNT(*)"
        elif metric == "persons":
            agg = "COUNT(DISTINCT person)"
        elif metric.startswith(("sum:", "avg:")):
            cols = self.prop_cols(metric[4:])
            if cols is None:
                val = "NULL"
            elif cols[0]:
                val = "COALESCE(%s, %s)" % (cols[0], cols[2])
            else:
                val = "json_num(%s)" % cols[1]
            agg = ("TOTAL(%s)" if metric.startswith("sum:") else "COALESCE(AVG(%s), 0.0)") % val
        else:
            raise ValueError(metric)
        bucket_expr = {
            "hour": "h%d" % zi,
            "day": "d%d" % zi,
            "week": "date(d%d, '-6 days', 'weekday 1')" % zi,
            "month": "strftime('%%Y-%%m-01', d%d)" % zi,
        }[interval]
        sql = "SELECT %s, %s, %s FROM ev WHERE %s AND %s GROUP BY 1, 2" % (
            bucket_expr, bsel, agg, rng_cond, where)
        known = set(labels_in_order)
        for label, sl, v in self.db.execute(sql, rng_args + args):
            if label not in known:
                raise AssertionError("reference: row in bucket %r outside %r" % (label, labels_in_order))
            put(label, sl, v)
        return out, labels_in_order, values

    def _slot_fn(self, n, s):
        return self._slot[enc(bkey(n, s))]


def to_ms_of(v):
    if isinstance(v, (int, float)):
        return int(v)
    d = datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))
    return int(round(d.timestamp() * 1000))


def slot_order(v):
    """Breakdown value order (src/query.c): null, numbers ascending, strings by bytes, $other."""
    if v is None:
        return (0, 0, b"")
    if isinstance(v, float):
        return (1, v, b"")
    if v == "$other":
        return (3, 0, b"")
    return (2, 0, v.encode("utf-8"))


def enc(v):
    """A breakdown value as one SQLite text value (for GROUP BY through slot())."""
    if v is None:
        return "z"
    if isinstance(v, float):
        return "n" + repr(v)
    return "s" + v


def dec(t):
    if t == "$other":
        return "$other"
    if t == "z":
        return None
    if t[0] == "n":
        return float(t[1:])
    return t[1:]


def bkey(n, s):
    """A breakdown value as compared: None (absent), a float, or a string."""
    if n is not None:
        return float(n)
    return s


def register_functions(db, ref):
    db.create_function("json_num", 1, str_num, deterministic=True)
    db.create_function("slot", 2, ref._slot_fn)
