/* Unit tests of the query kinds sessions and paths and of the trends metrics stickiness and
 * lifecycle: stores built through the writer API with known data and exact answers for the
 * documented rules (docs/semantics.md): the session timeout and its edge (a gap of exactly
 * the timeout continues), the 24 h cut, sessions cut by the range, `where` selecting sessions,
 * breakdown at the first event, entry/exit pages, merges, collapsed path steps, both path
 * directions, the lifecycle statuses around the range's start, and errors naming the field. */
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

#include <cmocka.h>
/* clang-format on */

#include "util/time.h"

#define MIN 60000LL

typedef struct fx {
    char dir[64];
    tl_store *s;
    tl_arena *a;
    tl_project_conf p;
    uint32_t seq;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tl_qsess_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    uint64_t pos, aux;
    tl_err err = {0};
    if (tl_store_open(f->dir, NULL, &f->s, &pos, &aux, &err)) return -1;
    f->a = tl_arena_new();
    strcpy(f->p.name, "demo");
    strcpy(f->p.timezone, "UTC");
    f->p.session_timeout_s = 1800;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[128];
    tl_store_free(f->s);
    tl_arena_free(f->a);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static uint32_t did_of(fx *f, const char *id)
{
    uint32_t pid;
    assert_int_equal(tl_store_w_begin(f->s, tl_str_c(f->p.name), &pid), 0);
    uint32_t d = tl_store_w_did(f->s, pid, tl_str_c(id), false, true);
    tl_store_w_end(f->s, pid);
    return d;
}

static void merge(fx *f, const char *a, const char *b)
{
    uint32_t da = did_of(f, a), db = did_of(f, b), pid;
    assert_int_equal(tl_store_w_begin(f->s, tl_str_c(f->p.name), &pid), 0);
    assert_int_equal(tl_store_w_merge(f->s, pid, da, db), 0);
    tl_store_w_end(f->s, pid);
}

/* Appends an event of `who` at ts with an optional url and platform. */
static void add(fx *f, const char *event, const char *who, int64_t ts, const char *url,
                const char *platform)
{
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
    if (url) r.field[TL_F_URL] = tl_str_c(url);
    if (platform) r.field[TL_F_PLATFORM] = tl_str_c(platform);
    uint32_t d = did_of(f, who), pid;
    assert_int_equal(tl_store_w_begin(f->s, tl_str_c(f->p.name), &pid), 0);
    tl_store_w_append(f->s, pid, &r, d);
    tl_store_w_end(f->s, pid);
}

static void checkpoint(fx *f)
{
    tl_err err = {0};
    assert_int_equal(tl_store_checkpoint(f->s, f->seq, 0, &err), 0);
}

static int64_t T(const char *iso)
{
    int64_t ms;
    if (tl_iso_parse(tl_str_c(iso), &ms)) fail_msg("bad time %s", iso);
    return ms;
}

static char *dq(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; *p; p++)
        if (*p == '\'') *p = '"';
    return d;
}

static int run(fx *f, const char *q, tl_buf *out, tl_err *err)
{
    char *s = dq(q);
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

/* The answer of q must be `want` (single quotes for double quotes) followed by took_ms. */
static void expect(fx *f, const char *q, const char *want)
{
    tl_buf out = TL_BUF_INIT;
    tl_err err;
    int rc = run(f, q, &out, &err);
    if (rc) fail_msg("query %s failed: %d %s", q, rc, err.msg);
    char *w = dq(want);
    tl_buf_cstr(&out);
    size_t n = strlen(w);
    if (strncmp(out.p, w, n) != 0 || strncmp(out.p + n, ",\"took_ms\":", 11) != 0)
        fail_msg("query %s\n  got  %s\n  want %s", q, out.p, w);
    free(w);
    tl_buf_fini(&out);
}

static void expect_err(fx *f, const char *q, const char *msg)
{
    tl_buf out = TL_BUF_INIT;
    tl_err err;
    int rc = run(f, q, &out, &err);
    if (rc != TL_EINVAL) fail_msg("query %s: expected TL_EINVAL, got %d", q, rc);
    if (!strstr(err.msg, msg)) fail_msg("query %s: error '%s' lacks '%s'", q, err.msg, msg);
    tl_buf_fini(&out);
}

#define S(...)  "{'project':'demo','kind':'sessions'," __VA_ARGS__ "}"
#define P(...)  "{'project':'demo','kind':'paths'," __VA_ARGS__ "}"
#define TR(...) "{'project':'demo','kind':'trends'," __VA_ARGS__ "}"
#define SCOLS                                                                                      \
    "'columns':['bucket','sessions','avg_duration_s','median_duration_s','bounce_rate',"           \
    "'events_per_session']"

/* ---- sessions ---- */

static void sessions_data(fx *f)
{
    add(f, "view", "a", T("2026-01-02T10:00Z"), "/", NULL);
    add(f, "view", "a", T("2026-01-02T10:10Z"), "/p", NULL);
    add(f, "view", "a", T("2026-01-02T10:45Z"), "/p", NULL); /* gap 35 min: a new session */
    add(f, "buy", "b", T("2026-01-02T11:00Z"), NULL, NULL);
    add(f, "view", "c", T("2026-01-02T12:00Z"), "/", NULL);
    add(f, "view", "c", T("2026-01-02T12:30Z"), "/x", NULL); /* gap of exactly 30 min: same */
    add(f, "buy", "c", T("2026-01-02T12:30Z"), NULL, NULL);  /* an equal timestamp */
    add(f, "view", "c", T("2026-01-02T13:00:00.001Z"), "/y", NULL);
}

static void test_sessions_basic(void **state)
{
    fx *f = *state;
    sessions_data(f);
    const char *want = "{" SCOLS ",'rows':[['2026-01-01',0,0,0,0,0],['2026-01-02',5,480,0,0.6,1.6],"
                       "['2026-01-03',0,0,0,0,0]],'entry_pages':[{'url':'/','sessions':2},"
                       "{'url':'/p','sessions':1},{'url':'/y','sessions':1}],"
                       "'exit_pages':[{'url':'/p','sessions':2},{'url':'/x','sessions':1},"
                       "{'url':'/y','sessions':1}],'session_timeout_s':1800";
    expect(f, S("'from':'2026-01-01','to':'2026-01-03'"), want);
    checkpoint(f); /* sealed parts answer the same */
    expect(f, S("'from':'2026-01-01','to':'2026-01-03'"), want);
    /* a longer timeout (the query's) joins a's sessions and c's: durations 2700 s, 0, 3600 s */
    expect(
        f, S("'from':'2026-01-02','to':'2026-01-02','session_timeout_s':3600"),
        "{" SCOLS
        ",'rows':[['2026-01-02',3,2100.0003333333334,2700,0.3333333333333333,2.6666666666666665]],"
        "'entry_pages':[{'url':'/','sessions':2}],'exit_pages':[{'url':'/p','sessions':1},"
        "{'url':'/y','sessions':1}],'session_timeout_s':3600");
    /* the project's setting is the default */
    f->p.session_timeout_s = 3600;
    expect(
        f, S("'from':'2026-01-02','to':'2026-01-02'"),
        "{" SCOLS
        ",'rows':[['2026-01-02',3,2100.0003333333334,2700,0.3333333333333333,2.6666666666666665]],"
        "'entry_pages':[{'url':'/','sessions':2}],'exit_pages':[{'url':'/p','sessions':1},"
        "{'url':'/y','sessions':1}],'session_timeout_s':3600");
}

static void test_sessions_where(void **state)
{
    fx *f = *state;
    sessions_data(f);
    /* sessions with a buy, measured on all their events */
    expect(f, S("'from':'2026-01-02','to':'2026-01-02','event':'buy'"),
           "{" SCOLS ",'rows':[['2026-01-02',2,900,900,0.5,2]],'entry_pages':[{'url':'/',"
           "'sessions':1}],'exit_pages':[{'url':'/x','sessions':1}],'session_timeout_s':1800");
    expect(f, S("'from':'2026-01-02','to':'2026-01-02','event':'nope'"),
           "{" SCOLS ",'rows':[['2026-01-02',0,0,0,0,0]],'entry_pages':[],'exit_pages':[],"
           "'session_timeout_s':1800");
}

static void test_sessions_edges(void **state)
{
    fx *f = *state;
    /* a session across midnight: it belongs to the day it starts on */
    add(f, "view", "a", T("2026-01-01T23:50Z"), NULL, NULL);
    add(f, "view", "a", T("2026-01-02T00:10Z"), NULL, NULL);
    expect(f, S("'from':'2026-01-01','to':'2026-01-02'"),
           "{" SCOLS ",'rows':[['2026-01-01',1,1200,1200,0,2],['2026-01-02',0,0,0,0,0]],"
           "'entry_pages':[],'exit_pages':[],'session_timeout_s':1800");
    /* cut by the range: only the events inside it are seen */
    expect(f, S("'from':'2026-01-02','to':'2026-01-02'"),
           "{" SCOLS ",'rows':[['2026-01-02',1,0,0,1,1]],'entry_pages':[],'exit_pages':[],"
           "'session_timeout_s':1800");
    expect(f, S("'from':'2026-01-01','to':'2026-01-01'"),
           "{" SCOLS ",'rows':[['2026-01-01',1,0,0,1,1]],'entry_pages':[],'exit_pages':[],"
           "'session_timeout_s':1800");
    /* in Kathmandu (+05:45) both events are on 2026-01-02 */
    expect(f, S("'from':'2026-01-02','to':'2026-01-02','tz':'Asia/Kathmandu'"),
           "{" SCOLS ",'rows':[['2026-01-02',1,1200,1200,0,2]],'entry_pages':[],'exit_pages':[],"
           "'session_timeout_s':1800");
}

static void test_sessions_cut_24h(void **state)
{
    fx *f = *state;
    int64_t t0 = T("2026-01-05T00:00Z");
    for (int k = 0; k < 76; k++) /* every 20 minutes for 25 hours */
        add(f, "ping", "a", t0 + k * 20 * MIN, NULL, NULL);
    /* the event 24 h after the first starts a new session: 72 events, then 4 */
    expect(f, S("'from':'2026-01-05','to':'2026-01-11','interval':'week'"),
           "{" SCOLS ",'rows':[['2026-01-05',2,44400,44400,0,38]],'entry_pages':[],"
           "'exit_pages':[],'session_timeout_s':1800");
}

static void test_sessions_breakdown_merge(void **state)
{
    fx *f = *state;
    add(f, "view", "a1", T("2026-01-02T10:00Z"), "/", "web");
    add(f, "view", "a2", T("2026-01-02T10:20Z"), "/app", "ios"); /* a1's person once merged */
    add(f, "view", "b", T("2026-01-02T10:00Z"), NULL, "ios");
    add(f, "view", "c", T("2026-01-02T10:00Z"), NULL, NULL);
    const char *cols = "'columns':['bucket','platform','sessions','avg_duration_s',"
                       "'median_duration_s','bounce_rate','events_per_session']";
    char want[1024];
    snprintf(want, sizeof want,
             "{%s,'rows':[['2026-01-02',null,1,0,0,1,1],['2026-01-02','ios',2,0,0,1,1],"
             "['2026-01-02','web',1,0,0,1,1]],'entry_pages':[{'url':'/','sessions':1},"
             "{'url':'/app','sessions':1}]",
             cols);
    expect(f, S("'from':'2026-01-02','to':'2026-01-02','breakdown':'platform'"),
           strcat(want, ",'exit_pages':[{'url':'/','sessions':1},{'url':'/app','sessions':1}],"
                        "'session_timeout_s':1800"));
    merge(f, "a1", "a2"); /* retroactive: one session of two events, web at its start */
    snprintf(want, sizeof want,
             "{%s,'rows':[['2026-01-02',null,1,0,0,1,1],['2026-01-02','ios',1,0,0,1,1],"
             "['2026-01-02','web',1,1200,1200,0,2]],'entry_pages':[{'url':'/','sessions':1}],"
             "'exit_pages':[{'url':'/app','sessions':1}],'session_timeout_s':1800",
             cols);
    expect(f, S("'from':'2026-01-02','to':'2026-01-02','breakdown':'platform'"), want);
    /* no session: no rows */
    snprintf(want, sizeof want,
             "{%s,'rows':[],'entry_pages':[],'exit_pages':[],'session_timeout_s':1800", cols);
    expect(f, S("'from':'2026-02-02','to':'2026-02-02','breakdown':'platform'"), want);
}

static void test_sessions_errors(void **state)
{
    fx *f = *state;
    expect_err(f, S("'from':'2026-01-01','to':'2026-01-02','session_timeout_s':0"),
               "session_timeout_s:");
    expect_err(f, S("'from':'2026-01-01','to':'2026-01-02','session_timeout_s':'30'"),
               "session_timeout_s:");
    expect_err(f, S("'from':'2026-01-01','to':'2026-01-02','session_timeout_s':1e300"),
               "session_timeout_s:");
    expect_err(f, S("'from':'2026-01-01','to':'2026-01-02','session_timeout_s':90.5"),
               "session_timeout_s:");
    expect(f, S("'from':'2026-01-01','to':'2026-01-01'"),
           "{" SCOLS ",'rows':[['2026-01-01',0,0,0,0,0]],'entry_pages':[],'exit_pages':[],"
           "'session_timeout_s':1800");
}

/* ---- paths ---- */

static void paths_data(fx *f)
{
    add(f, "view", "a", T("2026-01-02T10:00Z"), "/", NULL);
    add(f, "view", "a", T("2026-01-02T10:01Z"), "/p", NULL);
    add(f, "cart", "a", T("2026-01-02T10:02Z"), "/cart", NULL);
    add(f, "buy", "a", T("2026-01-02T10:03Z"), NULL, NULL);
    add(f, "view", "b", T("2026-01-02T11:00Z"), "/", NULL);
    add(f, "buy", "b", T("2026-01-02T11:00Z"), NULL, NULL); /* equal times: by name */
    add(f, "cart", "c", T("2026-01-02T12:00Z"), "/cart", NULL);
    add(f, "view", "c", T("2026-01-02T12:01Z"), "/", NULL);
    add(f, "view", "d", T("2026-01-05T12:01Z"), "/", NULL); /* outside the range */
}

static void test_paths_next(void **state)
{
    fx *f = *state;
    paths_data(f);
    /* b's equal-time events go by name: buy, view; so b's first view ends its steps */
    expect(f, P("'from':'2026-01-02','to':'2026-01-03','start_event':'view'"),
           "{'direction':'next','by':'event','depth':5,'persons':3,'paths':[{'path':['view'],"
           "'persons':2},{'path':['view','cart','buy'],'persons':1}],'edges':[{'depth':1,"
           "'from':'view','to':'cart','persons':1},{'depth':2,'from':'cart','to':'buy',"
           "'persons':1}]");
    expect(f, P("'from':'2026-01-02','to':'2026-01-03','start_event':'view','depth':1"),
           "{'direction':'next','by':'event','depth':1,'persons':3,'paths':[{'path':['view'],"
           "'persons':2},{'path':['view','cart'],'persons':1}],'edges':[{'depth':1,"
           "'from':'view','to':'cart','persons':1}]");
    /* no start: from each person's first step */
    expect(f, P("'from':'2026-01-02','to':'2026-01-03','depth':2"),
           "{'direction':'next','by':'event','depth':2,'persons':3,'paths':[{'path':['buy',"
           "'view'],'persons':1},{'path':['cart','view'],'persons':1},{'path':['view','cart',"
           "'buy'],'persons':1}],'edges':[{'depth':1,'from':'buy','to':'view','persons':1},"
           "{'depth':1,'from':'cart','to':'view','persons':1},{'depth':1,'from':'view',"
           "'to':'cart','persons':1},{'depth':2,'from':'cart','to':'buy','persons':1}]");
    /* pages */
    expect(f, P("'from':'2026-01-02','to':'2026-01-03','by':'url','start_event':'/'"),
           "{'direction':'next','by':'url','depth':5,'persons':3,'paths':[{'path':['/'],"
           "'persons':2},{'path':['/','/p','/cart'],'persons':1}],'edges':[{'depth':1,"
           "'from':'/','to':'/p','persons':1},{'depth':2,'from':'/p','to':'/cart',"
           "'persons':1}]");
    expect(f, P("'from':'2026-01-02','to':'2026-01-03','start_event':'nope'"),
           "{'direction':'next','by':'event','depth':5,'persons':0,'paths':[],'edges':[]");
}

static void test_paths_previous(void **state)
{
    fx *f = *state;
    paths_data(f);
    expect(f, P("'from':'2026-01-02','to':'2026-01-03','end_event':'buy'"),
           "{'direction':'previous','by':'event','depth':5,'persons':2,'paths':[{'path':["
           "'buy'],'persons':1},{'path':['view','cart','buy'],'persons':1}],'edges':[{'depth':1,"
           "'from':'cart','to':'buy','persons':1},{'depth':2,'from':'view','to':'cart',"
           "'persons':1}]");
    expect(f, P("'from':'2026-01-02','to':'2026-01-03','direction':'previous','depth':1"),
           "{'direction':'previous','by':'event','depth':1,'persons':3,'paths':[{'path':["
           "'buy','view'],'persons':1},{'path':['cart','buy'],'persons':1},{'path':['cart',"
           "'view'],'persons':1}],'edges':[{'depth':1,'from':'buy','to':'view','persons':1},"
           "{'depth':1,'from':'cart','to':'buy','persons':1},{'depth':1,'from':'cart','to':"
           "'view','persons':1}]");
    /* where: only matching events are steps */
    expect(f,
           P("'from':'2026-01-02','to':'2026-01-03','end_event':'buy','where':[{'prop':"
             "'event','op':'!=','value':'cart'}]"),
           "{'direction':'previous','by':'event','depth':5,'persons':2,'paths':[{'path':["
           "'buy'],'persons':1},{'path':['view','buy'],'persons':1}],'edges':[{'depth':1,"
           "'from':'view','to':'buy','persons':1}]");
}

static void test_paths_errors(void **state)
{
    fx *f = *state;
    expect_err(f, P("'from':'2026-01-02','to':'2026-01-03','depth':11"), "depth:");
    expect_err(f, P("'from':'2026-01-02','to':'2026-01-03','depth':0"), "depth:");
    expect_err(f, P("'from':'2026-01-02','to':'2026-01-03','depth':-1e300"), "depth:");
    expect_err(f, P("'from':'2026-01-02','to':'2026-01-03','direction':'up'"), "direction:");
    expect_err(f, P("'from':'2026-01-02','to':'2026-01-03','by':'page'"), "by:");
    expect_err(f, P("'from':'2026-01-02','to':'2026-01-03','start_event':'a','end_event':'b'"),
               "end_event:");
    expect_err(f,
               P("'from':'2026-01-02','to':'2026-01-03','start_event':'a',"
                 "'direction':'previous'"),
               "direction:");
    expect_err(f, P("'from':'2026-01-02','to':'2026-01-03','start_event':3"), "start_event:");
    expect_err(f, P("'from':'2026-01-02','to':'2026-01-03','breakdown':'country'"), "breakdown:");
    expect(f, P("'from':'2026-01-02','to':'2026-01-03'"),
           "{'direction':'next','by':'event','depth':5,'persons':0,'paths':[],'edges':[]");
}

/* Answers stay bounded: more than 100 edges at a depth are the top 100 and one "$other" edge;
 * paths and entry pages are the top 100. */
static void expect_has(fx *f, const char *q, const char *part, bool has)
{
    tl_buf out = TL_BUF_INIT;
    tl_err err;
    int rc = run(f, q, &out, &err);
    if (rc) fail_msg("query %s failed: %d %s", q, rc, err.msg);
    tl_buf_cstr(&out);
    char *w = dq(part);
    if (!strstr(out.p, w) != !has)
        fail_msg("query %s\n  answer %s\n  %s %s", q, out.p, has ? "lacks" : "has", w);
    free(w);
    tl_buf_fini(&out);
}

static void test_bounded(void **state)
{
    fx *f = *state;
    char who[16], ev[16], url[16];
    for (int i = 0; i < 105; i++) {
        snprintf(who, sizeof who, "p%03d", i);
        snprintf(ev, sizeof ev, "e%03d", i);
        snprintf(url, sizeof url, "/u%03d", i);
        add(f, "s", who, T("2026-01-02T10:00Z") + i, url, NULL);
        add(f, ev, who, T("2026-01-02T10:01Z") + i, NULL, NULL);
    }
    const char *q = P("'from':'2026-01-02','to':'2026-01-02','start_event':'s','depth':1");
    expect_has(f, q, "'persons':105,'paths':[{'path':['s','e000'],'persons':1},", true);
    expect_has(f, q, "{'path':['s','e099'],'persons':1}],'edges':[{'depth':1,'from':'s'", true);
    expect_has(f, q, "e100", false);
    expect_has(f, q,
               "{'depth':1,'from':'s','to':'e099','persons':1},{'depth':1,'from':'$other',"
               "'to':'$other','persons':5}]",
               true);
    q = S("'from':'2026-01-02','to':'2026-01-02'");
    expect_has(f, q, "'rows':[['2026-01-02',105,60,60,0,2]]", true);
    expect_has(f, q, "{'url':'/u099','sessions':1}],'exit_pages':[{'url':'/u000'", true);
    expect_has(f, q, "/u100", false);
}

/* Many persons and distinct paths (the engines' tables and arrays grow past their first
 * sizes): 1400 persons, 350 distinct paths of 2 to 4 persons each, counted exactly, the same
 * from sealed parts. */
static void test_many_persons(void **state)
{
    fx *f = *state;
    char who[16], ev[16];
    for (int i = 0; i < 1400; i++) {
        snprintf(who, sizeof who, "q%04d", i);
        snprintf(ev, sizeof ev, "e%03d", i % 350);
        add(f, "s", who, T("2026-01-02T10:00Z") + i, NULL, NULL);
        add(f, ev, who, T("2026-01-02T10:01Z") + i, NULL, NULL);
        if (i % 350 < 175) add(f, "t", who, T("2026-01-02T10:02Z") + i, NULL, NULL);
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *q = P("'from':'2026-01-02','to':'2026-01-02','start_event':'s','depth':2");
        expect_has(f, q, "'persons':1400,'paths':[{'path':['s','e000','t'],'persons':4},", true);
        expect_has(f, q, "{'path':['s','e099','t'],'persons':4}],'edges':[", true);
        /* depth 1: 350 edges of 4 persons, the top 100 listed and 250 × 4 under $other */
        expect_has(f, q,
                   "{'depth':1,'from':'s','to':'e099','persons':4},{'depth':1,'from':'$other',"
                   "'to':'$other','persons':1000},{'depth':2,'from':'e000','to':'t','persons':4}",
                   true);
        /* depth 2: 175 edges of 4, 75 × 4 under $other */
        expect_has(f, q, "{'depth':2,'from':'$other','to':'$other','persons':300}]", true);
        q = P("'from':'2026-01-02','to':'2026-01-02','end_event':'e349','depth':3");
        expect_has(f, q, "'persons':4,'paths':[{'path':['s','e349'],'persons':4}]", true);
        q = S("'from':'2026-01-02','to':'2026-01-02'");
        expect_has(f, q, "'rows':[['2026-01-02',1400,90,90,0,2.5]]", true);
        checkpoint(f);
    }
}

/* ---- stickiness and lifecycle ---- */

static void test_stickiness(void **state)
{
    fx *f = *state;
    expect(f, TR("'from':'2026-01-01','to':'2026-01-03','metric':'stickiness'"),
           "{'columns':['days','persons'],'rows':[[1,0],[2,0],[3,0]]");
    add(f, "e", "a", T("2026-01-01T01:00Z"), NULL, NULL);
    add(f, "e", "a", T("2026-01-01T02:00Z"), NULL, NULL);
    add(f, "e", "a", T("2026-01-02T01:00Z"), NULL, NULL);
    add(f, "x", "a", T("2026-01-03T01:00Z"), NULL, NULL);
    add(f, "e", "b", T("2026-01-02T23:00Z"), NULL, NULL);
    add(f, "e", "c", T("2026-01-01T01:00Z"), NULL, NULL);
    add(f, "e", "c", T("2026-01-03T01:00Z"), NULL, NULL);
    add(f, "e", "d", T("2025-12-31T01:00Z"), NULL, NULL);
    expect(f, TR("'from':'2026-01-01','to':'2026-01-04','metric':'stickiness'"),
           "{'columns':['days','persons'],'rows':[[1,1],[2,1],[3,1],[4,0]]");
    expect(f, TR("'from':'2026-01-01','to':'2026-01-04','metric':'stickiness','event':'e'"),
           "{'columns':['days','persons'],'rows':[[1,1],[2,2],[3,0],[4,0]]");
    /* in Kathmandu b's event is on the 3rd */
    expect(f,
           TR("'from':'2026-01-01','to':'2026-01-04','metric':'stickiness','event':'e',"
              "'tz':'Asia/Kathmandu'"),
           "{'columns':['days','persons'],'rows':[[1,1],[2,2],[3,0],[4,0]]");
    expect(f, TR("'from':'2026-01-01','to':'2026-01-04','metric':'stickiness','interval':'week'"),
           "{'columns':['weeks','persons'],'rows':[[1,3]]");
    expect_err(f,
               TR("'from':'2026-01-01','to':'2026-01-04','metric':'stickiness','breakdown':'os'"),
               "breakdown:");
}

static void test_lifecycle(void **state)
{
    fx *f = *state;
    add(f, "e", "a", T("2026-01-01T10:00Z"), NULL, NULL);
    add(f, "e", "a", T("2026-01-03T10:00Z"), NULL, NULL);
    add(f, "e", "a", T("2026-01-04T10:00Z"), NULL, NULL);
    add(f, "e", "a", T("2026-01-06T10:00Z"), NULL, NULL);
    add(f, "e", "b", T("2026-01-02T10:00Z"), NULL, NULL);
    add(f, "e", "b", T("2026-01-03T10:00Z"), NULL, NULL);
    add(f, "e", "c", T("2026-01-04T10:00Z"), NULL, NULL);
    add(f, "e", "c", T("2026-01-05T10:00Z"), NULL, NULL);
    add(f, "e", "d", T("2026-01-02T10:00Z"), NULL, NULL);
    add(f, "e", "z", T("2026-01-07T10:00Z"), NULL, NULL); /* after the range */
    const char *want = "{'columns':['bucket','new','returning','resurrecting','dormant'],"
                       "'rows':[['2026-01-03',0,1,1,-1],['2026-01-04',1,1,0,-1],"
                       "['2026-01-05',0,1,0,-1],['2026-01-06',0,0,1,-1]]";
    expect(f, TR("'from':'2026-01-03','to':'2026-01-06','metric':'lifecycle'"), want);
    checkpoint(f);
    expect(f, TR("'from':'2026-01-03','to':'2026-01-06','metric':'lifecycle'"), want);
    /* weeks (2025-12-29 and 2026-01-05): everyone's first event is in the first week, which
     * the range cuts to its last five days */
    expect(f, TR("'from':'2026-01-01','to':'2026-01-06','metric':'lifecycle','interval':'week'"),
           "{'columns':['bucket','new','returning','resurrecting','dormant'],"
           "'rows':[['2025-12-29',4,0,0,0],['2026-01-05',0,2,0,-2]]");
    expect(f, TR("'from':'2026-01-03','to':'2026-01-06','metric':'lifecycle','interval':'week'"),
           "{'columns':['bucket','new','returning','resurrecting','dormant'],"
           "'rows':[['2025-12-29',1,0,2,0],['2026-01-05',0,2,0,-1]]");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sessions_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_where, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_cut_24h, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_breakdown_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_previous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_persons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stickiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
