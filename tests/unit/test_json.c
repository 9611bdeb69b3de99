/* Unit tests of util/json: the strict RFC 8259 parser (numbers, escapes, UTF-8 edge cases,
 * limits), lookups, compact writing and the source spans of containers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <setjmp.h>
/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
#include <cmocka.h>

#include "util/buf.h"
#include "util/json.h"

static int setup(void **state)
{
    *state = tl_arena_new();
    return 0;
}

static int teardown(void **state)
{
    tl_arena_free(*state);
    return 0;
}

/* Parses n bytes; returns the code, *out the tree, err the reason. */
static int parse_n(void **state, const char *s, size_t n, tl_json **out, tl_err *err)
{
    tl_json *v = NULL;
    int rc = tl_json_parse(*state, s, n, NULL, &v, err);
    if (out) *out = v;
    return rc;
}

static int parse(void **state, const char *s, tl_json **out)
{
    tl_err err;
    return parse_n(state, s, strlen(s), out, &err);
}

static void assert_bad(void **state, const char *s, size_t n, const char *why)
{
    tl_err err = {0};
    tl_json *v = NULL;
    int rc = tl_json_parse(*state, s, n, NULL, &v, &err);
    if (rc != TL_EINVAL) fail_msg("expected TL_EINVAL for %s, got %d", why, rc);
    assert_non_null(strstr(err.msg, "invalid JSON at byte"));
}

static void assert_string_is(void **state, const char *json, const char *bytes, size_t n)
{
    tl_json *v;
    assert_int_equal(parse(state, json, &v), 0);
    assert_int_equal(v->type, TL_JSTR);
    assert_int_equal(v->str.len, n);
    assert_memory_equal(v->str.p, bytes, n);
}

static void test_scalars(void **state)
{
    tl_json *v;
    assert_int_equal(parse(state, "null", &v), 0);
    assert_int_equal(v->type, TL_JNULL);
    assert_int_equal(parse(state, " true ", &v), 0);
    assert_int_equal(v->type, TL_JTRUE);
    assert_int_equal(parse(state, "\t\r\nfalse\n", &v), 0);
    assert_int_equal(v->type, TL_JFALSE);
    assert_int_equal(parse(state, "\"x\"", &v), 0);
    assert_int_equal(v->type, TL_JSTR);
    assert_int_equal(parse(state, "-12.5e1", &v), 0);
    assert_int_equal(v->type, TL_JNUM);
    assert_true(v->num == -125.0);
    assert_true(tl_str_eqc(v->str, "-12.5e1"));

    assert_bad(state, "", 0, "empty input");
    assert_bad(state, "   ", 3, "only white space");
    assert_bad(state, "nul", 3, "truncated literal");
    assert_bad(state, "True", 4, "capitalised literal");
    assert_bad(state, "nullx", 5, "trailing letters");
    assert_bad(state, "1 2", 3, "two values");
    assert_bad(state, "\v1", 2, "vertical tab is not JSON white space");
    assert_bad(state, "NaN", 3, "NaN");
    assert_bad(state, "Infinity", 8, "Infinity");
    assert_bad(state, "'x'", 3, "single quotes");
    assert_bad(state, "/*c*/1", 6, "comment");
}

static void test_numbers(void **state)
{
    static const struct {
        const char *s;
        double v;
    } good[] = {
        {"0", 0},
        {"-0", 0},
        {"1", 1},
        {"-1", -1},
        {"10", 10},
        {"0.5", 0.5},
        {"1e2", 100},
        {"1E+2", 100},
        {"1e-2", 0.01},
        {"-0.0e0", 0},
        {"123456789012345678", 123456789012345678.0},
        {"1e308", 1e308},
        {"1e-400", 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        tl_json *v;
        if (parse(state, good[i].s, &v) != 0) fail_msg("refused %s", good[i].s);
        assert_int_equal(v->type, TL_JNUM);
        assert_true(v->num == good[i].v);
        assert_true(tl_str_eqc(v->str, good[i].s));
    }
    static const char *const bad[] = {"01",  "-01",   "1.",     ".5",    "-",
                                      "+1",  "1e",    "1e+",    "1.e5",  "0x10",
                                      "--1", "1e400", "-1e400", "1.5.5", "- 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_bad(state, bad[i], strlen(bad[i]), bad[i]);
    /* Long numbers go through the arena copy rather than the stack buffer. */
    char longnum[200];
    memset(longnum, '1', sizeof longnum - 1);
    longnum[sizeof longnum - 1] = 0;
    tl_json *v;
    assert_int_equal(parse(state, longnum, &v), 0);
    assert_true(v->num > 1e197);
}

static void test_string_escapes(void **state)
{
    assert_string_is(state, "\"a\\\"b\\\\c\\/d\"", "a\"b\\c/d", 7);
    assert_string_is(state, "\"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t", 5);
    assert_string_is(state, "\"\\u0041\\u00e9\\u20AC\"", "A\xC3\xA9\xE2\x82\xAC", 6);
    assert_string_is(state, "\"\\u0000\"", "\0", 1);
    assert_string_is(state, "\"\"", "", 0);
    /* Surrogate pair → one 4-byte character. */
    assert_string_is(state, "\"\\uD83D\\uDE00\"", "\xF0\x9F\x98\x80", 4);
    assert_string_is(state, "\"\\udbff\\udfff\"", "\xF4\x8F\xBF\xBF", 4);
    /* Escapes next to raw multi-byte characters. */
    assert_string_is(state, "\"\xC3\xA9\\n\xF0\x9F\x98\x80\"", "\xC3\xA9\n\xF0\x9F\x98\x80", 7);

    assert_bad(state, "\"\\x\"", 4, "unknown escape");
    assert_bad(state, "\"\\u12\"", 6, "short \\u");
    assert_bad(state, "\"\\u12G4\"", 8, "non-hex \\u");
    assert_bad(state, "\"\\'\"", 4, "escaped single quote");
    assert_bad(state, "\"abc", 4, "unterminated");
    assert_bad(state, "\"abc\\\"", 6, "escaped closing quote");
    /* A trailing backslash at the very end of the input (scanner must not step past it). */
    assert_bad(state, "\"\\", 2, "trailing backslash");
    assert_bad(state, "[\"a\\", 4, "trailing backslash in array");
    assert_bad(state, "\"a\nb\"", 5, "raw newline");
    assert_bad(state, "\"a\x01\"", 4, "raw control character");
    assert_bad(state, "\"\\\x01\"", 4, "escaped control character");
}

static void test_surrogates(void **state)
{
    assert_bad(state, "\"\\uD800\"", 8, "lone high surrogate");
    assert_bad(state, "\"\\uDC00\"", 8, "lone low surrogate");
    assert_bad(state, "\"\\uDFFF\\uD800\"", 14, "low then high");
    assert_bad(state, "\"\\uD800\\u0041\"", 14, "high then non-surrogate");
    assert_bad(state, "\"\\uD800\\uD800\"", 14, "two highs");
    assert_bad(state, "\"\\uD800x\"", 9, "high then a character");
    assert_bad(state, "\"\\uD800\\n\"", 10, "high then another escape");
    assert_bad(state, "\"\\uD800\\\"", 9, "high at the end");
}

static void test_utf8(void **state)
{
    /* Well-formed: 2-, 3- and 4-byte characters, the extremes of each range. */
    assert_string_is(state, "\"\xC2\x80\xDF\xBF\"", "\xC2\x80\xDF\xBF", 4);
    assert_string_is(state, "\"\xE0\xA0\x80\xEF\xBF\xBF\"", "\xE0\xA0\x80\xEF\xBF\xBF", 6);
    assert_string_is(state, "\"\xED\x9F\xBF\xEE\x80\x80\"", "\xED\x9F\xBF\xEE\x80\x80", 6);
    assert_string_is(state, "\"\xF0\x90\x80\x80\xF4\x8F\xBF\xBF\"",
                     "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF", 8);
    /* Long ASCII runs take the 8-bytes-at-a-time path; a bad byte after them is still seen. */
    assert_string_is(state, "\"abcdefghijklmnop\xC3\xA9\"", "abcdefghijklmnop\xC3\xA9", 18);
    assert_bad(state, "\"abcdefghijklmnop\xFF\"", 19, "bad byte after a long ASCII run");

    static const struct {
        const char *s;
        const char *why;
    } bad[] = {
        {"\"\xC0\x80\"", "overlong NUL"},
        {"\"\xC1\xBF\"", "overlong 2-byte"},
        {"\"\xE0\x80\x80\"", "overlong 3-byte"},
        {"\"\xE0\x9F\xBF\"", "overlong 3-byte, top"},
        {"\"\xF0\x80\x80\x80\"", "overlong 4-byte"},
        {"\"\xF0\x8F\xBF\xBF\"", "overlong 4-byte, top"},
        {"\"\xED\xA0\x80\"", "raw high surrogate"},
        {"\"\xED\xBF\xBF\"", "raw low surrogate"},
        {"\"\xF4\x90\x80\x80\"", "above U+10FFFF"},
        {"\"\xF5\x80\x80\x80\"", "F5 lead"},
        {"\"\xFF\"", "FF"},
        {"\"\x80\"", "lone continuation"},
        {"\"\xC3\"", "truncated 2-byte"},
        {"\"\xE2\x82\"", "truncated 3-byte"},
        {"\"\xF0\x9F\x98\"", "truncated 4-byte"},
        {"\"\xC3\x28\"", "bad continuation"},
        {"\"\xF0\x9F\x28\x80\"", "bad third byte"},
        {"{\"\xC0\xAF\":1}", "overlong in a member name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_bad(state, bad[i].s, strlen(bad[i].s), bad[i].why);
    /* Bad bytes next to an escape are still refused (the escaped path validates too). */
    assert_bad(state, "\"\\n\xC0\x80\"", 6, "overlong after an escape");
    assert_bad(state, "\"\xE2\x82\\u0041\"", 10, "truncated sequence before an escape");
}

static void test_containers(void **state)
{
    tl_json *v;
    assert_int_equal(parse(state, "[]", &v), 0);
    assert_int_equal(v->type, TL_JARR);
    assert_int_equal(v->n, 0);
    assert_null(v->child);
    assert_int_equal(parse(state, " { } ", &v), 0);
    assert_int_equal(v->type, TL_JOBJ);
    assert_int_equal(v->n, 0);

    assert_int_equal(parse(state, "{\"a\":1,\"b\":[true,null,\"s\"],\"a\":2}", &v), 0);
    assert_int_equal(v->n, 3);
    const tl_json *a = tl_json_get(v, "a");
    assert_non_null(a);
    assert_true(a->num == 1); /* first match wins */
    const tl_json *b = tl_json_get(v, "b");
    assert_int_equal(b->type, TL_JARR);
    assert_int_equal(b->n, 3);
    assert_int_equal(b->child->type, TL_JTRUE);
    assert_int_equal(b->child->next->type, TL_JNULL);
    assert_true(tl_str_eqc(b->child->next->next->str, "s"));
    assert_null(tl_json_get(v, "c"));
    assert_null(tl_json_get(NULL, "a"));
    assert_null(tl_json_get(b, "a"));
    assert_null(tl_json_get_str(v, "a").p);
    assert_int_equal(parse(state, "{\"k\":\"v\"}", &v), 0);
    assert_true(tl_str_eqc(tl_json_get_str(v, "k"), "v"));

    assert_bad(state, "[1,]", 4, "trailing comma in array");
    assert_bad(state, "{\"a\":1,}", 8, "trailing comma in object");
    assert_bad(state, "[1 2]", 5, "missing comma");
    assert_bad(state, "{\"a\" 1}", 7, "missing colon");
    assert_bad(state, "{a:1}", 5, "bare name");
    assert_bad(state, "{1:1}", 5, "number as name");
    assert_bad(state, "[", 1, "unclosed array");
    assert_bad(state, "{\"a\":1", 6, "unclosed object");
    assert_bad(state, "[}", 2, "mismatched close");
    assert_bad(state, "]", 1, "lone close");
}

static void test_spans(void **state)
{
    const char *s = " {\"a\": [1, {\"b\" : 2} ],\n \"c\":{} } ";
    tl_json *v;
    assert_int_equal(parse(state, s, &v), 0);
    assert_true(tl_str_eqc(v->str, "{\"a\": [1, {\"b\" : 2} ],\n \"c\":{} }"));
    const tl_json *a = tl_json_get(v, "a");
    assert_true(tl_str_eqc(a->str, "[1, {\"b\" : 2} ]"));
    assert_true(tl_str_eqc(a->child->next->str, "{\"b\" : 2}"));
    assert_true(tl_str_eqc(tl_json_get(v, "c")->str, "{}"));
    assert_int_equal(parse(state, "[]", &v), 0);
    assert_true(tl_str_eqc(v->str, "[]"));
}

static void test_limits(void **state)
{
    char deep[300];
    tl_json *v;
    tl_err err;
    for (int d = 1; d <= 100; d += 33) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        tl_json_opts o = {.max_depth = 34};
        int rc = tl_json_parse(*state, deep, 2 * (size_t)d, &o, &v, &err);
        assert_int_equal(rc, d <= 34 ? 0 : TL_E2BIG);
    }
    /* The default depth is 64. */
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    assert_int_equal(tl_json_parse(*state, deep, 128, NULL, &v, &err), 0);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    assert_int_equal(tl_json_parse(*state, deep, 130, NULL, &v, &err), TL_E2BIG);
    assert_non_null(strstr(err.msg, "nested deeper"));
    /* Very deep input stops at the limit without exhausting the stack. */
    static char huge[200000];
    memset(huge, '[', sizeof huge);
    assert_int_equal(tl_json_parse(*state, huge, sizeof huge, NULL, &v, &err), TL_E2BIG);

    tl_json_opts o = {.max_nodes = 4};
    assert_int_equal(tl_json_parse(*state, "[1,2,3]", 7, &o, &v, NULL), 0);
    assert_int_equal(tl_json_parse(*state, "[1,2,3,4]", 9, &o, &v, &err), TL_E2BIG);
    assert_non_null(strstr(err.msg, "more than 4 values"));
}

static void test_error_offset(void **state)
{
    tl_err err;
    tl_json *v;
    assert_int_equal(tl_json_parse(*state, "[1, x]", 6, NULL, &v, &err), TL_EINVAL);
    assert_non_null(strstr(err.msg, "at byte 4"));
    /* err is optional. */
    assert_int_equal(tl_json_parse(*state, "[1, x]", 6, NULL, &v, NULL), TL_EINVAL);
}

static void test_write(void **state)
{
    const char *in = " { \"a\" : [ 1 , -2.5e3 , true , false , null ] , \"s\" : "
                     "\"q\\\"\\\\\\n\\u0001\\u00e9/\" , \"o\" : { } } ";
    const char *want = "{\"a\":[1,-2.5e3,true,false,null],\"s\":\"q\\\"\\\\\\n\\u0001\xC3\xA9/\","
                       "\"o\":{}}";
    tl_json *v;
    assert_int_equal(parse(state, in, &v), 0);
    tl_buf b = TL_BUF_INIT;
    tl_json_write(&b, v);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p, want, b.len);
    /* Writing is a fixed point: parse(write(x)) writes the same text. */
    tl_json *w;
    assert_int_equal(parse_n(state, b.p, b.len, &w, NULL), 0);
    tl_buf b2 = TL_BUF_INIT;
    tl_json_write(&b2, w);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.p, b.p, b.len);
    tl_buf_fini(&b);
    tl_buf_fini(&b2);
}

static void test_write_hand_built(void **state)
{
    /* Nodes built by hand have num but no source text. */
    tl_json n2 = {.type = TL_JNUM, .num = 0.1};
    tl_json n1 = {.type = TL_JNUM, .num = -42, .next = &n2};
    tl_json arr = {.type = TL_JARR, .n = 2, .child = &n1};
    tl_buf b = TL_BUF_INIT;
    tl_json_write(&b, &arr);
    assert_true(tl_str_eqc(tl_buf_str(&b), "[-42,0.1]"));
    tl_buf_fini(&b);
}

static void test_type_names(void **state)
{
    assert_string_equal(tl_json_type_name(TL_JNULL), "null");
    assert_string_equal(tl_json_type_name(TL_JTRUE), "boolean");
    assert_string_equal(tl_json_type_name(TL_JFALSE), "boolean");
    assert_string_equal(tl_json_type_name(TL_JNUM), "number");
    assert_string_equal(tl_json_type_name(TL_JSTR), "string");
    assert_string_equal(tl_json_type_name(TL_JARR), "array");
    assert_string_equal(tl_json_type_name(TL_JOBJ), "object");
    assert_string_equal(tl_json_type_name((tl_jtype)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scalars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_surrogates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_containers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_hand_built, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
