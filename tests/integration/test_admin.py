"""Admin endpoints and process life (API.md "Admin"): /healthz, /metrics in the Prometheus text
format, a clean SIGTERM shutdown, and restart on the same data directory giving the same
answers."""

import http.client
import json
import re

from tally import Server, check, check_eq, day_add, event, now_ms, today_utc

P, WK, RK = "demo", "wk_demo", "rk_demo"

# Prometheus text exposition format 0.0.4
METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
SAMPLE = re.compile(r"^(%s)(\{(%s(,%s)*,?)?\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)( -?[0-9]+)?$"
                    % (METRIC_NAME, LABEL, LABEL))
HELP = re.compile(r"^# HELP (%s) .*$" % METRIC_NAME)
TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % METRIC_NAME)


def parse_metrics(text):
    """{name_with_labels: value}; raises on a line that is not in the text format."""
    out = {}
    types = {}
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        if line.startswith("#"):
            m = TYPE.match(line)
            if m:
                check(m.group(1) not in types, "line %d: second TYPE for %s" % (i + 1, m.group(1)))
                types[m.group(1)] = m.group(2)
                continue
            check(HELP.match(line) or not line.startswith(("# HELP", "# TYPE")),
                  "line %d: bad comment %r" % (i + 1, line))
            continue
        m = SAMPLE.match(line)
        check(m is not None, "line %d is not a Prometheus sample: %r" % (i + 1, line))
        key = m.group(1) + (m.group(2) or "")
        check(key not in out, "line %d: duplicate sample %r" % (i + 1, key))
        out[key] = float(m.group(5))
    return out


def test_healthz():
    with Server() as s:
        r = s.request("GET", "/healthz")
        check_eq(r.status, 200, "GET /healthz")
        check(len(r.body) < 4096, "healthz answer is small")


def test_metrics_text_format():
    with Server() as s:
        s.collect_ok([event("m") for _ in range(3)], key=WK)
        s.collect(body=b"{bad", key=WK)
        r = s.request("GET", "/metrics")
        check_eq(r.status, 200, "GET /metrics")
        ct = r.header("Content-Type") or ""
        check(ct.startswith("text/plain"), "metrics content type %r" % ct)
        text = r.body.decode("utf-8")
        check(text.endswith("\n"), "metrics end with a newline")
        m = parse_metrics(text)
        check(len(m) >= 5, "at least a few metrics: %r" % list(m)[:20])
        check(all(k.startswith("tally_") for k in m), "metric names start with tally_: %r"
              % [k for k in m if not k.startswith("tally_")][:10])
        # counters only grow
        s.collect_ok([event("m") for _ in range(2)], key=WK)
        m2 = parse_metrics(s.request("GET", "/metrics").body.decode("utf-8"))
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        for k, v in m.items():
            name = k.split("{")[0]
            if types.get(name) == "counter" and k in m2:
                check(m2[k] >= v, "counter %s went down: %s -> %s" % (k, v, m2[k]))
        check(m2 != m, "metrics change after ingestion")


def test_restart_keeps_data():
    t = today_utc()
    f = day_add(t, -6)
    with Server() as s:
        evs = []
        for i in range(300):
            ts = now_ms() - (i % 6) * 86400000 - 3600000 * (i % 5)
            evs.append(event("r%d" % (i % 4), anon="ra%d" % (i % 37), user=("ru%d" % (i % 37)) if i % 3 == 0 else None,
                             ts=ts, platform=["web", "ios", "android"][i % 3],
                             properties={"n": i % 10, "s": "v%d" % (i % 7)}))
        for k in range(0, 300, 50):
            s.collect_ok(evs[k:k + 50], key=WK)
        s.wait_count(P, f, t, RK, 300)
        queries = [
            {"metric": "events", "interval": "day"},
            {"metric": "persons", "interval": "day"},
            {"metric": "events", "interval": "day", "breakdown": "platform"},
            {"metric": "sum:properties.n", "interval": "week"},
            {"metric": "persons", "interval": "month", "where": [{"prop": "properties.s", "op": "=", "value": "v3"}]},
            {"metric": "events", "interval": "hour", "from": day_add(t, -1)},
        ]

        def answers():
            out = []
            for q in queries:
                full = {"project": P, "kind": "trends", "from": f, "to": t}
                full.update(q)
                j = s.query_ok(full, key=RK)
                out.append((j["columns"], j["rows"]))
            return out

        before = answers()
        s.restart()
        s.wait_count(P, f, t, RK, 300)
        check_eq(answers(), before, "answers after SIGTERM restart")
        s.kill()
        s.start()
        s.wait_count(P, f, t, RK, 300)
        check_eq(answers(), before, "answers after kill -9 and restart")
        # ingesting more after the restart still works, and old ids are still duplicates
        s.collect_ok(evs[:50] + [event("r0", anon="new", ts=now_ms() - 60000)], key=WK)
        s.wait_count(P, f, t, RK, 301)


def test_keep_alive_and_chunked_bodies():
    """Several requests on one connection, and a body sent with Transfer-Encoding: chunked."""
    t = today_utc()
    with Server() as s:
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        for i in range(5):
            c.request("POST", "/collect", json.dumps({"events": [event("ka")]}),
                      {"Authorization": "Bearer " + WK, "Content-Type": "application/json"})
            r = c.getresponse()
            check_eq(r.status, 200, "request %d on one connection" % i)
            r.read()
        c.close()
        evs = [event("chunked") for _ in range(50)]
        body = json.dumps({"events": evs}).encode()
        chunks = (body[i:i + 700] for i in range(0, len(body), 700))
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        c.request("POST", "/collect", chunks, {"Authorization": "Bearer " + WK,
                                                "Content-Type": "application/json"},
                  encode_chunked=True)
        r = c.getresponse()
        data = r.read()
        c.close()
        check_eq(r.status, 200, "chunked body: %r" % data[:200])
        check_eq(json.loads(data).get("accepted"), 50, "chunked body accepted")
        s.wait_count(P, day_add(t, -2), t, RK, 55)


def test_metrics_count_exactly():
    """On a fresh server, the ingestion counters equal what the answers said."""
    with Server() as s:
        acc = dup = rej = 0
        evs = [event("mc") for _ in range(20)]
        for body in (evs[:10], evs[5:20], evs + [{"event": "no ids"}, {"anonymous_id": "x"}]):
            j = s.collect(body, key=WK).json()
            acc += j["accepted"]
            dup += j["duplicates"]
            rej += j["rejected"]
        s.collect(body=b"{bad", key=WK)      # 400
        s.collect([event("mc")], key="nope")  # 401
        m = parse_metrics(s.request("GET", "/metrics").body.decode())
        check_eq((acc, dup, rej), (20, 25, 2), "the answers")
        check_eq(m.get("tally_events_accepted_total"), 20.0, "tally_events_accepted_total")
        check_eq(m.get("tally_events_rejected_total"), 2.0, "tally_events_rejected_total")
        d = m.get("tally_events_duplicate_total", 0) + m.get("tally_index_duplicates_total", 0)
        check_eq(d, 25.0, "duplicates recognised at ingest + by the indexer")
        check(m.get("tally_http_errors_4xx_total", 0) >= 2, "4xx counted: %r" % m.get("tally_http_errors_4xx_total"))
