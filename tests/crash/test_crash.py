"""The crash test: kill -9 under load, then exactly-once.

Client threads send batches of events with unique event_ids and retry every batch that was not
acknowledged (connection refused or reset, timeout, 503) until it is, against whatever port the
server has at the time. Meanwhile the server is killed with SIGKILL at random moments, at least
20 times (30 without --quick), and restarted each time on the same data directory, with small
log segments, small parts and frequent checkpoints so the kills land in every phase (append,
fsync, indexing, sealing, checkpoint, segment release). At the end every event must be counted
exactly once — per day, per event name, and as persons — and the final SIGTERM stop must be
clean (no sanitizer report in any of the server's logs). A reader thread queries throughout:
every answer must count at least the events acknowledged before the query was sent (also by
earlier server processes: docs/semantics.md, "a query first waits until everything
acknowledged before it is indexed") and at most the events sent."""

import datetime
import http.client
import json
import random
import socket
import threading
import time
import urllib.error

import tally
from tally import Server, check, check_eq

TIMEOUT = 360
P, WK, RK = "crash", "wk_crash", "rk_crash"
DAY = 86400000


class Client(threading.Thread):
    def __init__(self, srv, cid, seed, stop_evt, deadline):
        super().__init__(daemon=True)
        self.srv, self.cid, self.rng = srv, cid, random.Random(seed)
        self.stop_evt, self.deadline = stop_evt, deadline
        self.acked = []  # events of acknowledged batches
        self.n_sent = 0  # distinct events sent at least once
        self.attempts = self.retries = 0
        self.error = None
        self.now = tally.now_ms()

    def batch(self, k):
        r = self.rng
        out = []
        for i in range(r.choice([1, 10, 50, 200])):
            p = r.randrange(300)
            e = {"event": r.choice(["open", "view", "buy"]),
                 "event_id": "c%d-b%d-%d" % (self.cid, k, i),
                 "timestamp": self.now - r.randrange(10 * DAY) - 3600000,
                 "platform": r.choice(["web", "ios"]),
                 "properties": {"n": r.randrange(100), "pad": "x" * r.randrange(200)}}
            x = r.random()
            if x < 0.6:
                e["anonymous_id"] = "ca%d-%d" % (self.cid, p)
            elif x < 0.8:
                e["user_id"] = "cu%d-%d" % (self.cid, p)
            else:
                e["anonymous_id"], e["user_id"] = "ca%d-%d" % (self.cid, p), "cu%d-%d" % (self.cid, p)
            out.append(e)
        return out

    def send(self, body):
        port = self.srv.port
        if port is None or not self.srv.running():
            raise ConnectionRefusedError("server down")
        c = http.client.HTTPConnection(tally.HOST, port, timeout=20)
        try:
            c.request("POST", "/collect", body, {"Authorization": "Bearer " + WK,
                                                 "Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def run(self):
        try:
            k = 0
            while not self.stop_evt.is_set() and k < 100000:
                evs = self.batch(k)
                body = json.dumps({"events": evs})
                self.n_sent += len(evs)
                acked = False
                t_batch = time.monotonic()
                while not acked:
                    if time.monotonic() > self.deadline or time.monotonic() - t_batch > 90:
                        self.error = "batch %d of client %d never acknowledged" % (k, self.cid)
                        return
                    self.attempts += 1
                    try:
                        status, data = self.send(body)
                    except (OSError, http.client.HTTPException, socket.timeout, urllib.error.URLError):
                        status, data = None, b""
                    if status == 200:
                        j = json.loads(data)
                        if j.get("rejected") or j.get("accepted", 0) + j.get("duplicates", 0) != len(evs):
                            self.error = "batch %d: unexpected answer %r" % (k, j)
                            return
                        acked = True
                    elif status in (None, 503):
                        self.retries += 1
                        time.sleep(0.02 + self.rng.random() * 0.1)
                    else:
                        self.error = "batch %d: status %s %r" % (k, status, data[:300])
                        return
                self.acked.extend(evs)
                k += 1
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = "client %d: %r" % (self.cid, e)


class Reader(threading.Thread):
    """Queries while the server is being killed: an answer must count at least every event
    acknowledged before the query was sent (read-your-writes, across restarts) and at most
    the events sent so far."""

    def __init__(self, srv, clients, stop_evt, day_from, day_to):
        super().__init__(daemon=True)
        self.srv, self.clients, self.stop_evt = srv, clients, stop_evt
        self.day_from, self.day_to = day_from, day_to
        self.problems = []
        self.answers = 0

    def run(self):
        q = {"project": P, "kind": "trends", "metric": "events", "interval": "month",
             "from": self.day_from, "to": self.day_to, "tz": "UTC"}
        n = 0
        while not self.stop_evt.is_set() and n < 100000:
            n += 1
            lo = sum(len(c.acked) for c in self.clients)
            port = self.srv.port
            start_no, started_at = self.srv.n_starts, getattr(self.srv, "started_at", 0)
            t_q = time.monotonic()
            try:
                c = http.client.HTTPConnection(tally.HOST, port, timeout=20)
                c.request("POST", "/api/v1/query", json.dumps(q),
                          {"Authorization": "Bearer " + RK, "Content-Type": "application/json"})
                r = c.getresponse()
                status, data = r.status, r.read()
                c.close()
            except (OSError, http.client.HTTPException, TypeError):
                time.sleep(0.05)
                continue
            hi = sum(c.n_sent for c in self.clients)
            if status != 200:
                self.problems.append("query status %d %r" % (status, data[:200]))
                continue
            got = sum(row[-1] for row in json.loads(data)["rows"])
            self.answers += 1
            if not lo <= got <= hi:
                self.problems.append("a query counted %d events: %d were acknowledged before it, "
                                     "%d sent by its answer (it took %.2fs; sent %.2fs after "
                                     "server start #%d)" % (got, lo, hi, time.monotonic() - t_q,
                                                             t_q - started_at, start_no))
            time.sleep(0.05)


def persons_of(events):
    parent = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for e in events:
        a = ("a", e["anonymous_id"]) if "anonymous_id" in e else None
        u = ("u", e["user_id"]) if "user_id" in e else None
        if a and u:
            ra, ru = find(a), find(u)
            if ra != ru:
                parent[ra] = ru
        else:
            find(a or u)
    return find


def test_crash_kill9_exactly_once():
    rng = random.Random(20261123)
    kills_wanted = 20 if tally.QUICK else 30
    extra = {"segment_bytes": 65536, "seal_rows": 500, "checkpoint_ms": 150}
    t_start = time.monotonic()
    srv = Server(projects={P: ("UTC", WK, RK)}, config_extra=extra, start_timeout=60)
    srv.start()
    stop_evt = threading.Event()
    deadline = time.monotonic() + 240
    clients = [Client(srv, i, 1000 + i, stop_evt, deadline) for i in range(2)]
    for c in clients:
        c.start()
    today = tally.today_utc()
    reader = Reader(srv, clients, stop_evt, tally.day_add(today, -12), tally.day_add(today, 1))
    reader.start()
    kills = 0
    try:
        while kills < kills_wanted and time.monotonic() < deadline - 60:
            time.sleep(rng.choice([0.05, 0.2, 0.4, 0.8, 1.5]) * rng.random() + 0.05)
            if any(c.error for c in clients):
                break
            srv.kill()
            kills += 1
            if rng.random() < 0.3:
                time.sleep(rng.random() * 0.5)  # clients retry against a dead port meanwhile
            srv.start()
        time.sleep(0.5)
    finally:
        stop_evt.set()
        for c in clients + [reader]:
            c.join(timeout=120)
    for c in clients:
        check(not c.is_alive(), "client %d did not finish" % c.cid)
        check(c.error is None, c.error or "")
    check(kills >= kills_wanted, "only %d kills (wanted %d)" % (kills, kills_wanted))
    events = [e for c in clients for e in c.acked]
    ids = [e["event_id"] for e in events]
    check_eq(len(set(ids)), len(ids), "event ids unique in the test")
    print("%d kills; %d events acknowledged in %d attempts (%d retries); %d queries answered "
          "during the kills; %.0fs" % (kills, len(events), sum(c.attempts for c in clients),
                                       sum(c.retries for c in clients), reader.answers,
                                       time.monotonic() - t_start))

    # expected answers
    find = persons_of(events)
    per_day, per_day_name, persons_day = {}, {}, {}
    for e in events:
        d = tally.utc_day(e["timestamp"])
        per_day[d] = per_day.get(d, 0) + 1
        per_day_name[(d, e["event"])] = per_day_name.get((d, e["event"]), 0) + 1
        key = ("u", e["user_id"]) if "user_id" in e else ("a", e["anonymous_id"])
        persons_day.setdefault(d, set()).add(find(key))
    all_persons = {find(("u", e["user_id"]) if "user_id" in e else ("a", e["anonymous_id"])) for e in events}
    days = sorted(per_day)
    f, t = tally.day_add(days[0], -1), tally.day_add(days[-1], 1)

    def q(**kw):
        d = {"project": P, "kind": "trends", "from": f, "to": t, "tz": "UTC", "interval": "day"}
        d.update(kw)
        return srv.query_ok(d, key=RK)

    def check_all(stage):
        rows = q(metric="events")["rows"]
        got = {b: v for b, v in rows}
        bad = ["%s: tally %d, acknowledged %d" % (d, got.get(d, 0), per_day.get(d, 0))
               for d in sorted(set(got) | set(per_day)) if got.get(d, 0) != per_day.get(d, 0)]
        check(not bad, "%s: events per day differ (lost or double-counted events):\n  %s"
              % (stage, "\n  ".join(bad)))
        rows = q(metric="events", breakdown="event")["rows"]
        got = {(b, v): n for b, v, n in rows if n}
        check_eq(got, per_day_name, "%s: events per day and name" % stage)
        rows = q(metric="persons")["rows"]
        got = {b: v for b, v in rows if v}
        check_eq(got, {d: len(s) for d, s in persons_day.items()}, "%s: persons per day" % stage)
        rows = q(metric="persons", interval="month", **{"from": days[0], "to": days[-1]})["rows"]
        if len(rows) == 1:
            check_eq(rows[0][1], len(all_persons), "%s: persons over the whole range" % stage)

    try:
        srv.wait_count(P, f, t, RK, len(events), tz="UTC", timeout=30)
    except tally.TestFailure:
        pass  # check_all says which days differ
    check_all("after the last kill")
    srv.restart()
    check_all("after a clean restart")
    srv.stop()  # clean SIGTERM exit, and no sanitizer report in any log
    check(not reader.problems, "every event counted exactly once at the end, but read-your-writes "
          "failed during the kills (%d of %d answers):\n  %s"
          % (len(reader.problems), reader.answers, "\n  ".join(reader.problems[:10])))
