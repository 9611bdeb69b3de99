/* Unit tests of the query engine (kind "trends"): stores built through the writer API with
 * known data, exact answers for every metric, interval and operator, breakdowns, dense empty
 * buckets, retroactive identity merges, erasure, sealed and open parts, time zones with
 * 45-minute offsets and DST, error messages naming the field, and a randomised comparison of
 * events / persons / wau / mau against a brute-force reference. */
#include "query.h"

/* cmocka needs setjmp.h and stdarg.h before it */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>
/* clang-format on */

#include "query/query_int.h" /* tl_query__test_flags */
#include "util/time.h"
#include "util/tz.h"

#define DAY  TL_MS_PER_DAY
#define HOUR 3600000LL

typedef struct fx {
    char dir[64];
    tl_store *s;
    tl_arena *a;
    tl_project_conf p;
    uint32_t seq;
} fx;

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tl_query_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    uint64_t pos, aux;
    tl_err err = {0};
    if (tl_store_open(f->dir, NULL, &f->s, &pos, &aux, &err)) return -1;
    f->a = tl_arena_new();
    strcpy(f->p.name, "demo");
    strcpy(f->p.timezone, "UTC");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    tl_store_free(f->s);
    tl_arena_free(f->a);
    rm_rf(f->dir);
    free(f);
    return 0;
}

/* ---- writing ---- */

static uint32_t did_of(fx *f, const char *id, bool user)
{
    uint32_t pid;
    assert_int_equal(tl_store_w_begin(f->s, tl_str_c(f->p.name), &pid), 0);
    uint32_t d = tl_store_w_did(f->s, pid, tl_str_c(id), user, true);
    tl_store_w_end(f->s, pid);
    return d;
}

static void merge(fx *f, const char *a, const char *b)
{
    uint32_t da = did_of(f, a, false), db = did_of(f, b, false), pid;
    assert_int_equal(tl_store_w_begin(f->s, tl_str_c(f->p.name), &pid), 0);
    assert_int_equal(tl_store_w_merge(f->s, pid, da, db), 0);
    tl_store_w_end(f->s, pid);
}

static void erase(fx *f, const char *who)
{
    uint32_t d = did_of(f, who, false), pid;
    assert_int_equal(tl_store_w_begin(f->s, tl_str_c(f->p.name), &pid), 0);
    tl_store_w_erase(f->s, pid, d);
    tl_store_w_end(f->s, pid);
}

/* Appends an event; props is a list of "key=value" (value "#n" is the number n). */
static void add(fx *f, const char *event, const char *who, int64_t ts, const char *platform,
                const char *props)
{
    tl_prop pr[8];
    char buf[256];
    uint32_t n = 0;
    if (props) {
        snprintf(buf, sizeof buf, "%s", props);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < 8;
             t = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(t, '=');
            *eq = 0;
            pr[n].key = tl_str_c(t);
            if (eq[1] == '#') {
                pr[n].type = TL_PV_NUM;
                pr[n].num = strtod(eq + 2, NULL);
                pr[n].str = TL_STR_NULL;
            } else {
                pr[n].type = TL_PV_STR;
                pr[n].str = tl_str_c(eq + 1);
            }
            n++;
        }
    }
    char eid[32];
    snprintf(eid, sizeof eid, "e%u", f->seq++);
    tl_record r;
    memset(&r, 0, sizeof r);
    r.kind = TL_REC_EVENT;
    r.ts_ms = ts;
    r.recv_ms = ts;
    r.project = tl_str_c(f->p.name);
    r.event = tl_str_c(event);
    r.event_id = tl_str_c(eid);
    r.anonymous_id = tl_str_c(who);
    if (platform) r.field[TL_F_PLATFORM] = tl_str_c(platform);
    r.props = pr;
    r.n_props = n;
    uint32_t d = did_of(f, who, false), pid;
    assert_int_equal(tl_store_w_begin(f->s, tl_str_c(f->p.name), &pid), 0);
    tl_store_w_append(f->s, pid, &r, d);
    tl_store_w_end(f->s, pid);
}

static void checkpoint(fx *f)
{
    tl_err err = {0};
    assert_int_equal(tl_store_checkpoint(f->s, f->seq, 0, &err), 0);
}

/* ---- querying ---- */

static int64_t T(const char *iso)
{
    int64_t ms;
    if (tl_iso_parse(tl_str_c(iso), &ms)) fail_msg("bad time %s", iso);
    return ms;
}

/* Runs query q (single quotes stand for double quotes); returns the code and the answer. */
static int run(fx *f, const char *q, tl_buf *out, tl_err *err)
{
    char *s = strdup(q);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    tl_json *j;
    tl_err jerr = {0};
    if (tl_json_parse(f->a, s, strlen(s), NULL, &j, &jerr))
        fail_msg("bad test query %s: %s", s, jerr.msg);
    out->len = 0;
    memset(err, 0, sizeof *err);
    int rc = tl_query_run(f->s, &f->p, j, f->a, out, err);
    free(s);
    return rc;
}

/* Checks that query q answers `rows` (single quotes for double quotes) and returns nothing. */
static void expect(fx *f, const char *q, const char *cols, const char *rows)
{
    tl_buf out = TL_BUF_INIT;
    tl_err err;
    int rc = run(f, q, &out, &err);
    if (rc) fail_msg("query %s failed: %d %s", q, rc, err.msg);
    char want[8192];
    snprintf(want, sizeof want, "{\"columns\":%s,\"rows\":%s,\"took_ms\":", cols, rows);
    for (char *p = want; *p; p++)
        if (*p == '\'') *p = '"';
    tl_buf_cstr(&out);
    if (strncmp(out.p, want, strlen(want)) != 0)
        fail_msg("query %s\n  got  %s\n  want %s", q, out.p, want);
    tl_buf_fini(&out);
}

#define COLS   "['bucket','value']"
#define Q(...) "{'project':'demo','kind':'trends'," __VA_ARGS__ "}"

static void expect_err(fx *f, const char *q, const char *msg)
{
    tl_buf out = TL_BUF_INIT;
    tl_err err;
    int rc = run(f, q, &out, &err);
    if (rc != TL_EINVAL)
        fail_msg("query %s: expected TL_EINVAL, got %d (%s)", q, rc, out.p ? out.p : "");
    if (!strstr(err.msg, msg)) fail_msg("query %s: error '%s' lacks '%s'", q, err.msg, msg);
    tl_buf_fini(&out);
}

/* ---- tests ---- */

static void test_no_data(void **state)
{
    fx *f = *state;
    expect(f, Q("'from':'2026-01-01','to':'2026-01-03'"), COLS,
           "[['2026-01-01',0],['2026-01-02',0],['2026-01-03',0]]");
    expect(f, Q("'from':'2026-01-01','to':'2026-01-02','metric':'mau','breakdown':'country'"),
           "['bucket','country','value']", "[]");
}

static void test_events_dense(void **state)
{
    fx *f = *state;
    add(f, "view", "a", T("2026-01-02T10:00Z"), "web", NULL);
    add(f, "view", "a", T("2026-01-02T11:00Z"), "web", NULL);
    add(f, "buy", "b", T("2026-01-04T23:59:59.999Z"), "ios", NULL);
    add(f, "view", "b", T("2026-01-05T00:00Z"), "ios", NULL);
    add(f, "view", "c", T("2025-12-31T23:59:59.999Z"), "ios", NULL);
    expect(f, Q("'from':'2026-01-01','to':'2026-01-05'"), COLS,
           "[['2026-01-01',0],['2026-01-02',2],['2026-01-03',0],['2026-01-04',1],"
           "['2026-01-05',1]]");
    expect(f, Q("'from':'2026-01-01','to':'2026-01-05','event':'view','interval':'day'"), COLS,
           "[['2026-01-01',0],['2026-01-02',2],['2026-01-03',0],['2026-01-04',0],"
           "['2026-01-05',1]]");
    expect(f, Q("'from':'2026-01-01','to':'2026-01-05','event':'nope'"), COLS,
           "[['2026-01-01',0],['2026-01-02',0],['2026-01-03',0],['2026-01-04',0],"
           "['2026-01-05',0]]");
    /* timestamps: inclusive `to`, milliseconds or ISO */
    expect(f, Q("'from':'2026-01-02T10:00:00Z','to':'2026-01-04T23:59:59.999Z'"), COLS,
           "[['2026-01-02',2],['2026-01-03',0],['2026-01-04',1]]");
    char q[256];
    snprintf(q, sizeof q, Q("'from':%lld,'to':%lld"), (long long)T("2026-01-02T10:00:00.001Z"),
             (long long)T("2026-01-04T23:59:59.998Z"));
    expect(f, q, COLS, "[['2026-01-02',1],['2026-01-03',0],['2026-01-04',0]]");
    /* sealing does not change the answer */
    checkpoint(f);
    expect(f, Q("'from':'2026-01-01','to':'2026-01-05'"), COLS,
           "[['2026-01-01',0],['2026-01-02',2],['2026-01-03',0],['2026-01-04',1],"
           "['2026-01-05',1]]");
}

static void test_intervals(void **state)
{
    fx *f = *state;
    /* 2026-01-05 is a Monday */
    add(f, "e", "a", T("2026-01-04T12:00Z"), NULL, NULL); /* Sunday, week of 12-29 */
    add(f, "e", "a", T("2026-01-05T00:30Z"), NULL, NULL);
    add(f, "e", "b", T("2026-01-05T00:59Z"), NULL, NULL);
    add(f, "e", "b", T("2026-01-05T02:00Z"), NULL, NULL);
    add(f, "e", "c", T("2026-02-01T00:00Z"), NULL, NULL);
    add(f, "e", "c", T("2026-03-31T23:00Z"), NULL, NULL);
    expect(f, Q("'from':'2026-01-04','to':'2026-01-12','interval':'week'"), COLS,
           "[['2025-12-29',1],['2026-01-05',3],['2026-01-12',0]]");
    expect(f, Q("'from':'2026-01-04','to':'2026-01-12','interval':'week','metric':'persons'"), COLS,
           "[['2025-12-29',1],['2026-01-05',2],['2026-01-12',0]]");
    expect(f, Q("'from':'2026-01-01','to':'2026-03-31','interval':'month'"), COLS,
           "[['2026-01-01',4],['2026-02-01',1],['2026-03-01',1]]");
    /* a cut bucket counts only the rows inside the range */
    expect(f, Q("'from':'2026-01-05','to':'2026-02-10','interval':'month'"), COLS,
           "[['2026-01-01',3],['2026-02-01',1]]");
    expect(f, Q("'from':'2026-01-05T00:00Z','to':'2026-01-05T03:00Z','interval':'hour'"), COLS,
           "[['2026-01-05T00:00',2],['2026-01-05T01:00',0],['2026-01-05T02:00',1],"
           "['2026-01-05T03:00',0]]");
    /* a whole day of hours */
    tl_buf out = TL_BUF_INIT;
    tl_err err;
    assert_int_equal(
        run(f, Q("'from':'2026-01-05','to':'2026-01-05','interval':'hour'"), &out, &err), 0);
    tl_buf_cstr(&out);
    assert_non_null(strstr(out.p, "\"2026-01-05T23:00\",0]]"));
    assert_null(strstr(out.p, "2026-01-06"));
    tl_buf_fini(&out);
}

static void test_persons_merge(void **state)
{
    fx *f = *state;
    int64_t d1 = T("2026-01-01T00:00Z"), d2 = d1 + DAY, d3 = d2 + DAY;
    add(f, "id", "a1", d1 + 8 * HOUR, NULL, NULL);
    add(f, "id", "a1", d1 + 9 * HOUR, NULL, NULL);
    add(f, "id", "a2", d1 + 10 * HOUR, NULL, NULL);
    add(f, "id", "u1", d2 + 8 * HOUR, NULL, NULL);
    add(f, "id", "a3", d2 + 9 * HOUR, NULL, NULL);
    add(f, "id", "u1", d3 + 8 * HOUR, NULL, NULL);
    const char *q = Q("'from':'2026-01-01','to':'2026-01-03','metric':'persons'");
    expect(f, q, COLS, "[['2026-01-01',2],['2026-01-02',2],['2026-01-03',1]]");
    merge(f, "a1", "u1");
    expect(f, q, COLS, "[['2026-01-01',2],['2026-01-02',2],['2026-01-03',1]]");
    /* a3 joins u1's person: d2 then has one person, retroactively */
    merge(f, "a3", "u1");
    expect(f, q, COLS, "[['2026-01-01',2],['2026-01-02',1],['2026-01-03',1]]");
    expect(f, Q("'from':'2026-01-01','to':'2026-01-03','metric':'persons','interval':'month'"),
           COLS, "[['2026-01-01',2]]");
    checkpoint(f);
    merge(f, "a2", "u1");
    expect(f, Q("'from':'2026-01-01','to':'2026-01-03','metric':'persons','interval':'month'"),
           COLS, "[['2026-01-01',1]]");
    expect(f, Q("'from':'2026-01-01','to':'2026-01-03','metric':'wau'"), COLS,
           "[['2026-01-01',1],['2026-01-02',1],['2026-01-03',1]]");
}

static void test_erased(void **state)
{
    fx *f = *state;
    int64_t d = T("2026-01-01T00:00Z");
    add(f, "er", "er-a", d + 8 * HOUR, "secret-platform", "plan=x");
    add(f, "er", "er-u", d + 9 * HOUR, "web", NULL);
    add(f, "er", "keep", d + 10 * HOUR, "web", "plan=y");
    merge(f, "er-a", "er-u");
    checkpoint(f);
    add(f, "er", "er-a", d + 11 * HOUR, "web", "plan=x");
    erase(f, "er-u");
    const char *r = "[['2026-01-01',1]]";
    expect(f, Q("'from':'2026-01-01','to':'2026-01-01'"), COLS, r);
    expect(f, Q("'from':'2026-01-01','to':'2026-01-01','metric':'persons'"), COLS, r);
    expect(f, Q("'from':'2026-01-01','to':'2026-01-01','metric':'mau'"), COLS, r);
    expect(f, Q("'from':'2026-01-01','to':'2026-01-01','breakdown':'platform'"),
           "['bucket','platform','value']", "[['2026-01-01','web',1]]");
    expect(f, Q("'from':'2026-01-01','to':'2026-01-01','breakdown':'properties.plan'"),
           "['bucket','properties.plan','value']", "[['2026-01-01','y',1]]");
}

static void test_sum_avg(void **state)
{
    fx *f = *state;
    int64_t d1 = T("2026-01-01T00:00Z"), d2 = d1 + DAY;
    add(f, "buy", "a1", d1 + 1, NULL, "price=#10,plan=pro");
    add(f, "buy", "a1", d1 + 2, NULL, "price=#5.5");
    add(f, "buy", "a2", d1 + 3, NULL, "price=n/a");
    add(f, "buy", "a3", d2 + 4, NULL, "price=2,plan=free");
    add(f, "view", "a3", d2 + 5, NULL, NULL);
    const char *rng = "'from':'2026-01-01','to':'2026-01-03',";
    char q[512];
    snprintf(q, sizeof q, Q("%s'metric':'sum:properties.price'"), rng);
    expect(f, q, COLS, "[['2026-01-01',15.5],['2026-01-02',2],['2026-01-03',0]]");
    snprintf(q, sizeof q, Q("%s'metric':'avg:properties.price'"), rng);
    expect(f, q, COLS, "[['2026-01-01',7.75],['2026-01-02',2],['2026-01-03',0]]");
    snprintf(q, sizeof q, Q("%s'metric':'sum:properties.nope'"), rng);
    expect(f, q, COLS, "[['2026-01-01',0],['2026-01-02',0],['2026-01-03',0]]");
    snprintf(q, sizeof q, Q("%s'metric':'sum:properties.price','breakdown':'properties.plan'"),
             rng);
    expect(f, q, "['bucket','properties.plan','value']",
           "[['2026-01-01',null,5.5],['2026-01-01','free',0],['2026-01-01','pro',10],"
           "['2026-01-02',null,0],['2026-01-02','free',2],['2026-01-02','pro',0],"
           "['2026-01-03',null,0],['2026-01-03','free',0],['2026-01-03','pro',0]]");
    snprintf(q, sizeof q, Q("%s'metric':'avg:properties.price','interval':'month'"), rng);
    expect(f, q, COLS, "[['2026-01-01',5.833333333333333]]");
}

static void test_ops(void **state)
{
    fx *f = *state;
    int64_t d = T("2026-01-01T00:00Z");
    add(f, "e", "a", d + 1, "web", "plan=pro,n=#42,s=42,b=true,url=https://x.com/a");
    add(f, "e", "a", d + 2, "ios", "plan=free,n=#7,s=7.0,b=false");
    add(f, "e", "a", d + 3, "android", "plan=Pro,n=#-1,s=abc");
    add(f, "e", "a", d + 4, NULL, NULL);
    checkpoint(f);
    add(f, "e", "a", d + 5, "web", "n=#100,s=1e2");
    struct {
        const char *where;
        int want;
    } cases[] = {
        {"{'prop':'platform','op':'=','value':'web'}", 2},
        {"{'prop':'platform','op':'!=','value':'web'}", 3},
        {"{'prop':'platform','op':'in','value':['web','ios']}", 3},
        {"{'prop':'platform','op':'not_in','value':['web','ios']}", 2},
        {"{'prop':'platform','op':'=','value':['web','nope']}", 2},
        {"{'prop':'platform','op':'=','value':'nope'}", 0},
        {"{'prop':'platform','op':'!=','value':'nope'}", 5},
        {"{'prop':'platform','op':'contains','value':'o'}", 2},
        {"{'prop':'platform','op':'is_set'}", 4},
        {"{'prop':'platform','op':'is_not_set'}", 1},
        {"{'prop':'event','op':'=','value':'e'}", 5},
        {"{'prop':'properties.plan','op':'=','value':'pro'}", 1},
        {"{'prop':'properties.plan','op':'!=','value':'pro'}", 4},
        {"{'prop':'properties.plan','op':'contains','value':'ro'}", 2},
        {"{'prop':'properties.plan','op':'in','value':['pro','Pro','free']}", 3},
        {"{'prop':'properties.plan','op':'not_in','value':['pro','Pro']}", 3},
        {"{'prop':'properties.plan','op':'is_set'}", 3},
        {"{'prop':'properties.plan','op':'is_not_set'}", 2},
        {"{'prop':'properties.n','op':'>','value':7}", 2},
        {"{'prop':'properties.n','op':'>=','value':7}", 3},
        {"{'prop':'properties.n','op':'<','value':'7'}", 1},
        {"{'prop':'properties.n','op':'<=','value':7}", 2},
        {"{'prop':'properties.n','op':'=','value':42}", 1},
        {"{'prop':'properties.n','op':'=','value':'42'}", 1},
        {"{'prop':'properties.n','op':'in','value':[42,7,'100']}", 3},
        {"{'prop':'properties.n','op':'!=','value':42}", 4},
        /* string values that are numbers */
        {"{'prop':'properties.s','op':'=','value':7}", 1},
        {"{'prop':'properties.s','op':'=','value':'7'}", 0},
        {"{'prop':'properties.s','op':'=','value':'7.0'}", 1},
        {"{'prop':'properties.s','op':'>','value':10}", 2},
        {"{'prop':'properties.s','op':'<=','value':100}", 3},
        {"{'prop':'properties.s','op':'contains','value':'a'}", 1},
        {"{'prop':'properties.n','op':'contains','value':'4'}", 0},
        /* booleans */
        {"{'prop':'properties.b','op':'=','value':true}", 1},
        {"{'prop':'properties.b','op':'=','value':false}", 1},
        {"{'prop':'properties.b','op':'!=','value':true}", 4},
        /* dotted key absent from the dictionary */
        {"{'prop':'properties.zz','op':'=','value':'x'}", 0},
        {"{'prop':'properties.zz','op':'!=','value':'x'}", 5},
        {"{'prop':'properties.zz','op':'is_not_set'}", 5},
        {"{'prop':'properties.url','op':'contains','value':'x.com'}", 1},
        /* conjunction */
        {"{'prop':'platform','op':'=','value':'web'},{'prop':'properties.n','op':'>','value':50}",
         1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char q[512], rows[64];
        snprintf(q, sizeof q, Q("'from':'2026-01-01','to':'2026-01-01','where':[%s]"),
                 cases[i].where);
        snprintf(rows, sizeof rows, "[['2026-01-01',%d]]", cases[i].want);
        expect(f, q, COLS, rows);
    }
}

static void test_breakdown(void **state)
{
    fx *f = *state;
    int64_t d1 = T("2026-01-01T00:00Z"), d2 = d1 + DAY;
    add(f, "e", "a", d1 + 1, "web", "v=#2");
    add(f, "e", "b", d1 + 2, "web", "v=#10");
    add(f, "e", "a", d1 + 3, "ios", "v=x");
    add(f, "e", "c", d2 + 1, NULL, "v=#2");
    add(f, "e", "c", d2 + 2, "web", NULL);
    expect(f, Q("'from':'2026-01-01','to':'2026-01-03','breakdown':'platform'"),
           "['bucket','platform','value']",
           "[['2026-01-01',null,0],['2026-01-01','ios',1],['2026-01-01','web',2],"
           "['2026-01-02',null,1],['2026-01-02','ios',0],['2026-01-02','web',1],"
           "['2026-01-03',null,0],['2026-01-03','ios',0],['2026-01-03','web',0]]");
    expect(f,
           Q("'from':'2026-01-01','to':'2026-01-02','breakdown':'properties.v','metric':"
             "'persons'"),
           "['bucket','properties.v','value']",
           "[['2026-01-01',null,0],['2026-01-01',2,1],['2026-01-01',10,1],['2026-01-01','x',1],"
           "['2026-01-02',null,1],['2026-01-02',2,1],['2026-01-02',10,0],['2026-01-02','x',0]]");
    /* only values with data in range */
    expect(f, Q("'from':'2026-01-02','to':'2026-01-02','breakdown':'platform'"),
           "['bucket','platform','value']", "[['2026-01-02',null,1],['2026-01-02','web',1]]");
    expect(f, Q("'from':'2026-01-01','to':'2026-01-02','breakdown':'platform','metric':'wau'"),
           "['bucket','platform','value']",
           "[['2026-01-01',null,0],['2026-01-01','ios',1],['2026-01-01','web',2],"
           "['2026-01-02',null,1],['2026-01-02','ios',1],['2026-01-02','web',3]]");
}

static void test_breakdown_other(void **state)
{
    fx *f = *state;
    int64_t d = T("2026-01-01T00:00Z");
    char who[16], props[32];
    /* 105 values; v000 has 3 rows (2 persons), v001..v104 one row each, all person "p" */
    for (int i = 0; i < 105; i++) {
        snprintf(props, sizeof props, "k=v%03d", i);
        add(f, "e", "p", d + i, NULL, props);
    }
    add(f, "e", "q", d + 200, NULL, "k=v000");
    add(f, "e", "q", d + 201, NULL, "k=v000");
    (void)who;
    tl_buf out = TL_BUF_INIT;
    tl_err err;
    assert_int_equal(run(f,
                         Q("'from':'2026-01-01','to':'2026-01-01','breakdown':'properties.k',"
                           "'metric':'persons'"),
                         &out, &err),
                     0);
    tl_buf_cstr(&out);
    /* v000 first (most rows), then 99 of the single-row values by value order: v001..v099;
     * v100..v104 go to $other, which counts its distinct persons (1) */
    assert_non_null(strstr(out.p, "[\"2026-01-01\",\"v000\",2]"));
    assert_non_null(strstr(out.p, "[\"2026-01-01\",\"v099\",1]"));
    assert_null(strstr(out.p, "v100"));
    assert_non_null(strstr(out.p, "[\"2026-01-01\",\"$other\",1]]"));
    int rows = 0;
    for (const char *p = out.p; (p = strstr(p, "[\"2026-01-01\"")); p++)
        rows++;
    assert_int_equal(rows, 101);
    tl_buf_fini(&out);
}

static void test_sealed_and_open(void **state)
{
    fx *f = *state;
    int64_t d = T("2026-01-10T00:00Z");
    /* out-of-order rows in several parts of the same days */
    for (int round = 0; round < 3; round++) {
        for (int i = 9; i >= 0; i--)
            add(f, "e", i % 2 ? "odd" : "even", d + (int64_t)i * 7 * HOUR + round, NULL, NULL);
        if (round < 2) checkpoint(f);
    }
    /* 30 rows at hours 0,7,...,63: days 10 (0..21h: 4), 11 (28..42: 3), 12 (49..63: 3) */
    expect(f, Q("'from':'2026-01-10','to':'2026-01-12'"), COLS,
           "[['2026-01-10',12],['2026-01-11',9],['2026-01-12',9]]");
    expect(f, Q("'from':'2026-01-10','to':'2026-01-12','metric':'persons'"), COLS,
           "[['2026-01-10',2],['2026-01-11',2],['2026-01-12',2]]");
    expect(f,
           Q("'from':'2026-01-10','to':'2026-01-12','metric':'persons','tz':'UTC',"
             "'where':[{'prop':'event','op':'=','value':'e'}]"),
           COLS, "[['2026-01-10',2],['2026-01-11',2],['2026-01-12',2]]");
    expect(f, Q("'from':'2026-01-10T07:00Z','to':'2026-01-10T14:00Z','interval':'hour'"), COLS,
           "[['2026-01-10T07:00',3],['2026-01-10T08:00',0],['2026-01-10T09:00',0],"
           "['2026-01-10T10:00',0],['2026-01-10T11:00',0],['2026-01-10T12:00',0],"
           "['2026-01-10T13:00',0],['2026-01-10T14:00',1]]");
}

static bool have_zone(const char *name)
{
    tl_tz *z = NULL;
    if (tl_tz_load(name, &z, NULL)) return false;
    tl_tz_free(z);
    return true;
}

static void test_tz_kathmandu(void **state)
{
    fx *f = *state;
    if (!have_zone("Asia/Kathmandu")) skip();
    add(f, "e", "a", T("2026-01-10T18:14:59.999Z"), NULL, NULL); /* 23:59:59.999 local */
    add(f, "e", "a", T("2026-01-10T18:15:00Z"), NULL, NULL);     /* 00:00 on the 11th */
    add(f, "e", "a", T("2026-01-11T18:14:00Z"), NULL, NULL);
    expect(f, Q("'from':'2026-01-10','to':'2026-01-11','tz':'Asia/Kathmandu'"), COLS,
           "[['2026-01-10',1],['2026-01-11',2]]");
    expect(f, Q("'from':'2026-01-10','to':'2026-01-11','tz':'UTC'"), COLS,
           "[['2026-01-10',2],['2026-01-11',1]]");
    expect(f,
           Q("'from':'2026-01-10T18:00Z','to':'2026-01-10T19:00Z','tz':'Asia/Kathmandu',"
             "'interval':'hour'"),
           COLS, "[['2026-01-10T23:00',1],['2026-01-11T00:00',1]]");
    strcpy(f->p.timezone, "Asia/Kathmandu"); /* the project's zone is the default */
    expect(f, Q("'from':'2026-01-10','to':'2026-01-11'"), COLS,
           "[['2026-01-10',1],['2026-01-11',2]]");
}

static void test_tz_new_york_dst(void **state)
{
    fx *f = *state;
    if (!have_zone("America/New_York")) skip();
    /* 2026-03-08: 23 hours, 05:00Z .. 2026-03-09T04:00Z */
    add(f, "e", "a", T("2026-03-08T04:59:59Z"), NULL, NULL);
    add(f, "e", "a", T("2026-03-08T05:00:00Z"), NULL, NULL);
    add(f, "e", "a", T("2026-03-09T03:59:59Z"), NULL, NULL);
    add(f, "e", "a", T("2026-03-09T04:00:00Z"), NULL, NULL);
    /* 2026-11-01: 25 hours, 04:00Z .. 2026-11-02T05:00Z; 01:00 local twice */
    add(f, "e", "a", T("2026-11-01T03:59:59Z"), NULL, NULL);
    add(f, "e", "a", T("2026-11-01T05:30:00Z"), NULL, NULL);
    add(f, "e", "a", T("2026-11-01T06:30:00Z"), NULL, NULL);
    add(f, "e", "a", T("2026-11-02T04:59:59Z"), NULL, NULL);
    add(f, "e", "a", T("2026-11-02T05:00:00Z"), NULL, NULL);
    const char *tz = "'tz':'America/New_York',";
    char q[256];
    snprintf(q, sizeof q, Q("%s'from':'2026-03-07','to':'2026-03-09'"), tz);
    expect(f, q, COLS, "[['2026-03-07',1],['2026-03-08',2],['2026-03-09',1]]");
    snprintf(q, sizeof q, Q("%s'from':'2026-10-31','to':'2026-11-02'"), tz);
    expect(f, q, COLS, "[['2026-10-31',1],['2026-11-01',3],['2026-11-02',1]]");
    /* hours: 23 buckets without 02:00 on March 8, 24 labels with a 2-hour 01:00 on Nov 1 */
    tl_buf out = TL_BUF_INIT;
    tl_err err;
    snprintf(q, sizeof q, Q("%s'from':'2026-03-08','to':'2026-03-08','interval':'hour'"), tz);
    assert_int_equal(run(f, q, &out, &err), 0);
    tl_buf_cstr(&out);
    assert_null(strstr(out.p, "T02:00"));
    assert_non_null(strstr(out.p, "[\"2026-03-08T00:00\",1]"));
    assert_non_null(strstr(out.p, "[\"2026-03-08T23:00\",1]"));
    int n = 0;
    for (const char *p = out.p; (p = strstr(p, "[\"2026-03-08T")); p++)
        n++;
    assert_int_equal(n, 23);
    snprintf(q, sizeof q, Q("%s'from':'2026-11-01','to':'2026-11-01','interval':'hour'"), tz);
    assert_int_equal(run(f, q, &out, &err), 0);
    tl_buf_cstr(&out);
    assert_non_null(strstr(out.p, "[\"2026-11-01T01:00\",2]"));
    assert_non_null(strstr(out.p, "[\"2026-11-01T23:00\",1]"));
    n = 0;
    for (const char *p = out.p; (p = strstr(p, "[\"2026-11-01T")); p++)
        n++;
    assert_int_equal(n, 24);
    tl_buf_fini(&out);
    /* a week and a month across the change */
    snprintf(q, sizeof q, Q("%s'from':'2026-03-02','to':'2026-03-09','interval':'week'"), tz);
    expect(f, q, COLS, "[['2026-03-02',3],['2026-03-09',1]]");
}

static void test_errors(void **state)
{
    fx *f = *state;
    struct {
        const char *q, *msg;
    } cases[] = {
        {"[]", "query: expected a JSON object"},
        {"{'kind':'trends','from':'2026-01-01','to':'2026-01-02'}", "project: required"},
        {"{'project':'other','kind':'trends','from':'2026-01-01','to':'2026-01-02'}",
         "project: 'other'"},
        {"{'project':'demo','from':'2026-01-01','to':'2026-01-02'}", "kind: required"},
        {"{'project':'demo','kind':'funnels','from':'2026-01-01','to':'2026-01-02'}",
         "kind: unknown 'funnels'"},
        {"{'project':'demo','kind':'funnel','from':'2026-01-01','to':'2026-01-02'}",
         "steps: required"},
        {Q("'to':'2026-01-02'"), "from: required"},
        {Q("'from':'2026-01-01'"), "to: required"},
        {Q("'from':'2026-13-01','to':'2026-01-02'"), "from: expected"},
        {Q("'from':'2026-01-01','to':'garbage'"), "to: expected"},
        {Q("'from':'2026-01-01T10:00','to':'2026-01-02'"), "from: expected"},
        {Q("'from':'2026-01-03','to':'2026-01-02'"), "to: before from"},
        {Q("'from':'2026-01-01','to':'2026-01-02','tz':'Mars/Olympus_Mons'"),
         "tz: unknown time zone 'Mars/Olympus_Mons'"},
        {Q("'from':'2026-01-01','to':'2026-01-02','tz':'../../etc/passwd'"),
         "tz: unknown time zone"},
        {Q("'from':'2026-01-01','to':'2026-01-02','tz':7"), "tz: expected"},
        {Q("'from':'2026-01-01','to':'2026-01-02','interval':'year'"), "interval: unknown 'year'"},
        {Q("'from':'2026-01-01','to':'2026-01-02','metric':'nope'"), "metric: unknown 'nope'"},
        {Q("'from':'2026-01-01','to':'2026-01-02','metric':'sum:'"), "metric:"},
        {Q("'from':'2026-01-01','to':'2026-01-02','metric':'avg:price'"),
         "metric: unknown property 'price'"},
        {Q("'from':'2026-01-01','to':'2026-01-02','metric':'wau','interval':'hour'"),
         "interval: 'hour'"},
        {Q("'from':'1990-01-01','to':'2026-01-02'"), "more than 10000"},
        {Q("'from':'2026-01-01','to':'2027-03-02','interval':'hour'"), "interval:"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':'nope'"), "where: expected a list"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[7]"), "where[0]: expected an object"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'op':'=','value':'x'}]"),
         "where[0].prop: required"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'prop':'platform','op':'=',"
           "'value':'x'},{'prop':'platform','op':'==','value':'x'}]"),
         "where[1].op: unknown operator '=='"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'prop':'no_such_field','op':'=',"
           "'value':'x'}]"),
         "where[0].prop: unknown property 'no_such_field'"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'prop':'properties.','op':'=',"
           "'value':'x'}]"),
         "where[0].prop: unknown property"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'prop':'platform','op':'='}]"),
         "where[0].value: required"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'prop':'platform','op':'=',"
           "'value':null}]"),
         "where[0].value: expected"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'prop':'platform','op':'>',"
           "'value':'abc'}]"),
         "where[0].value: expected a number"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'prop':'platform','op':'contains',"
           "'value':3}]"),
         "where[0].value: expected a string"},
        {Q("'from':'2026-01-01','to':'2026-01-02','where':[{'prop':'platform','op':'in',"
           "'value':['a',{}]}]"),
         "where[0].value[1]: expected"},
        {Q("'from':'2026-01-01','to':'2026-01-02','breakdown':'no_such_field'"),
         "breakdown: unknown property"},
        {Q("'from':'2026-01-01','to':'2026-01-02','breakdown':3"), "breakdown: expected"},
        {Q("'from':'2026-01-01','to':'2026-01-02','event':7"), "event: expected a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_err(f, cases[i].q, cases[i].msg);
}

/* ---- randomised comparison with a brute-force reference (UTC) ---- */

#define R_IDS  40
#define R_DAYS 75
#define R_N    1500

typedef struct rev {
    int64_t ts;
    int who;
    int plat; /* 0 none, 1 ios, 2 web */
} rev;

static int uf_find(int *uf, int x)
{
    while (uf[x] != x)
        x = uf[x] = uf[uf[x]];
    return x;
}

static uint64_t g_rng = 88172645463325252ULL;
static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

/* Reference value of metric m for bucket [b0, b1] (days, inclusive; range [fd, td]) and
 * platform filter plat (-1: any). */
static int ref_value(const rev *ev, int n, const int *uf, const bool *erased, int m, int64_t b0,
                     int64_t b1, int64_t fd, int64_t td, int plat)
{
    int64_t lo = b0 < fd ? fd : b0, hi = b1 > td ? td : b1;
    if (m >= 2) { /* wau / mau */
        int64_t w = m == 2 ? 7 : 30;
        hi = b1 > td ? td : b1;
        lo = hi - w + 1;
    }
    bool seen[R_IDS] = {0};
    int cnt = 0;
    for (int i = 0; i < n; i++) {
        int64_t day = tl_floordiv(ev[i].ts, DAY);
        int p = uf_find((int *)uf, ev[i].who);
        if (day < lo || day > hi || erased[p] || (plat >= 0 && ev[i].plat != plat)) continue;
        if (m == 0)
            cnt++;
        else if (!seen[p]) {
            seen[p] = true;
            cnt++;
        }
    }
    return cnt;
}

static void test_random_reference(void **state)
{
    fx *f = *state;
    static rev ev[R_N];
    int uf[R_IDS];
    bool erased[R_IDS] = {0};
    char who[16];
    const char *plats[] = {NULL, "ios", "web"};
    int64_t base = T("2026-01-01T00:00Z");
    for (int i = 0; i < R_IDS; i++)
        uf[i] = i;
    for (int i = 0; i < R_N; i++) {
        ev[i].ts = base + (int64_t)rnd(R_DAYS) * DAY + (int64_t)rnd(86400) * 1000;
        ev[i].who = (int)rnd(R_IDS);
        ev[i].plat = (int)rnd(3);
        snprintf(who, sizeof who, "id%d", ev[i].who);
        char props[32]; /* n = the id's number, as a number or (odd rows) as a string */
        snprintf(props, sizeof props, i % 2 ? "n=%d" : "n=#%d", ev[i].who);
        add(f, "e", who, ev[i].ts, plats[ev[i].plat], props);
        if (i % 400 == 399) checkpoint(f);
        if (i % 100 == 50) { /* merge two random anonymous ids */
            int a = (int)rnd(R_IDS), b = (int)rnd(R_IDS);
            char wa[16], wb[16];
            snprintf(wa, sizeof wa, "id%d", a);
            snprintf(wb, sizeof wb, "id%d", b);
            uint32_t da = did_of(f, wa, false), db = did_of(f, wb, false), pid;
            assert_int_equal(tl_store_w_begin(f->s, tl_str_c(f->p.name), &pid), 0);
            assert_int_equal(tl_store_w_merge(f->s, pid, da, db), 0);
            tl_store_w_end(f->s, pid);
            int ra = uf_find(uf, a), rb = uf_find(uf, b);
            uf[ra] = rb;
        }
    }
    /* erase one person (the one of id3) */
    erase(f, "id3");
    int r3 = uf_find(uf, 3);
    erased[r3] = true;

    static const char *metrics[] = {"events", "persons", "wau", "mau"};
    static const char *ivs[] = {"day", "week", "month"};
    int64_t fd = tl_floordiv(base, DAY) + 20, td = fd + 40;
    for (int m = 0; m < 4; m++) {
        for (int flags = 0; flags < 8; flags++) {
            tl_query__test_flags = flags;
            for (int iv = 0; iv < 3; iv++) {
                for (int mode = 0; mode < 3; mode++) { /* plain, breakdown, filtered */
                    bool bd = mode == 1;
                    char q[512];
                    int64_t y;
                    unsigned mo, dd;
                    char from[16], to[16];
                    tl_civil_from_days(fd, &y, &mo, &dd);
                    snprintf(from, sizeof from, "%04lld-%02u-%02u", (long long)y, mo, dd);
                    tl_civil_from_days(td, &y, &mo, &dd);
                    snprintf(to, sizeof to, "%04lld-%02u-%02u", (long long)y, mo, dd);
                    snprintf(
                        q, sizeof q,
                        "{\"project\":\"demo\",\"kind\":\"trends\",\"from\":\"%s\",\"to\":\"%s\","
                        "\"metric\":\"%s\",\"interval\":\"%s\"%s}",
                        from, to, metrics[m], ivs[iv],
                        mode == 1   ? ",\"breakdown\":\"platform\""
                        : mode == 2 ? ",\"where\":[{\"prop\":\"platform\",\"op\":\"contains\","
                                      "\"value\":\"we\"}]"
                                    : "");
                    tl_buf out = TL_BUF_INIT;
                    tl_err err;
                    if (run(f, q, &out, &err)) fail_msg("%s: %s", q, err.msg);
                    tl_json *j;
                    assert_int_equal(tl_json_parse(f->a, out.p, out.len, NULL, &j, &err), 0);
                    const tl_json *rows = tl_json_get(j, "rows");
                    assert_non_null(rows);
                    const tl_json *row = rows->child;
                    /* buckets */
                    for (int64_t b0 = fd; b0 <= td;) {
                        int64_t s = b0, e;
                        if (iv == 1) s = b0 - (b0 + 3 - 7 * tl_floordiv(b0 + 3, 7));
                        if (iv == 2) {
                            tl_civil_from_days(b0, &y, &mo, &dd);
                            s = tl_days_from_civil(y, mo, 1);
                            e = (mo == 12 ? tl_days_from_civil(y + 1, 1, 1)
                                          : tl_days_from_civil(y, mo + 1, 1)) -
                                1;
                        } else {
                            e = iv == 1 ? s + 6 : s;
                        }
                        int nplat = bd ? 3 : 1;
                        for (int p = 0; p < nplat; p++) {
                            int want = ref_value(ev, R_N, uf, erased, m, s, e, fd, td,
                                                 bd          ? p
                                                 : mode == 2 ? 2
                                                             : -1);
                            if (!row) fail_msg("%s: missing rows", q);
                            const tl_json *c = row->child;
                            tl_civil_from_days(s, &y, &mo, &dd);
                            char lab[16];
                            snprintf(lab, sizeof lab, "%04lld-%02u-%02u", (long long)y, mo, dd);
                            if (!tl_str_eqc(c->str, lab))
                                fail_msg("%s: bucket %.*s, want %s", q, (int)c->str.len, c->str.p,
                                         lab);
                            if (bd) {
                                c = c->next;
                                if (p == 0)
                                    assert_int_equal(c->type, TL_JNULL);
                                else
                                    assert_true(tl_str_eqc(c->str, plats[p]));
                            }
                            c = c->next;
                            if ((int)c->num != want)
                                fail_msg("%s (flags %d): bucket %s platform %d: got %d, want %d", q,
                                         flags, lab, p, (int)c->num, want);
                            row = row->next;
                        }
                        b0 = e + 1;
                    }
                    assert_null(row);
                    tl_buf_fini(&out);
                }
            }
        }
    }
    /* sum:properties.n per day, over every strategy (numbers in strings are parsed once) */
    for (int flags = 0; flags < 8; flags++) {
        tl_query__test_flags = flags;
        tl_buf out = TL_BUF_INIT;
        tl_err err;
        assert_int_equal(run(f,
                             "{'project':'demo','kind':'trends','from':'2026-01-01','to':"
                             "'2026-03-16','metric':'sum:properties.n','where':[{'prop':"
                             "'properties.n','op':'>=','value':3}]}",
                             &out, &err),
                         0);
        tl_json *j;
        assert_int_equal(tl_json_parse(f->a, out.p, out.len, NULL, &j, &err), 0);
        const tl_json *row = tl_json_get(j, "rows")->child;
        for (int64_t d = tl_floordiv(base, DAY); d < tl_floordiv(base, DAY) + R_DAYS; d++) {
            int64_t want = 0;
            for (int i = 0; i < R_N; i++)
                if (tl_floordiv(ev[i].ts, DAY) == d && !erased[uf_find(uf, ev[i].who)] &&
                    ev[i].who >= 3)
                    want += ev[i].who;
            assert_non_null(row);
            assert_int_equal((int64_t)row->child->next->num, want);
            row = row->next;
        }
        assert_null(row);
        tl_buf_fini(&out);
    }
    tl_query__test_flags = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_dense, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intervals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persons_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_erased, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sum_avg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breakdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breakdown_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_and_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tz_kathmandu, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tz_new_york_dst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_reference, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
