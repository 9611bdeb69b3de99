/* Unit tests of reports: HTML escaping (markup, quotes, invalid UTF-8, control characters),
 * CSV fields (quoting, formula prefix), the change against the previous period (including a
 * previous value of 0), the chart's scale and the SVG of known series point by point, the
 * calendar periods, and a whole report built from a fake query source whose answers are
 * known: overview numbers, table merging and order, escaping in the HTML, the files. */
#include "report.h"

/* cmocka needs setjmp.h and stdarg.h before it */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include <cmocka.h>
/* clang-format on */

#include "util/io.h"
#include "util/json.h"
#include "util/time.h"

static char *escaped(const char *s, size_t len)
{
    tl_buf b = TL_BUF_INIT;
    tl_report_html_escape(&b, (tl_str){s, len});
    tl_buf_cstr(&b);
    return b.p ? b.p : strdup("");
}

static void test_html_escape(void **state)
{
    char *e = escaped("<script>alert(\"x&y\")</script>'", 31);
    assert_string_equal(e, "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;");
    free(e);
    /* valid multi-byte UTF-8 is kept as is */
    e = escaped("Zürich → 東京 🎉", strlen("Zürich → 東京 🎉"));
    assert_string_equal(e, "Zürich → 東京 🎉");
    free(e);
    /* invalid bytes become U+FFFD: a lone continuation, a truncated sequence, an overlong
     * '<' (C0 BC), a surrogate (ED A0 80) */
    e = escaped("a\x80"
                "b\xE2\x82"
                "c\xC0\xBC"
                "d\xED\xA0\x80",
                12);
    assert_string_equal(e, "a\xEF\xBF\xBD"
                           "b\xEF\xBF\xBD\xEF\xBF\xBD"
                           "c\xEF\xBF\xBD\xEF\xBF\xBD"
                           "d\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    free(e);
    /* control characters go, tab and newline stay; NUL does not end the output early */
    e = escaped("x\0y\x01z\t\n\x7f!", 9);
    assert_string_equal(e, "xyz\t\n!");
    free(e);
    e = escaped("", 0);
    assert_string_equal(e, "");
    free(e);
}

static void csv_is(const char *in, const char *want)
{
    tl_buf b = TL_BUF_INIT;
    tl_report_csv_field(&b, tl_str_c(in));
    assert_string_equal(tl_buf_cstr(&b), want);
    tl_buf_fini(&b);
}

static void test_csv_field(void **state)
{
    csv_is("/pricing", "/pricing");
    csv_is("a,b", "\"a,b\"");
    csv_is("say \"hi\"", "\"say \"\"hi\"\"\"");
    csv_is("two\nlines", "\"two\nlines\"");
    csv_is("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\"");
    csv_is("+1", "'+1");
    csv_is("-x", "'-x");
    csv_is("@sum", "'@sum");
    csv_is("", "");
}

static void test_change(void **state)
{
    tl_report_change c = tl_report_change_of(150, 100);
    assert_true(c.has_pct);
    assert_true(c.abs == 50 && c.pct == 50 && c.cur == 150 && c.prev == 100);
    c = tl_report_change_of(25, 100);
    assert_true(c.has_pct && c.abs == -75 && c.pct == -75);
    c = tl_report_change_of(7, 0); /* previous = 0: no percentage */
    assert_false(c.has_pct);
    assert_true(c.abs == 7 && c.pct == 0);
    c = tl_report_change_of(0, 0);
    assert_false(c.has_pct);
    assert_true(c.abs == 0);
    c = tl_report_change_of(0, 4);
    assert_true(c.has_pct && c.abs == -4 && c.pct == -100);
    c = tl_report_change_of(0.25, 0.2);
    assert_true(c.has_pct && fabs(c.pct - 25) < 1e-9 && fabs(c.abs - 0.05) < 1e-12);
}

static void test_nice_top(void **state)
{
    assert_true(tl_report_nice_top(0) == 1);
    assert_true(tl_report_nice_top(NAN) == 1);
    assert_true(tl_report_nice_top(1) == 1);
    assert_true(tl_report_nice_top(3) == 5);
    assert_true(tl_report_nice_top(7) == 10);
    assert_true(tl_report_nice_top(100) == 100);
    assert_true(tl_report_nice_top(120) == 200);
    assert_true(tl_report_nice_top(201) == 250);
    assert_true(tl_report_nice_top(251) == 500);
    assert_true(tl_report_nice_top(0.3) == 0.5);
}

static void test_svg_known_series(void **state)
{
    /* top = 100; plot 568 wide from x=56, 164 high from y=16 */
    double cur[3] = {0, 50, 100}, prev[3] = {20, NAN, 40};
    tl_str labels[3] = {TL_STR("Mon"), TL_STR("<Tue>"), TL_STR("Wed")};
    tl_report_series s[2] = {{"this week", cur, false}, {"previous & \"old\"", prev, true}};
    tl_buf b = TL_BUF_INIT;
    tl_report_svg_line(&b, "Events <per> day", labels, 3, s, 2);
    const char *svg = tl_buf_cstr(&b);
    assert_non_null(strstr(svg, "<svg class=\"chart\" viewBox=\"0 0 640 220\""));
    assert_non_null(strstr(svg, "<title>Events &lt;per&gt; day</title>"));
    assert_non_null(strstr(svg, "points=\"56.0,180.0 340.0,98.0 624.0,16.0\""));
    /* the previous series is split by its NaN: two single points, drawn as circles */
    assert_non_null(strstr(svg, "<circle cx=\"56.0\" cy=\"147.2\" r=\"3\""));
    assert_non_null(strstr(svg, "<circle cx=\"624.0\" cy=\"114.4\" r=\"3\""));
    assert_null(strstr(svg, "stroke-dasharray=\"6 4\" points")); /* no dashed polyline */
    /* grid values 0, 25, 50, 75, 100 */
    assert_non_null(strstr(svg, ">100</text>"));
    assert_non_null(strstr(svg, ">25</text>"));
    assert_non_null(strstr(svg, ">&lt;Tue&gt;</text>"));
    assert_non_null(strstr(svg, ">previous &amp; &quot;old&quot;</text>"));
    assert_null(strstr(svg, "<script"));
    assert_null(strstr(svg, "http"));
    tl_buf_fini(&b);

    /* one point in the middle; all zero: top 1 */
    double one[1] = {0};
    tl_str l1[1] = {TL_STR("13:00")};
    tl_report_series s1 = {"x", one, false};
    tl_report_svg_line(&b, "t", l1, 1, &s1, 1);
    assert_non_null(strstr(tl_buf_cstr(&b), "<circle cx=\"340.0\" cy=\"180.0\""));
    tl_buf_fini(&b);
}

static int64_t day_of(const char *s)
{
    int64_t d = 0;
    assert_int_equal(tl_date_parse(tl_str_c(s), &d), 0);
    return d;
}

static void test_periods(void **state)
{
    int64_t f, l;
    tl_report_period p;
    assert_int_equal(tl_report_period_parse("week", &p), 0);
    assert_int_equal(p, TL_REPORT_WEEK);
    assert_int_equal(tl_report_period_parse("year", &p), TL_EINVAL);
    tl_report_period_of(TL_REPORT_WEEK, day_of("2026-11-19"), &f, &l); /* a Thursday */
    assert_true(f == day_of("2026-11-16") && l == day_of("2026-11-22"));
    tl_report_period_of(TL_REPORT_WEEK, day_of("2026-11-16"), &f, &l);
    assert_true(f == day_of("2026-11-16") && l == day_of("2026-11-22"));
    tl_report_period_of(TL_REPORT_MONTH, day_of("2024-02-10"), &f, &l);
    assert_true(f == day_of("2024-02-01") && l == day_of("2024-02-29"));
    tl_report_period_of(TL_REPORT_MONTH, day_of("2026-12-31"), &f, &l);
    assert_true(f == day_of("2026-12-01") && l == day_of("2026-12-31"));
    /* last complete period before a day */
    assert_true(tl_report_last_complete(TL_REPORT_DAY, day_of("2026-03-01")) ==
                day_of("2026-02-28"));
    assert_true(tl_report_last_complete(TL_REPORT_WEEK, day_of("2026-11-23")) ==
                day_of("2026-11-22"));
    assert_true(tl_report_last_complete(TL_REPORT_WEEK, day_of("2026-11-22")) ==
                day_of("2026-11-15"));
    assert_true(tl_report_last_complete(TL_REPORT_MONTH, day_of("2026-01-15")) ==
                day_of("2025-12-31"));
}

/* ---- a fake query source with known answers ---- */

typedef struct fake {
    int n_queries;
    bool fail;
} fake;

static void rows_of(tl_buf *out, const char *rows)
{
    tl_buf_printf(out, "{\"columns\":[\"bucket\",\"value\"],\"rows\":[%s],\"took_ms\":0}", rows);
}

static int fake_query(void *ctx, tl_str query, tl_buf *out, tl_err *err)
{
    fake *f = ctx;
    f->n_queries++;
    if (f->fail) return tl_err_set(err, TL_EIO, "fake: down");
    tl_arena *a = tl_arena_new();
    tl_json *q = NULL;
    assert_int_equal(tl_json_parse(a, query.p, query.len, NULL, &q, NULL), 0);
    assert_true(tl_str_eqc(tl_json_get_str(q, "project"), "demo"));
    assert_true(tl_str_eqc(tl_json_get_str(q, "kind"), "trends"));
    tl_str metric = tl_json_get_str(q, "metric"), iv = tl_json_get_str(q, "interval");
    tl_str bd = tl_json_get_str(q, "breakdown"), from = tl_json_get_str(q, "from");
    const tl_json *where = tl_json_get(q, "where");
    bool cur = tl_str_eqc(from, "2026-11-16") || tl_str_eqc(from, "2026-11-22");
    if (!from.len) { /* the "today" query: from and to are instants */
        rows_of(out, "[\"2026-11-21\",1],[\"2026-11-22\",2],[\"2026-11-23\",3]");
    } else if (tl_str_eqc(bd, "url")) {
        assert_non_null(where);
        rows_of(out, cur ? "[\"2026-11-16\",\"/a\",5],[\"2026-11-16\",\"<b>\",7]"
                         : "[\"2026-11-09\",\"/a\",9],[\"2026-11-09\",\"/gone\",3]");
    } else if (tl_str_eqc(bd, "country")) {
        rows_of(out, cur ? "[\"2026-11-16\",null,4],[\"2026-11-16\",\"US\",10],"
                           "[\"2026-11-16\",\"$other\",1]"
                         : "");
    } else if (bd.len) {
        rows_of(out, "");
    } else if (tl_str_eqc(iv, "day") && tl_str_eqc(metric, "wau")) {
        rows_of(out, cur ? "[\"2026-11-22\",90]" : "[\"2026-11-15\",70]");
    } else if (tl_str_eqc(iv, "day") && tl_str_eqc(metric, "mau")) {
        rows_of(out, cur ? "[\"2026-11-22\",200]" : "[\"2026-11-15\",100]");
    } else if (tl_str_eqc(iv, "day")) { /* series */
        bool ev = tl_str_eqc(metric, "events");
        int64_t d0 = day_of(cur ? "2026-11-16" : "2026-11-09");
        tl_buf r = TL_BUF_INIT;
        for (int i = 0; i < 7; i++) {
            char ds[16];
            int64_t y;
            unsigned m, dd;
            tl_civil_from_days(d0 + i, &y, &m, &dd);
            snprintf(ds, sizeof ds, "%04lld-%02u-%02u", (long long)y, m, dd);
            tl_buf_printf(&r, "%s[\"%s\",%d]", i ? "," : "", ds,
                          ev ? (cur ? 100 : 0) : (cur ? 10 * (i + 1) : 8));
        }
        rows_of(out, tl_buf_cstr(&r));
        tl_buf_fini(&r);
    } else if (tl_json_get(q, "event")) { /* $pageview events */
        assert_true(tl_str_eqc(tl_json_get_str(q, "event"), "$pageview"));
        rows_of(out, cur ? "[\"2026-11-16\",300]" : "[\"2026-11-09\",0]");
    } else if (where) { /* other events with a url */
        assert_int_equal(where->n, 2);
        rows_of(out, cur ? "[\"2026-11-16\",50]" : "[\"2026-11-09\",0]");
    } else if (tl_str_eqc(metric, "events")) {
        assert_true(tl_str_eqc(iv, "week"));
        rows_of(out, cur ? "[\"2026-11-16\",700]" : "[\"2026-11-09\",0]");
    } else {
        assert_true(tl_str_eqc(metric, "persons") && tl_str_eqc(iv, "week"));
        rows_of(out, cur ? "[\"2026-11-16\",100]" : "[\"2026-11-09\",80]");
    }
    tl_arena_free(a);
    return 0;
}

static tl_report_change metric(const tl_report *r, const char *name)
{
    tl_report_change c;
    assert_true(tl_report_metric(r, name, &c));
    return c;
}

static void test_build_from_fake_source(void **state)
{
    fake f = {0};
    tl_report_src src = {fake_query, &f};
    int64_t today = 0;
    assert_int_equal(tl_report_today(&src, "demo", 0, &today, NULL), 0);
    assert_true(today == day_of("2026-11-23"));
    tl_report *r = NULL;
    tl_err err = {0};
    int64_t day = tl_report_last_complete(TL_REPORT_WEEK, today);
    assert_int_equal(tl_report_build(&src, "demo", "Asia/Kathmandu", TL_REPORT_WEEK, day, &r, &err),
                     0);
    int64_t first, last;
    tl_report_range(r, &first, &last);
    assert_true(first == day_of("2026-11-16") && last == day_of("2026-11-22"));

    tl_report_change c = metric(r, "events");
    assert_true(c.cur == 700 && c.prev == 0 && c.abs == 700 && !c.has_pct);
    c = metric(r, "persons");
    assert_true(c.cur == 100 && c.prev == 80 && c.has_pct && c.pct == 25);
    c = metric(r, "dau_avg");
    assert_true(c.cur == 40 && c.prev == 8 && c.pct == 400);
    c = metric(r, "wau");
    assert_true(c.cur == 90 && c.prev == 70);
    c = metric(r, "mau");
    assert_true(c.cur == 200 && c.prev == 100);
    c = metric(r, "stickiness");
    assert_true(fabs(c.cur - 0.2) < 1e-12 && fabs(c.prev - 0.08) < 1e-12);
    c = metric(r, "pageviews");
    assert_true(c.cur == 350 && c.prev == 0 && !c.has_pct);
    assert_false(tl_report_metric(r, "nope", &c));

    tl_buf b = TL_BUF_INIT;
    tl_report_html(r, &b);
    const char *html = tl_buf_cstr(&b);
    assert_non_null(strstr(html, "<!DOCTYPE html>"));
    assert_non_null(strstr(html, "2026-11-16 – 2026-11-22"));
    assert_non_null(strstr(html, "Asia/Kathmandu"));
    assert_non_null(strstr(html, "&lt;b&gt;"));
    assert_null(strstr(html, "<b>"));
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "src="));
    assert_null(strstr(html, "href="));
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    /* previous = 0 shows "(new)", never a percentage */
    assert_non_null(strstr(html, "+700 (new)"));
    assert_non_null(strstr(html, "(not set)"));
    tl_buf_fini(&b);

    /* the files: tables merged over both periods, sorted, $other last */
    char dir[] = "/tmp/tl_report_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(tl_report_write_dir(r, dir, &err), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/top_pages.csv", dir);
    assert_int_equal(tl_read_file(path, &b), 0);
    assert_string_equal(tl_buf_cstr(&b), "url,value,previous,change,change_pct\r\n"
                                         "<b>,7,0,7,\r\n"
                                         "/a,5,9,-4,-44.44444444444444\r\n"
                                         "/gone,0,3,-3,-100\r\n");
    b.len = 0;
    snprintf(path, sizeof path, "%s/countries.csv", dir);
    assert_int_equal(tl_read_file(path, &b), 0);
    assert_string_equal(tl_buf_cstr(&b), "country,value,previous,change,change_pct\r\n"
                                         "US,10,0,10,\r\n"
                                         ",4,0,4,\r\n"
                                         "$other,1,0,1,\r\n");
    b.len = 0;
    snprintf(path, sizeof path, "%s/overview.csv", dir);
    assert_int_equal(tl_read_file(path, &b), 0);
    assert_non_null(strstr(tl_buf_cstr(&b), "\r\nevents,700,0,700,\r\n"));
    assert_non_null(strstr(tl_buf_cstr(&b), "\r\npersons,100,80,20,25\r\n"));
    b.len = 0;
    snprintf(path, sizeof path, "%s/summary.json", dir);
    assert_int_equal(tl_read_file(path, &b), 0);
    tl_arena *a = tl_arena_new();
    tl_json *j = NULL;
    assert_int_equal(tl_json_parse(a, b.p, b.len, NULL, &j, NULL), 0);
    assert_true(tl_str_eqc(tl_json_get_str(j, "from"), "2026-11-16"));
    const tl_json *ev = tl_json_get(tl_json_get(j, "metrics"), "events");
    assert_int_equal(tl_json_get(ev, "change_pct")->type, TL_JNULL);
    assert_null(tl_json_get(j, "html"));
    tl_arena_free(a);
    tl_buf_fini(&b);
    tl_rm_rf(dir);
    tl_report_free(r);

    /* a failing source fails the build with its reason */
    f.fail = true;
    assert_int_equal(tl_report_build(&src, "demo", NULL, TL_REPORT_WEEK, day, &r, &err), TL_EIO);
    assert_null(r);
    assert_string_equal(err.msg, "fake: down");
    tl_report_free(NULL);
}

static void test_args(void **state)
{
    char *argv[] = {"report",         "--project", "demo", "--data", "d",
                    "--period=month", "--out",     "o",    "--end",  "2026-01-31"};
    tl_report_args a;
    int n = 0;
    char **rest = tl_report_args_take(10, argv, &a, &n);
    assert_int_equal(n, 3); /* report --data d */
    assert_string_equal(rest[1], "--data");
    assert_string_equal(a.project, "demo");
    assert_string_equal(a.period, "month");
    assert_string_equal(a.end, "2026-01-31");
    assert_int_equal(tl_report_args_check(&a, NULL), 0);
    free(rest);
    tl_err err = {0};
    a.period = "year";
    assert_int_equal(tl_report_args_check(&a, &err), TL_EINVAL);
    a.period = NULL;
    a.server = "http://127.0.0.1:1";
    a.key = NULL;
    assert_int_equal(tl_report_args_check(&a, &err), TL_EINVAL);
    assert_non_null(strstr(err.msg, "--key"));
    char *argv2[] = {"report", "--out"};
    rest = tl_report_args_take(2, argv2, &a, &n);
    assert_int_equal(tl_report_args_check(&a, &err), TL_EINVAL);
    assert_non_null(strstr(err.msg, "--out"));
    free(rest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html_escape),
        cmocka_unit_test(test_csv_field),
        cmocka_unit_test(test_change),
        cmocka_unit_test(test_nice_top),
        cmocka_unit_test(test_svg_known_series),
        cmocka_unit_test(test_periods),
        cmocka_unit_test(test_build_from_fake_source),
        cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
