/* Unit tests of the event record codec (src/record.h): the round trip of every field, both
 * property types, unicode and empty strings; every truncation and any trailing byte refused
 * with TL_EBADMSG; and the NDJSON export form, parsed back with the JSON parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

/* cmocka needs setjmp.h (and stdarg.h, stddef.h) included before it. */
/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "record.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/time.h"

/* A record that uses every field: both kinds of property, unicode, an empty string value and
 * an empty property key, negative and large times. */
typedef struct sample {
    tl_prop props[5];
    tl_prop uprops[2];
    tl_record r;
} sample;

static void make_sample(sample *s)
{
    memset(s, 0, sizeof *s);
    s->props[0] = (tl_prop){TL_STR("cart.total"), TL_PV_NUM, 12.5, TL_STR_NULL};
    s->props[1] = (tl_prop){TL_STR("plan"), TL_PV_STR, 0, TL_STR("pro \xe2\x9c\x93")};
    s->props[2] = (tl_prop){TL_STR("neg"), TL_PV_NUM, -1e300, TL_STR_NULL};
    s->props[3] = (tl_prop){TL_STR("empty"), TL_PV_STR, 0, TL_STR("")};
    s->props[4] = (tl_prop){TL_STR("\xf0\x9f\x98\x80 emoji"), TL_PV_NUM, 0.1, TL_STR_NULL};
    s->uprops[0] = (tl_prop){TL_STR("email"), TL_PV_STR, 0, TL_STR("a@example.com")};
    s->uprops[1] = (tl_prop){TL_STR("age"), TL_PV_NUM, 42, TL_STR_NULL};
    tl_record *r = &s->r;
    r->kind = TL_REC_EVENT;
    r->ts_ms = 1767225600123; /* 2026-01-01T00:00:00.123Z */
    r->recv_ms = 1767225601000;
    r->project = TL_STR("demo");
    r->event = TL_STR("Checkout \xc3\xa9t\xc3\xa9");
    r->event_id = TL_STR("evt-1");
    r->anonymous_id = TL_STR("anon-1");
    r->user_id = TL_STR("user@\xe4\xb8\xad\xe6\x96\x87");
    r->session_id = TL_STR("s1");
    const char *fields[TL_F_COUNT] = {
        "web",     "1.2.3", "NP",     "https://x.test/a?b=c", "https://r.test",
        "Firefox", "Linux", "desktop"};
    for (int f = 0; f < TL_F_COUNT; f++)
        r->field[f] = tl_str_c(fields[f]);
    r->props = s->props;
    r->n_props = 5;
    r->uprops = s->uprops;
    r->n_uprops = 2;
}

static void assert_str_eq(tl_str a, tl_str b)
{
    assert_int_equal(a.len, b.len);
    if (a.len) assert_memory_equal(a.p, b.p, a.len);
}

static void assert_props_eq(const tl_prop *a, const tl_prop *b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        assert_str_eq(a[i].key, b[i].key);
        assert_int_equal(a[i].type, b[i].type);
        if (a[i].type == TL_PV_NUM)
            assert_memory_equal(&a[i].num, &b[i].num, sizeof(double));
        else
            assert_str_eq(a[i].str, b[i].str);
    }
}

static void assert_record_eq(const tl_record *a, const tl_record *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->ts_ms, b->ts_ms);
    assert_int_equal(a->recv_ms, b->recv_ms);
    assert_str_eq(a->project, b->project);
    assert_str_eq(a->event, b->event);
    assert_str_eq(a->event_id, b->event_id);
    assert_str_eq(a->anonymous_id, b->anonymous_id);
    assert_str_eq(a->user_id, b->user_id);
    assert_str_eq(a->session_id, b->session_id);
    for (int f = 0; f < TL_F_COUNT; f++)
        assert_str_eq(a->field[f], b->field[f]);
    assert_int_equal(a->n_props, b->n_props);
    assert_props_eq(a->props, b->props, a->n_props);
    assert_int_equal(a->n_uprops, b->n_uprops);
    assert_props_eq(a->uprops, b->uprops, a->n_uprops);
}

static void roundtrip(const tl_record *r)
{
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(r, &b);
    tl_arena *a = tl_arena_new();
    tl_record out;
    tl_err err = {0};
    assert_int_equal(tl_record_decode(b.p, b.len, a, &out, &err), 0);
    assert_record_eq(r, &out);
    /* Re-encoding the decoded record gives the same bytes. */
    tl_buf b2 = TL_BUF_INIT;
    tl_record_encode(&out, &b2);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.p, b2.p, b.len);
    tl_buf_fini(&b2);
    tl_arena_free(a);
    tl_buf_fini(&b);
}

static void test_roundtrip_full(void **state)
{
    (void)state;
    sample s;
    make_sample(&s);
    roundtrip(&s.r);
}

static void test_roundtrip_empty(void **state)
{
    (void)state;
    /* Every string empty, no properties: the smallest record. */
    tl_record r;
    memset(&r, 0, sizeof r);
    r.kind = TL_REC_IDENTIFY;
    roundtrip(&r);
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(&r, &b);
    /* version, kind, 2 varints, 6 + TL_F_COUNT string lengths, 2 property counts */
    assert_int_equal(b.len, 2 + 2 + 6 + TL_F_COUNT + 2);
    tl_buf_fini(&b);
}

static void test_roundtrip_extremes(void **state)
{
    (void)state;
    sample s;
    make_sample(&s);
    int64_t times[] = {0, -1, 1, INT64_MIN, INT64_MAX, -86400000LL * 365 * 100};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        s.r.ts_ms = times[i];
        s.r.recv_ms = times[i] / -2;
        roundtrip(&s.r);
    }
    /* Special doubles survive bit for bit. */
    s.props[0].num = INFINITY;
    s.props[2].num = -0.0;
    s.uprops[1].num = 5e-324;
    roundtrip(&s.r);
    /* A long string needs a multi-byte length varint. */
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    s.r.event_id = (tl_str){big, 70000};
    s.props[1].str = (tl_str){big, 300};
    roundtrip(&s.r);
    free(big);
}

static void test_roundtrip_many_props(void **state)
{
    (void)state;
    sample s;
    make_sample(&s);
    enum { N = 1000 };
    tl_prop *p = calloc(N, sizeof *p);
    char(*keys)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], 16, "k%d", i);
        p[i].key = tl_str_c(keys[i]);
        p[i].type = i % 2 ? TL_PV_NUM : TL_PV_STR;
        p[i].num = i % 2 ? i * 1.5 : 0;
        p[i].str = i % 2 ? TL_STR_NULL : tl_str_c(keys[i]);
    }
    s.r.props = p;
    s.r.n_props = N;
    roundtrip(&s.r);
    free(keys);
    free(p);
}

static void test_truncated(void **state)
{
    (void)state;
    sample s;
    make_sample(&s);
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(&s.r, &b);
    tl_arena *a = tl_arena_new();
    for (size_t len = 0; len < b.len; len++) {
        /* A copy of exactly len bytes, so ASan sees any read past it. */
        char *p = malloc(len ? len : 1);
        memcpy(p, b.p, len);
        tl_record out;
        tl_err err = {0};
        int rc = tl_record_decode(p, len, a, &out, &err);
        if (rc != TL_EBADMSG) fail_msg("length %zu of %zu: rc %d", len, b.len, rc);
        assert_int_equal(err.code, TL_EBADMSG);
        assert_true(err.msg[0] != 0);
        free(p);
        tl_arena_reset(a);
    }
    /* The NULL error object is allowed. */
    tl_record out;
    assert_int_equal(tl_record_decode(b.p, 1, a, &out, NULL), TL_EBADMSG);
    tl_arena_free(a);
    tl_buf_fini(&b);
}

static void test_trailing(void **state)
{
    (void)state;
    sample s;
    make_sample(&s);
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(&s.r, &b);
    tl_arena *a = tl_arena_new();
    for (int extra = 1; extra <= 3; extra++) {
        tl_buf_addc(&b, 0);
        tl_record out;
        tl_err err = {0};
        assert_int_equal(tl_record_decode(b.p, b.len, a, &out, &err), TL_EBADMSG);
        assert_non_null(strstr(err.msg, "trailing"));
    }
    /* Two records back to back are not one record. */
    size_t one = b.len - 3;
    b.len = one;
    tl_record_encode(&s.r, &b);
    tl_record out;
    assert_int_equal(tl_record_decode(b.p, b.len, a, &out, NULL), TL_EBADMSG);
    assert_int_equal(tl_record_decode(b.p, one, a, &out, NULL), 0);
    tl_arena_free(a);
    tl_buf_fini(&b);
}

static void test_bad_header(void **state)
{
    (void)state;
    sample s;
    make_sample(&s);
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(&s.r, &b);
    tl_arena *a = tl_arena_new();
    tl_record out;
    tl_err err = {0};
    b.p[0] = 2; /* unknown version */
    assert_int_equal(tl_record_decode(b.p, b.len, a, &out, &err), TL_EBADMSG);
    assert_non_null(strstr(err.msg, "version"));
    b.p[0] = 1;
    const uint8_t kinds[] = {0, 4, 255}; /* 1..3 are event, identify, erase */
    for (size_t i = 0; i < sizeof kinds; i++) {
        b.p[1] = (char)kinds[i];
        assert_int_equal(tl_record_decode(b.p, b.len, a, &out, &err), TL_EBADMSG);
        assert_non_null(strstr(err.msg, "kind"));
    }
    tl_arena_free(a);
    tl_buf_fini(&b);
}

static void test_bad_prop_type(void **state)
{
    (void)state;
    tl_prop p = {TL_STR("k"), TL_PV_STR, 0, TL_STR("v")};
    tl_record r;
    memset(&r, 0, sizeof r);
    r.kind = TL_REC_EVENT;
    r.props = &p;
    r.n_props = 1;
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(&r, &b);
    /* Layout at the end: n_props=1, key "k" (len 1), type, value "v" (len 1), n_uprops=0. */
    size_t type_at = b.len - 4;
    assert_int_equal((uint8_t)b.p[type_at], TL_PV_STR);
    tl_arena *a = tl_arena_new();
    tl_record out;
    for (int t = 0; t < 256; t++) {
        if (t == TL_PV_STR) continue;
        b.p[type_at] = (char)t;
        /* A number would need 8 bytes where 2 remain; anything else is not a type. */
        assert_int_equal(tl_record_decode(b.p, b.len, a, &out, NULL), TL_EBADMSG);
    }
    /* An absurd property count is refused before any allocation. */
    b.p[type_at] = TL_PV_STR;
    tl_buf c = TL_BUF_INIT;
    tl_buf_add(&c, b.p, b.len - 7);
    tl_buf_varint(&c, UINT64_MAX / 2);
    tl_buf_add(&c, b.p + b.len - 6, 6);
    assert_int_equal(tl_record_decode(c.p, c.len, a, &out, NULL), TL_EBADMSG);
    tl_buf_fini(&c);
    /* A string length past the end is refused. */
    b.p[type_at + 1] = 100;
    assert_int_equal(tl_record_decode(b.p, b.len, a, &out, NULL), TL_EBADMSG);
    tl_arena_free(a);
    tl_buf_fini(&b);
}

static void test_field_names(void **state)
{
    (void)state;
    for (int f = 0; f < TL_F_COUNT; f++)
        assert_int_equal(tl_field_by_name(tl_str_c(tl_field_name(f))), f);
    assert_int_equal(tl_field_by_name(TL_STR("nope")), -1);
    assert_int_equal(tl_field_by_name(TL_STR("")), -1);
    assert_string_equal(tl_field_name(-1), "?");
    assert_string_equal(tl_field_name(TL_F_COUNT), "?");
    assert_string_equal(tl_field_name(TL_F_DEVICE_TYPE), "device_type");
}

static const tl_json *member(const tl_json *obj, const char *key, tl_jtype type)
{
    const tl_json *v = tl_json_get(obj, key);
    if (!v) fail_msg("member %s missing", key);
    assert_int_equal(v->type, type);
    return v;
}

static void test_json(void **state)
{
    (void)state;
    sample s;
    make_sample(&s);
    /* A string that needs escaping. */
    s.r.session_id = TL_STR("q\"b\\s\n\x01");
    tl_buf b = TL_BUF_INIT;
    tl_record_write_json(&s.r, &b);
    tl_arena *a = tl_arena_new();
    tl_json *j;
    tl_err err = {0};
    if (tl_json_parse(a, b.p, b.len, NULL, &j, &err))
        fail_msg("%s in %.*s", err.msg, (int)b.len, b.p);
    assert_int_equal(j->type, TL_JOBJ);
    assert_str_eq(member(j, "event", TL_JSTR)->str, s.r.event);
    assert_str_eq(member(j, "event_id", TL_JSTR)->str, s.r.event_id);
    assert_str_eq(member(j, "anonymous_id", TL_JSTR)->str, s.r.anonymous_id);
    assert_str_eq(member(j, "user_id", TL_JSTR)->str, s.r.user_id);
    assert_str_eq(member(j, "session_id", TL_JSTR)->str, s.r.session_id);
    int64_t ts;
    assert_int_equal(tl_iso_parse(member(j, "timestamp", TL_JSTR)->str, &ts), 0);
    assert_int_equal(ts, s.r.ts_ms);
    for (int f = 0; f < TL_F_COUNT; f++)
        assert_str_eq(member(j, tl_field_name(f), TL_JSTR)->str, s.r.field[f]);
    const tl_json *props = member(j, "properties", TL_JOBJ);
    assert_int_equal(props->n, s.r.n_props);
    const tl_json *m = props->child;
    for (uint32_t i = 0; i < s.r.n_props; i++, m = m->next) {
        assert_non_null(m);
        assert_str_eq(m->key, s.props[i].key);
        if (s.props[i].type == TL_PV_NUM) {
            assert_int_equal(m->type, TL_JNUM);
            assert_true(m->num == s.props[i].num);
        } else {
            assert_int_equal(m->type, TL_JSTR);
            assert_str_eq(m->str, s.props[i].str);
        }
    }
    const tl_json *up = member(j, "user_properties", TL_JOBJ);
    assert_int_equal(up->n, 2);
    assert_str_eq(member(up, "email", TL_JSTR)->str, TL_STR("a@example.com"));
    assert_true(member(up, "age", TL_JNUM)->num == 42);
    /* The project is not part of the export form (it is chosen by the write key). */
    assert_null(tl_json_get(j, "project"));
    tl_arena_free(a);
    tl_buf_fini(&b);
}

static void test_json_minimal(void **state)
{
    (void)state;
    /* Empty optional fields are left out; no property objects at all. */
    tl_record r;
    memset(&r, 0, sizeof r);
    r.kind = TL_REC_EVENT;
    r.event = TL_STR("e");
    r.event_id = TL_STR("");
    r.ts_ms = 0;
    tl_buf b = TL_BUF_INIT;
    tl_record_write_json(&r, &b);
    tl_arena *a = tl_arena_new();
    tl_json *j;
    tl_err err = {0};
    if (tl_json_parse(a, b.p, b.len, NULL, &j, &err))
        fail_msg("%s in %.*s", err.msg, (int)b.len, b.p);
    assert_int_equal(j->n, 3); /* event, event_id, timestamp */
    assert_str_eq(member(j, "timestamp", TL_JSTR)->str, TL_STR("1970-01-01T00:00:00.000Z"));
    assert_null(tl_json_get(j, "anonymous_id"));
    assert_null(tl_json_get(j, "user_id"));
    assert_null(tl_json_get(j, "properties"));
    assert_null(tl_json_get(j, "user_properties"));
    assert_null(tl_json_get(j, "url"));
    tl_arena_free(a);
    tl_buf_fini(&b);
}

static void test_json_extreme_times(void **state)
{
    (void)state;
    /* Inside years 0..9999: ISO-8601; outside: the milliseconds as a number. */
    const struct {
        int64_t ts;
        const char *text;
        tl_jtype type;
    } cases[] = {
        {253402300799999LL, "9999-12-31T23:59:59.999Z", TL_JSTR},
        {-62167219200000LL, "0000-01-01T00:00:00.000Z", TL_JSTR},
        {253402300800000LL, "253402300800000", TL_JNUM},
        {-62167219200001LL, "-62167219200001", TL_JNUM},
        {INT64_MAX, "9223372036854775807", TL_JNUM},
        {INT64_MIN, "-9223372036854775808", TL_JNUM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tl_record r;
        memset(&r, 0, sizeof r);
        r.kind = TL_REC_EVENT;
        r.ts_ms = cases[i].ts;
        tl_buf b = TL_BUF_INIT;
        tl_record_write_json(&r, &b);
        tl_arena *a = tl_arena_new();
        tl_json *j;
        tl_err err = {0};
        if (tl_json_parse(a, b.p, b.len, NULL, &j, &err))
            fail_msg("%s in %.*s", err.msg, (int)b.len, b.p);
        const tl_json *t = member(j, "timestamp", cases[i].type);
        assert_str_eq(t->str, tl_str_c(cases[i].text));
        tl_arena_free(a);
        tl_buf_fini(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_full),     cmocka_unit_test(test_roundtrip_empty),
        cmocka_unit_test(test_roundtrip_extremes), cmocka_unit_test(test_roundtrip_many_props),
        cmocka_unit_test(test_truncated),          cmocka_unit_test(test_trailing),
        cmocka_unit_test(test_bad_header),         cmocka_unit_test(test_bad_prop_type),
        cmocka_unit_test(test_field_names),        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_minimal),       cmocka_unit_test(test_json_extreme_times),
    };
    return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
