"""The command line (API.md "Command line"): --help of every command, `tally import` from files
(plain and gzip) and from stdin into a data directory, `tally query` on that directory, the
server serving what the CLI imported, and `tally export` → `tally import` round trips."""

import gzip
import json
import os

import tally
from tally import Server, check, check_eq, day_add, event, run_cli, today_utc, write_config

P, WK, RK = "demo", "wk_demo", "rk_demo"


def day_ms(day, hour=12):
    import datetime
    d = datetime.datetime.fromisoformat(day).replace(hour=hour, tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


def setup_dir():
    root = tally.tempdir()
    data = os.path.join(root, "data")
    conf = write_config(os.path.join(root, "tally.conf"))
    return root, data, conf


def sample_events(n=200, prefix="cli"):
    t = today_utc()
    evs = []
    for i in range(n):
        d = day_add(t, -(i % 5) - 1)
        user = "cu%d" % (i % 11) if i % 4 == 0 else None
        evs.append(event("%s_%d" % (prefix, i % 3), anon="ca%d" % (i % 17), user=user,
                         ts=day_ms(d, i % 24), platform=["web", "ios"][i % 2],
                         properties={"n": i % 7, "tag": "t%d" % (i % 3), "nested": {"x": i}}))
    return evs


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def cli_query(data, conf, q):
    p = run_cli(["query", "--data", data, "--config", conf, json.dumps(q)])
    try:
        return json.loads(p.stdout.decode("utf-8"))
    except ValueError:
        raise tally.TestFailure("tally query printed no JSON: %r" % p.stdout[:500])


QUERIES = [
    {"metric": "events", "interval": "day"},
    {"metric": "persons", "interval": "day"},
    {"metric": "events", "interval": "day", "breakdown": "event"},
    {"metric": "sum:properties.n", "interval": "week"},
    {"metric": "persons", "interval": "month", "breakdown": "platform"},
    {"metric": "events", "interval": "day", "where": [{"prop": "properties.tag", "op": "=", "value": "t1"}]},
    {"metric": "avg:properties.nested.x", "interval": "day"},
]


def answers(get):
    t = today_utc()
    out = []
    for q in QUERIES:
        full = {"project": P, "kind": "trends", "from": day_add(t, -7), "to": t}
        full.update(q)
        j = get(full)
        out.append((j.get("columns"), j.get("rows")))
    return out


def expected_events_per_day(evs):
    t = today_utc()
    want = {day_add(t, -i): 0 for i in range(8)}
    for e in evs:
        want[tally.utc_day(e["timestamp"])] += 1
    return [[d, want[d]] for d in sorted(want)]


def test_cli_help():
    p = run_cli(["--help"])
    out = p.stdout.decode()
    for cmd in ("serve", "import", "export", "query"):
        check(cmd in out, "tally --help mentions %s" % cmd)
    for cmd, flags in (("serve", ["--config", "--data", "--listen"]), ("import", ["--data"]),
                       ("export", ["--data"]), ("query", ["--data"])):
        p = run_cli([cmd, "--help"])
        text = (p.stdout + p.stderr).decode()
        check("usage" in text.lower(), "tally %s --help prints a usage line: %r" % (cmd, text[:200]))
        for f in flags:
            check(f in text, "tally %s --help mentions %s" % (cmd, f))
    p = run_cli(["nonsense"], check_status=False)
    check(p.returncode != 0, "unknown command fails")
    p = run_cli(["serve", "--no-such-flag"], check_status=False)
    check(p.returncode != 0, "unknown flag fails")


def test_cli_import_file_and_query():
    root, data, conf = setup_dir()
    evs = sample_events(200)
    path = os.path.join(root, "events.ndjson")
    lines = [json.dumps(e) for e in evs]
    lines.insert(10, "{this is not json")
    lines.insert(20, json.dumps({"event": "no ids"}))
    lines.insert(30, "")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    p = run_cli(["import", "--data", data, "--config", conf, "--project", P, path])
    err = p.stderr.decode()
    check("11" in err and "21" in err, "import names the bad lines (11 and 21): %r" % err[-800:])
    t = today_utc()
    j = cli_query(data, conf, {"project": P, "kind": "trends", "metric": "events", "interval": "day",
                               "from": day_add(t, -7), "to": t})
    check_eq(j["rows"], expected_events_per_day(evs), "events per day after import")
    # importing the same file again counts nothing twice
    run_cli(["import", "--data", data, "--config", conf, "--project", P, path])
    j2 = cli_query(data, conf, {"project": P, "kind": "trends", "metric": "events", "interval": "day",
                                "from": day_add(t, -7), "to": t})
    check_eq(j2["rows"], j["rows"], "events per day after importing twice")
    # the server answers the same on that directory
    via_cli = answers(lambda q: cli_query(data, conf, q))
    with Server(data_dir=data, config=conf) as s:
        via_http = answers(lambda q: s.query_ok(q, key=RK))
    check_eq(via_http, via_cli, "server answers vs tally query answers")


def test_cli_import_stdin_and_gzip():
    root, data, conf = setup_dir()
    a = sample_events(120, prefix="stdin")
    b = sample_events(80, prefix="gz")
    run_cli(["import", "--data", data, "--config", conf, "--project", P],
            input="".join(json.dumps(e) + "\n" for e in a))
    gz = os.path.join(root, "b.ndjson.gz")
    with open(gz, "wb") as f:
        f.write(gzip.compress("".join(json.dumps(e) + "\n" for e in b).encode()))
    run_cli(["import", "--data", data, "--config", conf, "--project", P, gz])
    t = today_utc()
    j = cli_query(data, conf, {"project": P, "kind": "trends", "metric": "events", "interval": "day",
                               "from": day_add(t, -7), "to": t})
    check_eq(j["rows"], expected_events_per_day(a + b), "events per day after stdin + gzip import")
    # query from stdin too
    q = {"project": P, "kind": "trends", "metric": "events", "interval": "month", "from": day_add(t, -7),
         "to": t, "event": "stdin_1"}
    p = run_cli(["query", "--data", data, "--config", conf], input=json.dumps(q))
    j = json.loads(p.stdout.decode())
    check_eq(sum(r[-1] for r in j["rows"]), sum(1 for e in a if e["event"] == "stdin_1"), "query from stdin")
    # a bad query fails with a message naming the field
    p = run_cli(["query", "--data", data, "--config", conf,
                 json.dumps(dict(q, interval="fortnight"))], check_status=False)
    check(p.returncode != 0 and b"interval" in p.stderr, "bad query: status %d, %r" % (p.returncode, p.stderr[-300:]))


def test_cli_export_roundtrip():
    root, data, conf = setup_dir()
    evs = sample_events(300, prefix="rt")
    # ingest through the server (with merges: events carrying both ids)
    with Server(data_dir=data, config=conf) as s:
        for k in range(0, len(evs), 100):
            s.collect_ok(evs[k:k + 100], key=WK)
        t = today_utc()
        s.wait_count(P, day_add(t, -7), t, RK, len(evs))
        via_http = answers(lambda q: s.query_ok(q, key=RK))
    p = run_cli(["export", "--data", data, "--config", conf, "--project", P])
    out = p.stdout.decode("utf-8")
    lines = [l for l in out.splitlines() if l.strip()]
    check_eq(len(lines), len(evs), "exported lines")
    exported = [json.loads(l) for l in lines]
    check_eq(sorted(e["event_id"] for e in exported), sorted(e["event_id"] for e in evs), "exported event ids")
    by_id = {e["event_id"]: e for e in evs}
    for x in exported:
        e = by_id[x["event_id"]]
        check_eq(x["event"], e["event"], "exported event name of %s" % e["event_id"])
        ts = x["timestamp"]
        check_eq(ts if isinstance(ts, int) else tally.parse_time(ts), e["timestamp"],
                 "exported timestamp of %s" % e["event_id"])
        check_eq(flatten(x.get("properties") or {}), flatten(e["properties"]),
                 "exported properties of %s" % e["event_id"])
    # import the export into a fresh directory: the same answers
    root2, data2, conf2 = setup_dir()
    exp = os.path.join(root, "export.ndjson")
    with open(exp, "w") as f:
        f.write(out)
    run_cli(["import", "--data", data2, "--config", conf2, "--project", P, exp])
    via_cli2 = answers(lambda q: cli_query(data2, conf2, q))
    for q, a, b in zip(QUERIES, via_http, via_cli2):
        check_eq(b, a, "answer of %s after export + import" % json.dumps(q))
    # exporting the copy gives the same lines
    p2 = run_cli(["export", "--data", data2, "--config", conf2, "--project", P])
    check_eq(sorted(p2.stdout.decode().splitlines()), sorted(lines), "export of the re-imported copy")


def test_cli_refuses_a_directory_in_use():
    root, data, conf = setup_dir()
    evs = sample_events(50, prefix="lock")
    with Server(data_dir=data, config=conf) as s:
        s.collect_ok(evs, key=WK)
        path = os.path.join(root, "more.ndjson")
        with open(path, "w") as f:
            f.write("".join(json.dumps(e) + "\n" for e in sample_events(20, prefix="lock2")))
        p = run_cli(["import", "--data", data, "--config", conf, "--project", P, path], check_status=False,
                    timeout=60)
        check(p.returncode != 0, "import into a directory the server has open must fail")
        check(p.stderr.strip() != b"", "and say why")
        t = today_utc()
        s.wait_count(P, day_add(t, -7), t, RK, 50)


def test_cli_query_and_export_on_a_new_directory():
    root, data, conf = setup_dir()
    t = today_utc()
    q = {"project": P, "kind": "trends", "metric": "events", "interval": "day", "from": day_add(t, -2), "to": t}
    p = run_cli(["query", "--data", data, "--config", conf, json.dumps(q)], timeout=30)
    j = json.loads(p.stdout.decode())
    check_eq(j["rows"], [[day_add(t, -2), 0], [day_add(t, -1), 0], [t, 0]], "a new directory answers zeros")
    p = run_cli(["export", "--data", data, "--config", conf, "--project", P], timeout=30)
    check_eq(p.stdout.strip(), b"", "export of a new directory")


def test_cli_import_compatible_formats():
    """--format segment / posthog: one SDK request body a line, mapped as the endpoints map it
    (identify merges, repeats counted once), and a bad line reported by number."""
    root, data, conf = setup_dir()
    d = day_add(today_utc(), -2)
    iso = d + "T10:00:00Z"
    seg = [
        {"batch": [
            {"type": "track", "event": "Signed Up", "anonymousId": "sa1", "messageId": "m1",
             "timestamp": iso, "properties": {"plan": "pro"}},
            {"type": "identify", "anonymousId": "sa1", "userId": "su1", "messageId": "m2",
             "timestamp": iso, "traits": {"email": "x@example.com"}},
            {"type": "track", "event": "Bought", "userId": "su1", "messageId": "m3", "timestamp": iso}]},
        {"batch": [{"type": "track", "event": "Signed Up", "anonymousId": "sa1", "messageId": "m1",
                    "timestamp": iso}]},
    ]
    body = "\n".join(json.dumps(x) for x in seg) + "\nnot json\n"
    p = run_cli(["import", "--data", data, "--config", conf, "--project", "demo", "--format", "segment"],
                input=body)
    err = p.stderr.decode()
    check("line 3:" in err, "the bad line is reported by number: %r" % err)
    ph = {"api_key": "wk_demo", "batch": [
        {"event": "$pageview", "distinct_id": "ph-anon", "uuid": "u-1", "timestamp": iso,
         "properties": {"$current_url": "https://x/a"}}]}
    run_cli(["import", "--data", data, "--config", conf, "--project", "demo", "--format", "posthog"],
            input=json.dumps(ph) + "\n")
    base = {"project": "demo", "kind": "trends", "from": d, "to": d, "interval": "day"}
    ev = cli_query(data, conf, dict(base, metric="events", breakdown="event"))
    got = {r[1]: r[2] for r in ev["rows"]}
    check_eq(got, {"$pageview": 1, "Bought": 1, "Signed Up": 1}, "events by name (repeat once)")
    pe = cli_query(data, conf, dict(base, metric="persons"))
    check_eq(pe["rows"][0][1], 2, "persons: sa1 and su1 merged by identify, plus ph-anon")
    p = run_cli(["import", "--data", data, "--config", conf, "--format", "nope"], input="",
                check_status=False)
    check(p.returncode != 0 and "--format" in p.stderr.decode(), "unknown format refused")
