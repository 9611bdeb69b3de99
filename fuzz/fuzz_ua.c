/* Fuzz target for the untrusted text enrichment reads: user agents (uap-core regexes, the bot
 * and library lists, the device-type rules), X-Forwarded-For and Forwarded headers, CIDRs and
 * IP addresses. The input is split at newlines: user agent, Forwarded, X-Forwarded-For, an
 * address or CIDR list, then a PCRE2 pattern. Nothing may crash or over-read, and the answers
 * must keep their promises: a known device type, "bot" exactly for bots, the same uap-core
 * answer with the literal pre-filter and without, a client address that parses (or is the
 * peer), truncation of every parsed address, an enriched record whose properties stay sorted
 * and unique, and a pattern's required literal (ua.c) inside every user agent it matches. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrich.h"
#include "enrich/enrich_int.h"
#include "util/diag.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tl_config g_cfg;
static tl_enrich *g_e;
static tl_uap *g_uap; /* uap-core's regexes, when installed: the pre-filter's check */
static pcre2_match_context *g_mctx;

static void init(void)
{
    tl_diag_set_level(0);
    g_cfg.enrich = true;
    g_cfg.bot_filter = true;
    snprintf(g_cfg.trusted_proxies, sizeof g_cfg.trusted_proxies, "10.0.0.0/8 ::1");
    tl_project_conf p = {0};
    snprintf(p.name, sizeof p.name, "p");
    p.ip_mode = TL_IP_TRUNCATE;
    snprintf(p.deny_ips, sizeof p.deny_ips, "203.0.113.0/24");
    snprintf(p.deny_referrers, sizeof p.deny_referrers, "spam.example");
    tl_config_add_project(&g_cfg, &p);
    if (tl_enrich_new(&g_cfg, &g_e, NULL)) abort();
    const char *uap = getenv("TALLY_UAP_REGEXES");
    g_uap = tl_enrich__uap_load(uap && *uap ? uap : "/usr/share/uap-core/regexes.yaml");
    g_mctx = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(g_mctx, 100000);
}

/* The literal of the pattern (caseless or not) must be in every subject the pattern matches. */
static void check_literal(tl_str re, tl_str ua, bool nocase)
{
    char pat[256], lit[48], low[512];
    if (!re.len || re.len >= sizeof pat || memchr(re.p, 0, re.len) || ua.len > sizeof low) return;
    memcpy(pat, re.p, re.len);
    pat[re.len] = 0;
    size_t n = tl_enrich__uap_literal(pat, nocase, lit);
    if (!n) return;
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pat, re.len, nocase ? PCRE2_CASELESS : 0, &ec, &eo, NULL);
    if (!code) return;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
    int rc = pcre2_match(code, (PCRE2_SPTR)(ua.p ? ua.p : ""), ua.len, 0, 0, md, g_mctx);
    if (rc >= 0) {
        for (size_t i = 0; i < ua.len; i++)
            low[i] = ua.p[i] >= 'A' && ua.p[i] <= 'Z' ? (char)(ua.p[i] + 32) : ua.p[i];
        if (!memmem(nocase ? low : ua.p ? ua.p : "", ua.len, lit, n)) abort();
    }
    pcre2_match_data_free(md);
    pcre2_code_free(code);
}

/* The next newline-separated part of [*p, end). */
static tl_str part(const char **p, const char *end)
{
    const char *s = *p;
    const char *nl = s < end ? memchr(s, '\n', (size_t)(end - s)) : NULL;
    const char *e = nl ? nl : end;
    *p = nl ? nl + 1 : end;
    return (tl_str){s, (size_t)(e - s)};
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_e) init();
    const char *p = (const char *)data, *end = p + size;
    tl_str ua = part(&p, end), fwd = part(&p, end), xff = part(&p, end), addr = part(&p, end);
    tl_str re = part(&p, end);

    tl_ua_info u;
    tl_enrich_parse_ua(g_e, ua, &u);
    const char *dt = u.device_type;
    if (strlen(u.browser) >= sizeof u.browser || strlen(u.os) >= sizeof u.os) abort();
    if (strcmp(dt, "") && strcmp(dt, "desktop") && strcmp(dt, "mobile") && strcmp(dt, "tablet") &&
        strcmp(dt, "bot"))
        abort();
    if (u.bot < 0 || u.bot > TL_FILTER_HEADLESS || u.bot == TL_FILTER_IP) abort();
    if (u.bot && strcmp(dt, "bot")) abort();

    if (g_uap && ua.len <= 512) {
        char z[513];
        memcpy(z, ua.p ? ua.p : "", ua.len);
        z[ua.len] = 0;
        tl_uap_result on, off;
        tl_enrich__uap_set_filter(g_uap, true);
        tl_enrich__uap_parse(g_uap, z, ua.len, &on);
        tl_enrich__uap_set_filter(g_uap, false);
        tl_enrich__uap_parse(g_uap, z, ua.len, &off);
        if (memcmp(&on, &off, sizeof on)) abort();
    }
    check_literal(re, ua, false);
    check_literal(re, ua, true);

    char out[64];
    tl_enrich_client_ip(g_e, "10.0.0.1", fwd, xff, out, sizeof out);
    tl_cidr c;
    if (strcmp(out, "10.0.0.1") && tl_cidr_parse(tl_str_c(out), &c)) abort();

    if (!tl_cidr_parse(addr, &c)) {
        tl_cidr a = c;
        a.prefix = 128;
        if (!tl_cidr_contains(&c, &a)) abort(); /* a network holds its own address */
    }
    char t[64];
    if (!tl_ip_truncate(addr, t, sizeof t) && tl_cidr_parse(tl_str_c(t), &c)) abort();
    char list[256];
    size_t n = addr.len < sizeof list - 1 ? addr.len : sizeof list - 1;
    memcpy(list, addr.p, n);
    list[n] = 0;
    if (!memchr(list, 0, n)) {
        tl_cidr *l = NULL;
        uint32_t nl = 0;
        if (!tl_cidr_parse_list(list, &l, &nl, NULL) && nl && !l) abort();
        free(l);
    }

    tl_arena *ar = tl_arena_new();
    tl_record r = {0};
    r.kind = TL_REC_EVENT;
    r.event = TL_STR("e");
    r.ip = addr;
    r.user_agent = ua;
    r.field[TL_F_REFERRER] = fwd;
    tl_prop own = {TL_STR("$geo_region"), TL_PV_STR, 0, TL_STR("x")};
    r.props = &own;
    r.n_props = 1;
    if (!tl_enrich_record(g_e, &g_cfg.projects[0], ar, &r, NULL)) {
        for (uint32_t i = 1; i < r.n_props; i++)
            if (tl_str_cmp(r.props[i - 1].key, r.props[i].key) >= 0) abort();
    }
    tl_arena_free(ar);
    return 0;
}
