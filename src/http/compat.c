/* SDK-compatible ingestion routes: the endpoints of Segment, PostHog, Snowplow, Plausible and
 * GA4, so an existing SDK only changes its host. The parsing lives in compat.h (pure); this
 * file finds the project, stores through tl_http_store_batch and answers what each SDK
 * expects:
 *
 *   Segment   POST /v1/{track,identify,page,screen,alias,group,batch,import}
 *             key: Basic auth user, Bearer, body writeKey, ?key=  → 200 {"success":true,…}
 *   PostHog   GET|POST /i/v0/e/ /e/ /capture/ /batch/ /track/ /engage/
 *             key: body api_key|token|$token|properties.token, ?token=, ?api_key=, Bearer
 *             (phx_ personal keys refused)                        → 200 {"status":1}
 *             GET|POST /decide/ /flags/ and /array/<token>/config: an empty valid config
 *   Snowplow  POST /com.snowplowanalytics.snowplow/tp2 → 200 "ok"; GET /i → a 1×1 GIF
 *             key: ?key=, Bearer, else the first event's aid
 *   Plausible POST /api/event → 202 "ok"
 *             key: ?key=, Bearer, else each name of the "domain" list as a write key or a
 *             project name (the event is stored once in each project named)
 *   GA4       POST /mp/collect → 204; POST /debug/mp/collect → 200 {"validationMessages"}
 *             (validated, not stored); key: ?api_secret=, ?key=, Bearer
 * Every answer carries permissive CORS headers (browser SDKs post cross-origin) and OPTIONS
 * preflights on these paths get 204. Errors: 400 unreadable body, 401 bad key, 405, 413,
 * 503 storage (with Retry-After), as /collect. Rejected events are counted in /metrics. */
#include "compat.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "http/http_int.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/time.h"

static const unsigned char g_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

static void add_cors(struct MHD_Connection *c, struct MHD_Response *r)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin && *origin) {
        /* Echoed, so requests with credentials (posthog-js, sendBeacon) are allowed too. */
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
        MHD_add_response_header(r, "Vary", "Origin");
    } else {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    }
}

/* Queues a response of len bytes at p (copied), with CORS; counts errors as send_buf does. */
static enum MHD_Result reply_raw(tl_http *h, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, const void *p, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)p, MHD_RESPMEM_MUST_COPY);
    if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == 503 || status == 429) MHD_add_response_header(r, "Retry-After", "5");
    add_cors(c, r);
    if (status >= 500)
        atomic_fetch_add(&h->errors_5xx, 1);
    else if (status >= 400)
        atomic_fetch_add(&h->errors_4xx, 1);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_buf(tl_http *h, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, tl_buf *b)
{
    enum MHD_Result ret = reply_raw(h, c, status, ctype, b->p ? b->p : "", b->len);
    tl_buf_fini(b);
    return ret;
}

static enum MHD_Result reply_error(tl_http *h, struct MHD_Connection *c, unsigned status,
                                   const char *msg)
{
    tl_buf b = TL_BUF_INIT;
    tl_buf_adds(&b, "{\"error\":");
    tl_buf_json_str(&b, tl_str_c(msg));
    tl_buf_adds(&b, "}\n");
    return reply_buf(h, c, status, "application/json", &b);
}

static enum MHD_Result preflight(tl_http *h, struct MHD_Connection *c)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    add_cors(c, r);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    const char *rh =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            rh && *rh ? rh
                                      : "Content-Type, Content-Encoding, Authorization, "
                                        "X-Retry-Count");
    MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
    enum MHD_Result ret = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* Request details */

/* The user of "Authorization: Basic base64(user:password)". */
static tl_str basic_user(tl_arena *a, struct MHD_Connection *c)
{
    tl_str au = tl_http_header(c, "Authorization");
    if (au.len < 7 || strncasecmp(au.p, "Basic ", 6)) return TL_STR_NULL;
    tl_str dec;
    if (tl_compat_base64_decode(a, (tl_str){au.p + 6, au.len - 6}, &dec) < 0) return TL_STR_NULL;
    const char *colon = memchr(dec.p, ':', dec.len);
    if (colon) dec.len = (size_t)(colon - dec.p);
    return dec;
}

/* A Plausible domain names a project: "example.com" is the project example.com, example_com
 * or example-com (project names cannot hold dots). */
static bool domain_is_project(tl_str d, const char *name)
{
    size_t n = strlen(name);
    if (d.len != n) return false;
    for (size_t i = 0; i < n; i++) {
        char x = d.p[i], y = name[i];
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y && !(x == '.' && (y == '_' || y == '-'))) return false;
    }
    return true;
}

static tl_str first_of(tl_str a, tl_str b)
{
    return a.len ? a : b;
}

/* ---------------------------------------------------------------------------------------- */
/* PostHog start-up configuration */

static const char g_ph_config[] =
    "{\"config\":{\"enable_collect_everything\":true},\"featureFlags\":{},"
    "\"featureFlagPayloads\":{},\"flags\":{},\"errorsWhileComputingFlags\":false,"
    "\"quotaLimited\":[],\"sessionRecording\":false,\"supportedCompression\":[\"gzip\","
    "\"gzip-js\"],\"autocapture_opt_out\":false,\"autocaptureExceptions\":false,"
    "\"capturePerformance\":false,\"heatmaps\":false,\"surveys\":false,"
    "\"defaultIdentifiedOnly\":true,\"elementsChainAsString\":true,\"siteApps\":[],"
    "\"toolbarParams\":{},\"isAuthenticated\":false,\"hasFeatureFlags\":false,"
    "\"requestId\":\"00000000-0000-0000-0000-000000000000\"}";

static bool posthog_config(tl_http *h, struct MHD_Connection *c, const char *url,
                           enum MHD_Result *ret)
{
    tl_str u = tl_str_c(url);
    if (u.len > 1 && u.p[u.len - 1] == '/') u.len--;
    bool cfg = tl_str_eqc(u, "/decide") || tl_str_eqc(u, "/flags");
    bool js = false;
    if (!cfg && tl_str_has_prefix(u, "/array/")) {
        js = u.len > 17 && !memcmp(u.p + u.len - 10, "/config.js", 10);
        cfg = js || (u.len > 14 && !memcmp(u.p + u.len - 7, "/config", 7));
    }
    if (!cfg) return false;
    if (js) {
        /* posthog-js reads window._POSTHOG_REMOTE_CONFIG[token].config and .siteApps. */
        tl_str token = {u.p + 7, u.len - 7 - 10};
        tl_buf b = TL_BUF_INIT;
        tl_buf_adds(&b, "(function(){var c=window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_"
                        "CONFIG||{};c[");
        tl_buf_json_str(&b, token);
        tl_buf_adds(&b, "]={config:");
        tl_buf_add(&b, g_ph_config, sizeof g_ph_config - 1);
        tl_buf_adds(&b, ",siteApps:[]};})();\n");
        *ret = reply_buf(h, c, 200, "application/javascript", &b);
    } else {
        *ret = reply_raw(h, c, 200, "application/json", g_ph_config, sizeof g_ph_config - 1);
    }
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Segment analytics.js settings: GET /v1/projects/<write key>/settings. analytics-next loads
 * them from its cdnURL and sends to integrations["Segment.io"].apiHost; pointing both at tally
 * is all it needs. apiHost is this server as the request named it (Host), protocol that of
 * X-Forwarded-Proto (a TLS proxy in front) or http. */

static bool segment_settings(tl_http *h, struct MHD_Connection *c, const char *url,
                             enum MHD_Result *ret)
{
    static const char pre[] = "/v1/projects/", suf[] = "/settings";
    tl_str u = tl_str_c(url);
    size_t np = sizeof pre - 1, ns = sizeof suf - 1;
    if (u.len <= np + ns || !tl_str_has_prefix(u, pre) || memcmp(u.p + u.len - ns, suf, ns))
        return false;
    tl_str key = {u.p + np, u.len - np - ns};
    if (!tl_http_project_by_write_key(h->cfg, key)) {
        *ret = reply_error(h, c, 404, "unknown write key");
        return true;
    }
    tl_str host = tl_http_header(c, "Host"), proto = tl_http_header(c, "X-Forwarded-Proto");
    tl_buf b = TL_BUF_INIT;
    tl_buf_adds(&b, "{\"integrations\":{\"Segment.io\":{\"apiKey\":");
    tl_buf_json_str(&b, key);
    tl_buf api = TL_BUF_INIT;
    tl_buf_addstr(&api, host.len ? host : TL_STR("localhost"));
    tl_buf_adds(&api, "/v1");
    tl_buf_adds(&b, ",\"apiHost\":");
    tl_buf_json_str(&b, tl_buf_str(&api));
    tl_buf_fini(&api);
    tl_buf_adds(&b, ",\"protocol\":");
    tl_buf_json_str(&b, tl_str_eqc(proto, "https") ? TL_STR("https") : TL_STR("http"));
    tl_buf_adds(&b, ",\"addBundledMetadata\":true,\"unbundledIntegrations\":[],"
                    "\"maybeBundledConfigIds\":{}}},\"plan\":{\"track\":{\"__default\":{"
                    "\"enabled\":true,\"integrations\":{}}},\"identify\":{\"__default\":{"
                    "\"enabled\":true}},\"group\":{\"__default\":{\"enabled\":true}}},"
                    "\"edgeFunction\":{},\"analyticsNextEnabled\":true,\"middlewareSettings\":{},"
                    "\"enabledMiddleware\":{},\"metrics\":{\"sampleRate\":0},"
                    "\"legacyVideoPluginsEnabled\":false,\"remotePlugins\":[]}\n");
    *ret = reply_buf(h, c, 200, "application/json", &b);
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Ingestion */

static enum MHD_Result answer(tl_http *h, struct MHD_Connection *c, tl_compat_fmt f, bool debug,
                              bool get, const tl_ingest_batch *b, uint32_t dups)
{
    switch (f) {
    case TL_COMPAT_POSTHOG: return reply_raw(h, c, 200, "application/json", "{\"status\":1}", 12);
    case TL_COMPAT_SNOWPLOW:
        if (get) return reply_raw(h, c, 200, "image/gif", g_gif, sizeof g_gif);
        return reply_raw(h, c, 200, "text/plain", "ok", 2);
    case TL_COMPAT_PLAUSIBLE: return reply_raw(h, c, 202, "text/plain", "ok", 2);
    case TL_COMPAT_GA4:
        if (!debug) return reply_raw(h, c, 204, NULL, "", 0);
        break;
    default: break;
    }
    tl_buf o = TL_BUF_INIT;
    if (f == TL_COMPAT_GA4) {
        tl_buf_adds(&o, "{\"validationMessages\":[");
        for (uint32_t i = 0; i < b->n_errors; i++) {
            tl_buf_printf(&o, "%s{\"fieldPath\":\"events[%u]\",\"description\":", i ? "," : "",
                          b->errors[i].index);
            tl_buf_json_str(&o, tl_str_c(b->errors[i].msg));
            tl_buf_adds(&o, ",\"validationCode\":\"VALUE_INVALID\"}");
        }
        tl_buf_adds(&o, "]}\n");
        return reply_buf(h, c, 200, "application/json", &o);
    }
    tl_buf_printf(&o,
                  "{\"success\":true,\"accepted\":%u,\"duplicates\":%u,\"rejected\":%u,"
                  "\"errors\":[",
                  b->n - dups, dups, b->rejected);
    for (uint32_t i = 0; i < b->n_errors; i++) {
        tl_buf_printf(&o, "%s{\"index\":%u,\"error\":", i ? "," : "", b->errors[i].index);
        tl_buf_json_str(&o, tl_str_c(b->errors[i].msg));
        tl_buf_addc(&o, '}');
    }
    tl_buf_adds(&o, "]}\n");
    return reply_buf(h, c, 200, "application/json", &o);
}

#define MAX_PROJECTS 16 /* Plausible: projects one event may go to */

static enum MHD_Result ingest(tl_http *h, struct MHD_Connection *c, tl_http_req *rq,
                              tl_compat_fmt f, const char *url, bool get)
{
    tl_arena *a = tl_arena_new();
    enum MHD_Result ret;
    const tl_str *ak, *av;
    size_t an = tl_http_args(a, c, &ak, &av);
    char ip[64];
    tl_ingest_ctx ctx = tl_http_ingest_ctx(c, ip, sizeof ip);
    tl_compat_in in = {
        .path = tl_str_c(url),
        .body = tl_buf_str(&rq->body),
        .content_type = tl_http_header(c, "Content-Type"),
        .content_encoding = tl_http_header(c, "Content-Encoding"),
        .arg_k = ak,
        .arg_v = av,
        .n_args = an,
    };
    if (!in.body.p) in.body = TL_STR("");
    tl_err err = {0};
    tl_ingest_batch b;
    int rc = tl_compat_parse(f, a, &in, &ctx, &h->lim, &b, &err);
    bool debug = f == TL_COMPAT_GA4 && tl_str_has_prefix(in.path, "/debug/");

    /* The project(s). */
    const tl_project_conf *ps[MAX_PROJECTS];
    size_t np = 0;
    tl_str key = tl_http_arg(c, "key");
    if (f == TL_COMPAT_GA4) key = first_of(tl_http_arg(c, "api_secret"), key);
    if (f == TL_COMPAT_SEGMENT) key = first_of(basic_user(a, c), key);
    if (f == TL_COMPAT_POSTHOG)
        key = first_of(key, first_of(tl_http_arg(c, "token"), tl_http_arg(c, "api_key")));
    key = first_of(key, tl_http_bearer(c));
    if (!key.len && !rc) key = b.body_key;
    if (f == TL_COMPAT_POSTHOG && tl_str_has_prefix(key, "phx_")) {
        ret = reply_error(h, c, 401, "a personal API key (phx_) cannot send events");
        goto done;
    }
    if (f == TL_COMPAT_PLAUSIBLE && key.len && key.p == b.body_key.p) {
        /* The domain list: each name as a write key, else as a project name. */
        const char *p = key.p, *end = key.p + key.len;
        while (p < end && np < MAX_PROJECTS) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            tl_str d = {p, (size_t)(stop - p)};
            while (d.len && d.p[0] == ' ') {
                d.p++;
                d.len--;
            }
            while (d.len && d.p[d.len - 1] == ' ')
                d.len--;
            const tl_project_conf *pc = tl_http_project_by_write_key(h->cfg, d);
            for (uint32_t i = 0; !pc && d.len && i < h->cfg->n_projects; i++)
                if (domain_is_project(d, h->cfg->projects[i].name)) pc = &h->cfg->projects[i];
            bool seen = false;
            for (size_t i = 0; i < np; i++)
                seen |= ps[i] == pc;
            if (pc && !seen) ps[np++] = pc;
            p = stop + 1;
        }
    } else {
        const tl_project_conf *pc = tl_http_project_by_write_key(h->cfg, key);
        if (pc) ps[np++] = pc;
    }
    if (!np) {
        ret = reply_error(h, c, 401,
                          key.len ? (f == TL_COMPAT_PLAUSIBLE ? "unknown domain or write key"
                                                              : "unknown write key")
                                  : "missing write key");
        goto done;
    }
    if (rc) {
        ret = reply_error(h, c, rc == TL_E2BIG ? 413 : 400, err.msg);
        goto done;
    }
    atomic_fetch_add(&h->events_rejected, b.rejected);
    uint32_t dups = 0;
    if (!debug) {
        for (size_t i = 0; i < np; i++) {
            uint32_t d = 0;
            if (f == TL_COMPAT_PLAUSIBLE) {
                /* The visitor hash is salted with the project's secret: parse again for each
                 * project (one small event) with its read key as the salt. */
                in.salt = tl_str_c(ps[i]->read_key);
                if (tl_compat_parse(f, a, &in, &ctx, &h->lim, &b, &err)) continue;
            }
            rc = tl_http_store_batch(h, a, ps[i], &b, &d);
            if (rc) {
                ret = rc == TL_E2BIG ? reply_error(h, c, 413, "batch too large for the log")
                                     : reply_error(h, c, 503, "storage unavailable; retry later");
                goto done;
            }
            atomic_fetch_add(&h->events_accepted, b.n - d);
            atomic_fetch_add(&h->events_duplicate, d);
            if (i == 0) dups = d;
        }
    }
    ret = answer(h, c, f, debug, get, &b, dups);
done:
    tl_arena_free(a);
    return ret;
}

bool tl_http_route_compat(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                          const char *method, enum MHD_Result *ret)
{
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    bool options = !strcmp(method, "OPTIONS");
    int f = tl_compat_by_path(tl_str_c(url));
    if (f < 0) {
        tl_str u = tl_str_c(url);
        if (tl_str_has_prefix(u, "/v1/projects/")) {
            if (options) {
                *ret = preflight(h, c);
                return true;
            }
            return get && segment_settings(h, c, url, ret);
        }
        bool ph = tl_str_has_prefix(u, "/decide") || tl_str_has_prefix(u, "/flags") ||
                  tl_str_has_prefix(u, "/array/");
        if (!ph) return false;
        if (options) {
            *ret = preflight(h, c);
            return true;
        }
        if (!get && !post) return false;
        return posthog_config(h, c, url, ret);
    }
    if (options) {
        *ret = preflight(h, c);
        return true;
    }
    bool ok = post || (get && (f == TL_COMPAT_POSTHOG || f == TL_COMPAT_SNOWPLOW));
    if (f == TL_COMPAT_SNOWPLOW && !strcmp(url, "/i")) ok = get || post;
    if (!ok) {
        *ret = reply_error(h, c, 405,
                           f == TL_COMPAT_POSTHOG || f == TL_COMPAT_SNOWPLOW ? "use GET or POST"
                                                                             : "use POST");
        return true;
    }
    *ret = ingest(h, c, rq, (tl_compat_fmt)f, url, get);
    return true;
}
