/* Unit tests of the realtime counters (src/realtime.h): per-second counts over the last 60 s,
 * active ids over 5 minutes (an identifying event folds the device into the user), top pages
 * over 30 minutes, the recent list, expiry, growth past the tables' first sizes, and projects
 * kept apart. The JSON answer is parsed back with the JSON parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "realtime.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/json.h"

static const int64_t T0 = 1763900000000LL; /* a whole second */

static tl_record ev(const char *anon, const char *user, const char *url)
{
    tl_record r;
    memset(&r, 0, sizeof r);
    r.kind = TL_REC_EVENT;
    r.event = TL_STR("$pageview");
    r.ts_ms = T0;
    r.anonymous_id = tl_str_c(anon);
    r.user_id = tl_str_c(user);
    r.field[TL_F_URL] = tl_str_c(url);
    return r;
}

/* The JSON state of project p at time now, parsed into arena a. */
static const tl_json *state(tl_realtime *rt, uint32_t p, int64_t now, tl_arena *a)
{
    tl_buf b = TL_BUF_INIT;
    tl_realtime_json(rt, p, now, &b);
    char *copy = tl_arena_alloc(a, b.len + 1);
    memcpy(copy, b.p, b.len);
    copy[b.len] = 0;
    tl_buf_fini(&b);
    tl_json *j;
    tl_json_opts o = {16, 100000};
    tl_err err = {0};
    int rc = tl_json_parse(a, copy, strlen(copy), &o, &j, &err);
    if (rc) fail_msg("%s: %s", err.msg, copy);
    return j;
}

static double num(const tl_json *j, const char *k)
{
    const tl_json *v = tl_json_get(j, k);
    assert_non_null(v);
    assert_int_equal(v->type, TL_JNUM);
    return v->num;
}

static double sum_per_s(const tl_json *j)
{
    const tl_json *a = tl_json_get(j, "events_per_s");
    assert_int_equal(a->n, TL_RT_SECONDS);
    double s = 0;
    for (const tl_json *x = a->child; x; x = x->next)
        s += x->num;
    return s;
}

static void test_counts_and_windows(void **st)
{
    (void)st;
    tl_realtime *rt = tl_realtime_new(2);
    tl_arena *a = tl_arena_new();
    tl_record rs[4] = {ev("d1", NULL, "/a"), ev("d2", NULL, "/a"), ev("d1", NULL, "/b"),
                       ev(NULL, "u1", NULL)};
    tl_realtime_feed(rt, 0, rs, 4, T0);
    tl_realtime_feed(rt, 0, rs, 1, T0 + 1500);
    const tl_json *j = state(rt, 0, T0 + 1500, a);
    assert_int_equal((int)num(j, "active_persons_5m"), 3);
    assert_int_equal((int)sum_per_s(j), 5);
    assert_int_equal((int)num(j, "events_60s"), 5);
    const tl_json *ev_s = tl_json_get(j, "events_per_s");
    const tl_json *last = ev_s->child;
    while (last->next)
        last = last->next;
    assert_int_equal((int)last->num, 1); /* the current second */
    const tl_json *top = tl_json_get(j, "top_pages");
    assert_int_equal(top->n, 2);
    assert_true(tl_str_eqc(tl_json_get_str(top->child, "url"), "/a"));
    assert_int_equal((int)num(top->child, "views"), 3);
    /* 61 s later: no events in the last minute, still active, pages still in 30 min */
    j = state(rt, 0, T0 + 62000, a);
    assert_int_equal((int)sum_per_s(j), 0);
    assert_int_equal((int)num(j, "active_persons_5m"), 3);
    assert_int_equal(tl_json_get(j, "top_pages")->n, 2);
    /* past 5 minutes: nobody active; past 30 minutes: no pages */
    j = state(rt, 0, T0 + 301000, a);
    assert_int_equal((int)num(j, "active_persons_5m"), 0);
    j = state(rt, 0, T0 + 1801000, a);
    assert_int_equal(tl_json_get(j, "top_pages")->n, 0);
    /* the other project saw nothing; an unknown project answers zeros */
    j = state(rt, 1, T0, a);
    assert_int_equal((int)num(j, "active_persons_5m"), 0);
    j = state(rt, 7, T0, a);
    assert_int_equal((int)num(j, "events_60s"), 0);
    tl_arena_free(a);
    tl_realtime_free(rt);
}

static void test_identify_folds_device(void **st)
{
    (void)st;
    tl_realtime *rt = tl_realtime_new(1);
    tl_arena *a = tl_arena_new();
    tl_record rs[3] = {ev("dev", NULL, NULL), ev("dev", "user", NULL), ev(NULL, "user", NULL)};
    tl_realtime_feed(rt, 0, rs, 1, T0);
    assert_int_equal((int)num(state(rt, 0, T0, a), "active_persons_5m"), 1);
    tl_realtime_feed(rt, 0, rs + 1, 2, T0 + 10);
    assert_int_equal((int)num(state(rt, 0, T0 + 10, a), "active_persons_5m"), 1);
    const tl_json *rec = tl_json_get(state(rt, 0, T0 + 10, a), "recent");
    assert_int_equal(rec->n, 3);
    assert_true(tl_str_eqc(tl_json_get_str(rec->child, "distinct_id"), "user"));
    tl_arena_free(a);
    tl_realtime_free(rt);
}

static void test_growth_and_expiry(void **st)
{
    (void)st;
    tl_realtime *rt = tl_realtime_new(1);
    tl_arena *a = tl_arena_new();
    char id[32], url[32];
    /* 5000 ids and 700 pages in one minute, then 5000 other ids 10 minutes later: the first
     * ones expire and the tables are rebuilt without them */
    for (int round = 0; round < 2; round++) {
        int64_t t = T0 + round * 600000;
        for (int i = 0; i < 5000; i++) {
            snprintf(id, sizeof id, "r%d-%d", round, i);
            snprintf(url, sizeof url, "/p%d", i % 700);
            tl_record r = ev(id, NULL, url);
            tl_realtime_feed(rt, 0, &r, 1, t + i);
        }
        const tl_json *j = state(rt, 0, t + 5000, a);
        assert_int_equal((int)num(j, "active_persons_5m"), 5000);
        assert_int_equal(tl_json_get(j, "top_pages")->n, TL_RT_TOP);
        assert_int_equal((int)num(tl_json_get(j, "top_pages")->child, "views"), round ? 16 : 8);
        assert_int_equal(tl_json_get(j, "recent")->n, TL_RT_RECENT);
    }
    tl_arena_free(a);
    tl_realtime_free(rt);
}

/* Against a model kept the slow way (every id's last second, every view): random events from
 * 300 devices and 60 users on 40 pages over 40 minutes, some identifying (which folds the
 * device into the user), read at random moments; the active count and the top pages must be
 * the model's. */
static void test_matches_model(void **st)
{
    (void)st;
    enum { ND = 300, NU = 60, NP = 40, NEV = 20000 };
    tl_realtime *rt = tl_realtime_new(1);
    tl_arena *a = tl_arena_new();
    int64_t dev_s[ND], user_s[NU];
    for (int i = 0; i < ND; i++)
        dev_s[i] = INT64_MIN;
    for (int i = 0; i < NU; i++)
        user_s[i] = INT64_MIN;
    static int64_t view_min[NEV];
    static int view_page[NEV];
    int nv = 0;
    uint32_t seed = 99;
    int64_t now = T0;
    char dev[16], user[16], url[16];
    for (int e = 0; e < NEV; e++) {
        seed = seed * 1103515245u + 12345u;
        now += (seed >> 16) % 250; /* 20000 events over about 40 minutes */
        int64_t s = now / 1000;
        int d = (int)((seed >> 4) % ND), u = (int)((seed >> 12) % NU), pg = (int)(seed % NP);
        bool has_user = (seed >> 28) % 4 == 0, has_dev = !has_user || (seed >> 27) % 2;
        snprintf(dev, sizeof dev, "d%d", d);
        snprintf(user, sizeof user, "u%d", u);
        snprintf(url, sizeof url, "/p%d", pg);
        tl_record r = ev(has_dev ? dev : NULL, has_user ? user : NULL, url);
        tl_realtime_feed(rt, 0, &r, 1, now);
        if (has_user) {
            user_s[u] = s;
            if (has_dev) dev_s[d] = INT64_MIN; /* folded into the user */
        } else {
            dev_s[d] = s;
        }
        view_min[nv] = s / 60;
        view_page[nv++] = pg;
        if ((seed >> 20) % 97) continue;
        /* a read, now or up to 6 minutes later */
        int64_t at = now + (int64_t)((seed >> 8) % 360000), at_s = at / 1000;
        int want = 0;
        for (int i = 0; i < ND; i++)
            want += dev_s[i] > at_s - TL_RT_ACTIVE_S;
        for (int i = 0; i < NU; i++)
            want += user_s[i] > at_s - TL_RT_ACTIVE_S;
        uint64_t views[NP] = {0};
        for (int i = 0; i < nv; i++)
            if (view_min[i] > at_s / 60 - TL_RT_PAGES_S / 60) views[view_page[i]]++;
        const tl_json *j = state(rt, 0, at, a);
        assert_int_equal((int)num(j, "active_persons_5m"), want);
        const tl_json *top = tl_json_get(j, "top_pages");
        uint64_t prev = UINT64_MAX;
        char prev_url[16] = "";
        int listed = 0;
        for (const tl_json *x = top->child; x; x = x->next, listed++) {
            tl_str xu = tl_json_get_str(x, "url");
            int k = atoi(xu.p + 2);
            uint64_t v = (uint64_t)num(x, "views");
            assert_int_equal(v, views[k]);
            /* by views, then by url; nothing left out beats the last one listed */
            assert_true(v < prev || (v == prev && memcmp(prev_url, xu.p, xu.len) < 0));
            prev = v;
            snprintf(prev_url, sizeof prev_url, "%.*s", (int)xu.len, xu.p);
            views[k] = 0; /* listed */
        }
        int left = 0;
        for (int k = 0; k < NP; k++) {
            left += views[k] != 0;
            assert_true(views[k] <= prev);
        }
        assert_true(listed == TL_RT_TOP || left == 0);
    }
    tl_arena_free(a);
    tl_realtime_free(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_windows),
        cmocka_unit_test(test_identify_folds_device),
        cmocka_unit_test(test_growth_and_expiry),
        cmocka_unit_test(test_matches_model),
    };
    return cmocka_run_group_tests_name("realtime", tests, NULL, NULL);
}
