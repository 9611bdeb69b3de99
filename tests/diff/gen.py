"""Seeded random events for the differential test.

Persons have one to three devices (anonymous ids) and, most of them, one user_id. A device's
events are anonymous until it identifies (an event carrying both ids), and after that carry the
user_id (with or without the anonymous id). Each person has a single user_id, so no event ever
asks to merge two identified users (that rule has its own integration test).

The stream that is sent is not in time order: some events are sent days late, some are resent
with the same event_id (retries, with a fresh sent_at when they carry one), some are duplicated
inside one batch, and a few are invalid (rejected, never counted). Some events come from
devices whose clock is wrong: they carry `sent_at`, and their timestamp is in the device's
clock; the server corrects them to the true time (up to the request latency), so their true
times are kept minutes away from every bucket boundary of the zones under test.

Everything here is the test's own idea of the data; the reference (reference.py) computes the
expected answers from `Dataset.stored` without looking at tally.
"""

import datetime
import random
from zoneinfo import ZoneInfo

DAY = 86400000
HOUR = 3600000
MIN = 60000

EVENTS_WEB = ["pageview", "pageview", "pageview", "signup", "add_to_cart", "purchase", "search"]
EVENTS_APP = ["app_open", "screen_view", "screen_view", "add_to_cart", "purchase", "search"]
COUNTRIES = ["NP", "IN", "US", "DE", "BR", "JP"]
PLANS = ["free", "pro", "team", "enterprise"]
TITLES = ["Home", "Pricing", "Café menu", "café", "Blog: tally vs ClickHouse", "Docs / API",
          "Über uns", "ショップ", "Sale 50%", "home"]
PATHS = ["/", "/pricing", "/p/42", "/p/7", "/blog/why", "/docs/api", "/cart", "/p/café"]
REFERRERS = ["https://news.ycombinator.com/", "https://www.google.com/", "https://t.co/x"]


def local_midnights(zone, day_from, day_to):
    """UTC ms of every local midnight of zone from day_from to day_to (dates)."""
    z = ZoneInfo(zone)
    out = []
    d = day_from
    while d <= day_to:
        out.append(int(datetime.datetime(d.year, d.month, d.day, tzinfo=z).timestamp() * 1000))
        d += datetime.timedelta(days=1)
    return out


def ny_dst_range(today, days=40, min_age=12):
    """(first, last) dates of a `days`-day range that ends before today and contains the most
    recent America/New_York DST change at least `min_age` days ago."""
    z = ZoneInfo("America/New_York")
    d = today - datetime.timedelta(days=min_age)
    for _ in range(800):
        a = datetime.datetime(d.year, d.month, d.day, 12, tzinfo=z).utcoffset()
        b_ = d + datetime.timedelta(days=1)
        b = datetime.datetime(b_.year, b_.month, b_.day, 12, tzinfo=z).utcoffset()
        if a != b:
            break
        d -= datetime.timedelta(days=1)
    change = d + datetime.timedelta(days=1)  # the first day with the new offset at noon
    last = min(today - datetime.timedelta(days=1), change + datetime.timedelta(days=days * 2 // 3))
    first = last - datetime.timedelta(days=days - 1)
    return first, last, change


class Ev:
    """One event as the test means it: its true time, its fields, and how it is sent."""

    __slots__ = ("eid", "ts", "name", "anon", "user", "fields", "props", "skew", "ts_form",
                 "invalid", "session")

    def __init__(self):
        self.eid = None
        self.ts = 0
        self.name = ""
        self.anon = None
        self.user = None
        self.fields = {}
        self.props = {}
        self.skew = None  # client clock error in ms (sent with sent_at), or None
        self.ts_form = "ms"
        self.invalid = None  # why it must be rejected, or None
        self.session = None

    def wire(self, now_ms):
        """The JSON object sent for this event at client time now_ms (true clock)."""
        o = {"event": self.name} if self.invalid != "no_event" else {}
        if self.eid is not None:
            o["event_id"] = self.eid
        if self.anon is not None:
            o["anonymous_id"] = self.anon
        if self.user is not None:
            o["user_id"] = self.user
        if self.session is not None:
            o["session_id"] = self.session
        t = self.ts
        if self.skew is not None:
            t = self.ts + self.skew
            o["sent_at"] = fmt_time(now_ms + self.skew, "ms" if self.ts_form == "ms" else "iso")
        o["timestamp"] = fmt_time(t, self.ts_form)
        if self.invalid == "bad_timestamp":
            o["timestamp"] = "last tuesday"
        o.update(self.fields)
        if self.props:
            o["properties"] = self.props
        return o


def fmt_time(ms, form):
    if form == "ms":
        return ms
    if form == "iso":
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
    if form.startswith("iso"):  # iso+0545, iso-0400: the same instant written with an offset
        sign = 1 if form[3] == "+" else -1
        off = datetime.timedelta(minutes=sign * (int(form[4:6]) * 60 + int(form[6:8])))
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone(off)).isoformat(
            timespec="milliseconds")
    raise ValueError(form)


class Dataset:
    """stored: the events that must be counted (first occurrence of each event_id, valid);
    sends: the stream, as a list of batches, each a list of Ev (possibly repeated)."""

    def __init__(self, seed, first_day, last_day, now_ms, zones, quick=False):
        self.seed = seed
        self.rng = random.Random(seed)
        self.first_day, self.last_day = first_day, last_day
        self.now_ms = now_ms
        self.zones = zones
        self.quick = quick
        self.stored = []
        self.batches = []
        self._n = 0
        self._build()

    # -- helpers

    def _eid(self):
        self._n += 1
        return "s%d-e%06d-%04x" % (self.seed, self._n, self.rng.getrandbits(16))

    def _bounds(self):
        lo = int(datetime.datetime(self.first_day.year, self.first_day.month, self.first_day.day,
                                   tzinfo=datetime.timezone.utc).timestamp() * 1000) - 14 * HOUR
        hi_day = self.last_day + datetime.timedelta(days=1)
        hi = int(datetime.datetime(hi_day.year, hi_day.month, hi_day.day,
                                   tzinfo=datetime.timezone.utc).timestamp() * 1000) + 6 * HOUR
        return lo, min(hi, self.now_ms - HOUR)

    def _safe(self, ts):
        """Moves ts so that its UTC minute is 4..11 past a quarter hour: every local hour and
        day boundary of the zones under test (offsets in whole quarter hours) is then at least
        4 minutes away, so the server's skew correction (± request latency) keeps the bucket."""
        q = ts - ts % (15 * MIN)
        return q + 4 * MIN + self.rng.randrange(7 * MIN)

    # -- the data

    def _build(self):
        r = self.rng
        lo, hi = self._bounds()
        span_days = (hi - lo) // DAY
        n_persons = 150 if self.quick else 600
        midnights = []
        for z in self.zones:
            midnights += local_midnights(z, self.first_day - datetime.timedelta(days=1),
                                         self.last_day + datetime.timedelta(days=1))
        midnights = [m for m in midnights if lo <= m - 1 and m < hi]
        all_events = []
        for p in range(n_persons):
            home = r.choice(COUNTRIES)
            has_user = r.random() < 0.75
            user = None
            if has_user:
                user = r.choice(["u%d-%d" % (self.seed, p), "user+%d.%d@example.com" % (self.seed, p),
                                 "Ü-%d-%d" % (self.seed, p)])
            devices = []
            for k in range(r.choice([1, 1, 2, 2, 3])):
                plat = r.choice(["web", "web", "ios", "android"])
                devices.append({
                    "anon": "anon-%d-%d-%d-%08x" % (self.seed, p, k, r.getrandbits(32)),
                    "platform": plat,
                    "app_version": None if plat == "web" else r.choice(["1.0.0", "1.1.0", "2.0.1"]),
                    "identify_at": None,
                })
            start = lo + r.randrange(max(1, span_days)) * DAY
            life = r.choice([1, 2, 5, 12, 30, 45]) * DAY
            end = min(hi, start + life)
            p_active = r.choice([0.2, 0.5, 0.9])
            if has_user:
                for d in devices:
                    if r.random() < 0.8:
                        d["identify_at"] = start + r.randrange(max(1, end - start))
            t_day = start - start % DAY
            person_events = []
            guard = 0
            while t_day < end and guard < 100:
                guard += 1
                if r.random() < p_active:
                    for _ in range(r.randint(1, 6)):
                        ts = t_day + r.randrange(DAY)
                        if not (lo <= ts < hi):
                            continue
                        person_events.append((ts, r.choice(devices)))
                t_day += DAY
            # identify events: the first event of the device at or after identify_at
            person_events.sort(key=lambda x: x[0])
            identified = set()
            for ts, d in person_events:
                e = Ev()
                e.eid = self._eid()
                e.ts = ts
                plat = d["platform"]
                e.name = r.choice(EVENTS_WEB if plat == "web" else EVENTS_APP)
                ia = d["identify_at"]
                if ia is None or ts < ia:
                    e.anon = d["anon"]
                elif d["anon"] not in identified:
                    identified.add(d["anon"])
                    e.anon, e.user = d["anon"], user
                else:
                    x = r.random()
                    if x < 0.5:
                        e.anon, e.user = d["anon"], user
                    elif x < 0.9:
                        e.user = user
                    else:
                        e.anon = d["anon"]
                self._fields(e, d, home)
                all_events.append(e)
        # a few events exactly on (or 1 ms before) local midnights of the zones
        for m in r.sample(midnights, min(len(midnights), 25)):
            e = r.choice(all_events)
            e.ts = m - r.choice([0, 1])
        # device clocks that are wrong: sent with sent_at
        for e in all_events:
            x = r.random()
            if x < 0.15:
                e.skew = r.choice([-3 * DAY, -DAY - 7 * MIN, -5 * HOUR, -90 * 1000, 37 * 1000,
                                   2 * HOUR, 20 * HOUR])
                e.ts = self._safe(e.ts)
                if e.ts >= hi:
                    e.ts -= 15 * MIN
            e.ts_form = r.choice(["ms"] * 6 + ["iso", "iso", "iso+0545", "iso-0400", "iso+0530"])
            if r.random() < 0.1:
                e.session = "sess-%d" % r.randrange(1000)
        all_events.sort(key=lambda e: e.ts)
        self.stored = list(all_events)
        # invalid events, never counted
        for i in range(max(3, len(all_events) // 120)):
            e = Ev()
            e.eid = self._eid()
            e.ts = lo + r.randrange(hi - lo)
            e.name = "invalid"
            e.anon = "anon-invalid-%d" % i
            e.invalid = r.choice(["no_event", "no_ids", "future", "bad_timestamp", "long_name"])
            if e.invalid == "no_ids":
                e.anon = None
            elif e.invalid == "future":
                e.ts = self.now_ms + 3 * DAY + r.randrange(DAY)
            elif e.invalid == "long_name":
                e.name = "n" * 201
            all_events.append(e)
        all_events.sort(key=lambda e: e.ts)
        # the send order: time order, with late events moved later
        stream = []
        late = []
        for e in all_events:
            if r.random() < 0.12:
                late.append(e)
            else:
                stream.append(e)
        for e in late:
            pos = r.randrange(len(stream) // 2, len(stream) + 1) if stream else 0
            stream.insert(pos, e)
        # retries: resend ~8% later (and ~1% twice in a row)
        n = len(stream)
        for _ in range(n // 12):
            j = r.randrange(n)
            stream.insert(r.randrange(j + 1, len(stream) + 1), stream[j])
        for _ in range(n // 100):
            j = r.randrange(len(stream))
            stream.insert(j + 1, stream[j])
        # batches
        i = 0
        while i < len(stream):
            size = r.choice([1, 5, 20, 50, 100, 200, 300])
            self.batches.append(stream[i:i + size])
            i += size

    def _fields(self, e, d, home):
        r = self.rng
        f = {"platform": d["platform"]}
        if d["app_version"]:
            f["app_version"] = d["app_version"]
        x = r.random()
        if x < 0.9:
            f["country"] = home
        elif x < 0.95:
            f["country"] = r.choice(COUNTRIES)
        # else: absent (derived from 127.0.0.1: nothing)
        if d["platform"] == "web":
            f["url"] = "https://shop.example" + r.choice(PATHS)
            if r.random() < 0.3:
                f["referrer"] = r.choice(REFERRERS)
        e.fields = f
        p = {}
        if e.name in ("purchase", "add_to_cart"):
            price = round(r.uniform(0.5, 300), 2)
            qty = r.randint(1, 5)
            p["price"] = price
            p["qty"] = qty
            if e.name == "purchase":
                p["cart"] = {"total": round(price * qty, 2), "items": qty}
        elif r.random() < 0.1:
            p["price"] = r.randint(0, 100)
        if r.random() < 0.6:
            p["plan"] = r.choice(PLANS)
        if e.name in ("pageview", "screen_view", "search") or r.random() < 0.1:
            p["title"] = r.choice(TITLES)
        if r.random() < 0.3:
            p["ok"] = r.random() < 0.5
        if r.random() < 0.25:
            p["code"] = r.choice([7, 3, 12.5, "7", "A1", "b2", "12.5"])
        if r.random() < 0.4:
            # ~160 values with a long tail: breakdowns keep the top 100 and put the rest under
            # "$other"; many values tie on one row (ties go by value: numbers, then strings)
            k = int(r.paretovariate(0.6)) - 1
            if k > 159:
                k = 100 + k % 60
            p["sku"] = k if k < 25 else "sku-%03d" % k
        if r.random() < 0.05:
            p["plan"] = None  # null: absent
        e.props = p
