/* The enricher: built once from the configuration at server start, then called on the request
 * path for every accepted event before it is appended to the log (so what is stored, and the
 * dedup id computed by ingest, never depend on a later lookup). Order of the work per event:
 *
 *   1. deny lists of the project (IP ranges, referrer hosts)  → filtered "ip" / "referrer"
 *   2. user agent → cache or uap-core; crawler / headless     → filtered "bot" / "headless"
 *      (HTTP client libraries are neither, and get no browser/os/device_type)
 *   3. country (+ $geo_region, $geo_city) from the IP, unless the event has a country
 *   4. browser, os, device_type, each unless the event has it
 *   5. the IP: dropped, or stored truncated / kept as "$ip" (project setting `ip`)
 *
 * Filtered events are counted per reason in relaxed atomics (read by /metrics). */
#include "enrich.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "enrich/enrich_int.h"
#include "util/diag.h"
#include "util/hash.h"

#define UA_CACHE_ENTRIES 16384
#define IP_CACHE_ENTRIES 131072
#define UAP_DEFAULT      "/usr/share/uap-core/regexes.yaml"

typedef struct proj {
    tl_cidr *deny_ips;
    uint32_t n_deny_ips;
    tl_str *deny_refs; /* hosts, lower case, in refs_mem */
    uint32_t n_deny_refs;
    char *refs_mem;
} proj;

/* What the database says of an address, as cached (strings borrow the mapped database). */
typedef struct geo_answer {
    bool found;
    tl_geo_info gi;
} geo_answer;

struct tl_enrich {
    const tl_config *cfg;
    bool on;
    tl_geo *geo;
    tl_uap *uap;
    tl_ecache *ua_cache; /* user agent → tl_ua_info */
    tl_ecache *ip_cache; /* address (16 bytes) → geo_answer */
    tl_cidr *trusted;
    uint32_t n_trusted;
    proj *projs; /* one per cfg->projects */
    _Atomic uint64_t filtered[TL_FILTER_COUNT];
};

const char *tl_enrich_reason_name(int reason)
{
    static const char *const names[TL_FILTER_COUNT] = {"", "bot", "headless", "ip", "referrer"};
    return reason >= 0 && reason < TL_FILTER_COUNT ? names[reason] : "";
}

/* Splits a referrer deny list into lower-case hosts. */
static void parse_refs(proj *pj, const char *list)
{
    size_t n = strlen(list);
    pj->refs_mem = tl_xmalloc(n + 1);
    for (size_t i = 0; i <= n; i++) {
        char c = list[i];
        pj->refs_mem[i] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
    }
    uint32_t cap = 0;
    char *p = pj->refs_mem;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        char *s = p;
        while (*p && *p != ',' && *p != ' ' && *p != '\t')
            p++;
        if (p == s) continue;
        if (pj->n_deny_refs == cap) {
            cap = cap ? cap * 2 : 8;
            pj->deny_refs = tl_xrealloc(pj->deny_refs, cap * sizeof *pj->deny_refs);
        }
        pj->deny_refs[pj->n_deny_refs++] = (tl_str){s, (size_t)(p - s)};
    }
}

static void *open_geo(void *arg)
{
    tl_enrich *e = arg;
    e->geo = tl_enrich__geo_open(e->cfg->geoip_db);
    return NULL;
}

int tl_enrich_new(const tl_config *c, tl_enrich **out, tl_err *err)
{
    tl_enrich *e = tl_xcalloc(1, sizeof *e);
    e->cfg = c;
    e->on = c->enrich;
    tl_err why = {0};
    int rc = tl_cidr_parse_list(c->trusted_proxies, &e->trusted, &e->n_trusted, &why);
    if (rc) {
        tl_err_set(err, rc, "trusted_proxies: %s", why.msg);
        goto fail;
    }
    e->projs = tl_xcalloc(c->n_projects ? c->n_projects : 1, sizeof *e->projs);
    for (uint32_t i = 0; i < c->n_projects; i++) {
        const tl_project_conf *p = &c->projects[i];
        rc = tl_cidr_parse_list(p->deny_ips, &e->projs[i].deny_ips, &e->projs[i].n_deny_ips, &why);
        if (rc) {
            tl_err_set(err, rc, "project %s: deny_ips: %s", p->name, why.msg);
            goto fail;
        }
        parse_refs(&e->projs[i], p->deny_referrers);
    }
    if (e->on) {
        /* The GeoIP files (their prefix tables) on a second thread while the regexes compile:
         * each takes a few tens of ms, and both are read-only work on their own memory. */
        pthread_t geo_thread;
        bool geo_threaded = false;
        if (c->geoip_db[0])
            geo_threaded = !pthread_create(&geo_thread, NULL, open_geo, e);
        else
            TL_INFO("enrich", "geoip_db is empty: country is not derived");
        const char *uap = getenv("TALLY_UAP_REGEXES");
        e->uap = tl_enrich__uap_load(uap && *uap ? uap : UAP_DEFAULT);
        if (geo_threaded)
            pthread_join(geo_thread, NULL);
        else if (c->geoip_db[0])
            open_geo(e);
        e->ua_cache = tl_enrich__cache_new(UA_CACHE_ENTRIES, sizeof(tl_ua_info));
        if (e->geo) e->ip_cache = tl_enrich__cache_new(IP_CACHE_ENTRIES, sizeof(geo_answer));
    }
    *out = e;
    return 0;
fail:
    tl_enrich_free(e);
    *out = NULL;
    return rc;
}

void tl_enrich_free(tl_enrich *e)
{
    if (!e) return;
    for (uint32_t i = 0; e->projs && i < e->cfg->n_projects; i++) {
        free(e->projs[i].deny_ips);
        free(e->projs[i].deny_refs);
        free(e->projs[i].refs_mem);
    }
    free(e->projs);
    free(e->trusted);
    tl_enrich__geo_free(e->geo);
    tl_enrich__uap_free(e->uap);
    tl_enrich__cache_free(e->ua_cache);
    tl_enrich__cache_free(e->ip_cache);
    free(e);
}

void tl_enrich_client_ip(const tl_enrich *e, const char *peer, tl_str forwarded, tl_str xff,
                         char *out, size_t cap)
{
    tl_enrich__client_ip(e ? e->trusted : NULL, e ? e->n_trusted : 0, peer, forwarded, xff, out,
                         cap);
}

void tl_enrich_filtered(const tl_enrich *e, uint64_t out[TL_FILTER_COUNT])
{
    for (int i = 0; i < TL_FILTER_COUNT; i++)
        out[i] = e ? atomic_load_explicit(&e->filtered[i], memory_order_relaxed) : 0;
}

void tl_enrich_parse_ua(const tl_enrich *e, tl_str ua, tl_ua_info *out)
{
    memset(out, 0, sizeof *out);
    out->device_type = "";
    if (!ua.len || tl_enrich__http_library(ua)) return;
    char buf[513];
    size_t n = ua.len < sizeof buf - 1 ? ua.len : sizeof buf - 1;
    memcpy(buf, ua.p, n);
    buf[n] = 0;
    tl_uap_result r;
    tl_enrich__uap_parse(e ? e->uap : NULL, buf, n, &r);
    memcpy(out->browser, r.family, sizeof out->browser);
    memcpy(out->os, r.os, sizeof out->os);
    out->bot = tl_enrich__bot_by_list(ua);
    if (!out->bot && !strcmp(r.device, "Spider")) out->bot = TL_FILTER_BOT;
    out->device_type = out->bot ? "bot" : tl_enrich__device_type(&r, ua);
}

/* The host of a referrer URL ("https://a.b.example:8080/x" → "a.b.example"). */
static tl_str ref_host(tl_str u)
{
    const char *p = u.p, *end = u.p + u.len;
    const char *sep = u.len >= 3 ? memmem(u.p, u.len, "://", 3) : NULL;
    if (sep) p = sep + 3;
    const char *h = p;
    while (p < end && *p != '/' && *p != ':' && *p != '?' && *p != '#')
        p++;
    const char *at = memchr(h, '@', (size_t)(p - h)); /* user:pass@host */
    if (at) h = at + 1;
    return (tl_str){h, (size_t)(p - h)};
}

/* True when host equals d or ends with "." + d (case-insensitive; d is lower case). */
static bool host_in(tl_str host, tl_str d)
{
    if (host.len < d.len) return false;
    const char *tail = host.p + host.len - d.len;
    for (size_t i = 0; i < d.len; i++) {
        char c = tail[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (c != d.p[i]) return false;
    }
    return host.len == d.len || tail[-1] == '.';
}

/* The database's answer for a, through the IP cache (visitors send many events each). */
static bool geo(tl_enrich *e, const tl_cidr *a, uint64_t hv, tl_geo_info *gi)
{
    if (!e->geo) return false;
    geo_answer g;
    if (!tl_enrich__cache_get(e->ip_cache, a->addr, 16, hv, &g)) {
        g.found = tl_enrich__geo_lookup(e->geo, a, &g.gi);
        tl_enrich__cache_put(e->ip_cache, a->addr, 16, hv, &g);
    }
    *gi = g.gi;
    return g.found;
}

static int filtered(tl_enrich *e, int reason)
{
    atomic_fetch_add_explicit(&e->filtered[reason], 1, memory_order_relaxed);
    return reason;
}

/* Adds the properties add[0..n) (sorted keys) to r's sorted properties; a key the event
 * already has keeps the event's value. */
static void add_props(tl_arena *a, tl_record *r, const tl_prop *add, uint32_t n)
{
    if (!n) return;
    tl_prop *all = tl_arena_alloc(a, ((size_t)r->n_props + n) * sizeof *all);
    uint32_t i = 0, j = 0, k = 0;
    while (i < r->n_props || j < n) {
        int c = i == r->n_props ? 1 : j == n ? -1 : tl_str_cmp(r->props[i].key, add[j].key);
        if (c <= 0) {
            all[k++] = r->props[i++];
            if (!c) j++;
        } else {
            all[k++] = add[j++];
        }
    }
    r->props = all;
    r->n_props = k;
}

static tl_prop str_prop(const char *key, tl_str v)
{
    return (tl_prop){tl_str_c(key), TL_PV_STR, 0, v};
}

static bool same_str(tl_str a, tl_str b)
{
    return (a.p == b.p && a.len == b.len) || tl_str_eq(a, b);
}

/* Resolves the record's IP into m (parse once per distinct IP text). A new address's slot in
 * the IP cache and its entries in the GeoIP prefix tables are fetched into the CPU cache now,
 * so that those misses overlap each other and the user agent's lookup (each is ~0.1-0.2 µs of
 * waiting on the project's VM) instead of following one another. */
static void memo_ip(tl_enrich *e, tl_enrich_memo *m, tl_str ip)
{
    if (m->ip_set && same_str(m->ip, ip)) return;
    m->ip = ip;
    m->ip_set = true;
    m->has_ip = ip.len && !tl_enrich__ip(ip, &m->addr);
    m->geo_done = m->geo_found = false;
    if (!m->has_ip || !e->on || !e->geo) return;
    m->ip_hash = tl_hash64(m->addr.addr, 16, 0);
    tl_enrich__cache_prefetch(e->ip_cache, m->ip_hash);
    tl_enrich__geo_prefetch(e->geo, &m->addr);
}

/* Resolves the IP's geography into m: the caches, then the database. */
static void memo_geo(tl_enrich *e, tl_enrich_memo *m, tl_arena *a)
{
    if (m->geo_done) return;
    m->geo_done = true;
    tl_geo_info gi;
    if (!m->has_ip || !geo(e, &m->addr, m->ip_hash, &gi) || gi.country.len != 2) return;
    char *cc = tl_arena_alloc(a, 2);
    for (int i = 0; i < 2; i++) {
        char c = gi.country.p[i];
        cc[i] = c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
    }
    m->country = (tl_str){cc, 2};
    m->region = gi.region;
    m->city = gi.city;
    m->geo_found = true;
}

/* Resolves the user agent into m: the cache, then uap-core. */
static void memo_ua(tl_enrich *e, tl_enrich_memo *m, tl_arena *a, tl_str ua_str)
{
    if (m->ua_set && same_str(m->ua, ua_str)) return;
    m->ua = ua_str;
    m->ua_set = true;
    tl_ua_info ua;
    uint64_t hv = tl_hash_str(ua_str);
    if (!tl_enrich__cache_get(e->ua_cache, ua_str.p, ua_str.len, hv, &ua)) {
        tl_enrich_parse_ua(e, ua_str, &ua); /* HTTP libraries: empty answers, cached too */
        if (ua_str.len <= 1024) tl_enrich__cache_put(e->ua_cache, ua_str.p, ua_str.len, hv, &ua);
    }
    m->bot = ua.bot;
    m->browser = ua.browser[0] ? tl_arena_strdup(a, tl_str_c(ua.browser)) : TL_STR_NULL;
    m->os = ua.os[0] ? tl_arena_strdup(a, tl_str_c(ua.os)) : TL_STR_NULL;
    m->device_type = ua.device_type;
}

int tl_enrich_record(tl_enrich *e, const tl_project_conf *p, tl_arena *a, tl_record *r,
                     tl_enrich_memo *memo)
{
    if (!e || r->kind != TL_REC_EVENT) return TL_FILTER_NONE;
    tl_enrich_memo local = {0};
    tl_enrich_memo *m = memo ? memo : &local;
    const proj *pj = NULL;
    if (p >= e->cfg->projects && p < e->cfg->projects + e->cfg->n_projects)
        pj = &e->projs[p - e->cfg->projects];
    memo_ip(e, m, r->ip);

    /* 1. Deny lists: explicit, so they apply with bot_filter off too. */
    if (pj && m->has_ip && tl_enrich__in_list(pj->deny_ips, pj->n_deny_ips, &m->addr))
        return filtered(e, TL_FILTER_IP);
    if (pj && pj->n_deny_refs && r->field[TL_F_REFERRER].len) {
        tl_str host = ref_host(r->field[TL_F_REFERRER]);
        for (uint32_t i = 0; i < pj->n_deny_refs; i++)
            if (host_in(host, pj->deny_refs[i])) return filtered(e, TL_FILTER_REFERRER);
    }

    /* 2. The user agent. */
    bool has_ua = e->on && r->user_agent.len;
    if (has_ua) {
        memo_ua(e, m, a, r->user_agent);
        bool drop = p->bot_filter ? p->bot_filter == TL_BOTS_ON : e->cfg->bot_filter;
        if (m->bot && drop) return filtered(e, m->bot);
    }

    tl_prop add[3];
    uint32_t n_add = 0;
    /* 3. Geography (the event's own country wins, and then no region/city is guessed). */
    if (e->on && m->has_ip && !r->field[TL_F_COUNTRY].len) {
        memo_geo(e, m, a);
        if (m->geo_found) {
            r->field[TL_F_COUNTRY] = m->country;
            if (m->city.len) add[n_add++] = str_prop("$geo_city", m->city);
            if (m->region.len) add[n_add++] = str_prop("$geo_region", m->region);
        }
    }
    /* 4. Browser, OS, device type. */
    if (has_ua) {
        if (!r->field[TL_F_BROWSER].len) r->field[TL_F_BROWSER] = m->browser;
        if (!r->field[TL_F_OS].len) r->field[TL_F_OS] = m->os;
        if (!r->field[TL_F_DEVICE_TYPE].len) r->field[TL_F_DEVICE_TYPE] = tl_str_c(m->device_type);
    }
    /* 5. The IP itself: stored only when the project asks. */
    if (m->has_ip && p->ip_mode != TL_IP_DROP) {
        char *txt = tl_arena_alloc(a, 64);
        if (p->ip_mode == TL_IP_KEEP)
            tl_enrich__ip_text(&m->addr, txt, 64);
        else if (tl_ip_truncate(r->ip, txt, 64))
            txt[0] = 0;
        if (txt[0]) add[n_add++] = str_prop("$ip", tl_str_c(txt));
    }
    /* add[] is in key order: "$geo_city" < "$geo_region" < "$ip". */
    add_props(a, r, add, n_add);
    return TL_FILTER_NONE;
}
