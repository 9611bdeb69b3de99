/* Unit tests of the compatible formats (compat.h): for each of Segment, PostHog, Snowplow,
 * Plausible and GA4, the sample bodies of WIRE.md and what the official clients send map to
 * the native fields, identity calls become TL_REC_IDENTIFY records, client ids become
 * event_ids, clock skew is corrected the native way, and bad events are rejected alone. */
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

#include "compat.h"
#include "util/buf.h"
#include "util/time.h"

#define RECV 1750000000000LL /* 2025-06-15T15:06:40Z */

typedef struct fx {
    tl_arena *a;
    tl_ingest_ctx ctx;
    tl_ingest_batch b;
    tl_err err;
    tl_str k[16], v[16];
    size_t n_args;
    tl_str salt;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->a = tl_arena_new();
    f->ctx.recv_ms = RECV;
    f->ctx.ip = TL_STR("203.0.113.7");
    f->ctx.user_agent = TL_STR("Mozilla/5.0 test");
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

static void arg(fx *f, const char *k, const char *v)
{
    f->k[f->n_args] = tl_str_c(k);
    f->v[f->n_args] = tl_str_c(v);
    f->n_args++;
}

static int parse_n(fx *f, tl_compat_fmt fmt, const char *path, const char *body, size_t len,
                   const char *ct, const char *ce)
{
    tl_compat_in in = {.path = tl_str_c(path),
                       .body = {body, len},
                       .content_type = tl_str_c(ct),
                       .content_encoding = tl_str_c(ce),
                       .arg_k = f->k,
                       .arg_v = f->v,
                       .n_args = f->n_args,
                       .salt = f->salt};
    memset(&f->err, 0, sizeof f->err);
    return tl_compat_parse(fmt, f->a, &in, &f->ctx, NULL, &f->b, &f->err);
}

static int parse(fx *f, tl_compat_fmt fmt, const char *path, const char *body)
{
    return parse_n(f, fmt, path, body, strlen(body), NULL, NULL);
}

static void assert_str(tl_str s, const char *want)
{
    if (!tl_str_eqc(s, want)) {
        print_error("got \"%.*s\", want \"%s\"\n", (int)s.len, s.p ? s.p : "", want);
        fail();
    }
}

static const tl_prop *prop(const tl_prop *p, uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++)
        if (tl_str_eqc(p[i].key, key)) return &p[i];
    return NULL;
}

static void assert_sprop(const tl_record *r, const char *key, const char *want)
{
    const tl_prop *p = prop(r->props, r->n_props, key);
    assert_non_null(p);
    assert_int_equal(p->type, TL_PV_STR);
    assert_str(p->str, want);
}

static void assert_uprop(const tl_record *r, const char *key, const char *want, bool once)
{
    const tl_prop *p = prop(r->uprops, r->n_uprops, key);
    assert_non_null(p);
    assert_int_equal(TL_PV_TYPE(p->type), TL_PV_STR);
    assert_int_equal(!!(p->type & TL_PV_ONCE), once);
    assert_str(p->str, want);
}

static tl_str gz(tl_arena *a, const char *s)
{
    uLongf cap = compressBound(strlen(s)) + 32;
    char *o = tl_arena_alloc(a, cap);
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)s;
    z.avail_in = (uInt)strlen(s);
    z.next_out = (Bytef *)o;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = z.total_out;
    deflateEnd(&z);
    return (tl_str){o, n};
}

static tl_str b64(tl_arena *a, tl_str s)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = tl_arena_alloc(a, s.len / 3 * 4 + 8);
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s.p;
    for (size_t i = 0; i < s.len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < s.len ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < s.len ? p[i + 2] : 0);
        o[n++] = t[v >> 18 & 63];
        o[n++] = t[v >> 12 & 63];
        o[n++] = i + 1 < s.len ? t[v >> 6 & 63] : '=';
        o[n++] = i + 2 < s.len ? t[v & 63] : '=';
    }
    o[n] = 0;
    return (tl_str){o, n};
}

/* ---- shared ----------------------------------------------------------------------------- */

static void test_paths(void **state)
{
    assert_int_equal(tl_compat_by_path(TL_STR("/v1/track")), TL_COMPAT_SEGMENT);
    assert_int_equal(tl_compat_by_path(TL_STR("/v1/batch")), TL_COMPAT_SEGMENT);
    assert_int_equal(tl_compat_by_path(TL_STR("/i/v0/e/")), TL_COMPAT_POSTHOG);
    assert_int_equal(tl_compat_by_path(TL_STR("/e/")), TL_COMPAT_POSTHOG);
    assert_int_equal(tl_compat_by_path(TL_STR("/batch/")), TL_COMPAT_POSTHOG);
    assert_int_equal(tl_compat_by_path(TL_STR("/com.snowplowanalytics.snowplow/tp2")),
                     TL_COMPAT_SNOWPLOW);
    assert_int_equal(tl_compat_by_path(TL_STR("/i")), TL_COMPAT_SNOWPLOW);
    assert_int_equal(tl_compat_by_path(TL_STR("/api/event")), TL_COMPAT_PLAUSIBLE);
    assert_int_equal(tl_compat_by_path(TL_STR("/mp/collect")), TL_COMPAT_GA4);
    assert_int_equal(tl_compat_by_path(TL_STR("/collect")), -1);
    assert_int_equal(tl_compat_by_path(TL_STR("/v1/trackx")), -1);
    assert_string_equal(tl_compat_name(TL_COMPAT_PLAUSIBLE), "plausible");
}

static void test_decoders(void **state)
{
    fx *f = *state;
    tl_str o;
    assert_int_equal(tl_compat_base64_decode(f->a, TL_STR("aGVsbG8="), &o), 5);
    assert_str(o, "hello");
    assert_int_equal(tl_compat_base64_decode(f->a, TL_STR("aGVsbG8"), &o), 5); /* no padding */
    assert_int_equal(tl_compat_base64_decode(f->a, TL_STR("P_8-"), &o), 3);    /* URL-safe */
    assert_memory_equal(o.p, "?\xff>", 3);
    assert_int_equal(tl_compat_base64_decode(f->a, TL_STR("aGV\nsbG8="), &o), 5);
    assert_true(tl_compat_base64_decode(f->a, TL_STR("a!"), &o) < 0);
    assert_true(tl_compat_base64_decode(f->a, TL_STR("a"), &o) < 0);
    assert_true(tl_compat_base64_decode(f->a, TL_STR("aG==aG"), &o) < 0);
    assert_int_equal(tl_compat_url_decode(f->a, TL_STR("a%20b+c%2B"), &o), 6);
    assert_str(o, "a b c+");
    assert_true(tl_compat_url_decode(f->a, TL_STR("a%2"), &o) < 0);
    assert_true(tl_compat_url_decode(f->a, TL_STR("%zz"), &o) < 0);
}

/* ---- Segment ---------------------------------------------------------------------------- */

static void test_segment_track(void **state)
{
    fx *f = *state;
    assert_int_equal(
        parse(f, TL_COMPAT_SEGMENT, "/v1/track",
              "{\"type\":\"track\",\"userId\":\"019mr8mf4r\",\"anonymousId\":\"a1b2c3\","
              "\"event\":\"Item Purchased\",\"properties\":{\"revenue\":14.99},"
              "\"context\":{\"ip\":\"24.5.68.47\",\"library\":{\"name\":\"@segment/analytics-"
              "node\",\"version\":\"3.1.0\"},\"app\":{\"version\":\"2.1\"},\"os\":{\"name\":"
              "\"iOS\"},\"page\":{\"url\":\"https://x.io/a\",\"referrer\":\"https://g.co/\"},"
              "\"userAgent\":\"UA\",\"location\":{\"country\":\"np\"}},"
              "\"timestamp\":\"2025-06-15T15:00:00.000Z\",\"sentAt\":\"2025-06-15T15:00:10Z\","
              "\"messageId\":\"node-next-1\"}"),
        0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->b.n_input, 1);
    const tl_record *r = &f->b.recs[0];
    assert_int_equal(r->kind, TL_REC_EVENT);
    assert_str(r->event, "Item Purchased");
    assert_str(r->event_id, "node-next-1");
    assert_str(r->user_id, "019mr8mf4r");
    assert_str(r->anonymous_id, "a1b2c3");
    assert_str(r->field[TL_F_PLATFORM], "@segment/analytics-node");
    assert_str(r->field[TL_F_APP_VERSION], "2.1");
    assert_str(r->field[TL_F_OS], "iOS");
    assert_str(r->field[TL_F_URL], "https://x.io/a");
    assert_str(r->field[TL_F_REFERRER], "https://g.co/");
    assert_str(r->field[TL_F_COUNTRY], "NP");
    /* received − (sentAt − timestamp) */
    assert_int_equal(r->ts_ms, RECV - 10000);
    assert_int_equal(r->n_props, 1);
    assert_int_equal(r->props[0].type, TL_PV_NUM);
    assert_true(r->props[0].num == 14.99);
}

static void test_segment_batch(void **state)
{
    fx *f = *state;
    assert_int_equal(
        parse(f, TL_COMPAT_SEGMENT, "/v1/batch",
              "{\"batch\":[{\"type\":\"identify\",\"userId\":\"u1\",\"anonymousId\":\"a1\","
              "\"traits\":{\"email\":\"j@x.io\"},\"messageId\":\"m1\"},"
              "{\"type\":\"alias\",\"previousId\":\"a2\",\"userId\":\"u1\"},"
              "{\"type\":\"group\",\"userId\":\"u1\",\"groupId\":\"acme\",\"traits\":{"
              "\"employees\":420}},"
              "{\"type\":\"page\",\"userId\":\"u1\",\"name\":\"Pricing\",\"properties\":{"
              "\"url\":\"https://x.io/p\"}},"
              "{\"type\":\"screen\",\"userId\":\"u1\",\"name\":\"Home\"},"
              "{\"type\":\"track\",\"userId\":\"u1\"},"
              "{\"userId\":\"u1\",\"event\":\"x\"},"
              "{\"type\":\"track\",\"event\":\"y\"},"
              "{\"type\":\"track\",\"event\":\"z\",\"anonymousId\":\"a1\","
              "\"timestamp\":\"2025-06-15T14:00:00Z\"}],"
              "\"writeKey\":\"wk_demo\",\"sentAt\":\"2025-06-15T14:00:05Z\","
              "\"context\":{\"library\":{\"name\":\"lib\"}}}"),
        0);
    assert_str(f->b.body_key, "wk_demo");
    assert_int_equal(f->b.n_input, 9);
    assert_int_equal(f->b.n, 6);
    assert_int_equal(f->b.rejected, 3);
    assert_int_equal(f->b.errors[0].index, 5);
    assert_non_null(strstr(f->b.errors[0].msg, "event"));
    assert_int_equal(f->b.errors[1].index, 6);
    assert_non_null(strstr(f->b.errors[1].msg, "type"));
    assert_int_equal(f->b.errors[2].index, 7);
    assert_non_null(strstr(f->b.errors[2].msg, "anonymous_id or user_id"));

    const tl_record *r = f->b.recs;
    assert_int_equal(r[0].kind, TL_REC_IDENTIFY);
    assert_str(r[0].event_id, "m1");
    assert_str(r[0].anonymous_id, "a1");
    assert_str(r[0].user_id, "u1");
    assert_uprop(&r[0], "email", "j@x.io", false);
    assert_int_equal(r[1].kind, TL_REC_IDENTIFY);
    assert_str(r[1].anonymous_id, "a2");
    assert_str(r[1].user_id, "u1");
    assert_int_equal(r[2].kind, TL_REC_IDENTIFY);
    assert_uprop(&r[2], "group_id", "acme", false);
    assert_non_null(prop(r[2].uprops, r[2].n_uprops, "group.employees"));
    assert_int_equal(r[3].kind, TL_REC_EVENT);
    assert_str(r[3].event, "$pageview");
    assert_str(r[3].field[TL_F_URL], "https://x.io/p");
    assert_sprop(&r[3], "name", "Pricing");
    assert_str(r[3].field[TL_F_PLATFORM], "lib"); /* the batch's context */
    assert_str(r[4].event, "$screen");
    assert_sprop(&r[4], "name", "Home");
    /* the batch's sentAt corrects skew */
    assert_str(r[5].event, "z");
    assert_int_equal(r[5].ts_ms, RECV - 5000);
}

static void test_segment_bad_body(void **state)
{
    fx *f = *state;
    assert_int_equal(parse(f, TL_COMPAT_SEGMENT, "/v1/track", "[1]"), TL_EINVAL);
    assert_int_equal(parse(f, TL_COMPAT_SEGMENT, "/v1/track", "nope"), TL_EINVAL);
    assert_int_equal(parse(f, TL_COMPAT_SEGMENT, "/v1/batch", "{\"batch\":3}"), TL_EINVAL);
    assert_int_equal(parse(f, TL_COMPAT_SEGMENT, "/v1/track",
                           "{\"event\":\"e\",\"userId\":\"u\",\"type\":\"bogus\"}"),
                     0);
    assert_int_equal(f->b.rejected, 1);
    /* built-in fields from the SDK's context: empty or mistyped values are dropped, not fatal */
    assert_int_equal(parse(f, TL_COMPAT_SEGMENT, "/v1/page",
                           "{\"anonymousId\":\"a\",\"properties\":{\"url\":\"https://u/\","
                           "\"referrer\":\"\"},\"context\":{\"page\":{\"referrer\":\"https://r/\"},"
                           "\"library\":{\"name\":7},\"os\":{\"name\":\"\"}}}"),
                     0);
    assert_int_equal(f->b.n, 1);
    assert_str(f->b.recs[0].field[TL_F_URL], "https://u/");
    assert_str(f->b.recs[0].field[TL_F_REFERRER], "https://r/");
    assert_int_equal(f->b.recs[0].field[TL_F_PLATFORM].len, 0);
    /* analytics.js short paths */
    assert_int_equal(tl_compat_by_path(TL_STR("/v1/p")), TL_COMPAT_SEGMENT);
    assert_int_equal(parse(f, TL_COMPAT_SEGMENT, "/v1/p", "{\"anonymousId\":\"a\"}"), 0);
    assert_str(f->b.recs[0].event, "$pageview");
    assert_int_equal(
        parse(f, TL_COMPAT_SEGMENT, "/v1/i", "{\"anonymousId\":\"a\",\"userId\":\"u\"}"), 0);
    assert_int_equal(f->b.recs[0].kind, TL_REC_IDENTIFY);
    assert_int_equal(parse(f, TL_COMPAT_SEGMENT, "/v1/b",
                           "{\"batch\":[{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\"}]}"),
                     0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(parse(f, TL_COMPAT_SEGMENT, "/v1/x", "{\"userId\":\"u\",\"event\":\"e\"}"), 0);
    assert_int_equal(f->b.rejected, 1); /* unknown type */
    /* the path gives the type; a gzip body is read */
    tl_str g = gz(f->a, "{\"userId\":42,\"event\":\"e\"}");
    assert_int_equal(parse_n(f, TL_COMPAT_SEGMENT, "/v1/track/", g.p, g.len, NULL, NULL), 0);
    assert_int_equal(f->b.n, 1);
    assert_str(f->b.recs[0].user_id, "42");
}

/* ---- PostHog ---------------------------------------------------------------------------- */

static const char g_ph_batch[] =
    "{\"api_key\":\"phc_XXX\",\"sent_at\":\"2025-06-15T15:00:05Z\",\"historical_migration\":"
    "false,\"batch\":[{\"event\":\"$pageview\",\"distinct_id\":\"anon-123\",\"properties\":{"
    "\"$current_url\":\"https://x/\",\"$referrer\":\"$direct\",\"$lib\":\"web\",\"$os\":"
    "\"Mac OS X\",\"$browser\":\"Chrome\",\"$session_id\":\"s1\",\"$user_state\":"
    "\"anonymous\",\"$lib_version\":\"1.2\"},\"timestamp\":\"2025-06-15T15:00:00Z\",\"uuid\":"
    "\"0190c2a0-7b1e-7c3e-9d1a-2f4c5e6a7b8c\"},"
    "{\"event\":\"$identify\",\"distinct_id\":\"user_42\",\"properties\":{"
    "\"$anon_distinct_id\":\"anon-123\",\"$set\":{\"email\":\"a@b.c\"},\"$set_once\":{"
    "\"first\":\"x\"}}},"
    "{\"event\":\"$create_alias\",\"distinct_id\":\"user_42\",\"properties\":{"
    "\"distinct_id\":\"user_42\",\"alias\":\"legacy-7\"}},"
    "{\"event\":\"$groupidentify\",\"distinct_id\":\"$company_acme\",\"properties\":{"
    "\"$group_type\":\"company\",\"$group_key\":\"acme\",\"$group_set\":{\"plan\":\"pro\"}}},"
    "{\"event\":\"signed_up\",\"distinct_id\":\"user_42\",\"properties\":{\"plan\":\"pro\","
    "\"$user_state\":\"identified\",\"$set\":{\"plan\":\"pro\"},\"$set_once\":{\"s\":\"1\"}}},"
    "{\"event\":\"x\"}]}";

static void test_posthog_batch(void **state)
{
    fx *f = *state;
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/batch/", g_ph_batch), 0);
    assert_str(f->b.body_key, "phc_XXX");
    assert_int_equal(f->b.n_input, 5); /* $groupidentify is not counted */
    assert_int_equal(f->b.rejected, 1);
    assert_int_equal(f->b.errors[0].index, 5);
    assert_int_equal(f->b.n, 6);
    const tl_record *r = f->b.recs;
    assert_int_equal(r[0].kind, TL_REC_EVENT);
    assert_str(r[0].event, "$pageview");
    assert_str(r[0].anonymous_id, "anon-123");
    assert_int_equal(r[0].user_id.len, 0);
    assert_str(r[0].event_id, "0190c2a0-7b1e-7c3e-9d1a-2f4c5e6a7b8c");
    assert_str(r[0].field[TL_F_URL], "https://x/");
    assert_int_equal(r[0].field[TL_F_REFERRER].len, 0);
    assert_str(r[0].field[TL_F_PLATFORM], "web");
    assert_str(r[0].field[TL_F_OS], "Mac OS X");
    assert_str(r[0].field[TL_F_BROWSER], "Chrome");
    assert_str(r[0].session_id, "s1");
    assert_int_equal(r[0].ts_ms, RECV - 5000);
    assert_int_equal(r[0].n_props, 1); /* mapped ones removed; $lib_version kept */
    assert_sprop(&r[0], "$lib_version", "1.2");
    /* $identify: the merge, then the self link */
    assert_int_equal(r[1].kind, TL_REC_IDENTIFY);
    assert_str(r[1].anonymous_id, "anon-123");
    assert_str(r[1].user_id, "user_42");
    assert_uprop(&r[1], "email", "a@b.c", false);
    assert_uprop(&r[1], "first", "x", true);
    assert_int_equal(r[2].kind, TL_REC_IDENTIFY);
    assert_str(r[2].anonymous_id, "user_42");
    assert_str(r[2].user_id, "user_42");
    assert_false(tl_str_eq(r[1].event_id, r[2].event_id));
    /* $create_alias */
    assert_str(r[3].anonymous_id, "legacy-7");
    assert_str(r[3].user_id, "user_42");
    assert_str(r[4].anonymous_id, "user_42");
    /* an identified event */
    assert_int_equal(r[5].kind, TL_REC_EVENT);
    assert_str(r[5].user_id, "user_42");
    assert_int_equal(r[5].anonymous_id.len, 0);
    assert_sprop(&r[5], "plan", "pro");
    assert_int_equal(r[5].n_props, 1);
    assert_uprop(&r[5], "plan", "pro", false);
    assert_uprop(&r[5], "s", "1", true);
}

static void test_posthog_encodings(void **state)
{
    fx *f = *state;
    const char *ev = "[{\"event\":\"e1\",\"distinct_id\":7,\"properties\":{\"token\":\"phc_t\"}}]";
    /* gzip-js: gzip bytes as text/plain, by magic */
    tl_str g = gz(f->a, ev);
    f->n_args = 0;
    arg(f, "compression", "gzip-js");
    assert_int_equal(parse_n(f, TL_COMPAT_POSTHOG, "/e/", g.p, g.len, "text/plain", NULL), 0);
    assert_int_equal(f->b.n, 1);
    assert_str(f->b.body_key, "phc_t");
    assert_str(f->b.recs[0].anonymous_id, "7");
    /* gzip by header */
    f->n_args = 0;
    assert_int_equal(parse_n(f, TL_COMPAT_POSTHOG, "/batch/", g.p, g.len, NULL, "gzip"), 0);
    assert_int_equal(f->b.n, 1);
    /* sendBeacon: data=<base64>, urlencoded, compression=base64 in the query */
    tl_str b = b64(f->a, tl_str_c(ev));
    tl_buf form = TL_BUF_INIT;
    tl_buf_adds(&form, "data=");
    for (size_t i = 0; i < b.len; i++) {
        if (b.p[i] == '+' || b.p[i] == '/' || b.p[i] == '=')
            tl_buf_printf(&form, "%%%02X", (unsigned char)b.p[i]);
        else
            tl_buf_addc(&form, b.p[i]);
    }
    f->n_args = 0;
    arg(f, "compression", "base64");
    assert_int_equal(parse_n(f, TL_COMPAT_POSTHOG, "/e/", form.p, form.len,
                             "application/x-www-form-urlencoded", NULL),
                     0);
    assert_int_equal(f->b.n, 1);
    assert_str(f->b.recs[0].event, "e1");
    tl_buf_fini(&form);
    /* base64 without a hint (not JSON), and GET ?data= */
    f->n_args = 0;
    assert_int_equal(parse_n(f, TL_COMPAT_POSTHOG, "/e/", b.p, b.len, NULL, NULL), 0);
    assert_int_equal(f->b.n, 1);
    arg(f, "data", b.p);
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/e/", ""), 0);
    assert_int_equal(f->b.n, 1);
    /* lz64 is refused; garbage too */
    f->n_args = 0;
    arg(f, "compression", "lz64");
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/e/", "N4Ig"), TL_EINVAL);
    f->n_args = 0;
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/e/", "!!!"), TL_EINVAL);
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/e/", ""), TL_EINVAL);
}

static void test_posthog_single(void **state)
{
    fx *f = *state;
    /* one event, token in the query, sent_at from "_" (ms), offset without timestamp */
    arg(f, "token", "phc_q");
    arg(f, "_", "1750000010000");
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/i/v0/e/",
                           "{\"event\":\"a\",\"$distinct_id\":\"d\",\"timestamp\":"
                           "\"2025-06-15T15:06:30Z\"}"),
                     0);
    assert_str(f->b.body_key, "phc_q");
    assert_int_equal(f->b.recs[0].ts_ms, RECV - 20000);
    f->n_args = 0;
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/e/",
                           "{\"event\":\"a\",\"properties\":{\"distinct_id\":\"d\"},"
                           "\"offset\":3000}"),
                     0);
    assert_int_equal(f->b.recs[0].ts_ms, RECV - 3000);
    /* $set event: person properties only; engage form without "event" */
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/engage/",
                           "{\"$set\":{\"k\":\"v\"},\"$distinct_id\":\"d\",\"$token\":\"t\"}"),
                     0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->b.recs[0].kind, TL_REC_IDENTIFY);
    assert_uprop(&f->b.recs[0], "k", "v", false);
    assert_str(f->b.body_key, "t");
    /* a long distinct_id is cut to 200 bytes, not rejected */
    char big[600];
    char id[301];
    memset(id, 'x', 300);
    id[300] = 0;
    snprintf(big, sizeof big, "{\"event\":\"a\",\"distinct_id\":\"%s\"}", id);
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/e/", big), 0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->b.recs[0].anonymous_id.len, 200);
}

/* What posthog-js 1.449 sends: distinct_id inside properties, $is_identified, $set at the top
 * level of $identify, the send time in the query. */
static void test_posthog_js_shapes(void **state)
{
    fx *f = *state;
    arg(f, "sent_at", "1750000010000");
    assert_int_equal(
        parse(f, TL_COMPAT_POSTHOG, "/e/",
              "{\"api_key\":\"phc\",\"batch\":[{\"uuid\":\"u-1\",\"event\":\"signup\","
              "\"properties\":{\"distinct_id\":\"anon-9\",\"$device_id\":\"anon-9\","
              "\"$is_identified\":false,\"token\":\"phc\",\"plan\":\"pro\"},"
              "\"timestamp\":\"2025-06-15T15:06:40Z\"},"
              "{\"uuid\":\"u-2\",\"event\":\"$identify\",\"properties\":{\"distinct_id\":"
              "\"u1\",\"$anon_distinct_id\":\"anon-9\",\"$is_identified\":true},\"$set\":{"
              "\"email\":\"e\"},\"$set_once\":{\"first\":\"f\",\"n\":null}},"
              "{\"uuid\":\"u-3\",\"event\":\"purchase\",\"properties\":{\"distinct_id\":"
              "\"u1\",\"$is_identified\":true}}]}"),
        0);
    assert_int_equal(f->b.n, 4);
    const tl_record *r = f->b.recs;
    assert_str(r[0].anonymous_id, "anon-9");
    assert_int_equal(r[0].user_id.len, 0);
    assert_int_equal(r[0].ts_ms, RECV - 10000); /* sent_at from the query */
    assert_sprop(&r[0], "$device_id", "anon-9");
    assert_null(prop(r[0].props, r[0].n_props, "token"));
    assert_null(prop(r[0].props, r[0].n_props, "distinct_id"));
    assert_int_equal(r[1].kind, TL_REC_IDENTIFY);
    assert_str(r[1].anonymous_id, "anon-9");
    assert_str(r[1].user_id, "u1");
    assert_str(r[1].event_id, "u-2");
    assert_uprop(&r[1], "email", "e", false);
    assert_uprop(&r[1], "first", "f", true);
    assert_int_equal(r[1].n_uprops, 2);
    assert_int_equal(r[2].kind, TL_REC_IDENTIFY);
    assert_str(r[3].user_id, "u1");
    assert_int_equal(r[3].anonymous_id.len, 0);
    assert_str(r[3].ip, "203.0.113.7"); /* the request's */
    /* posthog-node's $geoip_disable: no address for enrichment, and no such property */
    assert_int_equal(parse(f, TL_COMPAT_POSTHOG, "/batch/",
                           "{\"batch\":[{\"event\":\"e\",\"distinct_id\":\"d\",\"properties\":{"
                           "\"$geoip_disable\":true,\"$lib\":\"posthog-node\"}}]}"),
                     0);
    assert_int_equal(f->b.recs[0].ip.len, 0);
    assert_int_equal(f->b.recs[0].n_props, 0);
    assert_str(f->b.recs[0].user_agent, "Mozilla/5.0 test");
}

/* ---- Snowplow --------------------------------------------------------------------------- */

static void test_snowplow_post(void **state)
{
    fx *f = *state;
    tl_str ue = b64(f->a, TL_STR("{\"schema\":\"iglu:com.snowplowanalytics.snowplow/"
                                 "unstruct_event/jsonschema/1-0-0\",\"data\":{\"schema\":"
                                 "\"iglu:com.acme/signed_up/jsonschema/1-0-0\",\"data\":{"
                                 "\"plan\":\"pro\"}}}"));
    tl_buf body = TL_BUF_INIT;
    tl_buf_printf(
        &body,
        "{\"schema\":\"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4\","
        "\"data\":[{\"e\":\"pv\",\"eid\":\"5a305bf5\",\"tv\":\"js-3.5.0\",\"aid\":\"website\","
        "\"p\":\"web\",\"dtm\":\"1749999990000\",\"stm\":\"1749999995000\",\"uid\":\"user_42\","
        "\"duid\":\"d1\",\"sid\":\"s1\",\"url\":\"https://snowplow.io/\",\"refr\":"
        "\"https://google.com/\",\"page\":\"Home\",\"lang\":\"en-GB\"},"
        "{\"e\":\"se\",\"se_ca\":\"shop\",\"se_ac\":\"add\",\"se_va\":\"2.5\",\"nuid\":\"n1\","
        "\"ttm\":\"1749999000000\",\"stm\":\"1\"},"
        "{\"e\":\"ue\",\"ue_px\":\"%.*s\",\"duid\":\"d1\"},"
        "{\"e\":\"ue\",\"ue_pr\":\"{}\",\"duid\":\"d1\"},"
        "{\"e\":\"pp\"}]}",
        (int)ue.len, ue.p);
    assert_int_equal(parse_n(f, TL_COMPAT_SNOWPLOW, "/com.snowplowanalytics.snowplow/tp2", body.p,
                             body.len, "application/json; charset=UTF-8", NULL),
                     0);
    assert_str(f->b.body_key, "website");
    assert_int_equal(f->b.n_input, 5);
    assert_int_equal(f->b.n, 3);
    assert_int_equal(f->b.rejected, 2);
    const tl_record *r = f->b.recs;
    assert_str(r[0].event, "$pageview");
    assert_str(r[0].event_id, "5a305bf5");
    assert_str(r[0].user_id, "user_42");
    assert_str(r[0].anonymous_id, "d1");
    assert_str(r[0].session_id, "s1");
    assert_str(r[0].field[TL_F_PLATFORM], "web");
    assert_str(r[0].field[TL_F_REFERRER], "https://google.com/");
    assert_int_equal(r[0].ts_ms, RECV - 5000);
    assert_sprop(&r[0], "title", "Home");
    assert_sprop(&r[0], "language", "en-GB");
    assert_str(r[1].event, "add");
    assert_str(r[1].anonymous_id, "n1");
    assert_int_equal(r[1].ts_ms, 1749999000000LL); /* ttm: no skew correction */
    assert_sprop(&r[1], "category", "shop");
    const tl_prop *v = prop(r[1].props, r[1].n_props, "value");
    assert_non_null(v);
    assert_int_equal(v->type, TL_PV_NUM);
    assert_true(v->num == 2.5);
    assert_str(r[2].event, "signed_up");
    assert_sprop(&r[2], "plan", "pro");
    tl_buf_fini(&body);
}

static void test_snowplow_get(void **state)
{
    fx *f = *state;
    arg(f, "e", "pv");
    arg(f, "url", "https://a.io/x");
    arg(f, "aid", "wk_demo");
    arg(f, "eid", "e-1");
    arg(f, "duid", "d9");
    assert_int_equal(parse(f, TL_COMPAT_SNOWPLOW, "/i", ""), 0);
    assert_str(f->b.body_key, "wk_demo");
    assert_int_equal(f->b.n, 1);
    assert_str(f->b.recs[0].event, "$pageview");
    assert_str(f->b.recs[0].field[TL_F_URL], "https://a.io/x");
    assert_str(f->b.recs[0].event_id, "e-1");
    f->n_args = 0;
    assert_int_equal(parse(f, TL_COMPAT_SNOWPLOW, "/i", ""), TL_EINVAL);
    assert_int_equal(parse(f, TL_COMPAT_SNOWPLOW, "/com.snowplowanalytics.snowplow/tp2", "{}"),
                     TL_EINVAL);
}

/* ---- Plausible -------------------------------------------------------------------------- */

static void test_plausible(void **state)
{
    fx *f = *state;
    assert_int_equal(parse(f, TL_COMPAT_PLAUSIBLE, "/api/event",
                           "{\"name\":\"Signup\",\"url\":\"https://example.com/pricing?utm_"
                           "source=hn#top\",\"domain\":\"example.com\",\"referrer\":"
                           "\"https://news.ycombinator.com/\",\"props\":{\"plan\":\"pro\","
                           "\"l\":[1],\"e\":\"\",\"n\":3}}"),
                     0);
    assert_str(f->b.body_key, "example.com");
    assert_int_equal(f->b.n, 1);
    const tl_record *r = &f->b.recs[0];
    assert_str(r->event, "Signup");
    assert_str(r->field[TL_F_URL], "https://example.com/pricing?utm_source=hn");
    assert_str(r->field[TL_F_REFERRER], "https://news.ycombinator.com/");
    assert_int_equal(r->n_props, 2);
    assert_sprop(r, "plan", "pro");
    assert_int_equal(r->anonymous_id.len, 34);
    assert_true(tl_str_has_prefix(r->anonymous_id, "~v"));
    tl_str visitor = tl_arena_strdup(f->a, r->anonymous_id);

    /* short keys, props as a JSON string, hash mode: same visitor the same day */
    assert_int_equal(parse(f, TL_COMPAT_PLAUSIBLE, "/api/event",
                           "{\"n\":\"pageview\",\"u\":\"https://example.com/#/app\",\"d\":"
                           "\"example.com,other.com\",\"r\":null,\"p\":\"{\\\"a\\\":\\\"b\\\"}"
                           "\",\"h\":1}"),
                     0);
    r = &f->b.recs[0];
    assert_str(r->event, "$pageview");
    assert_str(r->field[TL_F_URL], "https://example.com/#/app");
    assert_sprop(r, "a", "b");
    assert_true(tl_str_eq(r->anonymous_id, visitor));
    assert_str(f->b.body_key, "example.com,other.com");
    /* another browser, or the next day: another visitor */
    f->ctx.user_agent = TL_STR("other");
    assert_int_equal(parse(f, TL_COMPAT_PLAUSIBLE, "/api/event",
                           "{\"n\":\"p\",\"u\":\"u\",\"d\":\"example.com\"}"),
                     0);
    assert_false(tl_str_eq(f->b.recs[0].anonymous_id, visitor));
    f->ctx.user_agent = TL_STR("Mozilla/5.0 test");
    f->ctx.recv_ms += TL_MS_PER_DAY;
    assert_int_equal(parse(f, TL_COMPAT_PLAUSIBLE, "/api/event",
                           "{\"n\":\"p\",\"u\":\"u\",\"d\":\"example.com\"}"),
                     0);
    assert_false(tl_str_eq(f->b.recs[0].anonymous_id, visitor));
    /* another salt (another project's secret): another id for the same visitor */
    f->ctx.recv_ms -= TL_MS_PER_DAY;
    f->salt = TL_STR("rk_secret");
    assert_int_equal(parse(f, TL_COMPAT_PLAUSIBLE, "/api/event",
                           "{\"n\":\"p\",\"u\":\"u\",\"d\":\"example.com\"}"),
                     0);
    assert_false(tl_str_eq(f->b.recs[0].anonymous_id, visitor));
    f->salt = TL_STR_NULL;
    assert_int_equal(parse(f, TL_COMPAT_PLAUSIBLE, "/api/event",
                           "{\"n\":\"p\",\"u\":\"u\",\"d\":\"example.com\"}"),
                     0);
    assert_true(tl_str_eq(f->b.recs[0].anonymous_id, visitor));
    /* url required; data: refused */
    assert_int_equal(parse(f, TL_COMPAT_PLAUSIBLE, "/api/event", "{\"n\":\"p\",\"d\":\"x\"}"), 0);
    assert_int_equal(f->b.rejected, 1);
    assert_int_equal(
        parse(f, TL_COMPAT_PLAUSIBLE, "/api/event", "{\"n\":\"p\",\"u\":\"data:x\",\"d\":\"x\"}"),
        0);
    assert_int_equal(f->b.rejected, 1);
    assert_int_equal(parse(f, TL_COMPAT_PLAUSIBLE, "/api/event", "[]"), TL_EINVAL);
}

/* ---- GA4 -------------------------------------------------------------------------------- */

static void test_ga4(void **state)
{
    fx *f = *state;
    assert_int_equal(
        parse(f, TL_COMPAT_GA4, "/mp/collect",
              "{\"client_id\":\"123456.7654321\",\"user_id\":\"u42\",\"timestamp_micros\":"
              "1749999000000000,\"user_properties\":{\"plan\":{\"value\":\"pro\"}},"
              "\"events\":[{\"name\":\"purchase\",\"params\":{\"session_id\":\"123\","
              "\"engagement_time_msec\":100,\"value\":9.99,\"currency\":\"EUR\"}},"
              "{\"name\":\"page_view\",\"params\":{\"page_location\":\"https://a.io/\","
              "\"page_referrer\":\"https://b.io/\",\"session_id\":77},"
              "\"timestamp_micros\":1749999500000000},{\"params\":{}}]}"),
        0);
    assert_int_equal(f->b.n_input, 3);
    assert_int_equal(f->b.n, 2);
    assert_int_equal(f->b.rejected, 1);
    const tl_record *r = f->b.recs;
    assert_str(r[0].event, "purchase");
    assert_str(r[0].anonymous_id, "123456.7654321");
    assert_str(r[0].user_id, "u42");
    assert_str(r[0].session_id, "123");
    assert_int_equal(r[0].ts_ms, 1749999000000LL);
    assert_sprop(&r[0], "currency", "EUR");
    assert_null(prop(r[0].props, r[0].n_props, "session_id"));
    assert_uprop(&r[0], "plan", "pro", false);
    assert_str(r[1].event, "$pageview");
    assert_str(r[1].field[TL_F_URL], "https://a.io/");
    assert_str(r[1].field[TL_F_REFERRER], "https://b.io/");
    assert_str(r[1].session_id, "77");
    assert_int_equal(r[1].ts_ms, 1749999500000LL);
    assert_int_equal(parse(f, TL_COMPAT_GA4, "/mp/collect", "{}"), TL_EINVAL);
}

/* Every format's page views are "$pageview" and its screen views "$screen" (PostHog's names,
 * which tally.js sends and the pageviews report counts); other names pass as they are. */
static void test_page_view_names(void **state)
{
    fx *f = *state;
    static const struct {
        tl_compat_fmt fmt;
        const char *path, *body, *want;
    } cases[] = {
        {TL_COMPAT_SEGMENT, "/v1/page", "{\"anonymousId\":\"a\"}", "$pageview"},
        {TL_COMPAT_SEGMENT, "/v1/p", "{\"anonymousId\":\"a\"}", "$pageview"},
        {TL_COMPAT_SEGMENT, "/v1/screen", "{\"anonymousId\":\"a\",\"name\":\"Home\"}", "$screen"},
        {TL_COMPAT_SEGMENT, "/v1/s", "{\"anonymousId\":\"a\"}", "$screen"},
        {TL_COMPAT_SEGMENT, "/v1/batch", "{\"batch\":[{\"type\":\"page\",\"anonymousId\":\"a\"}]}",
         "$pageview"},
        {TL_COMPAT_SEGMENT, "/v1/track", "{\"anonymousId\":\"a\",\"event\":\"pageview\"}",
         "pageview"},
        {TL_COMPAT_POSTHOG, "/e/",
         "{\"api_key\":\"k\",\"event\":\"$pageview\",\"distinct_id\":\"d\"}", "$pageview"},
        {TL_COMPAT_POSTHOG, "/e/",
         "{\"api_key\":\"k\",\"event\":\"$screen\",\"distinct_id\":\"d\"}", "$screen"},
        {TL_COMPAT_POSTHOG, "/e/",
         "{\"api_key\":\"k\",\"event\":\"$pageleave\",\"distinct_id\":\"d\"}", "$pageleave"},
        {TL_COMPAT_SNOWPLOW, "/com.snowplowanalytics.snowplow/tp2",
         "{\"data\":[{\"e\":\"pv\",\"duid\":\"d\",\"url\":\"https://a/\"}]}", "$pageview"},
        {TL_COMPAT_SNOWPLOW, "/com.snowplowanalytics.snowplow/tp2",
         "{\"data\":[{\"e\":\"pp\",\"duid\":\"d\"}]}", "page_ping"},
        /* mobile trackers: a self-describing screen_view of Snowplow's own schemas */
        {TL_COMPAT_SNOWPLOW, "/com.snowplowanalytics.snowplow/tp2",
         "{\"data\":[{\"e\":\"ue\",\"duid\":\"d\",\"ue_pr\":\"{\\\"schema\\\":\\\"iglu:com."
         "snowplowanalytics.snowplow/unstruct_event/jsonschema/"
         "1-0-0\\\",\\\"data\\\":{\\\"schema\\\":"
         "\\\"iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0\\\",\\\"data\\\":{\\\""
         "name\\\":\\\"Home\\\",\\\"id\\\":\\\"x\\\"}}}\"}]}",
         "$screen"},
        {TL_COMPAT_SNOWPLOW, "/com.snowplowanalytics.snowplow/tp2",
         "{\"data\":[{\"e\":\"ue\",\"duid\":\"d\",\"ue_pr\":\"{\\\"schema\\\":\\\"s\\\",\\\"data"
         "\\\":{\\\"schema\\\":\\\"iglu:com.acme/screen_view/jsonschema/1-0-0\\\",\\\"data\\\":{}}}"
         "\"}]}",
         "screen_view"},
        {TL_COMPAT_PLAUSIBLE, "/api/event", "{\"n\":\"pageview\",\"u\":\"https://a/\",\"d\":\"k\"}",
         "$pageview"},
        {TL_COMPAT_PLAUSIBLE, "/api/event",
         "{\"name\":\"Signup\",\"url\":\"https://a/\",\"domain\":\"k\"}", "Signup"},
        {TL_COMPAT_GA4, "/mp/collect",
         "{\"client_id\":\"c\",\"events\":[{\"name\":\"page_view\"}]}", "$pageview"},
        {TL_COMPAT_GA4, "/mp/collect",
         "{\"client_id\":\"c\",\"events\":[{\"name\":\"screen_view\"}]}", "$screen"},
        {TL_COMPAT_GA4, "/mp/collect", "{\"client_id\":\"c\",\"events\":[{\"name\":\"login\"}]}",
         "login"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->n_args = 0;
        if (parse(f, cases[i].fmt, cases[i].path, cases[i].body) || f->b.n != 1) {
            print_error("case %zu (%s): n %u, %s\n", i, cases[i].want, f->b.n, f->err.msg);
            fail();
        }
        assert_str(f->b.recs[0].event, cases[i].want);
        assert_int_equal(f->b.recs[0].kind, TL_REC_EVENT);
    }
    assert_string_equal(TL_COMPAT_PAGEVIEW, "$pageview");
    assert_string_equal(TL_COMPAT_SCREEN, "$screen");
}

/* The envelope every format shares: gzip by header or magic bytes, white space around the
 * body, the default limits without any, and one error with the format's words for a body
 * that is not its JSON object (the batch left empty). */
static void test_envelopes(void **state)
{
    fx *f = *state;
    static const struct {
        tl_compat_fmt fmt;
        const char *path, *ok, *what;
    } fm[] = {
        {TL_COMPAT_SEGMENT, "/v1/batch",
         "{\"batch\":[{\"type\":\"track\",\"event\":\"e\",\"userId\":\"u\"}]}",
         "body: expected a JSON object (a Segment message or {\"batch\":[...]})"},
        {TL_COMPAT_SNOWPLOW, "/com.snowplowanalytics.snowplow/tp2",
         "{\"data\":[{\"e\":\"se\",\"se_ac\":\"e\",\"uid\":\"u\"}]}",
         "body: expected a payload_data JSON object"},
        {TL_COMPAT_PLAUSIBLE, "/api/event", "{\"n\":\"e\",\"u\":\"https://a/\",\"d\":\"k\"}",
         "body: expected a JSON object"},
        {TL_COMPAT_GA4, "/mp/collect", "{\"client_id\":\"c\",\"events\":[{\"name\":\"e\"}]}",
         "body: expected a JSON object"},
        {TL_COMPAT_POSTHOG, "/batch/",
         "{\"api_key\":\"k\",\"batch\":[{\"event\":\"e\",\"distinct_id\":\"u\"}]}", NULL},
    };
    for (size_t i = 0; i < sizeof fm / sizeof fm[0]; i++) {
        f->n_args = 0;
        char padded[512];
        snprintf(padded, sizeof padded, " \r\n\t%s\n ", fm[i].ok);
        assert_int_equal(parse(f, fm[i].fmt, fm[i].path, padded), 0);
        assert_int_equal(f->b.n, 1);
        assert_str(f->b.recs[0].event, "e");
        tl_str g = gz(f->a, fm[i].ok);
        assert_int_equal(parse_n(f, fm[i].fmt, fm[i].path, g.p, g.len, NULL, "gzip"), 0);
        assert_int_equal(f->b.n, 1);
        assert_int_equal(parse_n(f, fm[i].fmt, fm[i].path, g.p, g.len, NULL, NULL), 0);
        assert_int_equal(f->b.n, 1);
        /* a gzip body cut short: the decoder's error, nothing stored */
        assert_int_equal(parse_n(f, fm[i].fmt, fm[i].path, g.p, g.len / 2, NULL, "gzip"),
                         TL_EINVAL);
        assert_int_equal(f->b.n, 0);
        if (!fm[i].what) continue; /* PostHog: arrays and base64 too (test_posthog_*) */
        static const char *const bad[] = {"[1,2]", "\"x\"", "{\"a\":", "  "};
        for (size_t k = 0; k < 4; k++) {
            if (fm[i].fmt == TL_COMPAT_SNOWPLOW && !strcmp(bad[k], "  ")) continue; /* GET /i */
            assert_int_equal(parse(f, fm[i].fmt, fm[i].path, bad[k]), TL_EINVAL);
            assert_string_equal(f->err.msg, fm[i].what);
            assert_int_equal(f->b.n, 0);
            assert_int_equal(f->b.n_input, 0);
        }
    }
}

/* Limits stay the native ones: an oversized event is rejected alone. */
static void test_limits(void **state)
{
    fx *f = *state;
    tl_buf b = TL_BUF_INIT;
    tl_buf_adds(&b, "{\"batch\":[{\"type\":\"track\",\"event\":\"big\",\"userId\":\"u\","
                    "\"properties\":{\"s\":\"");
    for (int i = 0; i < 40000; i++)
        tl_buf_addc(&b, 'x');
    tl_buf_adds(&b, "\"}},{\"type\":\"track\",\"event\":\"ok\",\"userId\":\"u\"}]}");
    assert_int_equal(parse_n(f, TL_COMPAT_SEGMENT, "/v1/batch", b.p, b.len, NULL, NULL), 0);
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->b.rejected, 1);
    assert_non_null(strstr(f->b.errors[0].msg, "bytes"));
    tl_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decoders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_track, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_bad_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posthog_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posthog_encodings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posthog_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posthog_js_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snowplow_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snowplow_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plausible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ga4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_view_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_envelopes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
