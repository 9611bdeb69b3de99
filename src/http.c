/* The HTTP server on libmicrohttpd, one thread per connection (a handler may block until its
 * events are durable; group commit in the log turns many waiting requests into one fsync).
 *
 * Routes:
 *   POST /collect              native events (ingest.h); 200 only once durable
 *   GET  /collect.gif          pixel: one event from the query string; a 1×1 GIF
 *   POST /api/v1/query         queries (query.h), read key
 *   DELETE /api/v1/persons/ID  erase a person (read key)
 *   GET  /healthz, /metrics    liveness and Prometheus counters
 * and then the routers of src/http/ (http_int.h): SDK-compatible ingestion, person
 * timelines and realtime, the dashboard.
 * Status codes: 400 unparseable or invalid (with the reason), 401 bad key, 404, 405, 413 body
 * too large, 503 storage failed (sticky) with Retry-After. */
#include "http.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include "enrich.h"
#include "http/http_int.h"
#include "ingest.h"
#include "query.h"
#include "record.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/time.h"

static const unsigned char g_gif[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

enum MHD_Result tl_http_send_buf(tl_http *h, struct MHD_Connection *c, unsigned status,
                                 const char *ctype, tl_buf *b)
{
    size_t len;
    char *p = tl_buf_steal(b, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "Retry-After");
    if (status == 503 || status == 429) MHD_add_response_header(r, "Retry-After", "5");
    if (status >= 500)
        atomic_fetch_add(&h->errors_5xx, 1);
    else if (status >= 400)
        atomic_fetch_add(&h->errors_4xx, 1);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result tl_http_send_error(tl_http *h, struct MHD_Connection *c, unsigned status,
                                   const char *msg)
{
    tl_buf b = TL_BUF_INIT;
    tl_buf_adds(&b, "{\"error\":");
    tl_buf_json_str(&b, tl_str_c(msg));
    tl_buf_adds(&b, "}\n");
    return tl_http_send_buf(h, c, status, "application/json", &b);
}

tl_str tl_http_header(struct MHD_Connection *c, const char *name)
{
    return tl_str_c(MHD_lookup_connection_value(c, MHD_HEADER_KIND, name));
}

tl_str tl_http_bearer(struct MHD_Connection *c)
{
    tl_str a = tl_http_header(c, "Authorization");
    if (a.len > 7 && !strncasecmp(a.p, "Bearer ", 7)) return (tl_str){a.p + 7, a.len - 7};
    return TL_STR_NULL;
}

const tl_project_conf *tl_http_project_by_write_key(const tl_config *cfg, tl_str key)
{
    for (uint32_t i = 0; key.len && i < cfg->n_projects; i++)
        if (tl_str_eqc(key, cfg->projects[i].write_key)) return &cfg->projects[i];
    return NULL;
}

const tl_project_conf *tl_http_project_by_read_key(const tl_config *cfg, tl_str key)
{
    for (uint32_t i = 0; key.len && i < cfg->n_projects; i++)
        if (tl_str_eqc(key, cfg->projects[i].read_key)) return &cfg->projects[i];
    return NULL;
}

void tl_http_client_ip(struct MHD_Connection *c, char *out, size_t cap)
{
    out[0] = 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
}

tl_str tl_http_arg(struct MHD_Connection *c, const char *name)
{
    return tl_str_c(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name));
}

const tl_project_conf *tl_http_read_auth(tl_http *h, struct MHD_Connection *c, enum MHD_Result *ret)
{
    tl_str key = tl_http_bearer(c);
    const tl_project_conf *p = tl_http_project_by_read_key(h->cfg, key);
    if (!p) {
        *ret = tl_http_send_error(h, c, 401, key.len ? "unknown read key" : "missing read key");
        return NULL;
    }
    tl_str pn = tl_http_arg(c, "project");
    if (pn.len && !tl_str_eqc(pn, p->name)) {
        *ret = tl_http_send_error(h, c, 401, "project: the read key is not this project's");
        return NULL;
    }
    return p;
}

tl_ingest_ctx tl_http_ingest_ctx(struct MHD_Connection *c, char *ip, size_t cap)
{
    char peer[64];
    tl_http_client_ip(c, peer, sizeof peer);
    /* The socket context is the server (on_connection): its trusted proxies decide. */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const tl_http *h = ci ? ci->socket_context : NULL;
    tl_enrich_client_ip(h ? h->enrich : NULL, peer, tl_http_header(c, "Forwarded"),
                        tl_http_header(c, "X-Forwarded-For"), ip, cap);
    return (tl_ingest_ctx){tl_now_ms(), tl_str_c(ip), tl_http_header(c, "User-Agent")};
}

enum MHD_Result tl_http_reply_store_error(tl_http *h, struct MHD_Connection *c, int rc)
{
    TL_WARN("http", "ingest refused: %s", tl_strerror(rc));
    if (rc == TL_E2BIG) return tl_http_send_error(h, c, 413, "batch too large for the log");
    return tl_http_send_error(h, c, 503, "storage unavailable; retry later");
}

int tl_http_store_batch(tl_http *h, tl_arena *a, const tl_project_conf *p, tl_ingest_batch *b,
                        uint32_t *dups)
{
    tl_str pname = tl_str_c(p->name);
    /* In-batch duplicates: a small hash set of dedup keys (the project is the batch's). */
    uint32_t cap = 16;
    while (cap < b->n * 2)
        cap *= 2;
    uint64_t *seen = tl_arena_calloc(a, cap * sizeof *seen);
    bool *stored = tl_arena_calloc(a, (b->n + 1) * sizeof *stored);
    /* Candidates: kept by enrichment and not repeated earlier in the batch; their keys are
     * then looked up in the indexer's sets all at once. */
    tl_h128 *keys = tl_arena_alloc(a, (b->n + 1) * sizeof *keys);
    uint32_t *cand = tl_arena_alloc(a, (b->n + 1) * sizeof *cand);
    bool *known = tl_arena_alloc(a, (b->n + 1) * sizeof *known);
    uint32_t nc = 0;
    tl_enrich_memo memo = {0}; /* the events of one request mostly share IP and user agent */
    *dups = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        tl_record *r = &b->recs[i];
        r->project = pname;
        if (tl_enrich_record(h->enrich, p, a, r, &memo)) continue; /* filtered: not stored */
        if (!r->event_id.len) { /* never a repeat (the indexer does not dedup it either) */
            stored[i] = true;
            continue;
        }
        tl_h128 key = tl_index_key(pname, r->event_id);
        uint64_t hv = key.hi | 1;
        uint32_t k = (uint32_t)hv & (cap - 1);
        bool dup = false;
        while (seen[k]) {
            if (seen[k] == hv) {
                /* Same hash: compare the ids of the earlier records to be exact. */
                for (uint32_t j = 0; j < i && !dup; j++)
                    dup = stored[j] && tl_str_eq(b->recs[j].event_id, r->event_id);
                if (dup) break;
            }
            k = (k + 1) & (cap - 1);
        }
        if (dup) {
            (*dups)++;
            continue;
        }
        seen[k] = hv;
        stored[i] = true; /* for now: the sets below may still find it */
        keys[nc] = key;
        cand[nc++] = i;
    }
    tl_index_seen_keys(h->ix, keys, nc, known);
    uint32_t na = 0; /* keys[0 .. na): the stored ones, for tl_index_admit */
    for (uint32_t j = 0; j < nc; j++) {
        if (known[j]) {
            stored[cand[j]] = false;
            (*dups)++;
        } else {
            keys[na++] = keys[j];
        }
    }
    tl_buf enc = TL_BUF_INIT;
    tl_buf_reserve(&enc, (size_t)b->n * 256 + 256); /* about a record's size: few regrowths */
    tl_str *recs;
    size_t n = tl_ingest_encode(a, b, pname, stored, &enc, &recs);
    uint64_t end = 0;
    int rc = n ? tl_log_append(h->log, recs, n, &end) : 0;
    /* Durable: answer now, without waiting for the indexer. The pending set lets a client's
     * next request see these ids, so its repeats are answered as duplicates; queries wait
     * for the indexer to reach the durable end themselves. The count is exact either way
     * (the indexer drops repeats); for repeats in flight in another request at the same
     * moment the reply stays best-effort. */
    if (!rc && n) tl_index_admit(h->ix, keys, na, end);
    tl_buf_fini(&enc);
    if (!rc && n) {
        /* Feed the realtime counters with the records just stored (not the repeats): the
         * batch itself when that is all of it, the usual case. */
        tl_record *kept = b->recs;
        size_t k = n;
        if (n < b->n) {
            kept = tl_arena_alloc(a, n * sizeof *kept);
            k = 0;
            for (uint32_t i = 0; i < b->n && k < n; i++)
                if (stored[i]) kept[k++] = b->recs[i];
        }
        tl_realtime_feed(h->rt, (uint32_t)(p - h->cfg->projects), kept, (uint32_t)k, tl_now_ms());
    }
    return rc;
}

enum MHD_Result tl_http_reply_ingest(tl_http *h, struct MHD_Connection *c, tl_ingest_batch *b,
                                     uint32_t dups)
{
    atomic_fetch_add(&h->events_accepted, b->n - dups);
    atomic_fetch_add(&h->events_duplicate, dups);
    atomic_fetch_add(&h->events_rejected, b->rejected);
    tl_buf o = TL_BUF_INIT;
    tl_buf_printf(&o, "{\"accepted\":%u,\"duplicates\":%u,\"rejected\":%u,\"errors\":[",
                  b->n - dups, dups, b->rejected);
    for (uint32_t i = 0; i < b->n_errors; i++) {
        tl_buf_printf(&o, "%s{\"index\":%u,\"error\":", i ? "," : "", b->errors[i].index);
        tl_buf_json_str(&o, tl_str_c(b->errors[i].msg));
        tl_buf_addc(&o, '}');
    }
    tl_buf_adds(&o, "]}\n");
    return tl_http_send_buf(h, c, 200, "application/json", &o);
}

static enum MHD_Result handle_collect(tl_http *h, struct MHD_Connection *c, tl_http_req *rq)
{
    tl_arena *a = tl_arena_new();
    tl_err err = {0};
    enum MHD_Result ret;
    char ip[64];
    tl_ingest_ctx ctx = tl_http_ingest_ctx(c, ip, sizeof ip);
    tl_str body;
    int rc = tl_ingest_decode_body(a, tl_buf_str(&rq->body), tl_http_header(c, "Content-Encoding"),
                                   h->lim.max_body_bytes, &body, &err);
    if (rc) {
        ret = tl_http_send_error(h, c, rc == TL_E2BIG ? 413 : 400, err.msg);
        goto done;
    }
    tl_ingest_batch b;
    rc = tl_ingest_native(a, body, tl_http_header(c, "Content-Type"), &ctx, &h->lim, &b, &err);
    tl_str key = tl_http_bearer(c);
    if (!key.len) key = tl_str_c(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key"));
    if (!key.len && !rc) key = b.body_key;
    const tl_project_conf *p = tl_http_project_by_write_key(h->cfg, key);
    if (!p) {
        ret = tl_http_send_error(h, c, 401, key.len ? "unknown write key" : "missing write key");
        goto done;
    }
    if (rc) {
        ret = tl_http_send_error(h, c, rc == TL_E2BIG ? 413 : 400, err.msg);
        goto done;
    }
    uint32_t dups;
    rc = tl_http_store_batch(h, a, p, &b, &dups);
    if (rc) {
        ret = tl_http_reply_store_error(h, c, rc);
        goto done;
    }
    ret = tl_http_reply_ingest(h, c, &b, dups);
done:
    tl_arena_free(a);
    return ret;
}

typedef struct kv_collect {
    tl_str *k, *v;
    size_t n, cap;
} kv_collect;

static enum MHD_Result kv_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    kv_collect *kc = cls;
    if (kc->n == kc->cap) return MHD_NO;
    kc->k[kc->n] = tl_str_c(key);
    kc->v[kc->n] = tl_str_c(value ? value : "");
    kc->n++;
    return MHD_YES;
}

size_t tl_http_args(tl_arena *a, struct MHD_Connection *c, const tl_str **k, const tl_str **v)
{
    kv_collect kc = {NULL, NULL, 0, TL_HTTP_MAX_ARGS};
    kc.k = tl_arena_alloc(a, kc.cap * sizeof *kc.k);
    kc.v = tl_arena_alloc(a, kc.cap * sizeof *kc.v);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, kv_iter, &kc);
    *k = kc.k;
    *v = kc.v;
    return kc.n;
}

static enum MHD_Result handle_pixel(tl_http *h, struct MHD_Connection *c)
{
    tl_arena *a = tl_arena_new();
    const tl_str *ak, *av;
    size_t an = tl_http_args(a, c, &ak, &av);
    char ip[64];
    tl_ingest_ctx ctx = tl_http_ingest_ctx(c, ip, sizeof ip);
    tl_str key = tl_str_c(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "key"));
    const tl_project_conf *p = tl_http_project_by_write_key(h->cfg, key);
    unsigned status = 200;
    const char *why = NULL;
    tl_err err = {0};
    tl_ingest_batch b = {0};
    tl_record r;
    if (!p) {
        status = 401;
        why = key.len ? "unknown write key" : "missing write key";
    } else if (tl_ingest_pixel(a, ak, av, an, &ctx, &h->lim, &r, &err)) {
        status = 400;
        why = err.msg;
    } else {
        b.recs = &r;
        b.n = b.n_input = 1;
        uint32_t dups;
        if (tl_http_store_batch(h, a, p, &b, &dups)) {
            status = 503;
            why = "storage unavailable; retry later";
        } else {
            atomic_fetch_add(&h->events_accepted, 1 - dups);
            atomic_fetch_add(&h->events_duplicate, dups);
        }
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof g_gif, (void *)g_gif, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", "image/gif");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (why) MHD_add_response_header(resp, "X-Tally-Error", why);
    if (status >= 400) atomic_fetch_add(&h->errors_4xx, status < 500);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    tl_arena_free(a);
    return ret;
}

static enum MHD_Result handle_query(tl_http *h, struct MHD_Connection *c, tl_http_req *rq)
{
    atomic_fetch_add(&h->queries, 1);
    const tl_project_conf *p = tl_http_project_by_read_key(h->cfg, tl_http_bearer(c));
    if (!p)
        return tl_http_send_error(h, c, 401,
                                  tl_http_bearer(c).len ? "unknown read key" : "missing read key");
    tl_arena *a = tl_arena_new();
    tl_err err = {0};
    tl_json *q;
    tl_json_opts jo = {32, 100000};
    enum MHD_Result ret;
    if (tl_json_parse(a, rq->body.p ? rq->body.p : "", rq->body.len, &jo, &q, &err)) {
        ret = tl_http_send_error(h, c, 400, err.msg);
        goto done;
    }
    if (q->type != TL_JOBJ) {
        ret = tl_http_send_error(h, c, 400, "query: expected a JSON object");
        goto done;
    }
    tl_str pn = tl_json_get_str(q, "project");
    if (pn.len && !tl_str_eqc(pn, p->name)) {
        ret = tl_http_send_error(h, c, 401, "project: the read key is not this project's");
        goto done;
    }
    /* Read your writes: everything acknowledged before this query is visible to it. */
    (void)tl_index_wait(h->ix, tl_log_durable_pos(h->log), 30000);
    tl_buf out = TL_BUF_INIT;
    int rc = tl_query_run(h->st, p, q, a, &out, &err);
    if (rc) {
        tl_buf_fini(&out);
        ret = tl_http_send_error(h, c, rc == TL_EINVAL ? 400 : 500,
                                 err.msg[0] ? err.msg : tl_strerror(rc));
        goto done;
    }
    tl_buf_addc(&out, '\n');
    ret = tl_http_send_buf(h, c, 200, "application/json", &out);
done:
    tl_arena_free(a);
    return ret;
}

/* DELETE /api/v1/persons/<distinct_id>?project=P (read key): erases the person through the
 * log, so the erasure is durable and replayed like any event, then waits until it is applied:
 * every later answer excludes the person. */
static enum MHD_Result handle_erase(tl_http *h, struct MHD_Connection *c, const char *id)
{
    const tl_project_conf *p = tl_http_project_by_read_key(h->cfg, tl_http_bearer(c));
    if (!p)
        return tl_http_send_error(h, c, 401,
                                  tl_http_bearer(c).len ? "unknown read key" : "missing read key");
    const char *pn = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "project");
    if (pn && strcmp(pn, p->name))
        return tl_http_send_error(h, c, 401, "project: the read key is not this project's");
    size_t n = strlen(id);
    if (!n || n > 200 || !tl_utf8_valid(id, n))
        return tl_http_send_error(h, c, 400,
                                  "distinct_id: empty, longer than 200 bytes or not UTF-8");
    tl_record r = {0};
    r.kind = TL_REC_ERASE;
    r.ts_ms = r.recv_ms = tl_now_ms();
    r.project = tl_str_c(p->name);
    r.event = TL_STR("$erase");
    r.user_id = (tl_str){id, n};
    tl_buf enc = TL_BUF_INIT;
    tl_record_encode(&r, &enc);
    tl_str rec = tl_buf_str(&enc);
    uint64_t end;
    int rc = tl_log_append(h->log, &rec, 1, &end);
    tl_buf_fini(&enc);
    if (rc) return tl_http_send_error(h, c, 503, "storage unavailable; retry later");
    tl_log_expedite(h->log, end); /* the log keeps no copy for long (docs/lifecycle.md) */
    (void)tl_index_wait(h->ix, end, 10000);
    tl_buf o = TL_BUF_INIT;
    tl_buf_adds(&o, "{\"erased\":true,\"distinct_id\":");
    tl_buf_json_str(&o, r.user_id);
    tl_buf_adds(&o, "}\n");
    return tl_http_send_buf(h, c, 200, "application/json", &o);
}

static enum MHD_Result handle_metrics(tl_http *h, struct MHD_Connection *c)
{
    tl_buf o = TL_BUF_INIT;
    tl_log_stats ls = {0};
    tl_index_stats is = {0};
    tl_store_stats ss = {0};
    tl_log_get_stats(h->log, &ls);
    tl_index_get_stats(h->ix, &is);
    tl_store_get_stats(h->st, &ss);
#define M(name, type, help, v)                                                                     \
    tl_buf_printf(&o,                                                                              \
                  "# HELP tally_" name " " help "\n# TYPE tally_" name " " type "\ntally_" name    \
                  " %llu\n",                                                                       \
                  (unsigned long long)(v))
    M("http_requests_total", "counter", "HTTP requests", atomic_load(&h->requests));
    M("http_errors_4xx_total", "counter", "client errors", atomic_load(&h->errors_4xx));
    M("http_errors_5xx_total", "counter", "server errors", atomic_load(&h->errors_5xx));
    M("events_accepted_total", "counter", "events accepted", atomic_load(&h->events_accepted));
    M("events_rejected_total", "counter", "events rejected", atomic_load(&h->events_rejected));
    M("events_duplicate_total", "counter", "repeats recognised at ingest",
      atomic_load(&h->events_duplicate));
    uint64_t filt[TL_FILTER_COUNT];
    tl_enrich_filtered(h->enrich, filt);
    tl_buf_adds(&o, "# HELP tally_events_filtered_total events not stored: bots, headless "
                    "browsers, deny lists (answered as accepted)\n"
                    "# TYPE tally_events_filtered_total counter\n");
    for (int i = 1; i < TL_FILTER_COUNT; i++)
        tl_buf_printf(&o, "tally_events_filtered_total{reason=\"%s\"} %llu\n",
                      tl_enrich_reason_name(i), (unsigned long long)filt[i]);
    M("queries_total", "counter", "queries", atomic_load(&h->queries));
    M("log_appends_total", "counter", "log appends", ls.appends);
    M("log_records_total", "counter", "log records", ls.records);
    M("log_bytes_total", "counter", "log bytes", ls.bytes);
    M("log_fsyncs_total", "counter", "log fsyncs", ls.fsyncs);
    M("log_segments", "gauge", "log segments", ls.segments);
    M("log_failed", "gauge", "1 once a log write or fsync failed", tl_log_error(h->log) != 0);
    M("index_events_total", "counter", "events indexed", is.indexed);
    M("index_duplicates_total", "counter", "repeats dropped by the indexer", is.duplicates);
    M("identity_merges_refused_total", "counter", "merges of two identified users refused",
      is.merges_refused);
    M("index_checkpoints_total", "counter", "checkpoints", is.checkpoints);
    M("dedup_runs", "gauge", "run files of the dedup set", is.dedup_runs);
    M("dedup_keys", "gauge", "event ids in the dedup set", is.dedup_keys);
    M("dedup_memory_bytes", "gauge",
      "resident bytes of the dedup set (filters, page indexes, "
      "memtable)",
      is.dedup_mem_bytes);
    M("dedup_disk_bytes", "gauge", "bytes of the dedup set's files", is.dedup_disk_bytes);
    M("store_rows", "gauge", "stored event rows", ss.rows);
    M("store_parts", "gauge", "sealed parts", ss.parts);
    M("store_bytes", "gauge", "bytes of sealed parts", ss.bytes_on_disk);
    M("store_distinct_ids", "gauge", "distinct ids", ss.dids);
    M("identity_merges_total", "counter", "identity merges", ss.merges);
    M("store_cache_budget_bytes", "gauge", "column cache budget", ss.cache_budget);
    M("store_cache_bytes", "gauge", "decoded columns held by the cache", ss.cache_bytes);
    M("store_cache_hits_total", "counter", "column loads found in the cache", ss.cache_hits);
    M("store_cache_misses_total", "counter", "column loads decoded from part files",
      ss.cache_misses);
    M("store_cache_evictions_total", "counter", "columns freed to stay within the budget",
      ss.cache_evictions);
    M("store_projection_bytes", "gauge", "columns held in event order (projections)",
      ss.proj_bytes);
    M("store_projection_hits_total", "counter", "projections found built", ss.proj_hits);
    M("store_projection_misses_total", "counter", "projections built from columns", ss.proj_misses);
    M("store_rows_expired_total", "counter", "rows dropped by retention", ss.rows_expired);
    M("store_rows_erased_total", "counter", "rows removed from part files by erasures",
      ss.rows_erased);
    M("store_strings_scrubbed_total", "counter", "ids and strings scrubbed from dictionary files",
      ss.strings_scrubbed);
#undef M
    return tl_http_send_buf(h, c, 200, "text/plain; version=0.0.4", &o);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    tl_http *h = cls;
    tl_http_req *rq = *con_cls;
    if (!rq) {
        rq = tl_xcalloc(1, sizeof *rq);
        *con_cls = rq;
        atomic_fetch_add(&h->requests, 1);
        /* The body's whole size at once when it is announced (and allowed): no copying and
         * no fresh pages as the buffer doubles chunk by chunk. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
        if (want && want <= h->lim.max_body_bytes) tl_buf_reserve(&rq->body, (size_t)want);
        return MHD_YES;
    }
    if (*upload_size) {
        if (rq->body.len + *upload_size > h->lim.max_body_bytes)
            rq->too_big = true;
        else
            tl_buf_add(&rq->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    bool post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    if (rq->too_big) return tl_http_send_error(h, c, 413, "body: larger than max_body_bytes");
    if (!strcmp(url, "/collect") && strcmp(method, "OPTIONS")) {
        if (!post) return tl_http_send_error(h, c, 405, "use POST");
        return handle_collect(h, c, rq);
    }
    if (!strcmp(url, "/collect.gif")) return handle_pixel(h, c);
    if (!strcmp(url, "/api/v1/query")) {
        if (!post) return tl_http_send_error(h, c, 405, "use POST");
        return handle_query(h, c, rq);
    }
    if (!strncmp(url, "/api/v1/persons/", 16) && !strcmp(method, "DELETE"))
        return handle_erase(h, c, url + 16);
    if (!strcmp(url, "/healthz") && get) {
        tl_buf o = TL_BUF_INIT;
        bool ok = tl_log_error(h->log) == 0;
        tl_buf_adds(&o, ok ? "{\"status\":\"ok\"}\n" : "{\"status\":\"storage failed\"}\n");
        return tl_http_send_buf(h, c, ok ? 200 : 503, "application/json", &o);
    }
    if (!strcmp(url, "/metrics") && get) return handle_metrics(h, c);
    enum MHD_Result ret;
    if (tl_http_route_compat(h, c, rq, url, method, &ret)) return ret;
    if (tl_http_route_reads(h, c, rq, url, method, &ret)) return ret;
    if (tl_http_route_sdk(h, c, rq, url, method, &ret)) return ret;
    if (tl_http_route_web(h, c, rq, url, method, &ret)) return ret;
    return tl_http_send_error(h, c, 404, "no such endpoint");
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    tl_http_req *rq = *con_cls;
    if (rq) {
        tl_buf_fini(&rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

/* Every connection's socket context is the server, so helpers that get only the connection
 * (tl_http_ingest_ctx) reach its configuration. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) *socket_context = cls;
}

int tl_http_start(const tl_config *cfg, tl_log *log, tl_index *ix, tl_store *st, tl_http **out,
                  tl_err *err)
{
    char host[256];
    unsigned port;
    const char *colon = strrchr(cfg->listen, ':');
    if (!colon || colon == cfg->listen || (size_t)(colon - cfg->listen) >= sizeof host ||
        sscanf(colon + 1, "%u", &port) != 1 || port > 65535)
        return tl_err_set(err, TL_EINVAL, "listen: expected HOST:PORT, got '%s'", cfg->listen);
    memcpy(host, cfg->listen, (size_t)(colon - cfg->listen));
    host[colon - cfg->listen] = 0;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return tl_err_set(err, TL_EINVAL, "listen: '%s' is not an IPv4 address", host);
    tl_http *h = tl_xcalloc(1, sizeof *h);
    h->cfg = cfg;
    h->log = log;
    h->ix = ix;
    h->st = st;
    tl_ingest_limits_from_config(&h->lim, cfg);
    int erc = tl_enrich_new(cfg, &h->enrich, err);
    if (erc) {
        free(h);
        return erc;
    }
    h->rt = tl_realtime_new(cfg->n_projects);
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                MHD_USE_POLL | MHD_USE_ERROR_LOG,
                            (uint16_t)port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, h, MHD_OPTION_NOTIFY_CONNECTION,
                            on_connection, h, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                            /* The connection pool stays at libmicrohttpd's default (32 KiB):
                             * a 1 MiB pool was cleared and faulted in for every request on a
                             * new connection, ~2.5 ms added to each query (measured). */
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_END);
    if (!h->d) {
        tl_realtime_free(h->rt);
        tl_enrich_free(h->enrich);
        free(h);
        return tl_err_set(err, TL_EIO, "listen: cannot listen on %s", cfg->listen);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : (uint16_t)port;
    *out = h;
    return 0;
}

uint16_t tl_http_port(const tl_http *h)
{
    return h->port;
}

void tl_http_stop(tl_http *h)
{
    if (!h) return;
    atomic_store(&h->stopping, 1);
    MHD_stop_daemon(h->d);
    tl_realtime_free(h->rt);
    tl_enrich_free(h->enrich);
    free(h);
}
