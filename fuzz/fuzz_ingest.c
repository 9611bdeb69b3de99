/* Fuzz target for ingest: body decoding (gzip), every native body form, event validation and
 * the pixel form. The first input byte picks the mode, the rest is the body:
 *   bit 0  Content-Type application/x-ndjson      bit 1  Content-Encoding: gzip
 *   bit 2  pixel form (body split as k=v&k=v)     bit 3  tiny limits
 *   bit 4  gzip the body here first, so the fuzzer reaches the JSON behind a valid stream
 * Beyond "no crash", it checks what callers rely on: the batch counts add up, errors are in
 * order and capped, and every accepted record obeys the rules and survives the record codec. */
#include <stdint.h>
#include <string.h>

#include <zlib.h>

#include "ingest.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECV 1750000000000LL

static bool utf8_ok(tl_str s)
{
    return s.len == 0 || tl_utf8_valid(s.p, s.len);
}

static void check_record(tl_arena *a, const tl_record *r, const tl_ingest_limits *lim)
{
    TL_ASSERT(r->kind == TL_REC_EVENT);
    TL_ASSERT(r->event.len >= 1 && r->event.len <= TL_INGEST_MAX_ID_BYTES);
    TL_ASSERT(r->event_id.len >= 1 && r->event_id.len <= TL_INGEST_MAX_ID_BYTES);
    TL_ASSERT(r->anonymous_id.len || r->user_id.len);
    TL_ASSERT(r->ts_ms >= 946684800000LL && r->ts_ms <= RECV + lim->max_future_ms);
    TL_ASSERT(r->recv_ms == RECV);
    TL_ASSERT(r->n_props <= lim->max_props && r->n_uprops <= lim->max_props);
    TL_ASSERT(utf8_ok(r->event));
    for (int f = 0; f < TL_F_COUNT; f++)
        TL_ASSERT(utf8_ok(r->field[f]));
    if (r->field[TL_F_COUNTRY].len) {
        TL_ASSERT(r->field[TL_F_COUNTRY].len == 2);
        TL_ASSERT(r->field[TL_F_COUNTRY].p[0] >= 'A' && r->field[TL_F_COUNTRY].p[0] <= 'Z');
    }
    for (int u = 0; u < 2; u++) {
        const tl_prop *p = u ? r->uprops : r->props;
        uint32_t n = u ? r->n_uprops : r->n_props;
        for (uint32_t i = 0; i < n; i++) {
            TL_ASSERT(p[i].key.len <= TL_INGEST_MAX_KEY_BYTES);
            TL_ASSERT(utf8_ok(p[i].key));
            TL_ASSERT(p[i].type == TL_PV_NUM || p[i].type == TL_PV_STR);
            if (p[i].type == TL_PV_STR) {
                TL_ASSERT(p[i].str.len <= lim->max_string_bytes);
                TL_ASSERT(utf8_ok(p[i].str));
            }
            if (i) TL_ASSERT(tl_str_cmp(p[i - 1].key, p[i].key) < 0); /* sorted, unique */
        }
    }
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(r, &b);
    tl_record d;
    TL_ASSERT(tl_record_decode(b.p, b.len, a, &d, NULL) == 0);
    TL_ASSERT(d.ts_ms == r->ts_ms && tl_str_eq(d.event_id, r->event_id));
    TL_ASSERT(d.n_props == r->n_props && d.n_uprops == r->n_uprops);
    tl_buf_fini(&b);
}

static void pixel(tl_arena *a, tl_str body, const tl_ingest_ctx *ctx, const tl_ingest_limits *lim)
{
    enum { MAXP = 64 };
    tl_str k[MAXP], v[MAXP];
    size_t n = 0;
    const char *p = body.p, *end = body.p + body.len;
    while (p < end && n < MAXP) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        k[n] = (tl_str){p, (size_t)((eq ? eq : e) - p)};
        v[n] = eq ? (tl_str){eq + 1, (size_t)(e - eq - 1)} : TL_STR_NULL;
        n++;
        p = amp ? amp + 1 : end;
    }
    tl_record r;
    tl_err err;
    if (tl_ingest_pixel(a, k, v, n, ctx, lim, &r, &err) == 0)
        check_record(a, &r, lim);
    else
        TL_ASSERT(err.msg[0]);
}

static size_t gz(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    size_t len = zs.total_out;
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? len : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    data++;
    size--;
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
    tl_ingest_ctx ctx = {.recv_ms = RECV, .ip = TL_STR("192.0.2.1"), .user_agent = TL_STR("f")};
    tl_str body = {(const char *)data, size};
    if (mode & 16) {
        size_t cap = size + size / 8 + 64;
        uint8_t *z = tl_arena_alloc(a, cap);
        size_t zlen = gz(data, size, z, cap);
        if (zlen) body = (tl_str){(const char *)z, zlen};
    }
    tl_str dec;
    tl_err err;
    int rc = tl_ingest_decode_body(a, body, (mode & 2) ? TL_STR("gzip") : TL_STR_NULL,
                                   lim.max_body_bytes, &dec, &err);
    TL_ASSERT(rc == 0 || rc == TL_EINVAL || rc == TL_E2BIG);
    if (rc) goto out;
    if (mode & 4) {
        pixel(a, dec, &ctx, &lim);
        goto out;
    }
    tl_ingest_batch b;
    rc = tl_ingest_native(a, dec, (mode & 1) ? TL_STR("application/x-ndjson") : TL_STR_NULL, &ctx,
                          &lim, &b, &err);
    TL_ASSERT(rc == 0 || rc == TL_EINVAL || rc == TL_E2BIG);
    if (rc) {
        TL_ASSERT(err.msg[0]);
        goto out;
    }
    TL_ASSERT(b.n + b.rejected == b.n_input);
    TL_ASSERT(b.n_errors ==
              (b.rejected < TL_INGEST_MAX_ERRORS ? b.rejected : TL_INGEST_MAX_ERRORS));
    for (uint32_t i = 0; i < b.n_errors; i++) {
        TL_ASSERT(b.errors[i].index < b.n_input);
        TL_ASSERT(i == 0 || b.errors[i].index > b.errors[i - 1].index);
        TL_ASSERT(b.errors[i].msg && b.errors[i].msg[0]);
        TL_ASSERT(tl_utf8_valid(b.errors[i].msg, strlen(b.errors[i].msg)));
    }
    for (uint32_t i = 0; i < b.n; i++)
        check_record(a, &b.recs[i], &lim);
out:
    tl_arena_free(a);
    return 0;
}
