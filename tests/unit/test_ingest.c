/* Unit tests of ingest: every validation rule with a passing and a failing case, the body
 * forms (envelope, array, one object, NDJSON by type and by sniffing), gzip decoding, clock
 * skew, derived event ids, batches with good and bad events, and the pixel form. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
#include <cmocka.h>
#include <zlib.h>

#include "ingest.h"
#include "util/buf.h"

#define RECV 1750000000000LL /* 2025-06-15T15:06:40Z */
#define TS1  1749999000000LL /* RECV − 1000 s */

typedef struct fx {
    tl_arena *a;
    tl_ingest_ctx ctx;
    tl_ingest_limits lim;
    tl_ingest_batch b;
    tl_err err;
    tl_record r;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->a = tl_arena_new();
    f->ctx.recv_ms = RECV;
    f->ctx.ip = TL_STR("203.0.113.7");
    f->ctx.user_agent = TL_STR("test");
    tl_ingest_limits_default(&f->lim);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tl_arena_free(f->a);
    free(f);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static int native_n(fx *f, const char *body, size_t len, const char *ct)
{
    memset(&f->err, 0, sizeof f->err);
    return tl_ingest_native(f->a, (tl_str){body, len}, tl_str_c(ct), &f->ctx, &f->lim, &f->b,
                            &f->err);
}

static int native(fx *f, const char *body, const char *ct)
{
    return native_n(f, body, strlen(body), ct);
}

/* One event through tl_ingest_event (batch sent_at: sent). */
static int event_sent(fx *f, const char *json, int64_t sent)
{
    tl_json *v;
    tl_err perr;
    if (tl_json_parse(f->a, json, strlen(json), NULL, &v, &perr))
        fail_msg("test JSON does not parse: %s: %s", json, perr.msg);
    memset(&f->err, 0, sizeof f->err);
    return tl_ingest_event(f->a, v, sent, &f->ctx, &f->lim, &f->r, &f->err);
}

static int event(fx *f, const char *json)
{
    return event_sent(f, json, INT64_MIN);
}

#define OK(f, json)                                                                                \
    do {                                                                                           \
        if (event(f, json) != 0) fail_msg("refused %s: %s", json, (f)->err.msg);                   \
    } while (0)

#define BAD(f, json, prefix)                                                                       \
    do {                                                                                           \
        if (event(f, json) != TL_EINVAL) fail_msg("accepted %s", json);                            \
        if (strncmp((f)->err.msg, prefix, strlen(prefix)) != 0)                                    \
            fail_msg("for %s: wanted \"%s…\", got \"%s\"", json, prefix, (f)->err.msg);            \
    } while (0)

/* A valid event with extra members spliced in. */
#define EV(extra) "{\"event\":\"e\",\"anonymous_id\":\"a\"" extra "}"

static const tl_prop *prop(const tl_prop *p, uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++)
        if (tl_str_eqc(p[i].key, key)) return &p[i];
    return NULL;
}

static void assert_str(tl_str s, const char *want)
{
    if (!tl_str_eqc(s, want))
        fail_msg("wanted \"%s\", got \"%.*s\"", want, (int)s.len, s.p ? s.p : "");
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

static char *fmt(const char *f, ...) TL_PRINTF(1, 2);
static char *fmt(const char *f, ...)
{
    tl_buf b = TL_BUF_INIT;
    va_list ap;
    va_start(ap, f);
    tl_buf_vprintf(&b, f, ap);
    va_end(ap);
    return tl_buf_steal(&b, NULL);
}

static unsigned char *gzip(const void *p, size_t n, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, n);
    unsigned char *o = malloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)p;
    zs.avail_in = (uInt)n;
    zs.next_out = o;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return o;
}

/* ---- limits and single fields ------------------------------------------------------------ */

static void test_defaults(void **state)
{
    tl_ingest_limits l;
    tl_ingest_limits_default(&l);
    assert_int_equal(l.max_body_bytes, 20 << 20);
    assert_int_equal(l.max_event_bytes, 32 << 10);
    assert_int_equal(l.max_string_bytes, 8 << 10);
    assert_int_equal(l.max_props, 1000);
    assert_int_equal(l.max_depth, 16);
    assert_int_equal(l.max_future_ms, 24 * 3600 * 1000LL);
}

static void test_event_name(void **state)
{
    fx *f = *state;
    OK(f, EV(""));
    assert_str(f->r.event, "e");
    assert_int_equal(f->r.kind, TL_REC_EVENT);
    assert_int_equal(f->r.recv_ms, RECV);
    BAD(f, "{\"anonymous_id\":\"a\"}", "event: required");
    BAD(f, "{\"event\":null,\"anonymous_id\":\"a\"}", "event: required");
    BAD(f, "{\"event\":\"\",\"anonymous_id\":\"a\"}", "event: must not be empty");
    BAD(f, "{\"event\":5,\"anonymous_id\":\"a\"}", "event: must be a string");
    BAD(f, "{\"event\":[\"x\"],\"anonymous_id\":\"a\"}", "event: must be a string");
    char *n200 = repeat('x', 200), *n201 = repeat('x', 201);
    char *ok = fmt("{\"event\":\"%s\",\"anonymous_id\":\"a\"}", n200);
    char *bad = fmt("{\"event\":\"%s\",\"anonymous_id\":\"a\"}", n201);
    OK(f, ok);
    assert_int_equal(f->r.event.len, 200);
    BAD(f, bad, "event: longer than 200 bytes");
    /* The limit is bytes, not characters: 67 × "€" (3 bytes) = 201 bytes. */
    tl_buf b = TL_BUF_INIT;
    tl_buf_adds(&b, "{\"event\":\"");
    for (int i = 0; i < 67; i++)
        tl_buf_adds(&b, "\xE2\x82\xAC");
    tl_buf_adds(&b, "\",\"anonymous_id\":\"a\"}");
    BAD(f, tl_buf_cstr(&b), "event: longer than 200 bytes");
    tl_buf_fini(&b);
    free(n200), free(n201), free(ok), free(bad);
}

static void test_ids(void **state)
{
    fx *f = *state;
    OK(f, "{\"event\":\"e\",\"anonymous_id\":\"anon\",\"user_id\":\"u1\",\"session_id\":\"s1\","
          "\"event_id\":\"id-1\"}");
    assert_str(f->r.anonymous_id, "anon");
    assert_str(f->r.user_id, "u1");
    assert_str(f->r.session_id, "s1");
    assert_str(f->r.event_id, "id-1");
    /* Integer ids are accepted and kept as their decimal text. */
    OK(f, "{\"event\":\"e\",\"user_id\":42,\"anonymous_id\":-7,\"event_id\":123456789012}");
    assert_str(f->r.user_id, "42");
    assert_str(f->r.anonymous_id, "-7");
    assert_str(f->r.event_id, "123456789012");
    BAD(f, EV(",\"user_id\":1.5"), "user_id: must be a string");
    BAD(f, EV(",\"user_id\":1e3"), "user_id: must be a string");
    BAD(f, EV(",\"user_id\":true"), "user_id: must be a string");
    BAD(f, EV(",\"user_id\":{}"), "user_id: must be a string");
    BAD(f, "{\"event\":\"e\",\"anonymous_id\":[1]}", "anonymous_id: must be a string");
    BAD(f, EV(",\"session_id\":false"), "session_id: must be a string");
    BAD(f, EV(",\"event_id\":[]"), "event_id: must be a string");
    /* null is absent. */
    OK(f, EV(",\"user_id\":null,\"session_id\":null"));
    assert_int_equal(f->r.user_id.len, 0);

    const char *names[] = {"event_id", "anonymous_id", "user_id", "session_id"};
    char *v200 = repeat('i', 200), *v201 = repeat('i', 201);
    for (int i = 0; i < 4; i++) {
        /* The field under test comes first: the first occurrence wins. */
#define TPL "{\"%s\":\"%s\",\"event\":\"e\",\"user_id\":\"u\",\"anonymous_id\":\"a\"}"
        char *ok = fmt(TPL, names[i], v200);
        char *bad = fmt(TPL, names[i], v201);
#undef TPL
        char *want = fmt("%s: longer than 200 bytes", names[i]);
        OK(f, ok);
        BAD(f, bad, want);
        free(ok), free(bad), free(want);
    }
    free(v200), free(v201);
}

static void test_id_required(void **state)
{
    fx *f = *state;
    OK(f, "{\"event\":\"e\",\"user_id\":\"u\"}");
    OK(f, "{\"event\":\"e\",\"anonymous_id\":\"a\"}");
    OK(f, "{\"event\":\"e\",\"anonymous_id\":\"\",\"user_id\":\"u\"}");
    BAD(f, "{\"event\":\"e\"}", "anonymous_id or user_id: at least one is required");
    BAD(f, "{\"event\":\"e\",\"anonymous_id\":\"\",\"user_id\":\"\"}",
        "anonymous_id or user_id: at least one is required");
    BAD(f, "{\"event\":\"e\",\"anonymous_id\":null,\"session_id\":\"s\"}",
        "anonymous_id or user_id: at least one is required");
}

static void test_time_values(void **state)
{
    fx *f = *state;
    static const struct {
        const char *json;
        int rc;
        int64_t ms;
    } cases[] = {
        {"1750000000000", 0, 1750000000000LL},
        {"1750000000", 0, 1750000000000LL},        /* seconds */
        {"1750000000.5", 0, 1750000000500LL},      /* fractional seconds */
        {"1750000000000.9", 0, 1750000000000LL},   /* sub-millisecond dropped */
        {"99999999999", 0, 99999999999000LL},      /* below 1e11: seconds */
        {"100000000000", 0, 100000000000LL},       /* 1e11: milliseconds */
        {"\"1750000000000\"", 0, 1750000000000LL}, /* digits in a string */
        {"\"1750000000\"", 0, 1750000000000LL},
        {"\"2025-06-15T15:06:40Z\"", 0, 1750000000000LL},
        {"\"2025-06-15T15:06:40.123Z\"", 0, 1750000000123LL},
        {"\"2025-06-15T20:51:40+05:45\"", 0, 1750000000000LL},
        {"\"2025-06-15T15:06:40\"", TL_EINVAL, 0}, /* no zone */
        {"\"2025-06-15\"", TL_EINVAL, 0},          /* a date, not an instant */
        {"\"yesterday\"", TL_EINVAL, 0},
        {"\"\"", TL_EINVAL, 0},
        {"\"12.\"", TL_EINVAL, 0},
        {"true", TL_EINVAL, 0},
        {"null", TL_EINVAL, 0},
        {"{}", TL_EINVAL, 0},
        {"1e300", TL_EINVAL, 0},
        {"-1e300", TL_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_json *v;
        assert_int_equal(tl_json_parse(f->a, cases[i].json, strlen(cases[i].json), NULL, &v, NULL),
                         0);
        int64_t ms = -1;
        int rc = tl_ingest_time(v, &ms);
        if (rc != cases[i].rc) fail_msg("%s: rc %d", cases[i].json, rc);
        if (rc == 0 && ms != cases[i].ms) fail_msg("%s: %lld", cases[i].json, (long long)ms);
    }
    int64_t ms;
    assert_int_equal(tl_ingest_time(NULL, &ms), TL_EINVAL);
}

static void test_timestamp_rules(void **state)
{
    fx *f = *state;
    OK(f, EV(",\"timestamp\":1749999000000"));
    assert_int_equal(f->r.ts_ms, TS1);
    OK(f, EV(",\"timestamp\":\"2025-06-15T14:50:00Z\""));
    assert_int_equal(f->r.ts_ms, TS1);
    OK(f, EV(""));
    assert_int_equal(f->r.ts_ms, RECV); /* default: receive time */
    BAD(f, EV(",\"timestamp\":\"2025-06-15 14:50:00\""),
        "timestamp: not a number or ISO-8601 date with a zone");
    BAD(f, EV(",\"timestamp\":true"), "timestamp: not a number or ISO-8601 date with a zone");
    BAD(f, EV(",\"sent_at\":\"soon\""), "sent_at: not a number or ISO-8601 date with a zone");

    /* Future: up to max_future_ms ahead is fine, one ms more is not. */
    char *edge = fmt(EV(",\"timestamp\":%lld"), (long long)(RECV + 24 * 3600 * 1000LL));
    char *over = fmt(EV(",\"timestamp\":%lld"), (long long)(RECV + 24 * 3600 * 1000LL + 1));
    OK(f, edge);
    BAD(f, over, "timestamp: more than 86400 s in the future");
    f->lim.max_future_ms = 60000;
    BAD(f, edge, "timestamp: more than 60 s in the future");
    free(edge), free(over);

    /* The past: 2000-01-01 is the floor. */
    OK(f, EV(",\"timestamp\":\"2000-01-01T00:00:00Z\""));
    assert_int_equal(f->r.ts_ms, 946684800000LL);
    BAD(f, EV(",\"timestamp\":\"1999-12-31T23:59:59.999Z\""), "timestamp: before 2000-01-01");
    BAD(f, EV(",\"timestamp\":0"), "timestamp: before 2000-01-01");
    BAD(f, EV(",\"timestamp\":-5"), "timestamp: before 2000-01-01");
}

static void test_skew(void **state)
{
    fx *f = *state;
    /* The client clock is 1 h fast: its sent_at is RECV + 1 h, the event 10 s before that. */
    char *ev = fmt(EV(",\"timestamp\":%lld,\"sent_at\":%lld"), (long long)(RECV + 3600000 - 10000),
                   (long long)(RECV + 3600000));
    OK(f, ev);
    assert_int_equal(f->r.ts_ms, RECV - 10000);
    assert_int_equal(f->r.recv_ms, RECV);
    free(ev);
    /* ISO forms, clock 2 days slow (and the raw timestamp would be fine as it is). */
    OK(f, EV(",\"timestamp\":\"2025-06-13T15:06:00Z\",\"sent_at\":\"2025-06-13T15:06:40Z\""));
    assert_int_equal(f->r.ts_ms, RECV - 40000);
    /* Without sent_at the timestamp stays as given. */
    OK(f, EV(",\"timestamp\":\"2025-06-13T15:06:00Z\""));
    assert_int_equal(f->r.ts_ms, RECV - 2 * 86400000LL - 40000);
    /* sent_at without a timestamp: receive time. */
    OK(f, EV(",\"sent_at\":1"));
    assert_int_equal(f->r.ts_ms, RECV);

    /* The envelope's sent_at applies when the event has none... */
    assert_int_equal(event_sent(f, EV(",\"timestamp\":1000000000000"), 1000000060000), 0);
    assert_int_equal(f->r.ts_ms, RECV - 60000);
    /* ...and the event's own wins over it. */
    assert_int_equal(
        event_sent(f, EV(",\"timestamp\":1000000000000,\"sent_at\":1000000001000"), 1000000060000),
        0);
    assert_int_equal(f->r.ts_ms, RECV - 1000);
    /* Correction can push an event into the future: rejected after correction. */
    BAD(f, EV(",\"timestamp\":\"2025-06-20T00:00:00Z\",\"sent_at\":\"2025-06-10T00:00:00Z\""),
        "timestamp: more than 86400 s in the future");

    /* The whole path through an envelope. */
    const char *body = "{\"sent_at\":\"2025-06-15T16:06:40Z\",\"events\":["
                       "{\"event\":\"a\",\"anonymous_id\":\"x\",\"timestamp\":"
                       "\"2025-06-15T16:06:30Z\"},"
                       "{\"event\":\"b\",\"anonymous_id\":\"x\"}]}";
    assert_int_equal(native(f, body, "application/json"), 0);
    assert_int_equal(f->b.n, 2);
    assert_int_equal(f->b.recs[0].ts_ms, RECV - 10000);
    assert_int_equal(f->b.recs[1].ts_ms, RECV);
}

static void test_fields(void **state)
{
    fx *f = *state;
    OK(f, EV(",\"platform\":\"web\",\"app_version\":\"1.2.3\",\"country\":\"np\","
             "\"url\":\"https://x/\",\"referrer\":\"https://r/\",\"browser\":\"Firefox\","
             "\"os\":\"Linux\",\"device_type\":\"desktop\",\"ip\":\"198.51.100.1\","
             "\"user_agent\":\"Mozilla/5.0\""));
    assert_str(f->r.field[TL_F_PLATFORM], "web");
    assert_str(f->r.field[TL_F_APP_VERSION], "1.2.3");
    assert_str(f->r.field[TL_F_COUNTRY], "NP");
    assert_str(f->r.field[TL_F_URL], "https://x/");
    assert_str(f->r.field[TL_F_REFERRER], "https://r/");
    assert_str(f->r.field[TL_F_BROWSER], "Firefox");
    assert_str(f->r.field[TL_F_OS], "Linux");
    assert_str(f->r.field[TL_F_DEVICE_TYPE], "desktop");

    const char *strs[] = {"platform", "app_version", "country",     "url", "referrer",
                          "browser",  "os",          "device_type", "ip",  "user_agent"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        char *bad = fmt(EV(",\"%s\":7"), strs[i]);
        char *want = fmt("%s: must be a string", strs[i]);
        BAD(f, bad, want);
        char *absent = fmt(EV(",\"%s\":null"), strs[i]);
        OK(f, absent);
        free(bad), free(want), free(absent);
    }
    /* Short fields: 200 bytes. */
    char *s200 = repeat('v', 200), *s201 = repeat('v', 201);
    const char *shorts[] = {"platform", "app_version", "browser", "os", "device_type"};
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++) {
        char *ok = fmt(EV(",\"%s\":\"%s\""), shorts[i], s200);
        char *bad = fmt(EV(",\"%s\":\"%s\""), shorts[i], s201);
        char *want = fmt("%s: longer than 200 bytes", shorts[i]);
        OK(f, ok);
        BAD(f, bad, want);
        free(ok), free(bad), free(want);
    }
    free(s200), free(s201);
    /* url, referrer, user_agent: max_string_bytes. */
    f->lim.max_string_bytes = 3000;
    char *l3000 = repeat('u', 3000), *l3001 = repeat('u', 3001);
    const char *longs[] = {"url", "referrer", "user_agent"};
    for (size_t i = 0; i < 3; i++) {
        char *ok = fmt(EV(",\"%s\":\"%s\""), longs[i], l3000);
        char *bad = fmt(EV(",\"%s\":\"%s\""), longs[i], l3001);
        char *want = fmt("%s: longer than 3000 bytes", longs[i]);
        OK(f, ok);
        BAD(f, bad, want);
        free(ok), free(bad), free(want);
    }
    free(l3000), free(l3001);

    OK(f, EV(",\"country\":\"DE\""));
    assert_str(f->r.field[TL_F_COUNTRY], "DE");
    OK(f, EV(",\"country\":\"gB\""));
    assert_str(f->r.field[TL_F_COUNTRY], "GB");
    OK(f, EV(",\"country\":\"\""));
    assert_int_equal(f->r.field[TL_F_COUNTRY].len, 0);
    BAD(f, EV(",\"country\":\"DEU\""), "country: must be a two-letter");
    BAD(f, EV(",\"country\":\"D1\""), "country: must be a two-letter");
    BAD(f, EV(",\"country\":\"D\""), "country: must be a two-letter");
    BAD(f, EV(",\"country\":\"\xC3\xA9\""), "country: must be a two-letter");
    BAD(f, EV(",\"country\":\"[@\""), "country: must be a two-letter");

    OK(f, EV(",\"ip\":\"2001:db8::1\""));
    OK(f, EV(",\"ip\":\"::ffff:192.0.2.1\""));
    OK(f, EV(",\"ip\":\"\""));
    BAD(f, EV(",\"ip\":\"256.1.1.1\""), "ip: not an IPv4 or IPv6 address");
    BAD(f, EV(",\"ip\":\"example.com\""), "ip: not an IPv4 or IPv6 address");
    BAD(f, EV(",\"ip\":\"1.2.3.4\\u0000\""), "ip: not an IPv4 or IPv6 address");
}

static void test_unknown_and_duplicate_fields(void **state)
{
    fx *f = *state;
    OK(f, EV(",\"type\":\"track\",\"context\":{\"x\":[1,2]},\"api_key\":\"k\",\"$lib\":1"));
    assert_int_equal(f->r.n_props, 0);
    /* The first occurrence of a field wins. */
    OK(f, "{\"event\":\"first\",\"anonymous_id\":\"a\",\"event\":\"second\"}");
    assert_str(f->r.event, "first");
    OK(f, "{\"event\":\"e\",\"anonymous_id\":\"a\",\"timestamp\":1749999000000,"
          "\"timestamp\":\"bogus\"}");
    assert_int_equal(f->r.ts_ms, TS1);
}

/* ---- properties -------------------------------------------------------------------------- */

static void test_properties_flatten(void **state)
{
    fx *f = *state;
    OK(f, EV(",\"properties\":{\"plan\":\"pro\",\"cart\":{\"total\":12.5,\"items\":3,"
             "\"meta\":{\"coupon\":true}},\"ok\":false,\"gone\":null,\"empty\":{},"
             "\"tags\":[\"a\", 1, {\"b\" : null}, [true]],\"s\":\"x\\\"y\\n\"},"
             "\"user_properties\":{\"email\":\"a@b.c\",\"address\":{\"city\":\"Pokhara\"}}"));
    const tl_record *r = &f->r;
    assert_int_equal(r->n_props, 7);
    const tl_prop *p = prop(r->props, r->n_props, "plan");
    assert_int_equal(p->type, TL_PV_STR);
    assert_str(p->str, "pro");
    p = prop(r->props, r->n_props, "cart.total");
    assert_int_equal(p->type, TL_PV_NUM);
    assert_true(p->num == 12.5);
    assert_true(prop(r->props, r->n_props, "cart.items")->num == 3);
    p = prop(r->props, r->n_props, "cart.meta.coupon");
    assert_int_equal(p->type, TL_PV_STR);
    assert_str(p->str, "true");
    assert_str(prop(r->props, r->n_props, "ok")->str, "false");
    assert_null(prop(r->props, r->n_props, "gone"));
    assert_null(prop(r->props, r->n_props, "empty"));
    p = prop(r->props, r->n_props, "tags");
    assert_int_equal(p->type, TL_PV_STR);
    assert_str(p->str, "[\"a\",1,{\"b\":null},[true]]");
    assert_str(prop(r->props, r->n_props, "s")->str, "x\"y\n");
    /* Sorted by key. */
    for (uint32_t i = 1; i < r->n_props; i++)
        assert_true(tl_str_cmp(r->props[i - 1].key, r->props[i].key) < 0);
    assert_int_equal(r->n_uprops, 2);
    assert_str(prop(r->uprops, r->n_uprops, "email")->str, "a@b.c");
    assert_str(prop(r->uprops, r->n_uprops, "address.city")->str, "Pokhara");

    /* Array text is exactly what tl_json_write writes (escapes, numbers as given). */
    const char *arr = "[\"\\u0001\\t\\\\\", -1.50e+3, \"\xF0\x9F\x98\x80\", {\"k\\\"\":[]}]";
    char *ev = fmt(EV(",\"properties\":{\"a\":%s}"), arr);
    OK(f, ev);
    tl_json *v;
    assert_int_equal(tl_json_parse(f->a, arr, strlen(arr), NULL, &v, NULL), 0);
    tl_buf b = TL_BUF_INIT;
    tl_json_write(&b, v);
    assert_true(tl_str_eq(f->r.props[0].str, tl_buf_str(&b)));
    tl_buf_fini(&b);
    free(ev);

    /* Empty and null property objects. */
    OK(f, EV(",\"properties\":{},\"user_properties\":null"));
    assert_int_equal(f->r.n_props, 0);
    assert_int_equal(f->r.n_uprops, 0);
}

static void test_properties_hand_built(void **state)
{
    /* Compatible formats may build trees by hand: numbers without source text. */
    fx *f = *state;
    tl_json n1 = {.type = TL_JNUM, .num = 2.5}, n2 = {.type = TL_JNUM, .num = 7};
    n1.next = &n2;
    tl_json arr = {.type = TL_JARR, .n = 2, .child = &n1, .key = TL_STR("a")};
    tl_json num = {.type = TL_JNUM, .num = 3, .key = TL_STR("n"), .next = &arr};
    tl_json props = {.type = TL_JOBJ, .n = 2, .child = &num, .key = TL_STR("properties")};
    tl_json anon = {
        .type = TL_JSTR, .str = TL_STR("x"), .key = TL_STR("anonymous_id"), .next = &props};
    tl_json name = {.type = TL_JSTR, .str = TL_STR("e"), .key = TL_STR("event"), .next = &anon};
    tl_json obj = {.type = TL_JOBJ, .n = 3, .child = &name};
    assert_int_equal(tl_ingest_event(f->a, &obj, INT64_MIN, &f->ctx, &f->lim, &f->r, &f->err), 0);
    assert_int_equal(f->r.n_props, 2);
    assert_str(prop(f->r.props, 2, "a")->str, "[2.5,7]");
    assert_true(prop(f->r.props, 2, "n")->num == 3);
}

static void test_properties_limits(void **state)
{
    fx *f = *state;
    BAD(f, EV(",\"properties\":[1]"), "properties: must be an object");
    BAD(f, EV(",\"properties\":\"x\""), "properties: must be an object");
    BAD(f, EV(",\"user_properties\":5"), "user_properties: must be an object");

    /* Count after flattening. */
    f->lim.max_props = 3;
    OK(f, EV(",\"properties\":{\"a\":{\"b\":1,\"c\":2},\"d\":null,\"e\":[1,2,3]}"));
    assert_int_equal(f->r.n_props, 3);
    BAD(f, EV(",\"properties\":{\"a\":{\"b\":1,\"c\":2},\"d\":true,\"e\":[1,2,3]}"),
        "properties: more than 3 properties");
    BAD(f, EV(",\"user_properties\":{\"a\":1,\"b\":2,\"c\":3,\"d\":4}"),
        "user_properties: more than 3 properties");
    f->lim.max_props = 1000;

    /* Nesting: the properties object is level 1. */
    f->lim.max_depth = 3;
    OK(f, EV(",\"properties\":{\"a\":{\"b\":{\"c\":1}}}"));
    assert_str(f->r.props[0].key, "a.b.c");
    BAD(f, EV(",\"properties\":{\"a\":{\"b\":{\"c\":{\"d\":1}}}}"),
        "properties: nested deeper than 3");
    OK(f, EV(",\"properties\":{\"a\":{\"b\":[1]}}"));
    BAD(f, EV(",\"properties\":{\"a\":{\"b\":[[1]]}}"), "properties: nested deeper than 3");
    BAD(f, EV(",\"properties\":{\"a\":[{\"x\":[1]}]}"), "properties: nested deeper than 3");
    /* A little too deep for the limit is one rejected event, not a refused body. */
    assert_int_equal(
        native(f,
               "[" EV(",\"properties\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}}") "," EV("") "]",
               NULL),
        0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->b.rejected, 1);
    f->lim.max_depth = 16;

    /* String values: max_string_bytes, also for array text. */
    f->lim.max_string_bytes = 10;
    OK(f, EV(",\"properties\":{\"a\":\"0123456789\",\"b\":[12345,78]}"));
    BAD(f, EV(",\"properties\":{\"x\":{\"y\":\"0123456789A\"}}"),
        "properties.x.y: longer than 10 bytes");
    BAD(f, EV(",\"properties\":{\"b\":[123456,78]}"), "properties.b: longer than 10 bytes");
    BAD(f, EV(",\"user_properties\":{\"b\":\"0123456789A\"}"),
        "user_properties.b: longer than 10 bytes");
    f->lim.max_string_bytes = 8192;

    /* Flattened keys: at most TL_INGEST_MAX_KEY_BYTES. */
    char *k128 = repeat('k', 128), *k127 = repeat('k', 127);
    char *ok = fmt(EV(",\"properties\":{\"%s\":{\"%s\":1}}"), k127, k128);  /* 256 */
    char *bad = fmt(EV(",\"properties\":{\"%s\":{\"%s\":1}}"), k128, k128); /* 257 */
    OK(f, ok);
    assert_int_equal(f->r.props[0].key.len, 256);
    BAD(f, bad, "properties: key longer than 256 bytes");
    free(k128), free(k127), free(ok), free(bad);
}

static void test_properties_duplicates(void **state)
{
    fx *f = *state;
    OK(f, EV(",\"properties\":{\"a.b\":1,\"a\":{\"b\":2},\"c\":3,\"c\":4}"));
    assert_int_equal(f->r.n_props, 2);
    assert_true(prop(f->r.props, 2, "a.b")->num == 1);
    assert_true(prop(f->r.props, 2, "c")->num == 3);
    /* Many properties take the merge sort; the first of each key still wins. */
    tl_buf b = TL_BUF_INIT;
    tl_buf_adds(&b, EV(",\"properties\":{"));
    b.len--; /* drop the closing brace of EV */
    for (int i = 99; i >= 0; i--)
        tl_buf_printf(&b, "\"k%02d\":%d,", i % 50, i);
    b.p[b.len - 1] = '}';
    tl_buf_adds(&b, "}");
    OK(f, tl_buf_cstr(&b));
    assert_int_equal(f->r.n_props, 50);
    for (uint32_t i = 0; i < 50; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%02u", i);
        assert_str(f->r.props[i].key, k);
        assert_true(f->r.props[i].num == 50 + i);
    }
    tl_buf_fini(&b);
}

/* ---- derived ids --------------------------------------------------------------------------- */

static tl_str derived(fx *f, const char *json, int64_t batch_sent)
{
    if (event_sent(f, json, batch_sent) != 0) fail_msg("refused %s: %s", json, f->err.msg);
    return f->r.event_id;
}

static void test_derived_id(void **state)
{
    fx *f = *state;
    tl_str id = derived(f, EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":1}"), INT64_MIN);
    assert_int_equal(id.len, 33);
    assert_int_equal(id.p[0], '~');
    for (size_t i = 1; i < 33; i++)
        assert_non_null(strchr("0123456789abcdef", id.p[i]));

    /* Retries with another sent_at (event-level or envelope) and a later receive time derive
     * the same id, although their corrected times differ. */
    tl_str a = derived(f,
                       EV(",\"timestamp\":1749999000000,\"sent_at\":1749999001000,"
                          "\"properties\":{\"x\":1}"),
                       INT64_MIN);
    int64_t ts_a = f->r.ts_ms;
    f->ctx.recv_ms = RECV + 60000;
    tl_str b = derived(f,
                       EV(",\"timestamp\":1749999000000,\"sent_at\":1749999061000,"
                          "\"properties\":{\"x\":1}"),
                       INT64_MIN);
    assert_true(f->r.ts_ms == ts_a);
    tl_str c =
        derived(f, EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":1}"), 1749999090000);
    assert_true(tl_str_eq(a, id));
    assert_true(tl_str_eq(b, id));
    assert_true(tl_str_eq(c, id));
    /* The same instant written differently is the same event. */
    tl_str d = derived(
        f, EV(",\"timestamp\":\"2025-06-15T14:50:00.000Z\",\"properties\":{\"x\":1}"), INT64_MIN);
    assert_true(tl_str_eq(d, id));
    /* Property order does not matter (the encoding is sorted). */
    tl_str e1 = derived(f, EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":1,\"y\":\"z\"}"),
                        INT64_MIN);
    tl_str e2 = derived(f, EV(",\"timestamp\":1749999000000,\"properties\":{\"y\":\"z\",\"x\":1}"),
                        INT64_MIN);
    assert_true(tl_str_eq(e1, e2));

    /* Any difference in content gives another id. */
    const char *variants[] = {
        EV(",\"timestamp\":1749999000001,\"properties\":{\"x\":1}"),
        EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":2}"),
        EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":\"1\"}"),
        EV(",\"timestamp\":1749999000000,\"properties\":{\"y\":1}"),
        EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":1},\"user_properties\":{\"x\":1}"),
        EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":1},\"user_id\":\"u\""),
        EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":1},\"session_id\":\"s\""),
        EV(",\"timestamp\":1749999000000,\"properties\":{\"x\":1},\"url\":\"https://x/\""),
        "{\"event\":\"f\",\"anonymous_id\":\"a\",\"timestamp\":1749999000000,"
        "\"properties\":{\"x\":1}}",
        "{\"event\":\"e\",\"anonymous_id\":\"b\",\"timestamp\":1749999000000,"
        "\"properties\":{\"x\":1}}",
        /* Field boundaries are part of the encoding: "a"+"b" ≠ "ab"+"". */
        "{\"event\":\"e\",\"anonymous_id\":\"ab\",\"timestamp\":1749999000000,"
        "\"properties\":{\"x\":1}}",
    };
    tl_str seen[sizeof variants / sizeof variants[0]];
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        seen[i] = derived(f, variants[i], INT64_MIN);
        if (tl_str_eq(seen[i], id)) fail_msg("same id for %s", variants[i]);
        for (size_t j = 0; j < i; j++)
            if (tl_str_eq(seen[i], seen[j]))
                fail_msg("same id for %s and %s", variants[i], variants[j]);
    }
    tl_str ab1 = derived(f, "{\"event\":\"e\",\"anonymous_id\":\"a\",\"user_id\":\"b\"}", 0);
    tl_str ab2 = derived(f, "{\"event\":\"e\",\"anonymous_id\":\"ab\",\"user_id\":\"\"}", 0);
    assert_false(tl_str_eq(ab1, ab2));

    /* Without a client timestamp the receive time goes in: retries cannot be recognised. */
    f->ctx.recv_ms = RECV;
    tl_str n1 = derived(f, EV(""), INT64_MIN);
    f->ctx.recv_ms = RECV + 1;
    tl_str n2 = derived(f, EV(""), INT64_MIN);
    tl_str n3 = derived(f, EV(""), INT64_MIN);
    assert_false(tl_str_eq(n1, n2));
    assert_true(tl_str_eq(n2, n3));

    /* A client id is kept; an empty one is replaced. */
    assert_str(derived(f, EV(",\"event_id\":\"abc\""), INT64_MIN), "abc");
    assert_int_equal(derived(f, EV(",\"event_id\":\"\""), INT64_MIN).len, 33);
}

/* ---- bodies ------------------------------------------------------------------------------ */

static void test_batch_mixed(void **state)
{
    fx *f = *state;
    const char *body = "{\"api_key\":\"wk_1\",\"events\":["
                       "{\"event\":\"ok0\",\"anonymous_id\":\"a\"},"
                       "{\"anonymous_id\":\"a\"},"
                       "{\"event\":\"ok2\",\"user_id\":\"u\"},"
                       "\"not an object\","
                       "{\"event\":\"bad4\",\"anonymous_id\":\"a\",\"timestamp\":\"x\"},"
                       "{\"event\":\"ok5\",\"anonymous_id\":\"a\",\"properties\":{\"k\":1}},"
                       "{\"event\":\"bad6\"}]}";
    assert_int_equal(native(f, body, "application/json"), 0);
    tl_ingest_batch *b = &f->b;
    assert_int_equal(b->n_input, 7);
    assert_int_equal(b->n, 3);
    assert_int_equal(b->rejected, 4);
    assert_str(b->recs[0].event, "ok0");
    assert_str(b->recs[1].event, "ok2");
    assert_str(b->recs[2].event, "ok5");
    assert_int_equal(b->recs[2].n_props, 1);
    assert_int_equal(b->n_errors, 4);
    static const struct {
        uint32_t index;
        const char *msg;
    } want[] = {{1, "event: required"},
                {3, "event: must be an object, not string"},
                {4, "timestamp: not a number"},
                {6, "anonymous_id or user_id"}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(b->errors[i].index, want[i].index);
        if (strncmp(b->errors[i].msg, want[i].msg, strlen(want[i].msg)) != 0)
            fail_msg("error %d: %s", i, b->errors[i].msg);
    }
    assert_str(b->body_key, "wk_1");
}

static void test_batch_many_errors(void **state)
{
    fx *f = *state;
    tl_buf b = TL_BUF_INIT;
    tl_buf_addc(&b, '[');
    for (int i = 0; i < 250; i++)
        tl_buf_adds(&b, i % 5 == 4 ? "{\"event\":\"ok\",\"user_id\":\"u\"}," : "{},");
    b.p[b.len - 1] = ']';
    assert_int_equal(native_n(f, b.p, b.len, NULL), 0);
    assert_int_equal(f->b.n_input, 250);
    assert_int_equal(f->b.n, 50);
    assert_int_equal(f->b.rejected, 200);
    assert_int_equal(f->b.n_errors, TL_INGEST_MAX_ERRORS);
    /* Errors are the first ones, in order, with their body index. */
    assert_int_equal(f->b.errors[0].index, 0);
    assert_int_equal(f->b.errors[4].index, 5);
    assert_int_equal(f->b.errors[99].index, 123);
    tl_buf_fini(&b);
}

static void test_body_forms(void **state)
{
    fx *f = *state;
    /* One event object. */
    assert_int_equal(native(f, EV(",\"api_key\":\"k1\""), NULL), 0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->b.n_input, 1);
    assert_str(f->b.body_key, "k1");
    /* An array; the key comes from the first event. */
    assert_int_equal(native(f, "[" EV(",\"api_key\":\"k2\"") "," EV("") "]", NULL), 0);
    assert_int_equal(f->b.n, 2);
    assert_str(f->b.body_key, "k2");
    assert_int_equal(native(f, "[]", NULL), 0);
    assert_int_equal(f->b.n_input, 0);
    assert_null(f->b.body_key.p);
    /* An envelope; its key wins over the events'. */
    assert_int_equal(native(f, "{\"api_key\":\"k3\",\"events\":[" EV(",\"api_key\":\"x\"") "]}",
                            "application/json; charset=utf-8"),
                     0);
    assert_int_equal(f->b.n, 1);
    assert_str(f->b.body_key, "k3");
    assert_int_equal(native(f, "{\"events\":[" EV(",\"api_key\":\"k4\"") "]}", NULL), 0);
    assert_str(f->b.body_key, "k4");
    assert_int_equal(native(f, "{\"events\":[],\"sent_at\":null}", NULL), 0);
    assert_int_equal(native(f, "{\"events\":[" EV("") "],\"api_key\":7}", NULL), 0);
    assert_null(f->b.body_key.p);
    /* White space, a byte order mark and a pretty-printed single object. */
    assert_int_equal(native(f, "\xEF\xBB\xBF \n[ " EV("") " ]\n", NULL), 0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(native(f, "{\n  \"event\": \"e\",\n  \"anonymous_id\": \"a\"\n}\n", NULL), 0);
    assert_int_equal(f->b.n, 1);

    /* Bodies refused as a whole. */
    static const struct {
        const char *body;
        const char *msg;
    } bad[] = {
        {"", "body: empty"},
        {" \n ", "body: empty"},
        {"nope", "body: invalid JSON"},
        {"[" EV("") ",", "body: invalid JSON"},
        {"[{\"event\":\"\xC0\x80\"}]", "body: invalid JSON"},
        {"\"event\"", "body: expected"},
        {"42", "body: expected"},
        {"{\"events\":{}}", "events: must be an array"},
        {"{\"events\":[],\"sent_at\":\"later\"}", "sent_at: not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (native(f, bad[i].body, NULL) != TL_EINVAL) fail_msg("accepted %s", bad[i].body);
        if (strncmp(f->err.msg, bad[i].msg, strlen(bad[i].msg)) != 0)
            fail_msg("for %s: %s", bad[i].body, f->err.msg);
    }
    /* Nested far deeper than any event may be: refused (400), not too large (413). */
    char *deep = repeat('[', 5000);
    assert_int_equal(native(f, deep, NULL), TL_EINVAL);
    assert_non_null(strstr(f->err.msg, "nested deeper"));
    free(deep);

    /* Body size. */
    f->lim.max_body_bytes = 40;
    const char *b40 = "[{\"event\":\"e\",\"anonymous_id\":\"aaaaaaa\"}]";
    assert_int_equal(strlen(b40), 40);
    assert_int_equal(native(f, b40, NULL), 0);
    assert_int_equal(native(f, "[{\"event\":\"e\",\"anonymous_id\":\"aaaaaaaa\"}]", NULL),
                     TL_E2BIG);
    assert_non_null(strstr(f->err.msg, "body: more than 40 bytes"));
}

static void test_body_memory(void **state)
{
    fx *f = *state;
    /* Many events: the record array grows past its first size. */
    tl_buf b = TL_BUF_INIT;
    tl_buf_addc(&b, '[');
    for (int i = 0; i < 3000; i++)
        tl_buf_printf(&b, "%s{\"event\":\"e%d\",\"user_id\":\"u\"}", i ? "," : "", i);
    tl_buf_addc(&b, ']');
    assert_int_equal(native_n(f, b.p, b.len, NULL), 0);
    assert_int_equal(f->b.n, 3000);
    assert_str(f->b.recs[0].event, "e0");
    assert_str(f->b.recs[2999].event, "e2999");
    /* Rejected events cost no record: 100k of them stay far below 100k records. */
    b.len = 0;
    tl_buf_addc(&b, '[');
    for (int i = 0; i < 100000; i++)
        tl_buf_adds(&b, i ? ",{}" : "{}");
    tl_buf_addc(&b, ']');
    tl_arena_reset(f->a);
    assert_int_equal(native_n(f, b.p, b.len, NULL), 0);
    assert_int_equal(f->b.rejected, 100000);
    assert_true(tl_arena_used(f->a) < 100000 * 100);
    /* The number of JSON values is bounded by max_body_bytes / 8 (at least 4096). */
    f->lim.max_body_bytes = 40000;
    b.len = 0;
    tl_buf_addc(&b, '[');
    for (int i = 0; i < 6000; i++)
        tl_buf_adds(&b, i ? ",0" : "0");
    tl_buf_addc(&b, ']');
    assert_int_equal(native_n(f, b.p, b.len, NULL), TL_E2BIG);
    assert_string_equal(f->err.msg, "body: more than 5000 JSON values");
    /* NDJSON lines share that budget. */
    b.len = 0;
    for (int i = 0; i < 8000; i++)
        tl_buf_adds(&b, "[]\n");
    assert_int_equal(native_n(f, b.p, b.len, "application/x-ndjson"), TL_E2BIG);
    assert_string_equal(f->err.msg, "body: more than 5000 JSON values");
    b.len = 0;
    for (int i = 0; i < 4000; i++)
        tl_buf_adds(&b, "[]\n");
    assert_int_equal(native_n(f, b.p, b.len, "application/x-ndjson"), 0);
    assert_int_equal(f->b.rejected, 4000);
    tl_buf_fini(&b);
}

static void test_event_bytes(void **state)
{
    fx *f = *state;
    const char *ev = EV(",\"properties\":{\"k\":\"0123456789\"}"); /* 58 bytes */
    f->lim.max_event_bytes = (uint32_t)strlen(ev);
    char *arr = fmt("[%s, %s ]", ev, EV(",\"properties\":{\"k\":\"0123456789X\"}"));
    assert_int_equal(native(f, arr, NULL), 0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->b.errors[0].index, 1);
    char *want = fmt("event: more than %u bytes", f->lim.max_event_bytes);
    assert_string_equal(f->b.errors[0].msg, want);
    /* NDJSON: the line's length (without its line break and surrounding blanks). */
    char *nd = fmt("%s\r\n  %s\n%s", ev, EV(",\"properties\":{\"k\":\"0123456789X\"}"), ev);
    assert_int_equal(native(f, nd, "application/x-ndjson"), 0);
    assert_int_equal(f->b.n, 2);
    assert_int_equal(f->b.rejected, 1);
    assert_int_equal(f->b.errors[0].index, 1);
    assert_string_equal(f->b.errors[0].msg, want);
    /* A single-object body too. */
    assert_int_equal(native(f, EV(",\"properties\":{\"k\":\"0123456789X\"}"), NULL), 0);
    assert_int_equal(f->b.rejected, 1);
    free(arr), free(want), free(nd);
}

static void test_ndjson(void **state)
{
    fx *f = *state;
    /* By Content-Type, with a bad line, a non-object line, bad UTF-8 and blank lines. */
    const char *body =
        EV(",\"api_key\":\"nk\"") "\n"
                                  "\n"
                                  "{\"event\":\"x\",\"anonymous_id\":\n"
                                  "  \r\n" EV(
                                      "") "\n"
                                          "[1]\n"
                                          "{\"event\":\"\xED\xA0\x80\",\"anonymous_id\":\"a\"}\n"
                                          "{\"event\":\"last\",\"user_id\":\"u\"}";
    assert_int_equal(native(f, body, "Application/X-NDJSON; charset=utf-8"), 0);
    assert_int_equal(f->b.n_input, 6);
    assert_int_equal(f->b.n, 3);
    assert_int_equal(f->b.rejected, 3);
    assert_str(f->b.recs[2].event, "last");
    assert_str(f->b.body_key, "nk");
    assert_int_equal(f->b.errors[0].index, 1);
    assert_non_null(strstr(f->b.errors[0].msg, "invalid JSON"));
    assert_int_equal(f->b.errors[1].index, 3);
    assert_string_equal(f->b.errors[1].msg, "event: must be an object, not array");
    assert_int_equal(f->b.errors[2].index, 4);
    assert_non_null(strstr(f->b.errors[2].msg, "invalid UTF-8"));

    /* application/ndjson too; a first line that is bad is only that event. */
    assert_int_equal(native(f, "{oops}\n" EV(""), "application/ndjson"), 0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->b.errors[0].index, 0);
    assert_null(f->b.body_key.p);
    /* One line with the NDJSON type is one event. */
    assert_int_equal(native(f, EV(""), "application/x-ndjson"), 0);
    assert_int_equal(f->b.n, 1);

    /* Sniffed: the first line is a whole object and more lines follow. */
    assert_int_equal(native(f, EV(",\"api_key\":\"s\"") "\n" EV("") "\n{bad\n", "text/plain"), 0);
    assert_int_equal(f->b.n_input, 3);
    assert_int_equal(f->b.n, 2);
    assert_int_equal(f->b.errors[0].index, 2);
    assert_str(f->b.body_key, "s");
    assert_int_equal(native(f, EV("") "\r\n" EV(""), NULL), 0);
    assert_int_equal(f->b.n, 2);
    /* Not NDJSON: a pretty-printed object, or one line and trailing blanks. */
    assert_int_equal(native(f, EV("") "\n\n  \n", NULL), 0);
    assert_int_equal(f->b.n_input, 1);
    /* An NDJSON-looking body whose first line is an array is plain JSON, and fails as such. */
    assert_int_equal(native(f, "[" EV("") "]\n" EV(""), NULL), TL_EINVAL);
}

static void test_gzip(void **state)
{
    fx *f = *state;
    const char *json = "[" EV("") "," EV(",\"properties\":{\"x\":1}") "]";
    size_t zlen;
    unsigned char *z = gzip(json, strlen(json), &zlen);
    tl_str out;
    tl_err err;
    /* By header... */
    assert_int_equal(
        tl_ingest_decode_body(f->a, (tl_str){(char *)z, zlen}, TL_STR("gzip"), 1 << 20, &out, &err),
        0);
    assert_true(tl_str_eqc(out, json));
    assert_int_equal(tl_ingest_decode_body(f->a, (tl_str){(char *)z, zlen}, TL_STR(" X-GZip "),
                                           1 << 20, &out, &err),
                     0);
    assert_true(tl_str_eqc(out, json));
    /* ...and by magic bytes, whatever the header says. */
    assert_int_equal(
        tl_ingest_decode_body(f->a, (tl_str){(char *)z, zlen}, TL_STR_NULL, 1 << 20, &out, &err),
        0);
    assert_true(tl_str_eqc(out, json));
    assert_int_equal(tl_ingest_decode_body(f->a, (tl_str){(char *)z, zlen}, TL_STR("identity"),
                                           1 << 20, &out, &err),
                     0);
    assert_true(tl_str_eqc(out, json));
    assert_int_equal(native_n(f, out.p, out.len, NULL), 0);
    assert_int_equal(f->b.n, 2);

    /* Exactly max_bytes is fine; one less is too big. */
    size_t n = strlen(json);
    assert_int_equal(
        tl_ingest_decode_body(f->a, (tl_str){(char *)z, zlen}, TL_STR("gzip"), n, &out, &err), 0);
    assert_int_equal(
        tl_ingest_decode_body(f->a, (tl_str){(char *)z, zlen}, TL_STR("gzip"), n - 1, &out, &err),
        TL_E2BIG);
    char *want = fmt("body: more than %zu bytes after decompression", n - 1);
    assert_string_equal(err.msg, want);
    free(want);

    /* Concatenated members are one body. */
    size_t z2len;
    unsigned char *z2 = gzip("]", 1, &z2len);
    size_t z1len;
    unsigned char *z1 = gzip(json, n - 1, &z1len);
    unsigned char *cat = malloc(z1len + z2len);
    memcpy(cat, z1, z1len);
    memcpy(cat + z1len, z2, z2len);
    assert_int_equal(tl_ingest_decode_body(f->a, (tl_str){(char *)cat, z1len + z2len},
                                           TL_STR("gzip"), 1 << 20, &out, &err),
                     0);
    assert_true(tl_str_eqc(out, json));

    /* Corrupt, truncated, trailing garbage, or a header that lies. */
    unsigned char *bad = malloc(zlen + 1);
    memcpy(bad, z, zlen);
    bad[zlen / 2] ^= 0x55;
    assert_int_equal(tl_ingest_decode_body(f->a, (tl_str){(char *)bad, zlen}, TL_STR("gzip"),
                                           1 << 20, &out, &err),
                     TL_EINVAL);
    assert_non_null(strstr(err.msg, "body: "));
    memcpy(bad, z, zlen);
    bad[zlen - 1] ^= 1; /* ISIZE */
    assert_int_equal(tl_ingest_decode_body(f->a, (tl_str){(char *)bad, zlen}, TL_STR("gzip"),
                                           1 << 20, &out, &err),
                     TL_EINVAL);
    assert_int_equal(tl_ingest_decode_body(f->a, (tl_str){(char *)z, zlen - 10}, TL_STR("gzip"),
                                           1 << 20, &out, &err),
                     TL_EINVAL);
    assert_string_equal(err.msg, "body: truncated gzip stream");
    memcpy(bad, z, zlen);
    bad[zlen] = '!';
    assert_int_equal(tl_ingest_decode_body(f->a, (tl_str){(char *)bad, zlen + 1}, TL_STR("gzip"),
                                           1 << 20, &out, &err),
                     TL_EINVAL);
    assert_string_equal(err.msg, "body: trailing bytes after the gzip stream");
    assert_int_equal(
        tl_ingest_decode_body(f->a, tl_str_c(json), TL_STR("gzip"), 1 << 20, &out, &err),
        TL_EINVAL);
    assert_int_equal(tl_ingest_decode_body(f->a, tl_str_c(json), TL_STR("br"), 1 << 20, &out, &err),
                     TL_EINVAL);
    assert_string_equal(err.msg, "body: unsupported Content-Encoding \"br\"");
    assert_int_equal(
        tl_ingest_decode_body(f->a, tl_str_c(json), TL_STR("b\xffr"), 1 << 20, &out, &err),
        TL_EINVAL);
    assert_string_equal(err.msg, "body: unsupported Content-Encoding \"\""); /* not echoed */

    /* Plain bodies pass through, bounded too. */
    assert_int_equal(tl_ingest_decode_body(f->a, tl_str_c(json), TL_STR_NULL, 1 << 20, &out, &err),
                     0);
    assert_ptr_equal(out.p, json);
    assert_int_equal(tl_ingest_decode_body(f->a, tl_str_c(json), TL_STR_NULL, 10, &out, &err),
                     TL_E2BIG);
    assert_int_equal(tl_ingest_decode_body(f->a, TL_STR(""), TL_STR("gzip"), 10, &out, &err), 0);
    assert_int_equal(out.len, 0);

    /* A gzip bomb stops at the limit. */
    size_t big = 4 << 20;
    char *zeros = calloc(1, big);
    size_t zblen;
    unsigned char *zb = gzip(zeros, big, &zblen);
    assert_int_equal(
        tl_ingest_decode_body(f->a, (tl_str){(char *)zb, zblen}, TL_STR_NULL, 1 << 20, &out, &err),
        TL_E2BIG);
    assert_int_equal(
        tl_ingest_decode_body(f->a, (tl_str){(char *)zb, zblen}, TL_STR_NULL, 8 << 20, &out, &err),
        0);
    assert_int_equal(out.len, big);
    /* The last member's ISIZE (1) is a bad first guess: the output grows past it. */
    unsigned char *zc = malloc(zblen + z2len);
    memcpy(zc, zb, zblen);
    memcpy(zc + zblen, z2, z2len);
    assert_int_equal(tl_ingest_decode_body(f->a, (tl_str){(char *)zc, zblen + z2len}, TL_STR_NULL,
                                           8 << 20, &out, &err),
                     0);
    assert_int_equal(out.len, big + 1);
    assert_int_equal(out.p[big], ']');
    assert_int_equal(out.p[big - 1], 0);
    free(zc);
    free(zeros), free(zb), free(z), free(z1), free(z2), free(cat), free(bad);
}

static void test_pixel(void **state)
{
    fx *f = *state;
    tl_str k[] = {TL_STR("key"),
                  TL_STR("event"),
                  TL_STR("anonymous_id"),
                  TL_STR("url"),
                  TL_STR("p.plan"),
                  TL_STR("properties.cart.n"),
                  TL_STR("timestamp"),
                  TL_STR("country"),
                  TL_STR("event"),
                  TL_STR("_"),
                  TL_STR("user_properties.email")};
    tl_str v[] = {
        TL_STR("wk"),   TL_STR("pageview"),      TL_STR("a1"), TL_STR("https://x/"), TL_STR("pro"),
        TL_STR("3"),    TL_STR("1749999000000"), TL_STR("np"), TL_STR("ignored"),    TL_STR("123"),
        TL_STR("a@b.c")};
    size_t n = sizeof k / sizeof k[0];
    assert_int_equal(tl_ingest_pixel(f->a, k, v, n, &f->ctx, &f->lim, &f->r, &f->err), 0);
    const tl_record *r = &f->r;
    assert_str(r->event, "pageview");
    assert_str(r->anonymous_id, "a1");
    assert_str(r->field[TL_F_URL], "https://x/");
    assert_str(r->field[TL_F_COUNTRY], "NP");
    assert_int_equal(r->ts_ms, TS1);
    assert_int_equal(r->n_props, 2);
    assert_int_equal(prop(r->props, 2, "plan")->type, TL_PV_STR);
    assert_str(prop(r->props, 2, "plan")->str, "pro");
    assert_str(prop(r->props, 2, "cart.n")->str, "3");
    assert_int_equal(r->n_uprops, 1);
    assert_int_equal(r->event_id.len, 33);

    /* ISO timestamps, sent_at skew, ids. */
    tl_str k2[] = {TL_STR("event"),    TL_STR("user_id"),    TL_STR("timestamp"), TL_STR("sent_at"),
                   TL_STR("event_id"), TL_STR("session_id"), TL_STR("platform")};
    tl_str v2[] = {TL_STR("e"),
                   TL_STR("u"),
                   TL_STR("2025-06-15T15:00:00Z"),
                   TL_STR("2025-06-15T15:00:10Z"),
                   TL_STR("id9"),
                   TL_STR("s"),
                   TL_STR("web")};
    assert_int_equal(tl_ingest_pixel(f->a, k2, v2, 7, &f->ctx, &f->lim, &f->r, &f->err), 0);
    assert_int_equal(f->r.ts_ms, RECV - 10000);
    assert_str(f->r.event_id, "id9");
    assert_str(f->r.session_id, "s");
    assert_str(f->r.field[TL_F_PLATFORM], "web");

    /* Failures name the field. */
    tl_str k3[] = {TL_STR("anonymous_id")};
    tl_str v3[] = {TL_STR("a")};
    assert_int_equal(tl_ingest_pixel(f->a, k3, v3, 1, &f->ctx, &f->lim, &f->r, &f->err), TL_EINVAL);
    assert_string_equal(f->err.msg, "event: required");
    tl_str k4[] = {TL_STR("event"), TL_STR("anonymous_id"), TL_STR("url")};
    tl_str v4[] = {TL_STR("e"), TL_STR("a"), TL_STR("https://x/\xC3")};
    assert_int_equal(tl_ingest_pixel(f->a, k4, v4, 3, &f->ctx, &f->lim, &f->r, &f->err), TL_EINVAL);
    assert_string_equal(f->err.msg, "url: not valid UTF-8");
    v4[2] = TL_STR("https://x/");
    k4[2] = TL_STR("timestamp");
    v4[2] = TL_STR("2025-06-15 15:00");
    assert_int_equal(tl_ingest_pixel(f->a, k4, v4, 3, &f->ctx, &f->lim, &f->r, &f->err), TL_EINVAL);
    assert_string_equal(f->err.msg, "timestamp: not a number or ISO-8601 date with a zone");
    k4[2] = TL_STR("p.x");
    v4[2] = TL_STR("\xFF");
    assert_int_equal(tl_ingest_pixel(f->a, k4, v4, 3, &f->ctx, &f->lim, &f->r, &f->err), TL_EINVAL);
    assert_string_equal(f->err.msg, "properties.x: not valid UTF-8");
    f->lim.max_string_bytes = 2;
    v4[2] = TL_STR("abc");
    assert_int_equal(tl_ingest_pixel(f->a, k4, v4, 3, &f->ctx, &f->lim, &f->r, &f->err), TL_EINVAL);
    assert_string_equal(f->err.msg, "properties.x: longer than 2 bytes");
    f->lim.max_props = 0;
    assert_int_equal(tl_ingest_pixel(f->a, k4, v4, 3, &f->ctx, &f->lim, &f->r, &f->err), TL_EINVAL);
    assert_string_equal(f->err.msg, "properties: more than 0 properties");
    /* NULL values (key without '=') are empty strings. */
    tl_str k5[] = {TL_STR("event"), TL_STR("anonymous_id"), TL_STR("p.flag")};
    tl_str v5[] = {TL_STR("e"), TL_STR("a"), TL_STR_NULL};
    f->lim.max_props = 10;
    assert_int_equal(tl_ingest_pixel(f->a, k5, v5, 3, &f->ctx, &f->lim, &f->r, &f->err), 0);
    assert_int_equal(f->r.n_props, 1);
}

static void test_record_roundtrip(void **state)
{
    /* What ingest produces encodes and decodes unchanged. */
    fx *f = *state;
    OK(f, EV(",\"user_id\":\"u\",\"session_id\":\"s\",\"platform\":\"ios\",\"timestamp\":"
             "1749999000000,\"properties\":{\"a\":{\"b\":1.5,\"c\":\"d\"}},"
             "\"user_properties\":{\"e\":true}"));
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(&f->r, &b);
    tl_record d;
    assert_int_equal(tl_record_decode(b.p, b.len, f->a, &d, &f->err), 0);
    assert_true(tl_str_eq(d.event_id, f->r.event_id));
    assert_int_equal(d.ts_ms, TS1);
    assert_int_equal(d.n_props, 2);
    assert_str(d.props[0].key, "a.b");
    assert_true(d.props[0].num == 1.5);
    assert_str(d.uprops[0].str, "true");
    tl_buf_fini(&b);
}

/* tl_ingest_encode: the kept records of a batch, in order, each under the project, one slice
 * per record of a buffer that already held something (offsets survive its growth). */
static void test_encode_batch(void **state)
{
    fx *f = *state;
    tl_buf big = TL_BUF_INIT;
    tl_buf_adds(&big, "[");
    for (int i = 0; i < 300; i++)
        tl_buf_printf(&big,
                      "%s{\"event\":\"e%d\",\"anonymous_id\":\"a\",\"properties\":"
                      "{\"pad\":\"%0200d\"}}",
                      i ? "," : "", i, i);
    tl_buf_adds(&big, "]");
    assert_int_equal(native_n(f, big.p, big.len, NULL), 0);
    assert_int_equal(f->b.n, 300);
    bool keep[300];
    for (int i = 0; i < 300; i++)
        keep[i] = i % 3 != 1;
    tl_buf enc = TL_BUF_INIT;
    tl_buf_adds(&enc, "before");
    tl_str *s = NULL;
    size_t n = tl_ingest_encode(f->a, &f->b, TL_STR("proj"), keep, &enc, &s);
    assert_int_equal(n, 200);
    assert_memory_equal(enc.p, "before", 6);
    int want = 0;
    for (size_t i = 0; i < n; i++, want++) {
        while (want % 3 == 1)
            want++;
        tl_record d;
        assert_true(s[i].p >= enc.p && s[i].p + s[i].len <= enc.p + enc.len);
        assert_int_equal(tl_record_decode(s[i].p, s[i].len, f->a, &d, &f->err), 0);
        char name[16];
        snprintf(name, sizeof name, "e%d", want);
        assert_str(d.event, name);
        assert_str(d.project, "proj");
    }
    assert_ptr_equal(s[n - 1].p + s[n - 1].len, enc.p + enc.len);
    /* keep NULL: every record; an empty batch: none */
    enc.len = 0;
    assert_int_equal(tl_ingest_encode(f->a, &f->b, TL_STR("p2"), NULL, &enc, &s), 300);
    assert_str(f->b.recs[299].project, "p2");
    tl_ingest_batch empty = {0};
    assert_int_equal(tl_ingest_encode(f->a, &empty, TL_STR("p"), NULL, &enc, &s), 0);
    assert_non_null(s);
    tl_buf_fini(&enc);
    tl_buf_fini(&big);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_event_name),
        T(test_ids),
        T(test_id_required),
        T(test_time_values),
        T(test_timestamp_rules),
        T(test_skew),
        T(test_fields),
        T(test_unknown_and_duplicate_fields),
        T(test_properties_flatten),
        T(test_properties_hand_built),
        T(test_properties_limits),
        T(test_properties_duplicates),
        T(test_derived_id),
        T(test_batch_mixed),
        T(test_batch_many_errors),
        T(test_body_forms),
        T(test_body_memory),
        T(test_event_bytes),
        T(test_ndjson),
        T(test_gzip),
        T(test_pixel),
        T(test_record_roundtrip),
        T(test_encode_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
