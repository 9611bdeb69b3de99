/* Unit tests of the indexer (src/index.h) over a real log and store in a mkdtemp directory:
 * duplicates dropped per (project, event_id), identity merges from events and identify
 * records, checkpoint and reopen, and exactly-once replay of the log after a crash (simulated
 * by copying the data directory between an append and the next checkpoint). */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

/* cmocka needs setjmp.h (and stdarg.h, stddef.h) included before it. */
/* clang-format off */
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "index.h"
#include "index/index_int.h"
#include "log.h"
#include "record.h"
#include "store.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/io.h"
#include "util/time.h"

#define T0   (20454 * TL_MS_PER_DAY) /* 2026-01-01T00:00:00Z */
#define WAIT 10000                   /* ms */

typedef struct fixture {
    char dir[64];
} fixture;

/* A running log + store + indexer on one data directory. */
typedef struct engine {
    char root[128];
    tl_store *store;
    tl_log *log;
    tl_index *ix;
    uint64_t end; /* log position after the last append */
} engine;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/tl_index_test.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    tl_diag_set_level(TL_LOG_INFO);
    tl_rm_rf(f->dir);
    free(f);
    return 0;
}

static uint32_t g_retention_days; /* for the indexers that start() opens */

/* Opens store, then log, then indexer (the order `tally serve` uses), and starts it. */
static void start(engine *e, const char *root, uint32_t checkpoint_ms, uint32_t seal_rows)
{
    memset(e, 0, sizeof *e);
    snprintf(e->root, sizeof e->root, "%s", root);
    char path[256];
    tl_err err = {0};
    uint64_t pos = 0, aux = 0;
    snprintf(path, sizeof path, "%s/store", root);
    int rc = tl_store_open(path, NULL, &e->store, &pos, &aux, &err);
    if (rc) fail_msg("store: %s", err.msg);
    snprintf(path, sizeof path, "%s/log", root);
    rc = tl_log_open(path, NULL, &e->log, &err);
    if (rc) fail_msg("log: %s", err.msg);
    snprintf(path, sizeof path, "%s/index", root);
    tl_index_opts io = {
        .checkpoint_ms = checkpoint_ms, .seal_rows = seal_rows, .retention_days = g_retention_days};
    rc = tl_index_open(path, e->store, e->log, pos, aux, &io, &e->ix, &err);
    if (rc) fail_msg("index: %s", err.msg);
    assert_int_equal(tl_index_start(e->ix), 0);
    e->end = tl_log_durable_pos(e->log);
}

static void stop(engine *e)
{
    tl_index_free(e->ix);
    tl_log_close(e->log);
    tl_store_free(e->store);
    memset(e, 0, sizeof *e);
}

/* Record builder. */
typedef struct rec {
    tl_record r;
    tl_prop props[2];
} rec;

static rec mk(const char *project, const char *event, const char *eid, const char *anon,
              const char *user, int64_t ts)
{
    rec x;
    memset(&x, 0, sizeof x);
    x.r.kind = TL_REC_EVENT;
    x.r.ts_ms = ts;
    x.r.recv_ms = ts;
    x.r.project = tl_str_c(project);
    x.r.event = tl_str_c(event);
    x.r.event_id = tl_str_c(eid);
    x.r.anonymous_id = tl_str_c(anon ? anon : "");
    x.r.user_id = tl_str_c(user ? user : "");
    return x;
}

/* Appends records as one log append and waits until they are indexed. */
static void put(engine *e, rec *recs, size_t n)
{
    tl_buf *bufs = calloc(n, sizeof *bufs);
    tl_str *strs = calloc(n, sizeof *strs);
    for (size_t i = 0; i < n; i++) {
        recs[i].r.props = recs[i].props;
        tl_record_encode(&recs[i].r, &bufs[i]);
        strs[i] = tl_buf_str(&bufs[i]);
    }
    uint64_t end = 0;
    assert_int_equal(tl_log_append(e->log, strs, n, &end), 0);
    assert_true(end > e->end);
    e->end = end;
    assert_int_equal(tl_index_wait(e->ix, end, WAIT), 0);
    for (size_t i = 0; i < n; i++)
        tl_buf_fini(&bufs[i]);
    free(bufs);
    free(strs);
}

static void put1(engine *e, rec x)
{
    put(e, &x, 1);
}

/* Appends raw bytes as a log record (not a valid encoding). */
static void put_raw(engine *e, const char *bytes, size_t len)
{
    tl_str s = {bytes, len};
    uint64_t end = 0;
    assert_int_equal(tl_log_append(e->log, &s, 1, &end), 0);
    e->end = end;
    assert_int_equal(tl_index_wait(e->ix, end, WAIT), 0);
}

/* Rows of a project: total, and how many carry event id eid (NULL: not counted). */
static uint64_t rows(engine *e, const char *project, const char *eid, uint64_t *with_eid)
{
    tl_snap *sn = NULL;
    if (with_eid) *with_eid = 0;
    if (tl_store_snap(e->store, tl_str_c(project), &sn) == TL_ENOENT) return 0;
    uint64_t n = 0;
    for (size_t i = 0; i < tl_snap_n_parts(sn); i++) {
        tl_part_info in = tl_snap_part_info(sn, i);
        n += in.n_rows;
        for (uint32_t r = 0; eid && r < in.n_rows; r++) {
            tl_str s;
            assert_int_equal(tl_snap_event_id(sn, i, r, &s), 0);
            if (tl_str_eqc(s, eid)) (*with_eid)++;
        }
    }
    tl_snap_free(sn);
    return n;
}

/* Every event id of a project appears exactly once; returns the number of rows. */
static uint64_t assert_each_once(engine *e, const char *project)
{
    tl_snap *sn = NULL;
    assert_int_equal(tl_store_snap(e->store, tl_str_c(project), &sn), 0);
    size_t n = 0;
    for (size_t i = 0; i < tl_snap_n_parts(sn); i++)
        n += tl_snap_part_info(sn, i).n_rows;
    char **ids = calloc(n + 1, sizeof *ids);
    size_t k = 0;
    for (size_t i = 0; i < tl_snap_n_parts(sn); i++)
        for (uint32_t r = 0; r < tl_snap_part_info(sn, i).n_rows; r++) {
            tl_str s;
            assert_int_equal(tl_snap_event_id(sn, i, r, &s), 0);
            ids[k++] = tl_xstrndup(s.p, s.len);
        }
    tl_snap_free(sn);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (!strcmp(ids[i], ids[j]))
                fail_msg("event id %s stored twice in %s", ids[i], project);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return n;
}

static tl_index_stats stats(engine *e)
{
    tl_index_stats st;
    tl_index_get_stats(e->ix, &st);
    return st;
}

/* ---- tests ---- */

static void test_dedup(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    rec batch[] = {
        mk("p", "view", "e1", "a1", NULL, T0 + 1), mk("p", "view", "e2", "a1", NULL, T0 + 2),
        mk("p", "view", "e1", "a1", NULL, T0 + 3), /* duplicate in the same append */
        mk("q", "view", "e1", "a1", NULL, T0 + 4), /* same id, other project */
    };
    put(&e, batch, 4);
    put1(&e, mk("p", "buy", "e1", "a9", NULL, T0 + 5)); /* duplicate in a later append */
    put1(&e, mk("p", "buy", "e3", "a9", NULL, T0 + 6));
    uint64_t w;
    assert_int_equal(rows(&e, "p", "e1", &w), 3);
    assert_int_equal(w, 1);
    assert_int_equal(rows(&e, "q", "e1", &w), 1);
    assert_int_equal(w, 1);
    assert_int_equal(assert_each_once(&e, "p"), 3);
    tl_index_stats st = stats(&e);
    assert_int_equal(st.indexed, 4);
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.pos, e.end);
    assert_true(tl_index_seen(e.ix, TL_STR("p"), TL_STR("e1")));
    assert_true(tl_index_seen(e.ix, TL_STR("p"), TL_STR("e3")));
    assert_true(tl_index_seen(e.ix, TL_STR("q"), TL_STR("e1")));
    assert_false(tl_index_seen(e.ix, TL_STR("q"), TL_STR("e2")));
    assert_false(tl_index_seen(e.ix, TL_STR("r"), TL_STR("e1")));
    /* The project and the id are not simply concatenated. */
    assert_false(tl_index_seen(e.ix, TL_STR("pe"), TL_STR("1")));
    /* The first copy wins: its event name and time. */
    tl_snap *sn = NULL;
    assert_int_equal(tl_store_snap(e.store, TL_STR("p"), &sn), 0);
    uint32_t buy;
    assert_int_equal(tl_snap_dict_find(sn, TL_STR("buy"), &buy), 0);
    const uint32_t *ev;
    const int64_t *ts;
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_EVENT, &ev), 0);
    assert_int_equal(tl_snap_col_ts(sn, 0, &ts), 0);
    for (uint32_t r = 0; r < 3; r++) {
        tl_str s;
        assert_int_equal(tl_snap_event_id(sn, 0, r, &s), 0);
        if (tl_str_eqc(s, "e1")) {
            assert_true(ev[r] != buy);
            assert_int_equal(ts[r], T0 + 1);
        }
    }
    tl_snap_free(sn);
    /* Waiting for a position already indexed returns at once; a later one times out. */
    assert_int_equal(tl_index_wait(e.ix, e.end, 0), 0);
    assert_int_equal(tl_index_wait(e.ix, e.end + 1000, 50), TL_EAGAIN);
    stop(&e);
}

/* The pending set: keys admitted with an append's end position are seen before the indexer
 * gets there, stay seen (in the dedup set) after it has and their generation is dropped,
 * and past the lag bound an admit waits for the indexer. */
static void test_pending(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    char id[32];
    bool seen[3];

    /* A real append: seen at once, and still once the indexer has passed it and later
     * admits have rotated its generation out (keys admitted without a log record, here
     * only to fill generations, are then forgotten). */
    rec x = mk("p", "view", "y1", "a1", NULL, T0 + 1);
    tl_buf b = TL_BUF_INIT;
    tl_record_encode(&x.r, &b);
    tl_str s = tl_buf_str(&b);
    uint64_t end = 0;
    assert_int_equal(tl_log_append(e.log, &s, 1, &end), 0);
    tl_buf_fini(&b);
    tl_h128 ky = tl_index_key(TL_STR("p"), TL_STR("y1"));
    tl_index_admit(e.ix, &ky, 1, end);
    tl_index_seen_keys(e.ix, &ky, 1, seen);
    assert_true(seen[0]);
    assert_int_equal(tl_index_wait(e.ix, end, WAIT), 0);
    enum { MANY = 50000 };
    tl_h128 *more = calloc(MANY, sizeof *more);
    for (int i = 0; i < MANY; i++) {
        snprintf(id, sizeof id, "z%d", i);
        more[i] = tl_index_key(TL_STR("p"), tl_str_c(id));
    }
    for (int i = 0; i < MANY; i += 1000)
        tl_index_admit(e.ix, more + i, 1000, end);
    tl_index_seen_keys(e.ix, &ky, 1, seen);
    assert_true(seen[0]);
    bool *all = calloc(MANY, sizeof *all);
    tl_index_seen_keys(e.ix, more, MANY, all);
    assert_false(all[0]);       /* its generation was dropped */
    assert_true(all[MANY - 1]); /* the newest generation is kept */
    free(all);
    free(more);

    /* A position the indexer never reaches (nothing is there): the keys stay pending. */
    tl_h128 k[3];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "x%d", i);
        k[i] = tl_index_key(TL_STR("p"), tl_str_c(id));
    }
    uint64_t far = e.end + ((uint64_t)1 << 40);
    tl_index_admit(e.ix, k, 2, far);
    tl_index_seen_keys(e.ix, k, 3, seen);
    assert_true(seen[0] && seen[1] && !seen[2]);
    assert_true(tl_index_seen(e.ix, TL_STR("p"), TL_STR("x1")));
    assert_false(tl_index_seen(e.ix, TL_STR("q"), TL_STR("x1")));

    /* Past the bound (about half a million keys not yet indexed) an admit waits for the
     * indexer, at most 2 s, then goes on. */
    enum { LOTS = 600000 };
    tl_h128 *lots = calloc(LOTS, sizeof *lots);
    for (int i = 0; i < LOTS; i++) {
        lots[i].lo = ((uint64_t)i << 17) | 1;
        lots[i].hi = (uint64_t)i * 0x9E3779B97F4A7C15ull;
    }
    int64_t t0 = tl_mono_ms();
    tl_index_admit(e.ix, lots, LOTS, far);
    assert_true(tl_mono_ms() - t0 >= 1500);
    free(lots);
    tl_index_seen_keys(e.ix, k, 3, seen);
    assert_true(seen[0] && seen[1] && !seen[2]);
    stop(&e);
}

static void test_identity(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    put1(&e, mk("p", "view", "1", "a1", NULL, T0 + 1));
    put1(&e, mk("p", "login", "2", "a1", "alice", T0 + 2)); /* merges a1 into alice */
    put1(&e, mk("p", "view", "3", NULL, "alice", T0 + 3));
    put1(&e, mk("p", "view", "4", "a2", "bob", T0 + 4));
    put1(&e, mk("p", "view", "5", "a1", "bob", T0 + 5)); /* two users: refused */
    rec id = mk("p", "$identify", "6", "a3", "alice", T0 + 6);
    id.r.kind = TL_REC_IDENTIFY; /* merges, stores no row */
    put1(&e, id);
    put1(&e, mk("p", "view", "7", NULL, NULL, T0 + 7)); /* no id at all: no row */
    assert_int_equal(rows(&e, "p", NULL, NULL), 5);
    tl_index_stats st = stats(&e);
    assert_int_equal(st.merges_refused, 1);
    tl_snap *sn = NULL;
    assert_int_equal(tl_store_snap(e.store, TL_STR("p"), &sn), 0);
    uint32_t a1 = tl_snap_did_find(sn, TL_STR("a1")), alice = tl_snap_did_find(sn, TL_STR("alice"));
    uint32_t a2 = tl_snap_did_find(sn, TL_STR("a2")), bob = tl_snap_did_find(sn, TL_STR("bob"));
    uint32_t a3 = tl_snap_did_find(sn, TL_STR("a3"));
    assert_true(a1 != TL_DID_NONE && alice != TL_DID_NONE && a3 != TL_DID_NONE);
    assert_true(tl_snap_did_is_user(sn, alice));
    assert_false(tl_snap_did_is_user(sn, a1));
    const uint32_t *person = tl_snap_persons(sn);
    assert_int_equal(person[a1], person[alice]);
    assert_int_equal(person[a3], person[alice]);
    assert_int_equal(person[a2], person[bob]);
    assert_true(person[bob] != person[alice]);
    /* An event with both ids is stored under the user id. */
    const uint32_t *dids;
    assert_int_equal(tl_snap_col_u32(sn, 0, TL_COL_DID, &dids), 0);
    for (uint32_t r = 0; r < 5; r++) {
        tl_str s;
        assert_int_equal(tl_snap_event_id(sn, 0, r, &s), 0);
        if (tl_str_eqc(s, "1")) assert_int_equal(dids[r], a1);
        if (tl_str_eqc(s, "2") || tl_str_eqc(s, "3")) assert_int_equal(dids[r], alice);
        if (tl_str_eqc(s, "5")) assert_int_equal(dids[r], bob);
    }
    tl_snap_free(sn);
    stop(&e);
    /* Identity survives the restart. */
    start(&e, f->dir, 0, 0);
    assert_int_equal(tl_store_snap(e.store, TL_STR("p"), &sn), 0);
    person = tl_snap_persons(sn);
    assert_int_equal(person[a3], person[a1]);
    assert_true(person[bob] != person[a1]);
    tl_snap_free(sn);
    stop(&e);
}

static void test_reopen_exactly_once(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    enum { N = 300 };
    rec *batch = calloc(N, sizeof *batch);
    char(*ids)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "id-%d", i);
        batch[i] = mk(i % 2 ? "p" : "q", "e", ids[i], "anon", NULL,
                      T0 + (int64_t)(i % 3) * TL_MS_PER_DAY + i);
    }
    put(&e, batch, N);
    assert_int_equal(tl_index_checkpoint(e.ix), 0);
    assert_int_equal(stats(&e).checkpoints, 1);
    assert_int_equal(tl_index_checkpoint(e.ix), 0); /* nothing new: fine too */
    stop(&e);

    start(&e, f->dir, 0, 0);
    assert_true(tl_index_seen(e.ix, TL_STR("p"), TL_STR("id-1")));
    assert_true(tl_index_seen(e.ix, TL_STR("q"), TL_STR("id-0")));
    assert_false(tl_index_seen(e.ix, TL_STR("p"), TL_STR("id-0")));
    assert_int_equal(rows(&e, "p", NULL, NULL), N / 2);
    /* The same records again, plus new ones. */
    put(&e, batch, N);
    put1(&e, mk("p", "e", "fresh", "anon", NULL, T0));
    assert_int_equal(assert_each_once(&e, "p"), N / 2 + 1);
    assert_int_equal(assert_each_once(&e, "q"), N / 2);
    tl_index_stats st = stats(&e);
    assert_int_equal(st.indexed, 1);
    assert_int_equal(st.duplicates, N);
    stop(&e);

    /* A third life, without any new append: nothing changes. */
    start(&e, f->dir, 0, 0);
    assert_int_equal(assert_each_once(&e, "p"), N / 2 + 1);
    assert_int_equal(assert_each_once(&e, "q"), N / 2);
    stop(&e);
    free(batch);
    free(ids);
}

/* A crash after an append was indexed but before the checkpoint that covers it: the copy of
 * the data directory taken then opens at the previous checkpoint and the log replay brings
 * every event back, exactly once. */
static void test_crash_replay(void **state)
{
    fixture *f = *state;
    char live[128], copy[128], cmd[400];
    snprintf(live, sizeof live, "%s/live", f->dir);
    snprintf(copy, sizeof copy, "%s/copy", f->dir);
    engine e;
    start(&e, live, 3600000, 0); /* no checkpoint by time during the test */
    enum { N = 100 };
    rec batch[N];
    char ids[2 * N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "a-%d", i);
        batch[i] = mk("p", "e", ids[i], i % 2 ? "x" : "y", i % 10 ? NULL : "u", T0 + i);
    }
    put(&e, batch, N);
    assert_int_equal(tl_index_checkpoint(e.ix), 0);
    for (int i = 0; i < N; i++) {
        snprintf(ids[N + i], 16, "b-%d", i);
        batch[i] = mk(i % 3 ? "p" : "q", "e", ids[N + i], "z", i % 7 ? NULL : "v", T0 + N + i);
    }
    put(&e, batch, N / 2);
    put(&e, batch + N / 2, N / 2);
    uint64_t live_p = assert_each_once(&e, "p"), live_q = assert_each_once(&e, "q");
    assert_int_equal(stats(&e).checkpoints, 1);
    /* The crash: the directory as it is now, with the last appends only in the log. */
    snprintf(cmd, sizeof cmd, "cp -a %s %s", live, copy);
    assert_int_equal(system(cmd), 0);
    stop(&e);

    engine c;
    start(&c, copy, 3600000, 0);
    assert_int_equal(tl_index_wait(c.ix, tl_log_durable_pos(c.log), WAIT), 0);
    assert_int_equal(assert_each_once(&c, "p"), live_p);
    assert_int_equal(assert_each_once(&c, "q"), live_q);
    assert_int_equal(live_p + live_q, 2 * N);
    tl_index_stats st = stats(&c);
    assert_int_equal(st.indexed, N); /* only what followed the checkpoint */
    assert_int_equal(st.duplicates, 0);
    /* Identity was replayed too. */
    tl_snap *sn = NULL;
    assert_int_equal(tl_store_snap(c.store, TL_STR("p"), &sn), 0);
    const uint32_t *person = tl_snap_persons(sn);
    uint32_t z = tl_snap_did_find(sn, TL_STR("z")), v = tl_snap_did_find(sn, TL_STR("v"));
    assert_true(z != TL_DID_NONE && v != TL_DID_NONE);
    assert_int_equal(person[z], person[v]);
    tl_snap_free(sn);
    /* Clients retry everything: still once. */
    put(&c, batch, N);
    assert_int_equal(assert_each_once(&c, "p"), live_p);
    assert_int_equal(assert_each_once(&c, "q"), live_q);
    stop(&c);
    /* And the same after a clean restart of the copy. */
    start(&c, copy, 3600000, 0);
    assert_int_equal(assert_each_once(&c, "p"), live_p);
    assert_int_equal(assert_each_once(&c, "q"), live_q);
    stop(&c);
}

static void test_undecodable(void **state)
{
    fixture *f = *state;
    tl_diag_set_level(-1); /* the indexer logs the bad record */
    engine e;
    start(&e, f->dir, 0, 0);
    put1(&e, mk("p", "e", "1", "a", NULL, T0));
    put_raw(&e, "\x01\x01garbage", 9);
    put_raw(&e, "", 0);
    rec bad_name = mk("no/such project", "e", "2", "a", NULL, T0);
    put1(&e, bad_name);
    put1(&e, mk("p", "e", "3", "a", NULL, T0));
    assert_int_equal(rows(&e, "p", NULL, NULL), 2);
    stop(&e);
    start(&e, f->dir, 0, 0);
    put1(&e, mk("p", "e", "4", "a", NULL, T0));
    assert_int_equal(assert_each_once(&e, "p"), 3);
    stop(&e);
}

/* Records of two projects whose names have the same length, the second one larger than the
 * log iterator's buffer: the indexer must not compare against a project name that pointed
 * into the buffer it just replaced. */
static void test_big_record_switches_project(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    size_t big = 600 << 10;
    char *s = malloc(big + 1);
    memset(s, 'x', big);
    s[big] = 0;
    rec batch[4] = {
        mk("aa", "e", "1", "a", NULL, T0),
        mk("bb", "e", "2", "a", NULL, T0),
        mk("bb", "e", "3", "a", NULL, T0),
        mk("aa", "e", "4", "a", NULL, T0),
    };
    batch[1].props[0] = (tl_prop){TL_STR("blob"), TL_PV_STR, 0, tl_str_c(s)};
    batch[1].r.n_props = 1;
    batch[3].props[0] = (tl_prop){TL_STR("blob"), TL_PV_STR, 0, tl_str_c(s)};
    batch[3].r.n_props = 1;
    put(&e, batch, 4);
    assert_int_equal(assert_each_once(&e, "aa"), 2);
    assert_int_equal(assert_each_once(&e, "bb"), 2);
    free(s);
    stop(&e);
}

/* Sealing by row count: with seal_rows 50 the indexer checkpoints on its own. */
static void test_seal_rows(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 3600000, 50);
    enum { N = 120 };
    rec batch[N];
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "%d", i);
        batch[i] = mk("p", "e", ids[i], "a", NULL, T0 + i);
    }
    for (int i = 0; i < N; i += 10)
        put(&e, batch + i, 10);
    /* The check runs after each batch the thread reads; give it a moment. */
    for (int i = 0; i < 100 && stats(&e).checkpoints == 0; i++)
        usleep(20000);
    assert_true(stats(&e).checkpoints >= 1);
    assert_true(tl_store_open_rows(e.store) < N);
    assert_int_equal(assert_each_once(&e, "p"), N);
    stop(&e);
}

/* Many more records than one indexer batch: all indexed, once. */
static void test_many_batches(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    enum { N = 10000 };
    rec *batch = calloc(N, sizeof *batch);
    char(*ids)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "%d", i % (N - 100)); /* the last 100 repeat earlier ids */
        char *anon = ids[i];
        batch[i] = mk(i % 5 ? "p" : "q", "e", ids[i], anon, NULL, T0 + i);
    }
    put(&e, batch, N);
    tl_index_stats st = stats(&e);
    assert_int_equal(st.indexed + st.duplicates, N);
    assert_true(st.duplicates >= 1);
    uint64_t total = assert_each_once(&e, "p") + assert_each_once(&e, "q");
    assert_int_equal(total, st.indexed);
    stop(&e);
    free(batch);
    free(ids);
}

/* A steady stream of full batches still gets checkpoints when they are due (by rows here),
 * not only when the stream pauses. */
static void test_checkpoint_under_load(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 3600000, 100);
    enum { N = 12000 }; /* about three indexer batches in one durable append */
    rec *batch = calloc(N, sizeof *batch);
    char(*ids)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "%d", i);
        batch[i] = mk("p", "e", ids[i], "a", NULL, T0 + i);
    }
    put(&e, batch, N);
    assert_true(stats(&e).checkpoints >= 2);
    assert_int_equal(assert_each_once(&e, "p"), N);
    stop(&e);
    free(batch);
    free(ids);
}

/* tl_index_checkpoint on an indexer whose thread is not running does the work itself
 * instead of waiting for a thread that will never answer. */
static void test_checkpoint_without_thread(void **state)
{
    fixture *f = *state;
    char path[256];
    tl_err err = {0};
    uint64_t pos = 0, aux = 0;
    tl_store *st = NULL;
    tl_log *log = NULL;
    tl_index *ix = NULL;
    snprintf(path, sizeof path, "%s/store", f->dir);
    assert_int_equal(tl_store_open(path, NULL, &st, &pos, &aux, &err), 0);
    snprintf(path, sizeof path, "%s/log", f->dir);
    assert_int_equal(tl_log_open(path, NULL, &log, &err), 0);
    snprintf(path, sizeof path, "%s/index", f->dir);
    assert_int_equal(tl_index_open(path, st, log, pos, aux, NULL, &ix, &err), 0);
    assert_int_equal(tl_index_checkpoint(ix), 0);
    assert_int_equal(tl_index_checkpoint(ix), 0);
    tl_index_stats s;
    tl_index_get_stats(ix, &s);
    assert_int_equal(s.checkpoints, 2);
    tl_index_free(ix);
    tl_log_close(log);
    tl_store_free(st);
}

/* Identify records are deduplicated by event_id like events: a retried merge that is refused
 * counts once, and a retried $set is not logged twice. Erasures are never dropped. */
static void test_identify_dedup(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    put1(&e, mk("p", "view", "1", "a1", "alice", T0 + 1));
    put1(&e, mk("p", "view", "2", "a2", "bob", T0 + 2));
    rec id = mk("p", "$identify", "m-1", "a1", "bob", T0 + 3); /* two users: refused */
    id.r.kind = TL_REC_IDENTIFY;
    put1(&e, id);
    put1(&e, id); /* the client's retry */
    tl_index_stats st = stats(&e);
    assert_int_equal(st.merges_refused, 1);
    assert_int_equal(st.duplicates, 1);
    assert_true(tl_index_seen(e.ix, TL_STR("p"), TL_STR("m-1")));
    stop(&e);
    /* After a restart too (the id is in a run file now). */
    start(&e, f->dir, 0, 0);
    put1(&e, id);
    st = stats(&e);
    assert_int_equal(st.merges_refused, 0);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.indexed, 0);
    stop(&e);
}

/* A data directory written before the dedup run files: its checkpoint's aux is the key count
 * and the index directory is empty. The first start builds the set from the stored event ids
 * and records it; the next start reads the runs (aux now names a manifest). */
static void test_migration_from_count_aux(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 3600000, 0);
    enum { N = 500 };
    rec *batch = calloc(N, sizeof *batch);
    char(*ids)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "old-%d", i);
        batch[i] = mk("p", "e", ids[i], "anon", NULL, T0 + (int64_t)(i % 4) * TL_MS_PER_DAY);
    }
    put(&e, batch, N);
    stop(&e); /* checkpoints */
    /* Make it look old: aux = the key count, no index directory. */
    char path[256];
    tl_err err = {0};
    tl_store *st = NULL;
    uint64_t pos = 0, aux = 0;
    snprintf(path, sizeof path, "%s/store", f->dir);
    assert_int_equal(tl_store_open(path, NULL, &st, &pos, &aux, &err), 0);
    assert_true(aux & TL_DEDUP_AUX_TAG);
    assert_int_equal(tl_store_checkpoint(st, pos, N, &err), 0);
    tl_store_free(st);
    snprintf(path, sizeof path, "%s/index", f->dir);
    tl_rm_rf(path);

    start(&e, f->dir, 3600000, 0);
    assert_true(tl_index_seen(e.ix, TL_STR("p"), TL_STR("old-7")));
    put(&e, batch, N); /* all repeats */
    assert_int_equal(stats(&e).duplicates, N);
    assert_int_equal(assert_each_once(&e, "p"), N);
    assert_int_equal(stats(&e).dedup_keys, N);
    stop(&e);
    snprintf(path, sizeof path, "%s/store", f->dir);
    assert_int_equal(tl_store_open(path, NULL, &st, &pos, &aux, &err), 0);
    assert_true(aux & TL_DEDUP_AUX_TAG);
    tl_store_free(st);
    /* And with the index directory removed by hand: rebuilt the same way. */
    snprintf(path, sizeof path, "%s/index", f->dir);
    tl_rm_rf(path);
    tl_diag_set_level(TL_LOG_ERROR);
    start(&e, f->dir, 3600000, 0);
    put(&e, batch, N);
    assert_int_equal(stats(&e).duplicates, N);
    assert_int_equal(assert_each_once(&e, "p"), N);
    stop(&e);
    free(batch);
    free(ids);
}

/* A run named by the checkpoint is missing: the indexer refuses to open, saying so. */
static void test_missing_run_refuses(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    put1(&e, mk("p", "e", "x1", "anon", NULL, T0));
    stop(&e);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm %s/index/run-*", f->dir);
    assert_int_equal(system(cmd), 0);
    char path[256];
    tl_err err = {0};
    tl_store *st = NULL;
    tl_log *log = NULL;
    tl_index *ix = NULL;
    uint64_t pos = 0, aux = 0;
    snprintf(path, sizeof path, "%s/store", f->dir);
    assert_int_equal(tl_store_open(path, NULL, &st, &pos, &aux, &err), 0);
    snprintf(path, sizeof path, "%s/log", f->dir);
    assert_int_equal(tl_log_open(path, NULL, &log, &err), 0);
    snprintf(path, sizeof path, "%s/index", f->dir);
    assert_int_equal(tl_index_open(path, st, log, pos, aux, NULL, &ix, &err), TL_ENOENT);
    assert_non_null(strstr(err.msg, "run-"));
    tl_log_close(log);
    tl_store_free(st);
}

/* Many checkpoints (small runs that merge) and restarts: every repeat is still dropped. */
static void test_dedup_across_runs(void **state)
{
    fixture *f = *state;
    engine e;
    start(&e, f->dir, 0, 0);
    enum { ROUNDS = 12, PER = 300 };
    rec *batch = calloc(PER, sizeof *batch);
    char(*ids)[24] = calloc(ROUNDS * PER, 24);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PER; i++) {
            snprintf(ids[r * PER + i], 24, "r%d-%d", r, i);
            batch[i] = mk("p", "e", ids[r * PER + i], "anon", NULL, T0 + r);
        }
        put(&e, batch, PER);
        assert_int_equal(tl_index_checkpoint(e.ix), 0);
        if (r % 5 == 4) {
            stop(&e);
            start(&e, f->dir, 0, 0);
        }
    }
    /* Everything again, after a restart. */
    stop(&e);
    start(&e, f->dir, 0, 0);
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PER; i++)
            batch[i] = mk("p", "e", ids[r * PER + i], "anon", NULL, T0 + r + 1);
        put(&e, batch, PER);
    }
    tl_index_stats st = stats(&e);
    assert_int_equal(st.duplicates, ROUNDS * PER);
    assert_int_equal(st.indexed, 0);
    assert_int_equal(st.dedup_keys, ROUNDS * PER);
    assert_true(st.dedup_runs < ROUNDS); /* merged */
    assert_int_equal(assert_each_once(&e, "p"), ROUNDS * PER);
    stop(&e);
    free(batch);
    free(ids);
}

/* With a retention, keys of events older than it (plus 2 days) leave the dedup set: a run
 * that is half expired is rewritten without them. Recent keys stay. */
static void test_dedup_expiry_by_retention(void **state)
{
    fixture *f = *state;
    g_retention_days = 30;
    engine e;
    start(&e, f->dir, 3600000, 0);
    enum { N = 200 };
    rec *batch = calloc(2 * N, sizeof *batch);
    char(*ids)[16] = calloc(2 * N, 16);
    int64_t now = tl_now_ms();
    for (int i = 0; i < 2 * N; i++) {
        snprintf(ids[i], 16, "%s-%d", i < N ? "old" : "new", i);
        batch[i] = mk("p", "e", ids[i], "anon", NULL,
                      i < N ? now - 100 * TL_MS_PER_DAY : now - TL_MS_PER_DAY);
    }
    put(&e, batch, 2 * N);
    assert_int_equal(tl_index_checkpoint(e.ix), 0); /* the run; its rewrite starts */
    assert_int_equal(stats(&e).dedup_keys, 2 * N);
    for (int tries = 0; tries < 200 && stats(&e).dedup_keys != N; tries++) {
        usleep(20000);
        assert_int_equal(tl_index_checkpoint(e.ix), 0); /* installs it once done */
    }
    assert_int_equal(stats(&e).dedup_keys, N);
    put(&e, batch + N, N); /* the recent ones again: still repeats */
    assert_int_equal(stats(&e).duplicates, N);
    assert_true(tl_index_seen(e.ix, TL_STR("p"), TL_STR("new-250")));
    assert_false(tl_index_seen(e.ix, TL_STR("p"), TL_STR("old-50")));
    stop(&e);
    g_retention_days = 0;
    free(batch);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undecodable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_record_switches_project, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seal_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_under_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_without_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identify_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_from_count_aux, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_run_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_across_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_expiry_by_retention, setup, teardown),
    };
    return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
