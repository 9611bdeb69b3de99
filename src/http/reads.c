/* Read routes besides the query API (API.md "Other reads"), all with the read key:
 *
 *   GET /api/v1/persons/<distinct_id>/events?project=&from=&to=&limit=&offset=
 *       the person's events (query.h tl_query_person_events); from/to: ms, ISO-8601 instants
 *       or dates (UTC days); limit 1..1000, default 100
 *   GET /api/v1/realtime?project=          realtime.h's state as JSON
 *   GET /api/v1/realtime/stream?project=   the same as server-sent events, one a second; the
 *       read key may be given as ?key= because EventSource cannot set headers
 *   GET /api/v1/report?project=&metric=pageviews|persons|events&from=&to=&group_by=&interval=
 *       a trends query (pageviews: events named $pageview) answered as trends answers */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <math.h>

#include "http/http_int.h"
#include "query.h"
#include "util/time.h"

static bool parse_ms(tl_str s, bool is_to, int64_t *out)
{
    int64_t day, t;
    if (!s.len) return false;
    if (!tl_date_parse(s, &day)) {
        *out = (day + is_to) * TL_MS_PER_DAY;
        return true;
    }
    if (!tl_iso_parse(s, &t)) {
        *out = t + is_to;
        return true;
    }
    double x;
    char buf[32];
    if (s.len >= sizeof buf) return false;
    memcpy(buf, s.p, s.len);
    buf[s.len] = 0;
    char *end;
    x = strtod(buf, &end);
    if (*end || !isfinite(x) || x != floor(x) || fabs(x) > 9e15) return false;
    *out = (int64_t)x + is_to;
    return true;
}

static bool parse_uint(tl_str s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v = 0;
    if (!s.len || s.len > 10) return false;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') return false;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    if (v < lo || v > hi) return false;
    *out = (uint32_t)v;
    return true;
}

static enum MHD_Result person_events(tl_http *h, struct MHD_Connection *c, const char *id,
                                     size_t id_len)
{
    enum MHD_Result ret;
    const tl_project_conf *p = tl_http_read_auth(h, c, &ret);
    if (!p) return ret;
    if (!id_len || id_len > 200 || !tl_utf8_valid(id, id_len))
        return tl_http_send_error(h, c, 400,
                                  "distinct_id: empty, longer than 200 bytes or not UTF-8");
    int64_t from = INT64_MIN, to = INT64_MAX;
    uint32_t limit = 100, offset = 0;
    tl_str v = tl_http_arg(c, "from");
    if (v.len && !parse_ms(v, false, &from))
        return tl_http_send_error(h, c, 400, "from: expected a date, an ISO-8601 time or ms");
    v = tl_http_arg(c, "to");
    if (v.len && !parse_ms(v, true, &to))
        return tl_http_send_error(h, c, 400, "to: expected a date, an ISO-8601 time or ms");
    v = tl_http_arg(c, "limit");
    if (v.len && !parse_uint(v, 1, 1000, &limit))
        return tl_http_send_error(h, c, 400, "limit: expected 1 to 1000");
    v = tl_http_arg(c, "offset");
    if (v.len && !parse_uint(v, 0, UINT32_MAX - 1000, &offset))
        return tl_http_send_error(h, c, 400, "offset: expected a whole number");
    (void)tl_index_wait(h->ix, tl_log_durable_pos(h->log), 30000);
    tl_buf out = TL_BUF_INIT;
    tl_err err = {0};
    int rc =
        tl_query_person_events(h->st, p, (tl_str){id, id_len}, from, to, offset, limit, &out, &err);
    if (rc) {
        tl_buf_fini(&out);
        return tl_http_send_error(h, c, rc == TL_ENOENT ? 404 : 500, err.msg);
    }
    tl_buf_addc(&out, '\n');
    return tl_http_send_buf(h, c, 200, "application/json", &out);
}

/* ---- realtime ---- */

static enum MHD_Result realtime(tl_http *h, struct MHD_Connection *c, const tl_project_conf *p)
{
    tl_buf out = TL_BUF_INIT;
    tl_realtime_json(h->rt, (uint32_t)(p - h->cfg->projects), tl_now_ms(), &out);
    tl_buf_addc(&out, '\n');
    return tl_http_send_buf(h, c, 200, "application/json", &out);
}

typedef struct stream {
    tl_http *h;
    uint32_t proj;
    tl_buf pending; /* the message being sent */
    size_t sent;
    int64_t next_ms; /* when the next message is due */
} stream;

/* libmicrohttpd pulls the body from here on the connection's own thread (thread per
 * connection), so waiting for the next second blocks nobody else. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    (void)pos;
    while (st->sent == st->pending.len) {
        if (atomic_load(&st->h->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        int64_t now = tl_now_ms();
        if (now < st->next_ms) {
            int64_t wait = st->next_ms - now;
            usleep((useconds_t)(wait > 200 ? 200 : wait) * 1000);
            continue;
        }
        st->pending.len = 0;
        st->sent = 0;
        tl_buf_adds(&st->pending, "event: realtime\ndata: ");
        tl_realtime_json(st->h->rt, st->proj, now, &st->pending);
        tl_buf_adds(&st->pending, "\n\n");
        st->next_ms = now + 1000;
    }
    size_t n = st->pending.len - st->sent;
    if (n > max) n = max;
    memcpy(buf, st->pending.p + st->sent, n);
    st->sent += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *st = cls;
    tl_buf_fini(&st->pending);
    free(st);
}

static enum MHD_Result realtime_stream(tl_http *h, struct MHD_Connection *c)
{
    tl_str key = tl_http_bearer(c);
    if (!key.len) key = tl_http_arg(c, "key");
    const tl_project_conf *p = tl_http_project_by_read_key(h->cfg, key);
    if (!p) return tl_http_send_error(h, c, 401, key.len ? "unknown read key" : "missing read key");
    tl_str pn = tl_http_arg(c, "project");
    if (pn.len && !tl_str_eqc(pn, p->name))
        return tl_http_send_error(h, c, 401, "project: the read key is not this project's");
    stream *st = tl_xcalloc(1, sizeof *st);
    st->h = h;
    st->proj = (uint32_t)(p - h->cfg->projects);
    st->pending = TL_BUF_INIT;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- report: a trends query from query-string arguments ---- */

static enum MHD_Result report(tl_http *h, struct MHD_Connection *c)
{
    enum MHD_Result ret;
    const tl_project_conf *p = tl_http_read_auth(h, c, &ret);
    if (!p) return ret;
    tl_str metric = tl_http_arg(c, "metric"), from = tl_http_arg(c, "from"),
           to = tl_http_arg(c, "to"), group = tl_http_arg(c, "group_by"),
           interval = tl_http_arg(c, "interval"), tz = tl_http_arg(c, "tz");
    const char *m = "events";
    bool pageviews = false;
    if (!metric.len || tl_str_eqc(metric, "events"))
        m = "events";
    else if (tl_str_eqc(metric, "persons"))
        m = "persons";
    else if (tl_str_eqc(metric, "pageviews"))
        pageviews = true;
    else
        return tl_http_send_error(h, c, 400, "metric: expected pageviews, persons or events");
    if (!from.len || !to.len) return tl_http_send_error(h, c, 400, "from, to: required");
    tl_buf q = TL_BUF_INIT;
    tl_buf_adds(&q, "{\"kind\":\"trends\",\"project\":");
    tl_buf_json_str(&q, tl_str_c(p->name));
    tl_buf_printf(&q, ",\"metric\":\"%s\",\"from\":", m);
    tl_buf_json_str(&q, from);
    tl_buf_adds(&q, ",\"to\":");
    tl_buf_json_str(&q, to);
    if (pageviews) tl_buf_adds(&q, ",\"event\":\"$pageview\"");
    if (group.len) {
        tl_buf_adds(&q, ",\"breakdown\":");
        tl_buf_json_str(&q, group);
    }
    if (interval.len) {
        tl_buf_adds(&q, ",\"interval\":");
        tl_buf_json_str(&q, interval);
    }
    if (tz.len) {
        tl_buf_adds(&q, ",\"tz\":");
        tl_buf_json_str(&q, tz);
    }
    tl_buf_addc(&q, '}');
    tl_arena *a = tl_arena_new();
    tl_err err = {0};
    tl_json *j;
    tl_json_opts jo = {32, 100000};
    int rc = tl_json_parse(a, q.p, q.len, &jo, &j, &err);
    tl_buf out = TL_BUF_INIT;
    if (!rc) {
        (void)tl_index_wait(h->ix, tl_log_durable_pos(h->log), 30000);
        rc = tl_query_run(h->st, p, j, a, &out, &err);
    }
    tl_buf_fini(&q);
    tl_arena_free(a);
    if (rc) {
        tl_buf_fini(&out);
        return tl_http_send_error(h, c, rc == TL_EINVAL ? 400 : 500, err.msg);
    }
    tl_buf_addc(&out, '\n');
    return tl_http_send_buf(h, c, 200, "application/json", &out);
}

bool tl_http_route_reads(tl_http *h, struct MHD_Connection *c, tl_http_req *rq, const char *url,
                         const char *method, enum MHD_Result *ret)
{
    (void)rq;
    if (strcmp(method, "GET")) return false;
    static const char pre[] = "/api/v1/persons/", suf[] = "/events";
    size_t n = strlen(url);
    if (!strncmp(url, pre, sizeof pre - 1) && n > sizeof pre - 1 + sizeof suf - 1 &&
        !strcmp(url + n - (sizeof suf - 1), suf)) {
        *ret = person_events(h, c, url + sizeof pre - 1, n - (sizeof pre - 1) - (sizeof suf - 1));
        return true;
    }
    if (!strcmp(url, "/api/v1/realtime")) {
        const tl_project_conf *p = tl_http_read_auth(h, c, ret);
        if (p) *ret = realtime(h, c, p);
        return true;
    }
    if (!strcmp(url, "/api/v1/realtime/stream")) {
        *ret = realtime_stream(h, c);
        return true;
    }
    if (!strcmp(url, "/api/v1/report")) {
        *ret = report(h, c);
        return true;
    }
    return false;
}
