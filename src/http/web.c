/* The dashboard: its static assets, compiled into the binary (web.h, generated from web/ by
 * mk/web.mk), and the small per-project store of saved dashboards it needs on the server.
 *
 * Routes (asked last, after every API and ingest route, so it never shadows one):
 *   GET /, /signin, /overview, /realtime, /trends, /funnels, /retention, /sessions, /paths,
 *       /persons[/ID], /dashboards          the single-page app: index.html, no-cache + ETag
 *   GET /assets/NAME-HASH.EXT               hashed assets: immutable, max-age one year;
 *                                           404 for a name not in the table
 *   GET /api/v1/project[?project=P]         {"name","timezone"} of the read key's project
 *                                           (sign-in; charts state the zone they count in)
 *   GET /api/v1/dashboards?project=P        the project's saved dashboards (read key);
 *                                           {"dashboards":[]} before the first save
 *   PUT /api/v1/dashboards?project=P        replaces them with the body, a JSON object
 *                                           (read key); kept as DATA/dashboards/P.json,
 *                                           written atomically (tmp, fsync, rename)
 * Every page and asset carries a strict Content-Security-Policy (same origin only, no inline
 * script or style), nosniff, no framing and no referrer; gzip is served to clients that
 * accept it (the build stores both forms). */
#include "http/web.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>

#include "http/http_int.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/io.h"
#include "util/json.h"

#define CSP                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"

/* Saved dashboards are small: a list of tiles, each a query and a title. */
#define DASHBOARDS_MAX_BYTES (1u << 20)

static pthread_mutex_t g_store_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const g_spa_routes[] = {"/",       "/signin",  "/overview",  "/realtime",
                                           "/trends", "/funnels", "/retention", "/sessions",
                                           "/paths",  "/persons", "/dashboards"};

static bool is_spa_route(const char *url)
{
    for (size_t i = 0; i < sizeof g_spa_routes / sizeof g_spa_routes[0]; i++)
        if (!strcmp(url, g_spa_routes[i])) return true;
    /* A person's page: /persons/<distinct id> (one segment). */
    return !strncmp(url, "/persons/", 9) && url[9] && !strchr(url + 9, '/');
}

static const tl_web_asset *find_asset(const char *path)
{
    for (size_t i = 0; i < tl_web_n_assets; i++)
        if (!strcmp(tl_web_assets[i].path, path)) return &tl_web_assets[i];
    return NULL;
}

static void add_security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static bool accepts_gzip(struct MHD_Connection *c)
{
    tl_str ae = tl_http_header(c, "Accept-Encoding");
    for (size_t i = 0; ae.len >= 4 && i + 4 <= ae.len; i++)
        if (!strncasecmp(ae.p + i, "gzip", 4)) return true;
    return false;
}

/* True when If-None-Match names etag (or is "*"). */
static bool etag_matches(struct MHD_Connection *c, const char *etag)
{
    tl_str inm = tl_http_header(c, "If-None-Match");
    if (!inm.len) return false;
    if (inm.len == 1 && inm.p[0] == '*') return true;
    size_t el = strlen(etag);
    for (size_t i = 0; i + el <= inm.len; i++)
        if (!memcmp(inm.p + i, etag, el)) return true;
    return false;
}

static enum MHD_Result send_asset(struct MHD_Connection *c, const tl_web_asset *a)
{
    bool fresh = etag_matches(c, a->etag);
    bool gz = !fresh && a->gz && accepts_gzip(c);
    struct MHD_Response *r = fresh
                                 ? MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)
                                 : MHD_create_response_from_buffer(gz ? a->gz_len : a->len,
                                                                   (void *)(gz ? a->gz : a->data),
                                                                   MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", a->ctype);
    MHD_add_response_header(r, "Cache-Control",
                            a->immutable ? "public, max-age=31536000, immutable" : "no-cache");
    MHD_add_response_header(r, "ETag", a->etag);
    if (a->gz) MHD_add_response_header(r, "Vary", "Accept-Encoding");
    if (gz) MHD_add_response_header(r, "Content-Encoding", "gzip");
    add_security_headers(r);
    enum MHD_Result ret = MHD_queue_response(c, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* DATA/dashboards/<project>.json; bytes outside [A-Za-z0-9._-] are written as %XX so any
 * project name gives one plain file name. Returns 0 or TL_E2BIG. */
static int store_path(const tl_http *h, const char *project, char *dir, size_t dir_cap, char *out,
                      size_t cap)
{
    tl_buf n = TL_BUF_INIT;
    for (const unsigned char *p = (const unsigned char *)project; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                     (*p == '.' && p != (const unsigned char *)project);
        if (plain)
            tl_buf_addc(&n, (char)*p);
        else
            tl_buf_printf(&n, "%%%02X", *p);
    }
    int dl = snprintf(dir, dir_cap, "%s/dashboards", h->cfg->data_dir);
    int pl = snprintf(out, cap, "%s/%s.json", dir, tl_buf_cstr(&n));
    tl_buf_fini(&n);
    return (dl < 0 || (size_t)dl >= dir_cap || pl < 0 || (size_t)pl >= cap) ? TL_E2BIG : 0;
}

static enum MHD_Result handle_dashboards(tl_http *h, struct MHD_Connection *c, tl_http_req *rq,
                                         const char *method)
{
    enum MHD_Result ret;
    bool get = !strcmp(method, "GET"), put = !strcmp(method, "PUT");
    if (!get && !put) return tl_http_send_error(h, c, 405, "use GET or PUT");
    const tl_project_conf *p = tl_http_read_auth(h, c, &ret);
    if (!p) return ret;
    char dir[2048], path[4096];
    if (store_path(h, p->name, dir, sizeof dir, path, sizeof path))
        return tl_http_send_error(h, c, 500, "data_dir: path too long");
    tl_buf b = TL_BUF_INIT;
    if (get) {
        pthread_mutex_lock(&g_store_lock);
        int rc = tl_read_file(path, &b);
        pthread_mutex_unlock(&g_store_lock);
        if (rc == TL_ENOENT) {
            tl_buf_fini(&b);
            tl_buf_adds(&b, "{\"dashboards\":[]}\n");
        } else if (rc) {
            tl_buf_fini(&b);
            return tl_http_send_error(h, c, 503, "dashboards: cannot read the saved file");
        }
        return tl_http_send_buf(h, c, 200, "application/json", &b);
    }
    if (rq->body.len > DASHBOARDS_MAX_BYTES)
        return tl_http_send_error(h, c, 413, "body: dashboards larger than 1 MiB");
    tl_arena *a = tl_arena_new();
    tl_json *doc = NULL;
    tl_err err = {0};
    tl_json_opts opts = {.max_depth = 32, .max_nodes = 100000};
    int rc = tl_json_parse(a, rq->body.p ? rq->body.p : "", rq->body.len, &opts, &doc, &err);
    if (rc || doc->type != TL_JOBJ) {
        tl_arena_free(a);
        return tl_http_send_error(h, c, 400, rc ? "body: not JSON" : "body: not a JSON object");
    }
    tl_json_write(&b, doc);
    tl_buf_addc(&b, '\n');
    tl_arena_free(a);
    pthread_mutex_lock(&g_store_lock);
    rc = tl_mkdir_p(dir);
    if (!rc) rc = tl_write_file_atomic(path, b.p, b.len);
    pthread_mutex_unlock(&g_store_lock);
    tl_buf_fini(&b);
    if (rc) return tl_http_send_error(h, c, 503, "dashboards: cannot write the file");
    tl_buf_adds(&b, "{\"saved\":true}\n");
    return tl_http_send_buf(h, c, 200, "application/json", &b);
}

static enum MHD_Result handle_project(tl_http *h, struct MHD_Connection *c, const char *method)
{
    enum MHD_Result ret;
    if (strcmp(method, "GET")) return tl_http_send_error(h, c, 405, "use GET");
    const tl_project_conf *p = tl_http_read_auth(h, c, &ret);
    if (!p) return ret;
    tl_buf b = TL_BUF_INIT;
    tl_buf_adds(&b, "{\"name\":");
    tl_buf_json_str(&b, tl_str_c(p->name));
    tl_buf_adds(&b, ",\"timezone\":");
    tl_buf_json_str(&b, tl_str_c(p->timezone[0] ? p->timezone : "UTC"));
    tl_buf_adds(&b, "}\n");
    return tl_http_send_buf(h, c, 200, "application/json", &b);
}

bool tl_http_route_web(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                       const char *method, enum MHD_Result *ret)
{
    if (!strcmp(url, "/api/v1/project")) {
        *ret = handle_project(h, c, method);
        return true;
    }
    if (!strcmp(url, "/api/v1/dashboards")) {
        *ret = handle_dashboards(h, c, rq, method);
        return true;
    }
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!get) return false;
    const tl_web_asset *a = NULL;
    if (is_spa_route(url)) {
        a = find_asset("/index.html");
    } else if (!strncmp(url, "/assets/", 8)) {
        a = find_asset(url);
        if (!a) {
            *ret = tl_http_send_error(h, c, 404, "no such asset");
            return true;
        }
    }
    if (!a) return false;
    *ret = send_asset(c, a);
    return true;
}
