"""Reports (docs/reports.md): `tally report` against a running server and against a data
directory gives the numbers the query API gives for the same ranges (overview metrics and
every table row, current and previous period); the HTML is self-contained (no scripts, no
http(s) references, data escaped); the scheduler of `tally serve` writes a report into
report_dir and POSTs it to a webhook (a python http.server on loopback), records what it
delivered in the data directory, retries what was not delivered and never sends a period twice
after a restart."""

import csv
import datetime
import http.server
import json
import os
import random
import threading
import time
from zoneinfo import ZoneInfo

import tally
from tally import Server, check, check_eq, event, run_cli

TIMEOUT = 180

PROJECTS = {
    "ktm": ("Asia/Kathmandu", "wk_ktm", "rk_ktm"),
    "ny": ("America/New_York", "wk_ny", "rk_ny"),
}
EVIL = "<script>alert(1)</script>"


def write_conf(path, report=None):
    """A config with PROJECTS; `report` adds report_* keys to every project."""
    lines = []
    for name, (tz, wk, rk) in PROJECTS.items():
        lines += ["[project %s]" % name, "timezone = %s" % tz, "write_key = %s" % wk,
                  "read_key = %s" % rk]
        for k, v in (report or {}).items():
            lines.append("%s = %s" % (k, v))
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def local_today(tz):
    return datetime.datetime.now(ZoneInfo(tz)).date()


def local_ms(tz, day, hour, minute=0):
    d = datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(tz))
    return int(d.timestamp() * 1000)


def make_events(tz, days=70, n=900, seed=7):
    rnd = random.Random(seed)
    today = local_today(tz)
    evs = []
    for i in range(n):
        day = today - datetime.timedelta(days=rnd.randrange(0, days))
        ts = local_ms(tz, day, rnd.randrange(0, 24), rnd.randrange(0, 60))
        if ts > tally.now_ms() - 60000:
            ts = tally.now_ms() - 60000
        name = rnd.choice(["$pageview", "$pageview", "signup", "click", EVIL])
        fields = {}
        if name != "signup" and rnd.random() < 0.85:
            fields["url"] = rnd.choice(["/", "/pricing", "/docs?a=1&b=<2>", "/a,b\"c"])
        if rnd.random() < 0.9:
            fields["country"] = rnd.choice(["US", "DE", "NP", "IN"])
        fields["platform"] = rnd.choice(["web", "ios", "android"])
        if rnd.random() < 0.8:
            fields["app_version"] = rnd.choice(["1.0", "1.1", "2.0"])
        user = "u%d" % rnd.randrange(0, 15) if rnd.random() < 0.2 else None
        evs.append(event(name, anon="a%d" % rnd.randrange(0, 80), user=user, ts=ts, **fields))
    return evs


def load(srv, project, evs):
    wk = PROJECTS[project][1]
    for i in range(0, len(evs), 300):
        srv.collect_ok(evs[i:i + 300], key=wk)
    srv.wait_count(project, str(datetime.date.today() - datetime.timedelta(days=400)),
                   str(datetime.date.today() + datetime.timedelta(days=2)), PROJECTS[project][2],
                   len(evs))


# ---------------------------------------------------------------- the API's numbers


def q(srv, project, metric, interval, first, last, **kw):
    body = {"project": project, "kind": "trends", "metric": metric, "interval": interval,
            "from": str(first), "to": str(last)}
    body.update(kw)
    return srv.query_ok(body, key=PROJECTS[project][2])["rows"]


def total(rows):
    return sum(r[-1] for r in rows)


def api_overview(srv, project, per, first, last):
    daily = q(srv, project, "persons", "hour" if per == "day" else "day", first, last)
    persons = total(q(srv, project, "persons", per, first, last))
    dau = persons if per == "day" else total(daily) / len(daily)
    mau = total(q(srv, project, "mau", "day", last, last))
    pv = total(q(srv, project, "events", per, first, last, event="$pageview")) + total(
        q(srv, project, "events", per, first, last,
          where=[{"prop": "url", "op": "is_set"},
                 {"prop": "event", "op": "!=", "value": "$pageview"}]))
    return {
        "events": total(q(srv, project, "events", per, first, last)),
        "persons": persons,
        "dau_avg": dau,
        "wau": total(q(srv, project, "wau", "day", last, last)),
        "mau": mau,
        "stickiness": dau / mau if mau else 0,
        "pageviews": pv,
    }


TABLES = {  # csv file -> (breakdown, metric, where)
    "top_pages": ("url", "events", [{"prop": "url", "op": "is_set"}]),
    "countries": ("country", "persons", None),
    "platforms": ("platform", "persons", None),
    "app_versions": ("app_version", "persons", None),
    "events": ("event", "events", None),
}


def api_table(srv, project, per, first, last, name):
    bd, metric, where = TABLES[name]
    kw = {"breakdown": bd}
    if where:
        kw["where"] = where
    rows = q(srv, project, metric, per, first, last, **kw)
    return {("" if r[1] is None else r[1]): r[2] for r in rows}


def prev_period(per, first):
    last = first - datetime.timedelta(days=1)
    if per == "day":
        return last, last
    if per == "week":
        return last - datetime.timedelta(days=6), last
    return last.replace(day=1), last


def period_of(per, day):
    if per == "day":
        return day, day
    if per == "week":
        first = day - datetime.timedelta(days=day.weekday())
        return first, first + datetime.timedelta(days=6)
    first = day.replace(day=1)
    nxt = (first + datetime.timedelta(days=32)).replace(day=1)
    return first, nxt - datetime.timedelta(days=1)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def num(s):
    return float(s) if s != "" else None


def check_close(got, want, what):
    check(abs(got - want) <= 1e-9 * max(1, abs(want)), "%s: got %r, want %r" % (what, got, want))


def check_report_dir(out, srv, project, per, first, last):
    """Every number of the report in `out` equals the API's answer for the same range."""
    summary = json.load(open(os.path.join(out, "summary.json"), encoding="utf-8"))
    pfirst, plast = prev_period(per, first)
    check_eq((summary["from"], summary["to"]), (str(first), str(last)), "report range")
    check_eq((summary["previous_from"], summary["previous_to"]), (str(pfirst), str(plast)),
             "previous range")
    cur = api_overview(srv, project, per, first, last)
    prev = api_overview(srv, project, per, pfirst, plast)
    rows = read_csv(os.path.join(out, "overview.csv"))
    check_eq(rows[0], ["metric", "value", "previous", "change", "change_pct"], "overview header")
    got = {r[0]: r[1:] for r in rows[1:]}
    check_eq(sorted(got), sorted(cur), "overview metrics")
    for m in cur:
        v, p, ch, pct = got[m]
        check_close(float(v), cur[m], "%s %s %s value" % (project, per, m))
        check_close(float(p), prev[m], "%s %s %s previous" % (project, per, m))
        check_close(float(ch), cur[m] - prev[m], "%s change" % m)
        if prev[m]:
            check_close(float(pct), (cur[m] - prev[m]) / prev[m] * 100, "%s change_pct" % m)
        else:
            check_eq(pct, "", "%s change_pct with previous 0" % m)
        check_close(summary["metrics"][m]["value"], cur[m], "summary.json %s" % m)
    check(cur["events"] > 0 and prev["events"] > 0, "the test data covers both periods")
    series = read_csv(os.path.join(out, "series.csv"))
    iv = "hour" if per == "day" else "day"
    for k, (f, l) in enumerate(((first, last), (pfirst, plast))):
        ev, pp = q(srv, project, "events", iv, f, l), q(srv, project, "persons", iv, f, l)
        got = [(r[3 * k], float(r[3 * k + 1]), float(r[3 * k + 2])) for r in series[1:]
               if r[3 * k] != ""]
        check_eq(got, [(e[0], e[1], p[1]) for e, p in zip(ev, pp)], "series.csv side %d" % k)
    for name in TABLES:
        rows = read_csv(os.path.join(out, name + ".csv"))
        check_eq(rows[0], [TABLES[name][0], "value", "previous", "change", "change_pct"],
                 name + ".csv header")
        want_c = api_table(srv, project, per, first, last, name)
        want_p = api_table(srv, project, per, pfirst, plast, name)
        keys = set(want_c) | set(want_p)
        got = {}
        for r in rows[1:]:
            key = r[0][1:] if r[0][:1] == "'" else r[0]  # formula guard
            got[key] = (float(r[1]), float(r[2]))
        check_eq(sorted(got), sorted(keys), "%s rows" % name)
        for k in keys:
            check_eq(got[k], (want_c.get(k, 0), want_p.get(k, 0)), "%s %r" % (name, k))
        vals = [v[0] for k, v in got.items() if k != "$other"]
        check_eq(vals, sorted(vals, reverse=True), "%s sorted by value" % name)
    check_html(os.path.join(out, "report.html"))
    return summary


def check_html(path):
    html = open(path, encoding="utf-8").read()
    low = html.lower()
    check(low.startswith("<!doctype html>"), "report.html is an HTML document")
    check("<script" not in low, "report.html has no <script>")
    check("http://" not in low and "https://" not in low, "report.html has no http(s) reference")
    check(" src=" not in low and " href=" not in low, "report.html loads nothing")
    check(low.count("<svg") >= 2, "report.html has its charts inline")
    check("&lt;script&gt;alert(1)&lt;/script&gt;" in html, "event names are escaped")
    check("/docs?a=1&amp;b=&lt;2&gt;" in html, "urls are escaped")


# ---------------------------------------------------------------- tests


def test_report_cli_matches_api():
    root = tally.tempdir()
    conf = write_conf(os.path.join(root, "tally.conf"))
    data = os.path.join(root, "data")
    tz = PROJECTS["ktm"][0]
    srv = Server(data_dir=data, config=conf).start()
    load(srv, "ktm", make_events(tz))
    today = local_today(tz)
    # against the running server: the last complete week and day, a month by --end
    runs = [("week", None), ("day", None), ("month", today - datetime.timedelta(days=20))]
    outs = {}
    for per, end in runs:
        out = os.path.join(root, "remote-" + per)
        args = ["report", "--server", srv.url, "--project", "ktm", "--key", "rk_ktm",
                "--period", per, "--out", out]
        if end:
            args += ["--end", str(end)]
        p = run_cli(args)
        check("report.html" in p.stdout.decode(), "tally report says where the report is")
        ref = end or (period_of(per, today)[0] - datetime.timedelta(days=1))
        first, last = period_of(per, ref)
        check_report_dir(out, srv, "ktm", per, first, last)
        outs[per] = (out, end)
    # a wrong key is refused with the server's reason
    p = run_cli(["report", "--server", srv.url, "--project", "ktm", "--key", "nope",
                 "--out", os.path.join(root, "x")], check_status=False)
    check(p.returncode != 0 and b"401" in p.stderr, "bad key: %r" % p.stderr[-300:])
    srv.stop()
    # the data directory directly gives the same files (but the generation time)
    for per, (out, end) in outs.items():
        local = os.path.join(root, "local-" + per)
        args = ["report", "--data", data, "--config", conf, "--project", "ktm", "--period", per,
                "--out", local]
        if end:
            args += ["--end", str(end)]
        run_cli(args)
        for name in ["overview", "series"] + list(TABLES):
            a = open(os.path.join(out, name + ".csv"), "rb").read()
            b = open(os.path.join(local, name + ".csv"), "rb").read()
            check_eq(b, a, "%s report %s.csv from --data vs --server" % (per, name))
    p = run_cli(["report", "--data", data, "--config", conf, "--period", "year", "--out",
                 os.path.join(root, "y")], check_status=False)
    check(p.returncode != 0 and b"--period" in p.stderr, "bad period refused")
    p = run_cli(["report", "--help"])
    for f in ("--project", "--period", "--end", "--out", "--server", "--key", "--data"):
        check(f.encode() in p.stdout, "report --help mentions %s" % f)
    check(b"report" in run_cli(["--help"]).stdout, "tally --help lists report")


class Hook:
    """A webhook receiver on loopback: records every POST; answers `status`."""

    def __init__(self):
        self.posts = []
        self.status = 200
        hook = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                hook.posts.append((self.path, self.headers.get("Content-Type"), body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/hooks/s3cr3t?token=abc" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()


def test_report_scheduler_dir_and_webhook():
    root = tally.tempdir()
    conf = os.path.join(root, "tally.conf")
    data = os.path.join(root, "data")
    reports = os.path.join(root, "reports")
    tz = PROJECTS["ny"][0]
    write_conf(conf)
    srv = Server(data_dir=data, config=conf).start()
    load(srv, "ny", make_events(tz, days=4, n=300, seed=3))
    srv.stop()
    hook = Hook()
    try:
        # The scheduler looks at start-up; report_hour 0: yesterday is due at once.
        write_conf(conf, {"report_period": "day", "report_hour": "0", "report_dir": reports,
                          "report_webhook": hook.url})
        hook.status = 500  # not delivered: not recorded, retried later
        srv.start()
        tally.wait_until(lambda: len(hook.posts) >= 2, timeout=30, what="two webhook POSTs")
        tally.wait_until(lambda: "not delivered" in srv.log_text(), timeout=10,
                         what="the failure in the log")
        log = srv.log_text()
        check("s3cr3t" not in log and "token=abc" not in log, "the webhook's secret is not logged")
        state = os.path.join(data, "reports.state")
        check(not os.path.exists(state) or "ny day" not in open(state).read(),
              "an undelivered report is not recorded")
        srv.stop()
        hook.posts.clear()
        hook.status = 200
        srv.start()
        tally.wait_until(lambda: len(hook.posts) >= 2, timeout=30, what="webhook POSTs")
        yesterday = local_today(tz) - datetime.timedelta(days=1)
        by_project = {}
        for path, ctype, body in hook.posts:
            check_eq(path, "/hooks/s3cr3t?token=abc", "webhook path")
            check_eq(ctype, "application/json", "webhook content type")
            j = json.loads(body)
            by_project[j["project"]] = j
        check_eq(sorted(by_project), ["ktm", "ny"], "one POST per project")
        j = by_project["ny"]
        check_eq((j["period"], j["from"], j["to"]), ("day", str(yesterday), str(yesterday)),
                 "the ny report is for yesterday in New York")
        check_eq(j["tz"], tz, "tz in the summary")
        cur = api_overview(srv, "ny", "day", yesterday, yesterday)
        for m, v in cur.items():
            check_close(j["metrics"][m]["value"], v, "webhook %s" % m)
        check(cur["events"] > 0, "yesterday has events")
        check("<script" not in j["html"].lower() and "http://" not in j["html"],
              "the posted HTML is self-contained")
        out = os.path.join(reports, "ny", "day-%s" % yesterday)
        check_report_dir(out, srv, "ny", "day", yesterday, yesterday)
        state = open(os.path.join(data, "reports.state")).read()
        check("ny day %s" % yesterday in state, "reports.state records the period: %r" % state)
        mtime = os.path.getmtime(os.path.join(out, "report.html"))
        # A restart does not send the same period again.
        srv.stop()
        n = len(hook.posts)
        srv.start()
        time.sleep(3)
        check_eq(len(hook.posts), n, "POSTs after a restart")
        check_eq(os.path.getmtime(os.path.join(out, "report.html")), mtime,
                 "report.html untouched after a restart")
        srv.stop()
    finally:
        hook.close()
    # configuration mistakes are refused at start
    for bad, word in (({"report_period": "year", "report_dir": reports}, "report_period"),
                      ({"report_period": "day"}, "report_dir"),
                      ({"report_period": "day", "report_webhook": "ftp://x"}, "report_webhook"),
                      ({"report_period": "day", "report_dir": reports, "report_hour": "24"},
                       "report_hour")):
        write_conf(conf, bad)
        p = run_cli(["serve", "--config", conf, "--data", data, "--listen", "127.0.0.1:0"],
                    check_status=False, timeout=30)
        check(p.returncode != 0 and word.encode() in p.stderr,
              "config %r refused naming %s: %r" % (bad, word, p.stderr[-300:]))
