/* Fuzz target for the compatible formats (compat.h). The first input byte picks the mode,
 * the rest is the body:
 *   bits 0-2  format (modulo TL_COMPAT_COUNT): Segment, PostHog, Snowplow, Plausible, GA4
 *   bit 3     tiny limits                  bit 4  Content-Encoding: gzip
 *   bit 5     the body is a query string (k=v&k=v, the GET forms) and the body is empty
 *   bit 6     a form Content-Type (PostHog sendBeacon); Segment: a single-message path
 *   bit 7     ?compression=base64 (PostHog)
 * Beyond "no crash": parse results are 0, TL_EINVAL or TL_E2BIG; the counts add up; errors
 * are capped; every record has a kind, an event name, an event_id and an id, obeys the
 * native limits, and survives the record codec. */
#include <stdint.h>
#include <string.h>

#include "compat.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV 1750000000000LL

static bool utf8_ok(tl_str s)
{
    return s.len == 0 || tl_utf8_valid(s.p, s.len);
}

static void check_record(tl_arena *a, const tl_record *r, const tl_ingest_limits *lim)
{
    TL_ASSERT(r->kind == TL_REC_EVENT || r->kind == TL_REC_IDENTIFY);
    TL_ASSERT(r->event.len >= 1 && r->event.len <= TL_INGEST_MAX_ID_BYTES);
    TL_ASSERT(r->event_id.len >= 1 && r->event_id.len <= TL_INGEST_MAX_ID_BYTES);
    TL_ASSERT(r->anonymous_id.len || r->user_id.len);
    TL_ASSERT(r->anonymous_id.len <= TL_INGEST_MAX_ID_BYTES);
    TL_ASSERT(r->user_id.len <= TL_INGEST_MAX_ID_BYTES);
    TL_ASSERT(r->ts_ms >= 946684800000LL && r->ts_ms <= RECV + lim->max_future_ms);
    TL_ASSERT(utf8_ok(r->event) && utf8_ok(r->anonymous_id) && utf8_ok(r->user_id));
    for (int f = 0; f < TL_F_COUNT; f++)
        TL_ASSERT(utf8_ok(r->field[f]));
    TL_ASSERT(r->n_props <= lim->max_props && r->n_uprops <= 2 * lim->max_props);
    for (uint32_t i = 0; i < r->n_props; i++) {
        TL_ASSERT(r->props[i].type == TL_PV_NUM || r->props[i].type == TL_PV_STR);
        TL_ASSERT(utf8_ok(r->props[i].key));
        if (i) TL_ASSERT(tl_str_cmp(r->props[i - 1].key, r->props[i].key) < 0);
    }
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(r, &b);
    tl_record d;
    TL_ASSERT(tl_record_decode(b.p, b.len, a, &d, NULL) == 0);
    TL_ASSERT(d.kind == r->kind && d.ts_ms == r->ts_ms && tl_str_eq(d.event_id, r->event_id));
    TL_ASSERT(tl_str_eq(d.user_id, r->user_id) && tl_str_eq(d.anonymous_id, r->anonymous_id));
    tl_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    static const char *const paths[TL_COMPAT_COUNT] = {
        "/v1/batch", "/batch/", "/com.snowplowanalytics.snowplow/tp2", "/api/event", "/mp/collect"};
    tl_compat_fmt fmt = (tl_compat_fmt)((mode & 7) % TL_COMPAT_COUNT);
    tl_arena *a = tl_arena_new();
    tl_ingest_limits lim;
    tl_ingest_limits_default(&lim);
    lim.max_body_bytes = 1 << 20;
    if (mode & 8) {
        lim.max_body_bytes = 4096;
        lim.max_event_bytes = 300;
        lim.max_string_bytes = 16;
        lim.max_props = 4;
        lim.max_depth = 2;
        lim.max_future_ms = 1000;
    }
    enum { MAXA = 64 };
    tl_str k[MAXA + 1], v[MAXA + 1];
    size_t n = 0;
    tl_compat_in in = {.path = tl_str_c(paths[fmt]), .body = {(const char *)data, size}};
    if (mode & 16) in.content_encoding = TL_STR("gzip");
    if (mode & 64) {
        in.content_type = TL_STR("application/x-www-form-urlencoded");
        if (fmt == TL_COMPAT_SEGMENT) in.path = TL_STR("/v1/track");
    }
    if (mode & 32) {
        const char *p = (const char *)data, *end = p + size;
        while (p < end && n < MAXA) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *e = amp ? amp : end;
            const char *eq = memchr(p, '=', (size_t)(e - p));
            k[n] = (tl_str){p, (size_t)((eq ? eq : e) - p)};
            v[n] = eq ? (tl_str){eq + 1, (size_t)(e - eq - 1)} : TL_STR("");
            n++;
            p = amp ? amp + 1 : end;
        }
        in.body = TL_STR("");
    }
    if (mode & 128) {
        k[n] = TL_STR("compression");
        v[n] = TL_STR("base64");
        n++;
    }
    in.arg_k = k;
    in.arg_v = v;
    in.n_args = n;
    tl_ingest_ctx ctx = {.recv_ms = RECV, .ip = TL_STR("192.0.2.1"), .user_agent = TL_STR("f")};
    tl_ingest_batch b;
    tl_err err;
    int rc = tl_compat_parse(fmt, a, &in, &ctx, &lim, &b, &err);
    TL_ASSERT(rc == 0 || rc == TL_EINVAL || rc == TL_E2BIG);
    if (rc == 0) {
        TL_ASSERT(b.rejected <= b.n_input);
        TL_ASSERT(b.n_errors <= TL_INGEST_MAX_ERRORS && b.n_errors <= b.rejected);
        for (uint32_t i = 0; i < b.n_errors; i++) {
            TL_ASSERT(b.errors[i].msg && b.errors[i].msg[0]);
            if (i) TL_ASSERT(b.errors[i - 1].index < b.errors[i].index);
        }
        for (uint32_t i = 0; i < b.n; i++)
            check_record(a, &b.recs[i], &lim);
    } else {
        TL_ASSERT(err.msg[0]);
    }
    tl_arena_free(a);
    return 0;
}
